"""``ups evaluate``'s progress on stderr: a line as each rollout starts, with an ETA once one is done."""

from __future__ import annotations

import re

from ups.cli import main


def evaluate(config, store, prefix, *extra: str) -> int:
    argv = ["evaluate", "--config", str(config), "--data", str(store), "--output-prefix", str(prefix)]
    return main([*argv, "--timing-repeats", "1", *extra])


def test_a_corrector_checkpoint_reports_each_split_and_seed_with_an_eta(
    trained_run, eval_config, eval_store, tmp_path, capsys
):
    assert evaluate(eval_config, eval_store, tmp_path / "e", "--checkpoint", str(trained_run), "--seeds", "0,1",
                    "--progress") == 0  # fmt: skip
    lines = capsys.readouterr().err.splitlines()
    assert [re.sub(r", \d+s elapsed.*", "", line) for line in lines[:4]] == [
        "ups evaluate: latent_operator on test, seed 0 (1/4)",
        "ups evaluate: latent_operator on test, seed 1 (2/4)",
        "ups evaluate: latent_operator on ood_regime, seed 0 (3/4)",
        "ups evaluate: latent_operator on ood_regime, seed 1 (4/4)",
    ]
    assert "ETA" not in lines[0] and all(re.search(r"elapsed, ETA ~(\d+m)?\d+s$", line) for line in lines[1:4])
    assert re.fullmatch(r"ups evaluate: 4 rollout\(s\) scored in \d+s", lines[4]) and len(lines) == 5


def test_a_deterministic_model_rolls_out_once_per_split_and_is_quiet_off_a_terminal(
    eval_config, eval_store, tmp_path, capsys
):
    argv = ["--model", "persistence", "--seeds", "0,1", "--splits", "test"]
    assert evaluate(eval_config, eval_store, tmp_path / "p", *argv, "--progress") == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "ups evaluate: persistence on test, seeds 0,1 (1/1), 0s elapsed" and len(lines) == 2
    assert evaluate(eval_config, eval_store, tmp_path / "q", *argv) == 0  # stderr is no terminal here
    assert capsys.readouterr().err == ""

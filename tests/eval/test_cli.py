"""``ups evaluate`` end to end on a tiny trained checkpoint: JSON/CSV/HTML with model and persistence rows, corrector
ensembles, seeds, TTC, W&B, and one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import re
import shutil
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ups.cli import main
from ups.data.store import DatasetStore
from ups.inference import load_surrogate
from ups.metrics import crps, nrmse
from ups.store.results import ResultsStore

EVIL = "<script>alert('x')</script> & co"


def evaluate(config: Path, store: Path, prefix: Path, *extra: str) -> int:
    argv = ["evaluate", "--config", str(config), "--data", str(store), "--output-prefix", str(prefix)]
    return main([*argv, "--timing-repeats", "1", *extra])


def one_line_error(capsys, code: int, needle: str) -> None:
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ups: error:") and "\n" not in err, err
    assert needle in err, err


def by_key(rows: list[dict]) -> dict[tuple, float | None]:
    return {(r["model"], r["split"], r["seed"], r["metric"], r["horizon"]): r["value"] for r in rows}


def split_arrays(store: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs [B, 1, C, X], params [B, 1], target [B, 4, C, X]) as the evaluator cuts them (n_input 1, 4 steps)."""
    data = DatasetStore.open(store)
    fields = torch.from_numpy(data.fields(split))
    return fields[:, :1], torch.from_numpy(data.params(split)), fields[:, 1:5]


def test_checkpoint_is_scored_beside_persistence_with_json_csv_and_offline_html(
    trained_run, eval_config, eval_store, tmp_path, capsys
):
    prefix = tmp_path / "reports" / "tiny"
    assert evaluate(eval_config, eval_store, prefix, "--checkpoint", str(trained_run), "--leaderboard-label", EVIL) == 0
    assert f"wrote {prefix}.json" in capsys.readouterr().out

    report = json.loads(prefix.with_suffix(".json").read_text())
    rows = report["metrics"]
    assert report["run"]["label"] == EVIL and report["run"]["env"]["candidate"]["checkpoint"] == str(trained_run)
    assert {r["model"] for r in rows} == {EVIL, "persistence"}
    assert {r["split"] for r in rows} == {"test", "ood_regime"} and {r["seed"] for r in rows} == {0}
    values = by_key(rows)

    # the model's rows score the checkpoint's hybrid rollout and its 4-member corrector ensemble (seed 0) on frames
    # 1..4; persistence copies frame 0 onto the same frames
    model = load_surrogate(trained_run)
    for split in ("test", "ood_regime"):
        inputs, params, target = split_arrays(eval_store, split)
        pred = model.rollout(inputs, 4, params)
        samples = model.sample_ensemble(inputs, 4, params, n=4, seed=0)
        assert values[(EVIL, split, 0, "nrmse", None)] == pytest.approx(nrmse(pred, target), rel=1e-6)
        assert values[(EVIL, split, 0, "crps", None)] == pytest.approx(crps(samples, target), rel=1e-6)
        assert 0 <= values[(EVIL, split, 0, "ece", None)] <= 0.5
        assert values[(EVIL, split, 0, "params_m", None)] == pytest.approx(model.num_parameters() / 1e6)
        persistence = inputs.expand(-1, 4, -1, -1)
        assert values[("persistence", split, 0, "nrmse", None)] == pytest.approx(nrmse(persistence, target), rel=1e-6)
        assert values[("persistence", split, 0, "nrmse", 1)] == pytest.approx(
            nrmse(persistence[:, :1], target[:, :1]), rel=1e-6
        )
        assert values[("persistence", split, 0, "params_m", None)] == 0
        assert values[("persistence", split, 0, "ece", None)] is None  # deterministic: no ensemble metrics
    with prefix.with_suffix(".csv").open(newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert list(csv_rows[0]) == ["model", "task", "split", "seed", "metric", "horizon", "value"]
    assert len(csv_rows) == len(rows) and {r["model"] for r in csv_rows} == {EVIL, "persistence"}

    page = prefix.with_suffix(".html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)  # nothing loaded from the network
    assert EVIL not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page
    assert page.count("vegaEmbed(") == 2 and "split: ood_regime" in page
    assert "calibration: central predictive intervals" in page and "energy spectrum, last step" in page
    assert "No calibration diagram" not in page


def test_seeds_draw_different_ensembles_of_the_same_rollout(trained_run, eval_config, eval_store, tmp_path):
    prefix, db = tmp_path / "seeds", tmp_path / "reports" / "results.duckdb"
    argv = ["--checkpoint", str(trained_run), "--seeds", "3,4", "--splits", "test"]
    assert evaluate(eval_config, eval_store, prefix, *argv, "--leaderboard-run-id", "r1", "--db", str(db)) == 0
    rows = json.loads(prefix.with_suffix(".json").read_text())["metrics"]
    values = by_key(rows)
    model = "latent_operator"
    assert values[(model, "test", 3, "crps", None)] != values[(model, "test", 4, "crps", None)]
    assert values[(model, "test", 3, "nrmse", None)] == values[(model, "test", 4, "nrmse", None)]
    assert values[("persistence", "test", 3, "nrmse", 4)] == values[("persistence", "test", 4, "nrmse", 4)]
    assert {k[2] for k in values} == {3, 4}
    # the leaderboard row holds the model's scores only; persistence stays in the evaluation's own files
    stored = ResultsStore(db).metrics("r1")
    assert len(stored) == sum(r["model"] == model for r in rows)
    stored_crps = {r["seed"]: r["value"] for r in stored if r["metric"] == "crps"}
    assert stored_crps == {s: values[(model, "test", s, "crps", None)] for s in (3, 4)}
    assert (db.parent / "leaderboard.html").is_file()


def test_ttc_scores_the_test_time_search_rollout(trained_run, eval_config, eval_store, tmp_path):
    prefix = tmp_path / "ttc"
    assert evaluate(eval_config, eval_store, prefix, "--checkpoint", str(trained_run), "--ttc", "--splits", "test") == 0
    values = by_key(json.loads(prefix.with_suffix(".json").read_text())["metrics"])
    inputs, params, target = split_arrays(eval_store, "test")
    searched = load_surrogate(trained_run, ttc=True).rollout(inputs, 4, params)
    assert values[("latent_operator+ttc", "test", 0, "nrmse", None)] == pytest.approx(nrmse(searched, target), rel=1e-6)


def test_checkpoint_without_corrector_has_no_ensemble(operator_only_run, eval_config, eval_store, tmp_path, capsys):
    prefix = tmp_path / "op"
    assert evaluate(eval_config, eval_store, prefix, "--checkpoint", str(operator_only_run), "--splits", "test") == 0
    values = by_key(json.loads(prefix.with_suffix(".json").read_text())["metrics"])
    assert values[("latent_operator", "test", 0, "ece", None)] is None
    assert values[("latent_operator", "test", 0, "nrmse", None)] > 0
    assert "No calibration diagram" in prefix.with_suffix(".html").read_text()
    code = evaluate(eval_config, eval_store, prefix, "--checkpoint", str(operator_only_run), "--ttc")
    one_line_error(capsys, code, "no corrector")


def test_registered_model_without_checkpoint_keeps_working(eval_config, eval_store, tmp_path):
    prefix = tmp_path / "p"
    assert evaluate(eval_config, eval_store, prefix, "--model", "persistence", "--seeds", "0,1") == 0
    rows = json.loads(prefix.with_suffix(".json").read_text())["metrics"]
    assert {r["model"] for r in rows} == {"persistence"}  # the baseline is not scored twice
    values = by_key(rows)
    inputs, _, target = split_arrays(eval_store, "test")
    expected = nrmse(inputs.expand(-1, 4, -1, -1), target)
    assert values[("persistence", "test", 0, "nrmse", None)] == values[("persistence", "test", 1, "nrmse", None)]
    assert values[("persistence", "test", 0, "nrmse", None)] == pytest.approx(expected, rel=1e-6)
    assert prefix.with_suffix(".html").is_file()


def test_wandb_logs_the_scoreboard_offline(eval_config, eval_store, tmp_path, monkeypatch):
    calls: dict = {}

    class Run:
        summary: dict = {}

        def log(self, data):
            calls["log"] = data

        def finish(self):
            calls["finished"] = True

    fake = types.SimpleNamespace(
        init=lambda **kw: calls.setdefault("init", kw) and Run(),
        Table=lambda columns, data: {"columns": columns, "data": data},
    )
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    prefix = tmp_path / "w"
    argv = ["--model", "persistence", "--splits", "test", "--leaderboard-wandb", "--leaderboard-wandb-project", "p"]
    assert evaluate(eval_config, eval_store, prefix, *argv) == 0  # the playbook's flag names
    assert calls["init"]["mode"] == "offline" and calls["init"]["project"] == "p" and calls["finished"]
    table = calls["log"]["scoreboard"]
    rows = json.loads(prefix.with_suffix(".json").read_text())["metrics"]
    assert table["columns"][0] == "model" and len(table["data"]) == len(rows)
    assert Run.summary["persistence/test/nrmse"] == pytest.approx(
        by_key(rows)[("persistence", "test", 0, "nrmse", None)]
    )


def test_bad_input_is_one_line(trained_run, eval_config, eval_store, write_tiny_store, tmp_path, capsys, monkeypatch):
    prefix = tmp_path / "x"
    one_line_error(capsys, evaluate(eval_config, eval_store, prefix, "--checkpoint", str(tmp_path / "nope")), "nope")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "state.json").write_text("{}")
    one_line_error(capsys, evaluate(eval_config, eval_store, prefix, "--checkpoint", str(junk)), "checkpoint")
    one_line_error(capsys, evaluate(eval_config, eval_store, prefix, "--splits", "test,ood_bc"), "no split 'ood_bc'")
    one_line_error(capsys, evaluate(eval_config, eval_store, prefix, "--seeds", "0,one"), "--seeds")
    one_line_error(capsys, evaluate(eval_config, eval_store, prefix, "--ttc"), "--ttc")

    # a checkpoint trained on another task than the one the config (and the data) name
    other = write_tiny_store(tmp_path / "burgers.zarr", task="burgers1d")
    config = tmp_path / "burgers.yaml"
    config.write_text(eval_config.read_text().replace("task: advection1d", "task: burgers1d"))
    code = evaluate(config, other, prefix, "--checkpoint", str(trained_run))
    one_line_error(capsys, code, "trained on task 'advection1d', but the config says 'burgers1d'")

    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    one_line_error(capsys, evaluate(eval_config, eval_store, prefix, "--wandb"), "wandb is not installed")
    monkeypatch.setitem(sys.modules, "ups.inference", None)  # an installation without ups.inference
    one_line_error(capsys, evaluate(eval_config, eval_store, prefix, "--checkpoint", str(trained_run)), "ups.inference")
    assert not prefix.with_suffix(".json").exists()


def _truncate_chunk(path: Path) -> None:
    chunk = path / "test" / "fields" / "u" / "c" / "1" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:50])


def _flip_byte(path: Path) -> None:
    chunk = path / "test" / "fields" / "u" / "c" / "2" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[40] ^= 0x01  # the lowest mantissa bit of one float: finite and plausible, so only the hash can tell
    chunk.write_bytes(bytes(data))


def _edit_attrs(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        meta = json.loads((path / "zarr.json").read_text())
        edit(meta["attributes"])
        (path / "zarr.json").write_text(json.dumps(meta))

    return damage


BAD_STORES = {  # the damage of tests/data/test_bad_stores.py → the words of the one line
    "truncated_chunk": (_truncate_chunk, "cannot read test/fields/u"),
    "incomplete_spec": (_edit_attrs(lambda a: a["spec"].pop("grid_shape")), "spec is incomplete (missing grid_shape)"),
    "missing_splits": (_edit_attrs(lambda a: a.pop("splits")), "attribute splits is missing"),
    "garbage_store": (lambda p: (p / "zarr.json").write_bytes(b"\x00\xff" * 99), "not a UPS data store"),
    "flipped_byte": (_flip_byte, "content hash mismatch"),
}


@pytest.mark.parametrize("damage", list(BAD_STORES))
def test_a_damaged_store_is_one_line_and_never_scored(damage, eval_store, tmp_path, capsys):
    bad = tmp_path / "bad.zarr"
    shutil.copytree(eval_store, bad)
    edit, needle = BAD_STORES[damage]
    edit(bad)
    config = tmp_path / "persistence.yaml"
    config.write_text(
        "run: {model: persistence}\ndata: {task: advection1d}\neval: {rollout_steps: 4, horizons: [1, 4]}\n"
    )
    prefix = tmp_path / "out" / "eval"
    start = time.perf_counter()
    code = evaluate(config, bad, prefix)
    assert time.perf_counter() - start < 5
    one_line_error(capsys, code, needle)  # one line: no traceback
    assert not prefix.parent.exists()  # nothing scored, nothing written

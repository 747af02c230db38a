"""Every bad config a new user can write is one line on stderr and exit code 2, in well under 5 s, with nothing written.

Each case runs the real CLI (``ups.cli.main`` in-process, as tests/test_cli.py does; one case also as a subprocess) on a
file built in ``tmp_path``. The cases are the ones issue 14 measured on main: alias bombs that hung for minutes or
ended in a ``MemoryError``, a non-UTF-8 file and 20k-deep nesting that ended in tracebacks, duplicate keys accepted
silently, and out-of-range numbers that validated and then overflowed in ``ups dry-run`` or ``ups train``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ups.cli import main
from ups.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BUDGET_S = 5.0


@pytest.fixture(autouse=True)
def _no_ups_env(monkeypatch):
    """Keep the developer's own UPS_* variables out of these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("UPS_"):
            monkeypatch.delenv(name)


def mapping_bomb(levels: int = 9, fan: int = 9, indent: str = "  ") -> str:
    """Nested aliases of mappings: ``levels`` anchors, the last one expanding to ``fan**levels`` leaves (~800 bytes)."""
    lines = [f"l0: &l0 {{{', '.join(f'k{j}: x' for j in range(fan))}}}"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} {{{', '.join(f'k{j}: *l{i - 1}' for j in range(fan))}}}")
    return "".join(f"{indent}{line}\n" for line in lines)


def list_bomb(levels: int = 9, fan: int = 9, indent: str = "    ") -> str:
    """The billion-laughs list form: ``fan**levels`` strings from ~600 bytes."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * fan)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, levels)]
    return "".join(f"{indent}{line}\n" for line in lines)


def run_cli(capsys, argv: list[str], starts: str) -> str:
    """Run ``ups argv``; assert exit 2, one stderr line starting with ``ups: error: <starts>``, no traceback, < 5 s."""
    t0 = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    assert err.startswith(f"ups: error: {starts}"), err
    assert elapsed < BUDGET_S, f"{elapsed:.2f} s"
    return err.strip()


# --- YAML: alias bombs, encoding, nesting, duplicate keys -----------------------------------------------------------


BAD_YAML = {
    # on main: past 90 s in `config validate` (the reference mapping walks every expanded key)
    "alias_bomb_under_model": ("model:\n  io: {latent_dim: 32}\n" + mapping_bomb(), "aliases expand to more than"),
    # on main: a MemoryError traceback after 67 s (eval.thresholds is kept as a note line, str() of the expansion)
    "alias_bomb_under_eval_thresholds": (
        "model: {io: {latent_dim: 32}}\neval:\n  thresholds:\n" + list_bomb(),
        "aliases",
    ),
    "nesting_20k_deep_flow": ("run:\n  notes: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested deeper than 64"),
    "nesting_deep_mapping": ("run: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n", "nested deeper than 64"),
    "nesting_deep_block": ("".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "1\n", "nested deeper"),
    "recursive_alias": ("run:\n  notes: &a [*a]\n", "recursive alias"),
    "alias_chain_deeper_than_the_limit": (
        "x:\n" + "".join(f"  a{i}: &a{i} [{f'*a{i - 1}' if i else 1}]\n" for i in range(100)),
        "once aliases are expanded",
    ),
    "duplicate_key": (
        "run:\n  seed: 1\n  device: cpu\n  seed: 2\n",
        "duplicate key 'seed' at line 4 (first at line 2)",
    ),
    "duplicate_section": ("training: {batch_size: 4}\nlatent: {dim: 16}\ntraining: {batch_size: 8}\n", "'training'"),
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
def test_bad_yaml_is_one_line(tmp_path, capsys, case):
    text, needle = BAD_YAML[case]
    path = tmp_path / "c.yaml"
    path.write_text(text)
    err = run_cli(capsys, ["config", "validate", str(path)], str(path))
    assert needle in err


def test_non_utf8_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_bytes("run:\n  notes: ['caf\xe9']\n".encode("latin-1"))
    err = run_cli(capsys, ["config", "validate", str(path)], str(path))
    assert "not UTF-8 text (byte 0xe9 at line 2)" in err


def test_include_of_a_bad_file_names_the_included_file(tmp_path, capsys):
    (tmp_path / "bomb.yaml").write_text("x:\n" + mapping_bomb())
    (tmp_path / "top.yaml").write_text("include: bomb.yaml\n")
    run_cli(capsys, ["config", "validate", str(tmp_path / "top.yaml")], str(tmp_path / "bomb.yaml"))


def test_alias_bomb_in_a_subprocess_prints_no_traceback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  io: {latent_dim: 32}\n" + mapping_bomb())
    cmd = [sys.executable, "-m", "ups", "config", "validate", str(path)]
    # the timeout covers interpreter start and the CLI's imports (seconds on a loaded machine), not the YAML
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"ups: error: {path}: aliases expand to more than")


# --- numbers the schema refuses -------------------------------------------------------------------------------------


BAD_NUMBERS = {
    "latent.dim": "latent: {dim: 1.0e+38}\n",
    "latent.tokens": "latent: {tokens: 1.0e+8}\n",
    "run.seed": "run: {seed: 1.0e+29}\n",
    "data.seed": "data: {seed: -1}\n",
    "stages.operator.optimizer.lr": "stages: {operator: {optimizer: {lr: 1.0e400}}}\n",  # a string; pydantic reads inf
    "stages.diff_residual.optimizer.lr": "stages: {diff_residual: {optimizer: {lr: .inf}}}\n",
    "training.grad_clip": "training: {grad_clip: .nan}\n",
    "training.batch_size": "training: {batch_size: 100000000}\n",
    "training.batch_tokens": "training: {batch_tokens: 2000000000}\nlatent: {tokens: 16}\n",
    "operator.pdet.depths.0": "operator: {pdet: {depths: [100000, 1, 1]}}\n",
    "baseline.width": "baseline: {width: 10000000000}\n",
    "latent.decoder.query_points": "latent: {decoder: {query_points: 1.0e+30}}\n",
    "eval.rollout_steps": "eval: {rollout_steps: 1.0e+12}\n",
    "run.save_every": "run: {save_every: 1.0e+20}\n",
    "eval.small.time_budget_s": "eval: {small: {time_budget_s: 1.0e+300}}\n",
}


@pytest.mark.parametrize("field", sorted(BAD_NUMBERS))
def test_out_of_range_number_is_one_line_naming_the_field(tmp_path, capsys, field):
    path = tmp_path / "c.yaml"
    path.write_text(BAD_NUMBERS[field])
    run_cli(capsys, ["config", "validate", str(path)], f"{path}: {field}: ")


def test_out_of_range_number_from_the_environment_names_the_variable(tmp_path, capsys, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("run: {seed: 1}\n")
    monkeypatch.setenv("UPS_RUN__SEED", "1.0e+29")
    err = run_cli(capsys, ["config", "validate", str(path)], f"{path}: run.seed: ")
    assert "(from UPS_RUN__SEED)" in err


def test_dry_run_refuses_the_number_it_used_to_overflow_on(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("latent: {dim: 1.0e+38}\n")
    argv = ["dry-run", str(path), "--estimate-only", "--cache-dir", str(tmp_path / "cache")]
    run_cli(capsys, argv, f"{path}: latent.dim: ")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("text", "starts"),
    [
        ("run: {seed: 1.0e+29}\n", "{path}: run.seed: "),
        ("stages: {operator: {optimizer: {lr: 1.0e400}}}\n", "{path}: stages.operator.optimizer.lr: "),
        ("run: {model: persistence}\n", "run.model 'persistence' has nothing to train"),  # valid config, untrainable
    ],
)
def test_train_writes_nothing_before_the_config_is_known_good(tmp_path, capsys, text, starts):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    argv = ["train", "--config", str(path), "--run-dir", str(run_dir), "--cache-dir", str(cache), "--no-progress"]
    run_cli(capsys, argv, starts.format(path=path))
    assert not run_dir.exists() and not cache.exists()


# --- what must keep working ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(CONFIGS) for p in CONFIGS.rglob("*.yaml") if p.parent.name != "suites"), ids=str
)
def test_every_config_in_the_repository_stays_valid(path):
    load_config(CONFIGS / path, env=False)


def test_anchors_aliases_and_merge_keys_still_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "stages:\n"
        "  operator: {optimizer: &opt {lr: 1.0e-3, weight_decay: 0.0}}\n"
        "  diff_residual: {optimizer: {<<: *opt, lr: 2.0e-4}}\n"
    )
    cfg = load_config(path, env=False)
    assert cfg.stages.operator.optimizer.lr == 1e-3
    assert cfg.stages.diff_residual.optimizer.lr == 2e-4 and cfg.stages.diff_residual.optimizer.weight_decay == 0.0

"""The command line turns bad input into one line on stderr and exit code 2, and evaluates the baseline end to end."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ups.cli import main
from ups.data.generate import generate_dataset

CONFIG = "run: {model: persistence}\ndata: {task: burgers1d, size: small}\neval: {splits: [test]}\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return generate_dataset("burgers1d", "small", tmp_path_factory.mktemp("data") / "b.zarr", seed=0)


def one_line_error(capsys, argv: list[str], needle: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ups: error:") and "\n" not in err, err
    assert needle in err, err


def test_config_with_wrong_type(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("training: {batch_size: twelve}\n")
    one_line_error(capsys, ["config", "validate", str(tmp_path / "c.yaml")], "training.batch_size")


def test_config_with_unknown_key(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("training: {batch_sise: 12}\n")
    one_line_error(capsys, ["config", "validate", str(tmp_path / "c.yaml")], "training.batch_sise")


def test_config_include_cycle(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    one_line_error(capsys, ["config", "validate", str(tmp_path / "a.yaml")], "cycle")


def test_missing_data_path(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(CONFIG)
    argv = ["evaluate", "--config", str(tmp_path / "c.yaml"), "--data", str(tmp_path / "nope.zarr")]
    one_line_error(capsys, [*argv, "--output-prefix", str(tmp_path / "x")], "nope.zarr")
    one_line_error(capsys, ["data", "validate", str(tmp_path / "nope.zarr")], "nope.zarr")


def test_store_with_missing_array(tmp_path, capsys, store):
    broken = tmp_path / "broken.zarr"
    shutil.copytree(store, broken)
    shutil.rmtree(broken / "test" / "fields" / "u")
    one_line_error(capsys, ["data", "validate", str(broken)], "test/fields/u")


def test_evaluate_persistence_writes_json_csv_and_leaderboard_row(tmp_path, capsys, store):
    (tmp_path / "c.yaml").write_text(CONFIG)
    prefix, db = tmp_path / "out" / "eval", tmp_path / "reports" / "results.duckdb"
    argv = ["evaluate", "--config", str(tmp_path / "c.yaml"), "--data", str(store), "--output-prefix", str(prefix)]
    assert main([*argv, "--leaderboard-run-id", "r1", "--db", str(db)]) == 0
    report = json.loads(prefix.with_suffix(".json").read_text())
    rows = {(r["metric"], r["horizon"]): r["value"] for r in report["metrics"]}
    # persistence repeats the input frame: its first-step error is the change of the field over one dt, > 0
    assert 0 < rows[("nrmse", 1)] < rows[("nrmse", 16)]
    assert rows[("conservation_gap", None)] < 1e-6  # a copied frame has the input's mass exactly
    with prefix.with_suffix(".csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(report["metrics"])
    assert (db.parent / "leaderboard.html").is_file()
    one_line_error(capsys, [*argv, "--leaderboard-run-id", "r1", "--db", str(db)], "already in")


def test_console_script_prints_no_traceback(tmp_path):
    (tmp_path / "c.yaml").write_text("latent: {dim: [1]}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ups", "config", "validate", str(tmp_path / "c.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and "latent.dim" in proc.stderr

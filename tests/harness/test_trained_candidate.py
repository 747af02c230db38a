"""The harness trains the candidate config inside its fixtures, judges it against a trained champion, and promotes.

A scratch project with a tiny latent-operator config on small burgers1d, two seeds (so ``min_sigma`` has a σ):
a weak config (learning rate 1e-6: effectively untrained) bootstraps the champion; a trained config then passes the
promotion rules and ``ups promote`` rewrites the snapshot with its checkpoint; the weak config, judged against that
champion, fails the nRMSE regression gate with one readable line.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ups.harness.champions import dir_sha256
from ups.store.results import ResultsStore

REPO = Path(__file__).resolve().parents[2]
SUITE = """\
suite: small
gates: gates/small.yaml
champions: champions/small
seeds: [0, 1]
ensemble_size: 2
candidate: {config: "configs/cand/{task}.yaml"}
tasks:
  burgers1d: {size: small, splits: [test], steps: 4, horizons: [1, 4]}
"""
GATES = """\
regression:
  - {metric: nrmse, rule: max_ratio, value: 1.1}
promotion:
  - {metric: nrmse, rule: min_delta, value: 0.01}
  - {metric: nrmse, rule: min_sigma, value: 1.0}
"""
CONFIG = """\
data: {task: burgers1d, size: small}
latent: {dim: 16, tokens: 16, decoder: {hidden_dim: 16, num_layers: 1, num_heads: 2, query_points: 16}}
operator: {pdet: {hidden_dim: 16, depths: [1], u_stages: [1], group_size: 8, num_heads: 2}}
diffusion: {enabled: false}
training:
  batch_size: 8
  horizon_curriculum: [2]
  early_stop_at: null
  loss: {inverse_encode: 0.0, inverse_decode: 0.0}
stages: {operator: {epochs: 1, optimizer: {lr: LR}}}
logging: {log_every: 1000}
"""


def run(project: Path, cache_dir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "-m", "small_eval", "-p", "no:cacheprovider"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(
        cmd + [f"--ups-cache-dir={cache_dir}", *args], cwd=project, capture_output=True, text=True, timeout=900, env=env
    )


def use_config(project: Path, lr: float) -> None:
    (project / "configs" / "cand" / "burgers1d.yaml").write_text(CONFIG.replace("LR", repr(lr)))


@pytest.mark.slow
def test_weak_champion_is_replaced_by_a_trained_one_which_then_fails_the_weak_config(tmp_path):
    project, cache = tmp_path / "project", tmp_path / "cache"
    (project / "configs" / "suites").mkdir(parents=True)
    (project / "configs" / "cand").mkdir()
    (project / "configs" / "suites" / "small_eval.yaml").write_text(SUITE)
    (project / "gates").mkdir()
    (project / "gates" / "small.yaml").write_text(GATES)
    (project / "benchmarks").mkdir()
    shutil.copy(REPO / "benchmarks" / "test_small_eval.py", project / "benchmarks" / "test_small_eval.py")
    (project / "pytest.ini").write_text("[pytest]\n")
    champion_file = project / "champions" / "small" / "burgers1d.json"

    use_config(project, 1e-6)  # weak: bootstraps the champion
    weak = run(project, cache, "--ups-promote")
    assert weak.returncode == 0 and "promoted burgers1d" in weak.stdout, weak.stdout + weak.stderr
    weak_champion = json.loads(champion_file.read_text())
    assert weak_champion["metrics"]["test"]["nrmse"]["n"] == 2

    use_config(project, 3e-3)  # trained: better by > 0.01 and > 1 sigma of the weak seeds
    better = run(project, cache)
    assert better.returncode == 0, better.stdout + better.stderr
    store = ResultsStore(project / "reports" / "results.duckdb")
    run_id = max((r for r in store.runs() if r["label"] == "candidate"), key=lambda r: r["created_at"])["run_id"]
    outcomes = {(g["metric"], g["rule"]): g["outcome"] for g in store.gate_results(run_id)}
    assert outcomes == {
        ("nrmse", "max_ratio"): "pass",
        ("nrmse", "min_delta"): "pass",
        ("nrmse", "min_sigma"): "pass",
    }, outcomes
    assert json.loads(champion_file.read_text())["run_id"] == weak_champion["run_id"]  # not promoted without asking

    promote = subprocess.run(
        [sys.executable, "-m", "ups.cli", "promote", run_id], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert promote.returncode == 0 and "promoted burgers1d" in promote.stdout, promote.stdout + promote.stderr
    champion = json.loads(champion_file.read_text())
    assert champion["run_id"] == run_id
    assert champion["metrics"]["test"]["nrmse"]["mean"] < weak_champion["metrics"]["test"]["nrmse"]["mean"] - 0.01
    assert sorted(champion["checkpoints"]) == ["0", "1"]  # every seed's checkpoint, paths beside the file
    for entry in champion["checkpoints"].values():
        ckpt = champion_file.parent / entry["path"]
        assert (ckpt / "state.json").is_file() and dir_sha256(ckpt) == entry["sha256"]
    assert "checkpoints" not in champion["env"] and str(project) not in champion_file.read_text()

    use_config(project, 1e-6)  # the weak config again, now judged against the trained champion
    worse = run(project, cache)
    assert worse.returncode == 1
    line = next(x for x in worse.stdout.splitlines() if "nrmse max_ratio(1.1) fail" in x)
    assert "candidate=" in line and "champion=" in line and "threshold=" in line

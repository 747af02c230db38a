"""End-to-end runs of the pytest plugin in a scratch project: bootstrap, gate, record, fail readably, exit 2."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ups.store.results import ResultsStore

REPO = Path(__file__).resolve().parents[2]
SUITE = """\
suite: small
gates: gates/small.yaml
champions: champions/small
seeds: [0]
candidate: {model: persistence}
tasks:
  burgers1d: {size: small, splits: [test], steps: 8, horizons: [1, 8]}
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ups_cache")


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory, cache_dir) -> tuple[Path, subprocess.CompletedProcess]:
    """A scratch project whose champion was created by a real `--ups-promote` run (done once per module)."""
    root = tmp_path_factory.mktemp("template")
    (root / "configs" / "suites").mkdir(parents=True)
    (root / "configs" / "suites" / "small_eval.yaml").write_text(SUITE)
    (root / "gates").mkdir()
    shutil.copy(REPO / "gates" / "small.yaml", root / "gates" / "small.yaml")
    (root / "benchmarks").mkdir()
    shutil.copy(REPO / "benchmarks" / "test_small_eval.py", root / "benchmarks" / "test_small_eval.py")
    (root / "pytest.ini").write_text("[pytest]\n")
    return root, run(root, cache_dir, "--ups-promote")


@pytest.fixture
def project(tmp_path: Path, bootstrapped) -> Path:
    """A fresh copy of the bootstrapped project: champion present, results store holding the bootstrap run."""
    shutil.copytree(bootstrapped[0], tmp_path, dirs_exist_ok=True)
    return tmp_path


def run(project: Path, cache_dir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "-m", "small_eval", "-p", "no:cacheprovider", "-p", "no:zarr"]
    cmd += [f"--ups-cache-dir={cache_dir}", *args]
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=600)


def set_mean(entry: dict, mean: float) -> None:
    """Scale a champion metric entry (mean, std, seeds, trajectories) consistently to ``mean``."""
    factor = mean / entry["mean"]
    entry["mean"], entry["std"] = mean, entry["std"] * factor
    entry["per_seed"] = {k: v * factor for k, v in entry["per_seed"].items()}
    entry["per_traj"] = {k: [x * factor for x in v] for k, v in entry.get("per_traj", {}).items()}


def table_counts(db: Path) -> dict[str, int]:
    store = ResultsStore(db)
    runs = store.runs()
    return {
        "runs": len(runs),
        "metrics": sum(len(store.metrics(r["run_id"])) for r in runs),
        "gate_results": sum(len(store.gate_results(r["run_id"])) for r in runs),
    }


def metric_rows(db: Path, run_id: str) -> list[tuple]:
    rows = ResultsStore(db).metrics(run_id)
    return sorted((r["task"], r["split"], r["seed"], r["metric"], r["horizon"] or 0, r["value"]) for r in rows)


@pytest.mark.slow
def test_bootstrap_then_gate_records_every_table(bootstrapped, project, cache_dir):
    first = bootstrapped[1]
    assert "promoted burgers1d" in first.stdout
    assert first.returncode == 0, first.stdout + first.stderr
    champion = json.loads((project / "champions" / "small" / "burgers1d.json").read_text())
    assert champion["candidate"] == {"model": "persistence"}
    assert champion["metrics"]["test"]["nrmse@8"]["n"] == 1

    second = run(project, cache_dir)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "burgers1d     regression nrmse" in second.stdout
    counts = table_counts(project / "reports" / "results.duckdb")
    # the bootstrap run, this run, and the champion it was judged against (on the leaderboard as its own row)
    assert counts["runs"] == 3 and counts["metrics"] > 0 and counts["gate_results"] > 0
    runs = {r["label"]: r for r in ResultsStore(project / "reports" / "results.duckdb").runs()}
    champion_rows = ResultsStore(project / "reports" / "results.duckdb").metrics(runs["champion"]["run_id"])
    stored = {(r["split"], r["metric"], r["horizon"]): r["value"] for r in champion_rows}
    assert stored["test", "nrmse", 8] == champion["metrics"]["test"]["nrmse@8"]["mean"]
    html = (project / "reports" / "leaderboard.html").read_text()
    assert 'src="http' not in html and "<script" in html
    assert (project / "reports" / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((project / "reports" / ".shards").iterdir())  # shards ingested and removed


@pytest.mark.slow
def test_parallel_and_serial_runs_record_the_same_metric_rows(project, cache_dir):
    serial = run(project, cache_dir)
    parallel = run(project, cache_dir, "-n", "2")
    assert serial.returncode == 0 and parallel.returncode == 0, parallel.stdout + parallel.stderr
    db = project / "reports" / "results.duckdb"
    runs = sorted((r for r in ResultsStore(db).runs() if r["label"] != "champion"), key=lambda r: r["created_at"])
    rows = [metric_rows(db, r["run_id"]) for r in runs[1:]]
    assert rows[0] == rows[1]
    keys = [r[:5] for r in rows[1]]
    assert len(keys) == len(set(keys))  # no doubled rows from the two workers
    assert "champion" in {r["label"] for r in ResultsStore(db).runs()}  # written by the controlling process of -n 2


@pytest.mark.slow
def test_unreachable_champion_fails_regression_gate_in_one_line(project, cache_dir):
    path = project / "champions" / "small" / "burgers1d.json"
    champion = json.loads(path.read_text())
    set_mean(champion["metrics"]["test"]["nrmse"], 1e-6)
    path.write_text(json.dumps(champion))
    result = run(project, cache_dir)
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("burgers1d nrmse max_ratio(1.2) fail")]
    assert lines, result.stdout
    assert "candidate=" in lines[0] and "champion=1e-06" in lines[0] and "threshold=1.2e-06" in lines[0]


def commit_all(project: Path, message: str) -> None:
    git = lambda *a: subprocess.run(["git", *a], cwd=project, check=True, capture_output=True)  # noqa: E731
    if not (project / ".git").is_dir():
        git("init", "-q", "-b", "main")
        (project / ".gitignore").write_text("reports/\n")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", message)


@pytest.mark.slow
def test_champion_ref_ignores_a_champion_edited_by_the_pull_request(project, cache_dir):
    commit_all(project, "base: suite, gates, champion")
    path = project / "champions" / "small" / "burgers1d.json"
    champion = json.loads(path.read_text())
    set_mean(champion["metrics"]["test"]["nrmse"], 1e-6)  # would fail the candidate if it were believed
    path.write_text(json.dumps(champion))
    assert run(project, cache_dir, "--ups-champion-ref=main").returncode == 0


@pytest.mark.slow
def test_a_pull_request_cannot_loosen_its_gates_or_move_its_suite_with_a_champion_ref(project, cache_dir):
    path = project / "champions" / "small" / "burgers1d.json"
    champion = json.loads(path.read_text())
    set_mean(champion["metrics"]["test"]["nrmse"], 1e-6)  # a base champion the candidate cannot reach
    path.write_text(json.dumps(champion))
    commit_all(project, "base")
    gates = project / "gates" / "small.yaml"
    gates.write_text(gates.read_text().replace("{metric: nrmse, rule: max_ratio, value: 1.20}", "{metric: nrmse, "
                                               "rule: max_ratio, value: 100}"))  # fmt: skip
    assert "value: 100" in gates.read_text()
    suite = project / "configs" / "suites" / "small_eval.yaml"
    suite.write_text(suite.read_text().replace("champions/small", "champions/small_pr"))
    assert run(project, cache_dir).returncode == 0  # without the ref: its own suite, no champion yet, gates skip
    judged = run(project, cache_dir, "--ups-champion-ref=main")
    assert judged.returncode == 1, judged.stdout + judged.stderr  # the base's suite, gates and champion
    assert "burgers1d nrmse max_ratio(1.2) fail" in judged.stdout


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("gates/small.yaml", "regression:\n  - {metric: nrmse, rule: max_ratoi, value: 1.1}\n"), "regression.0.rule"),
        (("configs/suites/small_eval.yaml", SUITE.replace("steps: 8", "steps: eight")), "tasks.burgers1d.steps"),
        (("configs/suites/small_eval.yaml", SUITE.replace("persistence", "persistance")), "unknown model"),
        (("champions/small/burgers1d.json", "{not json"), "invalid JSON"),
        (
            ("gates/small.yaml", "regression:\n  - {metric: nrmse, rule: max_ratio, value: 1.1, split: tset}\n"),
            "unknown split 'tset'",
        ),
        (
            ("gates/small.yaml", "regression:\n  - {metric: nrmse@99, rule: max_ratio, value: 1.1}\n"),
            "no horizon 99 for nrmse",
        ),
        (
            (
                "gates/small.yaml",
                "overrides:\n  burgers1d:\n    regression: [{metric: nrmsee, rule: max_ratio, value: 1}]\n",
            ),
            "unknown metric 'nrmsee'",
        ),
        (("gates/small.yaml", "overrides:\n  burgers1: {regression: []}\n"), "unknown task 'burgers1'"),
        (
            ("gates/small.yaml", "regression:\n  - {metric: nrmse, rule: max_ratio, value: .nan}\n"),
            "regression.0.value",
        ),
        (("gates/small.yaml", "regression:\n  - {metric: nrmse, rule: max_ratio, value: -1.0}\n"), "must be > 0"),
    ],
)
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_bad_input_exits_2_with_one_line(project, cache_dir, edit, needle, workers):
    """The same single ``ups:`` line serial and under xdist, before any worker starts (no torch import, no worker
    restarts): seconds, where a gate-file error used to restart the workers 8 times and take 30-52 s."""
    name, text = edit
    (project / name).parent.mkdir(parents=True, exist_ok=True)
    (project / name).write_text(text)
    started = time.perf_counter()
    result = run(project, cache_dir, *workers)
    elapsed = time.perf_counter() - started
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert [line for line in out.splitlines() if "ups:" in line] == [
        line for line in out.splitlines() if needle in line
    ]
    assert len([line for line in out.splitlines() if "ups:" in line]) == 1, out
    assert "Traceback" not in out and "crashed" not in out
    assert elapsed < 15, f"{elapsed:.1f} s"  # measured ~2 s on a loaded 2-core machine; 15 s only guards hangs


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d["metrics"]["test"]["nrmse@8"]["per_seed"].update({"0": "0.1"}), 'per_seed.0 is "0.1"'),
        (lambda d: d["metrics"]["test"]["nrmse@8"].update(mean=float("inf")), "not a finite number"),
        (lambda d: d.update(date=7), "date is 7, not a string"),
        (lambda d: d.pop("scoring_hash"), "missing key 'scoring_hash'"),
        (lambda d: d["metrics"].update(test=[]), "metrics must map splits"),
        (None, "champion ref 'no-such-ref'"),
    ],
    ids=["per-seed-string", "infinite-mean", "date-number", "missing-key", "metrics-list", "bad-champion-ref"],
)
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_bad_champion_file_or_ref_exits_2_with_one_line(project, cache_dir, edit, needle, workers):
    """A champion file edited by hand (a per_seed string used to end the run in an INTERNALERROR after every test
    passed) or a champion ref that names nothing: one ``ups:`` line, exit 2, nothing stored."""
    path = project / "champions" / "small" / "burgers1d.json"
    args = list(workers)
    if edit is None:
        args.append("--ups-champion-ref=no-such-ref")
    else:
        d = json.loads(path.read_text())
        edit(d)
        path.write_text(json.dumps(d))
    before = table_counts(project / "reports" / "results.duckdb")
    result = run(project, cache_dir, *args)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    lines = [line for line in out.splitlines() if "ups:" in line]
    assert len(lines) == 1 and needle in lines[0], out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert table_counts(project / "reports" / "results.duckdb") == before

"""Champion snapshots round-trip, reject malformed files, and are read from a git ref when asked."""

import json
import math
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ups.errors import UserInputError
from ups.harness.champions import Champion, load_champion, write_champion
from ups.harness.sources import Source
from ups.metrics.seeds import SeedStat


def make(nrmse=0.5):
    return Champion(
        suite="small",
        task="burgers1d",
        run_id="r1",
        commit="abc",
        config_hash="c",
        data_hash="d",
        scoring_hash="s",
        code_hash="e",
        date="2026-11-27",
        metrics={"test": {"nrmse": SeedStat.from_seeds({0: nrmse, 1: nrmse + 0.1})}},
    )


def test_round_trip(tmp_path):
    path = tmp_path / "burgers1d.json"
    write_champion(path, make())
    back = load_champion(path)
    assert back.stat("test", "nrmse").mean == pytest.approx(0.55)
    assert back.stat("test", "nrmse").per_seed == {0: 0.5, 1: 0.6}
    assert back == make()


def test_missing_file_means_no_champion(tmp_path):
    assert load_champion(tmp_path / "none.json") is None


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "invalid JSON"),
        ("[]", "expected a JSON object"),
        ('{"suite": "small"}', "format_version None, this ups reads 2"),
        ('{"format_version": 2, "suite": "small"}', "missing key 'task'"),
    ],
)
def test_malformed_champion_is_one_line(tmp_path, content, needle):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(UserInputError, match=needle):
        load_champion(path)


def test_non_numeric_mean_rejected(tmp_path):
    path = tmp_path / "c.json"
    d = make().as_dict()
    d["metrics"]["test"]["nrmse"]["mean"] = "low"
    path.write_text(json.dumps(d))
    with pytest.raises(UserInputError, match="metrics.test.nrmse.mean"):
        load_champion(path)


def test_ref_reads_base_branch_not_working_tree(tmp_path):
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    path = tmp_path / "champions" / "small" / "burgers1d.json"
    write_champion(path, make(nrmse=0.5))
    git("add", ".")
    git("commit", "-qm", "base champion")
    write_champion(path, make(nrmse=9.0))  # a pull request edits the champion it is judged against
    assert load_champion(path).stat("test", "nrmse").mean == pytest.approx(9.05)
    from_base = load_champion(path, source=Source(tmp_path, "main"))
    assert from_base.stat("test", "nrmse").mean == pytest.approx(0.55)
    assert load_champion(tmp_path / "champions" / "small" / "other.json", source=Source(tmp_path, "main")) is None
    with pytest.raises(UserInputError, match="champion ref"):
        load_champion(path, source=Source(tmp_path, "no-such-branch"))


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d["metrics"]["test"]["nrmse"].update(mean=float("inf")), "mean is Infinity, not a finite number"),
        (lambda d: d["metrics"]["test"]["nrmse"].update(mean=float("nan")), "mean is NaN, not a finite number"),
        (lambda d: d["metrics"]["test"]["nrmse"].update(mean=True), "mean is true, not a finite number"),
        (lambda d: d["metrics"]["test"]["nrmse"]["per_seed"].update({"0": "0.5"}), 'per_seed.0 is "0.5"'),
        (lambda d: d["metrics"]["test"]["nrmse"].update(std=-float("inf")), "std is -Infinity"),
        (lambda d: d["metrics"]["test"]["nrmse"].update(per_traj={"0": [0.1, None]}), "per_traj.0\\[1\\] is null"),
        (lambda d: d.update(checkpoints={"0": {"path": "/abs/x", "sha256": "0"}}), "must stay beside the file"),
        (lambda d: d.update(machine_ref_s="fast"), "machine_ref_s is"),
    ],
)
def test_champion_values_that_are_not_finite_numbers_are_load_errors(tmp_path, edit, needle):
    path = tmp_path / "c.json"
    d = make().as_dict()
    edit(d)
    path.write_text(json.dumps(d))
    with pytest.raises(UserInputError, match=needle) as err:
        load_champion(path)
    assert "\n" not in str(err.value)


def test_nan_seed_values_are_written_as_null_and_read_back():
    champ = make()
    stat = SeedStat.from_seeds({0: 0.5, 1: float("nan")}, {0: [0.4, 0.6], 1: [float("nan"), 1.0]})
    d = Champion(**{**champ.__dict__, "metrics": {"test": {"nrmse": stat}}}).as_dict()
    entry = d["metrics"]["test"]["nrmse"]
    assert entry["per_seed"] == {"0": 0.5, "1": None} and entry["per_traj"] == {"0": [0.4, 0.6]}
    json.dumps(d, allow_nan=False)  # strict JSON


REAL = json.loads((Path(__file__).resolve().parents[2] / "champions" / "small" / "burgers1d.json").read_text())


def _paths(node, prefix=()):
    """Every JSON path of ``node`` (objects and lists included)."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


PATHS = [p for p in _paths(REAL) if p]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(PATHS), value=JSON_VALUES)
def test_any_edit_of_a_real_champion_loads_or_is_one_line(tmp_path_factory, path, value):
    """Whatever a hand edit puts anywhere in a champion file, loading it gives a Champion or one UserInputError line
    (never another exception: a per_seed string used to end a run in an INTERNALERROR)."""
    d = json.loads(json.dumps(REAL))
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    file = tmp_path_factory.mktemp("fuzz") / "c.json"
    file.write_text(json.dumps(d))
    try:
        champ = load_champion(file)
    except UserInputError as err:
        assert "\n" not in str(err)
        return
    for metrics in champ.metrics.values():  # what a gate reads: finite numbers or None
        for stat in metrics.values():
            assert stat.mean is None or math.isfinite(stat.mean)


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b'{"a": "\xff"}', "not UTF-8 text"), (b"[" * 100_000 + b"]" * 100_000, "nested too deeply")],
)
def test_undecodable_champion_files_are_one_line(tmp_path, content, needle):
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(UserInputError, match=needle):
        load_champion(path)

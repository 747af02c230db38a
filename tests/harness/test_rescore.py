"""Like with like: a champion scored on other data or by other scoring code is re-scored from its checkpoints (sha256
verified first), or marked not comparable when it has none; it is never compared silently."""

import json
from dataclasses import replace

import pytest

import ups.harness.runner as runner_module
from ups.errors import UserInputError
from ups.harness.champions import load_champion, write_champion
from ups.harness.gates import Gate
from ups.harness.promotion import promote
from ups.inference import load_surrogate
from ups.metrics.seeds import stats_from_rows

from .conftest import TINY_CANDIDATE

NRMSE = Gate(metric="nrmse", rule="max_ratio", value=1.1)


FAST = TINY_CANDIDATE + "training: {time_budget_s: 1.0}\nstages: {operator: {epochs: 1}}\n"


@pytest.fixture
def promoted(tiny_runner, tmp_path):
    """A runner whose trained tiny candidate was promoted to champion (both seeds' checkpoints beside the JSON)."""
    (tmp_path / "configs" / "cand" / "burgers1d.yaml").write_text(FAST)  # about a second of training per seed
    (tmp_path / "gates").mkdir()
    (tmp_path / "gates" / "small.yaml").write_text("regression: [{metric: nrmse, rule: max_ratio, value: 1.1}]\n")
    runner = tiny_runner()
    evaluation = runner.evaluation("burgers1d")
    rows = [
        {"task": "burgers1d", "split": r.split, "seed": r.seed, "metric": v.metric, "horizon": v.horizon,
         "value": v.value, "per_traj": v.per_traj}
        for r in evaluation.results
        for v in r.values
    ]  # fmt: skip
    data_hash = runner.dataset("burgers1d").content_sha256
    scoring = {"data_hash": data_hash, "scoring_hash": runner.scoring_hash("burgers1d")}
    run_row = {"run_id": "r0", "commit": "c", "config_hash": "h", "code_hash": "k", "created_at": "2026-12-01",
               "env": {"scoring": {"burgers1d": scoring}}}  # fmt: skip
    promote(
        runner.champion_path("burgers1d"),
        suite="small",
        task="burgers1d",
        run_row=run_row,
        stats=stats_from_rows(r for r in rows if r["task"] == "burgers1d"),
        candidate={},
        checkpoints=runner.checkpoints("burgers1d"),
    )
    return runner


def test_same_data_and_code_uses_the_stored_numbers(promoted, tiny_runner):
    fresh = tiny_runner()
    champion = fresh.champion("burgers1d")
    assert champion.rescored is None and champion.stale is None
    assert champion.metrics == load_champion(fresh.champion_path("burgers1d")).metrics
    result = fresh.check("burgers1d", "regression", NRMSE)
    assert result.outcome == "pass" and result.interval.low == result.interval.high == 1.0  # itself, paired


def test_changed_data_rescores_the_champion_from_its_checkpoints(promoted, tiny_runner):
    stored = load_champion(promoted.champion_path("burgers1d"))
    other_data = tiny_runner(data_seed=1)  # the suite now generates other trajectories
    champion = other_data.champion("burgers1d")
    assert champion.rescored and "data changed" in champion.rescored
    assert champion.data_hash == other_data.dataset("burgers1d").content_sha256 != stored.data_hash
    # the re-scored numbers are the champion's own weights scored on the new data, seed by seed
    for seed in (0, 1):
        model = load_surrogate(promoted.champion_path("burgers1d").parent / stored.checkpoints[seed]["path"])
        direct = other_data._score(model, "burgers1d", seed, "test")
        nrmse = next(v.value for v in direct.values if v.name == "nrmse")
        assert champion.stat("test", "nrmse").per_seed[seed] == pytest.approx(nrmse, rel=1e-6)
        assert nrmse != pytest.approx(stored.stat("test", "nrmse").per_seed[seed], rel=1e-3)
    result = other_data.check("burgers1d", "regression", NRMSE)
    assert "champion re-scored from its 2 checkpoint(s): data changed" in result.detail


def test_changed_metric_code_rescores_the_champion(promoted, tiny_runner, monkeypatch):
    from ups.metrics import METRICS

    nrmse = METRICS.get("nrmse")
    twice = replace(nrmse, fn=lambda p, y, **kw: 2 * nrmse.fn(p, y, **kw), family=None)
    monkeypatch.setitem(METRICS._items, "nrmse", twice)  # a "fix" to the metric doubles every nRMSE
    monkeypatch.setattr(runner_module, "scoring_hash", lambda protocol: "changed-scoring-code")
    stored = load_champion(promoted.champion_path("burgers1d")).stat("test", "nrmse")
    fresh = tiny_runner()
    champion = fresh.champion("burgers1d")
    assert "scoring code changed" in champion.rescored
    assert champion.stat("test", "nrmse").mean == pytest.approx(2 * stored.mean, rel=1e-6)
    # the retrained candidate is scored by the new code too: like with like, it passes against its own weights
    result = fresh.check("burgers1d", "regression", NRMSE)
    assert result.outcome == "pass" and result.champion == pytest.approx(2 * stored.mean, rel=1e-6)


def test_a_champion_without_checkpoints_is_inconclusive_with_the_reason(promoted, tiny_runner):
    path = promoted.champion_path("burgers1d")
    write_champion(path, replace(load_champion(path), checkpoints={}))
    result = tiny_runner(data_seed=1).check("burgers1d", "regression", NRMSE)
    assert result.outcome == "inconclusive"
    assert "data changed since it was scored, and it has no checkpoint to re-score" in result.detail


def test_a_flipped_byte_in_a_champion_checkpoint_is_one_line_naming_the_file(promoted, tiny_runner):
    path = promoted.champion_path("burgers1d")
    entry = json.loads(path.read_text())["checkpoints"]["1"]
    weights = path.parent / entry["path"] / "tensors.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(UserInputError, match=r"champion checkpoint .*burgers1d\.ckpt/s1: sha256 .* does not match"):
        tiny_runner(data_seed=1).champion("burgers1d")

"""Metric registry and scoreboard: names, directions, applicability, horizons, metric-name parsing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.data.spec import ConservedQuantity, TaskSpec
from ups.errors import UserInputError
from ups.metrics import (
    METRICS,
    MetricDef,
    MetricValue,
    compute_scoreboard,
    conservation_gap,
    format_metric_name,
    nrmse,
    nrmse_at,
    parse_metric_name,
    register_metric,
)

PERIODIC = TaskSpec(task="toy", fields=("u",), grid_shape=(8,), domain=(1.0,), dt=0.1)
CONSERVING = TaskSpec(
    task="toy_mass",
    fields=("rho", "v"),
    grid_shape=(4, 4),
    domain=(2.0, 1.0),
    dt=0.05,
    conserved=(ConservedQuantity("mass", "rho"),),
)


def rollout(spec: TaskSpec, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(3, steps, len(spec.fields), *spec.grid_shape)) + 2.0
    return target + 0.1 * rng.normal(size=target.shape), target


def test_registered_metrics_with_directions_and_kinds():
    assert {"nrmse", "rel_l2", "conservation_gap", "rollout_horizon"} <= set(METRICS.names())
    expected = {
        "nrmse": ("lower", "accuracy"),
        "rel_l2": ("lower", "accuracy"),
        "conservation_gap": ("lower", "physics"),
        "rollout_horizon": ("higher", "reliability"),
    }
    for name, (direction, kind) in expected.items():
        d = METRICS.get(name)
        assert (d.name, d.direction, d.kind) == (name, direction, kind)


def test_unknown_metric_lists_the_valid_ones():
    with pytest.raises(UserInputError, match=r"unknown metric 'nrsme'; valid: .*conservation_gap, nrmse, rel_l2"):
        METRICS.get("nrsme")


def test_duplicate_registration_is_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register_metric(MetricDef("nrmse", nrmse, "lower", "accuracy"))


def test_metric_def_rejects_bad_direction_and_kind():
    with pytest.raises(ValueError, match="direction"):
        MetricDef("x", nrmse, "down", "accuracy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        MetricDef("x", nrmse, "lower", "speed")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_returns_a_float_or_none_and_agrees_between_torch_and_numpy(name):
    d = METRICS.get(name)
    for spec in (PERIODIC, CONSERVING):
        pred, target = rollout(spec, steps=5)
        value = d.compute(pred, target, spec)
        assert value is None or isinstance(value, float)
        assert value == d.compute(torch.from_numpy(pred), torch.from_numpy(target), spec)
        assert (value is None) == (not d.applies(spec))


def test_scoreboard_rows_and_horizons_up_to_t():
    pred, target = rollout(PERIODIC, steps=8)
    rows = compute_scoreboard(pred, target, PERIODIC)
    assert all(isinstance(r, MetricValue) for r in rows)
    whole = {r.metric: r.value for r in rows if r.horizon is None}
    assert set(whole) == set(METRICS.names())
    assert whole["nrmse"] == nrmse(pred, target)
    per_step = [(r.metric, r.horizon, r.value) for r in rows if r.horizon is not None]
    assert per_step == [("nrmse", 1, nrmse_at(pred, target, 1)), ("nrmse", 4, nrmse_at(pred, target, 4))]
    assert "nrmse@16" not in {r.name for r in rows}


def test_scoreboard_gives_none_for_conservation_gap_without_conserved_quantities():
    pred, target = rollout(PERIODIC, steps=3)
    gap = [r for r in compute_scoreboard(pred, target, PERIODIC) if r.metric == "conservation_gap"]
    assert gap == [MetricValue("conservation_gap", None, None)]


def test_scoreboard_passes_conserved_channels_and_cell_volume_from_the_spec():
    pred, target = rollout(CONSERVING, steps=16)
    rows = {r.name: r.value for r in compute_scoreboard(pred, target, CONSERVING, horizons=(16, 1, 16))}
    expected = conservation_gap(pred, target, conserved_channels=(0,), cell_volume=2.0 / 4 * 1.0 / 4)
    assert rows["conservation_gap"] == expected
    assert [n for n in rows if "@" in n] == ["nrmse@16", "nrmse@1"]


def test_rollout_horizon_does_not_apply_to_steady_tasks():
    steady = TaskSpec(task="darcy", fields=("u",), grid_shape=(8,), domain=(1.0,), dt=1.0, steady=True)
    pred, target = rollout(steady, steps=1)
    rows = {r.name: r.value for r in compute_scoreboard(pred, target, steady)}
    assert rows["rollout_horizon"] is None and rows["nrmse"] is not None


def test_scoreboard_rejects_arrays_that_disagree_with_the_spec():
    pred, target = rollout(CONSERVING, steps=2)
    with pytest.raises(ValueError, match="do not match task"):
        compute_scoreboard(pred, target, PERIODIC)
    with pytest.raises(ValueError, match="1-based"):
        compute_scoreboard(pred, target, CONSERVING, horizons=(0,))


@pytest.mark.parametrize(("text", "parsed"), [("nrmse@16", ("nrmse", 16)), ("rel_l2", ("rel_l2", None))])
def test_metric_names_parse_and_format_round_trip(text, parsed):
    assert parse_metric_name(text) == parsed
    assert format_metric_name(*parsed) == text


@pytest.mark.parametrize("text", ["nrmse@0", "nrmse@x", "@4", "", "nrmse@4@5", "nrmse@-1"])
def test_bad_metric_names_are_one_line_user_errors(text):
    with pytest.raises(UserInputError, match="bad metric name"):
        parse_metric_name(text)

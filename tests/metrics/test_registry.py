"""Metric registry and scoreboard: names, directions, applicability, families, chunking, horizons, name parsing."""

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
    ece,
    format_metric_name,
    nrmse,
    nrmse_at,
    parse_metric_name,
    pearson_at,
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
# every array metric applies: conserved density, incompressible periodic velocity, shocks in the density
FLOW = TaskSpec(
    task="toy_flow",
    fields=("rho", "u", "v"),
    grid_shape=(16, 12),
    domain=(1.0, 0.75),
    dt=0.1,
    conserved=(ConservedQuantity("mass", "rho"),),
    velocity=("u", "v"),
    incompressible=True,
    shock_field="rho",
)
WALLED = TaskSpec(
    task="toy_walls",
    fields=("u", "v", "a"),
    grid_shape=(10, 8),
    domain=(1.0, 1.0),
    dt=0.1,
    bc="dirichlet",
    velocity=("u", "v"),
    incompressible=True,
    bc_fields=("u", "v"),
)
SPECS = [PERIODIC, CONSERVING, FLOW, WALLED]

EXPECTED = {  # name: (direction, kind)
    "nrmse": ("lower", "accuracy"),
    "rel_l2": ("lower", "accuracy"),
    "rmse": ("lower", "accuracy"),
    "max_err": ("lower", "accuracy"),
    "psnr": ("higher", "accuracy"),
    "crmse": ("lower", "accuracy"),
    "brmse": ("lower", "accuracy"),
    "frmse_low": ("lower", "accuracy"),
    "frmse_mid": ("lower", "accuracy"),
    "frmse_high": ("lower", "accuracy"),
    "conservation_gap": ("lower", "physics"),
    "bc_violation": ("lower", "physics"),
    "div_free_error": ("lower", "physics"),
    "spectral_error": ("lower", "physics"),
    "shock_iou": ("higher", "physics"),
    "shock_precision": ("higher", "physics"),
    "ece": ("lower", "reliability"),
    "crps": ("lower", "reliability"),
    "spread_skill": ("lower", "reliability"),
    "rollout_horizon": ("higher", "reliability"),
    "pearson": ("higher", "reliability"),
    "wall_clock_s_per_rollout": ("lower", "efficiency"),
    "wall_clock_norm": ("lower", "efficiency"),
    "peak_mem_mb": ("lower", "efficiency"),
    "params_m": ("lower", "efficiency"),
    "flops_per_step": ("lower", "efficiency"),
    "joules_per_step": ("lower", "efficiency"),
}
ARRAY_METRICS = [n for n in METRICS.names() if not METRICS.get(n).measured]


def rollout(spec: TaskSpec, steps: int, seed: int = 0, batch: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(batch, steps, len(spec.fields), *spec.grid_shape)) + 2.0
    return target + 0.1 * rng.normal(size=target.shape), target


def ensemble(target: np.ndarray, members: int = 4, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return target[None] + 0.1 * rng.normal(size=(members, *target.shape))


def test_every_design_metric_is_registered_with_its_direction_and_kind():
    assert set(METRICS.names()) == set(EXPECTED)
    for name, (direction, kind) in EXPECTED.items():
        d = METRICS.get(name)
        assert (d.name, d.direction, d.kind) == (name, direction, kind)


def test_ensemble_and_measured_flags():
    assert {n for n in METRICS.names() if METRICS.get(n).needs_samples} == {"ece", "crps", "spread_skill"}
    assert {n for n in METRICS.names() if METRICS.get(n).measured} == {
        n for n, (_, kind) in EXPECTED.items() if kind == "efficiency"
    }


def test_unknown_metric_lists_the_valid_ones():
    with pytest.raises(UserInputError, match=r"unknown metric 'nrsme'; valid: .*conservation_gap, .*nrmse, .*rel_l2"):
        METRICS.get("nrsme")


def test_duplicate_registration_is_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register_metric(MetricDef("nrmse", nrmse, "lower", "accuracy"))


def test_metric_def_rejects_bad_direction_kind_and_inconsistent_flags():
    with pytest.raises(ValueError, match="direction"):
        MetricDef("x", nrmse, "down", "accuracy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        MetricDef("x", nrmse, "lower", "speed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="measured metric has no fn"):
        MetricDef("x", nrmse, "lower", "efficiency", measured=True)
    with pytest.raises(ValueError, match="measured metric has no fn"):
        MetricDef("x", None, "lower", "efficiency")


def test_measured_metric_cannot_be_computed_from_arrays():
    pred, target = rollout(PERIODIC, steps=2)
    with pytest.raises(ValueError, match="measured by the evaluator"):
        METRICS.get("wall_clock_s_per_rollout").compute(pred, target, PERIODIC)


@pytest.mark.parametrize("name", ARRAY_METRICS)
def test_every_metric_returns_a_float_or_none_and_agrees_between_torch_and_numpy(name):
    d = METRICS.get(name)
    for spec in SPECS:
        pred, target = rollout(spec, steps=5)
        samples = ensemble(target)
        value = d.compute(pred, target, spec, samples=samples)
        assert value is None or isinstance(value, float)
        torch_value = d.compute(
            torch.from_numpy(pred), torch.from_numpy(target), spec, samples=torch.from_numpy(samples)
        )
        assert value == torch_value or (np.isnan(value) and np.isnan(torch_value))
        assert (value is None) == (not d.applies(spec))


@pytest.mark.parametrize("name", [n for n in ARRAY_METRICS if METRICS.get(n).family is not None])
def test_family_values_equal_the_metric_computed_alone(name):
    d = METRICS.get(name)
    for spec in SPECS:
        if not (d.applies(spec) and d.uses_family(spec)):
            continue
        pred, target = rollout(spec, steps=5)
        shared = d.family.fn(pred, target, **d.family.context(spec))[name]
        assert shared == pytest.approx(d.compute(pred, target, spec), rel=1e-12, abs=1e-14)


def test_scoreboard_rows_and_horizons_up_to_t():
    pred, target = rollout(PERIODIC, steps=8)
    rows = compute_scoreboard(pred, target, PERIODIC)
    assert all(isinstance(r, MetricValue) for r in rows)
    whole = {r.metric: r.value for r in rows if r.horizon is None}
    assert set(whole) == set(ARRAY_METRICS)  # measured efficiency metrics: the evaluator adds those rows
    assert whole["nrmse"] == nrmse(pred, target)
    per_step = [(r.metric, r.horizon, r.value) for r in rows if r.horizon is not None]
    assert per_step == [
        ("nrmse", 1, nrmse_at(pred, target, 1)),
        ("nrmse", 4, nrmse_at(pred, target, 4)),
        ("pearson", 1, pearson_at(pred, target, 1)),
        ("pearson", 4, pearson_at(pred, target, 4)),
    ]
    assert "nrmse@16" not in {r.name for r in rows}


def test_scoreboard_without_samples_gives_none_for_ensemble_metrics_and_uses_them_when_given():
    pred, target = rollout(FLOW, steps=3)
    rows = {r.name: r.value for r in compute_scoreboard(pred, target, FLOW)}
    assert rows["ece"] is None and rows["crps"] is None and rows["spread_skill"] is None
    samples = ensemble(target)
    rows = {r.name: r.value for r in compute_scoreboard(pred, target, FLOW, samples=samples)}
    assert rows["ece"] == ece(samples, target)
    assert rows["crps"] > 0 and rows["spread_skill"] >= 0


def test_scoreboard_rejects_misshaped_samples():
    pred, target = rollout(FLOW, steps=3)
    with pytest.raises(ValueError, match="samples must be"):
        compute_scoreboard(pred, target, FLOW, samples=target)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.task)
def test_per_trajectory_and_threaded_scoreboard_equals_whole_array_metrics(spec):
    # 7 trajectories scored one at a time: their mean equals the whole-array value, and each is the metric of its
    # own trajectory alone
    pred, target = rollout(spec, steps=4, batch=7)
    chunked = compute_scoreboard(pred, target, spec, threads=2)
    serial = compute_scoreboard(pred, target, spec, threads=1)
    assert chunked == serial  # the thread count does not change a bit
    for row in chunked:
        if row.per_traj is not None:
            assert len(row.per_traj) == 7 and row.value == pytest.approx(np.mean(row.per_traj), rel=1e-14)
            d = METRICS.get(row.metric)
            third = pred[2:3], target[2:3]
            alone = d.compute(*third, spec) if row.horizon is None else d.compute_at(*third, spec, row.horizon)
            assert row.per_traj[2] == pytest.approx(alone, rel=1e-12, abs=1e-13), row.name
        d = METRICS.get(row.metric)
        alone = d.compute(pred, target, spec) if row.horizon is None else d.compute_at(pred, target, spec, row.horizon)
        if alone is None:
            assert row.value is None
        else:
            assert row.value == pytest.approx(alone, rel=1e-12, abs=1e-13), row.name


def test_thread_count_defaults_to_the_environment_override(monkeypatch):
    from ups.metrics.scoreboard import MAX_THREADS, default_threads

    monkeypatch.setenv("UPS_METRIC_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("UPS_METRIC_THREADS")
    assert 1 <= default_threads() <= MAX_THREADS


def test_scoreboard_gives_none_for_metrics_that_do_not_apply():
    pred, target = rollout(PERIODIC, steps=3)
    rows = {r.name: r.value for r in compute_scoreboard(pred, target, PERIODIC)}
    for name in ("conservation_gap", "bc_violation", "div_free_error", "shock_iou", "shock_precision"):
        assert rows[name] is None, name
    assert rows["nrmse"] is not None and rows["spectral_error"] is not None


def test_walled_task_scores_bc_violation_on_its_bc_fields_only():
    pred, target = rollout(WALLED, steps=3)
    pred[:, :, 2] = 1e6  # the coefficient field 'a' is not subject to the wall condition
    rows = {r.name: r.value for r in compute_scoreboard(pred, target, WALLED)}
    assert 0 < rows["bc_violation"] < 10
    assert rows["div_free_error"] is not None


def test_scoreboard_passes_conserved_channels_and_cell_volume_from_the_spec():
    pred, target = rollout(CONSERVING, steps=16)
    rows = {r.name: r.value for r in compute_scoreboard(pred, target, CONSERVING, horizons=(16, 1, 16))}
    expected = conservation_gap(pred, target, conserved_channels=(0,), cell_volume=2.0 / 4 * 1.0 / 4)
    assert rows["conservation_gap"] == expected
    assert [n for n in rows if "@" in n] == ["nrmse@16", "nrmse@1", "pearson@16", "pearson@1"]


def test_rollout_horizon_and_pearson_do_not_apply_to_steady_tasks():
    steady = TaskSpec(task="darcy", fields=("u",), grid_shape=(8,), domain=(1.0,), dt=1.0, steady=True)
    pred, target = rollout(steady, steps=1)
    rows = {r.name: r.value for r in compute_scoreboard(pred, target, steady)}
    assert rows["rollout_horizon"] is None and rows["pearson"] is None and rows["pearson@1"] is None
    assert rows["nrmse"] is not None


def test_scoreboard_rejects_arrays_that_disagree_with_the_spec():
    pred, target = rollout(CONSERVING, steps=2)
    with pytest.raises(ValueError, match="do not match task"):
        compute_scoreboard(pred, target, PERIODIC)
    with pytest.raises(ValueError, match="1-based"):
        compute_scoreboard(pred, target, CONSERVING, horizons=(0,))
    with pytest.raises(ValueError, match="shapes differ"):
        compute_scoreboard(pred[:1], target, CONSERVING)


@pytest.mark.parametrize(("text", "parsed"), [("nrmse@16", ("nrmse", 16)), ("rel_l2", ("rel_l2", None))])
def test_metric_names_parse_and_format_round_trip(text, parsed):
    assert parse_metric_name(text) == parsed
    assert format_metric_name(*parsed) == text


@pytest.mark.parametrize("text", ["nrmse@0", "nrmse@x", "@4", "", "nrmse@4@5", "nrmse@-1"])
def test_bad_metric_names_are_one_line_user_errors(text):
    with pytest.raises(UserInputError, match="bad metric name"):
        parse_metric_name(text)

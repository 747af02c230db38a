"""Guard decisions: NaN/Inf, physics spikes against the reference gap, early stop against persistence − 1σ."""

from __future__ import annotations

import math

import pytest

from ups.training.guards import (
    SPIKE_FLOOR,
    Baseline,
    GuardState,
    TrainingAborted,
    check_finite_losses,
    check_validation,
    should_early_stop,
)

BASE = Baseline(proxy=0.6, sigma=0.1, conservation_gap=0.002, steps=16)


def test_non_finite_loss_names_the_term():
    check_finite_losses({"loss": 1.0}, "operator step 3")
    with pytest.raises(TrainingAborted, match=r"operator step 3: non-finite loss \(rollout=nan\)"):
        check_finite_losses({"loss": 1.0, "rollout": math.nan}, "operator step 3")


def test_spike_reference_is_max_of_persistence_floor_and_best_so_far():
    state = GuardState()
    check_validation({"val_conservation_gap": 0.5}, state, BASE, 10.0, "s")  # the first one only sets the best
    check_validation({"val_conservation_gap": 0.05}, state, BASE, 10.0, "s")
    assert state.best_gap == 0.05
    check_validation({"val_conservation_gap": 0.45}, state, BASE, 10.0, "s")  # 9× the best: not a spike
    with pytest.raises(TrainingAborted, match="physics spike: val conservation gap 0.6 > 10 × reference 0.05"):
        check_validation({"val_conservation_gap": 0.6}, state, BASE, 10.0, "s")
    floor = GuardState(best_gap=1e-6)  # a tiny best never lowers the reference below the floor
    check_validation({"val_conservation_gap": 9 * SPIKE_FLOOR}, floor, BASE, 10.0, "s")
    check_validation({"val_conservation_gap": 1.0}, GuardState(best_gap=0.01), BASE, None, "s")  # guard off


def test_non_finite_validation_aborts():
    with pytest.raises(TrainingAborted, match="non-finite validation metric"):
        check_validation({"val_nrmse": math.inf}, GuardState(), BASE, 10.0, "s")


def test_early_stop_needs_one_sigma_below_persistence():
    assert should_early_stop(GuardState(best_proxy=0.49), BASE)[0] is False
    stop, reason = should_early_stop(GuardState(best_proxy=0.55), BASE)
    assert stop and "persistence 0.6 - 1σ (0.1) = 0.5" in reason

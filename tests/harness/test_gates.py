"""Gate rules decide pass/fail/inconclusive/not_applicable from hand-checkable numbers."""

import numpy as np
import pytest

from ups.errors import UserInputError
from ups.harness.gates import Gate, evaluate_gate, load_gate_file
from ups.metrics.seeds import SeedStat


def stat(*values):
    return SeedStat.from_seeds(dict(enumerate(values)))


def gate(metric="nrmse", rule="max_ratio", value=1.1, **kw):
    return Gate(metric=metric, rule=rule, value=value, **kw)


@pytest.mark.parametrize(
    ("rule", "value", "cand", "champ", "outcome", "threshold"),
    [
        ("max_ratio", 1.1, 0.21, 0.2, "pass", 0.22),
        ("max_ratio", 1.1, 0.23, 0.2, "fail", 0.22),
        ("min_delta", 0.01, 0.18, 0.2, "pass", 0.19),
        ("min_delta", 0.01, 0.195, 0.2, "fail", 0.19),
        ("min_rel_improvement", 0.1, 0.17, 0.2, "pass", 0.18),
        ("min_rel_improvement", 0.1, 0.19, 0.2, "fail", 0.18),
        ("max_abs", 0.5, 0.4, 9.0, "pass", 0.5),
        ("max_abs", 0.5, 0.6, 0.1, "fail", 0.5),
        ("min_abs", 0.5, 0.6, 0.1, "pass", 0.5),
    ],
)
def test_rules_on_single_seed_values(rule, value, cand, champ, outcome, threshold):
    result = evaluate_gate(gate(rule=rule, value=value), stat(cand), stat(champ))
    assert result.outcome == outcome
    assert result.threshold == pytest.approx(threshold)
    assert (result.candidate, result.champion) == (cand, champ)


def test_higher_is_better_metric_is_mirrored():
    # rollout_horizon: more steps is better, so max_ratio 1.5 means candidate >= champion / 1.5
    g = gate(metric="rollout_horizon", rule="max_ratio", value=1.5)
    assert evaluate_gate(g, stat(8.0), stat(9.0)).outcome == "pass"
    result = evaluate_gate(g, stat(5.0), stat(9.0))
    assert result.outcome == "fail"
    assert result.threshold == pytest.approx(6.0)
    d = gate(metric="rollout_horizon", rule="min_delta", value=1.0)
    assert evaluate_gate(d, stat(10.0), stat(9.0)).outcome == "pass"
    assert evaluate_gate(d, stat(9.5), stat(9.0)).outcome == "fail"


def seeds(values, first=0):
    return SeedStat.from_seeds({first + i: v for i, v in enumerate(values)})


def test_min_sigma_uses_champion_seed_std():
    champ = stat(1.0, 1.2, 1.4)  # mean 1.2, sample std 0.2 (ddof=1)
    assert champ.std == pytest.approx(0.2)
    g = gate(rule="min_sigma", value=1.0)
    # paired seeds, the candidate better by 0.3 = 1.5 sigma on every seed: every replicate says 1.5
    result = evaluate_gate(g, stat(0.7, 0.9, 1.1), champ)
    assert result.outcome == "pass"
    assert (result.interval.low, result.interval.high) == pytest.approx((1.5, 1.5))
    assert evaluate_gate(g, stat(0.9, 1.1, 1.3), champ).outcome == "fail"  # 0.5 sigma on every seed
    # other seeds: the champion's seed spread is in the interval, 1.25 sigma on average is not shown beyond it
    assert evaluate_gate(g, seeds([0.95, 0.95, 0.95], first=10), champ).outcome == "inconclusive"
    assert evaluate_gate(g, stat(0.5), stat(1.0)).outcome == "inconclusive"  # one champion seed: sigma unknown


def test_paired_seeds_see_a_consistent_shift_that_unpaired_seeds_cannot():
    g = gate(rule="max_ratio", value=1.0)
    noisy_champ = stat(1.0, 1.2, 0.8)
    worse_by_005 = [1.05, 1.25, 0.85]
    paired = evaluate_gate(g, stat(*worse_by_005), noisy_champ)
    assert paired.outcome == "fail"  # every seed worse: ratio in [1.05/1.2, ...] all above 1
    assert paired.interval.low > 1.0
    assert evaluate_gate(g, seeds(worse_by_005, first=3), noisy_champ).outcome == "inconclusive"
    assert evaluate_gate(g, seeds([2.0, 2.0, 2.0], first=3), noisy_champ).outcome == "fail"
    assert evaluate_gate(g, stat(1.05, 1.05, 1.05), stat(1.0, 1.0, 1.0)).outcome == "fail"


def test_two_seed_interval_is_the_hand_computed_one():
    # a mean of 2 draws from {0.2, 0.4}: 0.2 (p 1/4), 0.3 (p 1/2), 0.4 (p 1/4); the 90% interval is [0.2, 0.4], so
    # against a one-seed champion 0.25 the ratio interval is [0.8, 1.6]
    result = evaluate_gate(gate(value=1.1), seeds([0.2, 0.4], first=5), stat(0.25))
    assert result.interval.estimate == pytest.approx(1.2)
    assert (result.interval.low, result.interval.high) == pytest.approx((0.8, 1.6))
    assert result.outcome == "inconclusive"
    assert result.p_better == pytest.approx(0.5)  # one of the two candidate runs beats the champion's


def test_trajectories_are_paired_so_a_uniform_5_percent_regression_is_seen_exactly():
    rng = np.random.default_rng(0)
    champ_traj = {s: rng.lognormal(0, 1, size=16) for s in range(3)}  # trajectories of very different difficulty
    champ = SeedStat.from_seeds({s: v.mean() for s, v in champ_traj.items()}, champ_traj)
    cand_traj = {s: 1.05 * v for s, v in champ_traj.items()}
    cand = SeedStat.from_seeds({s: v.mean() for s, v in cand_traj.items()}, cand_traj)
    result = evaluate_gate(gate(value=1.02), cand, champ)
    assert (result.interval.low, result.interval.high) == pytest.approx((1.05, 1.05))
    assert result.outcome == "fail"
    assert "16 trajectories" in result.detail and "paired" in result.detail
    assert result.p_better == 0.0
    assert evaluate_gate(gate(value=1.1), cand, champ).outcome == "pass"
    same = evaluate_gate(gate(value=1.1), champ, champ)
    assert same.interval.low == same.interval.high == 1.0 and same.p_better == 0.5


def test_abs_tol_turns_a_tiny_miss_into_inconclusive():
    g = gate(metric="wall_clock_s_per_rollout", normalise="machine", abs_tol=0.05, value=1.5)
    assert g.compared_metric == "wall_clock_norm"
    assert evaluate_gate(g, stat(0.04), stat(0.01)).outcome == "inconclusive"  # misses 0.015 by 0.025
    assert evaluate_gate(g, stat(0.2), stat(0.01)).outcome == "fail"


def test_machine_normalised_times_are_reported_in_seconds_on_this_machine():
    g = gate(metric="wall_clock_s_per_rollout", normalise="machine", value=1.5)
    result = evaluate_gate(g, stat(4.0), stat(2.0), unit_scale=0.01)  # 0.01 s per reference workload here
    assert (result.candidate, result.champion, result.threshold) == pytest.approx((0.04, 0.02, 0.03))
    assert result.outcome == "fail" and "s/rollout on this machine" in result.detail


def test_not_applicable_when_metric_is_none():
    g = gate(metric="conservation_gap")
    assert evaluate_gate(g, SeedStat.from_seeds({0: None}), stat(0.1)).outcome == "not_applicable"
    assert evaluate_gate(g, stat(0.1), None).outcome == "not_applicable"


def test_message_is_one_line_with_all_numbers():
    result = evaluate_gate(gate(value=1.1), stat(0.3), stat(0.2))
    msg = result.message("burgers1d")
    assert "\n" not in msg
    for part in ("burgers1d", "nrmse", "max_ratio(1.1)", "fail", "candidate=0.3", "champion=0.2", "threshold=0.22"):
        assert part in msg


def test_overrides_replace_matching_rule(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text(
        "regression:\n  - {metric: nrmse, rule: max_ratio, value: 1.1}\n"
        "overrides:\n  burgers1d:\n    regression: [{metric: nrmse, rule: max_ratio, value: 1.05}]\n"
    )
    gf = load_gate_file(f)
    assert [g.value for g in gf.for_task("burgers1d", "regression")] == [1.05]
    assert [g.value for g in gf.for_task("ks1d", "regression")] == [1.1]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("regression:\n  - {metric: nrmse, rule: max_ratoi, value: 1.1}\n", "regression.0.rule"),
        ("regression:\n  - {metric: nrmse, rule: max_ratio, value: abc}\n", "regression.0.value"),
        ("regression:\n  - {metric: nrmsee, rule: max_ratio, value: 1.1}\n", "unknown metric 'nrmsee'"),
        ("regresion: []\n", "regresion"),
        ("regression: [\n", "invalid YAML"),
    ],
)
def test_bad_gate_file_is_one_clear_line(tmp_path, text, needle):
    f = tmp_path / "g.yaml"
    f.write_text(text)
    with pytest.raises(UserInputError) as err:
        load_gate_file(f)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)

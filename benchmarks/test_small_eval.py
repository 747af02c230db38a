"""Small-suite gates: `pytest benchmarks -m small_eval`.

One test per (task, gate) of ``gates/small.yaml``, against ``champions/small/<task>.json``. Regression gates fail the
run; promotion rules decide whether ``--ups-promote`` may rewrite the champion and never fail the run (a candidate
that does not improve is expected, reported as xfail with the deciding numbers).
"""

import pytest

pytestmark = pytest.mark.small_eval


def test_regression_gate(ups_regression_result):
    result, case = ups_regression_result
    if result.outcome == "fail":
        pytest.fail(result.message(case.task), pytrace=False)


def test_promotion_rule(ups_promotion_result):
    result, case = ups_promotion_result
    if result.outcome in ("fail", "inconclusive"):
        pytest.xfail(f"not promotable: {result.message(case.task)}")


def test_baseline(ups_baseline_result):
    """Reference points (persistence, FNO, U-Net), trained and scored like the candidate; never gated.

    They are on the leaderboard beside the candidate and the champion; the test checks the scoreboard is usable.
    """
    evaluation, case = ups_baseline_result
    nrmse = evaluation.stats["test"]["nrmse"].mean
    assert nrmse is not None and nrmse == nrmse, f"{case.name} on {case.task}: no finite nRMSE"

"""The suite tests' fixtures: the parametrized cases (one per gate, rule or baseline of each task) and their results,
computed by the session's :class:`~ups.harness.runner.SuiteRunner` (trained and scored once, cached)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from ups.errors import CandidateFailed, MissingExtra, UserInputError
from ups.harness.gates import Gate
from ups.harness.session import SESSION

if TYPE_CHECKING:
    from ups.harness.runner import SuiteRunner


@dataclass(frozen=True)
class GateCase:
    suite: str
    task: str
    gate_set: str
    gate: Gate


@dataclass(frozen=True)
class BaselineCase:
    suite: str
    task: str
    name: str


def _abort(err: UserInputError) -> None:
    pytest.exit(f"ups: {err}", returncode=2)


def _runner(request: pytest.FixtureRequest, suite: str) -> SuiteRunner:
    return request.config.stash[SESSION].runner(f"{suite}_eval")


def _check(request: pytest.FixtureRequest, case: GateCase):
    runner = _runner(request, case.suite)
    try:
        if runner.champion(case.task) is None:
            runner.evaluation(case.task)  # still score the candidate, so --ups-promote can bootstrap a champion
            pytest.skip(f"no champion for {case.suite}/{case.task} yet; run with --ups-promote to create one")
        return runner.check(case.task, case.gate_set, case.gate)
    except UserInputError as err:
        _abort(err)
    except CandidateFailed as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture
def ups_regression_result(request: pytest.FixtureRequest, ups_regression_gate: GateCase):
    """The decided regression gate of this test's (task, metric, rule)."""
    return _check(request, ups_regression_gate), ups_regression_gate


@pytest.fixture
def ups_promotion_result(request: pytest.FixtureRequest, ups_promotion_rule: GateCase):
    """The decided promotion rule of this test's (task, metric, rule)."""
    return _check(request, ups_promotion_rule), ups_promotion_rule


@pytest.fixture
def ups_baseline_result(request: pytest.FixtureRequest, ups_baseline: BaselineCase):
    """A baseline's scoreboard on this test's task (trained first when it is a trained baseline)."""
    runner = _runner(request, ups_baseline.suite)
    try:
        return runner.evaluation(ups_baseline.task, ups_baseline.name), ups_baseline
    except MissingExtra as err:
        pytest.skip(str(err))
    except UserInputError as err:
        _abort(err)
    except CandidateFailed as err:
        pytest.fail(str(err), pytrace=False)

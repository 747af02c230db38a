"""pytest plugin: options, markers, parametrization of gate tests, fixtures, and the end-of-run report.

Hooks and options live here; run state is in :mod:`ups.harness.session`, the cached work in
:mod:`ups.harness.runner`, gate logic in :mod:`ups.harness.gates`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from ups.errors import MissingExtra, UserInputError
from ups.harness.gates import Gate
from ups.harness.runner import CandidateFailed, SuiteRunner
from ups.harness.sources import Source
from ups.harness.suite import SUITE_FILES, SuiteConfig, load_suite

SUITE_MARKERS = ("small_eval", "full_eval")


@dataclass(frozen=True)
class GateCase:
    suite: str
    task: str
    gate_set: str
    gate: Gate


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ups", "UPS benchmark harness")
    group.addoption("--ups-suite", help="suite file to run instead of configs/suites/<marker>.yaml")
    group.addoption("--ups-seeds", help="comma-separated training seeds, overriding the suite's")
    group.addoption("--ups-results-db", default="reports/results.duckdb", help="DuckDB results store")
    group.addoption("--ups-reports-dir", default="reports", help="where the leaderboard files go")
    group.addoption("--ups-cache-dir", default=".ups_cache", help="dataset and evaluation cache")
    group.addoption(
        "--ups-champion-ref",
        default=os.environ.get("UPS_CHAMPION_REF"),
        help="git ref whose champions/ judge the candidate (a pull request's base branch); default: working tree",
    )
    group.addoption("--ups-promote", action="store_true", help="rewrite champions where every promotion rule passes")
    group.addoption("--ups-device", default="cpu", help="torch device for training and rollouts")
    group.addoption("--ups-label", default=None, help="label of this run on the leaderboard")
    group.addoption(
        "--ups-markdown",
        default=None,
        help="write the verdict (headline per task, gates) as Markdown to this file, e.g. for a pull request comment",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in (
        ("small_eval", "CPU-fast proxy suite gated against champions/small"),
        ("full_eval", "full suite gated against champions/full"),
        ("gpu", "needs a CUDA device"),
    ):
        config.addinivalue_line("markers", f"{name}: {text}")
    from ups.harness.controller import Controller

    config._ups = Controller(config)  # type: ignore[attr-defined]


def _abort(err: UserInputError) -> None:
    pytest.exit(f"ups: {err}", returncode=2)


def _defer(config: pytest.Config, err: UserInputError) -> None:
    """Collection hooks cannot exit cleanly; remember the error and exit once collection ends."""
    config._ups.errors.append(str(err))  # type: ignore[attr-defined]


def suite_of(config: pytest.Config, marker: str) -> SuiteConfig:
    """The suite of ``marker``; with a champion ref, the suite file as it is at that ref (a pull request cannot
    change the suite it is judged by)."""
    cache = config._ups.suites  # type: ignore[attr-defined]
    if marker not in cache:
        path = config.getoption("--ups-suite") or SUITE_FILES[marker.removesuffix("_eval")]
        source = Source(config.rootpath, config.getoption("--ups-champion-ref"))
        cache[marker] = load_suite(config.rootpath / path, source=source)
    return cache[marker]


def _selected_markers(config: pytest.Config) -> list[str]:
    markexpr = config.getoption("-m") or ""
    return [m for m in SUITE_MARKERS if m in markexpr]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Before any xdist worker starts: check the selected suites' files (suite, gates, champions, and every
    champion checkpoint's sha256), so a bad file is one ``ups:`` line and exit 2, the same serial and under -n."""
    config = session.config
    if getattr(config, "workerinput", None) is not None:
        return
    try:
        for marker in _selected_markers(config):
            runner = config._ups.runner(marker)  # type: ignore[attr-defined]
            runner.gate_file  # noqa: B018 - loads and checks it
            for task in runner.suite.tasks:
                if (champion := runner.stored_champion(task)) is not None:
                    for seed in champion.checkpoints:
                        runner.champion_checkpoint(task, champion, seed)
    except UserInputError as err:
        _abort(err)


@dataclass(frozen=True)
class BaselineCase:
    suite: str
    task: str
    name: str


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wanted = [f for f in ("ups_regression_gate", "ups_promotion_rule", "ups_baseline") if f in metafunc.fixturenames]
    if not wanted:
        return
    marker = next((m for m in SUITE_MARKERS if metafunc.definition.get_closest_marker(m)), None)
    if marker is None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: suite tests need a small_eval or full_eval marker")
    if wanted[0] == "ups_baseline":
        cases, ids = [], []
        try:
            runner = metafunc.config._ups.runner(marker)  # type: ignore[attr-defined]
            for task in runner.suite.tasks:
                for name in runner.baselines:
                    cases.append(BaselineCase(runner.suite.suite, task, name))
                    ids.append(f"{task}-{name}")
        except UserInputError as err:
            _defer(metafunc.config, err)
        metafunc.parametrize("ups_baseline", cases, ids=ids)
        return
    gate_set = "regression" if wanted[0] == "ups_regression_gate" else "promotion"
    cases, ids = [], []
    try:
        runner = metafunc.config._ups.runner(marker)  # type: ignore[attr-defined]
        for task in runner.suite.tasks:
            for gate in runner.gate_file.for_task(task, gate_set):
                cases.append(GateCase(runner.suite.suite, task, gate_set, gate))
                ids.append(f"{task}-{gate.id}")
    except UserInputError as err:
        _defer(metafunc.config, err)
    metafunc.parametrize(wanted[0], cases, ids=ids)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    errors = config._ups.errors  # type: ignore[attr-defined]
    if errors:
        pytest.exit(f"ups: {errors[0]}", returncode=2)
    markexpr = config.getoption("-m") or ""
    import torch

    for item in items:
        if item.get_closest_marker("full_eval") and "full_eval" not in markexpr:
            item.add_marker(pytest.mark.skip(reason="full_eval runs only when selected: pytest -m full_eval"))
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist controller → worker
    node.workerinput["ups_stamp"] = node.config._ups.stamp


@pytest.fixture(scope="session")
def ups_harness(request: pytest.FixtureRequest):
    """The session's :class:`~ups.harness.controller.Controller` (one runner per suite marker)."""
    return request.config._ups


def _check(request: pytest.FixtureRequest, case: GateCase):
    marker = f"{case.suite}_eval"
    runner: SuiteRunner = request.config._ups.runner(marker)
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
    runner: SuiteRunner = request.config._ups.runner(f"{ups_baseline.suite}_eval")
    try:
        return runner.evaluation(ups_baseline.task, ups_baseline.name), ups_baseline
    except MissingExtra as err:
        pytest.skip(str(err))
    except UserInputError as err:
        _abort(err)
    except CandidateFailed as err:
        pytest.fail(str(err), pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    code = session.config._ups.finish()  # type: ignore[attr-defined]
    if code:
        session.exitstatus = code


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    config._ups.summary(terminalreporter)  # type: ignore[attr-defined]

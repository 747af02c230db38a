"""pytest plugin: options, markers and hooks. The session's state is a :class:`~ups.harness.session.Session` in
``config.stash``; the fixtures are in :mod:`ups.harness.fixtures`.
"""

from __future__ import annotations

import os
import sys

import pytest

from ups.errors import UserInputError
from ups.harness import fixtures
from ups.harness.fixtures import BaselineCase, GateCase
from ups.harness.session import SESSION, SUITE_MARKERS, Session, check_inputs, selected_markers


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
    config.stash[SESSION] = Session(config)
    if not config.pluginmanager.is_registered(fixtures):
        config.pluginmanager.register(fixtures, "ups-fixtures")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Before the session, on the controlling process: check the selected suites' inputs (:func:`check_inputs`). A
    bad one is a single ``ups:`` line on stderr and exit 2, before any worker starts, serial or under xdist."""
    if config.getoption("help") or config.getoption("version", 0):
        return None
    try:
        check_inputs(config)
    except UserInputError as err:
        sys.stderr.write(f"ups: {err}\n")
        return 2
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    ups = session.config.stash[SESSION]
    if ups.is_worker:
        return
    ups.shards.hold()  # the session's shards are live until its end (workers hold their own locks too)
    for marker in selected_markers(session.config):
        ups.runner(marker)  # the controlling process prints every worker's progress for the suites it counts


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wanted = [f for f in ("ups_regression_gate", "ups_promotion_rule", "ups_baseline") if f in metafunc.fixturenames]
    if not wanted:
        return
    marker = next((m for m in SUITE_MARKERS if metafunc.definition.get_closest_marker(m)), None)
    if marker is None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: suite tests need a small_eval or full_eval marker")
    ups = metafunc.config.stash[SESSION]
    cases, ids = [], []
    try:  # collection hooks cannot exit cleanly: remember the error, exit once collection ends
        runner = ups.runner(marker)
        for task in runner.suite.tasks:
            if wanted[0] == "ups_baseline":
                cases += [BaselineCase(runner.suite.suite, task, name) for name in runner.baselines]
                ids += [f"{task}-{name}" for name in runner.baselines]
            else:
                gate_set = "regression" if wanted[0] == "ups_regression_gate" else "promotion"
                for gate in runner.gate_file.for_task(task, gate_set):
                    cases.append(GateCase(runner.suite.suite, task, gate_set, gate))
                    ids.append(f"{task}-{gate.id}")
    except UserInputError as err:
        ups.errors.append(str(err))
    metafunc.parametrize(wanted[0], cases, ids=ids)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ups = config.stash[SESSION]
    if ups.errors:
        pytest.exit(f"ups: {ups.errors[0]}", returncode=2)
    markexpr = config.getoption("-m") or ""
    import torch

    for item in items:
        if item.get_closest_marker("full_eval") and "full_eval" not in markexpr:
            item.add_marker(pytest.mark.skip(reason="full_eval runs only when selected: pytest -m full_eval"))
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist controller → worker
    node.workerinput["ups_stamp"] = node.config.stash[SESSION].stamp


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    code = session.config.stash[SESSION].finish()
    if code:
        session.exitstatus = code


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    config.stash[SESSION].summary(terminalreporter)

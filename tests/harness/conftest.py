"""Shared scaffold of the harness tests."""

import pytest

from ups.harness.runner import SuiteRunner
from ups.harness.suite import SuiteConfig

TINY_CANDIDATE = "data: {task: burgers1d, size: small}\nlatent: {dim: 16, tokens: 16}\ndiffusion: {enabled: false}\n"


@pytest.fixture
def tiny_runner(tmp_path):
    """A factory of SuiteRunners in ``tmp_path`` (one per simulated process) whose candidate is a tiny burgers1d config,
    seeds 0 and 1, 4-step test rollouts; keyword arguments override suite fields (e.g. ``baselines``)."""
    (tmp_path / "configs" / "cand").mkdir(parents=True)
    (tmp_path / "configs" / "cand" / "burgers1d.yaml").write_text(TINY_CANDIDATE)
    fields = {
        "suite": "small",
        "gates": "gates/small.yaml",
        "champions": "champions/small",
        "seeds": [0, 1],
        "candidate": {"config": "configs/cand/{task}.yaml"},
        "tasks": {"burgers1d": {"splits": ["test"], "steps": 4, "horizons": [1, 4]}},
    }
    return lambda **overrides: SuiteRunner(
        SuiteConfig.model_validate(fields | overrides), root=tmp_path, cache_dir=tmp_path / "cache"
    )

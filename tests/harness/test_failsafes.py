"""The playbook's fail-safes (``ups/harness/failsafes.py``, ``SuiteRunner.failsafe``): one test per remedy, and a remedy
that cannot be built becomes a recorded note instead of an exception.

A tiny latent operator on small burgers1d (one seed, a 2 s training budget) is trained once for the module; its
attention window already spans its 16 tokens, so the wall-clock fail-safe has to retrain a narrower latent. The window
and corrector remedies are checked on models built from a config: untrained weights, only the settings matter.
"""

import shutil

import pytest
import torch

import ups.training.trainer as trainer
from ups.config.schema import UPSConfig
from ups.harness.failsafes import halved_latent, remedy_for
from ups.harness.runner import SuiteRunner
from ups.harness.suite import SuiteConfig
from ups.inference import InferenceModel
from ups.models.diffusion_corrector import DiffusionCorrector
from ups.models.latent_operator import LatentOperator
from ups.training.guards import TrainingAborted

TASK = "burgers1d"
CANDIDATE = """\
data: {task: burgers1d, size: small}
latent: {dim: 16, tokens: 16, decoder: {hidden_dim: 16, num_layers: 1, num_heads: 2, query_points: 16}}
operator: {pdet: {hidden_dim: 16, depths: [1], u_stages: [1], group_size: 16, num_heads: 2}}
diffusion: {enabled: false}
training:
  batch_size: 8
  horizon_curriculum: [2]
  early_stop_at: null
  time_budget_s: 2.0
  loss: {inverse_encode: 0.0, inverse_decode: 0.0}
stages: {operator: {epochs: 1, optimizer: {lr: 3.0e-3}}}
logging: {log_every: 1000}
"""
# thresholds no candidate meets: each gate fails, so its fail-safe runs
GATES = """\
regression:
  - {metric: conservation_gap, rule: max_abs, value: 1.0e-3}
  - {metric: wall_clock_s_per_rollout, rule: max_abs, value: 1.0e-9}
"""
SUITE = {
    "suite": "small",
    "gates": "gates/small.yaml",
    "champions": "champions/small",
    "seeds": [0],
    "candidate": {"config": "configs/cand/{task}.yaml"},
    "tasks": {TASK: {"splits": ["test"], "steps": 4, "horizons": [1, 4]}},
}


class Project:
    """A scratch project whose runners record into ``rows``; the candidate is trained by the first one."""

    def __init__(self, root):
        self.root, self.cache = root, root / "cache"
        (root / "configs" / "cand").mkdir(parents=True)
        (root / "configs" / "cand" / f"{TASK}.yaml").write_text(CANDIDATE)
        (root / "gates").mkdir()
        (root / "gates" / "small.yaml").write_text(GATES)
        self.rows: list[tuple[str, dict]] = []

    def runner(self, cache=None) -> SuiteRunner:
        suite = SuiteConfig.model_validate(SUITE)
        record = lambda table, row: self.rows.append((table, row))  # noqa: E731
        return SuiteRunner(suite, root=self.root, cache_dir=cache or self.cache, sink=lambda run_id: record)

    def check(self, metric: str, cache=None):
        """The regression gate on ``metric`` decided by a fresh runner, and the failsafes rows it recorded."""
        self.rows.clear()
        runner = self.runner(cache)
        (gate,) = [g for g in runner.gate_file.regression if g.metric == metric]
        result = runner.check(TASK, "regression", gate)
        return result, [row for table, row in self.rows if table == "failsafes"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    torch.set_num_threads(1)  # tiny tensors on a shared machine
    project = Project(tmp_path_factory.mktemp("failsafes"))
    project.runner().evaluation(TASK)  # trains and scores the candidate once for the module
    return project


@pytest.fixture(scope="module")
def store(project):
    return project.runner().dataset(TASK)


def built(store, **config) -> InferenceModel:
    """An untrained latent operator (and corrector when ``diffusion.enabled``) on burgers1d's spec."""
    cfg = UPSConfig.model_validate({"data": {"task": TASK}} | config)
    operator = LatentOperator.build(cfg, store.spec, store.stats()).eval()
    corrector = None
    if cfg.diffusion.enabled:
        cond_dim = cfg.operator.pdet.hidden_dim if operator.conditioner is not None else 0
        corrector = DiffusionCorrector.from_config(cfg, cond_dim).eval()
    return InferenceModel(operator, corrector, cfg)


def inputs(store) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Two test trajectories' first frames ``[2, 1, C, X]`` and their PDE parameters."""
    params = torch.as_tensor(store.params("test")[:2])
    return torch.as_tensor(store.fields("test")[:2, :1]), params if params.shape[1] else None


def no_retrain(cfg):
    raise AssertionError("this remedy must reuse the trained weights")


def test_projection_restores_the_conserved_integral_of_a_trained_candidate(project):
    result, (row,) = project.check("conservation_gap")
    assert result.outcome == "fail"  # the verdict stays on the candidate as configured
    assert row["action"] == "projection" and row["outcome_with_remedy"] == "pass"
    assert row["before"] > 1e-3 and row["after"] < row["before"] / 100
    assert "fail-safe projection (physics.projections {" in result.detail and "would pass" in result.detail


def test_softer_corrector_halves_lambda_and_runs_the_corrector_twice_as_often(store):
    model = built(store, latent={"dim": 16, "tokens": 16}, diffusion={"cadence_steps": 4, "guidance_lambda": 1.0})
    remedy = remedy_for("ece", model)
    assert remedy.action == "softer_corrector"
    assert remedy.change == "diffusion.guidance_lambda 1 -> 0.5, diffusion.cadence_steps 4 -> 2"
    softer = remedy.build(no_retrain)
    assert softer.operator is model.operator and softer.corrector is model.corrector

    calls: list[float] = []

    def sample(z_pred, cond=None, *, guidance_lambda=None, **kwargs):  # what the rollout asks of the corrector
        calls.append(guidance_lambda)
        return z_pred

    model.corrector.sample = sample
    u0, params = inputs(store)
    for m, expected in [(model, [1.0] * 2), (softer, [0.5] * 4)]:  # 8 steps: every 4th, then every 2nd
        calls.clear()
        assert torch.isfinite(m.rollout(u0, 8, params)).all()
        assert calls == expected
    assert remedy_for("ece", built(store, latent={"dim": 16, "tokens": 16}, diffusion={"enabled": False})) is None


def test_the_window_grows_up_to_the_token_count_and_never_past_it(store):
    model = built(store, latent={"dim": 16, "tokens": 16}, operator={"pdet": {"group_size": 3}})
    weights = model.operator.state_dict()
    u0, params = inputs(store)
    sizes = []
    while (remedy := remedy_for("wall_clock_s_per_rollout", model)).action == "wider_window":
        model = remedy.build(no_retrain)
        sizes.append(model.config.operator.pdet.group_size)
        assert model.operator.config.operator.pdet.group_size == sizes[-1]
        assert all(torch.equal(v, weights[k]) for k, v in model.operator.state_dict().items())  # RoPE: same weights
        assert model.rollout(u0, 2, params).shape == (2, 2, *u0.shape[2:])
    assert sizes == [6, 12, 16]  # doubled, the last step capped at latent.tokens
    assert remedy.action == "smaller_latent" and remedy.change.startswith("latent.dim 16 -> 8")


def test_at_the_token_count_the_wall_clock_failsafe_retrains_a_narrower_latent(project, monkeypatch):
    trained, real_train = [], trainer.train

    def spy(cfg, **kwargs):
        trained.append(cfg)
        return real_train(cfg, **kwargs)

    monkeypatch.setattr(trainer, "train", spy)
    result, (row,) = project.check("wall_clock_s_per_rollout")
    assert result.outcome == "fail"
    assert row["action"] == "smaller_latent" and row["after"] is not None
    assert "fail-safe smaller_latent (latent.dim 16 -> 8 with operator.pdet.input_dim" in result.detail

    (variant,) = trained  # the same training config, narrower: every width that followed latent.dim 16 is now 8
    candidate = project.runner().task_config("candidate", TASK, 0).model_dump(mode="json")
    narrower = variant.model_dump(mode="json")
    halved = [("latent", "dim"), ("latent", "decoder", "hidden_dim"), ("diffusion", "latent_dim")]
    halved += [("diffusion", "hidden_dim"), ("operator", "pdet", "input_dim"), ("operator", "pdet", "hidden_dim")]
    for *parents, key in halved:
        a, b = candidate, narrower
        for p in parents:
            a, b = a[p], b[p]
        assert (a[key], b[key]) == (16, 8)
        b[key] = 16
    assert narrower == candidate

    trained.clear()
    _, (again,) = project.check("wall_clock_s_per_rollout")  # another process: the variant comes from the cache
    assert trained == [] and again["action"] == "smaller_latent"


def test_a_remedy_that_cannot_be_built_is_a_note_and_the_session_goes_on(project, monkeypatch, tmp_path):
    cache = tmp_path / "cache"  # the trained candidate without any retrained variant
    shutil.copytree(project.cache, cache, ignore=shutil.ignore_patterns("candidate-failsafe-*"))
    reason = "operator step 3: non-finite loss (loss=nan)"
    calls = []

    def aborting_train(cfg, *, run_dir, **kwargs):  # what the trainer does when a guard fires
        calls.append(cfg.latent.dim)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.json").write_text(f'{{"aborted": "{reason}"}}')
        raise TrainingAborted(reason)

    monkeypatch.setattr(trainer, "train", aborting_train)
    for _ in range(2):  # the second time the aborted run is read from the cache
        result, (row,) = project.check("wall_clock_s_per_rollout", cache)
        assert result.outcome == "fail"
        assert row["action"] == "smaller_latent" and row["after"] is None
        assert row["outcome_with_remedy"].startswith("not built: ") and reason in row["outcome_with_remedy"]
        assert "fail-safe smaller_latent (latent.dim 16 -> 8" in result.detail and "not built: " in result.detail
    assert calls == [8]


def test_a_narrower_latent_the_schema_rejects_is_a_one_line_value_error():
    cfg = UPSConfig.model_validate({"latent": {"dim": 16, "tokens": 16}, "operator": {"pdet": {"num_heads": 16}}})
    with pytest.raises(ValueError, match=r"latent.dim 16 -> 8 is invalid: .*num_heads.*must divide hidden_dim \(8\)"):
        halved_latent(cfg)

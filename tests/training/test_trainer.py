"""The trainer end to end on a tiny store: run directory, reload, reproducibility, stages, guards, sinks, CLI."""

from __future__ import annotations

import csv
import json
import re
import sys
import types

import pytest
import torch

from ups import cli
from ups.config.loader import config_hash, dump_yaml, load_config
from ups.data.store import DatasetStore
from ups.data.windows import WindowSampler
from ups.errors import UserInputError
from ups.models.diffusion_corrector import DiffusionCorrector
from ups.models.latent_operator import LatentOperator
from ups.models.steady_prior import SteadyPrior
from ups.training import TrainingAborted, load_steady_prior, load_trained, train
from ups.training.checkpoint import load_checkpoint
from ups.training.objectives import OperatorObjective
from ups.training.rundir import CURVE_COLUMNS
from ups.training.stages import StageEnv, bottom_third, operator_plan
from ups.training.trainer import resolve_device
from ups.training.validation import ValProxy


def _rows(run_dir) -> list[dict]:
    with (run_dir / "curves.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_all_stages_write_the_run_directory_and_reload_together(make_config, tiny_store, tmp_path):
    cfg = make_config()
    result = train(cfg, run_root=tmp_path / "runs", data_path=tiny_store, progress=False)
    run = result.run_dir
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-z]{7,8}", run.name) and run.name.startswith(config_hash(cfg)[:12])
    assert config_hash(load_config(run / "config.yaml")) == config_hash(cfg)
    env = json.loads((run / "env.json").read_text())
    assert {"python", "torch", "cuda", "gpu", "cpu", "git", "code_hash", "data"} <= set(env)
    rows = _rows(run)
    assert list(rows[0]) == list(CURVE_COLUMNS)
    stages = [r["stage"] for r in rows]  # a row every 4 steps: 24 operator steps, 12 per corrector stage
    assert stages == ["operator"] * 6 + ["diff_residual"] * 3 + ["consistency_distill"] * 3
    notes = (run / "notes.txt").read_text().splitlines()
    assert [n.split(":")[0] for n in notes] == ["what changed", "why it helped/hurt", "what next"]
    assert "training.batch_size=4" in notes[0] and "guard completed" in notes[2]
    m = result.metrics
    assert m["completed"] == ["operator", "diff_residual", "consistency_distill"] and m["guard"] == "completed"
    assert m["stages"]["operator"]["steps"] == 2 * 12  # 2 epochs of 6 traj × 8 one-step windows / batch 4

    # Principle 3: every learned module comes back from one checkpoint, with the EMA (evaluation) weights.
    ckpt = load_checkpoint(result.checkpoint_path)
    assert set(ckpt.meta["modules"]) == {"operator", "corrector", "student"}
    operator, corrector = load_trained(run)
    assert isinstance(operator, LatentOperator) and isinstance(corrector, DiffusionCorrector)
    assert corrector.student_steps == 1 and not operator.training
    last = load_checkpoint(run / "checkpoints" / "last")
    for key, value in operator.state_dict().items():
        assert torch.equal(value, last.ema[f"operator.{key}"])  # the saved evaluation weights are the EMA
    proxy = ValProxy(DatasetStore.open(tiny_store), steps=4)
    assert proxy(operator)["val_nrmse"] == pytest.approx(m["stages"]["operator"]["val_nrmse"], rel=1e-6)
    z = operator.encode(operator.normalise(proxy.inputs[:, 0]))
    cond = operator.condition(z.shape[0], params=proxy.params)
    assert corrector.sample(z, cond, generator=torch.Generator().manual_seed(0)).shape == z.shape


def test_same_seed_twice_gives_identical_metrics_and_weights(make_config, tiny_store, tmp_path):
    cfg = make_config()
    a = train(cfg, stage="operator", run_dir=tmp_path / "a", data_path=tiny_store, progress=False)
    b = train(cfg, stage="operator", run_dir=tmp_path / "b", data_path=tiny_store, progress=False)
    assert a.metrics["stages"] == b.metrics["stages"]
    wa, wb = load_checkpoint(a.checkpoint_path).model, load_checkpoint(b.checkpoint_path).model
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in _rows(a.run_dir)]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in _rows(b.run_dir)]


def test_single_stages_need_their_prerequisites(make_config, tiny_store, tmp_path):
    cfg = make_config(stages={"operator": {"epochs": 1}})
    run = tmp_path / "run"
    with pytest.raises(UserInputError, match="--stage diff_residual: needs the operator stage"):
        train(cfg, stage="diff_residual", run_dir=run, data_path=tiny_store, progress=False)
    train(cfg, stage="operator", run_dir=run, data_path=tiny_store, progress=False)
    result = train(cfg, stage="diff_residual", run_dir=run, data_path=tiny_store, progress=False)
    assert result.metrics["completed"] == ["operator", "diff_residual"]
    operator, corrector = load_trained(run)
    assert corrector.student_steps is None  # the teacher: no distilled student yet
    other = make_config(stages={"operator": {"epochs": 1}}, training={"batch_size": 2})
    with pytest.raises(UserInputError, match="was trained with another config"):
        train(other, stage="diff_residual", run_dir=run, data_path=tiny_store, progress=False)
    with pytest.raises(UserInputError, match="not a stage of transient task"):
        train(cfg, stage="steady_prior", run_dir=run, data_path=tiny_store, progress=False)


def test_steady_task_trains_the_steady_prior_only(make_config, tiny_steady_store, tmp_path):
    cfg = make_config(data={"task": "darcy2d"})
    result = train(cfg, run_dir=tmp_path / "run", data_path=tiny_steady_store, progress=False)
    assert result.metrics["completed"] == ["steady_prior"] and result.metrics["baseline"] is None
    prior = load_steady_prior(result.run_dir)
    assert isinstance(prior, SteadyPrior)
    a = torch.ones(2, 1, 16, 16)
    assert prior.sample(a, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 16, 16)
    with pytest.raises(UserInputError, match="no latent operator"):
        load_trained(result.run_dir)
    with pytest.raises(UserInputError, match="not a stage of steady task"):
        train(cfg, stage="operator", run_dir=tmp_path / "x", data_path=tiny_steady_store, progress=False)


def test_early_stop_when_the_proxy_does_not_beat_persistence_by_one_sigma(make_config, tiny_store, tmp_path):
    cfg = make_config(training={"early_stop_at": 0.3}, stages={"operator": {"optimizer": {"lr": 1e-9}}})
    result = train(cfg, run_dir=tmp_path / "run", data_path=tiny_store, progress=False)
    m = result.metrics
    assert m["guard"] == "early_stop" and m["completed"] == ["operator"]  # the corrector stages are skipped
    assert m["stages"]["operator"]["steps"] == 8  # ceil(0.3 × 24)
    assert "early stop at step 8" in m["guard_reason"] and "persistence" in m["guard_reason"]
    assert "guard early_stop" in (result.run_dir / "notes.txt").read_text()
    load_trained(result.run_dir)  # the early-stopped model is still saved and loadable


def _nan_after(monkeypatch, calls: int) -> None:
    forward, count = OperatorObjective.forward, {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        count["n"] += 1
        if count["n"] > calls:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(OperatorObjective, "forward", poisoned)


def test_nan_loss_aborts_with_one_line_and_keeps_the_last_good_checkpoint(
    make_config, tiny_store, tmp_path, monkeypatch, capsys
):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(dump_yaml(make_config()))
    run = tmp_path / "run"
    _nan_after(monkeypatch, 6)
    argv = ["train", "--config", str(cfg_path), "--run-dir", str(run), "--data", str(tiny_store), "--no-progress"]
    assert cli.main(argv) == TrainingAborted.exit_code == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("ups: training aborted: operator step 7: non-finite loss (loss=nan)")
    assert f"last good checkpoint: {run / 'checkpoints' / 'last'} (operator step 4)" in err
    operator, _ = load_trained(run)  # no final checkpoint: load_trained falls back to the last good one
    assert all(torch.isfinite(v).all() for v in operator.state_dict().values())
    assert json.loads((run / "metrics.json").read_text())["guard"] == "aborted"
    assert "guard aborted" in (run / "notes.txt").read_text()

    _nan_after(monkeypatch, 0)  # the Python API raises TrainingAborted with the same line
    with pytest.raises(TrainingAborted, match="operator step 1: non-finite loss.*no checkpoint saved yet"):
        train(make_config(), run_dir=tmp_path / "api", data_path=tiny_store, progress=False)


def test_horizon_curriculum_freezes_the_bottom_third_when_it_first_grows(make_config, tiny_store):
    cfg = make_config(training={"freeze_bottom_on_grow": True}, operator={"pdet": {"depths": [2, 1]}})
    store = DatasetStore.open(tiny_store)
    model = LatentOperator.build(cfg, store.spec, store.stats())
    env = StageEnv(cfg, store, WindowSampler.from_store(store), None, torch.device("cpu"), _single(), 4)
    plan = operator_plan(env, model, ValProxy(store, 4))
    assert [plan.horizon(s) for s in (0, 11, 12, 100)] == [1, 1, 2, 2]
    assert plan.on_step(11) is False
    assert plan.on_step(12) is True and plan.on_step(13) is False
    frozen = {id(p) for m in bottom_third(model) for p in m.parameters()}
    assert len(bottom_third(model)) == 2  # the input projection and round(4 blocks / 3) = 1 block
    assert all(not p.requires_grad for p in model.parameters() if id(p) in frozen)
    assert all(p.requires_grad for p in model.parameters() if id(p) not in frozen)


def _single():
    from ups.training.distributed import DistInfo

    return DistInfo()


class _FakeWandb(types.ModuleType):
    def __init__(self):
        super().__init__("wandb")
        self.inits, self.logs, self.finished = [], [], False

    def init(self, **kwargs):
        self.inits.append(kwargs)
        return self

    def log(self, data, step):
        self.logs.append((step, data))

    def finish(self):
        self.finished = True


def test_wandb_offline_and_tensorboard_are_optional_sinks(make_config, tiny_store, tmp_path, monkeypatch):
    fake = _FakeWandb()
    scalars = []
    tb = types.ModuleType("torch.utils.tensorboard")
    tb.SummaryWriter = lambda log_dir: types.SimpleNamespace(
        add_scalar=lambda k, v, s: scalars.append((k, s)), close=lambda: None
    )
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", tb)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_config(logging={"wandb": True, "tensorboard": True}, stages={"operator": {"epochs": 1}})
    train(cfg, stage="operator", run_dir=tmp_path / "run", data_path=tiny_store, progress=False)
    assert fake.inits[0]["mode"] == "offline" and fake.finished
    assert fake.logs[0][0] == 4 and "operator/loss" in fake.logs[0][1] and "operator/val_nrmse" in fake.logs[0][1]
    assert ("operator/loss", 4) in scalars

    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    with pytest.raises(UserInputError, match=r"logging.wandb is enabled but wandb is not installed"):
        train(cfg, stage="operator", run_dir=tmp_path / "x", data_path=tiny_store, progress=False)
    assert not (tmp_path / "x").exists()  # checked before anything is written


def test_cli_reports_bad_input_with_exit_code_2(make_config, tmp_path, capsys):
    assert cli.main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    with pytest.raises(UserInputError, match="CUDA is not available"):
        resolve_device("cuda", make_config()) if not torch.cuda.is_available() else pytest.skip("has CUDA")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"operator": {"conditioning": {"inputs": ["nonexistent"]}}}, "unknown input 'nonexistent'"),
        ({"data": {"fields": ["v"]}}, "data.fields: the latent operator models every field"),
        ({"run": {"model": "unet"}, "data": {"fields": ["v"]}}, "data.fields: unet models every field"),
        ({"logging": {"tensorboard": True}}, "logging.tensorboard is enabled but"),
        ({"training": {"time_stride": 500}}, "training.time_stride: 500 stored frames per step"),
    ],
)
def test_cli_config_that_does_not_fit_the_data_exits_2_and_writes_nothing(
    make_config, tiny_store, tmp_path, capsys, monkeypatch, section, message
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(dump_yaml(make_config(**section)))
    run = tmp_path / "run"
    argv = ["train", "--config", str(cfg_path), "--run-dir", str(run), "--data", str(tiny_store), "--no-progress"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ups: error: ") and message in err
    assert not run.exists()

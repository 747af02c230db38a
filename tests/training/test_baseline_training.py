"""Grid baselines through the trainer (operator stage only, reload, resume) and the operator stage's time budget."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from ups.data.store import DatasetStore
from ups.errors import UserInputError
from ups.models.unet import UNetBaseline
from ups.training import TrainingAborted, load_trained, train
from ups.training.checkpoint import load_checkpoint
from ups.training.objectives import GridObjective
from ups.training.optim import EMA
from ups.training.validation import ValProxy

UNET = {"run": {"model": "unet"}, "baseline": {"width": 8}}


def _rows(run_dir) -> list[dict]:
    with (run_dir / "curves.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_unet_run_trains_the_operator_stage_only_and_load_trained_reloads_it(make_config, tiny_store, tmp_path):
    cfg = make_config(**UNET)
    assert cfg.diffusion.enabled  # the corrector stages are skipped anyway: they correct a latent state
    result = train(cfg, run_dir=tmp_path / "run", data_path=tiny_store, progress=False)
    m = result.metrics
    assert m["completed"] == ["operator"] and m["guard"] == "completed"
    assert m["stages"]["operator"]["steps"] == 24 and "time_budget" not in m["stages"]["operator"]
    ckpt = load_checkpoint(result.checkpoint_path)
    assert ckpt.meta["modules"]["operator"]["model"] == "unet" and set(ckpt.meta["modules"]) == {"operator"}

    model, corrector = load_trained(result.run_dir)
    assert isinstance(model, UNetBaseline) and corrector is None and not model.training
    last = load_checkpoint(result.run_dir / "checkpoints" / "last")
    assert all(torch.equal(v, last.ema[f"operator.{k}"]) for k, v in model.state_dict().items())
    proxy = ValProxy(DatasetStore.open(tiny_store), steps=4)
    val = proxy(model)["val_nrmse"]
    assert val == pytest.approx(m["stages"]["operator"]["val_nrmse"], rel=1e-6)
    assert val < m["baseline"]["proxy"]  # 24 steps already beat persistence on exact advection
    again, _ = load_trained(result.run_dir)
    assert torch.equal(model.rollout(proxy.inputs, 4, proxy.params), again.rollout(proxy.inputs, 4, proxy.params))

    rows = _rows(result.run_dir)
    assert [r["step"] for r in rows] == ["4", "8", "12", "16", "20", "24"]
    assert all(r["one_step"] and r["rollout"] and not r["inverse_encode"] for r in rows)  # the grid objective
    with pytest.raises(UserInputError, match="not a stage of transient task"):
        train(cfg, stage="diff_residual", run_dir=tmp_path / "run", data_path=tiny_store, progress=False)


def test_models_the_trainer_cannot_train_are_one_line_errors(make_config, tiny_store, tiny_steady_store, tmp_path):
    with pytest.raises(UserInputError, match=r"run.model 'persistence' has nothing to train \(trainable: .*unet"):
        train(make_config(run={"model": "persistence"}), run_dir=tmp_path / "a", data_path=tiny_store, progress=False)
    steady = make_config(data={"task": "darcy2d"}, **UNET)
    with pytest.raises(UserInputError, match="steady task darcy2d trains the steady prior"):
        train(steady, run_dir=tmp_path / "b", data_path=tiny_steady_store, progress=False)


def test_unet_resume_after_an_abort_matches_an_uninterrupted_run_bitwise(
    make_config, tiny_store, tmp_path, monkeypatch
):
    cfg = make_config(**UNET)
    forward, calls = GridObjective.forward, {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        return {**out, "loss": out["loss"] * float("nan")} if calls["n"] > 10 else out

    monkeypatch.setattr(GridObjective, "forward", poisoned)
    with pytest.raises(TrainingAborted, match="operator step 11"):
        train(cfg, run_dir=tmp_path / "killed", data_path=tiny_store, progress=False)
    monkeypatch.setattr(GridObjective, "forward", forward)
    resumed = train(cfg, run_dir=tmp_path / "killed", resume=True, data_path=tiny_store, progress=False)
    reference = train(cfg, run_dir=tmp_path / "reference", data_path=tiny_store, progress=False)
    a, b = load_checkpoint(resumed.checkpoint_path).model, load_checkpoint(reference.checkpoint_path).model
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["stages"] == reference.metrics["stages"]


def test_time_budget_stops_the_operator_stage_at_the_first_step_past_it(make_config, tiny_store, tmp_path):
    cfg = make_config(training={"time_budget_s": 1e-9}, **UNET)  # spent by the end of the first step
    result = train(cfg, run_dir=tmp_path / "run", data_path=tiny_store, progress=False)
    record = result.metrics["stages"]["operator"]
    assert record["steps"] == 1 and record["outcome"] == "completed"
    budget = record["time_budget"]
    assert budget["stopped"] is True and budget["planned_steps"] == 24 and budget["budget_s"] == 1e-9
    assert 0 < budget["wall_s"] <= result.metrics["wall_clock_s"]
    on_disk = json.loads((result.run_dir / "metrics.json").read_text())["stages"]["operator"]
    assert on_disk["steps"] == 1 and on_disk["time_budget"]["stopped"] is True
    last = load_checkpoint(result.run_dir / "checkpoints" / "last")
    assert last.step == 0 and last.state["completed"] == ["operator"]  # the stage ended (saved at step 1, then done)
    assert [r["step"] for r in _rows(result.run_dir)] == ["1"]  # the stopping step is validated and logged
    model, _ = load_trained(result.run_dir)
    assert isinstance(model, UNetBaseline)

    roomy = make_config(training={"time_budget_s": 3600.0}, **UNET)
    record = train(roomy, run_dir=tmp_path / "roomy", data_path=tiny_store, progress=False).metrics["stages"][
        "operator"
    ]
    assert record["steps"] == 24 and record["time_budget"]["stopped"] is False


def test_time_budget_cuts_the_latent_operator_stage_but_not_the_corrector_stages(make_config, tiny_store, tmp_path):
    cfg = make_config(training={"time_budget_s": 1e-9}, stages={"diff_residual": {"epochs": 1}})
    m = train(cfg, run_dir=tmp_path / "run", data_path=tiny_store, progress=False).metrics
    assert m["completed"] == ["operator", "diff_residual", "consistency_distill"]
    assert m["stages"]["operator"]["steps"] == 1 and m["stages"]["operator"]["time_budget"]["stopped"] is True
    assert m["stages"]["diff_residual"]["steps"] == 12 and "time_budget" not in m["stages"]["diff_residual"]


def test_ema_averages_complex_parameters():
    module = torch.nn.Module()
    module.w = torch.nn.Parameter(torch.tensor([1.0 + 1.0j]))
    ema = EMA(module, decay=0.5)
    with torch.no_grad():
        module.w.copy_(torch.tensor([3.0 - 1.0j]))
    ema.update(module)  # d = min(0.5, 2 / 11)
    d = 2 / 11
    assert torch.allclose(ema.state_dict()["w"], torch.tensor([d * (1 + 1j) + (1 - d) * (3 - 1j)]))


def test_fno_run_trains_and_its_ema_averages_the_spectral_weights(make_config, tiny_store, tmp_path):
    pytest.importorskip("neuralop", reason="the fno extra is not installed (pip install 'ups[fno]')")
    cfg = make_config(run={"model": "fno"}, baseline={"width": 8, "modes": 8, "layers": 2}, training={"ema_decay": 0.9})
    result = train(cfg, stage="operator", run_dir=tmp_path / "run", data_path=tiny_store, progress=False)
    assert result.metrics["stages"]["operator"]["val_nrmse"] < result.metrics["baseline"]["proxy"]
    model, corrector = load_trained(result.run_dir)
    assert type(model).__name__ == "FNOBaseline" and corrector is None
    last = load_checkpoint(result.run_dir / "checkpoints" / "last")
    spectral = [k for k, v in last.model.items() if v.is_complex()]
    assert spectral and all(not torch.equal(last.model[k], last.ema[k]) for k in spectral)  # averaged, not copied


def test_time_budget_and_baseline_sizes_are_validated(make_config):
    with pytest.raises(UserInputError, match="training.time_budget_s: Input should be greater than 0"):
        make_config(training={"time_budget_s": 0})
    with pytest.raises(UserInputError, match="baseline.width"):
        make_config(baseline={"width": 0})
    assert make_config().training.time_budget_s is None  # off by default: runs stay bitwise reproducible

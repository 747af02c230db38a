"""How often the loop saves: ``run.save_every`` / ``run.save_every_frac``, no effect on a step-budgeted run's numbers,
and checkpoint time left out of the stage clock, the time budget and the reported wall clock."""

from __future__ import annotations

import time

import pytest
import torch

import ups.training.trainer as trainer_module
from ups.training import train
from ups.training.checkpoint import load_checkpoint
from ups.training.loop import save_interval


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _spy_saves(monkeypatch, delay_s: float = 0.0) -> list[tuple[str | None, int]]:
    """Record (stage, step) of every checkpoints/last save; each save first sleeps ``delay_s`` (a slow disk)."""
    saves: list[tuple[str | None, int]] = []
    real = trainer_module.save_run_checkpoint

    def spy(path, **kwargs):
        if path.name == "last":
            time.sleep(delay_s)
            saves.append((kwargs["state"]["current"], kwargs["step"]))
        return real(path, **kwargs)

    monkeypatch.setattr(trainer_module, "save_run_checkpoint", spy)
    return saves


@pytest.mark.parametrize(
    ("save_every", "frac", "steps", "interval"),
    [(1000, None, 80, 1000), (1000, 0.1, 80, 8), (1000, 0.1, 480, 48), (1000, 0.1, 5, 1), (4, 0.1, 480, 4)],
)
def test_save_interval_is_save_every_or_the_fraction_of_the_stage_whichever_is_sooner(
    make_config, save_every, frac, steps, interval
):
    cfg = make_config(run={"save_every": save_every, "save_every_frac": frac})
    assert save_interval(cfg, steps) == interval


def test_save_every_frac_unset_leaves_the_config_dump_as_before(make_config):
    assert "save_every_frac" not in make_config().model_dump(mode="json")["run"]  # config_hash unchanged by it
    assert make_config(run={"save_every_frac": 0.1}).model_dump(mode="json")["run"]["save_every_frac"] == 0.1


def test_saving_often_changes_no_trained_number(make_config, tiny_store, tmp_path, monkeypatch, one_thread):
    rare = make_config(run={"save_every": 1000})
    often = make_config(run={"save_every": 1000, "save_every_frac": 0.1})
    saves = _spy_saves(monkeypatch)
    a = train(rare, run_dir=tmp_path / "rare", data_path=tiny_store, progress=False)
    rare_saves, saves[:] = list(saves), []
    b = train(often, run_dir=tmp_path / "often", data_path=tiny_store, progress=False)
    # 24 operator steps: every ceil(2.4) = 3 steps; 12 per corrector stage: every 2; plus one at each stage's end
    assert [s for c, s in saves if c == "operator"] == [3, 6, 9, 12, 15, 18, 21, 24]
    assert [s for c, s in saves if c == "diff_residual"] == [2, 4, 6, 8, 10, 12]
    assert len(saves) == 8 + 6 + 6 + 3 and len(rare_saves) == 3 + 3
    wa, wb = load_checkpoint(a.checkpoint_path).model, load_checkpoint(b.checkpoint_path).model
    assert set(wa) == set(wb) and any(k.startswith("student.") for k in wa)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # bitwise, every module
    assert a.metrics["stages"] == b.metrics["stages"]


def test_checkpoint_time_stays_out_of_the_time_budget_and_the_wall_clock(
    make_config, tiny_store, tmp_path, monkeypatch, one_thread
):
    # A U-Net stage of 24 steps with a 3 s budget and a save every 2 steps that takes 0.4 s: counted, the saves alone
    # would end the stage by step 16; left out, it runs all 24 steps (its compute is well under a second).
    cfg = make_config(run={"model": "unet", "save_every": 2}, baseline={"width": 8}, training={"time_budget_s": 3.0})
    saves = _spy_saves(monkeypatch, delay_s=0.4)
    result = train(cfg, run_dir=tmp_path / "run", data_path=tiny_store, progress=False)
    m = result.metrics
    budget = m["stages"]["operator"]["time_budget"]
    assert m["stages"]["operator"]["steps"] == 24 and not budget["stopped"]
    assert len(saves) == 12 + 1 and m["checkpoint_s"] >= 13 * 0.4
    assert budget["wall_s"] < 3.0 and m["wall_clock_s"] < 13 * 0.4

"""Steady prior: flow matching on a 1D Poisson problem with a known Green's function, 2D shapes, distillation to
fewer steps, checkpoints.

Toy: −u'' = a on (0, 1), u(0) = u(1) = 0, second-order finite differences on X interior nodes, so u = G a with G the
inverse of the discrete Laplacian (the discrete Green's function); a is a random combination of four sine modes.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ups.config import UPSConfig
from ups.config.schema import SteadyPriorStageConfig
from ups.models.steady_prior import SteadyPrior

X = 32
H = 1.0 / (X + 1)
LAPLACIAN = (2 * torch.eye(X) - torch.diag(torch.ones(X - 1), 1) - torch.diag(torch.ones(X - 1), -1)) / H**2
GREEN = torch.linalg.inv(LAPLACIAN)
MODES = torch.stack([torch.sin(torch.pi * k * torch.arange(1, X + 1) * H) for k in range(1, 5)])  # [4, X]
CONFIG = SteadyPriorStageConfig(noise_schedule="linear", sampler_steps=8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add synchronisation, which costs much on a loaded CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def poisson_batch(batch: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, u) ``[B, 1, X]`` each with −u'' = a discretely."""
    a = 10 * (torch.randn(batch, 4, generator=g) / torch.arange(1, 5)) @ MODES
    return a[:, None], (a @ GREEN.T)[:, None]


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rel_error(pred: torch.Tensor, target: torch.Tensor) -> float:
    """RMS error over the batch relative to the target's RMS."""
    return ((pred - target).pow(2).mean().sqrt() / target.pow(2).mean().sqrt()).item()


@pytest.fixture(scope="module")
def trained() -> tuple[SteadyPrior, list[float]]:
    """A 1D prior trained for 150 AdamW steps; returns it and its loss curve."""
    torch.manual_seed(0)
    model = SteadyPrior(CONFIG, ndim=1, channels=1, cond_channels=1, width=16, levels=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    g, losses = seeded(1), []
    for _ in range(150):
        loss = model.loss(*poisson_batch(32, g), generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval(), losses


def test_brief_training_reduces_the_flow_matching_loss(trained):
    _, losses = trained
    first, last = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    assert last < 0.2 * first, (first, last)


@pytest.mark.parametrize("steps", [6, 8, 12])
def test_samples_in_six_to_twelve_steps_solve_the_poisson_problem(trained, steps):
    model, _ = trained
    a, u = poisson_batch(16, seeded(5))
    assert rel_error(model.sample(a, steps=steps, generator=seeded(2)), u) < 0.3
    # the untrained prior returns scaled noise: relative error of order 1
    untrained = SteadyPrior(CONFIG, ndim=1, channels=1, cond_channels=1, width=16, levels=1)
    untrained.set_scale(u)
    assert rel_error(untrained.sample(a, steps=steps, generator=seeded(2)), u) > 0.8


def test_default_steps_follow_the_config(trained):
    model, _ = trained
    a, _ = poisson_batch(4, seeded(5))
    expected = model.sample(a, steps=CONFIG.sampler_steps, generator=seeded(1))
    torch.testing.assert_close(model.sample(a, generator=seeded(1)), expected, rtol=0, atol=0)


def test_distillation_to_fewer_steps_matches_the_teacher(trained):
    teacher, _ = trained
    student = teacher.make_student(1)
    assert student.student_steps == 1 < CONFIG.sampler_steps
    a, _ = poisson_batch(16, seeded(6))
    reference = teacher.sample(a, generator=seeded(3), steps=16)

    def gap() -> float:  # same initial noise: the one-step student should land where the teacher's ODE does
        return rel_error(student.sample(a, generator=seeded(3)), reference)

    before = gap()  # the copied teacher, sampled in one step: one Euler step of the teacher
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3, weight_decay=0.0)
    g = seeded(8)
    student.train()
    for _ in range(50):
        loss = student.distill_loss(teacher, poisson_batch(16, g)[0], generator=g, teacher_steps=8)
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    after = gap()
    assert after < 0.65 * before and after < 0.12, (before, after)


def test_two_dimensional_fields_of_odd_size_keep_their_shape():
    cfg = UPSConfig.model_validate({"stages": {"steady_prior": {"noise_schedule": "cosine", "sampler_steps": 6}}})
    model = SteadyPrior.from_config(cfg, ndim=2, channels=2, cond_channels=1, width=8, levels=2)
    a, u = torch.rand(2, 1, 13, 10) + 1, torch.randn(2, 2, 13, 10)
    loss = model.loss(a, u, generator=seeded(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.sample(a, generator=seeded(0), sampler="heun").shape == (2, 2, 13, 10)
    assert model.spacing == "cosine" and model.default_sample_steps == 6


def test_checkpoint_round_trip_gives_identical_samples(trained, tmp_path):
    model, _ = trained
    a, _ = poisson_batch(4, seeded(5))
    tensors, meta = model.to_checkpoint()
    save_file(tensors, tmp_path / "prior.safetensors")
    (tmp_path / "prior.json").write_text(json.dumps(meta))
    loaded = SteadyPrior.from_checkpoint(
        load_file(tmp_path / "prior.safetensors"), json.loads((tmp_path / "prior.json").read_text())
    ).eval()
    expected = model.sample(a, generator=seeded(9))
    torch.testing.assert_close(loaded.sample(a, generator=seeded(9)), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="not a 'diffusion_corrector'"):
        from ups.models.diffusion_corrector import DiffusionCorrector

        DiffusionCorrector.from_checkpoint(tensors, meta)

"""Diffusion corrector: stochastic sampling, a Gaussian toy problem with a known conditional law, guidance,
consistency distillation and checkpoints.

The toy: z_pred ~ N(0, I) and r = A z_pred + σ ε per token, so the conditional law of the residual is N(A z_pred, σ²I)
and the exact flow from N(0, I) is the affine map x_0 ↦ A z_pred + σ x_0: samples should have mean A z_pred and
standard deviation σ, and zero noise should give the conditional mean.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ups.config import UPSConfig
from ups.config.schema import DiffusionConfig
from ups.models.diffusion_corrector import DiffusionCorrector

D, N, SIGMA = 4, 4, 0.3
A = torch.tensor([[0.8, -0.3, 0.0, 0.2], [0.1, 0.5, -0.4, 0.0], [0.0, 0.2, 0.6, 0.3], [-0.2, 0.0, 0.1, 0.7]])
CONFIG = DiffusionConfig(latent_dim=D, hidden_dim=32, num_layers=2, steps=1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add synchronisation, which costs much on a loaded CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_batch(batch: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_pred, z_true) with z_true − z_pred = A z_pred + σ ε."""
    z_pred = torch.randn(batch, N, D, generator=g)
    return z_pred, z_pred + z_pred @ A.T + SIGMA * torch.randn(batch, N, D, generator=g)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def trained() -> DiffusionCorrector:
    """The teacher, trained for 300 AdamW steps on the toy problem (a few seconds on one CPU core)."""
    torch.manual_seed(0)
    model = DiffusionCorrector(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=300, pct_start=0.1)
    g = seeded(1)
    for _ in range(300):
        loss = model.loss(*toy_batch(64, g), generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@pytest.fixture(scope="module")
def z_eval() -> torch.Tensor:
    return toy_batch(16, seeded(5))[0]


def test_untrained_corrector_adds_the_seeded_noise_to_the_prediction():
    # zero-initialised output: v = 0, so the sample is z_pred + s · ε with s = 1 before any training batch
    torch.manual_seed(0)
    model = DiffusionCorrector(CONFIG, cond_dim=3)
    z, cond = torch.randn(2, N, D), torch.randn(2, 3)
    expected = z + torch.randn(2, N, D, generator=seeded(0))
    torch.testing.assert_close(model.sample(z, cond, generator=seeded(0)), expected, rtol=0, atol=0)


def test_loss_is_a_scalar_fixes_the_residual_scale_and_backpropagates():
    torch.manual_seed(0)
    model = DiffusionCorrector(CONFIG, cond_dim=3)
    z_pred, z_true = toy_batch(8, seeded(0))
    loss = model.loss(z_pred, z_true, torch.randn(8, 3), generator=seeded(1))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.net.parameters())
    rms = (z_true - z_pred).pow(2).mean(dim=(0, 1)).sqrt()
    torch.testing.assert_close(model.scale, rms)
    assert bool(model.scale_set)


def test_condition_vector_is_required_exactly_when_configured():
    model = DiffusionCorrector(CONFIG, cond_dim=3)
    z = torch.randn(2, N, D)
    with pytest.raises(ValueError, match="cond=None"):
        model.sample(z)
    with pytest.raises(ValueError, match="cond_dim=0"):
        DiffusionCorrector(CONFIG).sample(z, torch.randn(2, 3))


def test_samples_differ_across_seeds_and_repeat_for_the_same_seed(trained, z_eval):
    a = trained.sample(z_eval, generator=seeded(1))
    b = trained.sample(z_eval, generator=seeded(1))
    c = trained.sample(z_eval, generator=seeded(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().mean() > 0.1 * SIGMA


def test_sample_spread_shrinks_with_the_noise_scale_and_vanishes_at_zero(trained, z_eval):
    def spread(noise_scale: float) -> float:
        samples = torch.stack([trained.sample(z_eval, generator=seeded(s), noise_scale=noise_scale) for s in range(6)])
        return samples.var(dim=0).mean().item()

    spreads = [spread(s) for s in (1.0, 0.5, 0.25, 0.1, 0.0)]
    assert all(a > b for a, b in zip(spreads, spreads[1:], strict=False)), spreads
    assert spreads[-1] == 0.0
    # the deterministic image of zero noise is the conditional mean A z_pred
    mean = trained.sample(z_eval, noise_scale=0.0) - z_eval
    assert (mean - z_eval @ A.T).pow(2).mean().sqrt() < 0.1


def test_trained_corrector_recovers_the_conditional_mean_and_sigma(trained, z_eval):
    members = 64
    z = z_eval.repeat(members, 1, 1)  # [members · 16, N, D]
    r = (trained.sample(z, generator=seeded(3)) - z).reshape(members, *z_eval.shape)
    mean_error = (r.mean(dim=0) - z_eval @ A.T).pow(2).mean().sqrt()
    assert mean_error < 0.1  # σ = 0.3; a member-mean of 64 samples alone has RMS error σ/8 ≈ 0.04
    assert r.std(dim=0).mean().item() == pytest.approx(SIGMA, rel=0.3)


def test_guidance_reduces_the_residual_and_more_with_larger_lambda(trained, z_eval):
    target = torch.full_like(z_eval, 2.0)

    def residual(z: torch.Tensor) -> torch.Tensor:
        return 0.5 * (z - target).pow(2).sum(dim=(1, 2))

    means = [
        residual(trained.sample(z_eval, generator=seeded(4), guidance=residual, guidance_lambda=lam)).mean().item()
        for lam in (0.0, 1.0, 2.0)
    ]
    assert means[0] > 1.5 * means[1] > 1.5 * means[2], means
    with pytest.raises(ValueError, match="guidance_lambda"):
        trained.sample(z_eval, guidance=residual, guidance_lambda=2.5)


def test_consistency_distillation_matches_the_teacher_in_one_step(trained):
    student = trained.make_student()
    assert student.student_steps == CONFIG.steps == 1 and trained.student_steps is None
    z, _ = toy_batch(64, seeded(11))
    teacher_samples = trained.sample(z, generator=seeded(4), steps=8)

    def gap() -> float:
        return (student.sample(z, generator=seeded(4)) - teacher_samples).pow(2).mean().sqrt().item()

    before = gap()  # the copied teacher, sampled in one step: one Euler step of the teacher
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3, weight_decay=0.0)
    g = seeded(7)
    student.train()
    for _ in range(60):
        loss = student.distill_loss(trained, toy_batch(32, g)[0], generator=g, teacher_steps=8)
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    after = gap()
    assert after < 0.2 * before and after < 0.15 * SIGMA, (before, after)

    # a two-step student (fresh noise between the steps) matches the teacher in distribution
    two = trained.make_student(2)
    two.load_state_dict(student.state_dict())
    members = z[:8].repeat(32, 1, 1)
    r_two = (two.sample(members, generator=seeded(2)) - members).reshape(32, 8, N, D)
    r_teacher = (trained.sample(members, generator=seeded(2), steps=8) - members).reshape(32, 8, N, D)
    assert (r_two.mean(0) - r_teacher.mean(0)).pow(2).mean().sqrt() < 0.1
    assert r_two.std(0).mean().item() == pytest.approx(r_teacher.std(0).mean().item(), rel=0.2)


def test_distillation_rejects_a_student_with_another_scale(trained):
    other = DiffusionCorrector(CONFIG).make_student(1)
    with pytest.raises(ValueError, match="scales differ"):
        other.distill_loss(trained, torch.randn(2, N, D))


def test_checkpoint_round_trip_gives_identical_samples(trained, z_eval, tmp_path):
    for model in (trained, trained.make_student(2)):
        tensors, meta = model.to_checkpoint()
        save_file(tensors, tmp_path / "corrector.safetensors")
        (tmp_path / "corrector.json").write_text(json.dumps(meta))
        loaded = DiffusionCorrector.from_checkpoint(
            load_file(tmp_path / "corrector.safetensors"), json.loads((tmp_path / "corrector.json").read_text())
        ).eval()
        assert loaded.student_steps == model.student_steps
        torch.testing.assert_close(loaded.scale, model.scale, rtol=0, atol=0)
        expected = model.sample(z_eval, generator=seeded(9))
        torch.testing.assert_close(loaded.sample(z_eval, generator=seeded(9)), expected, rtol=0, atol=0)


def test_builds_from_the_whole_config_with_latent_dim_sizes():
    cfg = UPSConfig.model_validate({"latent": {"dim": 16}, "diffusion": {"hidden_dim": 32}})
    model = DiffusionCorrector.from_config(cfg, cond_dim=2)
    assert model.net.config.dim == 16 and model.net.config.hidden_dim == 32 and model.net.config.cond_dim == 2
    assert model.guidance_lambda == cfg.diffusion.guidance_lambda
    out = model(torch.randn(3, 5, 16), torch.rand(3), torch.randn(3, 5, 16), torch.randn(3, 2))
    assert out.shape == (3, 5, 16)

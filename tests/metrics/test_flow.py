"""Divergence operators and div_free_error: analytic fields, mirror ghosts on walls, hand values, NaN policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.metrics import div_free_error, divergence, gradient_norm2

N = 24
X = (np.arange(N) + 0.5) / N  # cell centres of the unit box


def periodic_field() -> tuple[np.ndarray, np.ndarray]:
    """u = (sin 2πx cos 4πy, cos 2πx sin 6πy) and its exact divergence, on the periodic unit square."""
    x, y = np.meshgrid(X, X, indexing="ij")
    u = np.stack([np.sin(2 * np.pi * x) * np.cos(4 * np.pi * y), np.cos(2 * np.pi * x) * np.sin(6 * np.pi * y)])
    div = 2 * np.pi * np.cos(2 * np.pi * x) * np.cos(4 * np.pi * y) + 6 * np.pi * np.cos(2 * np.pi * x) * np.cos(
        6 * np.pi * y
    )
    return u, div


def test_periodic_divergence_is_spectrally_exact():
    u, div = periodic_field()
    np.testing.assert_allclose(divergence(u, spacing=(1 / N, 1 / N)), div, atol=1e-11)


def test_periodic_gradient_norm_is_spectrally_exact():
    x = np.broadcast_to(X[:, None], (N, N))
    u = np.stack([np.sin(2 * np.pi * x), np.zeros((N, N))])  # ∂x u_x = 2π cos 2πx, everything else 0
    np.testing.assert_allclose(
        gradient_norm2(u, spacing=(1 / N, 1 / N)), (2 * np.pi * np.cos(2 * np.pi * x)) ** 2, atol=1e-10
    )


def test_wall_divergence_uses_central_differences_with_mirror_ghosts():
    # 1D, h = 1, u = [1, 2, 4]; ghosts −1 (left) and −4 (right): div = [(2 + 1)/2, (4 − 1)/2, (−4 − 2)/2]
    u = np.array([[1.0, 2.0, 4.0]])  # [D = 1, S = 3]
    np.testing.assert_allclose(divergence(u, spacing=(1.0,), bc="walls"), [1.5, 1.5, -3.0], rtol=1e-15)
    # the tangential component's ghost is even: ∂y of u_x at the wall uses u_ghost = +u
    v = np.zeros((2, 3, 2))
    v[0] = np.array([[1.0, 3.0], [1.0, 3.0], [1.0, 3.0]])  # u_x varies along y only
    g2 = gradient_norm2(v, spacing=(1.0, 1.0), bc="walls")
    # column 0: ∂x u_x with odd ghosts = [(1 + 1)/2, 0, (−1 − 1)/2] = [1, 0, −1];  ∂y u_x = (3 − 1)/2 = 1
    np.testing.assert_allclose(g2[:, 0], [1.0 + 1.0, 0.0 + 1.0, 1.0 + 1.0])


def test_a_curl_field_has_zero_div_free_error_and_a_gradient_field_has_one():
    spacing = (1 / N, 1 / N)
    x, y = np.meshgrid(X, X, indexing="ij")
    # u = curl ψ with ψ = sin 2πx sin 4πy: divergence-free
    s2x, c2x, s4y, c4y = np.sin(2 * np.pi * x), np.cos(2 * np.pi * x), np.sin(4 * np.pi * y), np.cos(4 * np.pi * y)
    curl = np.stack([4 * np.pi * s2x * c4y, -2 * np.pi * c2x * s4y])
    # u = ∇φ with φ = sin 2πx / (2π): u = (cos 2πx, 0); RMS div = RMS velocity-gradient norm -> exactly 1
    grad = np.stack([np.cos(2 * np.pi * x), np.zeros_like(x)])
    as_rollout = lambda u: u.reshape(1, 1, 2, N, N)  # noqa: E731
    kw = {"velocity_channels": (0, 1), "spacing": spacing}
    assert div_free_error(as_rollout(curl), as_rollout(curl), **kw) < 1e-13
    assert div_free_error(as_rollout(grad), as_rollout(grad), **kw) == pytest.approx(1.0, rel=1e-12)
    # the normaliser is the target's: the same gradient field scored against a target twice as steep gives 1/2
    assert div_free_error(as_rollout(grad), as_rollout(2 * grad), **kw) == pytest.approx(0.5, rel=1e-12)


def test_div_free_error_picks_the_velocity_channels_in_axis_order():
    u, _ = periodic_field()
    rollout = np.concatenate([np.ones((1, N, N)), u]).reshape(1, 1, 3, N, N)  # channel 0 is a passive scalar
    kw = {"spacing": (1 / N, 1 / N)}
    reference = div_free_error(u.reshape(1, 1, 2, N, N), u.reshape(1, 1, 2, N, N), velocity_channels=(0, 1), **kw)
    assert div_free_error(rollout, rollout, velocity_channels=(1, 2), **kw) == reference
    with pytest.raises(ValueError, match="one velocity channel per spatial axis"):
        div_free_error(rollout, rollout, velocity_channels=(1,), **kw)


def test_uniform_target_velocity_gives_nan_with_warning():
    target = np.ones((1, 1, 2, 8, 8))
    pred = target + np.random.default_rng(0).normal(size=target.shape)
    with pytest.warns(RuntimeWarning, match="zero denominator in div_free_error"):
        assert np.isnan(div_free_error(pred, target, velocity_channels=(0, 1), spacing=(0.1, 0.1)))


@pytest.mark.parametrize("bc", ["periodic", "walls"])
def test_torch_and_numpy_agree(bc):
    rng = np.random.default_rng(1)
    y = rng.normal(size=(2, 2, 2, 8, 6)).astype(np.float32)
    p = (y + 0.1 * rng.normal(size=y.shape)).astype(np.float32)
    kw = {"velocity_channels": (0, 1), "spacing": (0.1, 0.2), "bc": bc}
    assert div_free_error(torch.from_numpy(p), torch.from_numpy(y), **kw) == div_free_error(p, y, **kw)


def test_unknown_boundary_condition_is_rejected():
    with pytest.raises(ValueError, match="unknown boundary condition"):
        divergence(np.zeros((1, 4)), spacing=(1.0,), bc="none")

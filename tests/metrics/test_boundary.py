"""bc_violation: Dirichlet and Neumann residuals by hand, normalisers, corners, channels, None, NaN policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.metrics import bc_violation


def frames(*rows: list[float]) -> np.ndarray:
    """1-channel 1D frames stacked over t: [1, T, 1, S]."""
    return np.array(rows, dtype=np.float64).reshape(1, len(rows), 1, -1)


def test_dirichlet_residual_on_the_end_cells_over_the_target_rms():
    # y = [0, 1, 2, 0]: RMS √(5/4).  p − 0 on the boundary cells = [0.5, −0.5]: RMS 0.5.
    y = frames([0.0, 1.0, 2.0, 0.0])
    p = frames([0.5, 1.0, 2.0, -0.5])
    assert bc_violation(p, y, bc="dirichlet") == pytest.approx(0.5 / np.sqrt(1.25), rel=1e-15)
    assert bc_violation(y.copy(), y, bc="dirichlet") == 0.0


def test_dirichlet_wall_value_and_corners_counted_once():
    # 3 × 3 grid, g = 2: 8 boundary cells (not 12), the centre is interior.  p = g + 1 on the boundary, garbage inside.
    y = np.full((1, 1, 1, 3, 3), 2.0)  # RMS 2
    p = np.full_like(y, 3.0)
    p[..., 1, 1] = 1e9
    assert bc_violation(p, y, bc="dirichlet", bc_value=2.0) == pytest.approx(0.5, rel=1e-15)
    # one corner wrong by 8: counted once among 8 cells -> RMS √(64 / 8)
    q = np.full_like(y, 2.0)
    q[..., 0, 0] = 10.0
    assert bc_violation(q, y, bc="dirichlet", bc_value=2.0) == pytest.approx(np.sqrt(8.0) / 2.0, rel=1e-15)


def test_neumann_outward_wall_face_derivative_over_the_target_rms_gradient():
    # h = 0.5, p = [1, 1, 3, 4]: low wall (2p0 − 3p1 + p2)/h = 4, high wall (2p3 − 3p2 + p1)/h = 0: RMS √8.
    # y = [0, 1, 2, 3]: gradient 1/h = 2 everywhere (np.gradient, one-sided at the ends too): RMS 2.
    y = frames([0.0, 1.0, 2.0, 3.0])
    p = frames([1.0, 1.0, 3.0, 4.0])
    assert bc_violation(p, y, bc="neumann", spacing=(0.5,)) == pytest.approx(np.sqrt(8.0) / 2.0, rel=1e-14)


def test_neumann_stencil_is_exact_for_quadratics_at_the_wall_face():
    # u = (x − 1)² on cell centres x = 1.5, 2.5, 3.5 of the face x = 1: du/dx at the face = 0 exactly; u = x on
    # the same cells gives outward derivative −1 at the low face (the outward normal points to −x).
    h = 1.0
    centres = 1.0 + h * (np.arange(6) + 0.5)
    sym = np.minimum(centres - 1.0, 7.0 - centres) ** 2  # no-flux quadratic at both faces
    y = frames(list(centres))
    assert bc_violation(frames(list(sym)), y, bc="neumann", spacing=(h,)) == 0.0


def test_neumann_prescribed_flux_uses_the_outward_normal():
    # p = [0, 1, 2, 3], h = 1: outward derivatives −1 (low wall) and +1 (high wall); g = 1 -> residuals [−2, 0]
    y = frames([0.0, 1.0, 2.0, 3.0])  # RMS gradient 1
    assert bc_violation(y.copy(), y, bc="neumann", bc_value=1.0, spacing=(1.0,)) == pytest.approx(np.sqrt(2.0))


def test_neumann_counts_every_wall_of_a_2d_box():
    # 3 × 4 grid, field linear in x only (axis 0), slope 1: the x-walls see |∂n p| = 1 on their 4 + 4 cells, the y-walls
    # 0 on 3 + 3 cells: RMS √(8 / 14).  Target gradient norm 1 everywhere.
    x = np.arange(3.0)[:, None] * np.ones((1, 4))
    y = x.reshape(1, 1, 1, 3, 4)
    assert bc_violation(y, y, bc="neumann", spacing=(1.0, 1.0)) == pytest.approx(np.sqrt(8 / 14), rel=1e-14)


def test_channels_limit_the_condition_to_some_fields():
    y = np.zeros((1, 1, 2, 4)) + np.array([1.0, 2.0, 2.0, 1.0])
    p = y.copy()
    p[:, :, 1] = 100.0  # channel 1 carries no wall condition
    assert bc_violation(p, y, bc="dirichlet", bc_value=1.0, channels=[0]) == 0.0
    assert bc_violation(p, y, bc="dirichlet", bc_value=1.0) > 10


@pytest.mark.parametrize("bc", ["periodic", "none"])
def test_no_walls_is_not_applicable_not_zero(bc):
    y = frames([1.0, 2.0, 3.0])
    assert bc_violation(y + 5, y, bc=bc) is None


def test_bad_arguments():
    y = frames([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="unknown boundary condition"):
        bc_violation(y, y, bc="robin")
    with pytest.raises(ValueError, match="needs one spacing per spatial axis"):
        bc_violation(y, y, bc="neumann")


@pytest.mark.parametrize(("bc", "kwargs"), [("dirichlet", {}), ("neumann", {"spacing": (1.0,)})])
def test_zero_normaliser_gives_nan_with_warning(bc, kwargs):
    y = frames([3.0, 3.0, 3.0]) * (0.0 if bc == "dirichlet" else 1.0)  # zero target / no gradient
    with pytest.warns(RuntimeWarning, match="zero denominator in bc_violation"):
        assert np.isnan(bc_violation(y + 1.0, y, bc=bc, **kwargs))


def test_torch_and_numpy_agree():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 3, 2, 6, 5)).astype(np.float32)
    p = (y + 0.1 * rng.normal(size=y.shape)).astype(np.float32)
    for bc in ("dirichlet", "neumann"):
        kw = {"bc": bc, "spacing": (0.1, 0.2)}
        assert bc_violation(torch.from_numpy(p), torch.from_numpy(y), **kw) == bc_violation(p, y, **kw)

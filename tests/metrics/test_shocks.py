"""Shock masks, one-cell tolerance, IoU and precision on hand-made step profiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.metrics import shock_iou, shock_mask, shock_precision
from ups.metrics.shocks import dilate

N = 32


def step(position: int, *, low: float = 0.125, high: float = 1.0) -> np.ndarray:
    """A Sod-like density jump between cells position − 1 and position, as a 1-channel [1, 1, 1, N] frame."""
    rho = np.where(np.arange(N) < position, high, low)
    return rho.reshape(1, 1, 1, N).astype(np.float64)


KW = {"channel": 0, "spacing": (1.0 / N,)}


def test_mask_marks_the_cells_of_the_jump():
    mask = shock_mask(step(10)[:, :, 0], spacing=(1.0,), periodic=False, threshold=0.5)
    assert np.flatnonzero(mask[0, 0]).tolist() == [9, 10]  # central differences put the jump on both cells


@pytest.mark.parametrize(("shift", "iou"), [(0, 1.0), (1, 1.0), (-1, 1.0), (2, 1 / 3), (3, 0.0), (5, 0.0)])
def test_iou_tolerates_exactly_one_cell(shift, iou):
    # masks are two cells wide (9, 10 for the truth).  Shift 2 -> prediction 11, 12: true cell 10 is within one cell of
    # 11 (1 hit of 2), predicted cell 12 is farther than one cell from the truth (1 false alarm): 1 / (2 + 1)
    assert shock_iou(step(10 + shift), step(10), **KW) == pytest.approx(iou)


def test_iou_counts_missed_and_spurious_shocks():
    # truth: shocks at 10 and 20 (4 mask cells); prediction: only the one at 10 -> hits 2 of 4 true cells, no false
    truth = step(10) + step(20, low=0.0, high=0.875) - 0.125
    pred = step(10)
    assert shock_iou(pred, truth, **KW) == pytest.approx(2 / 4)
    assert shock_precision(pred, truth, **KW) == 1.0  # everything it marks is a shock
    # the other way round: a spurious second shock halves the precision; IoU = 2 hits / (2 true + 2 false)
    assert shock_precision(truth, pred, **KW) == pytest.approx(0.5)
    assert shock_iou(truth, pred, **KW) == pytest.approx(2 / 4)


def test_relative_threshold_ignores_weak_gradients():
    # a smooth ramp of slope 1/4 of the jump does not count as a shock at τ = 0.5
    ramp = step(10) + np.linspace(0, 0.2, N).reshape(1, 1, 1, N)
    assert shock_precision(ramp, step(10), **KW) == 1.0
    assert shock_iou(ramp, step(10), **KW) == 1.0


def test_periodic_seam_is_a_neighbour():
    # jump across the seam: cells 0 and N − 1; a prediction one cell to the right across the seam still matches
    truth = np.where(np.arange(N) < N // 2, 1.0, 0.125).reshape(1, 1, 1, N)
    pred = np.roll(truth, 1, axis=-1)
    assert shock_iou(pred, truth, periodic=True, **KW) == 1.0


def test_iou_and_precision_average_over_frames():
    truth = np.concatenate([step(10), step(10)], axis=1)  # T = 2
    pred = np.concatenate([step(10), step(15)], axis=1)
    assert shock_iou(pred, truth, **KW) == pytest.approx(0.5)
    assert shock_precision(pred, truth, **KW) == pytest.approx(0.5)


def test_constant_frames_give_nan_with_warning():
    flat = np.ones((1, 1, 1, N))
    with pytest.warns(RuntimeWarning, match="zero denominator in shock_iou"):
        assert np.isnan(shock_iou(flat, flat, **KW))


def test_tolerance_is_a_one_cell_box_including_diagonals():
    mask = np.zeros((1, 1, 5, 5), dtype=bool)
    mask[0, 0, 2, 2] = True
    grown = dilate(mask, periodic=False)
    assert grown[0, 0].astype(int).tolist() == [[0] * 5, [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0] * 5]


def test_2d_shock_front_moved_by_one_cell_matches():
    x = np.broadcast_to(np.arange(16)[:, None], (16, 12))
    truth = np.where(x < 8, 1.0, 0.125).reshape(1, 1, 1, 16, 12)  # a planar front normal to axis 0
    pred = np.where(x < 9, 1.0, 0.125).reshape(1, 1, 1, 16, 12)
    kw = {"channel": 0, "spacing": (0.5, 1.0)}
    assert shock_iou(pred, truth, **kw) == 1.0 and shock_precision(pred, truth, **kw) == 1.0


def test_torch_and_numpy_agree():
    truth, pred = step(10), step(11)
    assert shock_iou(torch.from_numpy(pred), torch.from_numpy(truth), **KW) == shock_iou(pred, truth, **KW)

"""Training windows: temperature-scaled group probabilities, stateless batches, rank slicing, exact shifts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.data.store import DatasetStore
from ups.data.windows import WindowSampler, group_probabilities, regime_ids, steady_pairs, window_groups


def test_group_probabilities_follow_n_to_the_one_over_t():
    sizes = np.array([1, 4, 16])
    assert group_probabilities(sizes, 1.0) == pytest.approx(sizes / 21)  # T = 1: proportional
    assert group_probabilities(sizes, 2.0) == pytest.approx(np.array([1, 2, 4]) / 7)  # √n
    assert group_probabilities(sizes, 0.5) == pytest.approx(np.array([1, 16, 256]) / 273)  # n²: sharper
    assert group_probabilities(sizes, 1e6) == pytest.approx(np.full(3, 1 / 3), abs=1e-5)  # T → ∞: uniform
    assert group_probabilities(np.array([1e300, 1.0]), 0.01).sum() == pytest.approx(1.0)  # no overflow


def test_regimes_are_distinct_parameter_rows_or_quantile_bins():
    assert regime_ids(np.array([[0.1], [0.2], [0.1], [0.3]])).tolist() == [0, 1, 0, 2]
    assert regime_ids(np.zeros((3, 0))).tolist() == [0, 0, 0]
    many = np.linspace(0, 1, 40)[:, None]  # 40 distinct values: 4 equal-count bins
    assert np.bincount(regime_ids(many, bins=4)).tolist() == [10, 10, 10, 10]


def test_window_groups_split_each_regime_into_initial_and_developed_phases():
    members, starts, sizes = window_groups(np.array([0, 0, 1]), n_starts=5)
    assert starts == [(0, 1), (1, 5), (0, 1), (1, 5)]
    assert sizes.tolist() == [2, 8, 1, 4]
    assert [m.tolist() for m in members] == [[0, 1], [0, 1], [2], [2]]


def test_batches_are_stateless_and_match_the_stored_frames(tiny_store):
    store = DatasetStore.open(tiny_store)
    ws = WindowSampler.from_store(store, "train", time_stride=2, temperature=0.7, seed=3)
    a, b = ws.batch(5, 6, 2), ws.batch(5, 6, 2)
    assert torch.equal(a.frames, b.frames) and not torch.equal(a.frames, ws.batch(6, 6, 2).frames)
    fields = store.fields("train")
    assert a.frames.shape == (6, 3, 1, 32)
    for i in range(6):
        expected = fields[a.traj[i], a.start[i] : a.start[i] + 5 : 2]
        np.testing.assert_array_equal(a.frames[i].numpy(), expected)
    assert ws.batch(0, 4, 99).frames.shape[1] == ws.max_horizon + 1 == 5  # horizon capped at the data


def test_ranks_split_one_global_batch(tiny_store):
    ws = WindowSampler.from_store(DatasetStore.open(tiny_store), shift=True, temperature=2.0)
    whole = ws.batch(7, 8, 2)
    halves = [ws.batch(7, 4, 2, rank=r, world=2) for r in range(2)]
    assert torch.equal(torch.cat([h.frames for h in halves]), whole.frames)
    assert torch.equal(torch.cat([h.params for h in halves]), whole.params)


def test_shift_augmentation_is_a_circular_shift_of_a_stored_window(tiny_store):
    store = DatasetStore.open(tiny_store)
    plain = WindowSampler.from_store(store)
    shifted = WindowSampler.from_store(store, shift=True)
    a, b = plain.batch(1, 4, 2), shifted.batch(1, 4, 2)
    assert np.array_equal(a.traj, b.traj) and np.array_equal(a.start, b.start)
    for x, y in zip(a.frames, b.frames, strict=True):
        assert any(torch.equal(torch.roll(x, k, -1), y) for k in range(32))


def test_high_temperature_oversamples_the_initial_phase(tiny_store):
    ws = WindowSampler.from_store(DatasetStore.open(tiny_store), temperature=1.0)
    starts = np.concatenate([ws.batch(s, 64, 1).start for s in range(20)])
    hot = WindowSampler.from_store(DatasetStore.open(tiny_store), temperature=100.0)
    hot_starts = np.concatenate([hot.batch(s, 64, 1).start for s in range(20)])
    assert (starts == 0).mean() == pytest.approx(1 / 8, abs=0.05)  # T = 1: 1 of 8 starts
    assert (hot_starts == 0).mean() == pytest.approx(1 / 2, abs=0.06)  # T → ∞: half the groups are initial


def test_steady_pairs_split_input_and_output_fields(tiny_steady_store):
    a, u = steady_pairs(DatasetStore.open(tiny_steady_store), "train")
    assert a.shape == u.shape == (8, 1, 16, 16)
    assert float(a.min()) >= 1.0 and float(u.max()) < float(a.max())

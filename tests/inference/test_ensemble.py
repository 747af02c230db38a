"""sample_ensemble: independent corrector noise per member, reproducible by seed, collapsing without noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.inference import sample_ensemble
from ups.metrics.ensemble import crps, ece


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_members_differ_and_the_seed_reproduces_them(burgers):
    args = (burgers.operator, burgers.corrector, burgers.inputs, 3, burgers.params, 4)
    members = sample_ensemble(*args, generator=gen(0), cadence=1)
    assert members.shape == (4, *burgers.targets[:, :3].shape)
    for i in range(4):
        for j in range(i):
            assert not torch.allclose(members[i], members[j])
    assert torch.equal(members, sample_ensemble(*args, generator=gen(0), cadence=1))
    assert not torch.allclose(members, sample_ensemble(*args, generator=gen(1), cadence=1))
    # the layout the ensemble metrics read: [M, B, T, C, *S], then the target [B, T, C, *S]
    target = burgers.targets[:, :3]
    assert np.isfinite(crps(members, target)) and 0.0 <= ece(members, target) <= 0.5


def test_without_noise_every_member_is_the_same_rollout(burgers):
    members = sample_ensemble(
        burgers.operator,
        burgers.corrector,
        burgers.inputs,
        3,
        burgers.params,
        3,
        generator=gen(0),
        cadence=1,
        noise_scale=0.0,
    )
    assert torch.equal(members[0], members[1]) and torch.equal(members[0], members[2])


def test_members_only_spread_after_the_first_correction(burgers):
    members = sample_ensemble(
        burgers.operator, burgers.corrector, burgers.inputs, 4, burgers.params, 2, generator=gen(0), cadence=3
    )
    assert torch.equal(members[0, :, :2], members[1, :, :2])  # the operator alone is deterministic
    assert not torch.allclose(members[0, :, 2], members[1, :, 2])


def test_an_ensemble_needs_a_corrector(burgers):
    with pytest.raises(ValueError, match="corrector"):
        sample_ensemble(burgers.operator, None, burgers.inputs, 2, burgers.params, 3)

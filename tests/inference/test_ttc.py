"""rollout_ttc: the beam search picks what its scores say, looks ahead, keeps to the budget, and is reproducible."""

from __future__ import annotations

import pytest
import torch

from ups.config.schema import TTCConfig
from ups.inference import TTCReward, rollout_ttc


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class CountingReward(TTCReward):
    """The real reward, counting the latent states it scores."""

    def __init__(self, *args):
        super().__init__(*args)
        self.scored = 0

    def __call__(self, z, ref):
        self.scored += z.shape[0]
        return super().__call__(z, ref)


class MeanReward(TTCReward):
    """A test reward: the latent's mean (no decoding)."""

    def __call__(self, z, ref):
        return z.mean(dim=(1, 2))


def test_look_ahead_picks_another_candidate_than_greedy_when_the_future_reverses_the_ranking(burgers, monkeypatch):
    """A constructed case: the operator step is z ↦ −2z and the reward is mean(z), so a candidate c scores mean(c)
    now and −2·mean(c) one step later. Greedy (horizon 1) must take the highest mean, a horizon-2 search the lowest."""
    op, corr = burgers.operator, burgers.corrector
    monkeypatch.setattr(op, "step", lambda z, cond: -2.0 * z)
    choices = {}
    for horizon in (1, 2):
        ttc = TTCConfig(candidates=5, beam_width=1, horizon=horizon)
        reward = MeanReward(op, op.spec, ttc)
        _, info = rollout_ttc(op, corr, burgers.inputs, 2, burgers.params, ttc=ttc, generator=gen(), reward=reward)
        choices[horizon] = info.chosen[:, 0]
        for b, records in enumerate(info.records):
            r = records[0].rewards  # [5, horizon]
            assert r.shape == (5, horizon)
            if horizon == 2:
                torch.testing.assert_close(r[:, 1], -2.0 * r[:, 0])
            assert int(info.chosen[b, 0]) == int(torch.argmax(r.sum(dim=1)))
        first_rewards = torch.stack([rec[0].rewards[:, 0] for rec in info.records])
        if horizon == 1:
            greedy_rewards = first_rewards
        else:
            torch.testing.assert_close(first_rewards, greedy_rewards)  # same seed: the same candidates
    assert torch.equal(choices[1], greedy_rewards.argmax(dim=1))
    assert torch.equal(choices[2], greedy_rewards.argmin(dim=1))
    assert (choices[1] != choices[2]).all()


@pytest.mark.parametrize("horizon", [1, 2])
def test_choices_follow_the_recorded_physics_rewards(ns2d, horizon):
    op, corr = ns2d.operator, ns2d.corrector
    ttc = TTCConfig(candidates=4, beam_width=1, horizon=horizon)
    frames, info = rollout_ttc(op, corr, ns2d.inputs, 3, ns2d.params, ttc=ttc, generator=gen())
    assert frames.shape == ns2d.targets[:, :3].shape and torch.isfinite(frames).all()
    for b, records in enumerate(info.records):
        for t, rec in enumerate(records):
            h = min(horizon, 3 - t)
            assert rec.rewards.shape == (4, h)
            assert int(info.chosen[b, t]) == int(torch.argmax(rec.rewards.sum(dim=1)))
            assert (rec.taus >= 0.15).all() and (rec.taus <= 0.85).all()  # default tau_range


def test_beam_search_keeps_the_best_beams_by_parent_score_plus_window(burgers):
    op, corr = burgers.operator, burgers.corrector
    ttc = TTCConfig(candidates=3, beam_width=2, horizon=1)
    _, info = rollout_ttc(op, corr, burgers.inputs[:1], 3, burgers.params[:1], ttc=ttc, generator=gen())
    records = info.records[0]
    assert records[0].rewards.shape == (3, 1)  # one start beam
    assert records[1].rewards.shape == (6, 1) and records[1].parents.tolist() == [0, 1, 0, 1, 0, 1]
    scores = records[0].rewards[records[0].kept, 0]  # the two beams' scores, best first
    key = scores[records[1].parents] + records[1].rewards[:, 0]
    assert records[1].kept.tolist() == torch.sort(key, descending=True, stable=True).indices[:2].tolist()


def test_evaluation_budget_is_a_hard_limit_spread_over_the_steps(burgers):
    op, corr = burgers.operator, burgers.corrector
    ttc = TTCConfig(candidates=4, beam_width=2, horizon=1, max_evaluations=10)
    reward = CountingReward(op, op.spec, ttc)
    _, info = rollout_ttc(op, corr, burgers.inputs, 4, burgers.params, ttc=ttc, generator=gen(), reward=reward)
    batch = burgers.inputs.shape[0]
    # per step: min(beams × candidates, remaining // steps left) = 2, 2, 3, 3
    assert [rec.rewards.shape[0] for rec in info.records[0]] == [2, 2, 3, 3]
    assert info.evaluations.tolist() == [10] * batch and reward.scored == 10 * batch

    tight = TTCConfig(candidates=4, beam_width=2, horizon=2, max_evaluations=2)
    frames, info = rollout_ttc(op, corr, burgers.inputs, 4, burgers.params, ttc=tight, generator=gen())
    assert (info.evaluations <= 2).all() and torch.isfinite(frames).all()
    assert (info.chosen[:, :2] == -1).all() and (info.chosen[:, 2:] >= 0).all()  # 2 // 4, 2 // 3 → no search


def test_same_seed_same_search_and_another_seed_differs(burgers):
    op, corr = burgers.operator, burgers.corrector
    ttc = TTCConfig(candidates=3, beam_width=2, horizon=2)

    def run(seed):
        return rollout_ttc(op, corr, burgers.inputs, 3, burgers.params, ttc=ttc, generator=gen(seed))

    (a, ia), (b, ib) = run(5), run(5)
    assert torch.equal(a, b) and torch.equal(ia.chosen, ib.chosen)
    assert not torch.allclose(a, run(6)[0])


def test_ttc_needs_a_corrector(burgers):
    with pytest.raises(ValueError, match="corrector"):
        rollout_ttc(burgers.operator, None, burgers.inputs, 2, ttc=TTCConfig())


def test_with_the_trained_model_and_physics_reward_look_ahead_changes_some_choice(burgers):
    """No construction: the trained tiny operator, its corrector and the physics (mass) reward. The first step's
    candidates are the same draws for both searches (same seed), so a different first choice on some sample comes
    from the look-ahead alone."""
    op, corr = burgers.operator, burgers.corrector
    first = {}
    for horizon in (1, 2):
        ttc = TTCConfig(candidates=16, beam_width=1, horizon=horizon)
        _, info = rollout_ttc(op, corr, burgers.inputs, 4, burgers.params, ttc=ttc, generator=gen())
        first[horizon] = info.chosen[:, 0]
        for b, records in enumerate(info.records):  # each pick is the best look-ahead score it recorded
            assert int(first[horizon][b]) == int(torch.argmax(records[0].rewards.sum(dim=1)))
    assert (first[1] != first[2]).any(), (first[1], first[2])

"""Test-time search (TTC): beam search over corrector proposals, scored by a physics reward on decoded fields.

Per sample and per rollout step (the search is independent for every trajectory of the batch):

1. every beam takes one operator step, ``z_pred = z + f(z, c)``;
2. each beam proposes up to ``ttc.candidates`` next latents with the corrector, started part-way at a flow time
   ``τ ~ U(tau_range)`` (SDEdit: the zero residual — the operator's own prediction — noised to
   ``x_τ = (1 − τ)·ε`` and integrated from τ to 1 in ``ttc.steps`` sampler steps; small τ is a nearly free corrector
   sample, large τ stays close to the operator), plus Gaussian jitter ``σ_t · s · ξ`` in units of the corrector's
   per-feature residual scale ``s``, with ``σ_t = noise_schedule[t]`` for the first ``len(noise_schedule)`` rollout
   steps and ``noise_std`` after (explore more early, less later);
3. each proposal is rolled ``h − 1`` more operator steps (``h = min(horizon, steps left)``) and the ``h`` latents are
   scored by :class:`~ups.inference.reward.TTCReward` — one *reward evaluation* per proposal, whatever ``h``;
4. proposals are ranked by ``parent score + Σ_window rewards``; the best ``beam_width`` become the beams, each
   carrying ``parent score + reward of its own frame`` (look-ahead frames guide the choice without being counted
   twice). The rollout returns the best beam's path.

Budget: ``ttc.max_evaluations`` reward evaluations per sample, never exceeded. It is spread evenly: a step may use at
most ``remaining // steps_left``; the proposals it affords go to the beams round-robin in rank order. A step that can
afford none advances every beam by the operator alone (recorded as choice −1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ups.config.schema import ProjectionsConfig, TTCConfig
from ups.inference._common import decode_physical, evaluating, start_state
from ups.inference.projection import project_frames
from ups.inference.reward import Reference, TTCReward
from ups.models.diffusion_corrector import DiffusionCorrector
from ups.models.latent_operator import LatentOperator


@dataclass(frozen=True)
class StepRecord:
    """One search step of one sample.

    Attributes:
        parents: beam (rank at the start of the step) each proposal came from, ``[n]``.
        taus: flow time each proposal started at, ``[n]``.
        rewards: per-frame rewards of each proposal's look-ahead window, ``[n, h]``.
        kept: proposals kept as the next beams, best first, ``[≤ beam_width]``.
    """

    parents: torch.Tensor
    taus: torch.Tensor
    rewards: torch.Tensor
    kept: torch.Tensor


@dataclass
class TTCInfo:
    """What the search did, per sample of the batch.

    Attributes:
        evaluations: reward evaluations used per sample, ``[B]``.
        chosen: ``[B, steps]``: at each step, the index (among that step's proposals) of the proposal on the returned
            path; −1 where the step had no budget and the operator stepped alone.
        budget: ``ttc.max_evaluations`` (None: unlimited).
        records: ``records[b][t]``: the :class:`StepRecord` of sample b's step t (None for a step without search).
    """

    evaluations: torch.Tensor
    chosen: torch.Tensor
    budget: int | None
    records: list[list[StepRecord | None]] = field(default_factory=list)


def noise_level(ttc: TTCConfig, step: int) -> float:
    """Jitter ``σ_t`` of rollout step ``t`` (0-based): ``noise_schedule[t]``, then ``noise_std``."""
    schedule = ttc.sampler.noise_schedule
    return float(schedule[step]) if step < len(schedule) else float(ttc.sampler.noise_std)


def _propose(
    corrector: DiffusionCorrector,
    z_pred: torch.Tensor,
    cond: torch.Tensor | None,
    taus: torch.Tensor,
    sigma: float,
    ttc: TTCConfig,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One corrector proposal per row of ``z_pred [n, N, E]``, started at its ``taus[i]``: ``[n, N, E]``."""
    out = []
    for i in range(z_pred.shape[0]):
        c = None if cond is None else cond[:1]
        z = corrector.sample(z_pred[i : i + 1], c, steps=ttc.steps, generator=generator, start_time=float(taus[i]))
        if sigma > 0:
            xi = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            z = z + sigma * corrector.scale.to(z.dtype) * xi
        out.append(z.to(z_pred.dtype))
    return torch.cat(out)


def _search(
    operator: LatentOperator,
    corrector: DiffusionCorrector,
    reward: TTCReward,
    z0: torch.Tensor,
    cond: torch.Tensor | None,
    ref: Reference,
    steps: int,
    ttc: TTCConfig,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, int, list[int], list[StepRecord | None]]:
    """Beam search for one sample from ``z0 [1, N, E]``: (path latents ``[steps, N, E]``, evaluations, choices,
    records)."""
    lo, hi = ttc.sampler.tau_range
    dev = z0.device
    beams, scores = z0, torch.zeros(1, device=dev)
    paths: list[list[torch.Tensor]] = [[]]
    choices: list[list[int]] = [[]]
    records: list[StepRecord | None] = []
    left, used = ttc.max_evaluations, 0
    for t in range(steps):
        width = beams.shape[0]
        z_pred = operator.step(beams, None if cond is None else cond.expand(width, -1))
        n = width * ttc.candidates if left is None else min(width * ttc.candidates, left // (steps - t))
        if n == 0:  # no budget this step: the operator alone
            beams = z_pred
            paths = [p + [z_pred[i]] for i, p in enumerate(paths)]
            choices = [c + [-1] for c in choices]
            records.append(None)
            continue
        parents = torch.arange(n, device=dev) % width
        gen_dev = generator.device if generator is not None else dev
        taus = (lo + (hi - lo) * torch.rand(n, generator=generator, device=gen_dev)).to(dev)
        proposals = _propose(corrector, z_pred[parents], cond, taus, noise_level(ttc, t), ttc, generator)
        h = min(ttc.horizon, steps - t)
        window, z = [proposals], proposals
        cond_n = None if cond is None else cond.expand(n, -1)
        for _ in range(h - 1):
            z = operator.step(z, cond_n)
            window.append(z)
        rewards = reward(torch.stack(window, dim=1).flatten(0, 1), ref).view(n, h)
        used += n
        left = None if left is None else left - n
        key = scores[parents] + rewards.sum(dim=1)
        kept = torch.sort(key, descending=True, stable=True).indices[: ttc.beam_width]
        beams, scores = proposals[kept], scores[parents[kept]] + rewards[kept, 0]
        paths = [paths[int(parents[k])] + [proposals[k]] for k in kept]
        choices = [choices[int(parents[k])] + [int(k)] for k in kept]
        records.append(StepRecord(parents=parents, taus=taus, rewards=rewards, kept=kept))
    best = int(torch.argmax(scores))  # the first of equal scores
    return torch.stack(paths[best]), used, choices[best], records


def rollout_ttc(
    operator: LatentOperator,
    corrector: DiffusionCorrector,
    inputs: torch.Tensor,
    steps: int,
    params: torch.Tensor | None = None,
    *,
    ttc: TTCConfig,
    generator: torch.Generator | None = None,
    projections: ProjectionsConfig | None = None,
    reward: TTCReward | None = None,
) -> tuple[torch.Tensor, TTCInfo]:
    """Roll out with test-time search: physical ``inputs [B, n_in, C, *S]`` → ``(frames [B, steps, C, *S], info)``.

    Args:
        operator: the trained latent operator.
        corrector: the trained corrector (required: it proposes the candidates).
        inputs: physical input frames ``[B, n_in, C, *S]`` (the last one starts the rollout and is the reward's
            reference frame).
        steps: predicted frames.
        params: per-trajectory PDE parameters ``[B, P]``, or None.
        ttc: the ``ttc`` section: ``candidates``, ``beam_width``, ``horizon``, ``max_evaluations``, ``steps``
            (corrector sampler steps per proposal), ``sampler`` and ``reward``.
        generator: source of τ, the corrector's noise and the jitter, on the model's device (same seed, same
            result).
        projections: post-decode projections of the returned frames (the reward scores unprojected fields).
        reward: the reward to score with; default ``TTCReward(operator, operator.spec, ttc)``.

    Returns:
        Physical frames on the inputs' device and dtype, and a :class:`TTCInfo`.
    """
    if corrector is None:
        raise ValueError("rollout_ttc needs a corrector: it proposes the candidates the search scores")
    reward = TTCReward(operator, operator.spec, ttc) if reward is None else reward
    batch = inputs.shape[0]
    chosen = torch.full((batch, steps), -1, dtype=torch.long)
    evaluations = torch.zeros(batch, dtype=torch.long)
    records: list[list[StepRecord | None]] = []
    frames = []
    with evaluating(operator, corrector):
        u0, z0, cond = start_state(operator, inputs, params)
        for b in range(batch):
            ref = reward.reference(u0[b : b + 1])
            c = None if cond is None else cond[b : b + 1]
            path, used, choice, rec = _search(operator, corrector, reward, z0[b : b + 1], c, ref, steps, ttc, generator)
            u = decode_physical(operator, path)  # [steps, C, *S]
            frames.append(project_frames(u, operator.spec, projections, u0[b : b + 1].expand_as(u)))
            evaluations[b], chosen[b] = used, torch.tensor(choice, dtype=torch.long)
            records.append(rec)
    out = torch.stack(frames).to(inputs.device, inputs.dtype)
    return out, TTCInfo(evaluations=evaluations, chosen=chosen, budget=ttc.max_evaluations, records=records)

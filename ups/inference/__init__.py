"""Inference with the hybrid model: transient rollouts, test-time search, ensembles, the Surrogate wrapper.

- :func:`rollout_transient`: the operator every step, the corrector every k steps or on a physics gap, projections
  after decode.
- :func:`rollout_ttc`: beam search over corrector proposals scored by :class:`TTCReward` on fields decoded by the
  trained decoder.
- :func:`sample_ensemble`: corrector-sampled rollouts ``[M, B, T, C, *S]`` for ECE / CRPS / spread–skill.
- :class:`InferenceModel` / :func:`load_surrogate`: all of it behind the Surrogate protocol.
"""

from ups.inference.ensemble import sample_ensemble
from ups.inference.physics import physics_gap, positive_channels
from ups.inference.projection import project_frames
from ups.inference.reward import TTCReward
from ups.inference.surrogate import InferenceModel, load_surrogate
from ups.inference.transient import rollout_transient
from ups.inference.ttc import StepRecord, TTCInfo, rollout_ttc

__all__ = [
    "InferenceModel",
    "StepRecord",
    "TTCInfo",
    "TTCReward",
    "load_surrogate",
    "physics_gap",
    "positive_channels",
    "project_frames",
    "rollout_transient",
    "rollout_ttc",
    "sample_ensemble",
]

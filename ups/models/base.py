"""What the evaluator needs from a surrogate: an autoregressive rollout on physical fields."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from ups.registry import Registry


@runtime_checkable
class Surrogate(Protocol):
    """A model the harness can roll out and score.

    ``rollout`` takes physical (un-normalised) input frames and returns physical predictions; any normalisation
    lives inside the model, with statistics taken from the train split when the model was built.
    """

    n_input: int

    def rollout(self, inputs: torch.Tensor, steps: int, params: torch.Tensor | None = None) -> torch.Tensor:
        """Predict ``steps`` frames after ``inputs``.

        Args:
            inputs: ``[B, n_input, C, *S]`` the last ``n_input`` known frames.
            steps: number of frames to predict.
            params: ``[B, P]`` per-trajectory PDE parameters, or None.

        Returns:
            ``[B, steps, C, *S]`` predicted frames; input frames are not included.
        """
        ...

    def num_parameters(self) -> int: ...


#: name → model class. Every class has ``build(cfg, spec, stats) -> Surrogate``: ``cfg`` is the validated
#: :class:`~ups.config.UPSConfig` (None for baselines that need none), ``spec`` the task's
#: :class:`~ups.data.spec.TaskSpec`, and ``stats`` the train-split normalisation statistics ``{field: (mean, std)}``.
MODELS: Registry = Registry("model")

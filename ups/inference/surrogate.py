"""The hybrid model as a :class:`~ups.models.base.Surrogate`: what the evaluator rolls out, samples and times.

:class:`InferenceModel` wraps a trained latent operator and its corrector with the inference settings of a config
(corrector cadence, gap threshold, guidance λ, projections, TTC); :func:`load_surrogate` builds it from a run
directory or checkpoint, with the config the operator was trained with. A run of a grid baseline (``run.model: unet |
fno``) loads as the same wrapper: its own rollout, then the configured projections of the reported frames.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ups.config.schema import ProjectionsConfig, UPSConfig
from ups.data.spec import TaskSpec
from ups.inference.ensemble import sample_ensemble
from ups.inference.projection import project_frames
from ups.inference.transient import rollout_transient
from ups.inference.ttc import TTCInfo, rollout_ttc
from ups.models.base import Surrogate
from ups.models.diffusion_corrector import DiffusionCorrector
from ups.models.latent_operator import LatentOperator


class InferenceModel:
    """Operator + corrector + inference settings, behind the Surrogate protocol.

    ``rollout`` is deterministic: every call draws the corrector's noise from a generator seeded with
    ``cfg.run.seed``, so repeated calls (timing repeats, seeds of the harness) return the same frames.

    Args:
        operator: the trained latent operator — or any other trained Surrogate (a grid baseline), which is rolled out
            by its own ``rollout`` with the projections applied to its frames (no corrector, no TTC).
        corrector: the latent operator's trained corrector, or None (operator only).
        cfg: the config giving the inference settings (``diffusion.cadence_steps``, ``gap_threshold``,
            ``guidance_lambda``, ``ttc``, ``physics.projections``, ``run.seed``); usually ``operator.config``.
        ttc: roll out with test-time search (:func:`~ups.inference.ttc.rollout_ttc`) when a corrector exists.
        projections: post-decode projections; default ``cfg.physics.projections``.
    """

    def __init__(
        self,
        operator: LatentOperator | Surrogate,
        corrector: DiffusionCorrector | None,
        cfg: UPSConfig,
        *,
        ttc: bool = False,
        projections: ProjectionsConfig | None = None,
    ):
        self.latent = isinstance(operator, LatentOperator)
        if corrector is not None and not self.latent:
            raise ValueError("a diffusion corrector works on the latent operator's latent states only")
        self.operator, self.corrector, self.config = operator, corrector, cfg
        self.ttc = bool(ttc) and corrector is not None
        self.projections = cfg.physics.projections if projections is None else projections
        self.last_info: TTCInfo | None = None  # the search record of the latest TTC rollout

    @property
    def n_input(self) -> int:
        return self.operator.n_input

    @property
    def spec(self) -> TaskSpec | None:
        return getattr(self.operator, "spec", None)

    @property
    def stochastic(self) -> bool:
        """Whether :meth:`sample_ensemble` can draw an ensemble (a corrector exists)."""
        return self.corrector is not None

    @property
    def device(self) -> torch.device:
        """Where the model's weights live (CPU for a surrogate without any)."""
        module = self.operator if isinstance(self.operator, nn.Module) else nn.Module()
        param = next(module.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> InferenceModel:
        """Move the modules to ``device`` (in place); returns self."""
        if isinstance(self.operator, nn.Module):
            self.operator.to(device)
        if self.corrector is not None:
            self.corrector.to(device)
        return self

    def num_parameters(self) -> int:
        """Parameters of the operator and the corrector together."""
        corrector = sum(p.numel() for p in self.corrector.parameters()) if self.corrector is not None else 0
        return self.operator.num_parameters() + corrector

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def _transient_settings(self) -> dict:
        d = self.config.diffusion
        return {
            "cadence": d.cadence_steps,
            "gap_threshold": d.gap_threshold,
            "guidance_lambda": d.guidance_lambda,
            "projections": self.projections,
        }

    def rollout(self, inputs: torch.Tensor, steps: int, params: torch.Tensor | None = None) -> torch.Tensor:
        """Physical ``inputs [B, n_input, C, *S]`` → physical ``[B, steps, C, *S]`` (transient, or TTC)."""
        if not self.latent:
            frames = self.operator.rollout(inputs, steps, params)
            if self.spec is None:
                return frames
            ref = inputs[:, -1:].expand_as(frames).flatten(0, 1)  # one reference per frame: the last input frame
            out = project_frames(frames.flatten(0, 1), self.spec, self.projections, ref)
            return out.unflatten(0, frames.shape[:2])
        generator = self._generator(self.config.run.seed)
        if self.ttc:
            frames, self.last_info = rollout_ttc(
                self.operator,
                self.corrector,
                inputs,
                steps,
                params,
                ttc=self.config.ttc,
                generator=generator,
                projections=self.projections,
            )
            return frames
        return rollout_transient(
            self.operator, self.corrector, inputs, steps, params, generator=generator, **self._transient_settings()
        )

    def sample_ensemble(
        self, inputs: torch.Tensor, steps: int, params: torch.Tensor | None, n: int, seed: int
    ) -> torch.Tensor:
        """``n`` corrector-sampled transient rollouts ``[n, B, steps, C, *S]``, reproducible by ``seed``."""
        return sample_ensemble(
            self.operator,
            self.corrector,
            inputs,
            steps,
            params,
            n,
            generator=self._generator(seed),
            **self._transient_settings(),
        )


def load_surrogate(
    path: str | Path, *, ttc: bool = False, projections: ProjectionsConfig | None = None
) -> InferenceModel:
    """The trained operator and corrector of a run directory or checkpoint (evaluation weights), wrapped with the
    config they were trained with (``operator.config``).

    Args:
        path: a run directory or checkpoint directory (:func:`ups.training.state.load_trained`).
        ttc: roll out with test-time search (when the run has a corrector).
        projections: post-decode projections; default the config's ``physics.projections``.

    Raises:
        UserInputError: a missing or malformed checkpoint, or one without a latent operator.
    """
    from ups.training.state import load_trained  # the training package is heavy; import it only when loading

    operator, corrector = load_trained(path)
    return InferenceModel(operator, corrector, operator.config, ttc=ttc, projections=projections)

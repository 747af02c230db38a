"""The playbook's fail-safes: when a regression gate fails, re-evaluate the candidate with the prescribed remedy.

| failed gate                 | remedy (re-evaluated on the gate's split, every seed)                                  |
|-----------------------------|----------------------------------------------------------------------------------------|
| ``conservation_gap``        | ``projection``: every post-decode projection on (conserved integrals restored,        |
|                             | positivity, Helmholtz–Hodge where the task has the structure)                          |
| ``ece``                     | ``softer_corrector``: guidance λ halved and the corrector run twice as often           |
| ``wall_clock_s_per_rollout``| ``wider_window``: the attention window (``operator.pdet.group_size``) doubled; RoPE is |
|                             | relative, so the trained weights hold for any window                                  |

The remedy's scores are *recorded* (a ``failsafes`` row, and a line in the gate's failure message saying whether the
gate would pass with it), but the verdict stays on the candidate as configured: a harness that silently swapped in a
different model would report numbers nobody asked for. The researcher adopts a remedy by putting it in the config.
Remedies apply to trained latent-operator candidates; others have nothing to vary.
"""

from __future__ import annotations

from collections.abc import Callable

from ups.config.schema import ProjectionsConfig, UPSConfig
from ups.inference import InferenceModel
from ups.models.latent_operator import LatentOperator

Remedy = Callable[[InferenceModel], InferenceModel]


def _projection(model: InferenceModel) -> InferenceModel:
    every = ProjectionsConfig(hodge_div_free=True, positivity_clamp=True, flux_continuity=True)
    return InferenceModel(model.operator, model.corrector, model.config, ttc=model.ttc, projections=every)


def _softer_corrector(model: InferenceModel) -> InferenceModel:
    d = model.config.diffusion
    softer = d.model_copy(
        update={"guidance_lambda": d.guidance_lambda / 2, "cadence_steps": max(1, d.cadence_steps // 2)}
    )
    cfg = model.config.model_copy(update={"diffusion": softer})
    return InferenceModel(model.operator, model.corrector, cfg, ttc=model.ttc, projections=model.projections)


def _wider_window(model: InferenceModel) -> InferenceModel:
    op = model.operator
    tensors, meta = op.to_checkpoint()
    pdet = meta["config"]["operator"]["pdet"]
    pdet["group_size"] = 2 * pdet["group_size"]
    wider = LatentOperator.from_checkpoint(tensors, meta).to(model.device).eval()
    return InferenceModel(
        wider, model.corrector, UPSConfig.model_validate(meta["config"]), ttc=model.ttc, projections=model.projections
    )


#: failed gate metric → (remedy name, remedy)
FAILSAFES: dict[str, tuple[str, Remedy]] = {
    "conservation_gap": ("projection", _projection),
    "ece": ("softer_corrector", _softer_corrector),
    "wall_clock_s_per_rollout": ("wider_window", _wider_window),
}


def remedy_for(metric: str, model: object) -> tuple[str, InferenceModel] | None:
    """The remedy variant of ``model`` for a failed gate on ``metric``, or None when none applies."""
    if metric not in FAILSAFES or not isinstance(model, InferenceModel) or not model.latent:
        return None
    if metric == "ece" and model.corrector is None:
        return None
    name, remedy = FAILSAFES[metric]
    return name, remedy(model)

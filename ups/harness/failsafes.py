"""The playbook's fail-safes: when a regression gate fails, re-evaluate the candidate with the prescribed remedy.

| failed gate                 | remedy (re-evaluated on the gate's split, every seed)                                  |
|-----------------------------|----------------------------------------------------------------------------------------|
| ``conservation_gap``        | ``projection``: every post-decode projection on (conserved integrals restored,        |
|                             | positivity, Helmholtz–Hodge where the task has the structure)                          |
| ``ece``                     | ``softer_corrector``: guidance λ halved and the corrector run twice as often           |
| ``wall_clock_s_per_rollout``| ``wider_window``: the attention window (``operator.pdet.group_size``) doubled, up to   |
|                             | ``latent.tokens`` (the schema's bound); RoPE is relative, so the trained weights hold  |
|                             | for any window. Once the window spans every token: ``smaller_latent``, ``latent.dim``  |
|                             | halved with the widths that follow it, *trained anew* (same trainer, data and seed):   |
|                             | a narrower model has no trained weights to reuse                                       |

The remedy's scores are *recorded* (a ``failsafes`` row, and a line in the gate's failure message saying whether the
gate would pass with it), but the verdict stays on the candidate as configured: a harness that silently swapped in a
different model would report numbers nobody asked for. The researcher adopts a remedy by putting its ``change`` in the
config. Remedies apply to trained latent-operator candidates; others have nothing to vary. Planning a remedy only reads
the candidate's config; building it may fail (an invalid variant, a retrain that aborts), and the runner records that
as a note instead of aborting the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from ups.config.merge import get_path, set_path
from ups.config.schema import ProjectionsConfig, UPSConfig
from ups.inference import InferenceModel
from ups.models.latent_operator import LatentOperator
from ups.training.rundir import DERIVED_FROM_LATENT_DIM  # widths that default to latent.dim

#: Trains a config with the suite's trainer (cached like the candidate) and loads the trained model.
Retrain = Callable[[UPSConfig], InferenceModel]


@dataclass(frozen=True)
class Remedy:
    """One fail-safe planned for one trained candidate.

    Attributes:
        action: the remedy's name, recorded in the ``failsafes`` row.
        change: what differs from the candidate's config, in one line a researcher can copy into it.
        make: builds the variant to score; gets a :data:`Retrain` for remedies that need new weights.
    """

    action: str
    change: str
    make: Callable[[Retrain], InferenceModel]

    def build(self, retrain: Retrain) -> InferenceModel:
        """The variant. Raises whatever building it raises (UserInputError, ValueError, RuntimeError)."""
        return self.make(retrain)


def _rewrapped(
    model: InferenceModel, *, cfg: UPSConfig | None = None, projections: ProjectionsConfig | None = None
) -> InferenceModel:
    """``model``'s operator and corrector (the same trained weights) with other inference settings."""
    return InferenceModel(
        model.operator,
        model.corrector,
        cfg or model.config,
        ttc=model.ttc,
        projections=projections or model.projections,
    )


def _projection(model: InferenceModel) -> Remedy:
    every = ProjectionsConfig(hodge_div_free=True, positivity_clamp=True, flux_continuity=True)
    on = ", ".join(f"{name}: true" for name in ProjectionsConfig.model_fields)
    return Remedy("projection", f"physics.projections {{{on}}}", lambda _: _rewrapped(model, projections=every))


def _softer_corrector(model: InferenceModel) -> Remedy | None:
    if model.corrector is None:
        return None
    d = model.config.diffusion
    lam, cadence = d.guidance_lambda / 2, max(1, d.cadence_steps // 2)  # corrector every k/2 steps: twice as often
    softer = model.config.model_copy(
        update={"diffusion": d.model_copy(update={"guidance_lambda": lam, "cadence_steps": cadence})}
    )
    change = (
        f"diffusion.guidance_lambda {d.guidance_lambda:g} -> {lam:g}, diffusion.cadence_steps {d.cadence_steps} -> "
        f"{cadence}"
    )
    return Remedy("softer_corrector", change, lambda _: _rewrapped(model, cfg=softer))


def with_window(model: InferenceModel, group_size: int) -> InferenceModel:
    """``model`` with attention windows of ``group_size`` tokens, on the same trained weights.

    Raises:
        UserInputError: the config rejects the window (``group_size`` > ``latent.tokens``) or the weights do not load.
    """
    tensors, meta = model.operator.to_checkpoint()
    meta["config"]["operator"]["pdet"]["group_size"] = group_size
    wider = LatentOperator.from_checkpoint(tensors, meta).to(model.device).eval()
    return InferenceModel(wider, model.corrector, wider.config, ttc=model.ttc, projections=model.projections)


def halved_latent(cfg: UPSConfig) -> UPSConfig:
    """``cfg`` with ``latent.dim`` halved, and each width of ``DERIVED_FROM_LATENT_DIM`` that equals it halved too.

    Raises:
        ValueError: ``latent.dim`` is 1, or the narrower config is invalid (e.g. ``num_heads`` no longer divides a
            halved width); one line.
    """
    dim = cfg.latent.dim
    if dim < 2:
        raise ValueError(f"latent.dim {dim} cannot be halved")
    data = cfg.model_dump(mode="json")
    for path in ("latent.dim", *DERIVED_FROM_LATENT_DIM):
        keys = path.split(".")
        if get_path(data, keys) == (True, dim):
            set_path(data, keys, dim // 2)
    try:
        return UPSConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(k) for k in first["loc"])
        raise ValueError(f"latent.dim {dim} -> {dim // 2} is invalid: {where}: {first['msg']}") from None


def _faster(model: InferenceModel) -> Remedy:
    """A wider window while it is narrower than the token count; then a retrained, narrower latent."""
    group, tokens = model.config.operator.pdet.group_size, model.config.latent.tokens
    if group < tokens:
        wider = min(2 * group, tokens)
        change = f"operator.pdet.group_size {group} -> {wider}"
        return Remedy("wider_window", change, lambda _: with_window(model, wider))
    dim = model.config.latent.dim
    dumped = model.config.model_dump(mode="json")
    followers = [p for p in DERIVED_FROM_LATENT_DIM if get_path(dumped, p.split("."))[1] == dim]
    with_them = f" with {', '.join(followers)}" if followers else ""
    change = f"latent.dim {dim} -> {dim // 2}{with_them} (retrained: the window already spans all {tokens} tokens)"
    return Remedy("smaller_latent", change, lambda retrain: retrain(halved_latent(model.config)))


#: failed gate metric → planner of its remedy for one trained candidate (None: nothing to vary)
FAILSAFES: dict[str, Callable[[InferenceModel], Remedy | None]] = {
    "conservation_gap": _projection,
    "ece": _softer_corrector,
    "wall_clock_s_per_rollout": _faster,
}


def remedy_for(metric: str, model: object) -> Remedy | None:
    """The remedy for a failed gate on ``metric`` of the trained candidate ``model``, or None when none applies.

    Only reads the model's config; :meth:`Remedy.build` does the work (and may fail).
    """
    if metric not in FAILSAFES or not isinstance(model, InferenceModel) or not model.latent:
        return None
    return FAILSAFES[metric](model)

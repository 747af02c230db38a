"""Guards of the training loop: hard abort (NaN/Inf, physics spike) and early stop against persistence.

- **Hard abort** (:class:`TrainingAborted`): a non-finite loss or gradient norm, a non-finite validation metric, or
  a validation conservation gap above ``training.physics_spike_factor ×`` the reference gap, where the reference is
  ``max(persistence's gap on val, SPIKE_FLOOR, the lowest gap of this stage's earlier validations)``. The persistence
  term is the baseline; the floor keeps a task whose data conserve exactly (persistence gap ≈ 0, e.g. burgers1d mass)
  from aborting on round-off-sized gaps (a 1% relative gap is never a spike); the run's own best keeps an untrained
  model's large-but-falling gap from counting as a spike (the first validation only sets it). The failing step is not
  checkpointed, so the last checkpoint is the last good state.
- **Early stop**: at ``training.early_stop_at ×`` the operator stage's steps, the best validation proxy so far (mean
  nRMSE over the val trajectories of a k-step rollout) must be at least one σ below persistence's, with σ the standard
  deviation (ddof = 1) of persistence's per-trajectory proxy over the val trajectories; otherwise the run stops there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

SPIKE_FLOOR = 1e-2  # relative conservation gap below which nothing counts as a spike


class TrainingAborted(RuntimeError):
    """Training stopped by a hard guard; ``str(err)`` is one line saying why and where the last good checkpoint is.

    The CLI prints it and exits with :attr:`exit_code`.
    """

    exit_code = 3


@dataclass(frozen=True)
class Baseline:
    """Persistence on the validation split: the floor the proxy is read against."""

    proxy: float  # mean over val trajectories of the per-trajectory nRMSE over the k-step rollout
    sigma: float  # std (ddof = 1) of that per-trajectory nRMSE over the val trajectories
    conservation_gap: float | None  # None when the task conserves nothing
    steps: int  # k

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class GuardState:
    """What the guards remember across validations (saved in checkpoints so a resumed run decides identically)."""

    best_proxy: float = math.inf
    best_gap: float = math.inf  # lowest val conservation gap so far (the spike reference's own-run term)
    early_stop_checked: bool = False
    outcome: str = "completed"  # completed | early_stop | aborted
    reason: str = ""
    history: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GuardState:
        return cls(**d)


def check_finite_losses(losses: dict[str, float], where: str) -> None:
    """Raise :class:`TrainingAborted` naming the first non-finite loss term."""
    bad = [k for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        terms = ", ".join(f"{k}={losses[k]}" for k in bad)
        raise TrainingAborted(f"{where}: non-finite loss ({terms})")


def check_validation(
    metrics: dict[str, float], state: GuardState, baseline: Baseline | None, spike_factor: float | None, where: str
) -> None:
    """Abort on a non-finite validation metric or a conservation-gap spike; record the gap in ``state``."""
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise TrainingAborted(f"{where}: non-finite validation metric ({', '.join(f'{k}={metrics[k]}' for k in bad)})")
    gap = metrics.get("val_conservation_gap")
    if gap is None or baseline is None or baseline.conservation_gap is None:
        return
    first = not math.isfinite(state.best_gap)
    reference = max(baseline.conservation_gap, SPIKE_FLOOR, gap if first else state.best_gap)
    state.best_gap = min(state.best_gap, gap)
    if spike_factor is not None and gap > spike_factor * reference:
        raise TrainingAborted(
            f"{where}: physics spike: val conservation gap {gap:.3g} > {spike_factor:g} × reference {reference:.3g} "
            f"(persistence {baseline.conservation_gap:.3g}, floor {SPIKE_FLOOR:g}, best so far {state.best_gap:.3g})"
        )


def should_early_stop(state: GuardState, baseline: Baseline) -> tuple[bool, str]:
    """The early-stop decision at the checkpoint fraction of the budget: (stop?, one-line reason)."""
    target = baseline.proxy - baseline.sigma
    verdict = (
        f"best val nRMSE {state.best_proxy:.4g} vs persistence {baseline.proxy:.4g} - 1σ ({baseline.sigma:.3g}) "
        f"= {target:.4g}"
    )
    return state.best_proxy > target, verdict

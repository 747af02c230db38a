"""The run's 3-line post-mortem (playbook: what changed / why it helped or hurt / what next), filled with what the
trainer can say on its own: the config diff against the schema defaults, the final validation proxy against
persistence, and the guard outcome with the playbook's next step for it."""

from __future__ import annotations

from typing import Any

from ups.config.schema import UPSConfig
from ups.training.rundir import config_diff

MAX_DIFF_ITEMS = 20


def run_notes(cfg: UPSConfig, metrics: dict[str, Any]) -> list[str]:
    """Three lines: ``what changed: …``, ``why it helped/hurt: …``, ``what next: …``."""
    diff = config_diff(cfg)
    shown = ", ".join(diff[:MAX_DIFF_ITEMS]) + (
        f" (+{len(diff) - MAX_DIFF_ITEMS} more)" if len(diff) > MAX_DIFF_ITEMS else ""
    )
    changed = f"what changed: config vs defaults: {shown or 'none (schema defaults)'}"

    baseline, stages = metrics.get("baseline"), metrics.get("stages", {})
    final = stages.get("operator", stages.get("steady_prior", {}))
    val = final.get("val_nrmse")
    if val is None:
        why = "why it helped/hurt: no validation proxy was computed"
    elif baseline:
        b, sigma = baseline["proxy"], baseline["sigma"]
        margin = (b - val) / sigma if sigma > 0 else float("inf") if b > val else float("-inf")
        verdict = "helped" if val < b - sigma else "did not beat persistence by 1σ"
        why = (
            f"why it helped/hurt: {verdict}: val nRMSE over {baseline['steps']} steps {val:.4g} vs persistence "
            f"{b:.4g} (persistence/model {b / val:.2f}, {margin:+.1f}σ; σ={sigma:.3g})"
        )
    else:
        why = f"why it helped/hurt: val nRMSE {val:.4g} (no persistence baseline for this task)"

    outcome, reason = metrics.get("guard", "completed"), metrics.get("guard_reason", "")
    advice = {
        "completed": "lock the config as a candidate and run the small eval against the champion",
        "early_stop": "flat proxy: tune optimizer/schedule first (LR ×{0.5,1.5}, warm-up 3-6%, EMA) per the playbook",
        "aborted": "fix the instability: lower LR 0.7×, check grad clip and inverse-loss weights, then rerun",
    }[outcome]
    if outcome == "completed" and val is not None and baseline and val >= baseline["proxy"] - baseline["sigma"]:
        advice = "train longer or scale one axis (latent tokens ×1.5 or dim ×1.4), keeping the schedule"
    nxt = f"what next: guard {outcome}{f' ({reason})' if reason else ''}; {advice}"
    return [changed, why, " ".join(nxt.split())]

"""The evaluation report of ``ups evaluate``: one self-contained HTML page per evaluated model.

Per split: the scoreboard of the model beside the persistence baseline (mean ± std over seeds), then Altair charts of
the curves from :mod:`ups.eval.report_data`: rollout panels of the first trajectory (target, prediction, persistence
at a few steps; line charts in 1D, heatmaps of the first field in 2D), the last-step radial energy spectra, the
per-step correlation with the truth, and the calibration diagram of the ensemble's central intervals (only when the
model has an ensemble; otherwise a line says so).

The page loads nothing from the network (Vega inlined by :mod:`ups.report.embed`); every user-provided string
(labels, run ids, paths, split and field names) is HTML-escaped in the page and JSON-escaped inside the scripts.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import altair as alt
import numpy as np

from ups.eval.report_data import SplitCurves
from ups.metrics import format_metric_name
from ups.report.embed import embed_call, vega_script

#: the correlation below which a rollout counts as decorrelated (``rollout_horizon``'s default threshold)
HORIZON_THRESHOLD = 0.8
SERIES_ORDER = ["target", "prediction", "persistence"]
SERIES_COLORS = ["#333333", "#1f77b4", "#ff7f0e"]


def _num(x: object) -> float | None:
    """A finite float, or None (JSON null: Vega leaves the point out) for NaN, ±inf and None."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _series_color() -> alt.Color:
    return alt.Color("series:N", scale=alt.Scale(domain=SERIES_ORDER, range=SERIES_COLORS), title=None)


def _panels_chart(curves: SplitCurves) -> alt.TopLevelMixin:
    """Rollout panels: 1D line charts per (field, step), or 2D heatmaps per (series, step)."""
    records = [r | {"value": _num(r["value"])} for r in curves.panels]
    data = alt.Data(values=records)
    if records and "x" in records[0]:
        base = (
            alt.Chart(data)
            .mark_line(strokeWidth=1.5)
            .encode(
                x=alt.X("x:Q", title="cell"),
                y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
                color=_series_color(),
                tooltip=["series:N", "step:O", "x:Q", alt.Tooltip("value:Q", format=".4g")],
            )
            .properties(width=170, height=120)
        )
        return base.facet(
            row=alt.Row("field:N", title=None),
            column=alt.Column("step:O", title="rollout panels, first trajectory: predicted step"),
        )
    base = (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=alt.X("j:O", axis=None),
            y=alt.Y("i:O", axis=None, sort="descending"),
            color=alt.Color("value:Q", scale=alt.Scale(scheme="viridis"), title=records[0]["field"] if records else ""),
            tooltip=["series:N", "step:O", "i:O", "j:O", alt.Tooltip("value:Q", format=".4g")],
        )
        .properties(width=130, height=130)
    )
    return base.facet(
        row=alt.Row("series:N", sort=SERIES_ORDER, title=None),
        column=alt.Column("step:O", title="rollout panels, first trajectory: predicted step"),
    )


def _spectrum_chart(curves: SplitCurves) -> alt.Chart:
    """Log-log spectra; shells below 1e-12 of the target's peak (round-off, which ``spectral_error`` skips too) and
    empty shells (a log axis cannot show 0) are left out."""
    floor = 1e-12 * float(np.max(curves.spectrum["target"], initial=0.0))
    k_max = max(len(s) for s in curves.spectrum.values())
    records = [
        {"series": name, "k": k, "energy": float(e)}
        for name, spectrum in curves.spectrum.items()
        for k, e in enumerate(spectrum, start=1)
        if np.isfinite(e) and e > floor and e > 0
    ]
    return (
        alt.Chart(alt.Data(values=records), title="energy spectrum, last step (mean over trajectories)")
        .mark_line(point=True)
        .encode(
            x=alt.X("k:Q", title="shell |k|", scale=alt.Scale(type="log", domain=[1, max(k_max, 2)])),
            y=alt.Y("energy:Q", title="E(k)", scale=alt.Scale(type="log")),
            color=_series_color(),
            tooltip=["series:N", "k:Q", alt.Tooltip("energy:Q", format=".3e")],
        )
        .properties(width=260, height=200)
    )


def _correlation_chart(curves: SplitCurves) -> alt.LayerChart:
    records = [
        {"series": name, "step": t, "rho": _num(r)}
        for name, rho in curves.correlation.items()
        for t, r in enumerate(rho, start=1)
    ]
    lines = (
        alt.Chart(alt.Data(values=records), title="correlation with the truth (mean over trajectories)")
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q", title="predicted step", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("rho:Q", title="Pearson ρ", scale=alt.Scale(domain=[min(0.0, _low(records)), 1.0])),
            color=_series_color(),
            tooltip=["series:N", "step:Q", alt.Tooltip("rho:Q", format=".4f")],
        )
    )
    rule = (
        alt.Chart(alt.Data(values=[{"threshold": HORIZON_THRESHOLD}]))
        .mark_rule(color="gray", strokeDash=[4, 3])
        .encode(y="threshold:Q")
    )
    return alt.layer(lines, rule).properties(width=260, height=200)


def _low(records: list[dict]) -> float:
    values = [r["rho"] for r in records if r["rho"] is not None]
    return min(values) if values else 0.0


def _calibration_chart(curves: SplitCurves) -> alt.LayerChart:
    records = [
        {"nominal": a, "observed": _num(c)} for a, c in zip(curves.nominal, curves.coverage, strict=True)
    ]  # fmt: skip
    diagonal = (
        alt.Chart(alt.Data(values=[{"nominal": 0.0, "observed": 0.0}, {"nominal": 1.0, "observed": 1.0}]))
        .mark_line(color="gray", strokeDash=[4, 3])
        .encode(x="nominal:Q", y="observed:Q")
    )
    points = (
        alt.Chart(alt.Data(values=records), title="calibration: central predictive intervals")
        .mark_line(point=True, color=SERIES_COLORS[1])
        .encode(
            x=alt.X("nominal:Q", title="nominal coverage", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("observed:Q", title="observed coverage", scale=alt.Scale(domain=[0, 1])),
            tooltip=[alt.Tooltip("nominal:Q", format=".2f"), alt.Tooltip("observed:Q", format=".3f")],
        )
    )
    return alt.layer(diagonal, points).properties(width=200, height=200)


def split_chart(curves: SplitCurves) -> alt.TopLevelMixin:
    """The charts of one split: rollout panels above, spectrum, correlation (and calibration) below."""
    row = [_spectrum_chart(curves), _correlation_chart(curves)]
    if curves.coverage is not None:
        row.append(_calibration_chart(curves))
    return alt.vconcat(_panels_chart(curves), alt.hconcat(*row))


def _fmt(values: Sequence[float | None]) -> str:
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values or all(v is None for v in values):
        return "n/a"
    if len(finite) < len(values):
        return "nan"
    if len(finite) == 1:
        return f"{finite[0]:.4g}"
    return f"{np.mean(finite):.4g} ± {np.std(finite, ddof=1):.2g}"


def _scoreboard_table(rows: Iterable[dict], split: str, label: str) -> str:
    """Metric rows of one split: the model beside persistence, each the mean ± std over seeds."""
    table: dict[str, dict[str, list]] = {}
    for r in rows:
        if r["split"] != split:
            continue
        name = format_metric_name(r["metric"], r["horizon"])
        table.setdefault(name, {}).setdefault(r["model"], []).append(r["value"])
    models = [label] + (["persistence"] if label != "persistence" else [])
    head = "<tr><th>metric</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in models) + "</tr>"
    body = "\n".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{html.escape(_fmt(by_model.get(m, [])))}</td>" for m in models)
        + "</tr>"
        for name, by_model in table.items()
    )
    return f"<table>\n<thead>{head}</thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def render_eval_report(
    path: str | Path,
    *,
    label: str,
    header: Sequence[tuple[str, str]],
    rows: Sequence[dict],
    curves: Sequence[SplitCurves],
) -> Path:
    """Write the evaluation report to ``path``.

    Args:
        path: the HTML file (parent created if missing).
        label: the model's label, as in the ``model`` column of ``rows``.
        header: ``(key, value)`` facts shown at the top (run id, config, checkpoint, seeds, ...).
        rows: metric rows ``{model, split, seed, metric, horizon, value}`` of the model and of ``persistence``.
        curves: the curves of each split, in the order shown.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    facts = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in header)
    sections, scripts = [], []
    for i, c in enumerate(curves):
        calibration = (
            ""
            if c.coverage is not None
            else "<p>No calibration diagram: this model has no ensemble (no corrector), so ECE, CRPS and spread-skill "
            "do not apply.</p>"
        )
        sections.append(
            f"<section>\n<h2>split: {html.escape(c.split)}</h2>\n{_scoreboard_table(rows, c.split, label)}\n"
            f'<div id="split-{i}" class="charts"></div>\n{calibration}\n</section>'
        )
        scripts.append(embed_call(f"split-{i}", split_chart(c).to_dict()))
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>UPS evaluation: {html.escape(label)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f4f4f4; text-align: left; }}
.charts {{ margin: 1em 0; }}
</style>
{vega_script()}
</head>
<body>
<h1>UPS evaluation: {html.escape(label)}</h1>
<p>Decoded physical fields over autoregressive rollouts (input frames excluded), the model ("prediction") beside the
persistence baseline (the last input frame copied). Table values: mean ± std over seeds. Curves: the first seed.</p>
<table>
{facts}
</table>
{"".join(sections)}
<script>
{chr(10).join(scripts)}
</script>
</body>
</html>
"""
    path.write_text(page, encoding="utf-8")
    return path

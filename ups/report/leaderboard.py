"""The leaderboard: ``leaderboard.csv``, an offline ``leaderboard.html`` and ``leaderboard.png`` from the results store.

Per task, one row of Altair panels: nRMSE by run, then conservation gap and BC violation by run with red horizontal
rules at their gate thresholds (champion × regression ratio). Panels without data are left out.

The HTML is written here rather than by ``chart.save``: vl-convert's page embeds the spec verbatim inside a
``<script>``, so a run label containing ``</script>`` would end the script early. Here the spec JSON has ``<``, ``>``
and ``&`` escaped as ``\\u003c`` etc., every user string in the table goes through ``html.escape``, and Vega,
Vega-Lite and vega-embed are inlined from ``vl_convert.javascript_bundle`` so the page works offline.
"""

from __future__ import annotations

import csv
import html
import math
from datetime import datetime
from pathlib import Path

import altair as alt
import vl_convert

from ups.report.embed import VL_VERSION, embed_call, vega_script
from ups.store.results import LEADERBOARD_COLUMNS, ResultsStore

# (leaderboard column, stored metric name the threshold is keyed by, panel title)
PANELS = (
    ("nRMSE", "nrmse", "nRMSE (test, mean over seeds)"),
    ("cons_gap", "conservation_gap", "conservation gap"),
    ("bc_violation", "bc_violation", "BC violation"),
)
RED_LINE_METRICS = ("conservation_gap", "bc_violation")


def _finite(x: object) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _display_names(rows: list[dict]) -> dict[str, str]:
    """run_id → axis label: the run's label, with the run id appended where two runs share a label."""
    labels: dict[str, str] = {}
    for r in rows:
        labels.setdefault(r["run_id"], r["label"] or r["run_id"])
    counts: dict[str, int] = {}
    for name in labels.values():
        counts[name] = counts.get(name, 0) + 1
    return {rid: name if counts[name] == 1 or name == rid else f"{name} ({rid})" for rid, name in labels.items()}


def _panel(task_rows: list[dict], column: str, title: str, order: list[str], threshold: float | None) -> alt.Chart:
    values = [
        {
            "run": r["run"],
            "run_id": r["run_id"],
            "commit": r["commit"],
            "config_hash": r["config_hash"],
            "value": _finite(r[column]),
        }
        for r in task_rows
    ]
    bars = (
        alt.Chart(alt.Data(values=values), title=title)
        .mark_bar()
        .encode(
            x=alt.X("run:N", sort=order, title=None, axis=alt.Axis(labelAngle=-30, labelLimit=200)),
            y=alt.Y("value:Q", title=column),
            tooltip=["run_id:N", "run:N", "commit:N", "config_hash:N", alt.Tooltip("value:Q", format=".4g")],
        )
        .properties(width=max(120, 40 * len(order)), height=180)
    )
    if threshold is None:
        return bars
    rule = (
        alt.Chart(alt.Data(values=[{"threshold": threshold}]))
        .mark_rule(color="red", strokeWidth=2, strokeDash=[6, 3])
        .encode(y="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", format=".4g")])
    )
    return alt.layer(bars, rule)


def build_chart(rows: list[dict], thresholds: dict[str, dict[str, float]]) -> alt.TopLevelMixin:
    """The leaderboard figure: one row of panels per task (see module docstring)."""
    if not rows:
        return alt.Chart(alt.Data(values=[{"text": "no results yet"}])).mark_text(size=16).encode(text="text:N")
    names = _display_names(rows)
    order = list(dict.fromkeys(names[r["run_id"]] for r in rows))  # rows come oldest first
    task_charts = []
    for task in sorted({r["task"] for r in rows}):
        task_rows = [r | {"run": names[r["run_id"]]} for r in rows if r["task"] == task]
        panels = []
        for column, metric, title in PANELS:
            if all(_finite(r[column]) is None for r in task_rows):
                continue  # e.g. bc_violation on a periodic domain
            threshold = _finite(thresholds.get(task, {}).get(metric))
            panels.append(_panel(task_rows, column, f"{task}: {title}", order, threshold))
        if panels:
            task_charts.append(alt.hconcat(*panels))
    if not task_charts:
        return alt.Chart(alt.Data(values=[{"text": "no test-split metrics yet"}])).mark_text().encode(text="text:N")
    return alt.vconcat(*task_charts).resolve_scale(x="independent")


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _html_page(spec: dict, rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in LEADERBOARD_COLUMNS)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in LEADERBOARD_COLUMNS) + "</tr>" for r in rows
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>UPS leaderboard</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 13px; margin-top: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f4f4f4; }}
</style>
{vega_script()}
</head>
<body>
<h1>UPS leaderboard</h1>
<p>Mean over seeds, test split, whole rollout. Red lines: regression-gate thresholds (champion &times; ratio).</p>
<div id="chart"></div>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<script>
{embed_call("chart", spec)}
</script>
</body>
</html>
"""


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LEADERBOARD_COLUMNS)
        for r in rows:
            writer.writerow(
                "" if r[c] is None else r[c].isoformat() if isinstance(r[c], datetime) else r[c]
                for c in LEADERBOARD_COLUMNS
            )


def render_leaderboard(
    store: ResultsStore, out_dir: Path, *, thresholds: dict[str, dict[str, float]] | None = None
) -> dict[str, Path]:
    """Write ``leaderboard.csv``, ``leaderboard.html`` and ``leaderboard.png`` under ``out_dir``.

    Args:
        store: the results store to read the leaderboard view from.
        out_dir: created if missing; the three files are overwritten.
        thresholds: ``{task: {metric: value}}`` red lines, e.g. ``{"burgers1d": {"conservation_gap": 2e-3}}``.
            None takes, per task, the newest stored regression-gate threshold on conservation_gap and bc_violation.

    Returns:
        ``{"csv": path, "html": path, "png": path}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = store.leaderboard()
    if thresholds is None:
        thresholds = store.gate_thresholds(RED_LINE_METRICS)
    spec = build_chart(rows, thresholds).to_dict()
    paths = {
        "csv": out_dir / "leaderboard.csv",
        "html": out_dir / "leaderboard.html",
        "png": out_dir / "leaderboard.png",
    }
    _write_csv(paths["csv"], rows)
    paths["html"].write_text(_html_page(spec, rows), encoding="utf-8")
    paths["png"].write_bytes(vl_convert.vegalite_to_png(spec, vl_version=VL_VERSION, scale=2))
    return paths

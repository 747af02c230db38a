"""The HTML report (ups/report/eval_report.py): offline page, escaped user text, 2D heatmaps, gaps for NaN values."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ups.data.spec import TaskSpec
from ups.eval.report_data import split_curves
from ups.report.eval_report import render_eval_report

SPEC_2D = TaskSpec(task="diffreact2d", fields=("u</script>", "v"), grid_shape=(16, 16), domain=(1.0, 1.0), dt=0.1)


def _specs(page: str) -> list[dict]:
    decoder, specs = json.JSONDecoder(), []
    for match in re.finditer(r'vegaEmbed\("#split-\d+", ', page):
        spec, _ = decoder.raw_decode(page[match.end() :])
        specs.append(spec)
    return specs


def _marks(node) -> list[str]:
    if isinstance(node, dict):
        mark = node.get("mark")
        found = [mark["type"] if isinstance(mark, dict) else mark] if mark else []
        return found + [m for v in node.values() for m in _marks(v)]
    if isinstance(node, list):
        return [m for v in node for m in _marks(v)]
    return []


def test_2d_report_has_heatmaps_calibration_and_nulls_for_nan(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.normal(size=(2, 3, 2, 16, 16))
    pred = target + 0.1 * rng.normal(size=target.shape)
    persistence = np.repeat(target[:, :1], 3, axis=1)
    persistence[:, 1:] = 1.0  # constant frames: their correlation is NaN
    samples = pred + 0.1 * rng.normal(size=(4, *target.shape))
    with pytest.warns(RuntimeWarning, match="zero denominator in pearson"):
        curves = split_curves("ood_<b>", pred, target, persistence, SPEC_2D, samples=samples)
    assert np.isnan(curves.correlation["persistence"][1])
    rows = [
        {"model": "m<i>", "split": "ood_<b>", "seed": s, "metric": "nrmse", "horizon": None, "value": v}
        for s, v in ((0, 0.1), (1, 0.3))
    ] + [{"model": "persistence", "split": "ood_<b>", "seed": 0, "metric": "nrmse", "horizon": None, "value": 0.5}]
    path = render_eval_report(
        tmp_path / "r.html", label="m<i>", header=[("config", "a&b.yaml")], rows=rows, curves=[curves]
    )
    page = path.read_text()

    assert "<i>" not in page and "<b>" not in page and "u</script>" not in page  # escaped in HTML and in the JSON
    assert "split: ood_&lt;b&gt;" in page and "a&amp;b.yaml" in page
    assert "0.2 ± 0.14" in page  # nRMSE mean ± std over the two seeds
    assert not re.search(r"""src\s*=\s*["']?\s*(https?:)?//""", page)
    (spec,) = _specs(page)
    assert {"rect", "line", "rule"} <= set(_marks(spec))  # heatmaps, curves, the 0.8 correlation threshold
    text = json.dumps(spec)
    assert "calibration: central predictive intervals" in text
    correlation = next(
        d["values"] for d in _walk_data(spec) if d["values"] and "rho" in d["values"][0]
    )  # the correlation curve's records
    gaps = [r for r in correlation if r["series"] == "persistence" and r["rho"] is None]
    assert [r["step"] for r in gaps] == [2, 3]
    heat = next(d["values"] for d in _walk_data(spec) if d["values"] and "i" in d["values"][0])
    assert {r["field"] for r in heat} == {"u</script>"} and len(heat) == 3 * 3 * 16 * 16  # series × steps × cells


def _walk_data(node):
    if isinstance(node, dict):
        if isinstance(node.get("data"), dict) and "values" in node["data"]:
            yield node["data"]
        for v in node.values():
            yield from _walk_data(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_data(v)

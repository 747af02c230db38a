"""Tests for ups/report/leaderboard.py: files written, offline HTML, escaping of user text, red threshold rules."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from ups.report.leaderboard import render_leaderboard
from ups.store.results import LEADERBOARD_COLUMNS, ResultsStore

EVIL = "<script>alert('x')</script> & co"


def _rows(task: str, nrmse: float, gap: float, bc: float | None) -> list[dict]:
    out = []
    for seed in (0, 1):
        for name, value in (("nrmse", nrmse + seed * 0.01), ("conservation_gap", gap), ("bc_violation", bc)):
            out.append({"task": task, "split": "test", "seed": seed, "metric": name, "horizon": None, "value": value})
    return out


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    s = ResultsStore(tmp_path / "results.duckdb")
    base = {"suite": "small", "commit": "c0ffee", "config_hash": "cfg", "seeds": [0, 1]}
    gate = {"gate_set": "regression", "rule": "max_ratio", "candidate": 1e-3, "champion": 1e-3, "outcome": "pass"}
    s.ingest(
        base | {"run_id": "r1", "label": "baseline", "created_at": "2025-01-01T00:00:00Z"},
        _rows("burgers1d", 0.1, 1e-3, None) + _rows("heat2d", 0.05, 2e-4, 3e-4),
        [gate | {"task": "burgers1d", "metric": "conservation_gap", "threshold": 2e-3}],
    )
    s.ingest(
        base | {"run_id": "r2", "label": EVIL, "created_at": "2025-01-02T00:00:00Z"},
        _rows("burgers1d", 0.08, 9e-4, None),
        [],
    )
    return s


def _spec_from_html(page: str) -> dict:
    start = page.index('vegaEmbed("#chart", ') + len('vegaEmbed("#chart", ')
    spec, _ = json.JSONDecoder().raw_decode(page[start:])
    return spec


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_renders_html_png_and_csv(store: ResultsStore, tmp_path: Path):
    t0 = time.perf_counter()
    paths = render_leaderboard(store, tmp_path / "out")
    elapsed = time.perf_counter() - t0
    print(f"render_leaderboard: {elapsed:.2f} s")
    assert elapsed < 10  # ~1.5 s on a quiet machine; loose bound for shared CI
    assert set(paths) == {"csv", "html", "png"} and all(p.is_file() for p in paths.values())
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with paths["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == LEADERBOARD_COLUMNS and len(rows) == 3
    assert {r["label"] for r in rows} == {"baseline", EVIL}


def test_html_is_offline(store: ResultsStore, tmp_path: Path):
    page = render_leaderboard(store, tmp_path)["html"].read_text()
    assert 'src="http' not in page and "src='http" not in page
    assert "window.vegaEmbed" in page  # vega-embed inlined, not fetched


def test_user_text_is_escaped(store: ResultsStore, tmp_path: Path):
    page = render_leaderboard(store, tmp_path)["html"].read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page  # the table cell
    assert "\\u003cscript\\u003ealert" in page  # the spec JSON inside <script>
    assert page.count("</script>") == page.count("<script>") == 2  # the bundle and the embed call, nothing else
    labels = {d.get("run") for d in _walk(_spec_from_html(page)) if "run" in d}
    assert any(label and label.startswith(EVIL) for label in labels)  # the chart still shows the real label


def test_red_threshold_rule_in_spec(store: ResultsStore, tmp_path: Path):
    spec = _spec_from_html(render_leaderboard(store, tmp_path)["html"].read_text())
    rules = [
        d
        for d in _walk(spec)
        if d.get("mark", {}) == {"type": "rule", "color": "red", "strokeWidth": 2, "strokeDash": [6, 3]}
    ]
    assert len(rules) == 1  # burgers1d conservation gap, from the stored regression gate
    thresholds = [d["threshold"] for d in _walk(spec) if "threshold" in d and isinstance(d["threshold"], float)]
    assert thresholds == [pytest.approx(2e-3)]


def test_explicit_thresholds_and_empty_panels(store: ResultsStore, tmp_path: Path):
    thresholds = {"burgers1d": {"conservation_gap": 5e-3}, "heat2d": {"conservation_gap": 1e-3, "bc_violation": 4e-4}}
    spec = _spec_from_html(render_leaderboard(store, tmp_path, thresholds=thresholds)["html"].read_text())
    red = [d for d in _walk(spec) if isinstance(d.get("mark"), dict) and d["mark"].get("color") == "red"]
    assert len(red) == 3
    titles = [d["title"] for d in _walk(spec) if isinstance(d.get("title"), str)]
    assert "heat2d: BC violation" in titles
    assert "burgers1d: BC violation" not in titles  # no data (periodic domain): panel skipped


def test_empty_store_renders(tmp_path: Path):
    paths = render_leaderboard(ResultsStore(tmp_path / "empty.duckdb"), tmp_path)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"

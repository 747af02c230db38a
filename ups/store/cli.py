"""``ups leaderboard``: render the leaderboard files from the results store and print it as a table."""

from __future__ import annotations

import argparse
from pathlib import Path

from ups.store.results import LEADERBOARD_COLUMNS, ResultsStore


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``leaderboard`` subcommand; its handler is ``args.func(args) -> int``."""
    p = subparsers.add_parser("leaderboard", help="render reports/leaderboard.{html,png,csv} and print the leaderboard")
    p.add_argument("--db", type=Path, default=Path("reports/results.duckdb"), help="DuckDB results store")
    p.add_argument("--out-dir", type=Path, default=Path("reports"), help="where the leaderboard files go")
    p.set_defaults(func=run_leaderboard)


def format_table(rows: list[dict], columns: tuple[str, ...] = LEADERBOARD_COLUMNS) -> str:
    """A plain-text table: one header line, one line per row, columns padded to their widest cell."""

    def cell(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        if hasattr(v, "isoformat"):
            return v.isoformat(sep=" ", timespec="seconds")
        return str(v)

    cells = [[cell(r[c]) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def run_leaderboard(args: argparse.Namespace) -> int:
    """Render the files, print the table and their paths. A missing db is a UserInputError."""
    from ups.report.leaderboard import render_leaderboard

    store = ResultsStore(args.db, create=False)
    paths = render_leaderboard(store, args.out_dir)
    rows = store.leaderboard()
    print(format_table(rows) if rows else f"no runs in {args.db}")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0

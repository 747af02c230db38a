"""``ups data generate|validate|info``: the data layer's command-line entry points.

:func:`register` adds the ``data`` command to the top-level parser; each sub-command stores its handler as
``func`` (``args.func(args) -> int``). Bad input raises :class:`~ups.errors.UserInputError`, which the top-level CLI
prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse

from ups.data.solvers import TASKS
from ups.data.store import DatasetStore, validate_store


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` and its sub-commands to ``subparsers`` (from ``parser.add_subparsers()``)."""
    data = subparsers.add_parser("data", help="generate, validate and inspect dataset stores")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="{generate,validate,info}")

    gen = sub.add_parser("generate", help="run a task's reference solver into a Zarr store")
    gen.add_argument("--task", required=True, help=f"task name ({', '.join(TASKS.names())})")
    gen.add_argument("--size", default="small", help="small (CI-fast) or full (PDEBench-like); default small")
    gen.add_argument("--out", required=True, help="store path, e.g. data/burgers1d-small.zarr")
    gen.add_argument("--seed", type=int, default=0, help="seed that freezes the data and its splits; default 0")
    gen.set_defaults(func=cmd_generate)

    val = sub.add_parser("validate", help="recompute the content hash; check shapes, NaN/Inf and split disjointness")
    val.add_argument("path", help="store path")
    val.set_defaults(func=cmd_validate)

    info = sub.add_parser("info", help="print a store's task, splits, shapes, stats and hash")
    info.add_argument("path", help="store path")
    info.set_defaults(func=cmd_info)


def cmd_generate(args: argparse.Namespace) -> int:
    from ups.data.generate import generate_dataset

    path = generate_dataset(args.task, args.size, args.out, seed=args.seed)
    store = DatasetStore.open(path)
    print(f"wrote {path} ({args.task}/{args.size}, seed {args.seed}, sha256 {store.content_sha256[:12]})")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    summary = validate_store(args.path)
    splits = ", ".join(f"{name} {n}" for name, n in summary["splits"].items())
    print(f"ok: {args.path} ({summary['task']}; {splits}; sha256 {summary['content_sha256'][:12]})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    store = DatasetStore.open(args.path)
    attrs, spec = store.attrs, store.spec
    print(f"store     {store.path}")
    print(f"task      {spec.task} (solver {attrs.get('solver')}, seed {attrs.get('seed')})")
    print(f"grid      {'x'.join(map(str, spec.grid_shape))} on {spec.domain}, bc {spec.bc}, dt {spec.dt:g}")
    print(f"fields    {', '.join(spec.fields)}; params {', '.join(spec.param_names) or '-'}")
    print("splits")
    for split in store.splits:
        shape = tuple(store.array(split, spec.fields[0]).shape)
        params = store.params(split)
        ranges = ", ".join(
            f"{name} {params[:, j].min():.4g}..{params[:, j].max():.4g}"
            for j, name in enumerate(spec.param_names)
            if params.shape[0]
        )
        print(f"  {split:<12} {shape}  {ranges}")
    print("stats     (train split)")
    for field, (mean, std) in store.stats().items():
        print(f"  {field:<12} mean {mean:.6g}  std {std:.6g}")
    print(f"sha256    {store.content_sha256}")
    return 0

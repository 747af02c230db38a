"""``ups data generate|validate|info|convert``: the data layer's command-line entry points.

:func:`register` adds the ``data`` command to the top-level parser; each sub-command stores its handler as
``func`` (``args.func(args) -> int``). Bad input raises :class:`~ups.errors.UserInputError`, which the top-level CLI
prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse

from ups.data.solvers import TASKS
from ups.data.store import DatasetStore, validate_store
from ups.errors import UserInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` and its sub-commands to ``subparsers`` (from ``parser.add_subparsers()``)."""
    data = subparsers.add_parser("data", help="generate, validate and inspect dataset stores")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="{generate,validate,info,convert}")

    gen = sub.add_parser("generate", help="run a task's reference solver into a Zarr store")
    gen.add_argument("--task", required=True, help=f"task name ({', '.join(TASKS.names())})")
    gen.add_argument("--size", default="small", help="small (CI-fast) or full (PDEBench-like); default small")
    gen.add_argument("--out", required=True, help="store path, e.g. data/burgers1d-small.zarr")
    gen.add_argument("--seed", type=int, default=0, help="seed that freezes the data and its splits; default 0")
    gen.set_defaults(func=cmd_generate)

    val = sub.add_parser("validate", help="recompute the content hash; check shapes, NaN/Inf and split disjointness")
    val.add_argument("path", help="store path")
    val.set_defaults(func=cmd_validate)

    info = sub.add_parser("info", help="verify a store's content hash, then print its task, splits, shapes and stats")
    info.add_argument("path", help="store path")
    info.set_defaults(func=cmd_info)

    conv = sub.add_parser("convert", help="convert PDEBench or The Well HDF5 files into a Zarr store (streaming)")
    conv.add_argument("--format", required=True, choices=["pdebench", "the_well"], help="layout of the input files")
    conv.add_argument(
        "--input", required=True, action="extend", nargs="+", metavar="FILE", help="HDF5 file(s); repeat or list"
    )
    conv.add_argument("--out", required=True, help="store path, e.g. data/burgers-pdebench.zarr")
    conv.add_argument("--task", required=True, help="task name recorded in the store")
    conv.add_argument("--splits", default="train=0.8,val=0.1,test=0.1", help="NAME=FRACTION,...; default %(default)s")
    conv.add_argument("--seed", type=int, default=0, help="seed of the split permutation; default 0")
    conv.add_argument(
        "--bc",
        choices=["periodic", "dirichlet", "neumann", "none"],
        help="boundary condition, overriding the file's (PDEBench files record none)",
    )
    conv.add_argument("--max-mb", type=float, default=256.0, help="memory cap for array data in MiB; default 256")
    conv.set_defaults(func=cmd_convert)


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
    """Print what a store holds, after checking it: a store whose metadata, chunks or content hash are bad exits 2
    with one line instead of printing numbers read from damaged data."""
    store = DatasetStore.open(args.path)
    computed = store.verify(require_hash=False)  # reads every chunk; compares the hash when the store records one
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
    print(f"sha256    {computed} ({'verified' if store.content_sha256 else 'none recorded, not verified'})")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from ups.data.readers.convert import convert, parse_splits

    if not args.max_mb > 0:
        raise UserInputError(f"--max-mb must be positive, got {args.max_mb:g}")
    digest = convert(
        args.format,
        args.input,
        args.out,
        args.task,
        splits=parse_splits(args.splits),
        seed=args.seed,
        bc=args.bc,
        max_bytes=int(args.max_mb * 2**20),
    )
    store = DatasetStore.open(args.out)
    splits = ", ".join(f"{name} {store.ids(name).shape[0]}" for name in store.splits)
    n_files = len(args.input)
    print(f"wrote {args.out} ({args.task} from {n_files} {args.format} file(s); {splits}; sha256 {digest[:12]})")
    return 0

"""``ups config validate|show``: check a config file, or print it resolved with every default filled."""

from __future__ import annotations

import argparse

from ups.config.loader import config_hash, dump_yaml, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``config`` command group to the ``ups`` parser."""
    parser = subparsers.add_parser("config", help="validate or show a config file")
    commands = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    for name, func, text in [
        ("validate", _validate, "check a config; print its config_hash"),
        ("show", _show, "print the resolved, validated config (defaults filled) as YAML"),
    ]:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("path", help="config YAML (UPS keys or the playbook's reference-template vocabulary)")
        sub.add_argument("--root", default=None, help="directory includes must stay inside (default: the file's)")
        sub.add_argument("--no-env", action="store_true", help="ignore UPS_<SECTION>__<KEY> environment overrides")
        sub.set_defaults(func=func)


def _load(args: argparse.Namespace):
    return load_config(args.path, root=args.root, env=not args.no_env)


def _validate(args: argparse.Namespace) -> int:
    cfg = _load(args)
    print(f"ok {args.path} config_hash={config_hash(cfg)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    print(dump_yaml(_load(args)), end="")
    return 0

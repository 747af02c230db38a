"""``ups`` command line: data, config, evaluate, leaderboard, promote.

Bad user input (config, data, checkpoint, gate or champion file) prints one line naming what is wrong and exits with
code 2; nothing else is caught, so a real bug still shows its traceback.
"""

from __future__ import annotations

import argparse
import sys

from ups.errors import UserInputError


def build_parser() -> argparse.ArgumentParser:
    from ups.config.cli import register as register_config
    from ups.data.cli import register as register_data
    from ups.eval.cli import register as register_eval
    from ups.harness.cli import register as register_harness
    from ups.models.cli import register as register_models
    from ups.store.cli import register as register_store
    from ups.training.cli import register as register_train

    parser = argparse.ArgumentParser(prog="ups", description="Train, score and gate neural PDE surrogates.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in (
        register_data,
        register_config,
        register_models,
        register_train,
        register_eval,
        register_store,
        register_harness,
    ):
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserInputError as err:
        print(f"ups: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

"""The files that decide a verdict: a suite's gate file and champion snapshots (with their checkpoints), read from the
working tree or, with a champion ref, from the base branch. Loading them needs no torch, so the session checks them
before anything heavy starts: a bad file is one line and exit 2 within seconds, serial or under xdist.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from ups.errors import UserInputError
from ups.harness.champions import Champion, load_champion, verified_checkpoint
from ups.harness.gates import GateFile, check_gates_against, load_gate_file
from ups.harness.sources import Source
from ups.harness.suite import SuiteConfig


class SuiteFiles:
    """``suite``'s gate file and champions under ``root`` (or at ``source``'s ref); champion checkpoints taken from a
    ref are copied under ``cache_dir``."""

    def __init__(self, suite: SuiteConfig, *, root: Path, source: Source, cache_dir: Path):
        self.suite, self.root, self.source, self.cache_dir = suite, root, source, cache_dir

    @cached_property
    def gate_file(self) -> GateFile:
        """The suite's gate file, checked against the suite's tasks (unknown task, split, horizon: one line)."""
        path = self.root / self.suite.gates
        where = self.source.where(path)
        text = self.source.read_text(path)
        if text is None:
            raise UserInputError(f"gate file {where}: not found")
        gate_file = load_gate_file(path, text=text, where=where)
        check_gates_against(gate_file, self.suite.tasks, where)
        return gate_file

    def champion_path(self, task: str) -> Path:
        return self.root / self.suite.champions / f"{task}.json"

    def stored_champion(self, task: str) -> Champion | None:
        """The snapshot as stored; None when there is none yet."""
        return load_champion(self.champion_path(task), source=self.source)

    def champion_checkpoint(self, task: str, champion: Champion, seed: int) -> Path:
        """The champion's checkpoint folder of ``seed``, its sha256 verified.

        Raises:
            UserInputError: missing, or its bytes do not hash to the snapshot's sha256 (one line naming the folder).
        """
        entry = champion.checkpoints[seed]
        path = self.champion_path(task).parent / entry["path"]
        local = self.source.copy_dir(path, self.cache_dir / "champion_ref" / entry["sha256"][:16])
        return verified_checkpoint(local, entry, self.source.where(path))

    def check(self) -> None:
        """Load every file the verdict depends on: the gate file, each task's champion and its checkpoints."""
        self.gate_file  # noqa: B018 - loads and checks it
        for task in self.suite.tasks:
            if (champion := self.stored_champion(task)) is not None:
                for seed in champion.checkpoints:
                    self.champion_checkpoint(task, champion, seed)

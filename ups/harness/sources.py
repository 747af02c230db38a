"""Where the files that decide a verdict are read from: the working tree, or a git ref (a pull request's base).

With a champion ref, the suite file, the gate file, the champion snapshots and their checkpoints all come from that
ref (``git show <ref>:<path>``), never from the working tree a pull request may have edited: a pull request cannot
loosen its own gates or point its suite at champions of its own making.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ups.errors import UserInputError


@dataclass(frozen=True)
class Source:
    """Reads files relative to ``repo``, from the working tree (``ref`` None) or from git ``ref``."""

    repo: Path
    ref: str | None = None

    def _rel(self, path: str | Path) -> str:
        path = Path(path)
        full = path if path.is_absolute() else self.repo / path
        return Path(os.path.relpath(full.resolve(), self.repo.resolve())).as_posix()

    def where(self, path: str | Path) -> str:
        """How a file is named in messages: its path, or ``<ref>:<path>``."""
        return str(path) if self.ref is None else f"{self.ref}:{self._rel(path)}"

    def _git(self, *args: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(["git", *args], cwd=self.repo, capture_output=True, check=False, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise UserInputError(f"champion ref {self.ref!r}: git failed ({err})") from None

    def read_bytes(self, path: str | Path) -> bytes | None:
        """The file's bytes; None when it does not exist (in the working tree, or at the ref)."""
        if self.ref is None:
            full = Path(path) if Path(path).is_absolute() else self.repo / path
            return full.read_bytes() if full.is_file() else None
        proc = self._git("show", f"{self.ref}:{self._rel(path)}")
        if proc.returncode == 0:
            return proc.stdout
        err = proc.stderr.decode(errors="replace")
        if "does not exist" in err or "exists on disk, but not in" in err:
            return None
        raise UserInputError(f"champion ref {self.ref!r}: {(err.strip().splitlines() or ['git show failed'])[-1]}")

    def read_text(self, path: str | Path) -> str | None:
        """The file's UTF-8 text (None when it does not exist); text that is not UTF-8 is one line naming it."""
        data = self.read_bytes(path)
        return None if data is None else decode_utf8(data, self.where(path))

    def commit(self) -> str | None:
        """The commit the ref names (None for the working tree)."""
        if self.ref is None:
            return None
        proc = self._git("rev-parse", "--verify", f"{self.ref}^{{commit}}")
        if proc.returncode != 0:
            raise UserInputError(f"champion ref {self.ref!r}: not a commit in {self.repo}")
        return proc.stdout.decode().strip()

    def copy_dir(self, path: str | Path, dest: Path) -> Path | None:
        """A folder's files (not sub-folders) as plain files in ``dest``; the working-tree folder itself when no ref.

        None when the folder does not exist.
        """
        if self.ref is None:
            full = Path(path) if Path(path).is_absolute() else self.repo / path
            return full if full.is_dir() else None
        rel = self._rel(path)
        proc = self._git("ls-tree", "--name-only", f"{self.ref}:{rel}")
        if proc.returncode != 0:
            return None
        dest.mkdir(parents=True, exist_ok=True)
        for name in proc.stdout.decode().split():
            data = self.read_bytes(f"{rel}/{name}")
            if data is not None:
                (dest / name).write_bytes(data)
        return dest


def decode_utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserInputError(f"{where}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})") from None

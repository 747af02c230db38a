"""Where a result came from: git commit, code hash, environment. Shared by training runs and the harness."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str, cwd: str | Path = ".") -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_info(cwd: str | Path = ".") -> dict:
    """``{"commit", "dirty", "branch"}``; commit ``"unknown"`` outside a git checkout."""
    commit = _git("rev-parse", "HEAD", cwd=cwd) or "unknown"
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd) or "unknown"
    return {"commit": commit, "dirty": bool(status), "branch": branch}


@functools.cache
def code_hash() -> str:
    """sha256 over the source of every module of the ``ups`` package (path and bytes, in sorted order)."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


#: The packages whose code decides a trained model's scores apart from its weights: how it is rolled out
#: (inference), scored (metrics) and evaluated (eval), and the task facts the metrics read (data/spec.py).
SCORING_CODE = ("inference", "metrics", "eval", "data/spec.py")


@functools.cache
def scoring_code_hash() -> str:
    """sha256 over the source of :data:`SCORING_CODE` (path and bytes, in sorted order)."""
    h = hashlib.sha256()
    for part in SCORING_CODE:
        target = PACKAGE_DIR / part
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            h.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def scoring_hash(protocol: dict) -> str:
    """What a champion's numbers depend on apart from its weights and data: the scoring code and the suite's
    evaluation ``protocol`` (splits, steps, horizons, ensemble size, ...). A change re-scores the champion."""
    return canonical_hash({"code": scoring_code_hash(), "protocol": protocol})


def canonical_hash(obj: object) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def environment() -> dict:
    """Python, torch, CUDA/driver, GPU and CPU facts recorded with every run."""
    import torch  # here, not at module level: the harness checks its input files before paying for torch

    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "gpu": None,
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda_driver"] = _nvidia_driver()
    return env


def _nvidia_driver() -> str | None:
    try:
        proc = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else None

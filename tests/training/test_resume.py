"""A training run killed with SIGKILL and resumed ends bitwise equal to an uninterrupted run (CPU, one thread).

Why bitwise is possible: batches and per-step noise are functions of (seed, stage, step) alone, the checkpoint holds
the exact optimizer, scheduler and EMA state (safetensors / JSON floats round-trip exactly), and CPU kernels run
with deterministic algorithms on the same thread count.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from ups.config.loader import dump_yaml
from ups.training import train
from ups.training.checkpoint import load_checkpoint

KILL_AT_STEP = 8  # the operator stage has 24 steps and checkpoints every 4

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import torch
    torch.set_num_threads(1)
    import ups.training.loop as loop
    seed = loop.step_seed
    def slow(*args):  # slow the steps down so the parent can kill the run in the middle of the operator stage
        time.sleep(0.15)
        return seed(*args)
    loop.step_seed = slow
    from ups.training import train
    train(sys.argv[1], run_dir=sys.argv[2], data_path=sys.argv[3], progress=False)
    """
)


def _checkpoint_step(path) -> tuple[str | None, int]:
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None, -1
    return state.get("current"), (state.get("loop") or {}).get("step", -1)


def test_sigkill_then_resume_matches_an_uninterrupted_run_bitwise(make_config, tiny_store, tmp_path):
    cfg = make_config()
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(dump_yaml(cfg))
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(cfg_path), str(killed), str(tiny_store)], env=env)
    try:
        deadline = time.monotonic() + 120
        while _checkpoint_step(killed / "checkpoints" / "last")[1] < KILL_AT_STEP:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint to kill at"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    current, step = _checkpoint_step(killed / "checkpoints" / "last")
    assert current == "operator" and KILL_AT_STEP <= step < 24 and not (killed / "checkpoints" / "final").exists()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = train(cfg, run_dir=killed, resume=True, data_path=tiny_store, progress=False)
        reference = train(cfg, run_dir=tmp_path / "reference", data_path=tiny_store, progress=False)
    finally:
        torch.set_num_threads(threads)

    a, b = load_checkpoint(resumed.checkpoint_path), load_checkpoint(reference.checkpoint_path)
    assert set(a.model) == set(b.model) and any(k.startswith("student.") for k in a.model)
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)  # bitwise, every module
    assert resumed.metrics["stages"] == reference.metrics["stages"]
    rows = [(r.split(",")[1], r.split(",")[2]) for r in (killed / "curves.csv").read_text().splitlines()[1:]]
    assert len(rows) == len(set(rows)) == 12  # re-logged steps replaced, not duplicated


class _Stop(Exception):
    """Raised from the progress callback: the run stops as if killed after its step-8 checkpoint."""


def test_resume_continues_from_last_old_when_a_kill_left_only_it(make_config, tiny_store, tmp_path):
    """A kill between save_checkpoint's two renames leaves ``checkpoints/.last.old`` and no ``last``: resume picks the
    old copy up at its step and ends bitwise where an uninterrupted run ends."""
    cfg = make_config()
    run_dir = tmp_path / "killed"

    def stop_after_step_10(event):
        if event.kind == "step" and event.step == 10:
            raise _Stop

    steps: list[int] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(_Stop):
            train(cfg, stage="operator", run_dir=run_dir, data_path=tiny_store, progress=stop_after_step_10)
        last = run_dir / "checkpoints" / "last"
        assert _checkpoint_step(last) == ("operator", 8)  # saved every 4 steps
        os.replace(last, last.with_name(".last.old"))  # the first rename of the step-12 save, then the kill

        resumed = train(
            cfg, stage="operator", run_dir=run_dir, resume=True, data_path=tiny_store,
            progress=lambda e: steps.append(e.step) if e.kind == "step" else None,
        )  # fmt: skip
        reference = train(cfg, stage="operator", run_dir=tmp_path / "ref", data_path=tiny_store, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert steps[0] == 9 and steps[-1] == 24  # continued after step 8, not from 0
    assert not (run_dir / "checkpoints" / ".last.old").exists()
    a, b = load_checkpoint(resumed.checkpoint_path), load_checkpoint(reference.checkpoint_path)
    assert set(a.model) == set(b.model) and all(torch.equal(a.model[k], b.model[k]) for k in a.model)

"""``train(progress=callback)``: every stage's start, each step, its end and the run's end reach the callback."""

from __future__ import annotations

import pytest

from ups.training import TrainingAborted, train
from ups.training.objectives import OperatorObjective
from ups.training.sinks import ProgressEvent


def test_callback_sees_every_step_of_every_stage_in_order_and_the_run_end(make_config, tiny_store, tmp_path, capsys):
    events: list[ProgressEvent] = []
    cfg = make_config(stages={"operator": {"epochs": 1}})
    train(cfg, run_dir=tmp_path / "run", data_path=tiny_store, progress=events.append)
    assert capsys.readouterr().err == ""  # a callback replaces the bar / lines

    *stages, end = events
    assert end.kind == "run_end" and end.outcome == "completed" and end.elapsed_s > 0
    names = ["operator", "diff_residual", "consistency_distill"]
    totals = {"operator": 12, "diff_residual": 12, "consistency_distill": 12}
    for index, name in enumerate(names):
        mine = [e for e in stages if e.stage == name]
        assert [e.kind for e in mine] == ["start"] + ["step"] * totals[name] + ["end"]
        assert [e.step for e in mine] == [0, *range(1, totals[name] + 1), totals[name]]
        assert all(e.total == totals[name] and e.position == (index, 3) for e in mine)
        elapsed = [e.elapsed_s for e in mine]
        assert elapsed == sorted(elapsed)
        assert all(e.loss is not None for e in mine[1:])
    assert [e.stage for e in stages] == [e.stage for e in sorted(stages, key=lambda e: names.index(e.stage))]
    operator = [e for e in stages if e.stage == "operator"]
    assert operator[3].val_nrmse is None and operator[4].val_nrmse is not None  # validated every 4 steps


def test_an_aborted_run_ends_with_an_aborted_event(make_config, tiny_store, tmp_path, monkeypatch):
    forward = OperatorObjective.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 2:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(OperatorObjective, "forward", poisoned)
    events: list[ProgressEvent] = []
    with pytest.raises(TrainingAborted):
        train(make_config(), run_dir=tmp_path / "run", data_path=tiny_store, progress=events.append)
    assert [(e.kind, e.step) for e in events[-3:]] == [("step", 2), ("end", 2), ("run_end", 0)]
    assert events[-1].outcome == "aborted"


def test_progress_true_still_shows_the_stage_lines(make_config, tiny_store, tmp_path, capsys):
    cfg = make_config(stages={"operator": {"epochs": 1}})
    train(cfg, stage="operator", run_dir=tmp_path / "run", data_path=tiny_store, progress=True)
    err = capsys.readouterr().err
    assert "operator" in err and "12/12" in err  # plain lines ([operator] step 12/12 ...), or tqdm's bar

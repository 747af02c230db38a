"""The work behind the session fixtures: datasets, candidate, scoreboard and champion for each task of a suite.

Every expensive step is cached on disk under a key of everything it depends on, and guarded by a file lock so
pytest-xdist workers compute it once and all read the same bytes (that is what makes serial and parallel runs
record identical rows):

- dataset: by task, size, data seed and solver source (``ups.data.generate.cached_dataset``);
- trained model: by the resolved training config's hash, code hash, dataset content hash, seed and device
  (``<cache>/runs/<model>-<task>-s<seed>-<key>``, a normal ``ups train`` run directory);
- evaluation: by model identity, the trained run's key, code hash, dataset content hash, seed, split, steps and
  horizons.

A suite scores a *candidate* (gated against the champion) and *baselines* (reference points on the leaderboard,
never gated). Each is a registered model name (persistence) or a training config, trained here with the same
trainer; a baseline with ``budget: candidate`` trains for the wall clock the candidate's training took.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from ups.config.loader import config_hash, load_config
from ups.config.schema import UPSConfig
from ups.data.generate import cached_dataset
from ups.data.solvers import TASKS
from ups.data.store import DatasetStore
from ups.errors import CandidateFailed, UserInputError
from ups.eval.evaluate import EvalResult, evaluate_split
from ups.harness.champions import Champion
from ups.harness.gates import Gate, GateFile, GateResult, evaluate_gate
from ups.harness.sources import Source
from ups.harness.suite import ModelEntry, SuiteConfig
from ups.harness.suite_files import SuiteFiles
from ups.metrics.matched import match
from ups.metrics.seeds import SeedStat, stats_from_rows
from ups.models import MODELS, Surrogate
from ups.models.solver import ReferenceSolver
from ups.provenance import canonical_hash, code_hash, scoring_hash


@contextmanager
def _locked(path: str, wait: bool) -> Iterator[bool]:
    """Hold the file lock at ``path``; with ``wait=False`` yield False (holding nothing) when another process has it."""
    lock = FileLock(path, timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@dataclass(frozen=True)
class TaskEvaluation:
    """All seeds' scoreboards of one task: ``stats[split][metric name]`` (``nrmse@16``) and the raw per-seed results."""

    task: str
    results: tuple[EvalResult, ...]

    @cached_property
    def stats(self) -> dict[str, dict[str, SeedStat]]:
        rows = [
            {"split": r.split, "seed": r.seed, "metric": v.metric, "horizon": v.horizon, "value": v.value,
             "per_traj": v.per_traj}
            for r in self.results
            for v in r.values
        ]  # fmt: skip
        return stats_from_rows(rows)

    @property
    def machine_ref_s(self) -> float | None:
        """This session's reference-workload time (median over the results): seconds per normalised unit."""
        refs = [r.machine_ref_s for r in self.results if r.machine_ref_s]
        return statistics.median(refs) if refs else None


class SuiteRunner:
    """Lazily trains, evaluates and caches each task's models (candidate and baselines) and champion for one suite.

    Each model is its own run on the leaderboard (:meth:`run_id`); its rows go to ``sink(run_id)`` (default: dropped),
    the first of them its ``run_meta`` row: ``run_meta`` (the session's provenance: commit, code hash, environment,
    start time) plus what this suite says about the run.
    """

    def __init__(
        self,
        suite: SuiteConfig,
        *,
        root: Path,
        cache_dir: Path,
        seeds: list[int] | None = None,
        device: str = "cpu",
        champion_ref: str | None = None,
        label: str | None = None,
        stamp: str = "adhoc",
        run_meta: dict | None = None,
        sink: Callable[[str], Callable[[str, dict], None]] = lambda run_id: lambda table, row: None,
        progress: Callable[[str, str, int], Callable | bool] = lambda name, task, seed: False,
    ):
        self.suite = suite
        self.root = root
        self.cache_dir = cache_dir
        self.seeds = seeds or suite.seeds
        self.baseline_seeds = suite.baseline_seeds or self.seeds[:1]
        self.device = torch.device(device)
        self.source = Source(root, champion_ref)  # where the suite's gate file, champions and checkpoints come from
        self.files = SuiteFiles(suite, root=root, source=self.source, cache_dir=cache_dir)
        self.stamp = stamp
        self._label = label
        self._run_meta = run_meta or {}
        self.sink = sink
        self.progress = progress  # (model, task, seed) -> train(progress=...) of that run (ups.harness.progress)
        self._datasets: dict[str, DatasetStore] = {}
        self._evaluations: dict[tuple[str, str], TaskEvaluation] = {}
        self._failed: dict[tuple[str, str], str] = {}
        self._champions: dict[str, Champion | None] = {}

    def run_id(self, name: str = "candidate") -> str:
        """Model ``name``'s run id: suite, (baseline name,) identity hash, commit and session stamp."""
        commit = str(self._run_meta.get("commit", "unknown"))[:8]
        if name == "candidate":
            return f"{self.suite.suite}-{self.config_hash[:10]}-{commit}-{self.stamp}"
        return f"{self.suite.suite}-{name}-{canonical_hash(self.identity(name))[:10]}-{commit}-{self.stamp}"

    def record(self, table: str, row: dict, name: str = "candidate") -> None:
        """Append ``row`` to ``table`` of model ``name``'s run."""
        self.sink(self.run_id(name))(table, row)

    def run_meta(self, name: str = "candidate") -> dict:
        """The ``run_meta`` row of model ``name``'s run (the first row its shards get)."""
        baseline = name != "candidate"
        return self._run_meta | {
            "run_id": self.run_id(name),
            "suite": self.suite.suite,
            "label": name if baseline else self.label,
            "config_hash": canonical_hash(self.identity(name)) if baseline else self.config_hash,
            "candidate": self.identity(name),
            "seeds": self.baseline_seeds if baseline else self.seeds,
            "tasks": list(self.suite.tasks),
            "champions": str(self.root / self.suite.champions),
            "role": "baseline" if baseline else "candidate",
        }

    # --- what is scored -------------------------------------------------------------------------------------------

    def entry(self, name: str) -> ModelEntry:
        return self.suite.candidate if name == "candidate" else self.suite.baselines[name]

    @property
    def baselines(self) -> list[str]:
        return list(self.suite.baselines)

    def task_config(self, name: str, task: str, seed: int, budget_s: float | None = None) -> UPSConfig:
        """The training config of model ``name`` on ``task``: the file, with the suite's data and seed imposed."""
        entry = self.entry(name)
        path = self.root / entry.config.format(task=task)
        cfg = load_config(path).model_dump(mode="json")
        te = self.task_entry(task)
        cfg["data"] |= {"task": task, "size": te.size, "seed": self.suite.data_seed}
        cfg["run"] |= {"seed": seed}
        if budget_s is not None:
            cfg["training"] |= {"time_budget_s": budget_s}
        try:
            return UPSConfig.model_validate(cfg)
        except ValueError as err:
            raise UserInputError(f"{path}: invalid for task {task} ({' '.join(str(err).split())[:300]})") from None

    def identity(self, name: str) -> dict:
        """What defines model ``name``, hashed into cache keys and its run's ``config_hash``."""
        entry = self.entry(name)
        if entry.model is not None:
            MODELS.get(entry.model)  # unknown names fail here with the list of valid ones
            return {"model": entry.model}
        if entry.solver is not None:
            for task in self.suite.tasks:
                if not TASKS.get(task).restartable():
                    raise UserInputError(f"baseline {name}: task {task} has no reference solver to restart")
            return {"solver": entry.solver.model_dump(), "tasks": {t: TASKS.get(t).solver for t in self.suite.tasks}}
        tasks = {t: config_hash(self.task_config(name, t, seed=0)) for t in self.suite.tasks}
        return {"config": entry.config, "tasks": tasks} | ({"budget": entry.budget} if entry.budget else {})

    @cached_property
    def candidate_config(self) -> dict:
        return self.identity("candidate")

    @cached_property
    def config_hash(self) -> str:
        return canonical_hash(self.candidate_config)

    @property
    def label(self) -> str:
        if self._label:
            return self._label
        cand = self.suite.candidate
        return cand.model or Path(cand.config).stem.replace("{task}", "").strip("_-") or "candidate"

    @property
    def gate_file(self) -> GateFile:
        return self.files.gate_file

    def task_entry(self, task: str):
        try:
            return self.suite.tasks[task]
        except KeyError:
            raise UserInputError(f"suite {self.suite.suite}: no task {task!r}") from None

    def dataset(self, task: str) -> DatasetStore:
        if task not in self._datasets:
            entry = self.task_entry(task)
            path = cached_dataset(task, entry.size, self.suite.data_seed, self.cache_dir)
            self._datasets[task] = store = DatasetStore.open(path)
            store.verify()  # every value against the recorded content hash, before anything trains or scores on it
            self.record("datasets", {"task": task, "content_sha256": store.content_sha256})
        return self._datasets[task]

    # --- training (cached) ----------------------------------------------------------------------------------------

    def trained(self, name: str, task: str, seed: int, *, wait: bool = True) -> Path | None:
        """The run directory of model ``name`` trained on ``task`` with ``seed`` (trained once, then cached).

        ``wait=False``: None instead of waiting when another process holds the run's lock (is training it).
        """
        from ups.training.guards import TrainingAborted
        from ups.training.trainer import train

        store = self.dataset(task)
        budget = None
        if self.entry(name).budget == "candidate":
            if (candidate := self.trained("candidate", task, seed, wait=wait)) is None:
                return None
            budget = json.loads((candidate / "metrics.json").read_text())["wall_clock_s"]
        base = self.task_config(name, task, seed)
        cfg = base if budget is None else self.task_config(name, task, seed, budget)
        key = self._train_key(base, store, seed)  # the budget is left out: it follows from the candidate's run
        run_dir = self.cache_dir / "runs" / f"{name}-{task}-s{seed}-{key[:16]}"
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with _locked(str(run_dir) + ".lock", wait) as held:
            if not held:
                return None
            done = run_dir / "metrics.json"
            if done.is_file():
                aborted = json.loads(done.read_text()).get("aborted")
            else:
                try:
                    progress = self.progress(name, task, seed)
                    train(cfg, run_dir=run_dir, device=self.device, data_path=store.path, progress=progress)
                    aborted = None
                except TrainingAborted as err:
                    aborted = str(err)
        if aborted:
            raise CandidateFailed(f"{name} on {task} (seed {seed}): training aborted: {aborted}")
        return run_dir

    def _train_key(self, cfg: UPSConfig, store: DatasetStore, seed: int) -> str:
        """What a trained run depends on: its resolved config, the code, the data, the seed and the device type."""
        return canonical_hash(
            {
                "config": config_hash(cfg),
                "code": code_hash(),
                "data": store.content_sha256,
                "seed": seed,
                "device": self.device.type,
            }
        )

    def build(self, name: str, task: str, seed: int, split: str = "test") -> Surrogate:
        """Model ``name`` ready to roll out on ``split``: trained and reloaded from its run, built untrained
        (persistence), or the task's reference solver at the entry's setting (for that split's geometry)."""
        entry = self.entry(name)
        store = self.dataset(task)
        if entry.solver is not None:
            task_cls = TASKS.get(task)
            setting = entry.solver
            size = task_cls.size(self.task_entry(task).size)
            return ReferenceSolver(task_cls, size, split, coarsen=setting.coarsen, step=setting.step)
        if entry.model is not None:
            torch.manual_seed(seed)
            return MODELS.get(entry.model).build(None, store.spec, store.stats())
        from ups.inference import load_surrogate

        return load_surrogate(self.trained(name, task, seed))

    def checkpoints(self, task: str) -> dict[int, Path]:
        """The candidate's trained checkpoint of ``task`` per seed (what a promotion stores); none when untrained."""
        if self.suite.candidate.config is None:
            return {}
        return {seed: self.trained("candidate", task, seed) / "checkpoints" / "final" for seed in self.seeds}

    # --- evaluation (cached) --------------------------------------------------------------------------------------

    def scoring_protocol(self, task: str) -> dict:
        """How this suite scores ``task``, apart from the code: part of the champion's ``scoring_hash``."""
        entry = self.task_entry(task)
        return {
            "splits": entry.splits,
            "steps": entry.steps,
            "horizons": entry.horizons,
            "ensemble_size": self.suite.ensemble_size,
            "timing_repeats": self.suite.timing_repeats,
            "device": self.device.type,
        }

    def scoring_hash(self, task: str) -> str:
        return scoring_hash(self.scoring_protocol(task))

    def _score(self, model: Surrogate, task: str, seed: int, split: str) -> EvalResult:
        """The suite's evaluation of ``model`` on one split: its steps, horizons, timing repeats and ensemble."""
        entry = self.task_entry(task)
        store = self.dataset(task)
        if split not in store.splits:
            raise UserInputError(f"dataset {store.path}: no split {split!r} (has {', '.join(store.splits)})")
        return evaluate_split(
            model,
            self.dataset(task),
            split,
            steps=entry.steps,
            horizons=tuple(entry.horizons),
            seed=seed,
            timing_repeats=self.suite.timing_repeats,
            device=self.device,
            ensemble_size=self.suite.ensemble_size,
        )

    def _evaluate_cached(self, name: str, task: str, seed: int, split: str, *, wait: bool = True) -> EvalResult | None:
        """The cached (or computed and cached) result; ``wait=False``: None when another process holds a lock."""
        entry = self.task_entry(task)
        store = self.dataset(task)
        trained_key = None
        if self.entry(name).config:
            if (run_dir := self.trained(name, task, seed, wait=wait)) is None:
                return None
            trained_key = run_dir.name
        key = canonical_hash(
            {
                "model": self.identity(name),
                "trained": trained_key,
                "code": code_hash(),
                "data": store.content_sha256,
                "seed": seed,
                "split": split,
                "steps": entry.steps,
                "horizons": entry.horizons,
                "ensemble": self.suite.ensemble_size,
                "device": self.device.type,
            }
        )
        path = self.cache_dir / "evals" / f"{name}-{task}-{split}-s{seed}-{key[:16]}.json"
        compute = lambda: self._score(self.build(name, task, seed, split), task, seed, split)  # noqa: E731
        return self._cached(path, compute, wait=wait)

    def _cached(self, path: Path, compute: Callable[[], EvalResult], *, wait: bool = True) -> EvalResult | None:
        """The result cached at ``path``, or ``compute()``'s, written there atomically under the path's file lock.
        ``wait=False``: None when another process holds the lock (is computing it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(str(path) + ".lock", wait) as held:
            if not held:
                return None
            if path.is_file():
                return EvalResult.from_dict(json.loads(path.read_text()))
            result = compute()
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(result.as_dict()))
            os.replace(tmp, path)
            return result

    def evaluation(self, task: str, name: str = "candidate") -> TaskEvaluation:
        """Model ``name``'s scoreboard on every configured split and seed; rows are recorded once per process.

        Raises:
            CandidateFailed: its training aborted on some seed (remembered, so it is not retrained per test).
        """
        if (name, task) in self._failed:
            raise CandidateFailed(self._failed[name, task])
        if (name, task) not in self._evaluations:
            seeds = self.seeds if name == "candidate" else self.baseline_seeds
            run_id = self.run_id(name)
            record = self.sink(run_id)
            items = [(seed, split) for seed in seeds for split in self.task_entry(task).splits]
            try:
                # first take what no other worker is busy with, so xdist workers that reach the same task share its
                # seeds instead of queueing on one lock; then collect everything (waiting for the others' work)
                done = {item: self._evaluate_cached(name, task, *item, wait=False) for item in items}
                if name == "candidate":
                    self._prefetch_baselines(task)
                results = tuple(done[item] or self._evaluate_cached(name, task, *item) for item in items)
            except CandidateFailed as err:
                self._failed[name, task] = str(err)
                raise
            if not any(n == name for n, _ in self._evaluations):
                record("run_meta", self.run_meta(name))
            if name == "candidate":
                for seed, ckpt in self.checkpoints(task).items():
                    record("checkpoints", {"task": task, "seed": seed, "path": str(ckpt)})
                record("scoring", {"task": task, "data_hash": self.dataset(task).content_sha256,
                                   "scoring_hash": self.scoring_hash(task)})  # fmt: skip
                for row in self.solver_matched(task, results):
                    record("metrics", {"run_id": run_id, "task": task, "split": "test", "horizon": None,
                                       "per_traj": None} | row)  # fmt: skip
            for r in results:
                record("eval_meta", {"task": task, "split": r.split, "seed": r.seed, "machine_ref_s": r.machine_ref_s})
                for v in r.values:
                    record(
                        "metrics",
                        {
                            "run_id": run_id,
                            "task": task,
                            "split": r.split,
                            "seed": r.seed,
                            "metric": v.metric,
                            "horizon": v.horizon,
                            "value": v.value,
                            "per_traj": None if v.per_traj is None else list(v.per_traj),
                        },
                    )
            self._evaluations[name, task] = TaskEvaluation(task, results)
        return self._evaluations[name, task]

    def solver_matched(self, task: str, results: tuple[EvalResult, ...]) -> list[dict]:
        """The candidate against the reference-solver ladder on the test split, per seed (docs/metrics.md): rows
        (``seed``, ``metric``, ``value``) of ``solver_s_at_error``, ``solver_error_at_s``, ``solver_speedup`` and the
        bounds ``solver_error_at_s_max``, ``solver_speedup_max`` (None where they do not apply), the error being nRMSE
        at the task's longest horizon and the time seconds per rollout. No rows without a ladder."""
        ladder = self.suite.solver_ladder
        if not ladder or "test" not in self.task_entry(task).splits:
            return []
        k = max(self.task_entry(task).horizons)

        def point(result: EvalResult) -> tuple[float, float]:
            got = {(v.metric, v.horizon): v.value for v in result.values}
            return got.get(("wall_clock_s_per_rollout", None)), got.get(("nrmse", k))

        rungs = [point(self._evaluate_cached(n, task, self.baseline_seeds[0], "test")) for n in ladder]
        rows = []
        for r in results:
            if r.split != "test" or None in (pt := point(r)):
                continue
            m = match(rungs, *pt)
            readings = {"solver_s_at_error": m.solver_s_at_error, "solver_error_at_s": m.solver_error_at_s,
                        "solver_error_at_s_max": m.error_at_s_max, "solver_speedup": m.speedup,
                        "solver_speedup_max": m.speedup_max}  # fmt: skip
            rows += [{"seed": r.seed, "metric": metric, "value": value} for metric, value in readings.items()]
        return rows

    def _prefetch_baselines(self, task: str) -> None:
        """Train and score the trained baselines of ``task`` where no other process is at it (a worker that would
        only wait for another's last candidate seed does this instead); their failures are left to their own tests."""
        for name in self.baselines:
            if self.entry(name).config is None:
                continue
            for seed in self.baseline_seeds:
                for split in self.task_entry(task).splits:
                    try:
                        self._evaluate_cached(name, task, seed, split, wait=False)
                    except CandidateFailed:
                        break

    def champion_path(self, task: str) -> Path:
        return self.files.champion_path(task)

    def champion(self, task: str) -> Champion | None:
        """The champion the candidate is judged against, like with like: the stored snapshot when it was scored on
        the same data with the same scoring code and protocol; otherwise its checkpoints re-scored now (cached), or,
        without checkpoints, the snapshot marked ``stale`` (its gates are inconclusive, never compared silently)."""
        if task not in self._champions:
            stored = self.files.stored_champion(task)
            self._champions[task] = None if stored is None else self._like_with_like(task, stored)
        return self._champions[task]

    def _like_with_like(self, task: str, champion: Champion) -> Champion:
        data, scoring = self.dataset(task).content_sha256, self.scoring_hash(task)
        pairs = (("data", champion.data_hash, data), ("scoring code", champion.scoring_hash, scoring))
        changed = [what for what, old, new in pairs if old != new]
        if not changed:
            return champion
        why = f"{' and '.join(changed)} changed since it was scored"
        if not champion.checkpoints:
            return replace(champion, stale=f"champion not comparable: {why}, and it has no checkpoint to re-score")
        results = []
        for seed in sorted(champion.checkpoints):
            folder = self.files.champion_checkpoint(task, champion, seed)
            sha = champion.checkpoints[seed]["sha256"]
            model: list[Surrogate] = []  # loaded once per seed, only when some split is not cached yet

            def compute(seed=seed, folder=folder, model=model, split=None) -> EvalResult:
                from ups.inference import load_surrogate

                if not model:
                    torch.manual_seed(seed)
                    model.append(load_surrogate(folder))
                return self._score(model[0], task, seed, split)

            for split in self.task_entry(task).splits:
                key = canonical_hash(
                    {"checkpoint": sha, "data": data, "scoring": scoring, "seed": seed, "split": split}
                )
                path = self.cache_dir / "evals" / f"champion-{task}-{split}-s{seed}-{key[:16]}.json"
                results.append(self._cached(path, lambda c=compute, s=split: c(split=s)))
        stats = TaskEvaluation(task, tuple(results)).stats
        note = f"re-scored from its {len(champion.checkpoints)} checkpoint(s): {why}"
        return replace(champion, metrics=stats, data_hash=data, scoring_hash=scoring, rescored=note)

    def failsafe(self, task: str, gate: Gate, champ: SeedStat | None, failed: GateResult) -> GateResult:
        """Re-evaluate the candidate with the playbook's remedy for a failed gate (:mod:`ups.harness.failsafes`);
        record what it scores and say it in the gate's detail. The outcome stays the candidate's own.

        A remedy that needs new weights (``smaller_latent``) is trained like the candidate (same trainer, data and
        seed) and cached under its own config's key, in ``<cache>/runs/candidate-failsafe-<task>-s<seed>-<key>``.
        A remedy that cannot be built or scored (an invalid variant config, a retrain that aborts, weights that do
        not load) is recorded as ``not built: <reason>``; it never raises, so the session goes on.
        """
        from ups.harness.failsafes import remedy_for
        from ups.inference import InferenceModel, load_surrogate
        from ups.training.trainer import train

        store = self.dataset(task)

        def retrain(cfg: UPSConfig) -> InferenceModel:
            seed = cfg.run.seed
            key = self._train_key(cfg, store, seed)
            run_dir = self.cache_dir / "runs" / f"candidate-failsafe-{task}-s{seed}-{key[:16]}"
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            with _locked(str(run_dir) + ".lock", wait=True):
                if not (done := run_dir / "metrics.json").is_file():
                    train(cfg, run_dir=run_dir, device=self.device, data_path=store.path, progress=False)
                elif aborted := json.loads(done.read_text()).get("aborted"):
                    raise RuntimeError(f"training aborted: {aborted}")  # TrainingAborted's line, from the cache
            return load_surrogate(run_dir)

        remedy, results = None, []
        try:
            for seed in self.seeds:
                remedy = remedy_for(gate.metric, self.build("candidate", task, seed))
                if remedy is None:
                    return failed
                results.append(self._score(remedy.build(retrain), task, seed, gate.split))
        except (UserInputError, ValueError, RuntimeError) as err:
            reason = " ".join(str(err).split())[:300]
            action, change = (remedy.action, remedy.change) if remedy else ("remedy", None)
            self.record(
                "failsafes",
                {
                    "task": task,
                    "metric": gate.metric,
                    "split": gate.split,
                    "action": action,
                    "change": change,
                    "before": failed.candidate,
                    "after": None,
                    "outcome_with_remedy": f"not built: {reason}",
                },
            )
            what = f"{action} ({change})" if change else action
            return replace(failed, detail=f"{failed.detail}; fail-safe {what} not built: {reason}")
        stat = TaskEvaluation(task, tuple(results)).stats.get(gate.split, {}).get(gate.compared_metric)
        scale = self.evaluation(task).machine_ref_s if gate.normalise == "machine" else None  # as the candidate's
        retry = evaluate_gate(gate, stat, champ, confidence=self.gate_file.confidence, unit_scale=scale)
        self.record(
            "failsafes",
            {
                "task": task,
                "metric": gate.metric,
                "split": gate.split,
                "action": remedy.action,
                "change": remedy.change,
                "before": failed.candidate,
                "after": retry.candidate,
                "outcome_with_remedy": retry.outcome,
            },
        )
        fmt = lambda x: "n/a" if x is None else f"{x:.6g}"  # noqa: E731
        before, after = fmt(failed.candidate), fmt(retry.candidate)
        note = f"fail-safe {remedy.action} ({remedy.change}): {before} -> {after}, would {retry.outcome}"
        return replace(failed, detail=f"{failed.detail}; {note}")

    def check(self, task: str, gate_set: str, gate: Gate) -> GateResult:
        """Decide one gate for ``task`` against its (like-with-like) champion and record the outcome."""
        champion = self.champion(task)
        evaluation = self.evaluation(task)
        cand = evaluation.stats.get(gate.split, {}).get(gate.compared_metric)
        champ = champion.stat(gate.split, gate.compared_metric) if champion else None
        if champion is not None and champion.stale:
            result = GateResult(gate, "inconclusive", None, cand and cand.mean, None, champion.stale)
        else:
            scale = evaluation.machine_ref_s if gate.normalise == "machine" else None
            result = evaluate_gate(gate, cand, champ, confidence=self.gate_file.confidence, unit_scale=scale)
            if champion is not None and champion.rescored:
                result = replace(result, detail=f"{result.detail}; champion {champion.rescored}")
        if gate_set == "regression" and result.outcome == "fail":
            result = self.failsafe(task, gate, champ, result)
        self.record(
            "gate_results",
            {
                "run_id": self.run_id(),
                "task": task,
                "gate_set": gate_set,
                "metric": gate.metric,
                "rule": gate.rule,
                "threshold": result.threshold,
                "candidate": result.candidate,
                "champion": result.champion,
                "outcome": result.outcome,
                "detail": result.detail,
            },
        )
        return result

"""The work behind the session fixtures: datasets, candidate, scoreboard and champion for each task of a suite.

Every expensive step is cached on disk under a key of everything it depends on, and guarded by a file lock so
pytest-xdist workers compute it once and all read the same bytes (that is what makes serial and parallel runs
record identical rows):

- dataset: by task, size, data seed and solver source (``ups.data.generate.cached_dataset``);
- evaluation: by candidate config hash, code hash, dataset content hash, seed, split, steps and horizons.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from filelock import FileLock

from ups.data.generate import cached_dataset
from ups.data.store import DatasetStore
from ups.errors import UserInputError
from ups.eval.evaluate import EvalResult, evaluate_split
from ups.harness.champions import Champion, load_champion
from ups.harness.gates import Gate, GateFile, GateResult, evaluate_gate, load_gate_file
from ups.harness.stats import SeedStat
from ups.harness.suite import SuiteConfig
from ups.models import MODELS, Surrogate
from ups.provenance import canonical_hash, code_hash


def metric_key(metric: str, horizon: int | None) -> str:
    return metric if horizon is None else f"{metric}@{horizon}"


@dataclass(frozen=True)
class TaskEvaluation:
    """All seeds' scoreboards of one task: ``stats[split][metric_key]`` and the raw per-seed results."""

    task: str
    results: tuple[EvalResult, ...]

    @cached_property
    def stats(self) -> dict[str, dict[str, SeedStat]]:
        per: dict[str, dict[str, dict[int, float | None]]] = {}
        for r in self.results:
            for v in r.values:
                per.setdefault(r.split, {}).setdefault(metric_key(v.metric, v.horizon), {})[r.seed] = v.value
        return {s: {m: SeedStat.from_seeds(seeds) for m, seeds in ms.items()} for s, ms in per.items()}


class SuiteRunner:
    """Lazily builds and caches each task's dataset, candidate evaluation and champion for one suite."""

    def __init__(
        self,
        suite: SuiteConfig,
        *,
        root: Path,
        cache_dir: Path,
        seeds: list[int] | None = None,
        device: str = "cpu",
        champion_ref: str | None = None,
        record: Callable[[str, dict], None] = lambda table, row: None,
        run_id: str = "adhoc",
    ):
        self.suite = suite
        self.root = root
        self.cache_dir = cache_dir
        self.seeds = seeds or suite.seeds
        self.device = torch.device(device)
        self.champion_ref = champion_ref
        self.record = record
        self.run_id = run_id
        self._datasets: dict[str, DatasetStore] = {}
        self._evaluations: dict[str, TaskEvaluation] = {}
        self._champions: dict[str, Champion | None] = {}
        self.run_meta: dict = {}  # written to the shard with the first metric rows

    @cached_property
    def gate_file(self) -> GateFile:
        return load_gate_file(self.root / self.suite.gates)

    @cached_property
    def candidate_config(self) -> dict:
        """What defines the candidate, hashed into cache keys and the run's ``config_hash``."""
        cand = self.suite.candidate
        if cand.model is not None:
            MODELS.get(cand.model)  # unknown names fail here with the list of valid ones
            return {"model": cand.model}
        raise UserInputError(
            f"suite {self.suite.suite}: candidate.config ({cand.config}) needs the trainer, which is not built yet"
        )

    @cached_property
    def config_hash(self) -> str:
        return canonical_hash(self.candidate_config)

    @property
    def label(self) -> str:
        return self.candidate_config.get("model", "candidate")

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
            self.record("datasets", {"task": task, "content_sha256": store.content_sha256})
        return self._datasets[task]

    def build_candidate(self, task: str, seed: int) -> Surrogate:
        torch.manual_seed(seed)
        store = self.dataset(task)
        return MODELS.get(self.candidate_config["model"]).build(None, store.spec, store.stats())

    def _evaluate_cached(self, task: str, seed: int, split: str) -> EvalResult:
        entry = self.task_entry(task)
        store = self.dataset(task)
        key = canonical_hash(
            {
                "candidate": self.config_hash,
                "code": code_hash(),
                "data": store.content_sha256,
                "seed": seed,
                "split": split,
                "steps": entry.steps,
                "horizons": entry.horizons,
                "device": self.device.type,
            }
        )
        path = self.cache_dir / "evals" / f"{task}-{split}-s{seed}-{key[:16]}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if path.is_file():
                return EvalResult.from_dict(json.loads(path.read_text()))
            if split not in store.splits:
                raise UserInputError(f"dataset {store.path}: no split {split!r} (has {', '.join(store.splits)})")
            model = self.build_candidate(task, seed)
            result = evaluate_split(
                model,
                store,
                split,
                steps=entry.steps,
                horizons=tuple(entry.horizons),
                seed=seed,
                timing_repeats=self.suite.timing_repeats,
                device=self.device,
            )
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(result.as_dict()))
            os.replace(tmp, path)
            return result

    def evaluation(self, task: str) -> TaskEvaluation:
        """The candidate's scoreboard on every configured split and seed; rows are recorded once per process."""
        if task not in self._evaluations:
            results = tuple(
                self._evaluate_cached(task, seed, split)
                for seed in self.seeds
                for split in self.task_entry(task).splits
            )
            if not self._evaluations:
                self.record("run_meta", self.run_meta)
            for r in results:
                self.record(
                    "eval_meta", {"task": task, "split": r.split, "seed": r.seed, "machine_ref_s": r.machine_ref_s}
                )
                for v in r.values:
                    self.record(
                        "metrics",
                        {
                            "run_id": self.run_id,
                            "task": task,
                            "split": r.split,
                            "seed": r.seed,
                            "metric": v.metric,
                            "horizon": v.horizon,
                            "value": v.value,
                        },
                    )
            self._evaluations[task] = TaskEvaluation(task, results)
        return self._evaluations[task]

    def champion_path(self, task: str) -> Path:
        return self.root / self.suite.champions / f"{task}.json"

    def champion(self, task: str) -> Champion | None:
        if task not in self._champions:
            self._champions[task] = load_champion(self.champion_path(task), ref=self.champion_ref, repo=self.root)
        return self._champions[task]

    def check(self, task: str, gate_set: str, gate: Gate) -> GateResult:
        """Decide one gate for ``task`` against its champion and record the outcome."""
        champion = self.champion(task)
        cand = self.evaluation(task).stats.get(gate.split, {}).get(gate.compared_metric)
        champ = champion.stat(gate.split, gate.compared_metric) if champion else None
        result = evaluate_gate(gate, cand, champ)
        self.record(
            "gate_results",
            {
                "run_id": self.run_id,
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

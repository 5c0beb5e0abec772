"""Benchmark suites: a list of runs (env x algo x settings x seed) read from a small YAML file.

    name: smoke
    description: two seeds of a tiny PPO run on CartPole
    seeds: 2                   # seeds 0 .. seeds-1 unless `seed_list` is given
    total_steps: 2048          # default budget of every run
    runs:
      - algo: ppo              # each entry: RunConfig fields, plus optional `label`, `overrides`, `seeds`
        env_id: CartPole-v1
        overrides: [n_steps=256, policy_kwargs.net_arch=[16]]
    tasks:                     # optional: each `runs` entry without env_id runs once per task, the task's
      - {env_id: Acrobot-v1, total_steps: 4096}      # fields under the entry's own; an entry's
      - {env_id: Pendulum-v1, total_steps: 8192}     # `tasks: [env ids]` keeps it to those tasks
    scores:                    # optional: reference returns for normalised scores, per env id
      CartPole-v1: {random: 22, reference: 500}
    published:                 # optional: others' figures shown beside the suite's, per env id and label
      CartPole-v1: {ppo: {return: 500, sd: 0, source: "rl-baselines3-zoo benchmark.md, 100k steps, 1 run"}}
    sparse: false              # true: the report adds success rates (training episodes with return > 0)

An entry with ``archived_only: <why>`` holds runs that earlier code made and today's code would make otherwise
(a fix since changed what the same settings do): they come from the run archive and are reported as they are,
and the runner never trains them; ``<why>`` (e.g. the fix and its commit) is shown where they are missing and in
the report.

Built-in suites live in ``rlgen/bench/suites/<name>.yaml``; a path to any YAML file works too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlgen.agents.config import ConfigError, RunConfig, build_config, read_yaml_mapping

SUITES_DIR = Path(__file__).parent / "suites"
RUNS_DIR = "runs"
"""Where a suite's run directories go in its output folder."""
_ENTRY_KEYS = {"archived_only", "label", "overrides", "preset", "seeds", "tasks"}


@dataclass
class SuiteRun:
    """One run of a suite: the method label (what the report groups by), its task, seed and config."""

    label: str
    env_id: str
    seed: int
    config: RunConfig
    archived_only: str = ""
    """Why earlier code's runs stand here and today's code must not train them (the entry's ``archived_only``);
    empty for a run the runner trains."""


@dataclass
class Suite:
    name: str
    entries: list[dict[str, Any]]
    seeds: list[int]
    total_steps: int | None = None
    description: str = ""
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    sparse: bool = False
    """Sparse-reward tasks: the report adds success rates and steps to the first success."""
    source: str = ""
    published: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Others' figures per env id and method label: {return, sd (optional), source}, shown beside the suite's."""

    def restricted(self, keep: Callable[[dict[str, Any]], bool], **fields: Any) -> Suite:
        """A copy with the entries ``keep`` accepts, each given ``fields`` (those not None), e.g. a benchmark's
        shrunk budgets: ``suite.restricted(lambda e: e["env_id"] in envs, total_steps=4096)``."""
        given = {name: value for name, value in fields.items() if value is not None}
        return dataclasses.replace(self, entries=[{**entry, **given} for entry in self.entries if keep(entry)])

    def runs(self, out_dir: str | Path, seeds: int | Sequence[int] | None = None, total_steps: int | None = None,
             match: str | None = None) -> list[SuiteRun]:
        """Every run, with its run directory under ``out_dir/runs``; ``seeds`` (a count: seeds 0..N-1, or a list
        of seeds) and ``total_steps`` override the suite's own; ``match`` (a regular expression searched in the
        run names, which read ``<label>_<env>_s<seed>``) keeps a part of the suite."""
        seed_list = self.seeds if seeds is None else list(range(seeds)) if isinstance(seeds, int) else list(seeds)
        runs_dir = Path(out_dir).absolute() / RUNS_DIR  # absolute: Ray workers run in other folders
        out = []
        for entry in self.entries:
            fields = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
            algo, env_id = fields.pop("algo", None), fields.pop("env_id", None)
            if not algo or not env_id:
                raise ConfigError(f"suite {self.name!r}: every run needs algo and env_id, got {entry}")
            label = str(entry.get("label") or algo)
            archived_only = entry.get("archived_only", "")
            if not isinstance(archived_only, str) or ("archived_only" in entry and not archived_only.strip()):
                raise ConfigError(f"suite {self.name!r}, run {label}: archived_only must say why its runs come only "
                                  f"from the archive (e.g. the fix since, and its commit), got {archived_only!r}")
            budget = total_steps or fields.get("total_steps") or self.total_steps
            if budget:
                fields["total_steps"] = int(float(budget))
            entry_seeds = seed_list if "seeds" not in entry or seeds is not None else list(range(int(entry["seeds"])))
            for seed in entry_seeds:
                try:
                    config = build_config(
                        algo, env_id, overrides=list(entry.get("overrides", [])), use_preset=entry.get("preset", True),
                        **{**fields, "seed": seed, "out_dir": str(runs_dir), "progress_bar": False,
                           "run_name": f"{label}_{env_id.replace('/', '-')}_s{seed}"},
                    )
                except ConfigError as exc:  # which of the suite's runs it is
                    raise ConfigError(f"suite {self.name!r}, run {label} on {env_id}: {exc}") from None
                out.append(SuiteRun(label, env_id, seed, config, archived_only.strip()))
        names = [run.config.run_name for run in out]
        if len(set(names)) != len(names):
            raise ConfigError(f"suite {self.name!r}: two runs share a label and env; give them distinct labels")
        if match is not None:
            try:
                pattern = re.compile(match)
            except re.error as exc:
                raise ConfigError(f"--match {match!r} is not a regular expression: {exc}") from None
            out = [run for run in out if pattern.search(str(run.config.run_name))]
            if not out:
                raise ConfigError(f"--match {match!r} keeps none of the {len(names)} runs of suite {self.name!r}")
        return out


RUN_ORDERS = ("suite", "task", "seed")
"""The orders a suite's runs can start in (:func:`order_runs`)."""


def order_runs(runs: list[SuiteRun], order: str) -> list[SuiteRun]:
    """``runs`` in the order they should start: ``suite`` as the suite lists them (each entry over its tasks and
    seeds); ``task`` every run of a task before any of the next task's, tasks in the order they first appear
    (a task's cells all finish early, for reports in parts); ``seed`` every cell's first seed before any second
    seed (a whole seed early). The sorts are stable: within a task or seed, the suite's order."""
    if order not in RUN_ORDERS:
        raise ConfigError(f"unknown run order {order!r}; choose one of: {', '.join(RUN_ORDERS)}")
    if order == "suite":
        return list(runs)
    keys = [run.env_id if order == "task" else run.seed for run in runs]
    rank = {key: i for i, key in enumerate(dict.fromkeys(keys))}  # in the order each first appears
    return [run for _, run in sorted(zip(keys, runs, strict=True), key=lambda pair: rank[pair[0]])]


def available_suites() -> list[str]:
    return sorted(path.stem for path in SUITES_DIR.glob("*.yaml"))


def load_suite(name_or_path: str | Path) -> Suite:
    """A built-in suite by name (``smoke``, ``locomotion``) or a suite YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown suite {str(name_or_path)!r}; built-in suites: {', '.join(available_suites())}")
    data = read_yaml_mapping(path, "suite file")
    if not isinstance(data.get("runs"), list) or not data["runs"]:
        raise ConfigError(f"suite file {path} needs a non-empty `runs` list")
    unknown = set(data) - {"name", "description", "seeds", "seed_list", "total_steps", "runs", "scores", "sparse",
                           "tasks", "published"}
    if unknown:
        raise ConfigError(f"suite file {path}: unknown key {sorted(unknown)[0]!r}")
    entries = _cross_tasks(path, [dict(entry) for entry in data["runs"]], data.get("tasks"))
    seeds = data.get("seed_list") or list(range(int(data.get("seeds", 1))))
    return Suite(
        name=str(data.get("name") or path.stem),
        entries=entries,
        seeds=[int(s) for s in seeds],
        total_steps=int(float(data["total_steps"])) if data.get("total_steps") else None,
        description=str(data.get("description", "")),
        scores={k: {kk: float(vv) for kk, vv in v.items()} for k, v in (data.get("scores") or {}).items()},
        sparse=bool(data.get("sparse", False)),
        source=str(path),
        published=_published(path, data.get("published") or {}),
    )


def _published(path: Path, data: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """The suite's ``published`` figures, checked: each has a numeric return and a source."""
    if not isinstance(data, dict):
        raise ConfigError(f"suite file {path}: `published` must map env ids to methods to figures")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for env_id, methods in data.items():
        if not isinstance(methods, dict):
            raise ConfigError(f"suite file {path}: published[{env_id!r}] must map method labels to figures")
        for label, figure in methods.items():
            if not isinstance(figure, dict) or not isinstance(figure.get("return"), int | float) \
                    or not figure.get("source"):
                raise ConfigError(f"suite file {path}: published[{env_id!r}][{label!r}] needs a numeric `return` "
                                  f"and a `source`")
            out.setdefault(str(env_id), {})[str(label)] = dict(figure)
    return out


def _cross_tasks(path: Path, entries: list[dict[str, Any]], tasks: Any) -> list[dict[str, Any]]:
    """The suite's runs with ``tasks`` applied: an entry without env_id becomes one entry per task (the task's
    fields, then the entry's over them; `overrides` from both, the entry's last), in task order; ``tasks: [env ids]`` in an entry keeps it to those."""
    if tasks is None:
        if any("tasks" in entry for entry in entries):
            raise ConfigError(f"suite file {path}: a run names `tasks` but the suite has no `tasks` list")
        return entries
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and t.get("env_id") for t in tasks):
        raise ConfigError(f"suite file {path}: `tasks` must be a list of mappings, each with an env_id")
    task_ids = [str(t["env_id"]) for t in tasks]
    if len(set(task_ids)) != len(task_ids):
        raise ConfigError(f"suite file {path}: a task is listed twice in `tasks`")
    per_task: dict[str, list[dict[str, Any]]] = {env_id: [] for env_id in task_ids}
    alone = []
    for entry in entries:
        if "env_id" in entry:
            alone.append(entry)
            continue
        keep = entry.get("tasks", task_ids)
        if isinstance(keep, str) or not isinstance(keep, list):
            raise ConfigError(f"suite file {path}: a run's `tasks` must be a list of env ids, got {keep!r}")
        unknown = [env_id for env_id in keep if env_id not in per_task]
        if unknown:
            raise ConfigError(f"suite file {path}: a run names task {unknown[0]!r}, which is not in `tasks` "
                              f"({', '.join(task_ids)})")
        own = {k: v for k, v in entry.items() if k != "tasks"}
        for task in tasks:
            if task["env_id"] in keep:
                merged = {**task, **own}
                if "overrides" in task and "overrides" in own:  # both apply, the run's last
                    merged["overrides"] = list(task["overrides"]) + list(own["overrides"])
                per_task[task["env_id"]].append(merged)
    return [entry for env_id in task_ids for entry in per_task[env_id]] + alone

"""Experts for imitation benchmarks: train them as a suite, and pick the policy that makes the demos.

A run's expert is its final policy or that of its best periodic evaluation (``best/``), whichever scores
higher on fresh evaluation episodes (a locomotion policy's return can fall late in training); per task (or
task and behaviour) the run whose expert scores highest makes the demos (``experts.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlgen.agents.rundir import RunDir
from rlgen.atomic import atomic_write_text
from rlgen.bench.runner import run_finished
from rlgen.bench.scores import run_score
from rlgen.bench.suite import Suite, SuiteRun

EXPERTS_FILE = "experts.json"


def expert_policy(run_dir: str | Path, episodes: int, seed: int) -> tuple[str, int, np.ndarray]:
    """The better policy of a finished run to serve as an expert: ("final" or "best", the env steps it had
    trained for, its returns, cached like :func:`rlgen.bench.scores.run_score`). The candidates are its final
    policy and, where it kept one, that of its best periodic evaluation (``best/``), each scored on
    ``episodes`` fresh episodes from ``seed``: the best evaluation was picked on a few episodes, so it may be
    luck, and the fresh episodes decide; a tie keeps the final policy."""
    run = RunDir(run_dir)
    final = run_score(run_dir, episodes, seed, "final")
    if run.has_best():
        best = run_score(run_dir, episodes, seed, "best")
        if best.mean() > final.mean():
            return "best", int(run.read_best()["timesteps"]), best
    result = run.read_result() or {}
    return "final", int(result.get("timesteps", 0)), final


def has_policy(run_dir: str | Path, model: str = "final") -> bool:
    """Whether the run's ``model`` ("final", or "best": its best periodic evaluation) can be rolled out
    here."""
    run = RunDir(run_dir)
    return run.has_best() if model == "best" else run.model_file.is_file()


def pick_experts(runs: Iterable[SuiteRun], key: Callable[[SuiteRun], str], episodes: int, seed: int,
                 path: Path, extra: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per ``key`` (a task; a task and behaviour) the finished run of ``runs`` whose :func:`expert_policy`
    has the best mean return over ``episodes`` evaluation episodes from ``seed``, added to the JSON file
    ``path`` (experts picked before for other keys stay); returns every expert the file now names. A record
    gives the run, its agent and budget, which policy (``model``, ``model_timesteps``), its evaluation mean
    and std, and ``extra``."""
    experts: dict[str, dict[str, Any]] = {}
    for run in runs:
        if not run_finished(run.config):
            continue
        model, steps, returns = expert_policy(run.config.run_dir, episodes, seed)
        best = experts.get(key(run))
        if best is None or returns.mean() > best["eval_mean"]:
            experts[key(run)] = {"run_dir": str(run.config.run_dir), "algo": run.config.algo,
                                 "total_steps": run.config.total_steps, "model": model,
                                 "model_timesteps": steps,
                                 "eval_mean": float(returns.mean()), "eval_std": float(returns.std()),
                                 **(extra or {})}
    known = json.loads(path.read_text()) if path.is_file() else {}
    known.update(experts)
    atomic_write_text(path, json.dumps(known, indent=2))
    return known


def expert_settings(suite: Suite, keys: Sequence[str],
                    accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The fields ``keys`` of the first entry of an experts' ``suite`` that ``accept`` takes ({} if none): the
    settings an imitator shares with its experts (their env layout, their agent's hyperparameters)."""
    for entry in suite.entries:
        if accept(entry):
            return {k: entry[k] for k in keys if k in entry}
    return {}

"""A benchmark's scores of finished runs, cached beside each run.

A report scores every finished run on fresh evaluation episodes; the score is cached in the run directory
(``benchmark_eval.json``, ``benchmark_eval_best.json`` for the policy of its best periodic evaluation), so
the run archive carries it and a later report reads it without the model, which the archive does not keep
for every run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rlgen.agents import evaluate
from rlgen.agents.rundir import RunDir
from rlgen.atomic import atomic_write_text

logger = logging.getLogger(__name__)

SCORE_FILE = "benchmark_eval.json"
SCORE_FILES = {"final": SCORE_FILE, "best": "benchmark_eval_best.json"}


def cached_score(run_dir: str | Path, episodes: int, seed: int, model: str = "final") -> np.ndarray | None:
    """The returns a benchmark cached beside a run (``benchmark_eval.json``; ``benchmark_eval_best.json`` for
    the best) for ``episodes`` evaluation episodes from ``seed`` of its ``model`` ("final", or "best": its best
    periodic evaluation), None if none."""
    if model not in SCORE_FILES:
        raise ValueError(f"model must be 'final' or 'best', got {model!r}")
    try:
        data = json.loads((Path(run_dir) / SCORE_FILES[model]).read_text())
    except (OSError, ValueError):
        return None
    if data.get("episodes") == episodes and data.get("seed") == seed and data.get("model", "final") == model:
        return np.asarray(data["returns"], dtype=np.float64)
    return None


def run_score(run_dir: str | Path, episodes: int, seed: int, model: str = "final") -> np.ndarray:
    """Returns of ``episodes`` evaluation episodes of a finished run's ``model`` (deterministic policy, true
    env reward), computed once and cached beside the run (the archive keeps the cache, so a later report
    reads it without the model)."""
    cached = cached_score(run_dir, episodes, seed, model)
    if cached is not None:
        return cached
    returns = evaluate(run_dir, episodes=episodes, seed=seed, best=model == "best")
    record = {"episodes": episodes, "seed": seed, "model": model, "returns": returns.tolist()}
    atomic_write_text(Path(run_dir) / SCORE_FILES[model], json.dumps(record))
    return returns


def scorable(run_dir: str | Path, episodes: int, seed: int) -> bool:
    """Whether a finished run's final score is cached or can be computed (a run restored from an archive
    without its model and without a cached score cannot)."""
    return cached_score(run_dir, episodes, seed) is not None or RunDir(run_dir).has_model()


def score_before_archiving(episodes: int, seed: int) -> Callable[[Path], None]:
    """A hook for :func:`rlgen.bench.run_suite`'s ``before_archive`` (and a benchmark's own runs): caches a
    finished run's final score while its model is still here, for an archive that keeps no model. A failure
    costs only the cache (the record is still worth archiving): a line says so."""
    def score(run_dir: Path) -> None:
        try:
            if RunDir(run_dir).has_model():
                run_score(run_dir, episodes, seed)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.warning("archive: %s: could not score it: %s; archived without its score", run_dir.name,
                           reason)

    return score

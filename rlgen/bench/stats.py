"""Aggregate statistics for few-seed RL results (Agarwal et al. 2021), computed with numpy.

rliable computes the same quantities but pins pandas < 3 through its ``arch`` dependency; these are a
few lines each, so rlgen computes them itself: bootstrap confidence intervals, the interquartile mean
(IQM) with a stratified bootstrap over runs within each task, and performance profiles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Statistic = Callable[[np.ndarray], float]


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of all values (fractional ends weighted)."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = len(x)
    if n == 0:
        return float("nan")
    lo, hi = 0.25 * n, 0.75 * n
    # weight each sorted value by how much of it lies inside [lo, hi) on the rank axis
    ranks = np.arange(n)
    weights = np.clip(np.minimum(ranks + 1, hi) - np.maximum(ranks, lo), 0.0, 1.0)
    return float(np.sum(weights * x) / np.sum(weights))


def mean(values: np.ndarray) -> float:
    return float(np.mean(values))


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Statistic = mean,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point estimate, low, high): the percentile bootstrap interval of ``statistic`` over runs."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(resamples, len(x)))
    return _percentile_interval(statistic(x), np.array([statistic(x[row]) for row in idx]), confidence)


def _percentile_interval(point: float, resampled: np.ndarray, confidence: float) -> tuple[float, float, float]:
    alpha = (1.0 - confidence) / 2.0
    return point, float(np.quantile(resampled, alpha)), float(np.quantile(resampled, 1.0 - alpha))


def stratified_bootstrap_ci(
    scores: Sequence[np.ndarray],
    statistic: Statistic = iqm,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Interval of ``statistic`` over all runs of all tasks, resampling runs within each task.

    ``scores`` holds one array of per-run (normalised) scores per task; tasks may have different
    numbers of runs.
    """
    tasks = [np.asarray(s, dtype=np.float64).ravel() for s in scores if len(s)]
    if not tasks:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for i in range(resamples):
        stats[i] = statistic(np.concatenate([t[rng.integers(0, len(t), len(t))] for t in tasks]))
    return _percentile_interval(statistic(np.concatenate(tasks)), stats, confidence)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs whose score exceeds each threshold tau."""
    x = np.asarray(scores, dtype=np.float64).ravel()
    return np.array([(x > tau).mean() if len(x) else np.nan for tau in taus])


def normalise(score: np.ndarray | float, low: float, high: float) -> np.ndarray:
    """(score - low) / (high - low): 0 at the low reference (random policy), 1 at the high one."""
    span = high - low
    if span == 0:
        raise ValueError("normalisation needs distinct low and high reference scores")
    return (np.asarray(score, dtype=np.float64) - low) / span


def difference_ci(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = 0.95,
                  resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): the percentile bootstrap interval of the difference between the means of
    two groups of runs, each group resampled on its own."""
    x, y = (np.asarray(v, dtype=np.float64).ravel() for v in (a, b))
    if len(x) == 0 or len(y) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    diffs = rng.choice(x, (resamples, len(x))).mean(axis=1) - rng.choice(y, (resamples, len(y))).mean(axis=1)
    return _percentile_interval(float(x.mean() - y.mean()), diffs, confidence)

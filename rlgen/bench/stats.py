"""Aggregate statistics for few-seed RL results (Agarwal et al. 2021), computed with numpy.

rliable computes the same quantities but pins pandas < 3 through its ``arch`` dependency; these are a
few lines each, so rlgen computes them itself, with rliable's definitions: percentile bootstrap confidence
intervals, the interquartile mean (IQM, ``scipy.stats.trim_mean(x, 0.25)``) with a stratified bootstrap over
runs within each task, and performance profiles; and, for two groups of runs, an exact permutation test.

With five seeds a percentile bootstrap interval is narrow: a nominal 95% interval of a mean covers the true
mean about 83% of the time (benchmarks/bootstrap_coverage.py measures it), so a verdict that two such
intervals do not overlap is weaker evidence than "95%" suggests; :func:`permutation_test` gives its p-value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

Statistic = Callable[[np.ndarray], float]


def iqm(values: np.ndarray) -> float:
    """Interquartile mean as rliable computes it: ``scipy.stats.trim_mean(x, 0.25)``, the mean of the values
    left after cutting ``floor(n / 4)`` of the lowest and as many of the highest."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if len(x) == 0:
        return float("nan")
    cut = len(x) // 4
    return float(x[cut:len(x) - cut].mean())


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


def permutation_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, resamples: int = 20000,
                     seed: int = 0) -> float:
    """Two-sided p-value of the difference between the means of two groups of runs: the share of the ways of
    dealing the pooled runs into groups of the same sizes whose difference is at least as far from 0 as the
    observed one. Every way is counted when there are at most ``resamples`` of them (5 runs against 5: 252
    ways, so p is at least 2/252 = 0.008); otherwise ``resamples`` random ones (p = (hits + 1) / (resamples +
    1)). Splits whose difference equals the observed one up to rounding count as at least as far: two
    differences of means closer than 1e-9 of the largest absolute value pooled are taken as the same (sums of
    returns in the hundreds differ in their last bits with the order of summing). NaN with an empty group or a
    value that is not finite (a run without the measure: leave it out first), never a p of 0."""
    x, y = (np.asarray(v, dtype=np.float64).ravel() for v in (a, b))
    if len(x) == 0 or len(y) == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    pooled = np.concatenate([x, y])
    n, k = len(pooled), len(x)
    observed = abs(x.mean() - y.mean())
    total = pooled.sum()
    tolerance = 1e-9 * float(np.abs(pooled).max())
    if math.comb(n, k) <= resamples:
        firsts = np.array(list(itertools.combinations(range(n), k)))
        sums = pooled[firsts].sum(axis=1)
        return float(_far(sums, total, k, n, observed - tolerance) / len(sums))
    rng = np.random.default_rng(seed)
    sums = np.array([pooled[rng.permutation(n)[:k]].sum() for _ in range(resamples)])
    return float((_far(sums, total, k, n, observed - tolerance) + 1) / (resamples + 1))


def _far(first_sums: np.ndarray, total: float, k: int, n: int, threshold: float) -> int:
    """How many splits (given by their first group's sums) have a difference of means at least ``threshold``
    (the observed difference less a tolerance for rounding, which keeps the observed split and its ties
    counted)."""
    differences = np.abs(first_sums / k - (total - first_sums) / (n - k))
    return int((differences >= threshold).sum())

"""How much the benchmark reports' 95% intervals over a few seeds can be trusted: a simulation.

    python benchmarks/bootstrap_coverage.py [--sims 400] [--seeds 5,10] [--out benchmarks/results/bootstrap_coverage.md]

The reports (rlgen.bench.report) give each cell the percentile bootstrap interval of the mean over seeds
(``rlgen.bench.stats.bootstrap_ci``, 2,000 resamples) and call a bonus's effect "helps" / "hurts" where its
interval and the plain agent's do not overlap. With few seeds a percentile bootstrap interval is too narrow.
This draws groups of runs from known distributions and counts, per number of seeds:

- coverage: how often the nominal 95% interval holds the true mean, for normal scores and for success
  rates with many zeros (half the runs never succeed, the others succeed in a Beta(2, 5) share of episodes);
- the non-overlap rule's false verdicts: how often two groups drawn from the same distribution get intervals
  that do not overlap (a "helps" or "hurts" where there is no difference);
- the same for the exact permutation test at p < 0.05 (``rlgen.bench.stats.permutation_test``), beside it.

Nothing is trained; a minute or two on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlgen.atomic import atomic_write_text  # noqa: E402
from rlgen.bench import stats  # noqa: E402

Draw = Callable[[np.random.Generator, int], np.ndarray]


def normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(0.0, 1.0, n)


def sparse_rates(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.5, 0.0, rng.beta(2.0, 5.0, n))


DISTRIBUTIONS: dict[str, tuple[Draw, float]] = {
    "normal scores": (normal, 0.0),
    "success rates, half the runs never succeed": (sparse_rates, 0.5 * 2.0 / 7.0),
}


def simulate(draw: Draw, true_mean: float, n: int, sims: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    covered = no_overlap = permutation_hits = 0
    for i in range(sims):
        a, b = draw(rng, n), draw(rng, n)
        _, low_a, high_a = stats.bootstrap_ci(a, seed=2 * i)
        _, low_b, high_b = stats.bootstrap_ci(b, seed=2 * i + 1)
        covered += low_a <= true_mean <= high_a
        no_overlap += low_a > high_b or high_a < low_b
        permutation_hits += stats.permutation_test(a, b) < 0.05
    return {"coverage": covered / sims, "no_overlap": no_overlap / sims, "permutation": permutation_hits / sims}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=400, help="simulated pairs of groups per cell")
    parser.add_argument("--seeds", default="5,10", help="comma-separated numbers of seeds per group")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/bootstrap_coverage.md"),
                        help="where to write the table ('-': print only)")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if args.sims < 1 or min(seeds) < 2:
        parser.error("--sims must be at least 1 and every --seeds entry at least 2")
    rows = []
    for name, (draw, true_mean) in DISTRIBUTIONS.items():
        for n in seeds:
            result = simulate(draw, true_mean, n, args.sims, seed=n)
            rows.append(f"| {name} | {n} | {result['coverage']:.2f} | {result['no_overlap']:.3f} | "
                        f"{result['permutation']:.3f} |")
            print(rows[-1], flush=True)
    command = "python benchmarks/bootstrap_coverage.py" + "".join(
        f" {flag} {value}" for flag, value, default in (("--sims", args.sims, 400), ("--seeds", args.seeds, "5,10"))
        if value != default)
    text = "\n".join([
        "# How far the reports' 95% intervals over a few seeds can be trusted", "",
        f"Command: `{command}`", "",
        f"Written {time.strftime('%Y-%m-%d %H:%M')}. {args.sims} simulated pairs of groups per row, each group of "
        "n runs drawn from the same distribution, so any verdict is a false one. Coverage: share of the nominal "
        "95% percentile bootstrap intervals of the mean (rlgen.bench.stats.bootstrap_ci, 2,000 resamples) that hold "
        "the true mean. Non-overlap: share of pairs whose two intervals do not overlap, the reports' "
        "\"helps\"/\"hurts\" rule. Permutation: share with the exact permutation test's p < 0.05 "
        "(rlgen.bench.stats.permutation_test).", "",
        "| scores | runs per group | coverage of a 95% interval | non-overlap (false verdicts) | "
        "permutation p < 0.05 (false verdicts) |",
        "|---|---|---|---|---|", *rows, ""])
    if args.out != "-":
        atomic_write_text(args.out, text)
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

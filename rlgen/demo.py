"""The main job on its embedded default (``make demo``): a plain agent against the same agent with VIME.

Both run on a sparse-reward task for several seeds, side by side (one process per core), through the
benchmark harness; the demo then prints a table (success rate, final extrinsic return, steps to the
first success; per seed and overall) and saves a plot of the learning curves. The suite is
``rlgen/bench/suites/vime-demo.yaml``: cells of the exploration benchmark, settings and seeds
(benchmarks/results/exploration.md). Re-running reuses finished runs; delete the output folder to start over.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rlgen.bench import load_suite, run_suite, show_messages, stats
from rlgen.bench.report import RunRecord, collect, figure_png

DEMO_SUITE = "vime-demo"


def summary_table(records: list[RunRecord]) -> list[str]:
    """Per-seed rows, then one overall row per method (means with 95% bootstrap intervals)."""
    lines = [f"{'method':<12} {'seed':>4}  {'success rate':>12}  {'final return':>12}  {'first success':>13}"]
    labels = list(dict.fromkeys(r.run.label for r in records))
    for label in labels:
        group = [r for r in records if r.run.label == label]
        for r in group:
            first = f"{r.first_success / 1000:.0f}k steps" if np.isfinite(r.first_success) else "never"
            lines.append(f"{label:<12} {r.run.seed:>4}  {r.success_rate:>12.2f}  {r.final:>12.2f}  {first:>13}")
    lines.append("")
    lines.append(f"{'method':<12} {'seeds':>5}  {'success rate [95% CI]':>26}  {'final return [95% CI]':>26}  "
                 f"{'seeds that ever succeeded':>25}")
    for label in labels:
        group = [r for r in records if r.run.label == label and r.state == "finished"]
        rate = stats.bootstrap_ci([r.success_rate for r in group])
        final = stats.bootstrap_ci([r.final for r in group])
        succeeded = sum(np.isfinite(r.first_success) for r in group)
        lines.append(f"{label:<12} {len(group):>5}  {_ci(rate):>26}  {_ci(final):>26}  "
                     f"{f'{succeeded}/{len(group)}':>25}")
    return lines


def _ci(values: tuple[float, float, float]) -> str:
    point, low, high = values
    return f"{point:.2f} [{low:.2f}, {high:.2f}]"


def success_curves_png(records: list[RunRecord], path: Path, bins: int = 20) -> Path:
    """Fraction of training episodes that reached the reward, against env steps, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlgen.atomic import atomic_write_bytes

    end = max(r.run.config.total_steps for r in records)
    edges = np.linspace(0, end, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, label in enumerate(dict.fromkeys(r.run.label for r in records)):
        curves = []
        for r in records:
            if r.run.label != label or r.train_steps is None or not len(r.train_steps):
                continue
            which = np.digitize(r.train_steps, edges[1:-1])
            curves.append([(r.train_returns[which == b] > 0).mean() if (which == b).any() else np.nan
                           for b in range(bins)])
        if not curves:
            continue
        values = np.array(curves)
        # bins no episode ended in (short runs, 500-step episodes) stay gaps in the line, not warnings
        counts = np.sum(~np.isnan(values), axis=0)
        mean = np.where(counts > 0, np.nansum(values, axis=0) / np.maximum(counts, 1), np.nan)
        ax.plot(centres, mean, color=f"C{i}", label=f"{label} ({len(curves)} seeds)")
        for curve in values:
            ax.plot(centres, curve, color=f"C{i}", alpha=0.25, lw=0.8)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("training episodes that reached the reward")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    atomic_write_bytes(path, figure_png(fig))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlgen.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output folder (finished runs there are reused)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default: the suite's)")
    parser.add_argument("--steps", type=int, default=None, help="budget per run (default: the suite's)")
    parser.add_argument("--workers", type=int, default=None, help="runs at once (default: the number of cores)")
    args = parser.parse_args(argv)
    show_messages()  # each run's progress line, as `rlgen bench` shows it

    suite = load_suite(DEMO_SUITE)
    runs = suite.runs(args.out, seeds=args.seeds, total_steps=args.steps)
    labels = " vs ".join(dict.fromkeys(r.label for r in runs))
    print(f"rlgen demo: {labels} on {runs[0].env_id}, {len(runs)} runs of "
          f"{runs[0].config.total_steps:,} steps ({suite.description.split('.')[0]})", flush=True)
    _, report = run_suite(suite, args.out, seeds=args.seeds, total_steps=args.steps, workers=args.workers,
                          command="make demo")
    records = collect(runs)
    print()
    print("\n".join(summary_table(records)))
    plot = success_curves_png(records, Path(args.out) / "success_curves.png")
    print()
    print(f"success curves:  {plot}")
    print(f"full report:     {report} (learning curves beside it)")
    print(f"run directories: {Path(args.out) / 'runs'}")
    print(f"TensorBoard:     tensorboard --logdir {Path(args.out) / 'runs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

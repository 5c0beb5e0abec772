"""How GAIL's imitators got where they ended: learning curves of the imitation benchmark's archived runs.

    python benchmarks/imitation_curves.py [--archive benchmarks/results/runs/imitation] [--method gail-gp10]
        [--out benchmarks/results/imitation_curves.md]

The benchmark (benchmarks/imitation.py) scores each run once, at its end. This reads every archived run's
periodic evaluations (``eval.csv``: the true env return of the deterministic policy, every 25k steps) and
normalises them as the benchmark does, (return - random) / (expert - random) with the archive's random and
expert scores, to tell apart what a final score alone cannot: a method that learns more slowly (steps until
the curve first reaches 0.5 and 0.9), one that reaches the same level and then falls back (best evaluation
against the mean of the last five), and a noisy last point. Per task and demo count: the mean over seeds and
each seed's numbers. Nothing is trained or rolled out; it runs in seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlgen.agents.rundir import read_eval_history  # noqa: E402
from rlgen.atomic import atomic_write_text  # noqa: E402

RUN_NAME = re.compile(r"^(?P<label>.+?)-(?P<demos>\d+)_(?P<env>.+)_s(?P<seed>\d+)$")
LEVELS = (0.5, 0.9)
LAST = 5


def curve(run_dir: Path, random: float, expert: float) -> tuple[np.ndarray, np.ndarray]:
    """(steps, normalised return) of a run's periodic evaluations."""
    rows = read_eval_history(run_dir / "eval.csv")
    steps = np.array([row["timesteps"] for row in rows])
    scores = (np.array([row["mean_return"] for row in rows]) - random) / (expert - random)
    return steps, scores


def first_reaching(steps: np.ndarray, scores: np.ndarray, level: float) -> float:
    reached = np.flatnonzero(scores >= level)
    return float(steps[reached[0]]) if len(reached) else float("inf")


def summarise(steps: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {"final": float(scores[-1]), "best": float(scores.max()), "last5": float(scores[-LAST:].mean()),
            **{f"to{level}": first_reaching(steps, scores, level) for level in LEVELS}}


def fmt_steps(value: float) -> str:
    return "never" if not np.isfinite(value) else f"{value / 1000:,.0f}k"


def report(archive: Path, method: str, command: str) -> str:
    randoms = json.loads((archive / "random_scores.json").read_text())
    experts = {env: record["eval_mean"] for env, record in json.loads((archive / "experts.json").read_text()).items()}
    groups: dict[tuple[str, int], list[tuple[int, dict[str, float]]]] = {}
    for run_dir in sorted((archive / method).iterdir()):
        match = RUN_NAME.match(run_dir.name)
        if not match or not (run_dir / "eval.csv").is_file() or match["env"] not in experts:
            continue
        steps, scores = curve(run_dir, randoms[match["env"]], experts[match["env"]])
        groups.setdefault((match["env"], int(match["demos"])), []).append((int(match["seed"]), summarise(steps, scores)))
    if not groups:
        raise SystemExit(f"imitation_curves.py: no runs with eval.csv under {archive / method}")
    lines = [f"# Learning curves of the imitation benchmark's {method} runs", "", __doc__.split("\n\n")[1].strip()
             .replace("\n", " "), "", f"Command: `{command}`", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M')}. Normalised: (return - random) / (expert - random); "
             f"last {LAST}: the mean of the last {LAST} evaluations; steps to a level: the first evaluation at or "
             "above it.", "",
             "| task | demos | runs | final | best | last 5 | steps to 0.5 | steps to 0.9 | per seed: final / best / "
             "to 0.9 |", "|---|---|---|---|---|---|---|---|---|"]
    for (env, demos), runs in sorted(groups.items()):
        runs.sort()
        values = {key: np.array([summary[key] for _, summary in runs]) for key in runs[0][1]}
        per_seed = "; ".join(f"s{seed} {s['final']:.2f} / {s['best']:.2f} / {fmt_steps(s['to0.9'])}"
                             for seed, s in runs)
        median_steps = {level: float(np.median(values[f"to{level}"])) for level in LEVELS}
        lines.append(f"| {env} | {demos} | {len(runs)} | {values['final'].mean():.2f} | {values['best'].mean():.2f} | "
                     f"{values['last5'].mean():.2f} | {fmt_steps(median_steps[0.5])} (median) | "
                     f"{fmt_steps(median_steps[0.9])} (median) | {per_seed} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=str(REPO / "benchmarks" / "results" / "runs" / "imitation"),
                        help="the imitation benchmark's run archive")
    parser.add_argument("--method", default="gail-gp10", help="the archive's folder of one method's runs")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "imitation_curves.md"),
                        help="the report ('-': print only)")
    args = parser.parse_args(argv)
    archive = Path(args.archive)
    for needed in (archive / "random_scores.json", archive / "experts.json", archive / args.method):
        if not needed.exists():
            parser.error(f"{needed} does not exist: --archive must be the imitation benchmark's run archive")
    command = "python benchmarks/imitation_curves.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(archive, args.method, command.strip())
    if args.out == "-":
        print(text)
    else:
        atomic_write_text(Path(args.out), text)
        print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

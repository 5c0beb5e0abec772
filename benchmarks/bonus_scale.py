"""How large each exploration bonus is beside the env reward the agent learns from, late in training.

    python benchmarks/bonus_scale.py --out /work/bench_runs/exploration [--suite exploration]
        [--report benchmarks/results/bonus_scale.md] [--last 0.2 | --first 0.1]

A bonus is added to the rollout buffer's rewards after VecNormalize has scaled the env reward by the running
standard deviation of the discounted return, so ``eta`` (or ``beta``) is relative to that scale, and the scale
differs by task: where the reward comes once, at a goal that ends the episode, a success is worth a lot after
scaling; where it comes at every step past a goal (SparseHalfCheetah), each step is worth little. This reads,
per finished run of the suite's output folder: the bonus per step over the last ``--last`` of training (the
mean of its per-rollout log's ``*/bonus_mean``), the env reward per step over the same steps (its training
episodes' returns over their lengths, from the Monitor files) scaled as VecNormalize scaled it at the end of
the run (``vecnormalize.npz``: a reward r becomes ``r / sqrt(ret_var + epsilon)``, clipped to ``clip_reward``;
the clip is applied to one unit of reward, which assumes rewards of 0 or 1 per step, as every task of the
exploration suite pays), and their ratio. Per task and method: the ratio of the means over seeds (seeds that
never saw a reward count with 0 env reward), and the per-seed ratios' range over the seeds that saw one.
Nothing is trained. The run directories themselves are needed (the run archive keeps no VecNormalize
statistics).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlgen.agents.rundir import RunDir, read_monitor_file  # noqa: E402
from rlgen.atomic import atomic_write_text  # noqa: E402
from rlgen.bench import load_suite  # noqa: E402


def bonus_per_step(log: Path, from_step: float, to_step: float = np.inf) -> float | None:
    """The mean per-step bonus of the rollouts that ended after ``from_step`` and by ``to_step``."""
    values = []
    for line in log.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if from_step < row.get("timesteps", 0) <= to_step:
            values += [v for k, v in row.items() if k.endswith("/bonus_mean")]
    return statistics.fmean(values) if values else None


def env_reward_per_step(run: RunDir, from_step: float, to_step: float = np.inf) -> float | None:
    """Env reward per step of the training episodes that ended after ``from_step`` and by ``to_step`` (all envs
    pooled, each env's steps counted along its own episodes)."""
    returns, lengths = [], []
    files = sorted(run.monitor_dir.glob("*.monitor.csv"))
    for path in files:
        columns, rows = read_monitor_file(path)
        r, n = columns.index("r"), columns.index("l")
        done = 0.0
        for row in rows:
            done += float(row[n])
            if from_step < done * len(files) <= to_step:  # this env's share of the steps, in suite steps
                returns.append(float(row[r]))
                lengths.append(float(row[n]))
    return sum(returns) / sum(lengths) if lengths else None


def run_scale(run_dir: Path, total_steps: int, last: float, first: float | None = None) -> dict[str, float] | None:
    """Bonus and scaled env reward per step over the last ``last`` of training, or with ``first``, over its first
    ``first`` instead."""
    run = RunDir(run_dir)
    logs = sorted(run_dir.glob("*_log.jsonl"))
    if not logs or not run.finished(total_steps) or not run.vecnorm_file.is_file():
        return None
    with np.load(run.vecnorm_file, allow_pickle=False) as stats:
        if "ret_var" not in stats.files or ("norm_reward" in stats.files and not bool(stats["norm_reward"])):
            return None
        epsilon = float(stats["epsilon"]) if "epsilon" in stats.files else 1e-8
        clip = float(stats["clip_reward"]) if "clip_reward" in stats.files else np.inf
        unit = min(1.0 / float(np.sqrt(float(stats["ret_var"]) + epsilon)), clip)
    from_step, to_step = ((1.0 - last) * total_steps, np.inf) if first is None else (-np.inf, first * total_steps)
    bonus, reward = bonus_per_step(logs[0], from_step, to_step), env_reward_per_step(run, from_step, to_step)
    if bonus is None or reward is None:
        return None
    return {"bonus": bonus, "reward": reward * unit, "unit": unit}


def report(out: Path, suite_name: str, last: float, command: str, first: float | None = None) -> str:
    suite = load_suite(suite_name)
    cells: dict[tuple[str, str], list[dict[str, float]]] = {}
    for run in suite.runs(out):
        scale = run_scale(run.config.run_dir, int(run.config.total_steps), last, first)
        if scale is not None:
            cells.setdefault((run.env_id, run.label), []).append(scale)
    if not cells:
        raise SystemExit(f"bonus_scale.py: no finished run with a bonus log and vecnormalize.npz under {out}")
    if first is not None:
        span = f"the first {first:.0%} of training"
    else:
        span = "the whole of training" if last >= 1 else f"the last {last:.0%} of training"
    caveat = ("The env reward is scaled by VecNormalize's statistics at the end of the run, not those of this "
              "early span, so the ratio is rough here; the bonus per step is in the units it was paid in.\n\n"
              if first is not None else "")
    lines = [f"# Each bonus beside the env reward, over {span}", "",
             __doc__.split("\n\n")[2].strip().replace("\n", " "), "", caveat + f"Command: `{command}`", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M')}; suite {suite_name}; mean over the seeds finished.", "",
             "| task | method | runs | one env reward unit, scaled (median over seeds with a reward) | env reward "
             "per step, scaled | bonus per step | bonus / env reward (of the means) | per seed (seeds with a "
             "reward) |", "|---|---|---|---|---|---|---|---|"]
    for (task, label), values in cells.items():
        mean = {key: statistics.fmean(v[key] for v in values) for key in ("reward", "bonus")}
        rewarded = [v for v in values if v["reward"] > 0]
        unit = f"{statistics.median(v['unit'] for v in rewarded):.3g}" if rewarded else "—"
        ratio = f"{mean['bonus'] / mean['reward']:.2f}" if mean["reward"] > 0 else "— (no env reward)"
        per_seed = sorted(v["bonus"] / v["reward"] for v in rewarded)
        spread = f"{per_seed[0]:.2f}-{per_seed[-1]:.2f} ({len(per_seed)})" if per_seed else "—"
        lines.append(f"| {task} | {label} | {len(values)} | {unit} | {mean['reward']:.3g} | {mean['bonus']:.3g} | "
                     f"{ratio} | {spread} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the suite's output folder (its runs/ hold the run directories)")
    parser.add_argument("--suite", default="exploration", help="the suite whose runs to read")
    span = parser.add_mutually_exclusive_group()
    span.add_argument("--last", type=float, default=0.2, help="the share of training read, at its end")
    span.add_argument("--first", type=float, help="read this share of training at its start instead")
    parser.add_argument("--report", default=str(REPO / "benchmarks" / "results" / "bonus_scale.md"),
                        help="where the table goes ('-': print only)")
    args = parser.parse_args(argv)
    if not 0 < args.last <= 1:
        parser.error(f"--last must be in (0, 1], got {args.last}")
    if args.first is not None and not 0 < args.first <= 1:
        parser.error(f"--first must be in (0, 1], got {args.first}")
    command = "python benchmarks/bonus_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(Path(args.out), args.suite, args.last, command.strip(), args.first)
    if args.report == "-":
        print(text)
    else:
        atomic_write_text(Path(args.report), text)
        print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

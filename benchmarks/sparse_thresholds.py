"""Calibrate the sparse-reward tasks against the policies rlgen's agents start from.

A task measures exploration only if the agent's *initial* policy does not already stumble on its reward. For
each task of the exploration suite this runs ``--episodes`` episodes (reset seeds 0..N-1) under each policy:

  uniform     actions drawn uniformly from the action space
  ppo-init    N(0, 1) per action dimension, clipped to the bounds: the PPO presets' initial Gaussian (log std 0)
  trpo-init   N(0, exp(-1)^2), clipped: the TRPO presets' initial Gaussian (log_std_init -1)

(the presets' networks start with a near-zero mean, taken as zero here) and reports the success rate (episodes
that earned any reward), the earliest rewarded step, and the farthest progress towards the goal (a task's own
measure, rlgen.envs.coverage's, the one training runs record: the goal fraction rlgen's locomotion tasks report,
the car's x, the pole's cos(theta), minus a maze ball's or ant's distance to its goal, the dm_control pole's
cos(angle) or acrobot tip's distance to its target). A task belongs in the exploration suite if
no initial policy earns reward in these episodes; the table says which do.

Usage: OMP_NUM_THREADS=1 python benchmarks/sparse_thresholds.py [--episodes 200] [--jobs 2] [--only Maze]
                                                                [--out benchmarks/results/sparse_thresholds.md]
Third-party tasks whose package is missing (pip install 'rlgen[suites]') are listed as skipped.
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import rlgen.envs  # noqa: F401  (registers rlgen's tasks)
from rlgen.atomic import atomic_write_text
from rlgen.cli.common import HelpFormatter
from rlgen.envs.coverage import TaskMeasures, measures_for
from rlgen.envs.quiet import make as quiet_make


@dataclass(frozen=True)
class Task:
    env_id: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def measures(self) -> TaskMeasures:
        """The task's progress measure (higher is nearer the goal), rlgen's own: rlgen.envs.coverage."""
        measures = measures_for(self.env_id)
        assert measures is not None, f"rlgen.envs.coverage has no measures for {self.env_id}"
        return measures


TASKS = [Task(env_id) for env_id in (
    "rlgen/SparseMountainCar-v0", "rlgen/SparseMountainCar-v1", "rlgen/SparseCartPoleSwingup-v0",
    "rlgen/SparseCartPoleSwingup-v1", "rlgen/SparseHalfCheetah-v0", "rlgen/SparseHalfCheetah-v1", "rlgen/SparseAnt-v0",
    "dm_control/cartpole-swingup_sparse-v0", "dm_control/acrobot-swingup_sparse-v0", "dm_control/pendulum-swingup-v0",
    "PointMaze_UMaze-v3", "AntMaze_UMaze-v5")]

POLICIES = {"uniform": None, "ppo-init": 1.0, "trpo-init": math.exp(-1.0)}
"""Each policy's Gaussian standard deviation (None: uniform over the action space)."""


def make(task: Task) -> gym.Env:
    """The task as rlgen makes it (third-party suites registered on demand, rlgen's defaults such as a maze's
    continuing_task=False applied), without the run loop's wrappers: progress is read off the unwrapped env."""
    return quiet_make(task.env_id, **dict(task.kwargs))


def run(index: int, policy: str, episodes: int) -> dict[str, Any]:
    """``episodes`` episodes of ``policy`` on ``TASKS[index]``: success rate, earliest reward, farthest
    progress."""
    task = TASKS[index]
    measures = task.measures
    start = time.perf_counter()
    try:
        env = make(task)
    except Exception as exc:  # a missing extra, say: one line in the table
        return {"task": task.env_id, "policy": policy, "skipped": str(exc).splitlines()[0]}
    rng = np.random.default_rng(12345)
    std = POLICIES[policy]
    low, high = env.action_space.low, env.action_space.high
    peaks, lengths, successes, first = [], [], 0, None
    for seed in range(episodes):
        env.action_space.seed(seed)
        env.reset(seed=seed)
        peak, earned, length, done = -math.inf, 0.0, 0, False
        while not done:
            action = (env.action_space.sample() if std is None
                      else np.clip(rng.normal(0.0, std, env.action_space.shape), low, high).astype(env.action_space.dtype))
            _, reward, terminated, truncated, info = env.step(action)
            length += 1
            earned += float(reward)
            progress = measures.progress(env.unwrapped, info)
            peak = peak if progress is None else max(peak, progress)
            if reward > 0 and (first is None or length < first):
                first = length
            done = terminated or truncated
        peaks.append(peak)
        lengths.append(length)
        successes += earned > 0
    env.close()
    return {"task": task.env_id, "policy": policy, "episodes": episodes, "successes": successes,
            "first": first, "farthest": max(peaks), "median": statistics.median(peaks),
            "mean_length": float(np.mean(lengths)), "measure": f"max {measures.progress_text}",
            "seconds": time.perf_counter() - start}


def line(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"| {row['task']} | {row['policy']} | skipped: {row['skipped']} | | | | |"
    first = "never" if row["first"] is None else f"step {row['first']}"
    return (f"| {row['task']} | {row['policy']} | {row['successes']}/{row['episodes']} | {first} | "
            f"{row['farthest']:.3g} ({row['median']:.3g}) | {row['measure']} | {row['mean_length']:.0f} |")


RARE = 0.025
"""At most this share of episodes rewarded under every initial policy: rare luck, not a solved task."""


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Per task: sparse for these agents, rewarded only from lucky start states, rarely, or often."""
    out = []
    for task in dict.fromkeys(row["task"] for row in rows):
        measured = [row for row in rows if row["task"] == task and "skipped" not in row]
        if not measured:
            continue
        earning = [row for row in measured if row["successes"]]
        share = max(row["successes"] / row["episodes"] for row in measured)
        counts = ", ".join(f"{row['policy']} {row['successes']}/{row['episodes']}" for row in earning)
        if not earning:
            verdict = "no initial policy earned any reward: sparse for these agents"
        elif all(row["first"] == 1 for row in earning) and len({row["successes"] for row in earning}) == 1:
            verdict = (f"rewarded in as many episodes under every policy ({counts}, the same reset seeds), the "
                       f"earliest at the first step: the reset distribution sometimes starts inside the goal, "
                       f"luck of the start rather than of the actions")
        elif share <= RARE:
            verdict = f"rarely rewarded ({counts}): initial policies can luck into the goal, seldom"
        else:
            verdict = f"often rewarded ({counts}): not a hard-exploration test for agents that start so"
        out.append(f"- {task}: {verdict}")
    return out


def rows_from_report(path: Path) -> list[dict[str, Any]]:
    """The measured rows of a report this script wrote (its table), to write its verdicts again."""
    rows = []
    for line in path.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 7 or "/" not in cells[2] or cells[0] == "task":
            continue
        successes, episodes = (int(v) for v in cells[2].split("/"))
        first = None if cells[3] == "never" else int(cells[3].split()[1])
        farthest, median = cells[4].replace("(", "").replace(")", "").split()
        rows.append({"task": cells[0], "policy": cells[1], "episodes": episodes, "successes": successes,
                     "first": first, "farthest": float(farthest), "median": float(median),
                     "measure": cells[5], "mean_length": float(cells[6])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("--episodes", type=int, default=200, help="episodes per task and policy (seeds 0..N-1)")
    parser.add_argument("--jobs", type=int, default=2, help="(task, policy) pairs run at once (processes)")
    parser.add_argument("--only", default="", help="run only tasks whose id contains this")
    parser.add_argument("--out", type=Path, help="also write the table and the command to this markdown file")
    parser.add_argument("--verdicts-of", type=Path, metavar="REPORT",
                        help="measure nothing: write REPORT's verdicts again from its own table (into --out)")
    args = parser.parse_args()
    if args.verdicts_of is not None:
        rows = rows_from_report(args.verdicts_of)
        text = args.verdicts_of.read_text()
        head = text[:text.index("## Verdicts")]
        atomic_write_text(args.out or args.verdicts_of, head + "## Verdicts\n\n" + "\n".join(verdicts(rows)) + "\n")
        print("\n".join(verdicts(rows)))
        return
    pairs = [(index, policy) for index, task in enumerate(TASKS) if args.only.lower() in task.env_id.lower()
             for policy in POLICIES]
    rows = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(run, *zip(*pairs, strict=True), [args.episodes] * len(pairs)):
            rows.append(row)
            print(line(row), flush=True)
    if args.out is not None:
        command = shlex.join(["python", "benchmarks/sparse_thresholds.py", *sys.argv[1:]])
        atomic_write_text(args.out, "\n".join([
            "# The sparse tasks under the policies rlgen's agents start from", "",
            f"`{command}` ({time.strftime('%Y-%m-%d')}; reset seeds 0 to {args.episodes - 1}, one episode each). "
            "ppo-init: N(0, 1) actions clipped to the bounds (the PPO presets' initial Gaussian); trpo-init: "
            "N(0, 0.37^2) clipped (the TRPO presets' log_std_init -1); uniform: uniform over the action space. "
            "Farthest progress: the best step of any episode (the median episode's best in brackets).", "",
            "| task | policy | episodes with reward | earliest reward | farthest progress (median) | measure | "
            "mean episode length |", "|---|---|---|---|---|---|---|", *map(line, rows), "", "## Verdicts", "",
            *verdicts(rows), ""]))
        print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()

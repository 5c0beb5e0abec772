"""Measure how far uniform-random actions get on each sparse task, to justify the thresholds in rlgen.envs.

Usage: OMP_NUM_THREADS=1 python benchmarks/sparse_thresholds.py [--episodes 50] [--steps 1000] [--jobs 2]
                                                                [--only Ant] [--out FILE.md]

For each configuration it runs ``--episodes`` episodes (seeds 0..N-1) of at most ``--steps`` steps (capped at the
configuration's horizon: the registered one, 1000 for Ant and Humanoid, 500 for HalfCheetah, MountainCar and
CartPole; one HalfCheetah line runs 1000-step episodes to show why its task stops at 500) and prints the
statistic each threshold is judged against:
  locomotion   per-episode max of the progress measure (distance from start, or torso x for HalfCheetah)
  MountainCar  episodes that reached the goal
  CartPole     fraction of steps rewarded, and of episodes with any reward
and for every task the earliest step (over all episodes) at which a random episode was first rewarded.
``--out`` also writes the lines, with the command, to a markdown file (benchmarks/results/sparse_thresholds.md).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import rlgen.envs  # noqa: F401  (registers the tasks)
from rlgen.atomic import atomic_write_text
from rlgen.cli.common import HelpFormatter

# (label, env id, make kwargs, info key tracked; None means "count reward" instead)
CONFIGS: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("Ant (default termination)", "rlgen/SparseAnt-v0", {}, "distance_from_start"),
    (
        "Ant (terminate_when_unhealthy=False)",
        "rlgen/SparseAnt-v0",
        {"terminate_when_unhealthy": False},
        "distance_from_start",
    ),
    ("Humanoid (default termination)", "rlgen/SparseHumanoid-v0", {}, "distance_from_start"),
    (
        "Humanoid (terminate_when_unhealthy=False)",
        "rlgen/SparseHumanoid-v0",
        {"terminate_when_unhealthy": False},
        "distance_from_start",
    ),
    ("HalfCheetah", "rlgen/SparseHalfCheetah-v0", {}, "x_position"),
    ("HalfCheetah (1000-step episodes)", "rlgen/SparseHalfCheetah-v0", {"max_episode_steps": 1000}, "x_position"),
    ("MountainCar", "rlgen/SparseMountainCar-v0", {}, None),
    ("CartPoleSwingup", "rlgen/SparseCartPoleSwingup-v0", {}, None),
]


def run(config: tuple[str, str, dict[str, Any], str | None], episodes: int, steps: int) -> str:
    """Run the random policy on one configuration and return a one-line summary."""
    label, env_id, kwargs, key = config
    kwargs = dict(kwargs)
    start = time.perf_counter()
    # --steps can only shorten the configuration's horizon, so short smoke runs stay possible.
    horizon = kwargs.pop("max_episode_steps", gym.spec(env_id).max_episode_steps or steps)
    env = gym.make(env_id, max_episode_steps=min(steps, horizon), **kwargs)
    peaks, lengths, rewards, rewarded_episodes = [], [], [], 0
    first_rewarded: int | None = None  # the earliest step of any episode that paid a reward
    for seed in range(episodes):
        env.action_space.seed(seed)
        _, info = env.reset(seed=seed)
        peak, total, length = float(info.get(key, 0.0)) if key else 0.0, 0.0, 0
        done = False
        while not done:
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            total += float(reward)
            length += 1
            if reward > 0 and (first_rewarded is None or length < first_rewarded):
                first_rewarded = length
            if key:
                peak = max(peak, float(info[key]))
            done = terminated or truncated
        peaks.append(peak)
        lengths.append(length)
        rewards.append(total)
        rewarded_episodes += total > 0
    env.close()
    secs = time.perf_counter() - start
    head = f"{label:44s} episodes={episodes} mean_len={np.mean(lengths):6.1f}"
    if key:
        body = (
            f"max {key}={max(peaks):.2f} median={statistics.median(peaks):.2f} "
            f"episodes_with_reward={rewarded_episodes}/{episodes} (default threshold)"
        )
    else:
        body = (
            f"rewarded_steps={sum(rewards):.0f}/{sum(lengths)} ({sum(rewards) / sum(lengths):.4f}) "
            f"episodes_with_reward={rewarded_episodes}/{episodes} max_episode_reward={max(rewards):.0f}"
        )
    first = "never" if first_rewarded is None else f"step {first_rewarded}"
    return f"{head} {body} first_reward={first} [{secs:.0f}s]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("--episodes", type=int, default=50, help="episodes per configuration (seeds 0..N-1)")
    parser.add_argument("--steps", type=int, default=1000,
                        help="longest episode; shortens, never lengthens, a configuration's horizon")
    parser.add_argument("--jobs", type=int, default=2, help="configurations run at once (processes)")
    parser.add_argument("--only", default="", help="run only configurations whose label contains this")
    parser.add_argument("--out", type=Path, help="also write the lines and the command to this markdown file")
    args = parser.parse_args()
    configs = [c for c in CONFIGS if args.only.lower() in c[0].lower()]
    lines = []
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run, c, args.episodes, args.steps) for c in configs]
        for future in futures:
            lines.append(future.result())
            print(lines[-1], flush=True)
    if args.out is not None:
        command = shlex.join(["python", "benchmarks/sparse_thresholds.py", *sys.argv[1:]])
        atomic_write_text(args.out, "\n".join([
            "# Uniform-random policies on the sparse tasks", "",
            f"`{command}` ({time.strftime('%Y-%m-%d')}; seeds 0 to {args.episodes - 1}, one episode each). What "
            "the thresholds in rlgen.envs are judged against: how far random actions get (locomotion), how "
            "often they are rewarded, and the earliest step at which any random episode was rewarded.", "",
            "```", *lines, "```", ""]))
        print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()

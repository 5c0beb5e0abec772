"""Pure exploration with plain SB3 models built by hand: does each rlgen bonus wrapper make PPO visit more of the
state space than PPO without it, outside rlgen's run loop?

    python benchmarks/pure_exploration_sb3.py [--env rlgen/SparseMountainCar-v1] [--steps 50000] [--seeds 0,1,2]
                                              [--bonuses vime,density,rnd] [--out FILE.md]

Each env is ``gym.make`` of the task (a Dict observation flattened, as rlgen's run loop does, so that the
wrappers see a Box) wrapped in :class:`rlgen.envs.coverage.ReachAndCoverage` (which counts the cells of the
task's discretised position each env visits) and in a wrapper that zeroes its reward, four of them
in a ``DummyVecEnv``; then the bonus wrapper (with its defaults) and SB3's ``PPO("MlpPolicy", ...)`` with SB3's
defaults apart from ``n_steps=512`` (2,048 transitions per rollout) and the seed, learning with
``callback=wrapper.callback``. No VecNormalize, no rlgen preset: the wrappers as a user would use them. Printed per
method: the cells visited by the four envs together after ``--steps`` steps, per seed and their mean.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

import rlgen.envs  # noqa: E402,F401  (registers rlgen's tasks)
from rlgen.agents.envstack import flat_observation  # noqa: E402
from rlgen.atomic import atomic_write_text  # noqa: E402
from rlgen.cli.common import HelpFormatter  # noqa: E402
from rlgen.envs.coverage import ReachAndCoverage, measures_for  # noqa: E402
from rlgen.envs.quiet import make as quiet_make  # noqa: E402
from rlgen.exploration import RND, VIME, DensityBonus  # noqa: E402

BONUSES = {"vime": VIME, "density": DensityBonus, "rnd": RND}


class NoReward(gym.RewardWrapper):
    def reward(self, reward: float) -> float:
        return 0.0


def cells_visited(env_id: str, bonus: str | None, steps: int, seed: int) -> int:
    measures = measures_for(env_id)
    coverage: list[ReachAndCoverage] = []

    def make() -> gym.Env:
        env = ReachAndCoverage(flat_observation(quiet_make(env_id)), measures)
        coverage.append(env)
        return NoReward(env)

    venv = DummyVecEnv([make for _ in range(4)])
    venv.seed(seed)
    wrapper = BONUSES[bonus](venv, seed=seed) if bonus else None
    model = PPO("MlpPolicy", wrapper or venv, n_steps=512, seed=seed, device="cpu")
    model.learn(steps, callback=wrapper.callback if wrapper else None)
    visited = set().union(*(env.seen for env in coverage))
    (wrapper or venv).close()
    return len(visited)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("--env", default="rlgen/SparseMountainCar-v1", help="a task with a coverage position")
    parser.add_argument("--steps", type=int, default=50_000, help="env steps per run")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--bonuses", default="vime,density,rnd", help=f"comma-separated, of {', '.join(BONUSES)}")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    if measures_for(args.env) is None or measures_for(args.env).position is None:
        parser.error(f"{args.env} has no coverage position (rlgen.envs.coverage)")
    bonuses = [b for b in args.bonuses.split(",") if b]
    unknown = [b for b in bonuses if b not in BONUSES]
    if unknown:
        parser.error(f"unknown bonus {unknown[0]!r}; choose from {', '.join(BONUSES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    rows = ["| method | cells visited, mean | per seed |", "|---|---|---|"]
    start = time.perf_counter()
    for bonus in [None, *bonuses]:
        counts = [cells_visited(args.env, bonus, args.steps, seed) for seed in seeds]
        label = "ppo" if bonus is None else f"ppo + {bonus}"
        rows.append(f"| {label} | {np.mean(counts):.0f} | {', '.join(map(str, counts))} |")
        print(rows[-1], flush=True)
    command = "python benchmarks/pure_exploration_sb3.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n".join([
        f"# Pure exploration with SB3 models built by hand: {args.env}", "",
        f"`{command.strip()}` ({time.strftime('%Y-%m-%d')}, {time.perf_counter() - start:.0f} s). "
        f"{args.steps:,} env steps per run, the env reward zeroed, four envs, SB3's PPO defaults with n_steps 512, "
        "each bonus with its defaults; cells of the task's discretised position (rlgen.envs.coverage) visited "
        "by the four envs together.", "", *rows, ""])
    if args.out is not None:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

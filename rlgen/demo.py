"""The main job on its embedded default (``make demo``): a short PPO run on a sparse-reward task.

It prints where the run directory, the TensorBoard logs and the learning-curve plot are.
"""

from __future__ import annotations

import sys
import time

from rlgen.agents import RunConfig, train
from rlgen.agents.config import build_config

DEMO_STEPS = 60_000


def demo_config(total_steps: int = DEMO_STEPS, out_dir: str = "runs/demo") -> RunConfig:
    # PPO's preset for the task (4 envs x 512 steps); a timestamped name so repeated demos coexist.
    return build_config(
        algo="ppo", env_id="rlgen/SparseMountainCar-v0", total_steps=total_steps, out_dir=out_dir,
        run_name=time.strftime("ppo-sparse-mountaincar-%Y%m%d-%H%M%S"), eval_freq=10_000, eval_episodes=5,
    )


def main() -> int:
    config = demo_config()
    print(f"rlgen demo: PPO on {config.env_id} for {config.total_steps} steps "
          f"(reward 1 at the goal, 0 elsewhere)")
    result = train(config)
    print()
    print(f"final evaluation return: {result.eval_mean_return:.2f} ± {result.eval_std_return:.2f} "
          f"({result.timesteps} steps, {result.wall_time:.0f} s)")
    print(f"run directory:  {result.run_dir}")
    print(f"learning curve: {result.run_dir / 'learning_curve.png'}")
    print(f"TensorBoard:    tensorboard --logdir {result.run_dir / 'tb'}")
    print(f"evaluate again: rlgen eval {result.run_dir} --episodes 20")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which HalfCheetah-v5 episodes in a demo file flipped the cheetah onto its back.

    python benchmarks/halfcheetah_flips.py DEMOS.npz [DEMOS.npz ...] [--angle 1.5]

For every episode of each file (``rlgen.imitation.load_demos``; make one from any run with ``rlgen demos
collect RUN_DIR -n N --out FILE``) it prints the return, the fraction of steps whose torso angle (rad) is
beyond ``--angle`` in either direction (1.5: on its back) and the mean forward velocity, then the file's
totals. HalfCheetah-v5's observations: the default 17 (no x: angle 1, forward velocity 8) or 18 with the
torso's x first (``exclude_current_positions_from_observation=False``, as rlgen/SparseHalfCheetah-v0 has
them: angle 2, velocity 9), where it also prints the step the torso first passed x = ``--goal-x``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rlgen.cli.common import HelpFormatter
from rlgen.imitation import DemoError, load_demos

CHEETAHS = ("HalfCheetah-v5", "rlgen/SparseHalfCheetah-v0")
"""The envs whose observations this reads: Gymnasium's HalfCheetah-v5 and rlgen's sparse task built on it."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("demos", type=Path, nargs="+", help="demo files (.npz) of HalfCheetah-v5")
    parser.add_argument("--angle", type=float, default=1.5, help="|torso angle| beyond this counts as flipped")
    parser.add_argument("--goal-x", type=float, default=5.0,
                        help="with 18-d observations: the torso x whose first passing is printed (5: "
                             "rlgen/SparseHalfCheetah-v0's goal)")
    args = parser.parse_args(argv)
    for path in args.demos:
        try:
            trajs = load_demos(path)
        except DemoError as exc:
            parser.error(str(exc))
        if trajs.env_id not in CHEETAHS or trajs.obs_shape not in ((17,), (18,)):
            parser.error(f"{path} holds {trajs.env_id} demos with observations {trajs.obs_shape}; this reads "
                         f"HalfCheetah-v5's observations (17-d, or 18-d with x) of {', '.join(CHEETAHS)}")
        with_x = trajs.obs_shape == (18,)
        flipped = []
        print(f"{path} ({len(trajs.episodes)} episodes):")
        for i, episode in enumerate(trajs.episodes):
            obs = np.asarray(episode.obs)
            flipped.append(np.abs(obs[:, 1 + with_x]) > args.angle)
            goal = ""
            if with_x:
                past = np.flatnonzero(obs[:, 0] > args.goal_x)
                goal = f"  first past x {args.goal_x:g} at step {past[0] if len(past) else 'never'}"
            print(f"  episode {i:2d}: return {float(episode.episode_return):9.1f}  flipped {flipped[-1].mean():.2f} "
                  f"of its steps  mean forward velocity {obs[:, 8 + with_x].mean():+.2f}{goal}")
        every = np.concatenate(flipped)
        print(f"  in all: {sum(f.any() for f in flipped)} of {len(flipped)} episodes flipped at some step; "
              f"{every.mean():.3f} of all steps flipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

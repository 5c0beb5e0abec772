"""Which HalfCheetah-v5 episodes in a demo file flipped the cheetah onto its back.

    python benchmarks/halfcheetah_flips.py DEMOS.npz [DEMOS.npz ...] [--angle 1.5]

For every episode of each file (``rlgen.imitation.load_demos``; make one from any run with ``rlgen demos
collect RUN_DIR -n N --out FILE``) it prints the return, the fraction of steps whose torso angle
(observation 1, rad) is beyond ``--angle`` in either direction (1.5: on its back) and the mean forward
velocity (observation 8), then the file's totals. HalfCheetah-v5's default observations only (17-d, no x).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rlgen.cli.common import HelpFormatter
from rlgen.imitation import DemoError, load_demos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("demos", type=Path, nargs="+", help="demo files (.npz) of HalfCheetah-v5")
    parser.add_argument("--angle", type=float, default=1.5, help="|torso angle| beyond this counts as flipped")
    args = parser.parse_args(argv)
    for path in args.demos:
        try:
            trajs = load_demos(path)
        except DemoError as exc:
            parser.error(str(exc))
        if trajs.env_id != "HalfCheetah-v5" or trajs.obs_shape != (17,):
            parser.error(f"{path} holds {trajs.env_id} demos with observations {trajs.obs_shape}; this reads "
                         "HalfCheetah-v5's 17-d observations")
        flipped = []
        print(f"{path} ({len(trajs.episodes)} episodes):")
        for i, episode in enumerate(trajs.episodes):
            obs = np.asarray(episode.obs)
            flipped.append(np.abs(obs[:, 1]) > args.angle)
            print(f"  episode {i:2d}: return {float(episode.episode_return):9.1f}  flipped {flipped[-1].mean():.2f} "
                  f"of its steps  mean forward velocity {obs[:, 8].mean():+.2f}")
        every = np.concatenate(flipped)
        print(f"  in all: {sum(f.any() for f in flipped)} of {len(flipped)} episodes flipped at some step; "
              f"{every.mean():.3f} of all steps flipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

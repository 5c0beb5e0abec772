"""What one vectorised pass of prediction gains should hold: cost per transition against rows per pass.

    python benchmarks/prediction_gain_chunk.py [--rows 1024] [--chunks 4,8,16,32,64,128,256]

For the density bonus's default model (a MADE over the discretised next state, or over s' given (s, a)) on
SparseHalfCheetah (18-d observations) and SparseAnt (107-d): ``rows`` random transitions, one untimed model
update, then their prediction gains timed for each rows-per-pass ``chunk``, and for the default chosen by
``rlgen.generative.updates.auto_chunk``. Prints a markdown table: wall and CPU (user + system) milliseconds per
transition, system seconds (page faults show there), and the per-example gradient memory of one pass.
Run it on an otherwise idle machine; the ratios between rows of one table are what it is for.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

import rlgen.envs  # noqa: E402,F401
from rlgen.cli.common import HelpFormatter  # noqa: E402
from rlgen.exploration import DensityBonus  # noqa: E402
from rlgen.generative.updates import auto_chunk  # noqa: E402

TASKS = ("rlgen/SparseHalfCheetah-v0", "rlgen/SparseAnt-v0")


def cpu_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--rows", type=int, default=1024, help="transitions whose gains are timed")
    parser.add_argument("--chunks", default="4,8,16,32,64,128,256", help="rows per pass to time")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    chunks = [int(c) for c in args.chunks.split(",")]
    command = shlex.join(["python", "benchmarks/prediction_gain_chunk.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"Command: `{command}`")
    print()
    print("| task | target | parameters | rows per pass | gradients per pass (MB) | wall ms / transition "
          "| CPU ms / transition | system s |")
    print("|---|---|---|---|---|---|---|---|")
    for env_id in TASKS:
        venv = DummyVecEnv([lambda env_id=env_id: gym.make(env_id)])
        for target in ("state", "transition"):
            probe = DensityBonus(venv, target=target, min_replay=1)
            n_params = sum(p.numel() for p in probe.model.parameters())
            default = auto_chunk(probe.model)
            for chunk in sorted(set(chunks) | {default}):
                bonus = DensityBonus(venv, target=target, min_replay=1, chunk=chunk, seed=0, update_every=args.rows)
                rng = np.random.default_rng(0)
                inputs = rng.normal(size=(args.rows, bonus.obs_dim + bonus.act_dim)).astype(np.float32)
                targets = rng.normal(size=(args.rows, bonus.obs_dim)).astype(np.float32)
                bonus.update_model(inputs, targets)
                bonus.compute_bonus(inputs[:chunk], targets[:chunk])  # warm-up pass
                cpu0, sys0 = cpu_seconds()
                start = time.perf_counter()
                bonus.compute_bonus(inputs, targets)
                wall = time.perf_counter() - start
                cpu1, sys1 = cpu_seconds()
                mark = " (default)" if chunk == default else ""
                print(f"| {env_id} | {target} | {n_params:,} | {chunk}{mark} | {chunk * n_params * 4 / 1e6:.1f} | "
                      f"{wall / args.rows * 1e3:.3f} | {(cpu1 - cpu0) / args.rows * 1e3:.3f} | {sys1 - sys0:.2f} |",
                      flush=True)
        venv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

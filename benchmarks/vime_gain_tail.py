"""How heavy-tailed VIME's information gains are in a finished run, and where the tail comes from.

    python benchmarks/vime_gain_tail.py RUN_DIR [--samples 4096] [--seed 0]

Loads the run's final VIME state (``vime.pt``: the BNN, its replay pool and input statistics), draws
``--samples`` transitions from the pool, and prints the gains' median, mean and maximum, the share of the
total gain held by the top 1% of transitions, and how far those transitions' standardised inputs and
targets lie from the pool mean (max |z| over their dimensions) against the other 99%. Median
normalisation (the original's) turns such a tail into bonuses of thousands of times eta for a few
transitions; ``VIME(max_normalised=...)`` caps it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run trained with --bonus vime")
    parser.add_argument("--samples", type=int, default=4096, help="pool transitions to score")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from rlgen.agents.config import RunConfig
    from rlgen.agents.run import CONFIG_FILE, make_vec_env
    from rlgen.exploration import VIME

    torch.set_num_threads(1)
    config = RunConfig.load(args.run_dir / CONFIG_FILE)
    if config.bonus != "vime" or not (args.run_dir / "vime.pt").is_file():
        parser.error(f"{args.run_dir} is not a finished VIME run (no vime.pt)")
    venv = make_vec_env(config)
    vime = VIME(venv, **{k: v for k, v in config.bonus_kwargs.items() if k != "mode"})
    vime.load_state(args.run_dir)
    pool = vime.pool
    rows = np.random.default_rng(args.seed).choice(pool.size, min(args.samples, pool.size), replace=False)
    obs, actions, nxt = (np.asarray(a[rows], dtype=np.float32) for a in (pool.obs, pool.actions, pool.next_obs))
    inputs = np.concatenate([obs, actions], 1)
    stats = vime.stats if vime.stats is not None else pool.statistics()
    vime.stats = stats
    gains = vime.information_gain(inputs, nxt)
    z = np.maximum(np.abs((inputs - stats["in_mean"]) / stats["in_std"]).max(1),
                   np.abs((nxt - stats["out_mean"]) / stats["out_std"]).max(1))
    order = np.argsort(gains)
    top, rest = order[-max(1, len(order) // 100):], order[:-max(1, len(order) // 100)]
    print(f"run: {args.run_dir.name}; {len(rows)} of the pool's {pool.size} transitions")
    print(f"information gain: median {np.median(gains):.2e}, mean {gains.mean():.2e}, max {gains.max():.2e}")
    print(f"top 1% of transitions hold {gains[top].sum() / gains.sum():.1%} of the total gain")
    print(f"median max|z| of their standardised inputs and targets: {np.median(z[top]):.1f} (the other 99%: "
          f"{np.median(z[rest]):.1f}); transitions with max|z| > 10: {(z > 10).mean():.1%}")
    print(f"dimensions with pool std < 1e-3: {int((stats['in_std'] < 1e-3).sum())} of {inputs.shape[1]} inputs")
    print(f"normalised by this median, the largest gain is {gains.max() / np.median(gains):,.0f} x the median")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How heavy-tailed VIME's information gains are in a finished run, and where the tail comes from.

    python benchmarks/vime_gain_tail.py RUN_DIR [--samples 4096] [--seed 0] [--after 100000] [--clips 10,5,3]

From the run's per-rollout log (``vime_log.jsonl``, kept in the run archive too) it prints the medians over
the rollouts after ``--after`` env steps of the bonus's mean, 95th percentile and maximum. If the run
directory still holds the final VIME state (``vime.pt``: the BNN, its replay pool and input statistics; not
archived), it also draws ``--samples`` transitions from the pool and prints the gains' median, mean and
maximum, the share of the total gain held by the top 1% of transitions, and how far those transitions'
standardised inputs and targets lie from the pool mean (max |z| over their dimensions) against the other 99%. Median
normalisation (the original's) turns such a tail into bonuses of thousands of times eta for a few
transitions. It names the input columns farthest out in the top 1%, and with ``--clips`` scores the same
transitions under other clips of the standardised values. ``VIME(clip=...)`` (default 5) shrinks the tail where
the scale is made, ``VIME(max_normalised=...)`` caps it (benchmarks/results/vime_gain_tail.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rlgen.cli.common import HelpFormatter  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a finished run trained with --bonus vime")
    parser.add_argument("--samples", type=int, default=4096, help="pool transitions to score")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pool sample and the gains' weight draws")
    parser.add_argument("--after", type=int, default=100_000, help="log rows after this many env steps")
    parser.add_argument("--clips", default="", metavar="C1,C2",
                        help="also score the same transitions with the BNN's standardised inputs and targets clipped at "
                        "each of these values (the trained BNN as it is): how much of the tail a clip removes")
    args = parser.parse_args(argv)
    from rlgen.agents.config import RunConfig
    from rlgen.agents.envstack import make_vec_env
    from rlgen.agents.rundir import CONFIG_FILE
    from rlgen.exploration import VIME

    torch.set_num_threads(1)
    config = RunConfig.load(args.run_dir / CONFIG_FILE)
    log = args.run_dir / "vime_log.jsonl"
    if config.bonus != "vime" or not log.is_file():
        parser.error(f"{args.run_dir} is not a VIME run (no vime_log.jsonl)")
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    late = [row for row in rows if row["timesteps"] > args.after]
    eta = config.bonus_kwargs.get("eta", 0.1)
    # a row is a rollout, or several short ones (A2C's), or a step-mode window (SAC; no bonus percentiles)
    print(f"run: {args.run_dir.name}; {len(late)} log rows after {args.after:,} env steps, eta {eta}")
    for key, what in (("vime/bonus_mean", "mean"), ("bonus_p95", "95th percentile"), ("bonus_max", "maximum")):
        values = [row[key] for row in late if key in row]
        value = float(np.median(values)) if values else float("nan")
        print(f"bonus {what} per log row, median over {len(values)} rows: {value:,.2f} ({value / eta:,.3g} x eta)")
    if not (args.run_dir / "vime.pt").is_file():
        print("no vime.pt (an archived run): the pool's gains are not scored")
        return 0
    venv = make_vec_env(config)
    vime = VIME(venv, **{k: v for k, v in config.bonus_kwargs.items() if k != "mode"})
    vime.load_state(args.run_dir)
    pool = vime.pool
    picked = np.random.default_rng(args.seed).choice(pool.size, min(args.samples, pool.size), replace=False)
    obs, actions, nxt = (np.asarray(a[picked], dtype=np.float32) for a in (pool.obs, pool.actions, pool.next_obs))
    inputs = np.concatenate([obs, actions], 1)
    stats = vime.stats if vime.stats is not None else pool.statistics()
    vime.stats = stats
    torch.manual_seed(args.seed)  # the gains' Monte-Carlo weight samples
    gains = vime.information_gain(inputs, nxt)
    z = np.maximum(np.abs((inputs - stats["in_mean"]) / stats["in_std"]).max(1),
                   np.abs((nxt - stats["out_mean"]) / stats["out_std"]).max(1))
    order = np.argsort(gains)
    top, rest = order[-max(1, len(order) // 100):], order[:-max(1, len(order) // 100)]
    print(f"pool: {len(picked)} of its {pool.size} transitions scored")
    print(f"information gain: median {np.median(gains):.2e}, mean {gains.mean():.2e}, max {gains.max():.2e}")
    print(f"top 1% of transitions hold {gains[top].sum() / gains.sum():.1%} of the total gain")
    print(f"median max|z| of their standardised inputs and targets: {np.median(z[top]):.1f} (the other 99%: "
          f"{np.median(z[rest]):.1f}); transitions with max|z| > 10: {(z > 10).mean():.1%}")
    print(f"dimensions with pool std < 1e-3: {int((stats['in_std'] < 1e-3).sum())} of {inputs.shape[1]} inputs")
    print(f"normalised by this median, the largest gain is {gains.max() / np.median(gains):,.0f} x the median")
    z_in = np.abs((inputs - stats["in_mean"]) / stats["in_std"])
    columns = np.bincount(z_in[top].argmax(1), minlength=inputs.shape[1])
    where = ", ".join(f"{'obs' if c < obs.shape[1] else 'action'}[{c if c < obs.shape[1] else c - obs.shape[1]}] "
                      f"{columns[c]}" for c in np.argsort(columns)[::-1][:8] if columns[c])
    print(f"input column farthest out, per top-1% transition ({obs.shape[1]} obs + {actions.shape[1]} action "
          f"columns): {where}")
    clips = [float(c) for c in args.clips.split(",") if c.strip()]
    for clip in clips:
        vime.clip = clip
        torch.manual_seed(args.seed)
        clipped = np.sort(vime.information_gain(inputs, nxt))
        k = max(1, len(clipped) // 100)
        print(f"clipped at {clip:g}: top 1% hold {clipped[-k:].sum() / clipped.sum():.1%}, largest "
              f"{clipped[-1] / np.median(clipped):,.0f} x the median, mean {clipped.mean() / np.median(clipped):,.0f} "
              f"x the median")
    return 0


if __name__ == "__main__":
    sys.exit(main())

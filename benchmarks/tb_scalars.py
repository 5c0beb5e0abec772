"""Print a run's TensorBoard scalars at a few evenly spaced points of training (what a glance at the plots shows).

    python benchmarks/tb_scalars.py RUN_DIR [RUN_DIR ...] [--prefix gail/] [--points 9] [--out FILE.md]

Reads ``RUN_DIR/tb`` (TensorBoard logs stay with the run directory; the run archive does not keep them) and
prints, per run and per scalar tag starting with ``--prefix`` (and ``rollout/ep_rew_mean``), the value at
``--points`` evenly spaced logged steps as ``<step in k>:<value>``. ``--out`` also writes the printout and
the command to a markdown file.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from rlgen.atomic import atomic_write_text
from rlgen.cli.common import HelpFormatter


def scalars(run_dir: Path, prefix: str, points: int) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted((run_dir / "tb").rglob("events.out.tfevents.*"))
    if not files:
        raise SystemExit(f"tb_scalars.py: {run_dir} has no TensorBoard log under tb/")
    lines = [f"{run_dir.name}:"]
    for path in files:
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        for tag in sorted(events.Tags()["scalars"]):
            if not (tag.startswith(prefix) or tag == "rollout/ep_rew_mean"):
                continue
            values = events.Scalars(tag)
            picked = [values[round(i * (len(values) - 1) / max(1, points - 1))] for i in range(points)]
            lines.append(f"  {tag:24s} " + " ".join(f"{v.step // 1000}k:{v.value:.3g}" for v in picked))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run directories with a tb/ folder")
    parser.add_argument("--prefix", default="gail/", help="scalar tags to print (and rollout/ep_rew_mean)")
    parser.add_argument("--points", type=int, default=9, help="evenly spaced points per tag")
    parser.add_argument("--out", type=Path, help="also write the printout and the command to this markdown file")
    args = parser.parse_args(argv)
    if args.points < 1:
        parser.error(f"--points must be at least 1, got {args.points}")
    lines = [line for run_dir in args.run_dirs for line in scalars(run_dir, args.prefix, args.points)]
    print("\n".join(lines))
    if args.out is not None:
        command = shlex.join(["python", "benchmarks/tb_scalars.py", *(sys.argv[1:] if argv is None else argv)])
        atomic_write_text(args.out, "\n".join([f"# TensorBoard scalars ({time.strftime('%Y-%m-%d')})", "",
                                               f"`{command}`", "", "```", *lines, "```", ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The sparse-reward benchmark: PPO and TRPO with and without VIME, through the benchmark harness.

    python benchmarks/sparse.py [--seeds N] [--workers N] [--out runs/bench/sparse]

Runs (or resumes) the built-in suite ``sparse`` (rlgen/bench/suites/sparse.yaml) and writes
benchmarks/results/sparse.md with learning curves, success rates and final extrinsic returns with
bootstrap intervals. It is long (26M env steps in all, 12M of them on SparseAnt): run it in the
background; an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rlgen.bench import load_suite, run_suite

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: the suite's)")
    parser.add_argument("--workers", type=int, default=None, help="runs at once (default: the cores)")
    parser.add_argument("--out", default="runs/bench/sparse", help="where the run directories go")
    parser.add_argument("--match", default=None, metavar="REGEX", help="only the runs whose name matches")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/sparse.py", *(argv if argv is not None else sys.argv[1:])])
    statuses, report = run_suite(load_suite("sparse"), args.out, seeds=args.seeds, workers=args.workers,
                                 report_dir=RESULTS, command=command.strip(), match=args.match)
    print(f"report: {report}")
    return 1 if any(s.status == "failed" for s in statuses) else 0


if __name__ == "__main__":
    sys.exit(main())

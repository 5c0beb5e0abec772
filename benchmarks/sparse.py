"""The sparse-reward benchmark: PPO and TRPO with and without VIME, and PPO with the density bonus.

    python benchmarks/sparse.py [--seeds N] [--workers N] [--out runs/bench/sparse] [--match REGEX]
                               [--archive DIR] [--report-name NAME]

Runs (or resumes) the built-in suite ``sparse`` (rlgen/bench/suites/sparse.yaml) through the benchmark
harness and writes benchmarks/results/sparse.md with learning curves, success rates and final extrinsic
returns with bootstrap intervals. It is long (30M env steps in all, 9M of them on SparseAnt; 12 to 15 h
with two workers on a 2-core machine): run it in the background, in parts with ``--match`` if need be; an
interrupted run resumes where it stopped, and the report always covers every run finished in ``--out``.

Each finished run's small files (config, result, evaluations, Monitor logs, bonus log) are copied to the
run archive benchmarks/results/runs/sparse/ (``--archive``), which is committed: a later session or another
machine restores them instead of training them again, so the suite adds up across sessions.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rlgen.bench import load_suite, run_suite

RESULTS = Path(__file__).parent / "results"
ARCHIVE = RESULTS / "runs" / "sparse"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: the suite's)")
    parser.add_argument("--workers", type=int, default=None, help="runs at once (default: the cores)")
    parser.add_argument("--out", default="runs/bench/sparse", help="where the run directories go")
    parser.add_argument("--match", default=None, metavar="REGEX", help="only the runs whose name matches")
    parser.add_argument("--archive", default=str(ARCHIVE), metavar="DIR",
                        help="run archive: finished runs there are reused, runs finished here are added "
                        "(default: the committed one; '' for none)")
    parser.add_argument("--report-name", default=None, metavar="NAME", help="NAME.md instead of sparse.md")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/sparse.py", *(argv if argv is not None else sys.argv[1:])])
    statuses, report = run_suite(load_suite("sparse"), args.out, seeds=args.seeds, workers=args.workers,
                                 report_dir=RESULTS, command=command.strip(), match=args.match,
                                 archive_dir=args.archive or None, report_name=args.report_name)
    print(f"report: {report}")
    return 1 if any(s.status == "failed" for s in statuses) else 0


if __name__ == "__main__":
    sys.exit(main())

"""``rlgen bench``: run a multi-seed benchmark suite and write its report."""

from __future__ import annotations

import argparse
import shlex
import sys

from rlgen.cli.common import HelpFormatter, Subparsers, nonnegative_int, positive_int


def register(sub: Subparsers) -> None:
    from rlgen.bench.runner import BACKENDS
    from rlgen.bench.suite import RUN_ORDERS, available_suites

    p = sub.add_parser(
        "bench", help="run a multi-seed benchmark suite and write its report",
        description="Run every run of a suite (env x algo x settings x seed) through the same train() as "
        "`rlgen train`, then aggregate: final returns with bootstrap intervals, normalised scores "
        "(IQM and mean), learning curves and a performance profile. Re-running skips finished runs and "
        "resumes unfinished ones; a failed run is recorded and the suite goes on.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("suite", metavar="SUITE",
                   help=f"a built-in suite ({', '.join(available_suites())}) or a suite YAML file")
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local: a process pool on this machine; ray: Ray Tune (pip install 'rlgen[ray]')")
    p.add_argument("--address", default=None, help="with --backend ray: join this Ray cluster (e.g. auto)")
    p.add_argument("--seeds", type=positive_int, default=None, metavar="N",
                   help="N seeds instead of the suite's: 0..N-1, or from --first-seed on")
    p.add_argument("--first-seed", type=nonnegative_int, default=None, metavar="S",
                   help="seeds S, S+1, ... (as many as --seeds, or as the suite has), e.g. 100 for tuning seeds "
                   "that the reported runs never use")
    p.add_argument("--steps", type=positive_int, default=None, metavar="N",
                   help="budget per run instead of the suite's")
    p.add_argument("--order", choices=RUN_ORDERS, default="suite",
                   help="the order runs start in: suite (as the suite lists them), task (all of a task's runs "
                   "before the next task's: its cells finish early, for reports in parts) or seed (every "
                   "cell's first seed before any second)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="runs at once (default: the number of cores)")
    # not a run directory: the suite's own folder, which holds one run directory per run and the report
    p.add_argument("--out", default=None, metavar="DIR",
                   help="the suite's output folder, holding its run directories and report "
                   "(default runs/bench/<suite>)")
    p.add_argument("--report-dir", default=None, metavar="DIR",
                   help="where <suite>.md and its plots go (default: --out)")
    p.add_argument("--match", default=None, metavar="REGEX",
                   help="only the runs whose name (<label>_<env>_s<seed>) matches, e.g. '^trpo.*CartPole'")
    p.add_argument("--report-only", action="store_true",
                   help="aggregate the runs already there; train nothing")
    p.add_argument("--plan", action="store_true",
                   help="train and write nothing: list per task the runs finished (in --out or --archive) and "
                   "left, their env steps and the core-hours they will take, timed by the finished runs")
    p.add_argument("--report-name", default=None, metavar="NAME", type=report_name,
                   help="write NAME.md and NAME_*.png instead of <suite>.md (with --report-only --match: a "
                   "report of that part alone)")
    p.add_argument("--archive", default=None, metavar="DIR",
                   help="a run archive (e.g. one committed with the results): finished runs found there, "
                   "trained with the suite's settings, are copied into --out and skipped; each run finished "
                   "here is copied in (its small files only); with --report-only, both ways, then the report")
    p.set_defaults(func=_cmd_bench)


def report_name(text: str) -> str:
    if not text or "/" in text or text.endswith(".md"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a report name: a plain name without '/' or '.md'")
    return text


def _cmd_bench(args: argparse.Namespace) -> int:
    from rlgen.agents.config import ConfigError
    from rlgen.agents.rundir import RunDir
    from rlgen.bench import load_suite, run_suite, show_messages, write_report

    show_messages()  # the harness only logs its progress lines; a command-line user reads them

    suite = load_suite(args.suite)
    seeds: int | list[int] | None = args.seeds
    if args.first_seed is not None:
        seeds = list(range(args.first_seed, args.first_seed + (args.seeds or len(suite.seeds))))
    out = args.out or f"runs/bench/{suite.name}"
    command = "rlgen " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else ""
    command = command or f"rlgen bench {args.suite}"
    if args.plan:
        import os

        from rlgen.bench.plan import plan_lines

        runs = suite.runs(out, seeds=seeds, total_steps=args.steps, match=args.match)
        timing = suite.runs(out, total_steps=args.steps)  # every finished run of the suite times those left
        print("\n".join(plan_lines(suite.name, runs, args.archive, args.workers or os.cpu_count() or 1, timing)))
        return 0
    if args.report_only:
        runs = suite.runs(out, seeds=seeds, total_steps=args.steps, match=args.match)
        if args.archive is not None:
            from rlgen.bench import archive

            for run in runs:  # both ways: archived runs missing here come in, runs finished here go in
                archive.restore_run(run.config.run_dir, args.archive, run.config.total_steps, run.config)
                archive.archive_run(run.config.run_dir, args.archive, min_timesteps=run.config.total_steps,
                                    config=run.config)
        if not any(RunDir(run.config.run_dir).holds_run() for run in runs):  # a mistyped --out: not an empty report
            where = out + (f" or {args.archive}" if args.archive is not None else "")
            raise ConfigError(f"--report-only: no run of suite {suite.name!r} in {where}; check --out (the folder "
                              f"given to `rlgen bench` when the runs were trained)")
        report = write_report(suite, runs, out, command, args.report_dir, name=args.report_name)
        failed = 0
    else:
        statuses, report = run_suite(suite, out, backend=args.backend, seeds=seeds,
                                     total_steps=args.steps, workers=args.workers, address=args.address,
                                     report_dir=args.report_dir, command=command, match=args.match,
                                     archive_dir=args.archive, report_name=args.report_name, order=args.order)
        failed = sum(s.status == "failed" for s in statuses)
    print(f"report: {report}")
    return 1 if failed else 0

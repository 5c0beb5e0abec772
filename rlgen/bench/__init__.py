"""Multi-seed benchmark suites on this machine or a Ray cluster, aggregated with honest statistics.

>>> from rlgen.bench import load_suite, run_suite   # doctest: +SKIP
>>> run_suite(load_suite("smoke"), out_dir="runs/bench/smoke")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from rlgen.bench.report import write_report
from rlgen.bench.runner import BACKENDS, RunStatus, run_suite_runs
from rlgen.bench.suite import Suite, available_suites, load_suite

__all__ = ["BACKENDS", "RunStatus", "Suite", "available_suites", "load_suite", "run_suite", "write_report"]


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    backend: str = "local",
    seeds: int | None = None,
    total_steps: int | None = None,
    workers: int | None = None,
    address: str | None = None,
    report_dir: str | Path | None = None,
    command: str = "",
    match: str | None = None,
) -> tuple[list[RunStatus], Path]:
    """Run (or resume) every run of ``suite`` (with ``match``, those whose name it matches) and write its report;
    returns the statuses and the report path. The report always covers the whole suite as far as it has run
    in ``out_dir``, so a suite run in parts with ``match`` never replaces a fuller report with a partial one."""
    runs = suite.runs(out_dir, seeds=seeds, total_steps=total_steps, match=match)
    statuses = run_suite_runs(runs, backend=backend, workers=workers, address=address)
    command = command or f"rlgen bench {suite.name}"
    if match is not None:
        everything = suite.runs(out_dir, seeds=seeds, total_steps=total_steps)
        # the report template wraps the command in backticks: this closes the command's and opens the folder's
        command += f"`, the last part run; the report covers every run of the suite finished under `{out_dir}"
    else:
        everything = runs
    report = write_report(suite, everything, out_dir, command, report_dir)
    return statuses, report

"""Multi-seed benchmark suites on this machine or a Ray cluster, aggregated with honest statistics.

>>> from rlgen.bench import load_suite, run_suite   # doctest: +SKIP
>>> run_suite(load_suite("smoke"), out_dir="runs/bench/smoke")   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rlgen.bench.report import write_report
from rlgen.bench.runner import BACKENDS, RunStatus, print_progress, run_suite_runs
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
    archive_dir: str | Path | None = None,
    archive_models: bool = False,
    report_name: str | None = None,
    before_archive: Callable[[Path], object] | None = None,
) -> tuple[list[RunStatus], Path]:
    """Run (or resume) every run of ``suite`` (with ``match``, those whose name it matches) and write its report;
    returns the statuses and the report path. The report always covers the whole suite as far as it has run
    in ``out_dir``, so a suite run in parts with ``match`` never replaces a fuller report with a partial one.

    With ``archive_dir`` (:mod:`rlgen.bench.archive`), runs finished elsewhere and archived there are
    restored into ``out_dir`` first (and skipped), and each run's record is archived as it finishes
    (``archive_models``: with its final model), so a suite carried over several machines adds up.
    ``before_archive`` is called with a finished run's directory just before it is archived, to write into it
    what the archive should carry (a benchmark's cached score, say, computed while the model is still there);
    if it raises, the run is archived without it and a line says so.
    ``report_name`` names the report (default: the suite's name)."""
    runs = suite.runs(out_dir, seeds=seeds, total_steps=total_steps, match=match)
    everything = suite.runs(out_dir, seeds=seeds, total_steps=total_steps) if match is not None else runs
    on_status = print_progress
    if archive_dir is not None:
        from rlgen.bench import archive

        restored = sum(archive.restore_run(r.config.run_dir, archive_dir, r.config.total_steps, r.config)
                       for r in everything)
        if restored:
            print(f"restored {restored} finished run(s) from {archive_dir}", flush=True)

        configs = {r.config.run_dir.name: r.config for r in runs}

        def on_status(done: int, total: int, start: float, status: RunStatus) -> None:
            if status.status in ("done", "skipped"):
                config = configs[status.name]
                if before_archive is not None:
                    try:
                        before_archive(config.run_dir)
                    except Exception as exc:  # the record is still worth archiving
                        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                        print(f"archive: {status.name}: before archiving: {reason}; archived without it", flush=True)
                try:
                    archive.archive_run(config.run_dir, archive_dir, archive_models, config.total_steps)
                except OSError as exc:  # the runs matter more than their copies: say so and go on
                    print(f"archive: could not copy {status.name} to {archive_dir}: {exc}", flush=True)
            print_progress(done, total, start, status)

    statuses = run_suite_runs(runs, backend=backend, workers=workers, address=address, on_status=on_status)
    command = command or f"rlgen bench {suite.name}"
    if match is not None:
        # the report template wraps the command in backticks: this closes the command's and opens the folder's
        command += f"`, the last part run; the report covers every run of the suite finished under `{out_dir}"
    report = write_report(suite, everything, out_dir, command, report_dir, name=report_name)
    return statuses, report

"""Multi-seed benchmark suites on this machine or a Ray cluster, aggregated with honest statistics.

>>> from rlgen.bench import load_suite, run_suite   # doctest: +SKIP
>>> run_suite(load_suite("smoke"), out_dir="runs/bench/smoke")   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from rlgen.bench.report import write_report
from rlgen.bench.runner import BACKENDS, RunStatus, log_progress, run_suite_runs
from rlgen.bench.suite import Suite, available_suites, load_suite, order_runs

__all__ = ["BACKENDS", "RunStatus", "Suite", "available_suites", "load_suite", "run_suite", "show_messages",
           "write_report"]

logger = logging.getLogger(__name__)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a message comes (a redirected or captured stdout), not the
    one there was when the handler was made."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ sets it; sys.stdout is read instead
        pass


def show_messages(level: int = logging.INFO) -> None:
    """Show the benchmark harness's messages (each run's progress, what the archive restored or could not
    copy, demos made again) on standard output, one plain line each: what a command-line program running
    benchmarks (``rlgen bench``, a benchmark script) calls first. The library itself only logs them, to the
    ``rlgen.bench`` loggers; calling this again adds no second handler."""
    root = logging.getLogger("rlgen.bench")
    if not any(isinstance(handler, _StdoutHandler) for handler in root.handlers):
        root.addHandler(_StdoutHandler())
    root.setLevel(level)


def run_suite(
    suite: Suite,
    out_dir: str | Path,
    backend: str = "local",
    seeds: int | Sequence[int] | None = None,
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
    order: str = "suite",
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
    ``report_name`` names the report (default: the suite's name). ``order`` is the order the runs start in
    (:func:`rlgen.bench.suite.order_runs`: ``suite``, ``task`` or ``seed``)."""
    runs = order_runs(suite.runs(out_dir, seeds=seeds, total_steps=total_steps, match=match), order)
    everything = suite.runs(out_dir, seeds=seeds, total_steps=total_steps) if match is not None else runs
    on_status = log_progress
    if archive_dir is not None:
        from rlgen.bench import archive

        restored = sum(archive.restore_run(r.config.run_dir, archive_dir, r.config.total_steps, r.config)
                       for r in everything)
        if restored:
            logger.info("restored %d finished run(s) from %s", restored, archive_dir)

        configs = {r.config.run_dir.name: r.config for r in runs}

        def on_status(done: int, total: int, start: float, status: RunStatus) -> None:
            if status.status in ("done", "skipped"):
                config = configs[status.name]
                if before_archive is not None:
                    try:
                        before_archive(config.run_dir)
                    except Exception as exc:  # the record is still worth archiving
                        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                        logger.warning("archive: %s: before archiving: %s; archived without it", status.name,
                                       reason)
                try:
                    archive.archive_run(config.run_dir, archive_dir, archive_models, config.total_steps, config)
                except OSError as exc:  # the runs matter more than their copies: say so and go on
                    logger.warning("archive: could not copy %s to %s: %s", status.name, archive_dir, exc)
            log_progress(done, total, start, status)

    statuses = run_suite_runs(runs, backend=backend, workers=workers, address=address, on_status=on_status)
    command = command or f"rlgen bench {suite.name}"
    if match is not None:
        # the report template wraps the command in backticks: this closes the command's and opens the folder's
        command += f"`, the last part run; the report covers every run of the suite finished under `{out_dir}"
    report = write_report(suite, everything, out_dir, command, report_dir, name=report_name)
    return statuses, report

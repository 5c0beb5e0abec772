"""The staged imitation benchmarks' shared pipeline: experts, their demos, a run archive that carries both.

``benchmarks/imitation.py`` and ``benchmarks/infogail.py`` train experts (a suite), pick per task (or task
and behaviour) the expert that makes the demos, roll the demos out, then train imitators on them. Their
output folder and their run archive share one layout::

    experts/runs/<run>/      the experts suite's runs (archive: experts/<run>/, with the models)
    experts.json             per key the chosen expert (:func:`rlgen.bench.experts.pick_experts`)
    random_scores.json       the random policy's scores, a benchmark's own cache
    demos/<name>.npz         demo files (not archived: made again from their records)
    demos/<name>.json        their records (:mod:`rlgen.bench.records`)
    budgets.json             whether it holds --quick runs
    <part>/...               the imitators' runs, in the parts a benchmark names

A :class:`Pipeline` holds what differs between the benchmarks (the experts suite, how experts are keyed,
the demo files, the evaluation episodes) and runs the steps they share; :func:`add_arguments`,
:func:`task_list`, :func:`finish_arguments` and :func:`run_stages` are the scripts' shared command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlgen.agents import RunConfig
from rlgen.atomic import atomic_write_text
from rlgen.bench import run_suite
from rlgen.bench.archive import archive, restore_run
from rlgen.bench.experts import EXPERTS_FILE, pick_experts
from rlgen.bench.records import (
    BUDGETS_FILE,
    DemoFile,
    RecordMismatch,
    benchmark_archive,
    keep_demos_record,
    make_expert_demos,
    merge_json,
    mix_demo_parts,
    regenerate_demos,
    restore_demo_records,
)
from rlgen.bench.report import RANDOM_SCORES_FILE
from rlgen.bench.runner import run_finished
from rlgen.bench.suite import RUNS_DIR, Suite, SuiteRun

logger = logging.getLogger(__name__)

EXPERTS_DIR = "experts"
DEMOS_DIR = "demos"
STAGES = ("experts", "demos", "imitate", "report", "all")


@dataclass
class Pipeline:
    """One imitation benchmark's experts and demos in the output folder ``out``, carried by ``archive``
    (None: no archive)."""

    out: Path
    archive: Path | None
    experts: Suite
    """The experts' suite (its runs go to ``out/experts``)."""
    expert_key: Callable[[SuiteRun], str]
    """What one expert is picked for: a task (``run.env_id``), a task and behaviour."""
    demos: Sequence[DemoFile]
    """Every demo file, each after those it is mixed from."""
    eval_episodes: int
    """Evaluation episodes that score an expert."""
    eval_seed: int
    workers: int | None = None
    command: str = ""
    progress_bar: bool = False
    accept_new_demos: bool = False
    """Keep demos made again whose sha256 differs from their record (``--accept-new-demos``)."""
    expert_fields: dict[str, Any] = field(default_factory=dict)
    """Added to each record of experts.json."""

    # -- where things go -----------------------------------------------------------------------------
    @property
    def experts_dir(self) -> Path:
        return self.out / EXPERTS_DIR

    def kept(self, part: str) -> Path | None:
        """Where the archive keeps ``part`` (None: no archive)."""
        return self.archive / part if self.archive is not None else None

    def sync_json(self, name: str) -> None:
        """A JSON cache of ``out``'s root and its copy in the archive's root made the same (local entries
        win)."""
        if self.archive is not None:
            merge_json(self.out / name, self.archive / name)

    def expert_runs(self) -> list[SuiteRun]:
        return self.experts.runs(self.experts_dir)

    # -- the archive ---------------------------------------------------------------------------------
    def restore(self) -> int:
        """Copy into ``out`` what the archive holds and ``out`` lacks: the finished experts (with their
        models), experts.json, random_scores.json and the demos' records (the demos themselves are made again
        from them, :meth:`regenerate_demos`); returns how many runs and records. The imitators follow once
        their demos are there (:meth:`restore_runs`)."""
        if self.archive is None:
            return 0
        restored = self.restore_runs(EXPERTS_DIR, (run.config for run in self.expert_runs()))
        for name in (EXPERTS_FILE, RANDOM_SCORES_FILE):
            self.sync_json(name)
        restored += restore_demo_records(self.demos, self.archive / DEMOS_DIR)
        if restored:
            logger.info("restored %d expert(s) and demo record(s) from %s", restored, self.archive)
        return restored

    def restore_runs(self, part: str, configs: Iterable[RunConfig], min_timesteps: int | None = None) -> int:
        """Restore each run of ``configs`` the archive's ``part`` holds, finished with its budget (or
        ``min_timesteps``), into its run directory (:func:`rlgen.bench.archive.restore_run`); returns how
        many."""
        if self.archive is None:
            return 0
        return sum(restore_run(config.run_dir, self.archive / part,
                               config.total_steps if min_timesteps is None else min_timesteps, config)
                   for config in configs)

    def archive_runs(self, part: str, runs: Iterable[SuiteRun], with_model: bool = False) -> int:
        """Archive every finished run of ``runs`` into the archive's ``part``; returns how many records."""
        if self.archive is None:
            return 0
        return archive((run.config.run_dir for run in runs if run_finished(run.config)), self.archive / part,
                       with_model=with_model)

    def archive_experts(self) -> None:
        """Archive every finished expert with its model (again once its scores or signatures are cached)."""
        self.archive_runs(EXPERTS_DIR, self.expert_runs(), with_model=True)

    # -- experts -------------------------------------------------------------------------------------
    def train_experts(self) -> bool:
        """Run (or resume) the experts' suite, each expert archived with its model as it finishes; returns
        whether none failed."""
        statuses, _ = run_suite(self.experts, self.experts_dir, workers=self.workers,
                                report_dir=self.experts_dir, command=self.command,
                                archive_dir=self.kept(EXPERTS_DIR), archive_models=True)
        return not any(s.status == "failed" for s in statuses)

    def pick_experts(self) -> dict[str, dict[str, Any]]:
        """Per key the finished expert with the best expert policy (:func:`rlgen.bench.experts.pick_experts`),
        in experts.json; every expert archived again with its scores just cached. Returns every expert
        experts.json names."""
        experts = pick_experts(self.expert_runs(), self.expert_key, self.eval_episodes, self.eval_seed,
                               self.out / EXPERTS_FILE, self.expert_fields)
        self.archive_experts()
        self.sync_json(EXPERTS_FILE)
        return experts

    # -- demos ---------------------------------------------------------------------------------------
    def regenerate_demos(self) -> bool:
        """Make the demos again whose record came from the archive without the file
        (:func:`rlgen.bench.records.regenerate_demos`); False if one could not be made."""
        return regenerate_demos(self.demos, self.experts_dir / RUNS_DIR, self.accept_new_demos,
                                self.progress_bar)

    def make_demos(self, demo: DemoFile, expert: dict[str, Any], episodes: int, floor: float | None) -> Any:
        """``expert``'s demos with their record, kept in the archive
        (:func:`rlgen.bench.records.make_expert_demos`); None if too few episodes reach ``floor``."""
        return make_expert_demos(demo, expert, episodes, floor, self.kept(DEMOS_DIR), self.progress_bar)

    def mix_demos(self, demo: DemoFile, parts: list[DemoFile], seed: int = 0) -> Any:
        """The demo files ``parts`` mixed into ``demo`` with its record
        (:func:`rlgen.bench.records.mix_demo_parts`)."""
        return mix_demo_parts(demo, parts, seed, self.kept(DEMOS_DIR))

    def keep_demos_record(self, demo: DemoFile) -> None:
        """Keep ``demo``'s record in the archive (:func:`rlgen.bench.records.keep_demos_record`)."""
        archived = self.kept(DEMOS_DIR)
        if archived is not None:
            keep_demos_record(demo, archived)



def run_stages(script: str, stage: str, pipe: Pipeline, steps: dict[str, Callable[[], Any]]) -> int:
    """A benchmark script's run: what the archive holds restored first (:meth:`Pipeline.restore`), then the
    step named ``stage`` of ``steps`` or, with ``all``, every one in order: the stages, each returning whether
    it succeeded, and last ``report``, returning the report's path, which is logged. Returns the exit code: 1
    if a stage did not succeed. Demos that differ from their records stop the script (SystemExit) with one
    line naming ``script``: the archived runs were trained on other demos."""
    try:
        pipe.restore()
        ok = True
        for name, step in steps.items():
            if stage not in (name, "all"):
                continue
            if name == "report":
                logger.info("report: %s", step())
            else:
                ok = step() and ok
        return 0 if ok else 1
    except RecordMismatch as exc:
        raise SystemExit(f"{script}: {exc}") from None


# -- the benchmark scripts' command line -----------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, name: str, figure: str) -> None:
    """The options a staged benchmark script ends with (``name``: imitation, infogail, its report ``name.md``
    and the ``figure`` beside it): --workers, --out, --report-dir, --quick, --accept-new-demos, --archive."""
    parser.add_argument("--workers", type=int, default=None, help="runs at once (default: the cores)")
    parser.add_argument("--out", default=None, help=f"where run directories and demos go (default "
                        f"runs/bench/{name}; --quick: runs/bench/{name}-quick)")
    parser.add_argument("--report-dir", default=None,
                        help=f"where {name}.md and its {figure} go (default benchmarks/results; --quick: --out)")
    parser.add_argument("--quick", action="store_true",
                        help="shrink every budget to check the pipeline end to end (numbers mean nothing)")
    parser.add_argument("--accept-new-demos", action="store_true",
                        help="keep demos made again from an archived expert even if their sha256 differs from "
                        "the record (another machine's floating point); a warning says so")
    parser.add_argument("--archive", default=None, metavar="DIR",
                        help="run archive: what is there and not in --out is restored, what finishes here is "
                        f"added (default benchmarks/results/runs/{name}, committed; --quick: none; '' for none)")


def task_list(parser: argparse.ArgumentParser, text: str, known: Sequence[str]) -> list[str]:
    """The tasks of a comma-separated option (``--envs``, ``--pairs``); one not in ``known``: ``parser.error``."""
    tasks = [task.strip() for task in text.split(",") if task.strip()]
    unknown = [task for task in tasks if task not in known]
    if unknown:
        parser.error(f"unknown task {unknown[0]!r}; choose from {', '.join(known)}")
    return tasks


def finish_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None,
                     name: str, results: Path, committed: Path, mark_out: bool = False) -> Path:
    """The shared options' defaults and checks, after a script's own (a wrong one: ``parser.error``):
    ``--seeds`` (default 3, with --quick 1), ``--archive`` (:func:`rlgen.bench.records.benchmark_archive`,
    ``committed`` the default), ``--report-dir`` (default ``results``, with --quick the output folder) and
    ``args.command``, the command line for the report. Returns the output folder; with ``mark_out`` its
    budgets.json says whether it holds --quick runs, and one holding the other kind is refused."""
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    out = Path(args.out or (f"runs/bench/{name}-quick" if args.quick else f"runs/bench/{name}"))
    if mark_out:
        marker = out / BUDGETS_FILE
        if marker.is_file() and json.loads(marker.read_text()).get("quick") != args.quick:
            parser.error(f"{out} holds a {'--quick' if not args.quick else 'full'} benchmark's runs and demos; "
                         f"use another --out")
        atomic_write_text(marker, json.dumps({"quick": args.quick}))
    try:
        args.archive = benchmark_archive(args.archive, args.quick, committed)
    except ValueError as exc:
        parser.error(str(exc))
    args.report_dir = Path(args.report_dir) if args.report_dir else (out if args.quick else results)
    args.command = shlex.join(["python", f"benchmarks/{name}.py", *(argv if argv is not None else sys.argv[1:])])
    return out

"""A run archive: the small files of finished benchmark runs, kept where they outlive the machine.

A long benchmark spans several sessions or machines, while its run directories (checkpoints, TensorBoard
logs, wrapper states: hundreds of MB) stay on the machine that trained them. The archive keeps, per
finished run, only what a report reads (:data:`rlgen.agents.rundir.RECORD_PATTERNS`: ``config.yaml``,
``result.json``, ``eval.csv``, the Monitor files, a bonus's per-rollout log, ``bc.json``, ``demos.json``, a
benchmark's cached scores), a few kB to a few hundred kB, small enough to commit beside the report;
``with_model=True`` adds the final model and its VecNormalize statistics, and those of the run's best
evaluation (``best/``) where it kept one (an expert that later stages roll out).

``restore_run`` copies an archived run into an output folder where it is missing, so a suite skips it as
finished and its report covers it; ``archive`` copies each finished run in. Neither touches a run that is
being trained (run lock) or a local run that already has a result. Whether an archived run is the run a
suite asks for is :func:`rlgen.agents.rundir.same_settings`, and for a run that learns from demos, the
sha256 of its demo file (``demos.json``) too.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

from rlgen.agents import RunConfig
from rlgen.agents.rundir import RunDir, same_settings
from rlgen.atomic import LockedError, atomic_dir, file_sha256, run_lock
from rlgen.bench.records import DemoFile

logger = logging.getLogger(__name__)


def _timesteps(result: dict | None) -> int:
    return int(result.get("timesteps", 0)) if result is not None else 0


def _copy_tree(src: Path, files: Iterable[Path], dst: Path) -> None:
    """Copy ``files`` (relative to ``src``) into a fresh ``dst``, swapped in whole: a reader never sees half,
    and a failure leaves the old ``dst`` in place."""
    def fill(tmp: Path) -> None:
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, tmp / rel)

    atomic_dir(dst, fill)


def _config(run: RunDir) -> RunConfig | None:
    try:
        return run.read_config(validate=False)
    except Exception:  # a missing or unreadable config: nothing to compare
        return None


@functools.lru_cache(maxsize=16)
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    # keyed on size and mtime too: a demo file made again is hashed again; a suite asks once per run, and
    # Humanoid's demo file is ~100 MB
    return file_sha256(path)


def _demos_sha256(config: RunConfig) -> str | None:
    """The sha256 of the demos ``config`` learns from (None without demos, or before the file is made): that
    of the record beside the file where it has one (:class:`rlgen.bench.records.DemoFile`; demos made again on
    another machine and kept with ``--accept-new-demos`` stand for the recorded ones, on which the archived
    runs were trained), else the file's own."""
    if not config.demos:
        return None
    demo = DemoFile(Path(config.demos), "")
    try:
        stat = demo.path.stat()
    except OSError:
        return None
    try:
        recorded = demo.read_record().get("sha256")
    except (OSError, ValueError, TypeError):  # no record beside it (a demo file of `rlgen demos collect`)
        recorded = None
    return recorded or _file_sha256(demo.path, stat.st_size, stat.st_mtime_ns)


def _other_demos(a: str | None, b: str | None) -> bool:
    """Whether two demo hashes name other demos: only when both sides have one (a record from before
    demos.json matches)."""
    return a is not None and b is not None and a != b


def archive_run(run_dir: str | Path, archive_dir: str | Path, with_model: bool = False,
                min_timesteps: int = 0, config: RunConfig | None = None) -> bool:
    """Copy a finished run's record into ``archive_dir/<run name>``; returns whether it wrote.

    Nothing is written for a run without a result or trained for fewer than ``min_timesteps`` (its
    budget), nor, given the ``config`` a suite asks for, for a run of other settings or another budget
    under that name (:meth:`RunDir.mismatch`), nor over an archived record of the same run (settings and
    demos) that trained longer, nor when the archive already holds this very result."""
    run, kept = RunDir(run_dir), RunDir(Path(archive_dir) / Path(run_dir).name)
    result = run.read_result()
    if result is None or _timesteps(result) < min_timesteps:
        return False
    if config is not None and (other := run.mismatch(config)) is not None:
        logger.warning("archive: %s; not archived", other)
        return False
    files = run.record_files(with_model)
    archived = kept.read_result()
    if archived == result and all((kept.path / rel).is_file() and _same_bytes(run.path / rel, kept.path / rel)
                                  for rel in files):
        return False  # this very record (a cache written since, e.g. a report's scores, does count)
    if archived is not None and _timesteps(archived) > _timesteps(result):
        local, theirs = _config(run), _config(kept)
        other_demos = _other_demos(run.demos_record().get("sha256"), kept.demos_record().get("sha256"))
        if local is None or theirs is None or (same_settings(local, theirs) and not other_demos):
            return False
    _copy_tree(run.path, files, kept.path)
    return True


def _same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def archived_result(run_dir: str | Path, archive_dir: str | Path, min_timesteps: int = 0,
                    config: RunConfig | None = None) -> tuple[dict | None, str]:
    """The archive's result of ``run_dir``'s run if :func:`restore_run` would restore it (trained for at least
    ``min_timesteps``; given ``config``, its settings and demos), else None; and why an archived record that
    exists is not that run ('' otherwise). Reads only."""
    source = RunDir(Path(archive_dir) / Path(run_dir).name)
    archived = source.read_result()
    if archived is None or _timesteps(archived) < min_timesteps:
        return None, ""
    if config is not None:
        kept = _config(source)
        if kept is None or not same_settings(kept, config):
            return None, f"{source.name} was trained with other settings than the suite's"
        if kept.total_steps > config.total_steps:
            return None, (f"{source.name} was trained for a budget of {kept.total_steps:,} env steps, not the "
                          f"suite's {config.total_steps:,}")
        recorded, asked = source.demos_record().get("sha256"), _demos_sha256(config)
        if _other_demos(recorded, asked):
            return None, (f"{source.name} was trained on other demos (sha256 {recorded}) than the suite's "
                          f"{config.demos} ({asked})")
    return archived, ""


def restore_run(run_dir: str | Path, archive_dir: str | Path, min_timesteps: int = 0,
                config: RunConfig | None = None) -> bool:
    """Copy an archived run into ``run_dir`` if the archive has it, trained for at least ``min_timesteps``
    (and, given ``config``, the same run: its settings, and the sha256 of its demo file where both the
    archived run and ``config``'s demo file have one), and ``run_dir`` has no result of its own.

    A local run started since (a checkpoint, no result) is replaced: the archived run finished, the local
    one had not. A run another process is training is left alone."""
    run, source = RunDir(run_dir), RunDir(Path(archive_dir) / Path(run_dir).name)
    if run.read_result() is not None:
        return False
    archived, refusal = archived_result(run_dir, archive_dir, min_timesteps, config)
    if refusal:
        logger.warning("archive: %s; not restored", refusal)
    if archived is None:
        return False
    try:
        with run_lock(run.path):
            if run.read_result() is not None:
                return False
            _copy_tree(source.path, source.record_files(with_model=True), run.path)
    except LockedError:
        return False
    return True


def archive(run_dirs: Iterable[str | Path], archive_dir: str | Path, with_model: bool = False,
            min_timesteps: int = 0) -> int:
    """Archive every finished run of ``run_dirs``; returns how many records were written."""
    return sum(archive_run(d, archive_dir, with_model, min_timesteps) for d in run_dirs)

"""Reproducibility records: what a benchmark makes again rather than keeps, and how it checks the result.

A benchmark's demonstrations (Humanoid's 80 episodes are ~100 MB) are not archived: the archive keeps a
record beside where each demo file goes (``<demos>.json``: the expert and call that made it, the package
versions, the file's sha256), and a later session makes the file again from the archived expert with the
same call (or, for a mixed file, by the same seeded mix of its parts). A file made again that differs
from its record stops the benchmark with :class:`RecordMismatch` (the archived runs were trained on other
demos), unless asked to keep it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlgen.agents import ConfigError, collect_demos
from rlgen.atomic import atomic_write_text, file_sha256
from rlgen.bench.experts import has_policy
from rlgen.versions import VERSIONED_PACKAGES, package_versions  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

BUDGETS_FILE = "budgets.json"
"""In a benchmark's archive (and output folder): whether it holds ``--quick`` runs or full ones."""


class RecordMismatch(ValueError):
    """A file made again, or a local record, disagrees with the archive's record of it."""


def versions_change(recorded: dict[str, str] | None) -> str:
    """How this machine's :func:`package_versions` differ from a record's, in a few words."""
    if not recorded:
        return "its record names no package versions"
    now = package_versions()
    changed = [f"{name} {recorded.get(name, 'none')} -> {now.get(name, 'none')}"
               for name in sorted(set(recorded) | set(now)) if recorded.get(name) != now.get(name)]
    if not changed:
        return "the same package versions as its record"
    return "package versions changed: " + ", ".join(changed)


def save_checked(path: str | Path, save: Callable[[Path], object], expected: str | None = None,
                 accept: bool = False, recorded_versions: dict[str, str] | None = None) -> str:
    """``save(tmp)`` then move it to ``path``; returns the file's sha256. With ``expected``, a file of another
    hash is not kept and :class:`RecordMismatch` says both and how the package versions differ from
    ``recorded_versions`` (the record's :func:`package_versions`), unless ``accept``: then it is kept, with a
    warning (another machine's floating point, or another MuJoCo, can change a rollout by a bit)."""
    path = Path(path)
    new = path.with_name(f".{path.name}.new")
    save(new)
    digest = file_sha256(new)
    if expected is not None and digest != expected:
        mismatch = (f"{path.name} made again has sha256 {digest}, its record says {expected} "
                    f"({versions_change(recorded_versions)})")
        if not accept:
            new.unlink()
            raise RecordMismatch(mismatch)
        logger.warning("archive: %s; kept", mismatch)
    new.replace(path)
    return digest


def sha256_check(expected: str | None, digest: str) -> str:
    """How a file made again (:func:`save_checked`'s digest) compares with its record, for a message."""
    if expected is None:
        return "no sha256 recorded to check"
    return "the recorded sha256" if digest == expected else "not the recorded sha256: kept, as asked"


def benchmark_archive(given: str | None, quick: bool, committed: Path) -> Path | None:
    """A benchmark script's ``--archive``: ``given`` ('' for none), else ``committed`` for a full run and none
    for a ``--quick`` one. A quick run never writes into ``committed``, and an archive holds quick or full
    runs, never both (its ``budgets.json`` says which); a violation raises ValueError naming it."""
    if given is None:
        given = "" if quick else str(committed)
    if not given:
        return None
    path = Path(given)
    if quick and path.resolve() == committed.resolve():
        raise ValueError(f"a --quick run never writes into the committed archive {path}; use another --archive")
    marker = path / BUDGETS_FILE
    if marker.is_file() and json.loads(marker.read_text()).get("quick") != quick:
        raise ValueError(f"{path} holds a {'--quick' if not quick else 'full'} benchmark's runs; use another --archive")
    if not marker.is_file():
        atomic_write_text(marker, json.dumps({"quick": quick}))
    return path


def keep_record(local: str | Path, archived: str | Path) -> None:
    """Copy the JSON record ``local`` to ``archived``; an archived record that says otherwise raises
    :class:`RecordMismatch` (what was trained on the archive's file was trained on another one)."""
    local, archived = Path(local), Path(archived)
    record = json.loads(local.read_text())
    if not archived.is_file():
        atomic_write_text(archived, local.read_text())
        return
    theirs = json.loads(archived.read_text())
    if theirs != record:
        raise RecordMismatch(f"{local} and {archived} record different files (sha256 {record.get('sha256')} "
                             f"here, {theirs.get('sha256')} there)")


def merge_json(local: str | Path, archived: str | Path) -> None:
    """Make a JSON mapping and its copy in the archive the same: each gets the other's entries, the local
    ones winning."""
    copies = (Path(local), Path(archived))
    read = [json.loads(path.read_text()) if path.is_file() else {} for path in copies]
    merged = {**read[1], **read[0]}
    for path, data in zip(copies, read, strict=True):
        if merged and data != merged:
            atomic_write_text(path, json.dumps(merged, indent=2))


# -- demo files and their records ---------------------------------------------------------------------
@dataclass(frozen=True)
class DemoFile:
    """A benchmark's demo file (``path``, an .npz) and its record beside it (the same name, .json).

    A record names either the expert run that rolled the episodes out (``run_dir``, ``model``, ``episodes``,
    ``min_return``: the floor an episode's return had to reach) or, for a mix, the ``parts`` (files beside
    it, mixed by :func:`rlgen.imitation.mix_demos` with ``seed``)."""

    path: Path
    what: str
    """How messages name it: ``Hopper-v5``, ``Swimmer-v5 mixed``."""
    episodes: int | None = None
    """How many episodes to make again when its record does not say (records made before they said)."""

    @property
    def record_path(self) -> Path:
        return self.path.with_suffix(".json")

    def read_record(self) -> dict[str, Any]:
        return dict(json.loads(self.record_path.read_text()))


def restore_demo_records(demos: Iterable[DemoFile], archived: Path) -> int:
    """Copy the records the archive's demos folder ``archived`` holds to where ``demos`` lack both the file
    and its record (the files are then made again, :func:`regenerate_demos`); returns how many."""
    restored = 0
    for demo in demos:
        kept = archived / demo.record_path.name
        # demos made here without a record keep the existing error: never label them with the archive's
        if kept.is_file() and not demo.record_path.is_file() and not demo.path.is_file():
            atomic_write_text(demo.record_path, kept.read_text())
            restored += 1
    return restored


def keep_demos_record(demo: DemoFile, archived: Path) -> None:
    """Copy a demo file's record into the archive's demos folder ``archived``; one that names other demos
    there raises :class:`RecordMismatch` (the archive's runs were trained on those)."""
    if not demo.record_path.is_file():
        logger.info("demos: %s has no record (made before records were kept): not archived", demo.path)
        return
    record = demo.read_record()
    if "sha256" not in record and demo.path.is_file():  # recorded before demos were hashed
        record["sha256"] = file_sha256(demo.path)
        atomic_write_text(demo.record_path, json.dumps(record, indent=2))
    try:
        keep_record(demo.record_path, archived / demo.record_path.name)
    except RecordMismatch as exc:
        raise RecordMismatch(f"{exc}; delete {demo.record_path} and {demo.path} to use the archive's, or use "
                             "another --archive") from None


def save_demos_checked(demo: DemoFile, trajs: Any, expected: str | None = None, accept: bool = False,
                       recorded_versions: dict[str, str] | None = None) -> str:
    """Save demos to ``demo.path`` and return the file's sha256; with ``expected``, a file of another hash is
    not kept and raises :class:`RecordMismatch` in one line, unless ``accept`` (``--accept-new-demos``)."""
    from rlgen.imitation import save_demos

    try:
        return save_checked(demo.path, lambda tmp: save_demos(tmp, trajs), expected, accept,
                            recorded_versions)
    except RecordMismatch as exc:
        raise RecordMismatch(f"{demo.what}: {exc}; the archived runs were trained on other demos (rerun with "
                             "--accept-new-demos to keep these)") from None


def write_demos_record(demo: DemoFile, record: dict[str, Any], archived: Path | None) -> None:
    """Write the record of ``demo`` beside it and, with an archive (its demos folder ``archived``), keep it
    there (:func:`keep_demos_record`)."""
    atomic_write_text(demo.record_path, json.dumps(record, indent=2))
    if archived is not None:
        keep_demos_record(demo, archived)


def demo_floor(fraction: float | None, random: float, expert_mean: float) -> float | None:
    """The lowest return a demo episode may have: random + ``fraction`` (expert - random), with the expert's
    evaluation mean (a failed episode, such as a HalfCheetah expert flipped on its back, teaches failing);
    None: every episode."""
    return None if fraction is None else float(random + fraction * (expert_mean - random))


def make_expert_demos(demo: DemoFile, expert: dict[str, Any], episodes: int, floor: float | None,
                      archived: Path | None, progress_bar: bool = False) -> Any:
    """Roll ``expert`` (a record of :func:`rlgen.bench.experts.pick_experts`) out for ``episodes`` episodes
    whose return reaches ``floor``, save them to ``demo.path`` with their record (which expert made them,
    how, and the file's sha256: the archive keeps the record, not the file, which a later session makes
    again) and keep the record in the archive's demos folder ``archived``. Returns the demos, None (and a line
    says why) when too few episodes reach the floor."""
    try:
        trajs = collect_demos(expert["run_dir"], episodes, seed=0, progress_bar=progress_bar,
                              best=expert.get("model") == "best", min_return=floor)
    except ConfigError as exc:  # too few episodes reach the floor: a weak expert
        logger.warning("%s", f"demos: {demo.what}: {exc}".splitlines()[0])
        return None
    digest = save_demos_checked(demo, trajs)
    # which expert made them, beside them: the learners and the report follow it, even if a better expert
    # finishes later (experts.json then changes; these demos do not); with the floor they are made again with
    record = {**expert, "episodes": episodes, "sha256": digest, "versions": package_versions(),
              **({"min_return": floor} if floor is not None else {})}
    write_demos_record(demo, record, archived)
    return trajs


def mix_demo_parts(demo: DemoFile, parts: list[DemoFile], seed: int, archived: Path | None) -> Any:
    """Mix the demo files ``parts`` (:func:`rlgen.imitation.mix_demos` with ``seed``: nothing says whose
    each episode is) into ``demo.path`` with its record (the parts and the seed, with which it is made
    again), kept in the archive's demos folder ``archived``; returns the mix."""
    from rlgen.imitation import load_demos, mix_demos

    both = mix_demos(*(load_demos(part.path) for part in parts), seed=seed)
    digest = save_demos_checked(demo, both)
    record = {"parts": [part.path.name for part in parts], "seed": seed, "episodes": len(both), "sha256": digest,
              "versions": package_versions()}
    write_demos_record(demo, record, archived)
    return both


def regenerate_demos(demos: Iterable[DemoFile], experts_dir: Path, accept: bool = False,
                     progress_bar: bool = False) -> bool:
    """Make the demos again whose record came from an archive without the file: an expert's from the same
    run (restored under ``experts_dir`` with its model) with the same call, a mix by the same seeded mix of
    its parts (which must come before it in ``demos``); each checked against its record's sha256
    (:func:`save_demos_checked`; ``accept``: kept all the same). Returns False if one could not be made."""
    from rlgen.imitation import load_demos, mix_demos

    ok = True
    for demo in demos:
        if demo.path.is_file() or not demo.record_path.is_file():
            continue
        record = demo.read_record()
        if "parts" in record:
            sources = [demo.path.parent / name for name in record["parts"]]
            missing = [source for source in sources if not source.is_file()]
            if missing:
                logger.warning("demos: cannot make %s again: %s is missing", demo.path, missing[0])
                ok = False
                continue
            trajs = mix_demos(*(load_demos(source) for source in sources), seed=int(record["seed"]))
            made = f"mixed again (seed {record['seed']})"
        else:
            expert = experts_dir / Path(record["run_dir"]).name  # the same run, restored here
            model = record.get("model", "final")
            if not has_policy(expert, model):
                logger.warning("demos: cannot make %s again: its expert %s has no %s model in %s; "
                               "run --stage experts", demo.path, expert.name, model, expert.parent)
                ok = False
                continue
            try:
                episodes = int(record.get("episodes", demo.episodes))
                trajs = collect_demos(expert, episodes, seed=0, progress_bar=progress_bar, best=model == "best",
                                      min_return=record.get("min_return"))
            except ConfigError as exc:  # the recorded floor not reached again: another machine's rollouts
                logger.warning("%s", f"demos: cannot make {demo.path} again: {exc}".splitlines()[0])
                ok = False
                continue
            made = f"made again from {expert.name}"
        digest = save_demos_checked(demo, trajs, record.get("sha256"), accept, record.get("versions"))
        check = sha256_check(record.get("sha256"), digest)
        logger.info("demos: %s: %d episodes %s (%s) -> %s", demo.what, len(trajs), made, check, demo.path)
    return ok

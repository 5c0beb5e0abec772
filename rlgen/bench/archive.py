"""A run archive: the small files of finished benchmark runs, kept where they outlive the machine.

A long benchmark spans several sessions or machines, while its run directories (checkpoints, TensorBoard
logs, wrapper states: hundreds of MB) stay on the machine that trained them. The archive keeps, per
finished run, only what a report reads (``config.yaml``, ``result.json``, ``eval.csv``, the Monitor
files, a bonus's per-rollout log, ``bc.json``, a benchmark's cached scores), a few kB to a few hundred kB,
small enough to commit beside the report; ``with_model=True`` adds the final model and its VecNormalize
statistics, and those of the run's best evaluation (``best/``) where it kept one (an expert that later
stages roll out).

``restore`` copies archived runs into an output folder where they are missing, so a suite skips them as
finished and its report covers them; ``archive`` copies each finished run in. Neither touches a run that
is being trained (run lock) or a local run that already has a result.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from rlgen.agents import evaluate
from rlgen.agents.config import RunConfig
from rlgen.agents.rundir import (
    BEST_DIR,
    BEST_FILE,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    EVAL_FILE,
    MODEL_FILE,
    RESULT_FILE,
    VECNORM_FILE,
    RunDir,
)
from rlgen.atomic import LockedError, atomic_dir, atomic_write_text, file_sha256, run_lock


def has_best(run_dir: str | Path) -> bool:
    return RunDir(run_dir).has_best()


def read_best(run_dir: str | Path) -> dict:
    return RunDir(run_dir).read_best()


RECORD_PATTERNS = (CONFIG_FILE, RESULT_FILE, EVAL_FILE, "monitor/*.monitor.csv", "*_log.jsonl", "*.json",
                   f"{BEST_DIR}/{BEST_FILE}")
MODEL_PATTERNS = (MODEL_FILE, VECNORM_FILE, f"{BEST_DIR}/{MODEL_FILE}", f"{BEST_DIR}/{VECNORM_FILE}")


def _result(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None


def record_files(run_dir: Path, with_model: bool = False) -> list[Path]:
    """The files of ``run_dir`` an archive keeps, relative to it."""
    patterns = RECORD_PATTERNS + (MODEL_PATTERNS if with_model else ())
    found = {path.relative_to(run_dir) for pattern in patterns for path in run_dir.glob(pattern) if path.is_file()}
    return sorted(found)


def _copy_tree(src: Path, files: Iterable[Path], dst: Path) -> None:
    """Copy ``files`` (relative to ``src``) into a fresh ``dst``, swapped in whole: a reader never sees half,
    and a failure leaves the old ``dst`` in place."""
    def fill(tmp: Path) -> None:
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, tmp / rel)

    atomic_dir(dst, fill)


_NOT_IDENTITY = ("out_dir", "run_name", "total_steps", "progress_bar", "torch_threads", "demos")  # demos: a path


def same_settings(a: RunConfig, b: RunConfig) -> bool:
    """Whether two configs train the same run, whatever their folders, budgets and progress display."""
    def identity(config: RunConfig) -> dict:
        return {k: v for k, v in config.to_dict().items() if k not in _NOT_IDENTITY}

    return identity(a) == identity(b)


def archive_run(run_dir: str | Path, archive_dir: str | Path, with_model: bool = False,
                min_timesteps: int = 0) -> bool:
    """Copy a finished run's record into ``archive_dir/<run name>``; returns whether it wrote.

    Nothing is written for a run without a result or trained for fewer than ``min_timesteps`` (its
    budget), nor over an archived record of the same settings that trained longer, nor when the archive
    already holds this very result."""
    run_dir, archive_dir = Path(run_dir), Path(archive_dir)
    result = _result(run_dir)
    if result is None or int(result.get("timesteps", 0)) < min_timesteps:
        return False
    target = archive_dir / run_dir.name
    files = record_files(run_dir, with_model)
    archived = _result(target)
    if archived == result and all((target / rel).is_file() and _same_bytes(run_dir / rel, target / rel)
                                  for rel in files):
        return False  # this very record (a cache written since, e.g. a report's scores, does count)
    if archived is not None and int(archived.get("timesteps", 0)) > int(result.get("timesteps", 0)):
        local, kept = _config(run_dir), _config(target)
        if local is None or kept is None or same_settings(local, kept):
            return False
    _copy_tree(run_dir, files, target)
    return True


def _same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()


def _config(run_dir: Path) -> RunConfig | None:
    try:
        return RunConfig.load(run_dir / CONFIG_FILE, validate=False)
    except Exception:  # a missing or unreadable config: nothing to compare
        return None


def restore_run(run_dir: str | Path, archive_dir: str | Path, min_timesteps: int = 0,
                config: RunConfig | None = None) -> bool:
    """Copy an archived run into ``run_dir`` if the archive has it, trained for at least ``min_timesteps``
    (and, given ``config``, with the same settings), and ``run_dir`` has no result of its own.

    A local run started since (a checkpoint, no result) is replaced: the archived run finished, the local
    one had not. A run another process is training is left alone."""
    run_dir, archive_dir = Path(run_dir), Path(archive_dir)
    source = archive_dir / run_dir.name
    archived = _result(source)
    if archived is None or int(archived.get("timesteps", 0)) < min_timesteps or _result(run_dir) is not None:
        return False
    if config is not None:
        kept = _config(source)
        if kept is None or not same_settings(kept, config):
            print(f"archive: {source.name} was trained with other settings than the suite's; not restored",
                  flush=True)
            return False
    try:
        with run_lock(run_dir):
            if _result(run_dir) is not None:
                return False
            _copy_tree(source, record_files(source, with_model=True), run_dir)
    except LockedError:
        return False
    return True


def archive(run_dirs: Iterable[str | Path], archive_dir: str | Path, with_model: bool = False,
            min_timesteps: int = 0) -> int:
    """Archive every finished run of ``run_dirs``; returns how many records were written."""
    return sum(archive_run(d, archive_dir, with_model, min_timesteps) for d in run_dirs)


# -- records of files that are made again rather than kept (a benchmark's demonstrations) ---------------
class RecordMismatch(ValueError):
    """A file made again, or a local record, disagrees with the archive's record of it."""


SCORE_FILE = "benchmark_eval.json"
SCORE_FILES = {"final": SCORE_FILE, "best": "benchmark_eval_best.json"}


def cached_score(run_dir: str | Path, episodes: int, seed: int, model: str = "final") -> np.ndarray | None:
    """The returns a benchmark cached beside a run (``benchmark_eval.json``; ``benchmark_eval_best.json`` for
    the best) for ``episodes`` evaluation episodes from ``seed`` of its ``model`` ("final", or "best": its best
    periodic evaluation), None if none."""
    if model not in SCORE_FILES:
        raise ValueError(f"model must be 'final' or 'best', got {model!r}")
    try:
        data = json.loads((Path(run_dir) / SCORE_FILES[model]).read_text())
    except (OSError, ValueError):
        return None
    if data.get("episodes") == episodes and data.get("seed") == seed and data.get("model", "final") == model:
        return np.asarray(data["returns"], dtype=np.float64)
    return None


def run_score(run_dir: str | Path, episodes: int, seed: int, model: str = "final") -> np.ndarray:
    """Returns of ``episodes`` evaluation episodes of a finished run's ``model`` (deterministic policy, true
    env reward), computed once and cached beside the run (the archive keeps the cache, so a later report
    reads it without the model)."""
    cached = cached_score(run_dir, episodes, seed, model)
    if cached is not None:
        return cached
    returns = evaluate(run_dir, episodes=episodes, seed=seed, best=model == "best")
    record = {"episodes": episodes, "seed": seed, "model": model, "returns": returns.tolist()}
    atomic_write_text(Path(run_dir) / SCORE_FILES[model], json.dumps(record))
    return returns


def expert_policy(run_dir: str | Path, episodes: int, seed: int) -> tuple[str, int, np.ndarray]:
    """The better policy of a finished run to serve as an expert: ("final" or "best", the env steps it had
    trained for, its returns, cached like :func:`run_score`). The candidates are its final policy and, where
    it kept one, that of its best periodic evaluation (``best/``), each scored on ``episodes`` fresh episodes
    from ``seed``: the best evaluation was picked on a few episodes, so it may be luck, and the fresh episodes
    decide; a tie keeps the final policy."""
    final = run_score(run_dir, episodes, seed, "final")
    if has_best(run_dir):
        best = run_score(run_dir, episodes, seed, "best")
        if best.mean() > final.mean():
            return "best", int(read_best(Path(run_dir))["timesteps"]), best
    result = _result(Path(run_dir)) or {}
    return "final", int(result.get("timesteps", 0)), final


def has_policy(run_dir: str | Path, model: str = "final") -> bool:
    """Whether the run's ``model`` ("final", or "best": its best periodic evaluation) can be rolled out here."""
    return has_best(run_dir) if model == "best" else (Path(run_dir) / MODEL_FILE).is_file()


def has_model(run_dir: str | Path) -> bool:
    """Whether a run's policy can be rolled out here (a run restored from an archive may have none)."""
    run_dir = Path(run_dir)
    return (run_dir / MODEL_FILE).is_file() or (run_dir / CHECKPOINT_DIR / MODEL_FILE).is_file()


VERSIONED_PACKAGES = ("numpy", "torch", "mujoco", "gymnasium", "stable-baselines3", "sb3-contrib")


def package_versions() -> dict[str, str]:
    """The versions of Python and of the packages a rollout's numbers depend on, for a record."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


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
        print(f"archive: {mismatch}; kept", flush=True)
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
    marker = path / "budgets.json"
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

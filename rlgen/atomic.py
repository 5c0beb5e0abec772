"""Atomic file writes (a reader, or a crash, never sees a half-written file) and the run-directory lock."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, in hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _plain_mode(path: Path, default: int) -> int:
    """The mode a plain ``open``/``mkdir`` would leave: an existing file's own, else ``default`` less the umask
    (mkstemp and mkdtemp make 0600 and 0700, private whatever the user asked for)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return default & ~_umask()


def _make_folder(folder: Path) -> None:
    """``mkdir -p`` whose error names the file standing where a folder is needed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:  # a file on the way
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory (a folder is needed there)", str(blocker)) from exc


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``. The file gets the
    mode a plain write would give it (the umask's, or the replaced file's)."""
    path = Path(path)
    _make_folder(path.parent)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory (a file was to be written there)", str(path))
    mode = _plain_mode(path, 0o666)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write names no file: name the one being written (a full disk, say)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_dir(path: str | Path, fill: Callable[[Path], object]) -> None:
    """Call ``fill(folder)`` on a fresh temporary folder beside ``path``, then swap it in for ``path`` whole:
    a reader sees the old folder or the new one, never a mix, and a failure leaves the old one in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _plain_mode(path, 0o777)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = None
    try:
        tmp.chmod(mode)
        fill(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            old.rmdir()
            path.rename(old)
        tmp.rename(path)
    except BaseException:
        if old is not None and old.exists() and not path.exists():
            old.rename(path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class LockedError(RuntimeError):
    """Another process holds the lock."""


_held: dict[tuple[str, int], list] = {}  # (lock path, thread) -> [open file, depth]: a thread may re-enter its lock


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on a run directory for the block, so two processes never train into it at once.

    The lock is ``.<name>.lock`` beside the directory (the directory itself may be deleted and re-created under
    the lock) and records the holder's pid. Re-entrant within one thread; raises :class:`LockedError` naming
    the holder if another process, or another thread of this one, has it. Advisory (``flock``): it binds
    rlgen's own writers.
    """
    run_dir = Path(run_dir).resolve()
    path = run_dir.parent / f".{run_dir.name}.lock"
    key = (str(path), threading.get_ident())
    if key in _held:
        _held[key][1] += 1
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise LockedError(f"{run_dir} is in use by another process (pid {holder})"
                              if holder != str(os.getpid()) else f"{run_dir} is in use by another thread") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _held[key] = [handle, 1]
    try:
        yield
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            handle = _held.pop(key)[0]
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

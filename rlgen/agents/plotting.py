"""The learning-curve PNG of a run directory."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlgen.agents.rundir import EVAL_FILE, MONITOR_DIR, PLOT_FILE, read_eval_history, read_monitor_file
from rlgen.atomic import atomic_write_bytes
from rlgen.envs.coverage import NEW_CELLS


def _monitor_files(run_dir: Path) -> list[tuple[list[str], list[list[str]]]]:
    return [read_monitor_file(path) for path in sorted((run_dir / MONITOR_DIR).glob("*.monitor.csv"))]


def _episode_steps(rows: list[list[str]], n_files: int) -> np.ndarray:
    """The approximate global step at which each of one file's episodes ended (see :func:`training_episodes`)."""
    return np.cumsum([float(row[1]) for row in rows]) * n_files


def training_episodes(run_dir: Path, column: str | Sequence[str] | None = None) -> tuple[np.ndarray, ...]:
    """(approximate global step, return) of every training episode, from the Monitor files; with ``column``
    (an extra Monitor column such as ``max_progress``, or several names for it, the first a file has counting)
    also its values, NaN where a file lacks it.

    Envs step in lockstep, so an episode ending at step k of one env ends near global step
    k * n_envs. (Monitor's own clock restarts when a run resumes, so it cannot order episodes.)
    """
    names = (column,) if isinstance(column, str) else tuple(column or ())
    files = _monitor_files(run_dir)
    steps, returns, extra = [], [], []
    for header, rows in files:
        index = next((header.index(name) for name in names if name in header), None)
        if rows:
            steps.append(_episode_steps(rows, len(files)))
            returns.append(np.array([float(row[0]) for row in rows]))
            extra.append(np.array([float(row[index]) if index is not None and len(row) > index else np.nan
                                   for row in rows]))
    if not steps:
        return (np.zeros(0), np.zeros(0)) + ((np.zeros(0),) if column else ())
    x, y, z = np.concatenate(steps), np.concatenate(returns), np.concatenate(extra)
    order = np.argsort(x, kind="stable")
    return (x[order], y[order]) + ((z[order],) if column else ())


def coverage_over_steps(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(approximate global step, cells visited so far) at the end of every training episode: the size of the
    union of the ``new_cells`` (:mod:`rlgen.envs.coverage`) of every episode of every monitor file that ended by
    then, a cell two envs both found counting once. None if no file has the column (a task without a coverage
    measure, or a run trained before rlgen recorded it), or if its earlier episodes did not record it (``nan``:
    a run trained before and resumed after; its count would miss their cells)."""
    files = _monitor_files(run_dir)
    ended: list[tuple[float, str]] = []
    recorded = False
    for header, rows in files:
        if NEW_CELLS not in header:
            continue
        recorded, index = True, header.index(NEW_CELLS)
        ended += zip(_episode_steps(rows, len(files)).tolist(),
                     (row[index] if len(row) > index else "" for row in rows), strict=True)
    if not recorded or any(cells == "nan" for _, cells in ended):
        return None
    ended.sort(key=lambda episode: episode[0])
    union: set[str] = set()
    counts = []
    for _, cells in ended:
        union.update(token for token in cells.split(";") if token)
        counts.append(len(union))
    return np.array([step for step, _ in ended], dtype=np.float64), np.array(counts, dtype=np.int64)


def plot_learning_curve(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Evaluation and training returns against env steps, as ``learning_curve.png`` (or ``out``).

    Drawn on a bare Agg canvas: neither pyplot's global state nor the process's matplotlib backend is touched
    (a run checkpoints inside programs that may plot themselves)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / PLOT_FILE
    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps, returns = training_episodes(run_dir)
    if len(steps):
        ax.plot(steps, returns, ".", ms=2, alpha=0.3, color="tab:gray", label="training episodes")
        window = max(1, len(returns) // 20)
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color="tab:gray", lw=1)
    history = read_eval_history(run_dir / EVAL_FILE)
    if history:
        x = np.array([row["timesteps"] for row in history])
        mean = np.array([row["mean_return"] for row in history])
        std = np.array([row["std_return"] for row in history])
        ax.plot(x, mean, "-o", ms=3, color="tab:blue", label="evaluation (mean ± sd)")
        ax.fill_between(x, mean - std, mean + std, color="tab:blue", alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return (env reward)")
    ax.set_title(run_dir.name, fontsize=9)
    if len(steps) or history:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(out, buffer.getvalue())
    return out

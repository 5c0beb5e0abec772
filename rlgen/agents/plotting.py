"""The learning-curve PNG of a run directory."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from rlgen.agents.rundir import EVAL_FILE, MONITOR_DIR, PLOT_FILE, read_eval_history
from rlgen.atomic import atomic_write_bytes


def training_episodes(run_dir: Path, column: str | None = None) -> tuple[np.ndarray, ...]:
    """(approximate global step, return) of every training episode, from the Monitor files; with ``column``
    (an extra Monitor column such as ``max_goal_fraction``) also its values, NaN where a file lacks it.

    Envs step in lockstep, so an episode ending at step k of one env ends near global step
    k * n_envs. (Monitor's own clock restarts when a run resumes, so it cannot order episodes.)
    """
    files = sorted((run_dir / MONITOR_DIR).glob("*.monitor.csv"))
    steps, returns, extra = [], [], []
    for path in files:
        lines = path.read_text().splitlines()
        header = lines[1].split(",") if len(lines) > 1 else []  # lines[0] is Monitor's JSON line
        index = header.index(column) if column in header else None
        rows = [row.split(",") for row in lines[2:] if row]
        data = np.array([[float(v) for v in row[:3]] for row in rows], dtype=np.float64)
        if data.size:
            steps.append(np.cumsum(data[:, 1]) * len(files))
            returns.append(data[:, 0])
            extra.append(np.array([float(row[index]) if index is not None and len(row) > index else np.nan
                                   for row in rows]))
    if not steps:
        return (np.zeros(0), np.zeros(0)) + ((np.zeros(0),) if column else ())
    x, y, z = np.concatenate(steps), np.concatenate(returns), np.concatenate(extra)
    order = np.argsort(x, kind="stable")
    return (x[order], y[order]) + ((z[order],) if column else ())


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

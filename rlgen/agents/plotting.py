"""The learning-curve PNG of a run directory."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def training_episodes(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(approximate global step, return) of every training episode, from the Monitor files.

    Envs step in lockstep, so an episode ending at step k of one env ends near global step
    k * n_envs. (Monitor's own clock restarts when a run resumes, so it cannot order episodes.)
    """
    files = sorted((run_dir / "monitor").glob("*.monitor.csv"))
    steps, returns = [], []
    for path in files:
        rows = path.read_text().splitlines()[2:]  # skip Monitor's JSON line and CSV header
        data = np.array([[float(v) for v in row.split(",")[:3]] for row in rows if row], dtype=np.float64)
        if data.size:
            steps.append(np.cumsum(data[:, 1]) * len(files))
            returns.append(data[:, 0])
    if not steps:
        return np.zeros(0), np.zeros(0)
    x, y = np.concatenate(steps), np.concatenate(returns)
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def plot_learning_curve(run_dir: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlgen.agents.run import EVAL_FILE, PLOT_FILE, read_eval_history
    from rlgen.atomic import atomic_write_bytes

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / PLOT_FILE
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
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
    plt.close(fig)
    atomic_write_bytes(out, buffer.getvalue())
    return out

"""Saving a run's state: the model, an off-policy agent's replay buffer, checkpoints and the best policy."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from rlgen.agents.config import ConfigError
from rlgen.agents.normalization import save_vecnormalize_stats
from rlgen.agents.plotting import plot_learning_curve
from rlgen.agents.rundir import BEST_FILE, MODEL_FILE, PROGRESS_FILE, REPLAY_FILE, VECNORM_FILE, RunDir
from rlgen.atomic import atomic_dir, atomic_write, atomic_write_bytes, atomic_write_text
from rlgen.reward_wrapper import RewardWrapper

_REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def save_model(model: BaseAlgorithm, path: Path) -> None:
    buffer = io.BytesIO()
    model.save(buffer)
    atomic_write_bytes(path, buffer.getvalue())


def save_replay_buffer(model: BaseAlgorithm, path: Path) -> None:
    """An off-policy agent's replay buffer (its filled part) as .npz, so a resumed run keeps what it had
    collected (SB3's own ``save_replay_buffer`` pickles). On-policy agents have none: nothing is written."""
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        return
    size = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {name: getattr(buffer, name)[:size] for name in _REPLAY_ARRAYS
              if isinstance(getattr(buffer, name, None), np.ndarray)}
    atomic_write(path, lambda handle: np.savez(handle, pos=buffer.pos, full=buffer.full, **arrays))


def load_replay_buffer(model: BaseAlgorithm, path: Path) -> None:
    buffer = model.replay_buffer  # type: ignore[attr-defined]
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ConfigError(f"cannot load the replay buffer {path}: {exc}") from None
    for name in _REPLAY_ARRAYS:
        if name not in arrays:
            continue
        live = getattr(buffer, name)
        saved = arrays[name]
        if saved.shape[1:] != live.shape[1:] or len(saved) > len(live):
            raise ConfigError(f"the replay buffer in {path} holds {name} of shape {saved.shape}; this agent's buffer "
                              f"is {live.shape}")
        live[:len(saved)] = saved
    buffer.pos, buffer.full = int(arrays["pos"]), bool(arrays["full"])


def save_final(model: BaseAlgorithm, run_dir: RunDir, wrappers: list[RewardWrapper]) -> None:
    """The finished run's model, VecNormalize statistics and wrapper states, beside its config."""
    save_model(model, run_dir.model_file)
    env = model.get_vec_normalize_env()
    if env is not None:
        save_vecnormalize_stats(env, run_dir.vecnorm_file)
    for wrapper in wrappers:
        wrapper.save_state(run_dir.path)


def save_checkpoint(model: BaseAlgorithm, run_dir: RunDir, history: list[dict[str, float]],
                    wrappers: list[RewardWrapper], code: list[dict[str, Any]] | None = None) -> None:
    """Model, replay buffer, statistics and wrapper states into a folder of their own under checkpoint/, swapped
    in whole; then progress.json, which names that folder: a checkpoint counts once its progress file names
    it, and one cut short (a kill, a full disk) leaves the previous checkpoint whole and named. The folders
    of earlier checkpoints are removed after. ``code``: the code of each training session so far (the run's
    ``code_sessions``), kept in progress.json so that a resumed run's result names every session's."""
    ckpt = run_dir.checkpoint_dir
    ckpt.mkdir(parents=True, exist_ok=True)
    steps = int(model.num_timesteps)
    base = f"step_{steps:012d}"
    # a second checkpoint at the same step is never written over the folder progress.json names
    name = f"{base}_again" if run_dir.checkpoint_files.name == base else base
    env = model.get_vec_normalize_env()
    for wrapper in wrappers:
        wrapper.flush_log()  # a wrapper's log reaches the checkpoint's step

    def fill(folder: Path) -> None:
        save_model(model, folder / MODEL_FILE)
        save_replay_buffer(model, folder / REPLAY_FILE)
        if env is not None:
            save_vecnormalize_stats(env, folder / VECNORM_FILE)
        for wrapper in wrappers:
            wrapper.save_state(folder)

    atomic_dir(ckpt / name, fill)
    run_dir.write_eval_history(history)
    progress: dict[str, Any] = {"timesteps": steps, "files": name}
    if code is not None:
        progress["code"] = code
    atomic_write_text(run_dir.progress_file, json.dumps(progress))
    for entry in ckpt.iterdir():  # earlier checkpoints, an older run's files at the top, leftovers of a kill
        if entry.name not in (name, PROGRESS_FILE):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    plot_learning_curve(run_dir.path)


def save_best(model: BaseAlgorithm, run_dir: RunDir, row: dict[str, float]) -> None:
    """The policy of a new best evaluation, its VecNormalize statistics of that moment and best.json (its
    step count and return), swapped in for ``run_dir/best`` as one folder: never a mix of two bests."""
    env = model.get_vec_normalize_env()

    def fill(folder: Path) -> None:
        save_model(model, folder / MODEL_FILE)
        if env is not None:
            save_vecnormalize_stats(env, folder / VECNORM_FILE)
        atomic_write_text(folder / BEST_FILE, json.dumps({"timesteps": int(row["timesteps"]),
                                                          "mean_return": row["mean_return"],
                                                          "std_return": row["std_return"],
                                                          "episodes": int(row["episodes"])}, indent=2))

    atomic_dir(run_dir.best_dir, fill)

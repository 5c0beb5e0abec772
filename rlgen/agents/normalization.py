"""VecNormalize statistics saved as plain arrays (SB3's own ``VecNormalize.save`` pickles the wrapper)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from stable_baselines3.common.vec_env import VecNormalize

from rlgen.agents.config import ConfigError
from rlgen.atomic import atomic_write_bytes

_SCALARS = ("clip_obs", "clip_reward", "gamma", "epsilon")
_ARRAYS = ("obs_mean", "obs_var", "obs_count", "ret_mean", "ret_var", "ret_count", "norm_obs", "norm_reward")


def save_vecnormalize_stats(env: VecNormalize, path: str | Path) -> None:
    arrays = {
        "obs_mean": env.obs_rms.mean, "obs_var": env.obs_rms.var, "obs_count": np.asarray(env.obs_rms.count),
        "ret_mean": env.ret_rms.mean, "ret_var": env.ret_rms.var, "ret_count": np.asarray(env.ret_rms.count),
        "norm_obs": np.asarray(env.norm_obs), "norm_reward": np.asarray(env.norm_reward),
    }
    arrays.update({name: np.asarray(getattr(env, name)) for name in _SCALARS})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_vecnormalize_stats(env: VecNormalize, path: str | Path) -> None:
    """Load statistics into ``env`` (its training/norm_reward flags stay as the caller set them)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            stats = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read VecNormalize statistics {path} (truncated or foreign?): {message}") from None
    missing = [key for key in _ARRAYS + _SCALARS if key not in stats]
    if missing:
        raise ConfigError(f"VecNormalize statistics {path} lack {', '.join(missing)}: not a file rlgen wrote")
    broken = [key for key in _ARRAYS + _SCALARS
              if stats[key].dtype.kind in "fc" and not np.all(np.isfinite(stats[key]))]
    if broken:
        raise ConfigError(f"VecNormalize statistics {path} hold non-finite values ({', '.join(broken)}): "
                          f"normalising with them would make every observation NaN")
    if stats["obs_mean"].shape != env.obs_rms.mean.shape:
        raise ConfigError(
            f"VecNormalize statistics {path} are for observations of shape {stats['obs_mean'].shape}, "
            f"the env has {env.obs_rms.mean.shape}"
        )
    env.obs_rms.mean, env.obs_rms.var = stats["obs_mean"], stats["obs_var"]
    env.obs_rms.count = float(stats["obs_count"])
    env.ret_rms.mean, env.ret_rms.var = stats["ret_mean"], stats["ret_var"]
    env.ret_rms.count = float(stats["ret_count"])
    env.norm_obs = bool(stats["norm_obs"])
    for name in _SCALARS:
        setattr(env, name, float(stats[name]))

"""Loading an SB3 model archive (model.zip) without unpickling anything.

SB3's model.zip keeps some fields of its ``data`` JSON as cloudpickle (``":serialized:"``): the policy class, the
spaces, the schedules, buffer classes, the last observations. ``BaseAlgorithm.load`` unpickles them, so a
tampered file runs code before anything can be checked. :func:`load_model` never does: every serialized field
is rebuilt from the run's own config (a model of the same config is built, not trained, and its fields taken),
or dropped where it is the state of an interrupted rollout that a new ``learn`` makes again; the network
weights come from the archive's ``.pth`` files, which SB3 reads with ``torch.load(weights_only=True)``.

Before that, each serialized field is read, not run, with :mod:`pickletools`: a field whose pickle names a
function or class outside the libraries a model is made of (SB3, sb3-contrib, Gymnasium's spaces, NumPy, a few
of torch's modules, the standard containers) is a tampered file, and gets a one-line error naming the call.
"""

from __future__ import annotations

import base64
import binascii
import json
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from rlgen.agents.config import ConfigError, RunConfig, algo_class

RUNTIME_STATE = ("_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer", "ep_success_buffer")
"""Serialized fields that hold an interrupted rollout's state: a new ``learn`` makes them again."""

_SAFE_MODULES = ("stable_baselines3.", "sb3_contrib.", "gymnasium.spaces", "numpy", "torch._utils", "torch.storage",
                 "torch.nn.modules.", "torch.optim.", "collections", "copyreg", "enum", "_codecs")
_SAFE_TORCH = {"torch": {"float32", "float64", "int64", "int32", "uint8", "bool", "device", "Size", "dtype"}}
_SAFE_BUILTINS = {"list", "dict", "tuple", "set", "frozenset", "int", "float", "bool", "complex", "bytes",
                  "bytearray", "slice", "range", "object", "str", "NoneType"}


_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def pickled_globals(payload: bytes) -> list[str]:
    """The ``module.name`` of every global a pickle would look up, read with :mod:`pickletools` (nothing runs).

    Protocol 4's STACK_GLOBAL takes its module and name from the two values pushed last, which may come back
    from the memo: pushes and memo entries are followed far enough to name them ("?" where they are not
    strings, which no safe pickle does)."""
    names: list[str] = []
    pushed: list[str | None] = []
    memo: dict[int, str | None] = {}
    for opcode, arg, _ in pickletools.genops(payload):
        kind = opcode.name
        if kind in ("GLOBAL", "INST"):
            module, name = str(arg).split(" ", 1)
            names.append(f"{module}.{name}")
            pushed.append(None)
        elif kind == "STACK_GLOBAL":
            module, name = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
            names.append(f"{module or '?'}.{name or '?'}")
            pushed.append(None)
        elif kind in _STRINGS:
            pushed.append(str(arg))
        elif kind == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif kind in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = pushed[-1] if pushed else None
        elif kind in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(int(arg)))
        else:
            pushed.append(None)
    return names


def _safe(qualified: str) -> bool:
    module, _, name = qualified.rpartition(".")
    if module == "builtins":
        return name in _SAFE_BUILTINS
    if module in _SAFE_TORCH:
        return name in _SAFE_TORCH[module]
    return any(module == prefix.rstrip(".") or module.startswith(prefix) for prefix in _SAFE_MODULES)


def _read_data(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("data"))
    except FileNotFoundError:
        raise ConfigError(f"model file not found: {path}") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ConfigError(f"{path} is not a readable model archive (truncated or foreign?): "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def check_serialized_fields(path: Path, data: dict[str, Any]) -> list[str]:
    """The serialized fields of a model archive's ``data``; ConfigError if one of them would call anything outside
    the libraries a model is made of."""
    fields = []
    for key, value in data.items():
        if not (isinstance(value, dict) and ":serialized:" in value):
            continue
        try:
            payload = base64.b64decode(str(value[":serialized:"]).encode(), validate=True)
            names = pickled_globals(payload)
        except (binascii.Error, ValueError, EOFError) as exc:
            raise ConfigError(f"{path}: its field {key} is not a readable pickle ({exc}); refusing the file") from None
        unsafe = [name for name in names if not _safe(name)]
        if unsafe:
            raise ConfigError(f"{path}: its field {key} holds pickled code that would call {unsafe[0]}; rlgen does "
                              f"not run it (a tampered model file?)")
        fields.append(key)
    return fields


def _rebuilt_fields(config: RunConfig, venv: VecEnv, fields: list[str], path: Path) -> dict[str, Any]:
    """The serialized fields, as a model of ``config`` on ``venv`` has them; the caller's random streams are left
    as they were (building a policy draws from them)."""
    from rlgen.agents.envstack import check_action_space, resolve_hyperparams

    check_action_space(config, venv.action_space)
    unknown = [key for key in fields if key not in RUNTIME_STATE]
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            fresh = algo_class(config.algo)("MlpPolicy", venv, device="cpu", verbose=0,
                                            **resolve_hyperparams(config))
        except (TypeError, ValueError, AssertionError) as exc:
            raise ConfigError(f"{config.algo} rejected the hyperparameters: {exc}") from None
        finally:
            np.random.set_state(state)
    rebuilt: dict[str, Any] = dict.fromkeys(fields)  # runtime state: None, made again by the next learn()
    for key in unknown:
        if not hasattr(fresh, key):
            raise ConfigError(f"{path}: its field {key} is not one rlgen can rebuild from the run's config; "
                              f"refusing to unpickle it")
        rebuilt[key] = getattr(fresh, key)
    return rebuilt


def load_model(config: RunConfig, path: str | Path, env: VecEnv | None = None) -> BaseAlgorithm:
    """The model in ``path`` (saved by a run of ``config``) with nothing unpickled; ``env`` as for SB3's load.

    Without ``env`` the fields are rebuilt on the run's evaluation env stack (its spaces are the policy's).
    """
    from rlgen.agents.envstack import make_env_fn, policy_env

    path = Path(path)
    data = _read_data(path)
    fields = check_serialized_fields(path, data)
    spaces_env = env
    if spaces_env is None:
        spaces_env = policy_env(DummyVecEnv([make_env_fn(config.env_id, config.env_kwargs, None, False)]), config,
                                code=None if not _takes_code(config) else 0)
    try:
        custom = _rebuilt_fields(config, spaces_env, fields, path)
    finally:
        if env is None:
            spaces_env.close()
    _check_spaces(path, data, custom)
    try:
        return algo_class(config.algo).load(path, env=env, device="cpu", custom_objects=custom)
    except pickle.UnpicklingError:
        # torch.load(weights_only=True) refused something in the archive's weights: nothing of it ran
        raise ConfigError(f"cannot load model {path}: its weights hold objects other than tensors (damaged, or "
                          "not written by rlgen); nothing in it was run") from None
    except (zipfile.BadZipFile, RuntimeError, KeyError, ValueError, EOFError, OSError) as exc:
        raise ConfigError(f"cannot load model {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                          ) from None


def _takes_code(config: RunConfig) -> bool:
    from rlgen.agents.envstack import wrapper_specs

    return any(spec.cls.takes_code for spec in wrapper_specs(config))


def _check_spaces(path: Path, data: dict[str, Any], custom: dict[str, Any]) -> None:
    """The archive's plain description of its spaces (shape, dtype) must match the rebuilt ones: a model of
    another env (or another config) is refused rather than given spaces it was not trained on."""
    for key in ("observation_space", "action_space"):
        saved, rebuilt = data.get(key), custom.get(key)
        if not isinstance(saved, dict) or rebuilt is None or "_shape" not in saved:
            continue
        shape = tuple(saved["_shape"]) if isinstance(saved["_shape"], list) else saved["_shape"]
        if isinstance(shape, tuple) and shape != tuple(getattr(rebuilt, "shape", ()) or ()):
            raise ConfigError(f"{path} was trained with a {key.replace('_', ' ')} of shape {shape}; this run's "
                              f"config makes {tuple(rebuilt.shape)}")

"""The reward-wrapper contract: what every rlgen reward wrapper (VIME, DensityBonus, GAIL, InfoGAIL) shares.

A reward wrapper is an SB3 ``VecEnvWrapper`` between the raw VecEnv and VecNormalize. It sees raw observations
and the actions that reached the env, and

* records each step's transitions (s, a, s') with a :class:`TransitionRecorder`: the true s' at an episode's
  end is ``info["terminal_observation"]`` (the VecEnv has already reset that env), and a non-finite
  observation stops the run with a one-line error before any model trains on it;
* keeps the transitions its model learns from in one :class:`TransitionRing` (a ring buffer that saves and
  restores without pickle, across capacities);
* hands the agent an SB3 callback, :attr:`RewardWrapper.callback`. Where ``callback_required`` is true the
  reward depends on it (a rollout bonus is paid at the rollout's end by its callback): without it the wrapper
  fails with a one-line error naming the fix instead of recording for ever and paying nothing;
* saves its state (model, optimiser, buffers, statistics) as ``state_file`` with ``torch.save`` of plain
  tensors and values, loaded with ``weights_only=True``;
* may keep a per-rollout log beside the run (:meth:`RewardWrapper.start_log`, :meth:`RewardWrapper.flush_log`);
* says what its policy needs outside training (:meth:`RewardWrapper.policy_env`,
  :meth:`RewardWrapper.policy_observation`): nothing for most, InfoGAIL's latent code appended to the
  observation.

The run loop (``rlgen.agents``) uses only this interface: it never asks which wrapper it holds.
"""

from __future__ import annotations

import inspect
import io
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from rlgen.atomic import atomic_write_bytes

LOG_EVERY = 2048
"""Logs (SB3's lines, a bonus's rows) get a row about once per this many transitions, whatever the rollout size."""


class TransitionRecorder:
    """Turns a VecEnv's reset/step calls into transitions (s, a, s'), flattened per env, float32 observations.

    :param owner: the wrapper's name, for messages.
    :param action_shape: the shape of one env's action (default: flattened to one row).
    :param action_dtype: the dtype actions are kept in (float32; int64 for Discrete actions).
    :param per_transition: count steps in transitions (steps x envs) in messages instead of steps.
    """

    def __init__(self, num_envs: int, owner: str, action_shape: tuple[int, ...] | None = None,
                 action_dtype: np.dtype | type = np.float32, per_transition: bool = False):
        self.num_envs, self.owner = num_envs, owner
        self.action_shape = action_shape
        self.action_dtype = np.dtype(action_dtype)
        self.per_transition = per_transition
        self.steps = 0
        self.last_obs: np.ndarray | None = None
        self.actions: np.ndarray | None = None
        self._staged: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (obs, actions, dones) per staged step
        self._staged_ends: list[tuple[int, int, np.ndarray]] = []  # (staged step, env, terminal observation)
        self._staged_truncated: list[tuple[int, int]] = []  # (staged step, env) of episodes a time limit ended
        self._staged_from: np.ndarray | None = None  # s of the first staged step

    def where(self) -> str:
        """The step being checked: "step N" (counting it), or "transition N" (the transitions before it)."""
        if self.per_transition:
            return f"transition {max(self.steps - 1, 0) * self.num_envs}"
        return f"step {self.steps}"

    def check_finite(self, array: np.ndarray, what: str) -> None:
        if not np.isfinite(array).all():
            raise ValueError(f"{self.owner}: non-finite {what} at {self.where()}; refusing to train its model on it")

    def on_reset(self, obs: np.ndarray) -> None:
        self.check_finite(obs, "reset observation")
        self.last_obs = np.asarray(obs, dtype=np.float32).reshape(self.num_envs, -1)

    def on_actions(self, actions: np.ndarray) -> None:
        self.actions = actions  # as given: made rows by on_step, or copied whole by stage

    def _action_rows(self, actions: np.ndarray, n_rows: int) -> np.ndarray:
        shape = (-1,) if self.action_shape is None else self.action_shape
        return np.asarray(actions, dtype=self.action_dtype).reshape(n_rows, *shape)

    def on_step(self, obs: np.ndarray, dones: np.ndarray, infos: Sequence[dict[str, Any]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(s, a, s') of the step just taken, each with one row per env; the step's observation becomes s.

        Read the arrays, do not write them: without an episode end s' is the very array that the next step's s
        will be (one copy less at every env step)."""
        if self.last_obs is None or self.actions is None:
            raise RuntimeError(f"{self.owner}.step_wait called before reset/step_async")
        if self._staged:
            raise RuntimeError(f"{self.owner}: on_step with staged steps not taken yet (take_staged first)")
        self.steps += 1
        actions = self._action_rows(self.actions, self.num_envs)
        flat = np.asarray(obs, dtype=np.float32).reshape(self.num_envs, -1)
        self.check_finite(flat, "observation")
        ended = np.flatnonzero(dones)
        next_obs = flat
        if len(ended):  # the VecEnv has reset these envs: their transitions end in info["terminal_observation"]
            next_obs = flat.copy()
            for i in ended:
                terminal = infos[i].get("terminal_observation")
                if terminal is not None:
                    next_obs[i] = np.asarray(terminal, dtype=np.float32).reshape(-1)
            self.check_finite(next_obs[ended], "terminal observation")
        transition = (self.last_obs, actions, next_obs)
        self.last_obs = flat
        return transition

    def stage(self, obs: np.ndarray, dones: np.ndarray, infos: Sequence[dict[str, Any]]) -> None:
        """Keep a step for :meth:`take_staged`, which makes the rows of all steps kept in one batch: what
        :meth:`on_step` does per step costs far more right after an env step, with the caches cold, than in one
        pass over a rollout (benchmarks/results/throughput.md, GAIL's section). Per step only the observation
        (copied, as float32, and checked, so a non-finite one still stops the step it came in), a copy of the
        actions, the dones and the terminal observations of the envs that ended. :attr:`last_obs` and
        :attr:`steps` move on as with :meth:`on_step`."""
        if self.last_obs is None or self.actions is None:
            raise RuntimeError(f"{self.owner}.step_wait called before reset/step_async")
        self.steps += 1
        flat = np.array(obs, dtype=np.float32).reshape(self.num_envs, -1)  # a copy: the VecEnv may reuse its array
        self.check_finite(flat, "observation")
        dones = np.array(dones, dtype=bool)
        t = len(self._staged)
        ends: list[tuple[int, int, np.ndarray]] = []
        truncated: list[tuple[int, int]] = []
        if dones.any():
            for i in np.flatnonzero(dones):
                terminal = infos[i].get("terminal_observation")
                if terminal is not None:
                    terminal = np.array(terminal, dtype=np.float32).reshape(-1)  # a copy, as the observation
                    self.check_finite(terminal, "terminal observation")
                    ends.append((t, int(i), terminal))
                if infos[i].get("TimeLimit.truncated", False):
                    truncated.append((t, int(i)))
        # every check passed: only now is anything kept (a caller that catches an error keeps a consistent state)
        if not self._staged:
            self._staged_from = self.last_obs
        self._staged_ends += ends
        self._staged_truncated += truncated
        self._staged.append((flat, np.array(self.actions), dones))
        self.last_obs = flat

    def discard_staged(self) -> None:
        """Forget the steps kept by :meth:`stage` (a state loaded over them replaces what they would have added)."""
        self._staged, self._staged_ends, self._staged_truncated, self._staged_from = [], [], [], None

    @property
    def staged_steps(self) -> int:
        """Steps kept by :meth:`stage` and not taken yet."""
        return len(self._staged)

    def take_staged(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(s, a, s', dones, truncated) of the steps kept since the last call (at least one): rows step by step
        (steps x envs rows, as :meth:`on_step` would have given them one step at a time); dones and truncated
        (the episode ended by a time limit, ``info["TimeLimit.truncated"]``) shaped (steps, envs)."""
        steps = len(self._staged)
        if steps == 0:
            raise RuntimeError(f"{self.owner}: take_staged with no staged steps (see staged_steps)")
        obs = np.stack([step[0] for step in self._staged])  # (steps, envs, dim)
        actions = self._action_rows(np.stack([step[1] for step in self._staged]), steps * self.num_envs)
        dones = np.stack([step[2] for step in self._staged])
        first = self._staged_from
        next_obs = obs.copy() if self._staged_ends else obs
        for t, i, terminal in self._staged_ends:
            next_obs[t, i] = terminal
        truncated = np.zeros_like(dones)
        for t, i in self._staged_truncated:
            truncated[t, i] = True
        s = np.concatenate([first[None], obs[:-1]])
        self.discard_staged()
        n = steps * self.num_envs
        return s.reshape(n, -1), actions, next_obs.reshape(n, -1), dones, truncated


class ActionEncoding:
    """Actions as the float rows a model reads: a Box's values flattened; a Discrete action as a one-hot row;
    MultiDiscrete as one one-hot block per sub-action; MultiBinary as its 0/1 values.

    :param space: the env's action space (anything else is a TypeError naming the space).
    :param owner: the wrapper's name, for messages.
    """

    def __init__(self, space: spaces.Space, owner: str):
        self.space = space
        if isinstance(space, spaces.Box):
            self.dim = int(np.prod(space.shape))
        elif isinstance(space, spaces.Discrete):
            self.dim = int(space.n)
        elif isinstance(space, spaces.MultiDiscrete):
            self.nvec = np.asarray(space.nvec, dtype=np.int64).ravel()
            self.offsets = np.concatenate([[0], np.cumsum(self.nvec)[:-1]])
            self.dim = int(self.nvec.sum())
        elif isinstance(space, spaces.MultiBinary):
            self.dim = int(np.prod(space.shape))
        else:
            raise TypeError(f"{owner} needs Box, Discrete, MultiDiscrete or MultiBinary actions, got "
                            f"{type(space).__name__} actions")

    def __call__(self, actions: np.ndarray, num_envs: int) -> np.ndarray:
        """One float32 row of width :attr:`dim` per env."""
        space = self.space
        if isinstance(space, spaces.Box):
            return np.asarray(actions, dtype=np.float32).reshape(num_envs, -1)
        if isinstance(space, spaces.Discrete):
            index = np.asarray(actions, dtype=np.int64).reshape(num_envs) - int(space.start)
            rows = np.zeros((num_envs, self.dim), dtype=np.float32)
            rows[np.arange(num_envs), index] = 1.0
            return rows
        if isinstance(space, spaces.MultiDiscrete):
            index = np.asarray(actions, dtype=np.int64).reshape(num_envs, -1) - np.asarray(space.start).ravel()
            rows = np.zeros((num_envs, self.dim), dtype=np.float32)
            rows[np.arange(num_envs)[:, None], self.offsets + index] = 1.0
            return rows
        return np.asarray(actions, dtype=np.float32).reshape(num_envs, -1)  # MultiBinary


def standardise(values: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float | None) -> np.ndarray:
    """``(values - mean) / std`` as float32, clipped to [-clip, clip] unless ``clip`` is None.

    The clip is VecNormalize's answer to a column that has been (almost) constant so far: its tiny std turns
    the first real change into values of 1e6 and more, which a model then treats as the most novel input ever.
    """
    scaled = (values - mean) / std
    if clip is not None:
        scaled = np.clip(scaled, -clip, clip)
    return scaled.astype(np.float32, copy=False)


class TransitionRing:
    """A ring buffer of the latest ``capacity`` transitions (s, a, s'), flattened observations.

    Observations are kept in the observation space's own dtype when that is a small integer one (uint8 frames
    take a quarter of float32's memory, in memory and in the saved state), float32 otherwise; actions in
    ``act_dtype`` (float32, or int64 for Discrete actions). Rows come out as float32 where they are read as
    model inputs (:meth:`rows`).
    """

    def __init__(self, capacity: int, obs_dim: int, act_shape: tuple[int, ...] | int, owner: str = "the wrapper",
                 obs_dtype: np.dtype | type = np.float32, act_dtype: np.dtype | type = np.float32):
        obs_dtype = np.dtype(obs_dtype)
        # small integer types only: int32/int64 observations would save nothing over float32
        small_int = np.issubdtype(obs_dtype, np.integer) and obs_dtype.itemsize <= 2
        self.obs_dtype = obs_dtype if small_int else np.dtype(np.float32)
        act_shape = (act_shape,) if isinstance(act_shape, int) else tuple(act_shape)
        self.obs = np.zeros((capacity, obs_dim), dtype=self.obs_dtype)
        self.actions = np.zeros((capacity, *act_shape), dtype=np.dtype(act_dtype))
        self.next_obs = np.zeros((capacity, obs_dim), dtype=self.obs_dtype)
        self.capacity, self.size, self.cursor = capacity, 0, 0
        self.owner = owner

    def add(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> None:
        """Add rows (the oldest make way once the ring is full)."""
        if self.obs_dtype.kind in "iu":
            self._check_representable(obs, "observations")
            self._check_representable(next_obs, "next observations")
        for start in range(0, len(obs), self.capacity):
            chunk = slice(start, start + self.capacity)
            n, first = len(obs[chunk]), self.cursor
            if first + n <= self.capacity:  # the usual case (a step or a rollout): slices, not an index array
                rows: slice | np.ndarray = slice(first, first + n)
            else:
                rows = (first + np.arange(n)) % self.capacity
            self.obs[rows], self.actions[rows], self.next_obs[rows] = obs[chunk], actions[chunk], next_obs[chunk]
            self.cursor = (first + n) % self.capacity
            self.size = min(self.capacity, self.size + n)

    def add_inputs(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        """Add rows given as a dynamics model reads them: ``inputs`` = [s, a], ``targets`` = s'."""
        obs_dim = self.obs.shape[1]
        self.add(inputs[:, :obs_dim], inputs[:, obs_dim:], targets)

    def _check_representable(self, values: np.ndarray, what: str) -> None:
        info = np.iinfo(self.obs_dtype)
        if values.size and (values.min() < info.min or values.max() > info.max or np.any(values != np.round(values))):
            raise ValueError(f"{self.owner}: {what} are not {self.obs_dtype} values (range {values.min():g} to "
                             f"{values.max():g}) though the observation space is {self.obs_dtype}; wrap the bonus "
                             f"around the env's raw observations, not normalised ones")

    def order(self) -> np.ndarray:
        """The indices of the rows held, oldest first (a wrapped ring's oldest row sits at its cursor)."""
        if self.size < self.capacity:  # not wrapped yet: rows 0 .. size - 1, the cursor just past them
            return np.arange(self.size)
        return np.roll(np.arange(self.capacity), -self.cursor)

    def grow(self, capacity: int) -> np.ndarray:
        """Make room for ``capacity`` rows, keeping every row held, now oldest first from row 0. Returns the
        old index of each row held (rows 0 .. size - 1), for arrays a wrapper keeps beside the ring."""
        order = self.order()
        if capacity <= self.capacity:
            return order
        for name in ("obs", "actions", "next_obs"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[:self.size] = old[order]
            setattr(self, name, new)
        self.capacity, self.cursor = capacity, self.size
        return order

    def contents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(s, a, s') of every row held, as stored (views, not copies)."""
        return self.obs[:self.size], self.actions[:self.size], self.next_obs[:self.size]

    def rows(self, idx: np.ndarray | slice | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(inputs [s, a], targets s') as float32, of the rows ``idx`` (default: every row held)."""
        idx = slice(0, self.size) if idx is None else idx
        actions = self.actions[idx].reshape(len(self.obs[idx]), -1).astype(np.float32, copy=False)
        inputs = np.concatenate([self.obs[idx].astype(np.float32), actions], axis=-1)
        return inputs, self.next_obs[idx].astype(np.float32)

    def statistics(self, block: int = 8192) -> dict[str, np.ndarray]:
        """Column means and standard deviations (plus 1e-6) of inputs [s, a] and targets s' of every row held,
        computed ``block`` rows at a time (no float copy of the whole ring: per-block means and squared
        deviations merged as in Chan et al.'s parallel variance)."""
        count, moments = 0, None
        for start in range(0, self.size, block):
            columns = self.rows(slice(start, min(start + block, self.size)))
            n = len(columns[0])
            block_moments = [(c.mean(0, dtype=np.float64), ((c - c.mean(0, dtype=np.float64)) ** 2).sum(0))
                             for c in columns]
            if moments is None:
                moments = block_moments
            else:
                merged = []
                for (mean_a, m2_a), (mean_b, m2_b) in zip(moments, block_moments, strict=True):
                    delta = mean_b - mean_a
                    merged.append((mean_a + delta * n / (count + n), m2_a + m2_b + delta**2 * count * n / (count + n)))
                moments = merged
            count += n
        if moments is None:
            raise ValueError(f"{self.owner}: statistics of an empty replay pool")
        (in_mean, in_m2), (out_mean, out_m2) = moments
        return {"in_mean": in_mean.astype(np.float32), "in_std": (np.sqrt(in_m2 / count) + 1e-6).astype(np.float32),
                "out_mean": out_mean.astype(np.float32), "out_std": (np.sqrt(out_m2 / count) + 1e-6).astype(np.float32)}

    def state(self, actions_key: str = "actions") -> dict[str, Any]:
        """The rows held and the cursor, as tensors (``actions_key``: the name an older format used)."""
        return {"obs": torch.from_numpy(self.obs[:self.size].copy()),
                actions_key: torch.from_numpy(self.actions[:self.size].copy()),
                "next_obs": torch.from_numpy(self.next_obs[:self.size].copy()),
                "cursor": self.cursor}

    def load(self, state: dict[str, Any]) -> np.ndarray:
        """Restore :meth:`state`'s output (or the older layout of float32 ``inputs`` and ``targets`` rows) into
        this ring, whatever capacity it was saved with: a ring of another capacity takes the newest rows
        that fit, oldest first. Returns the saved index of each row now held (rows 0 .. size - 1), for
        arrays a wrapper saved beside the ring."""
        obs_dim, act_shape = self.obs.shape[1], self.actions.shape[1:]
        if "inputs" in state:
            inputs, targets = state["inputs"].numpy(), state["targets"].numpy()
            obs, actions = inputs[:, :obs_dim], inputs[:, obs_dim:]
        else:
            actions = (state["actions"] if "actions" in state else state["acts"]).numpy()
            obs, targets = state["obs"].numpy(), state["next_obs"].numpy()
        if obs.shape[1:] != (obs_dim,) or targets.shape[1:] != (obs_dim,) or actions.shape[1:] != act_shape:
            raise ValueError(f"{self.owner} state holds transitions of observation width {obs.shape[1:]} and "
                             f"action shape {actions.shape[1:]}; this env needs ({obs_dim},) and {act_shape}")
        n, cursor = len(obs), int(state["cursor"])
        if n == self.capacity:  # the same capacity, full: the rows go back where they were
            self.obs[:], self.actions[:], self.next_obs[:] = obs, actions, targets
            self.size, self.cursor = n, cursor % n
            return np.arange(n)
        # another capacity: the rows in the order they came (a wrapped ring's oldest sits at its cursor), the
        # newest that fit, written from the start
        order = np.roll(np.arange(n), -cursor) if cursor != n and n else np.arange(n)
        keep = order[-self.capacity:]
        self.size = len(keep)
        self.obs[:self.size], self.actions[:self.size] = obs[keep], actions[keep]
        self.next_obs[:self.size] = targets[keep]
        self.cursor = self.size % self.capacity
        return keep


def add_bonus_to_rollout(buffer: RolloutBuffer, bonus: np.ndarray, last_dones: np.ndarray) -> None:
    """Add ``bonus`` (steps, n_envs) to a filled rollout buffer's rewards, and its share to the advantages and
    returns SB3 computed from them before ``on_rollout_end``.

    GAE is linear in the rewards, so the advantages grow by the bonus's own GAE with every value 0 (the same
    ``gamma``, ``gae_lambda`` and episode boundaries; ``last_dones``: the dones of the rollout's last step), and
    the returns stay advantages + values. Nothing of the agent's final value estimate is needed, which agents that
    do not hand their callbacks the final ``values`` (sb3-contrib's RecurrentPPO, MaskablePPO) would get wrong.
    """
    bonus = np.asarray(bonus, dtype=buffer.rewards.dtype)
    buffer.rewards += bonus
    added = np.zeros_like(bonus)
    running = np.zeros(bonus.shape[1], dtype=bonus.dtype)
    decay = np.float32(buffer.gamma * buffer.gae_lambda)
    ends = np.asarray(last_dones, dtype=bool)  # those of the step after each one: an episode start
    for step in reversed(range(len(bonus))):
        running = bonus[step] + decay * np.where(ends, 0.0, running).astype(bonus.dtype)
        added[step] = running
        ends = buffer.episode_starts[step].astype(bool)
    buffer.advantages += added
    buffer.returns = buffer.advantages + buffer.values


class WrapperCallback(BaseCallback):
    """The base of every reward wrapper's callback: knows whether an agent has attached it."""

    def __init__(self, wrapper: RewardWrapper):
        super().__init__()
        self.wrapper = wrapper
        self.attached = False

    def _init_callback(self) -> None:
        self.attached = True

    def _on_step(self) -> bool:
        return True


def keyword_settings(cls: type) -> tuple[set[str], bool]:
    """The arguments of ``cls``'s constructor a caller may set by name (keyword-only ones, and those with a
    default), and whether it takes a ``**kwargs``."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # not self
    names = {p.name for p in params if p.kind is p.KEYWORD_ONLY
             or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def keyword_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """``cls``'s constructor arguments a caller may pass by name (keyword-only or positional), by name."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # not self
    return {p.name: p for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _annotation_kinds(annotation: Any) -> set[str]:
    """The plain kinds an annotation names (``float | None`` -> {"float", "None"}); empty when it names
    anything else (a class, a container, none at all), which checks nothing."""
    if annotation is inspect.Parameter.empty:
        return set()
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
    text = text.replace("Optional[", "None | ").rstrip("]") if text.startswith("Optional[") else text
    parts = {part.strip() for part in text.split("|")}
    return parts if parts <= {"int", "float", "bool", "str", "None"} else set()


def setting_type_error(name: str, value: Any, param: inspect.Parameter | None, owner: str = "") -> str | None:
    """Why ``value`` cannot stand for setting ``name`` of ``owner`` (``param``: its constructor argument), or None:
    a number for a number, true/false for a flag, text for text, null only where the annotation admits None.
    The kind comes from the annotation where it names plain kinds, else from the default; a setting of any other
    kind (a tuple, a module) is left to the constructor."""
    if param is None:
        return None

    def is_number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    kinds = _annotation_kinds(param.annotation)
    default = param.default
    if not kinds - {"None"}:  # the annotation names no plain kind: the default's kind
        kinds = kinds | ({"bool"} if isinstance(default, bool) else {"float"} if is_number(default)
                         else {"str"} if isinstance(default, str) else set())
    plain = kinds - {"None"}
    if not plain:
        return None
    if value is None:
        fits = "None" in kinds
    elif "bool" in plain and isinstance(value, bool):
        fits = True
    elif plain & {"int", "float"} and is_number(value):
        fits = True
    else:
        fits = "str" in plain and isinstance(value, str)
    if fits:
        return None
    words = {"bool": "true or false", "int": "a number", "float": "a number", "str": "text"}
    kind = " or ".join(dict.fromkeys(words[k] for k in sorted(plain))) + (" or null" if "None" in kinds else "")
    if default is inspect.Parameter.empty:
        return f"{name} must be {kind}, got {value!r}"
    shown = "null" if default is None else str(default).lower() if isinstance(default, bool) else repr(default)
    whose = f"{owner}'s default" if owner else "default"
    return f"{name} must be {kind} ({whose} {shown}), got {value!r}"


def _user_stacklevel() -> int:
    """The ``stacklevel`` of a warning raised here that points at the first caller outside rlgen (the line that
    built the wrapper, however many constructors deep)."""
    package = str(Path(__file__).resolve().parent)
    level, frame = 2, sys._getframe(2)  # 1: this function's caller (the warning's own line); 2: its caller
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        level, frame = level + 1, frame.f_back
    return level


def normalises_observations(venv: VecEnv) -> bool:
    """Whether ``venv`` is or wraps a VecNormalize that normalises observations (a reward wrapper's model would
    learn from observations whose normalisation drifts, GAIL's discriminator compare them with raw demos)."""
    from stable_baselines3.common.vec_env import VecNormalize

    while isinstance(venv, VecEnvWrapper):
        if isinstance(venv, VecNormalize) and venv.norm_obs:
            return True
        venv = venv.venv
    return False


class RewardWrapper(VecEnvWrapper):
    """Base of rlgen's reward wrappers (see the module docstring for the contract).

    A subclass sets ``state_name`` (used in messages), ``state_file`` (its saved state's file name) and
    ``log_prefix`` (its TensorBoard prefix), builds its :attr:`callback` (a :class:`WrapperCallback`), and
    implements ``state_dict``/``load_state_dict``.
    """

    state_name: ClassVar[str] = "the wrapper"
    state_file: ClassVar[str] = "wrapper.pt"
    log_prefix: ClassVar[str] = "wrapper"
    callback_required: ClassVar[bool] = False
    """Whether the reward depends on :attr:`callback` (a rollout bonus is paid by it)."""
    unattached_limit: ClassVar[int] = 10_000
    """With ``callback_required``: transitions (env steps of all its envs) a wrapper records without an agent
    having attached its callback before it stops with an error (a hand-built loop that calls the wrapper's methods
    itself stays below it)."""

    callback: WrapperCallback

    def __init__(self, venv: VecEnv, *args: Any, **kwargs: Any):
        if normalises_observations(venv):
            warnings.warn(f"{self.state_name} wraps a VecNormalize that normalises observations: its model would "
                          f"learn from observations whose normalisation drifts as training goes; put VecNormalize "
                          f"on top of {self.state_name} (as rlgen.agents does; norm_obs=False beneath is fine)",
                          stacklevel=_user_stacklevel())
        super().__init__(venv, *args, **kwargs)

    @property
    def changes_step_rewards(self) -> bool:
        """Whether the rewards this wrapper's ``step_wait`` returns differ from those it was handed (False for a
        bonus paid at the rollout's end): a wrapper whose reward is filled in at the rollout's end needs those
        between it and the agent to pass rewards through unchanged (or to be a VecNormalize it can replay)."""
        return True

    settings_go_to: ClassVar[tuple[type, ...]] = ()
    """Classes whose keyword arguments the constructor's ``**kwargs`` passes on (GAIL's go to its Discriminator);
    not set on the class itself: a ``**kwargs`` goes to the parent class's constructor."""

    # -- settings --------------------------------------------------------------------------------
    @classmethod
    def _settings_targets(cls) -> tuple[type, ...]:
        """The classes a constructor's ``**kwargs`` passes settings on to: :attr:`settings_go_to`, else the
        parent wrapper (a subclass's ``**kwargs`` goes to its parent), else none."""
        return cls.__dict__.get("settings_go_to") or tuple(
            base for base in cls.__mro__[1:2] if issubclass(base, RewardWrapper) and base is not RewardWrapper)

    @classmethod
    def setting_names(cls) -> set[str] | None:
        """The settings a config may give this wrapper: its constructor's keyword arguments (not the env nor the
        other arguments without a default, which the run loop passes), and, through a ``**kwargs``, those of
        :attr:`settings_go_to` or else of the parent wrapper's constructor. None when that cannot be told (a
        ``**kwargs`` that reaches no wrapper's constructor): every setting is then left to the constructor."""
        names, forwards = keyword_settings(cls)
        if not forwards:
            return names
        targets = cls._settings_targets()
        if not targets:
            return None
        for target in targets:
            more = target.setting_names() if issubclass(target, RewardWrapper) else keyword_settings(target)[0]
            if more is None:
                return None
            names |= more
        return names

    @classmethod
    def setting_parameters(cls) -> dict[str, inspect.Parameter]:
        """The constructor arguments behind :meth:`setting_names`, by name (the wrapper's own over those its
        ``**kwargs`` reaches), for checking a config's values before the wrapper is built."""
        params: dict[str, inspect.Parameter] = {}
        _, forwards = keyword_settings(cls)
        if forwards:
            for target in reversed(cls._settings_targets()):
                params.update(target.setting_parameters() if issubclass(target, RewardWrapper)
                              else keyword_parameters(target))
        params.update(keyword_parameters(cls))
        return params

    # -- the callback ----------------------------------------------------------------------------
    def check_attached(self, steps: int) -> None:
        """Raise the one-line error of a forgotten callback once ``steps`` transitions pass :attr:`unattached_limit`."""
        if self.callback_required and steps > self.unattached_limit and not self.callback.attached:
            name = self.log_prefix
            raise RuntimeError(f"{self.state_name} has recorded {steps} transitions but its callback was never attached, so "
                               f"no bonus is paid: call model.learn(..., callback={name}.callback) (rlgen.agents "
                               f"attaches it itself)")

    # -- saving ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save_state(self, directory: str | Path) -> None:
        """Write :meth:`state_dict` to ``directory/state_file`` atomically (``torch.save`` of tensors and values)."""
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        atomic_write_bytes(Path(directory) / self.state_file, buffer.getvalue())

    def load_state(self, directory: str | Path) -> None:
        """Restore ``directory/state_file`` (``weights_only=True``: no code runs); ValueError naming the file."""
        path = Path(directory) / self.state_file
        try:
            state = torch.load(path, weights_only=True)
        except Exception as exc:  # a missing, truncated or foreign file
            raise ValueError(f"cannot load {self.state_name} state {path}: {exc}".splitlines()[0]) from None
        self.load_state_dict(state)

    # -- the run's logs --------------------------------------------------------------------------
    def start_log(self, directory: str | Path, keep_until: int | None = None) -> None:
        """Keep a per-rollout log in ``directory`` (``keep_until``: a resumed run's checkpoint step, after which
        rows written before are dropped). The default keeps none."""

    def flush_log(self) -> None:
        """Write what the log holds so far (before a checkpoint). The default keeps none."""

    # -- the policy outside training -------------------------------------------------------------
    takes_code: ClassVar[bool] = False
    """Whether the policy acts under a latent code that :meth:`policy_env` can hold fixed (InfoGAIL)."""

    @classmethod
    def policy_env(cls, venv: VecEnv, settings: dict[str, Any], *, seed: int = 0, code: int | None = None) -> VecEnv:
        """The env a policy trained under this wrapper (built with ``settings``) acts in outside training, e.g.
        for evaluation: ``venv`` itself unless the policy reads more than the env's observation. ``code``
        (with ``takes_code``) holds the policy's latent code."""
        return venv

    @classmethod
    def policy_observation(cls, settings: dict[str, Any], code: int | None = None
                           ) -> Callable[[np.ndarray], np.ndarray] | None:
        """What turns one env observation into the policy's input when the policy is rolled out by hand (None:
        the observation itself)."""
        return None

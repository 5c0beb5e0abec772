"""Expert demonstrations: records, the ``.npz`` file format, Minari-style converters and collection.

A demonstration is a list of episodes. Each episode is a :class:`Trajectory` with the field names and
the T + 1 observation convention of the HumanCompatibleAI ``imitation`` library (Minari uses the same
convention), so demos convert both ways without losing the final observation.

File format (``.npz``, read with ``np.load(allow_pickle=False)``)::

    format            "rlgen-demos"
    schema_version    1
    env_id            the Gymnasium id the demos were recorded on
    obs_shape, act_shape, obs_dtype, act_dtype      the spaces' shapes and dtypes
    obs               (sum_i (T_i + 1), *obs_shape)  every episode's observations, one after another
    acts              (sum_i T_i, *act_shape)
    rewards           (sum_i T_i,)
    terminated        (n_episodes,)                 True: the episode ended in a terminal state
    episode_starts    (n_episodes + 1,)             offsets into acts/rewards; episode i's obs start
                                                    at episode_starts[i] + i

Observations are stored raw (never normalised), so demos outlive any agent's normalisation statistics.

>>> trajs = load_demos("demos.npz", subsample=20)   # doctest: +SKIP
>>> obs, acts, next_obs, dones = trajs.transitions()   # every 20th (s, a) pair, as in the GAIL paper
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlgen.atomic import atomic_write_bytes, file_sha256

SCHEMA_VERSION = 1
FORMAT_NAME = "rlgen-demos"
_REQUIRED_KEYS = ("format", "schema_version", "env_id", "obs_shape", "act_shape", "obs_dtype", "act_dtype",
                  "obs", "acts", "rewards", "terminated", "episode_starts")

PolicyFn = Callable[[np.ndarray], Any]


class DemoError(ValueError):
    """A demonstration problem a user can fix (wrong env, corrupt file, empty demos); one line."""


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One episode of a demonstrator.

    :param obs: shape ``(T + 1,) + obs_shape``: the reset observation, then the observation after each
        step (the last one is the true final observation, not the next episode's reset observation).
    :param acts: shape ``(T,) + act_shape``: the actions that reached the env (clipped to its bounds).
    :param rewards: shape ``(T,)``: the env's rewards.
    :param terminated: True when the episode ended in a terminal state (not by a time limit or a cut).
    """

    obs: np.ndarray
    acts: np.ndarray
    rewards: np.ndarray
    terminated: bool = False

    def __post_init__(self) -> None:
        steps = len(self.acts)
        if steps < 1:
            raise DemoError("a trajectory needs at least one step (got 0 actions)")
        if len(self.obs) != steps + 1:
            raise DemoError(f"a trajectory of {steps} actions needs {steps + 1} observations "
                            f"(T + 1 convention), got {len(self.obs)}")
        if np.shape(self.rewards) != (steps,):
            raise DemoError(f"a trajectory of {steps} actions needs rewards of shape ({steps},), "
                            f"got {np.shape(self.rewards)}")

    def __len__(self) -> int:
        return len(self.acts)

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards))


@dataclass(frozen=True, eq=False)
class Trajectories(Sequence[Trajectory]):
    """Episodes recorded on one env, with that env's id and its spaces' shapes and dtypes.

    :param episodes: the trajectories.
    :param env_id: the Gymnasium id they were recorded on ("" when unknown).
    :param subsample: :meth:`transitions` returns every ``subsample``-th (s, a) pair of each episode,
        starting at ``sample_offsets[i]`` in episode i (the GAIL paper used 20 with random offsets).
    """

    episodes: tuple[Trajectory, ...]
    env_id: str
    obs_shape: tuple[int, ...]
    act_shape: tuple[int, ...]
    obs_dtype: np.dtype
    act_dtype: np.dtype
    subsample: int = 1
    sample_offsets: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.episodes:
            raise DemoError("demonstrations hold no episodes; record at least one")
        if self.subsample < 1:
            raise DemoError(f"subsample must be a positive integer, got {self.subsample}")
        for i, traj in enumerate(self.episodes):
            if traj.obs.shape[1:] != self.obs_shape or traj.acts.shape[1:] != self.act_shape:
                raise DemoError(f"episode {i} has observations {traj.obs.shape[1:]} and actions "
                                f"{traj.acts.shape[1:]}; the demos declare {self.obs_shape} and {self.act_shape}")
        if self.sample_offsets and len(self.sample_offsets) != len(self.episodes):
            raise DemoError(f"{len(self.sample_offsets)} sample offsets for {len(self.episodes)} episodes")

    @classmethod
    def from_episodes(cls, episodes: Sequence[Trajectory], env_id: str = "") -> Trajectories:
        """Trajectories whose shapes and dtypes are read from the first episode."""
        if not episodes:
            raise DemoError("demonstrations hold no episodes; record at least one")
        first = episodes[0]
        return cls(tuple(episodes), env_id, tuple(first.obs.shape[1:]), tuple(first.acts.shape[1:]),
                   first.obs.dtype, first.acts.dtype)

    # -- the sequence ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.episodes)

    @overload
    def __getitem__(self, index: int) -> Trajectory: ...

    @overload
    def __getitem__(self, index: slice) -> Trajectories: ...

    def __getitem__(self, index: int | slice) -> Trajectory | Trajectories:
        if isinstance(index, slice):
            offsets = self.sample_offsets[index] if self.sample_offsets else ()
            return Trajectories(self.episodes[index], self.env_id, self.obs_shape, self.act_shape,
                                self.obs_dtype, self.act_dtype, self.subsample, offsets)
        return self.episodes[index]

    def __iter__(self) -> Iterator[Trajectory]:
        return iter(self.episodes)

    # -- summaries -------------------------------------------------------------------------------
    @property
    def returns(self) -> np.ndarray:
        return np.array([traj.episode_return for traj in self.episodes])

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(traj) for traj in self.episodes])

    @property
    def n_transitions(self) -> int:
        """Transitions in all episodes (before subsampling)."""
        return int(self.lengths.sum())

    def subsampled(self, every: int, seed: int = 0) -> Trajectories:
        """The same episodes with :meth:`transitions` keeping every ``every``-th pair, each episode
        starting at a random offset in [0, every) drawn from ``seed``."""
        if every < 1:
            raise DemoError(f"subsample must be a positive integer, got {every}")
        rng = np.random.default_rng(seed)
        offsets = tuple(int(o) for o in rng.integers(0, every, len(self.episodes))) if every > 1 else ()
        return Trajectories(self.episodes, self.env_id, self.obs_shape, self.act_shape, self.obs_dtype,
                            self.act_dtype, every, offsets)

    def transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(obs, acts, next_obs, dones)`` of the (subsampled) pairs of all episodes, concatenated.

        ``dones`` marks the last step of an episode that ended in a terminal state.
        """
        obs, acts, nxt, dones = [], [], [], []
        for i, traj in enumerate(self.episodes):
            offset = self.sample_offsets[i] if self.sample_offsets else 0
            # an offset past a short episode's end would drop it entirely; keep its last pair instead
            idx = np.arange(min(offset, len(traj) - 1), len(traj), self.subsample)
            obs.append(traj.obs[idx])
            acts.append(traj.acts[idx])
            nxt.append(traj.obs[idx + 1])
            done = np.zeros(len(idx), dtype=bool)
            done[idx == len(traj) - 1] = traj.terminated
            dones.append(done)
        return np.concatenate(obs), np.concatenate(acts), np.concatenate(nxt), np.concatenate(dones)

    def fingerprint(self) -> str:
        """SHA-256 of the episodes' contents: tells whether two runs used the same demonstrations."""
        digest = hashlib.sha256(self.env_id.encode())
        for traj in self.episodes:
            for array in (traj.obs, traj.acts, traj.rewards, np.asarray(traj.terminated)):
                digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def check_compatible(self, env_id: str | None = None, observation_space: gym.Space | None = None,
                         action_space: gym.Space | None = None, source: str = "demos") -> None:
        """Raise :class:`DemoError` (one line, naming both sides) unless the demos fit this env."""
        if env_id is not None and self.env_id and env_id != self.env_id:
            raise DemoError(f"{source} were recorded on {self.env_id} (observations {self.obs_shape}, "
                            f"actions {self.act_shape}), not on {env_id}")
        if observation_space is not None and tuple(observation_space.shape or ()) != self.obs_shape:
            raise DemoError(f"{source} hold observations of shape {self.obs_shape} (env {self.env_id or '?'}), "
                            f"this env has {tuple(observation_space.shape or ())}")
        if action_space is not None:
            expected = tuple(action_space.shape or ())
            if expected != self.act_shape:
                raise DemoError(f"{source} hold actions of shape {self.act_shape} (env {self.env_id or '?'}), "
                                f"this env has {expected}")
            if isinstance(action_space, spaces.Discrete):
                acts = np.concatenate([traj.acts for traj in self.episodes])
                if acts.min() < action_space.start or acts.max() >= action_space.start + action_space.n:
                    raise DemoError(f"{source} hold discrete actions in [{acts.min()}, {acts.max()}], "
                                    f"this env has {action_space}")


def mix_demos(*parts: Trajectories, shuffle: bool = True, seed: int = 0) -> Trajectories:
    """One unlabelled set of demonstrations from several (e.g. several experts' demos for InfoGAIL).

    Every part must hold the same env's episodes (same id where recorded, same shapes and dtypes); the
    result says nothing about which episode came from which part. With ``shuffle`` the episodes are put
    in a seeded random order, so that the first n episodes (``load_demos(..., n_episodes=n)``) draw from
    every part. Subsampling is a loader option and is not carried over; save the result with
    :func:`save_demos` (the usual schema).
    """
    if not parts:
        raise DemoError("mix_demos needs at least one set of demonstrations")
    for i, part in enumerate(parts):
        if not isinstance(part, Trajectories):
            raise TypeError(f"demonstrations to mix must be Trajectories (see load_demos), part {i} is a "
                            f"{type(part).__name__}")
    first = parts[0]
    env_ids = {part.env_id for part in parts if part.env_id}
    if len(env_ids) > 1:
        raise DemoError(f"cannot mix demonstrations of different envs: {', '.join(sorted(env_ids))}")
    for i, part in enumerate(parts[1:], start=1):
        layout = (part.obs_shape, part.act_shape, np.dtype(part.obs_dtype), np.dtype(part.act_dtype))
        expected = (first.obs_shape, first.act_shape, np.dtype(first.obs_dtype), np.dtype(first.act_dtype))
        if layout != expected:
            raise DemoError(f"cannot mix demonstrations: part {i} has observations {part.obs_shape} "
                            f"({layout[2]}) and actions {part.act_shape} ({layout[3]}), part 0 has "
                            f"{first.obs_shape} ({expected[2]}) and {first.act_shape} ({expected[3]})")
    episodes = [traj for part in parts for traj in part.episodes]
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(episodes))
        episodes = [episodes[i] for i in order]
    return Trajectories(tuple(episodes), env_ids.pop() if env_ids else "", first.obs_shape, first.act_shape,
                        np.dtype(first.obs_dtype), np.dtype(first.act_dtype))


# -- files ---------------------------------------------------------------------------------------
def save_demos(path: str | Path, trajs: Trajectories) -> None:
    """Write ``trajs`` (all of every episode; subsampling is a loader option) to ``path`` atomically."""
    if not isinstance(trajs, Trajectories):
        trajs = Trajectories.from_episodes(list(trajs))
    lengths = trajs.lengths
    arrays = {
        "format": np.array(FORMAT_NAME),
        "schema_version": np.array(SCHEMA_VERSION),
        "env_id": np.array(trajs.env_id),
        "obs_shape": np.array(trajs.obs_shape, dtype=np.int64),
        "act_shape": np.array(trajs.act_shape, dtype=np.int64),
        "obs_dtype": np.array(np.dtype(trajs.obs_dtype).str),
        "act_dtype": np.array(np.dtype(trajs.act_dtype).str),
        "obs": np.concatenate([traj.obs for traj in trajs]).astype(trajs.obs_dtype, copy=False),
        "acts": np.concatenate([traj.acts for traj in trajs]).astype(trajs.act_dtype, copy=False),
        "rewards": np.concatenate([np.asarray(traj.rewards, dtype=np.float64) for traj in trajs]),
        "terminated": np.array([traj.terminated for traj in trajs], dtype=bool),
        "episode_starts": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_demos(
    path: str | Path,
    *,
    subsample: int = 1,
    n_episodes: int | None = None,
    env_id: str | None = None,
    observation_space: gym.Space | None = None,
    action_space: gym.Space | None = None,
    seed: int = 0,
) -> Trajectories:
    """Read demos written by :func:`save_demos`.

    :param subsample: keep every k-th (s, a) pair of each episode in :meth:`Trajectories.transitions`
        (random start offsets drawn from ``seed``; the GAIL paper used 20).
    :param n_episodes: keep only the first ``n_episodes`` episodes (None: all).
    :param env_id, observation_space, action_space: when given, demos recorded for another env are
        refused with a one-line :class:`DemoError` naming both.
    """
    path = Path(path)
    if not path.is_file():
        raise DemoError(f"demo file not found: {path}")
    try:
        with path.open("rb") as handle:
            header = handle.read(4)
    except OSError as exc:
        raise DemoError(f"cannot read demo file {path}: {exc.strerror or type(exc).__name__}") from None
    if header != b"PK\x03\x04":  # not a zip archive, as every .npz is: numpy's reason would mislead
        raise DemoError(f"{path} is not an rlgen demo file (not an .npz archive; `rlgen demos collect` makes one)")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in _REQUIRED_KEYS if key not in data.files]
            if missing:
                raise DemoError(f"{path} is not an rlgen demo file (missing {', '.join(missing)})")
            arrays = {key: data[key] for key in _REQUIRED_KEYS}
    except DemoError:
        raise
    except Exception as exc:  # zipfile, zlib, numpy header errors: whatever a damaged file raises
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DemoError(f"cannot read demo file {path} (truncated or corrupt?): {reason}") from None
    if str(arrays["format"]) != FORMAT_NAME:
        raise DemoError(f"{path} is not an rlgen demo file (format {str(arrays['format'])!r})")
    try:
        version = int(arrays["schema_version"])
    except (TypeError, ValueError):
        raise DemoError(f"{path} is corrupt: its schema_version {arrays['schema_version']!r} is no integer") from None
    if version > SCHEMA_VERSION:
        raise DemoError(f"{path} has demo schema version {version}; this rlgen reads up to {SCHEMA_VERSION}")
    trajs = _unpack(arrays, path)
    if n_episodes is not None:
        if n_episodes < 1:
            raise DemoError(f"n_episodes must be a positive integer, got {n_episodes}")
        if n_episodes > len(trajs):
            raise DemoError(f"{path} holds {len(trajs)} episodes, fewer than the {n_episodes} asked for")
        trajs = trajs[:n_episodes]
    trajs.check_compatible(env_id, observation_space, action_space, source=f"demos {path.name}")
    return trajs.subsampled(subsample, seed) if subsample != 1 else trajs


def demo_record(path: str | Path, episodes: int | None = None, subsample: int = 1) -> dict[str, Any]:
    """What a run that learns from the demo file ``path`` records of it (a run directory's demos.json): the path,
    the bytes' sha256, and the episodes and subsampling the run uses."""
    return {"path": str(path), "sha256": file_sha256(path), "episodes": episodes, "subsample": subsample}


def demo_record_mismatch(recorded: Mapping[str, Any], path: str | Path) -> str | None:
    """Why the demo file ``path`` is not the one ``recorded`` (:func:`demo_record`) names: its bytes changed
    (both hashes given); None when it is, or when the record names no hash."""
    expected = recorded.get("sha256")
    if expected is None:
        return None
    digest = file_sha256(path)
    return None if digest == expected else f"demos of sha256 {expected}; {path} now has {digest}"


def _unpack(arrays: dict[str, np.ndarray], path: Path) -> Trajectories:
    try:  # what a damaged or hand-made file may hold instead of shapes and dtypes
        obs_shape = tuple(int(n) for n in np.atleast_1d(arrays["obs_shape"]))
        act_shape = tuple(int(n) for n in np.atleast_1d(arrays["act_shape"]))
        obs_dtype, act_dtype = np.dtype(str(arrays["obs_dtype"])), np.dtype(str(arrays["act_dtype"]))
    except (TypeError, ValueError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DemoError(f"{path} is corrupt: its shapes or dtypes cannot be read ({reason})") from None
    obs, acts, rewards = arrays["obs"], arrays["acts"], arrays["rewards"]
    starts, terminated = arrays["episode_starts"], arrays["terminated"]
    if terminated.ndim != 1 or starts.ndim != 1 or starts.dtype.kind not in "iu" or rewards.ndim != 1:
        raise DemoError(f"{path} is inconsistent (episode offsets, array lengths or shapes disagree); "
                        "the file is corrupt")
    n = len(terminated)
    if n == 0:
        raise DemoError(f"{path} holds no episodes")
    consistent = (
        len(starts) == n + 1 and starts[0] == 0 and np.all(np.diff(starts) >= 1)
        and starts[-1] == len(acts) == len(rewards) and len(obs) == len(acts) + n
        and obs.shape[1:] == obs_shape and acts.shape[1:] == act_shape
    )
    if not consistent:
        raise DemoError(f"{path} is inconsistent (episode offsets, array lengths or shapes disagree); "
                        "the file is corrupt")
    for name, values, offset in (("observations", obs, 1), ("actions", acts, 0), ("rewards", rewards, 0)):
        if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0])
            # the episode whose rows hold it: observations have one row more per episode than the others
            episode = int(np.searchsorted(starts + offset * np.arange(n + 1), row, side="right") - 1)
            raise DemoError(f"{path} holds non-finite {name} in episode {episode} (row {row}); an expert's "
                            f"demonstrations must be finite: collect them again or drop that episode")
    episodes = tuple(
        Trajectory(obs[starts[i] + i:starts[i + 1] + i + 1], acts[starts[i]:starts[i + 1]],
                   rewards[starts[i]:starts[i + 1]], bool(terminated[i]))
        for i in range(n)
    )
    return Trajectories(episodes, str(arrays["env_id"]), obs_shape, act_shape, obs_dtype, act_dtype)


# -- Minari-style episode data -------------------------------------------------------------------
def to_minari_episodes(trajs: Trajectories) -> list[dict[str, np.ndarray]]:
    """One dict per episode with Minari's keys: observations (T + 1), actions, rewards, terminations,
    truncations (T each). An episode that did not terminate is marked truncated at its last step."""
    episodes = []
    for traj in trajs:
        terminations = np.zeros(len(traj), dtype=bool)
        truncations = np.zeros(len(traj), dtype=bool)
        (terminations if traj.terminated else truncations)[-1] = True
        episodes.append({"observations": traj.obs.copy(), "actions": traj.acts.copy(),
                         "rewards": np.asarray(traj.rewards).copy(), "terminations": terminations,
                         "truncations": truncations})
    return episodes


def from_minari_episodes(episodes: Sequence[Mapping[str, Any]], env_id: str = "") -> Trajectories:
    """Trajectories from Minari-style episode dicts (e.g. ``minari`` EpisodeData turned into dicts)."""
    out = []
    for i, episode in enumerate(episodes):
        missing = {"observations", "actions", "rewards", "terminations"} - set(episode)
        if missing:
            raise DemoError(f"Minari episode {i} lacks {', '.join(sorted(missing))}")
        obs = np.asarray(episode["observations"])
        if obs.dtype == object:
            raise DemoError(f"Minari episode {i} has dict or ragged observations; only Box spaces are supported")
        terminations = np.asarray(episode["terminations"], dtype=bool)
        out.append(Trajectory(obs, np.asarray(episode["actions"]), np.asarray(episode["rewards"]),
                              bool(terminations[-1]) if len(terminations) else False))
    return Trajectories.from_episodes(out, env_id)


# -- collection ----------------------------------------------------------------------------------
def as_policy_fn(policy: Any, deterministic: bool = True) -> PolicyFn:
    """A function observation -> action from a callable or anything with SB3's ``predict``."""
    predict = getattr(policy, "predict", None)
    if predict is not None:
        return lambda obs: predict(obs, deterministic=deterministic)[0]
    if callable(policy):
        return policy
    raise TypeError(f"policy must be a callable obs -> action or an SB3 model, got {type(policy).__name__}")


def collect_demos(
    policy: Any,
    env: gym.Env | str,
    n_episodes: int,
    *,
    deterministic: bool = True,
    seed: int = 0,
    env_id: str | None = None,
    progress_bar: bool = False,
    min_return: float | None = None,
    max_attempts: int | None = None,
    on_step: Callable[[gym.Env, bool], None] | None = None,
) -> Trajectories:
    """Roll out ``policy`` for ``n_episodes`` on ``env`` and record raw observations.

    :param policy: a function raw observation -> action, or an SB3 model (its ``predict``). A model that
        was trained on normalised observations must see them normalised: pass a function that does it
        (``rlgen.agents.collect_demos(run_dir, n)`` does this for a run directory).
    :param env: a Gymnasium env (or its id). Box actions are clipped to the bounds, and the clipped action
        is what is recorded, since it is what reached the env.
    :param seed: episode i is reset with seed ``seed + i``.
    :param min_return: keep only episodes whose return reaches this (an expert's failures, such as a
        HalfCheetah that flipped onto its back, teach an imitator to fail); the rollouts go on with the
        next seeds until ``n_episodes`` are kept.
    :param max_attempts: with ``min_return``, give up (DemoError) after this many episodes (default
        ``4 * n_episodes``).
    :param on_step: called with the env and True after every reset, with False after every step (a video's
        frames, say); it sees every episode rolled out, those ``min_return`` leaves out too.
    """
    if n_episodes < 1:
        raise DemoError(f"n_episodes must be a positive integer, got {n_episodes}")
    attempts = n_episodes if min_return is None else (4 * n_episodes if max_attempts is None else max_attempts)
    if attempts < n_episodes:
        raise DemoError(f"max_attempts ({attempts}) is below the {n_episodes} episodes asked for")
    own_env = isinstance(env, str)
    if isinstance(env, str):
        import rlgen.envs  # noqa: F401  (registers rlgen/* ids)
        from rlgen.envs.quiet import make as quiet_make

        env = quiet_make(env)
    if env_id is None:
        env_id = env.spec.id if env.spec is not None else ""
    act_fn = as_policy_fn(policy, deterministic)
    act_space = env.action_space
    obs_dtype = env.observation_space.dtype or np.float32
    act_dtype = act_space.dtype or np.float32
    from tqdm.auto import tqdm

    episodes, dropped = [], []
    bar = tqdm(total=n_episodes, desc="collecting demos", disable=not progress_bar)
    try:
        for i in range(attempts):
            if len(episodes) == n_episodes:
                break
            obs, _ = env.reset(seed=seed + i)
            if on_step is not None:
                on_step(env, True)
            observations, actions, rewards = [np.asarray(obs, dtype=obs_dtype)], [], []
            terminated = truncated = False
            while not (terminated or truncated):
                action = np.asarray(act_fn(obs)).astype(act_dtype, copy=False)
                if isinstance(act_space, spaces.Box):
                    action = np.clip(action.reshape(act_space.shape), act_space.low, act_space.high)
                elif isinstance(act_space, spaces.Discrete):
                    action = np.asarray(action.reshape(()), dtype=act_dtype)
                # a Discrete action reaches the env as a numpy integer, as Gymnasium's spaces sample it: a 0-d array
                # is unhashable, and envs that look it up (FrozenLake's P[s][a], Taxi's) fail on one
                obs, reward, terminated, truncated, _ = env.step(
                    action[()] if isinstance(act_space, spaces.Discrete) else action)
                if on_step is not None:
                    on_step(env, False)
                observations.append(np.asarray(obs, dtype=obs_dtype))
                actions.append(action)
                rewards.append(float(reward))
            episode = Trajectory(np.stack(observations), np.stack(actions), np.asarray(rewards), bool(terminated))
            if min_return is not None and episode.episode_return < min_return:
                dropped.append(episode.episode_return)
                continue
            episodes.append(episode)
            bar.update(1)
    finally:
        bar.close()
        if own_env:
            env.close()
    if len(episodes) < n_episodes:
        raise DemoError(f"only {len(episodes)} of {attempts} episodes reached the minimum return {min_return:g} "
                        f"(the others: {', '.join(f'{r:.1f}' for r in dropped[:5])}{', ...' if len(dropped) > 5 else ''}); "
                        f"{n_episodes} were asked for")
    return Trajectories(tuple(episodes), env_id, tuple(env.observation_space.shape or ()),
                        tuple(act_space.shape or ()), np.dtype(obs_dtype), np.dtype(act_dtype))

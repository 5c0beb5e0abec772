"""VIME: variational information maximising exploration (Houthooft et al. 2016) as an SB3 VecEnv wrapper.

The agent is rewarded for transitions that teach it most about the environment's dynamics: the bonus
of (s, a, s') is the information gain KL(q_new || q_old) of a Bayesian dynamics model
(:class:`rlgen.generative.BNN`) updated on that transition.

Information gain is only cheap in a batch (~2 ms for one transition, ~40 us each in a rollout-sized
batch on a 2-core CPU), so the wrapper records every transition and its :attr:`VIME.callback` adds the
bonus for the whole rollout at its end, then recomputes returns and advantages and trains the BNN on
its replay pool. All bonuses of one rollout therefore come from one fixed model, as in the original.
The bonus goes into the rollout buffer, i.e. on top of the rewards the agent learns from: behind
VecNormalize those are the normalised env rewards, so ``eta`` is relative to that scale.

>>> from stable_baselines3 import PPO                       # doctest: +SKIP
>>> from stable_baselines3.common.env_util import make_vec_env   # doctest: +SKIP
>>> vime = VIME(make_vec_env("MountainCarContinuous-v0", n_envs=4), eta=0.1)   # doctest: +SKIP
>>> PPO("MlpPolicy", vime).learn(50_000, callback=vime.callback)   # doctest: +SKIP
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from rlgen.generative import BNN
from rlgen.transitions import observations_and_next
from rlgen.wrapper_state import WrapperState

METHODS = ("second_order", "exact")


class ReplayPool:
    """A ring buffer of (input, target) rows for the dynamics model, with running standardisation."""

    def __init__(self, capacity: int, in_dim: int, out_dim: int):
        self.inputs = np.zeros((capacity, in_dim), dtype=np.float32)
        self.targets = np.zeros((capacity, out_dim), dtype=np.float32)
        self.capacity, self.size, self.cursor = capacity, 0, 0

    def add(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        for start in range(0, len(inputs), self.capacity):
            chunk_in, chunk_out = inputs[start:start + self.capacity], targets[start:start + self.capacity]
            idx = (self.cursor + np.arange(len(chunk_in))) % self.capacity
            self.inputs[idx], self.targets[idx] = chunk_in, chunk_out
            self.cursor = int((self.cursor + len(chunk_in)) % self.capacity)
            self.size = min(self.capacity, self.size + len(chunk_in))

    def statistics(self) -> dict[str, np.ndarray]:
        x, y = self.inputs[:self.size], self.targets[:self.size]
        return {"in_mean": x.mean(0), "in_std": x.std(0) + 1e-6, "out_mean": y.mean(0), "out_std": y.std(0) + 1e-6}

    def state(self) -> dict[str, Any]:
        return {"inputs": torch.from_numpy(self.inputs[:self.size].copy()),
                "targets": torch.from_numpy(self.targets[:self.size].copy()),
                "cursor": self.cursor}

    def load(self, state: dict[str, Any]) -> None:
        inputs, targets = state["inputs"].numpy(), state["targets"].numpy()
        if inputs.shape[1:] != self.inputs.shape[1:] or targets.shape[1:] != self.targets.shape[1:]:
            raise ValueError(f"VIME state holds transitions of widths {inputs.shape[1:]} -> {targets.shape[1:]}, "
                             f"this env needs {self.inputs.shape[1:]} -> {self.targets.shape[1:]}")
        self.size = min(len(inputs), self.capacity)
        self.inputs[:self.size], self.targets[:self.size] = inputs[:self.size], targets[:self.size]
        self.cursor = int(state["cursor"]) % self.capacity


class VIME(WrapperState, VecEnvWrapper):
    """Records (s, a, s') of every step; its :attr:`callback` adds ``eta`` x normalised information gain
    to each rollout's rewards (env rewards reported by SB3 stay the true ones).

    :param venv: a VecEnv with Box observation and action spaces.
    :param eta: weight of the normalised information gain in the reward.
    :param hidden: hidden layer sizes of the BNN (the original: one layer of 32).
    :param replay_size: transitions kept for training the BNN.
    :param min_replay: the BNN trains once the pool holds this many transitions.
    :param updates_per_rollout: Adam minibatch steps on the BNN after each rollout.
    :param batch_size: BNN minibatch size (the original: 10).
    :param method: ``second_order`` (batched, default) or ``exact`` (a few optimiser steps per transition,
        the original's default; slow, kept as the reference).
    :param median_window: the information gains of a rollout are divided by the mean of the last
        ``median_window`` rollout medians.
    :param max_kl: information gains are clipped to [0, max_kl].
    """

    def __init__(
        self,
        venv: VecEnv,
        *,
        eta: float = 0.1,
        hidden: tuple[int, ...] | list[int] = (32,),
        prior_sd: float = 0.5,
        likelihood_sd: float = 5.0,
        n_samples: int = 10,
        replay_size: int = 100_000,
        min_replay: int = 500,
        updates_per_rollout: int = 500,
        batch_size: int = 10,
        learning_rate: float = 1e-3,
        method: str = "second_order",
        step_size: float = 0.01,
        median_window: int = 10,
        max_kl: float = 1000.0,
        seed: int = 0,
    ):
        super().__init__(venv)
        obs_space, act_space = venv.observation_space, venv.action_space
        if not isinstance(obs_space, spaces.Box) or not isinstance(act_space, spaces.Box):
            raise TypeError(
                f"VIME needs Box observation and action spaces, got {type(obs_space).__name__} observations "
                f"and {type(act_space).__name__} actions"
            )
        if method not in METHODS:
            raise ValueError(f"unknown VIME method {method!r}; choose one of: {', '.join(METHODS)}")
        for name, value in (("eta", eta), ("max_kl", max_kl)):
            if not value >= 0:
                raise ValueError(f"VIME {name} must be >= 0, got {value}")
        for name, value in (("replay_size", replay_size), ("batch_size", batch_size),
                            ("median_window", median_window), ("n_samples", n_samples)):
            if int(value) < 1:
                raise ValueError(f"VIME {name} must be a positive integer, got {value}")
        self.obs_dim = int(np.prod(obs_space.shape))
        self.act_dim = int(np.prod(act_space.shape))
        self.eta, self.method, self.step_size, self.max_kl = float(eta), method, float(step_size), float(max_kl)
        self.min_replay, self.updates_per_rollout, self.batch_size = min_replay, updates_per_rollout, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.bnn = BNN(self.obs_dim + self.act_dim, self.obs_dim, hidden=tuple(hidden), prior_sd=prior_sd,
                       likelihood_sd=likelihood_sd, n_samples=n_samples)
        self.optimizer = torch.optim.Adam(self.bnn.parameters(), lr=learning_rate)
        self.pool = ReplayPool(replay_size, self.obs_dim + self.act_dim, self.obs_dim)
        self.medians: deque[float] = deque(maxlen=median_window)
        self.stats: dict[str, np.ndarray] | None = None
        self.num_steps = 0
        self.callback = VIMECallback(self)
        self._last_obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    # -- recording -------------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self._check_finite(obs, "reset observation")
        self._last_obs = np.asarray(obs, dtype=np.float32).reshape(self.num_envs, -1)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, -1)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.num_steps += 1
        self._check_finite(obs, "observation")
        flat, next_obs = observations_and_next(obs, dones, infos)
        self._check_finite(next_obs, "terminal observation")
        if self._last_obs is None or self._actions is None:
            raise RuntimeError("VIME.step_wait called before reset/step_async")
        self._pending.append((self._last_obs, self._actions, next_obs, np.asarray(dones, dtype=bool)))
        self._last_obs = flat
        return obs, rewards, dones, infos

    def _check_finite(self, array: np.ndarray, what: str) -> None:
        if not np.all(np.isfinite(array)):
            raise ValueError(f"VIME: non-finite {what} at step {self.num_steps}; refusing to train the BNN on it")

    def take_rollout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inputs, targets, dones) of the steps recorded since the last call, shaped (T, n_envs, ...)."""
        if not self._pending:
            raise RuntimeError("VIME recorded no transitions in this rollout")
        obs, act, nxt, dones = (np.stack(column) for column in zip(*self._pending, strict=True))
        self._pending.clear()
        return np.concatenate([obs, act], axis=-1), nxt, dones

    # -- the model -------------------------------------------------------------------------------
    def _standardise(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self.stats
        if stats is None:
            return torch.from_numpy(inputs), torch.from_numpy(targets)
        x = (inputs - stats["in_mean"]) / stats["in_std"]
        y = (targets - stats["out_mean"]) / stats["out_std"]
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))

    def information_gain(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Clipped information gain of each transition (rows of ``inputs`` = [s, a], ``targets`` = s')."""
        x, y = self._standardise(inputs, targets)
        gain = self.bnn.information_gain(x, y, method=self.method, step_size=self.step_size)
        return np.clip(gain.detach().numpy().astype(np.float64), 0.0, self.max_kl)

    def normalise(self, gains: np.ndarray) -> np.ndarray:
        """Divide by the mean of the last rollouts' medians (this rollout's included)."""
        self.medians.append(float(np.median(gains)))
        scale = float(np.mean(self.medians))
        return gains / scale if scale > 0 else gains

    def train_model(self, inputs: np.ndarray, targets: np.ndarray) -> float | None:
        """Add the rollout to the replay pool and take Adam steps on the ELBO; returns the last ELBO."""
        self.pool.add(inputs, targets)
        if self.pool.size < self.min_replay or self.updates_per_rollout <= 0:
            return None
        self.stats = self.pool.statistics()
        n_batches = max(1, self.pool.size // self.batch_size)
        elbo = None
        for _ in range(self.updates_per_rollout):
            idx = self.rng.integers(0, self.pool.size, self.batch_size)
            x, y = self._standardise(self.pool.inputs[idx], self.pool.targets[idx])
            losses = self.bnn.loss((x, y), n_batches=n_batches)
            self.optimizer.zero_grad()
            losses["loss"].backward()
            self.optimizer.step()
            elbo = -float(losses["loss"].detach())
        return elbo

    # -- saving ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        stats = {k: torch.from_numpy(v) for k, v in self.stats.items()} if self.stats is not None else {}
        return {"bnn": self.bnn.state_dict(), "optimizer": self.optimizer.state_dict(), "pool": self.pool.state(),
                "medians": list(self.medians), "stats": stats, "num_steps": self.num_steps,
                "intrinsic_returns": list(self.callback.episode_intrinsic)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bnn.load_state_dict(state["bnn"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.pool.load(state["pool"])
        self.medians.clear()
        self.medians.extend(float(m) for m in state["medians"])
        self.stats = {k: v.numpy() for k, v in state["stats"].items()} or None
        self.num_steps = int(state["num_steps"])
        self.callback.episode_intrinsic.clear()
        self.callback.episode_intrinsic.extend(float(r) for r in state["intrinsic_returns"])

    state_file = "vime.pt"
    state_name = "VIME"



class VIMECallback(BaseCallback):
    """At each rollout's end: bonus into the rollout buffer, returns/advantages recomputed, BNN trained."""

    def __init__(self, vime: VIME):
        super().__init__()
        self.vime = vime
        self.episode_intrinsic: deque[float] = deque(maxlen=100)
        self._running: np.ndarray | None = None

    def _init_callback(self) -> None:
        if not hasattr(self.model, "rollout_buffer"):
            raise TypeError(
                f"VIME's callback needs an on-policy agent with a rollout buffer (PPO, TRPO, A2C), "
                f"got {type(self.model).__name__}"
            )

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        vime, buffer = self.vime, self.model.rollout_buffer
        inputs, targets, dones = vime.take_rollout()
        steps, n_envs = buffer.rewards.shape
        if inputs.shape[:2] != (steps, n_envs):
            raise RuntimeError(
                f"VIME recorded {inputs.shape[0]} steps x {inputs.shape[1]} envs in this rollout, but the "
                f"rollout buffer holds {steps} x {n_envs}: is the VIME wrapper inside the model's env?"
            )
        flat_in, flat_out = inputs.reshape(steps * n_envs, -1), targets.reshape(steps * n_envs, -1)
        gains = vime.information_gain(flat_in, flat_out)
        bonus = (vime.eta * vime.normalise(gains)).reshape(steps, n_envs)
        buffer.rewards += bonus.astype(buffer.rewards.dtype)
        # SB3 computed returns and advantages before this hook; redo them with the bonus included
        buffer.compute_returns_and_advantage(last_values=self.locals["values"], dones=self.locals["dones"])
        self._track_episodes(bonus, dones)
        elbo = vime.train_model(flat_in, flat_out)
        self.logger.record("vime/info_gain_mean", float(gains.mean()))
        self.logger.record("vime/info_gain_median", float(np.median(gains)))
        self.logger.record("vime/bonus_mean", float(bonus.mean()))
        if elbo is not None:
            self.logger.record("vime/bnn_elbo", elbo)
        if self.episode_intrinsic:
            self.logger.record("rollout/ep_intrinsic_mean", float(np.mean(self.episode_intrinsic)))

    def _track_episodes(self, bonus: np.ndarray, dones: np.ndarray) -> None:
        if self._running is None or len(self._running) != bonus.shape[1]:
            self._running = np.zeros(bonus.shape[1])
        for t in range(len(bonus)):
            self._running += bonus[t]
            for i in np.flatnonzero(dones[t]):
                self.episode_intrinsic.append(float(self._running[i]))
                self._running[i] = 0.0

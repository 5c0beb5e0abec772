"""What every rollout-end exploration bonus shares: recording (s, a, s'), the callback, the replay pool.

A bonus that is only cheap in a batch (VIME's information gain, a density model's prediction gain) is computed
for a whole rollout at its end. :class:`RolloutBonus` is the VecEnv wrapper half: it records every transition
with the true next observation at episode ends and refuses non-finite observations. :class:`RolloutBonusCallback`
is the SB3 half: at each rollout's end it asks the wrapper for the bonus of every recorded transition, adds it
to the rollout buffer's rewards, recomputes returns and advantages, keeps the intrinsic return of finished
episodes, lets the wrapper train its model, and logs what the wrapper reports. A subclass implements
:meth:`RolloutBonus.compute_bonus`, :meth:`RolloutBonus.update_model`, ``state_dict``/``load_state_dict``.

**The model's pace is set in transitions, not rollouts.** The model learns once per *window* of ``update_every``
transitions (2,048 by default, one rollout of rlgen's PPO and TRPO presets), from the transitions of that
window: a rollout at least that long is a window by itself; shorter ones (A2C's 5 steps per env) are gathered
until they make one, and are paid their bonus by the model of the last window meanwhile. A window of ``n``
transitions is owed ``model_steps x n / update_every`` Adam steps (fractions carry over), so an agent that
collects 16,384 transitions per rollout gives the model 8 times the steps of one collecting 2,048, and A2C's
rollouts no longer get a full training each (500 BNN steps per 5 transitions had made A2C + VIME ~100 times
slower than A2C).

Off-policy agents (SAC) have no rollout buffer to rewrite. For them, ``mode="step"`` adds the bonus to the
reward at step time instead, one model call per step (a few ms: about a tenth of a SAC step here, far more
than a PPO step), and trains the model on every ``update_every`` transitions; the replay buffer then keeps
each transition's bonus as it was when collected. No bonus is paid until the model has trained once (the
pool must hold ``min_replay`` transitions), and behind VecNormalize the bonus is scaled with the env reward
rather than added after it, so an ``eta`` or ``beta`` tuned in rollout mode does not carry over.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from rlgen.atomic import atomic_write_text
from rlgen.reward_wrapper import (  # noqa: F401  (add_bonus_to_rollout: imported from here before)
    LOG_EVERY,
    ActionEncoding,
    RewardWrapper,
    TransitionRecorder,
    TransitionRing,
    WrapperCallback,
    add_bonus_to_rollout,
    standardise,
)


def standardisation(inputs: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Column means and standard deviations (floored at 1e-6, for constant columns) of inputs and targets."""
    return {"in_mean": inputs.mean(0), "in_std": inputs.std(0) + 1e-6,
            "out_mean": targets.mean(0), "out_std": targets.std(0) + 1e-6}


MODES = ("rollout", "step")


def model_steps_renamed(cls: type, model_steps: int, updates_per_rollout: int | None) -> int:
    """``model_steps``, or the old ``updates_per_rollout`` (with a DeprecationWarning that says what changed);
    both given (``model_steps`` other than ``cls``'s default) is a ValueError."""
    if updates_per_rollout is None:
        return model_steps
    owner = cls.__name__
    if model_steps != inspect.signature(cls).parameters["model_steps"].default:
        raise ValueError(f"{owner} got both model_steps and updates_per_rollout (its old name): keep model_steps")
    warnings.warn(f"{owner}(updates_per_rollout=...) is deprecated; use model_steps=..., Adam steps per update_every "
                  f"transitions (2,048 by default) rather than per rollout: the same for rollouts of 2,048 "
                  f"transitions", DeprecationWarning, stacklevel=3)
    return updates_per_rollout


class RolloutBonus(RewardWrapper):
    """Records (s, a, s') of every step for a bonus computed once per rollout by :attr:`callback` (or, with
    ``mode="step"``, at every step; see the module docstring). In rollout mode the callback is required: a
    wrapper whose callback no agent attached stops with a one-line error naming the fix
    (:meth:`rlgen.reward_wrapper.RewardWrapper.check_attached`).

    Subclasses set ``state_name`` (used in messages) and ``state_file``, and implement :meth:`compute_bonus`,
    :meth:`update_model`, ``state_dict`` and ``load_state_dict`` (with :meth:`recording_state` in them).
    """

    log_prefix = "bonus"
    """TensorBoard prefix of the bonus's own keys (``vime/...``, ``density/...``)."""
    callback: RolloutBonusCallback

    def __init__(self, venv: VecEnv, mode: str = "rollout", update_every: int = 2048):
        super().__init__(venv)
        if mode not in MODES:
            raise ValueError(f"unknown {self.state_name} mode {mode!r}; choose one of: {', '.join(MODES)}")
        if int(update_every) < 1:
            raise ValueError(f"{self.state_name} update_every must be a positive integer, got {update_every}")
        self.mode, self.update_every = mode, int(update_every)
        self.windows = 0  # step mode: windows that ended in a model update; bonuses are paid from the first on
        # rollout mode: the rollouts of the window not yet learnt from, (inputs, targets) each
        self._window: list[tuple[np.ndarray, np.ndarray]] = []
        obs_space = venv.observation_space
        if not isinstance(obs_space, spaces.Box):
            hint = " (flatten the Dict first, as `rlgen train` does)" if isinstance(obs_space, spaces.Dict) else ""
            raise TypeError(f"{self.state_name} needs a Box observation space, got {type(obs_space).__name__} "
                            f"observations{hint}")
        self.actions = ActionEncoding(venv.action_space, self.state_name)
        """How actions reach the model: a Box's values, Discrete actions one-hot (:class:`ActionEncoding`)."""
        self.obs_shape = tuple(int(s) for s in obs_space.shape)
        self.obs_dim = int(np.prod(obs_space.shape))
        self.act_dim = self.actions.dim
        self.callback_required = mode == "rollout"  # step mode pays the bonus itself; its callback only logs
        self.recorder = TransitionRecorder(self.num_envs, self.state_name)
        self.callback = RolloutBonusCallback(self)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    # -- what a subclass provides ----------------------------------------------------------------
    def compute_bonus(self, inputs: np.ndarray, targets: np.ndarray,
                      record: bool = True) -> tuple[np.ndarray, dict[str, float]]:
        """The bonus of each transition (rows of ``inputs`` = [s, a], ``targets`` = s'), and values to log.

        ``record=False`` (step mode's per-step calls) asks for the bonus without updating any running
        statistic the bonus is normalised by; the window's batch call at update time records them.
        """
        raise NotImplementedError

    def update_model(self, inputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Learn from a window's transitions (after their bonus was computed); returns values to log, empty when
        the model did not train (too few transitions so far)."""
        raise NotImplementedError

    def rollout_learnt(self, inputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Rollout mode: a rollout's transitions, after their bonus was paid. They join the current window; once it
        holds ``update_every`` transitions the model learns from all of it (:meth:`update_model`) and a new window
        starts. Returns what :meth:`update_model` reported ({} while the window is open)."""
        self._window.append((inputs, targets))
        if sum(len(part) for part, _ in self._window) < self.update_every:
            return {}
        if len(self._window) == 1:
            window_in, window_out = self._window[0]
        else:
            window_in = np.concatenate([part for part, _ in self._window])
            window_out = np.concatenate([part for _, part in self._window])
        self._window.clear()
        return self.update_model(window_in, window_out)

    @property
    def changes_step_rewards(self) -> bool:
        return self.mode == "step"

    # -- recording -------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        """Steps recorded so far (every env stepped once counts one)."""
        return self.recorder.steps

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self.recorder.on_reset(obs)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self.recorder.on_actions(self.actions(actions, self.num_envs))
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        s, a, next_obs = self.recorder.on_step(obs, dones, infos)
        self._pending.append((s, a, next_obs, np.asarray(dones, dtype=bool)))
        self.check_attached(len(self._pending) * self.num_envs)  # transitions, as unattached_limit counts
        if self.mode == "step":
            check_env_rewards(self.state_name, rewards, f"step {self.num_steps}")
            rewards = self._add_step_bonus(rewards)
        return obs, rewards, dones, infos

    def _add_step_bonus(self, rewards: np.ndarray) -> np.ndarray:
        """Step mode: the bonus of the transition just recorded; every ``update_every`` transitions, a model update."""
        obs, actions, next_obs, dones = self._pending[-1]
        logged: dict[str, float] = {}
        if self.windows > 0:
            bonus, _ = self.compute_bonus(np.concatenate([obs, actions], axis=-1), next_obs, record=False)
            check_finite_bonus(self, bonus)
        else:
            bonus = np.zeros(self.num_envs)
        self.callback.track_episodes(bonus[None], dones[None])
        if len(self._pending) * self.num_envs >= self.update_every:
            inputs, targets, _ = self.take_rollout()
            flat_in, flat_out = inputs.reshape(-1, inputs.shape[-1]), targets.reshape(-1, targets.shape[-1])
            if self.windows > 0:  # the window's statistics under the model that paid its bonuses
                _, logged = self.compute_bonus(flat_in, flat_out)
            trained = self.update_model(flat_in, flat_out)
            if trained:
                logged.update(trained)
                if self.windows == 0:  # the first trained model: its gains on this window start the normaliser
                    self.compute_bonus(flat_in, flat_out)
                self.windows += 1
        self.callback.step_logs.update(logged)
        return rewards + bonus.astype(rewards.dtype)

    def take_rollout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inputs, targets, dones) of the steps recorded since the last call, shaped (T, n_envs, ...)."""
        if not self._pending:
            raise RuntimeError(f"{self.state_name} recorded no transitions in this rollout")
        obs, act, nxt, dones = self._pending_columns()
        self._pending.clear()
        return np.concatenate([obs, act], axis=-1), nxt, dones

    def _pending_columns(self) -> list[np.ndarray]:
        """The recorded steps as (T, n_envs, ...) arrays: observations, actions, next observations, dones."""
        return [np.stack(column) for column in zip(*self._pending, strict=True)]

    # -- the run's log ---------------------------------------------------------------------------
    def start_log(self, directory: str | Path, keep_until: int | None = None) -> None:
        """Append each rollout's values (bonus percentiles, the model's loss, ...) to ``<state file
        stem>_log.jsonl`` in ``directory``, one row per rollout or per :data:`LOG_EVERY` transitions if rollouts
        are shorter (see :meth:`RolloutBonusCallback.set_log`)."""
        self.callback.set_log(Path(directory) / f"{Path(self.state_file).stem}_log.jsonl", keep_until=keep_until,
                              every=LOG_EVERY)

    def flush_log(self) -> None:
        self.callback.flush_log()

    # -- saving ----------------------------------------------------------------------------------
    def recording_state(self) -> dict[str, Any]:
        """The part of ``state_dict`` every rollout bonus has: steps seen, recent intrinsic episode returns, and the
        transitions of the window the model has not learnt from yet (step mode's steps, rollout mode's rollouts)."""
        pending = [torch.from_numpy(column) for column in self._pending_columns()] if self._pending else []
        window = ([torch.from_numpy(np.concatenate([part[k] for part in self._window])) for k in (0, 1)]
                  if self._window else [])
        return {"num_steps": self.num_steps, "intrinsic_returns": list(self.callback.episode_intrinsic),
                "windows": self.windows, "pending": pending, "window": window}

    def load_recording_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`recording_state` saved: the unfinished window carries over (in either mode)."""
        self.recorder.steps = int(state["num_steps"])
        self.windows = int(state.get("windows", 0))
        columns = [column.numpy() for column in state.get("pending", [])]
        self._pending = [tuple(column[t] for column in columns)  # type: ignore[misc]
                         for t in range(len(columns[0]))] if columns else []
        if self._pending and self._pending[0][0].shape != (self.num_envs, self.obs_dim):
            raise ValueError(f"{self.state_name} state holds steps of {self._pending[0][0].shape[0]} envs with "
                             f"observations of width {self._pending[0][0].shape[1]}; this env has "
                             f"{self.num_envs} x {self.obs_dim}")
        window = [part.numpy() for part in state.get("window", [])]
        if window and window[0].shape[1:] != (self.obs_dim + self.act_dim,):
            raise ValueError(f"{self.state_name} state holds transitions of width {window[0].shape[1]}; this env's "
                             f"[s, a] is {self.obs_dim + self.act_dim} wide")
        self._window = [(window[0], window[1])] if window else []
        self.callback.episode_intrinsic.clear()
        self.callback.episode_intrinsic.extend(float(r) for r in state["intrinsic_returns"])


class ModelBonus(RolloutBonus):
    """A rollout bonus computed by a model that learns from the transitions seen so far (VIME's BNN, a density
    model). This base owns what every such bonus needs besides its model: the replay pool (a
    :class:`~rlgen.reward_wrapper.TransitionRing`), the standardisation of the model's inputs and targets by the
    pool's statistics (standard deviations floored at ``std_floor``, the results clipped to ``[-clip, clip]``,
    or not at all with ``clip=None``), the model's Adam
    optimiser, its minibatches, and the wrapper's random streams, all from ``seed``: :meth:`seeded` for the
    model's initialisation, :attr:`rng` for minibatches, :attr:`generator` for the model's noise.

    A subclass builds its model (inside ``with self.seeded():``), hands it to :meth:`set_model`, and implements
    :meth:`compute_bonus` and :meth:`update_model`; :meth:`pool_state` and :meth:`load_pool_state` are the
    part of its ``state_dict`` this base keeps.
    """

    def __init__(self, venv: VecEnv, *, replay_size: int, min_replay: int, model_steps: int,
                 batch_size: int, seed: int, clip: float | None, mode: str = "rollout", update_every: int = 2048,
                 std_floor: float = 0.0):
        super().__init__(venv, mode=mode, update_every=update_every)
        if not std_floor >= 0:
            raise ValueError(f"{self.state_name} std_floor must be >= 0, got {std_floor}")
        self.std_floor = float(std_floor)
        for name, value in (("replay_size", replay_size), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ValueError(f"{self.state_name} {name} must be a positive integer, got {value}")
        if clip is not None and not clip > 0:
            raise ValueError(f"{self.state_name} clip must be > 0 (or None), got {clip}")
        if isinstance(min_replay, bool) or not isinstance(min_replay, (int, np.integer)) or min_replay < 0:
            raise ValueError(f"{self.state_name} min_replay must be a whole number >= 0 (transitions in the pool "
                             f"before its model trains), got {min_replay!r}")
        if isinstance(model_steps, bool) or not isinstance(model_steps, (int, np.integer)) or model_steps < 0:
            raise ValueError(f"{self.state_name} model_steps must be a whole number >= 0 (Adam steps per "
                             f"update_every transitions), got {model_steps!r}")
        self.min_replay, self.model_steps, self.batch_size = min_replay, int(model_steps), batch_size
        self._step_credit = 0  # transitions x model_steps learnt from whose Adam steps are not taken yet
        self._seed, self.clip = int(seed), None if clip is None else float(clip)
        self.generator = torch.Generator().manual_seed(self._seed)
        self.rng = np.random.default_rng(self._seed)
        self.pool = TransitionRing(int(replay_size), self.obs_dim, self.act_dim, owner=self.state_name,
                                   obs_dtype=venv.observation_space.dtype)
        self.stats: dict[str, np.ndarray] | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    @contextlib.contextmanager
    def seeded(self) -> Iterator[None]:
        """Draw from torch's global RNG as if seeded with ``seed``, without moving the caller's stream."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed)
            yield

    @contextlib.contextmanager
    def own_noise(self) -> Iterator[None]:
        """Draw from torch's global RNG inside the block as the wrapper's :attr:`generator` decides (the model's
        Monte-Carlo and other noise), without moving the caller's stream: a wrapper's seed decides all of its
        randomness, whatever else the process draws."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._noise_seed())
            yield

    def set_model(self, model: torch.nn.Module, learning_rate: float, fused: bool = False) -> None:
        """The model's Adam; ``fused``: torch's one-kernel Adam (the same update, a fraction of the per-step
        overhead of a small model's many parameter tensors)."""
        if not learning_rate > 0 or not math.isfinite(learning_rate):
            raise ValueError(f"{self.state_name} learning_rate must be a positive number, got {learning_rate} (0 "
                             f"leaves its model untrained)")
        self.optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, fused=fused or None)

    def pool_statistics(self) -> dict[str, np.ndarray]:
        """The pool's column means and standard deviations (:meth:`TransitionRing.statistics`), each standard
        deviation at least ``std_floor``: a column that has barely moved so far then scales its first real change
        to a few units, not to thousands."""
        stats = self.pool.statistics()
        if self.std_floor > 0:
            for key in ("in_std", "out_std"):
                stats[key] = np.maximum(stats[key], self.std_floor)
        return stats

    def ready_to_train(self) -> bool:
        return self.pool.size >= self.min_replay and self.model_steps > 0

    def steps_for(self, n_transitions: int) -> int:
        """The Adam steps owed for learning from ``n_transitions`` new ones: ``model_steps`` per ``update_every``
        transitions, what is left in fractions of a step carried over to the next call (and saved)."""
        owed = self._step_credit + int(n_transitions) * self.model_steps
        steps = owed // self.update_every
        self._step_credit = owed - steps * self.update_every
        return steps

    def fit(self, objective: Callable[[np.ndarray, np.ndarray], torch.Tensor], steps: int) -> float:
        """``steps`` Adam steps, each on ``objective(inputs, targets)`` of a fresh minibatch of the pool, with the
        model's noise from the wrapper's own stream (:meth:`own_noise`); the last step's loss (NaN: no step)."""
        with self.own_noise():
            return self._adam_steps(objective, steps)

    def _adam_steps(self, objective: Callable[[np.ndarray, np.ndarray], torch.Tensor], steps: int) -> float:
        assert self.optimizer is not None
        loss = float("nan")
        for _ in range(steps):
            value = objective(*self.sample_batch())
            loss = float(value.detach())
            self.check_finite_loss(loss)
            self.optimizer.zero_grad(set_to_none=True)
            value.backward()
            self.optimizer.step()
        return loss

    def check_finite_loss(self, loss: float) -> None:
        """Stop a model whose training diverged before it pays NaN bonuses (a one-line error: FloatingPointError)."""
        if not math.isfinite(loss):
            raise FloatingPointError(f"{self.state_name}'s model diverged: its training loss is {loss} after "
                                     f"{self.num_steps * self.num_envs} transitions; lower its learning_rate "
                                     f"(bonus_kwargs.learning_rate)")

    # -- noise from the wrapper's own generator -----------------------------------------------------
    def noise_generator(self) -> torch.Generator:
        """A generator for one training's noise, seeded from the wrapper's :attr:`generator`."""
        return torch.Generator().manual_seed(self._noise_seed())

    def _noise_seed(self) -> int:
        """The next seed of the wrapper's noise, drawn from its :attr:`generator`."""
        return int(torch.randint(0, 2**31, (), generator=self.generator))

    def sample_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """A minibatch of the pool, drawn with replacement: (inputs [s, a], targets s')."""
        return self.pool.rows(self.rng.integers(0, self.pool.size, self.batch_size))

    def standardise_inputs(self, inputs: np.ndarray) -> torch.Tensor:
        assert self.stats is not None
        return torch.from_numpy(standardise(inputs, self.stats["in_mean"], self.stats["in_std"], self.clip))

    def standardise_targets(self, targets: np.ndarray) -> torch.Tensor:
        assert self.stats is not None
        return torch.from_numpy(standardise(targets, self.stats["out_mean"], self.stats["out_std"], self.clip))

    def pool_state(self) -> dict[str, Any]:
        """The optimiser, the pool and its statistics, for the subclass's ``state_dict``."""
        assert self.optimizer is not None
        stats = {k: torch.from_numpy(v) for k, v in self.stats.items()} if self.stats is not None else {}
        return {"optimizer": self.optimizer.state_dict(), "pool": self.pool.state(), "stats": stats,
                "step_credit": self._step_credit, "generator": self.generator.get_state(),
                "rng": json.dumps(self.rng.bit_generator.state)}

    def load_pool_state(self, state: dict[str, Any]) -> None:
        assert self.optimizer is not None
        self.optimizer.load_state_dict(state["optimizer"])
        self.pool.load(state["pool"])
        self.stats = {k: v.numpy() for k, v in state["stats"].items()} or None
        self._step_credit = int(state.get("step_credit", 0))
        if "generator" in state:  # (states saved before the random streams were kept start new ones)
            self.generator.set_state(state["generator"])
            self.rng.bit_generator.state = json.loads(state["rng"])


def check_finite_bonus(wrapper: RolloutBonus, bonus: np.ndarray) -> None:
    """A NaN or infinite bonus (a diverged model) stops the run in one line before the agent learns from it."""
    if not np.isfinite(bonus).all():
        bad = bonus[~np.isfinite(bonus)].ravel()[0]
        raise FloatingPointError(f"{wrapper.state_name}'s bonus is {bad} after {wrapper.num_steps * wrapper.num_envs} "
                                 f"transitions: its model diverged; lower its learning_rate (bonus_kwargs.learning_rate)")


def check_env_rewards(owner: str, rewards: np.ndarray, where: str) -> None:
    """ValueError naming the first non-finite reward (step, env) of ``rewards`` ((steps, n_envs) or (n_envs,)):
    the agent would learn from it and the bonus be added to it (``rlgen train`` stops such an env itself)."""
    finite = np.isfinite(rewards)
    if finite.all():
        return
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    at = f"step {first[0]}, env {first[1]}" if len(first) == 2 else f"env {first[0]}"
    raise ValueError(f"{owner}: the reward the env returned is {rewards[first]} at {at} of {where}; the agent "
                     f"would learn from it")


class RolloutBonusCallback(WrapperCallback):
    """At each rollout's end: the bonus into the rollout buffer, returns/advantages recomputed, the model trained."""

    wrapper: RolloutBonus

    def __init__(self, wrapper: RolloutBonus):
        super().__init__(wrapper)
        self.episode_intrinsic: deque[float] = deque(maxlen=100)
        self.step_logs: dict[str, float] = {}  # step mode: what the wrapper's last model update reported
        self._running: np.ndarray | None = None
        self.log_path: Path | None = None
        self.log_every = 1
        self._log_rows: list[dict[str, float]] = []  # rollouts not yet written, and their bonuses
        self._log_bonuses: list[np.ndarray] = []
        self._log_written = 0

    def set_log(self, path: str | Path, keep_until: int | None = None, every: int = 1) -> None:
        """Also append the values of each rollout (step mode: each window) and its bonuses' spread to ``path``
        as JSON lines; ``keep_until`` (a resumed run's checkpoint step) first drops the rows written after it.

        With ``every`` > 1, rollouts shorter than that many transitions (A2C's 5 steps per env) share a row:
        one per ``every`` transitions or more, its values the means over its rollouts (``rollouts`` says how
        many), its percentiles over all their bonuses. :meth:`flush_log` writes a partial row."""
        if int(every) < 1:
            raise ValueError(f"log rows need every >= 1 transitions, got {every}")
        self.log_path, self.log_every = Path(path), int(every)
        self._log_rows.clear()
        self._log_bonuses.clear()
        self._log_written = 0  # the step of the last row written: the next comes `every` transitions later
        if keep_until is not None and self.log_path.is_file():
            kept = []
            for line in self.log_path.read_text().splitlines():
                try:
                    steps = int(json.loads(line)["timesteps"])
                except (ValueError, KeyError, TypeError):  # a line cut short by a crash
                    continue
                if steps <= keep_until:
                    kept.append(line)
                    self._log_written = max(self._log_written, steps)
            atomic_write_text(self.log_path, "".join(f"{line}\n" for line in kept))

    def _write_log(self, logged: dict[str, float], bonus: np.ndarray | None) -> None:
        if self.log_path is None:
            return
        self._log_rows.append(dict(logged))
        if bonus is not None and bonus.size:
            self._log_bonuses.append(np.asarray(bonus, dtype=np.float64).ravel())
        if self.num_timesteps - self._log_written >= self.log_every:
            self.flush_log()

    def flush_log(self) -> None:
        """Write the rollouts logged since the last row as one row (nothing if there are none)."""
        if self.log_path is None or not self._log_rows:
            return
        row: dict[str, float] = {"timesteps": int(self.num_timesteps), "rollouts": len(self._log_rows)}
        for key in dict.fromkeys(key for logged in self._log_rows for key in logged):
            row[key] = float(np.mean([logged[key] for logged in self._log_rows if key in logged]))
        if self._log_bonuses:
            bonus = np.concatenate(self._log_bonuses)
            low, median, high = np.percentile(bonus, [5, 50, 95])
            row.update(bonus_p5=float(low), bonus_median=float(median), bonus_p95=float(high),
                       bonus_max=float(bonus.max()))
        with open(self.log_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        self._log_rows.clear()
        self._log_bonuses.clear()
        self._log_written = int(self.num_timesteps)

    def _on_training_end(self) -> None:
        self.flush_log()

    def _init_callback(self) -> None:
        super()._init_callback()
        if self.wrapper.mode == "rollout" and not hasattr(self.model, "rollout_buffer"):
            raise TypeError(
                f"{self.wrapper.state_name}'s callback needs an on-policy agent with a rollout buffer (PPO, TRPO, "
                f"A2C), got {type(self.model).__name__}; for off-policy agents build the wrapper with mode='step'"
            )

    def _on_step(self) -> bool:
        if self.step_logs:
            for key, value in self.step_logs.items():
                self.logger.record(key, value)
            self._write_log(self.step_logs, None)
            self.step_logs.clear()
            if self.episode_intrinsic:
                self.logger.record("rollout/ep_intrinsic_mean", float(np.mean(self.episode_intrinsic)))
        return True

    def _on_rollout_end(self) -> None:
        if self.wrapper.mode == "step":  # the bonus is already in the rewards the agent stored
            return
        wrapper, buffer = self.wrapper, self.model.rollout_buffer
        inputs, targets, dones = wrapper.take_rollout()
        steps, n_envs = buffer.rewards.shape
        if inputs.shape[:2] != (steps, n_envs):
            raise RuntimeError(
                f"{wrapper.state_name} recorded {inputs.shape[0]} steps x {inputs.shape[1]} envs in this rollout, "
                f"but the rollout buffer holds {steps} x {n_envs}: is the {wrapper.state_name} wrapper inside the "
                f"model's env?"
            )
        check_env_rewards(wrapper.state_name, buffer.rewards, "this rollout")
        flat_in, flat_out = inputs.reshape(steps * n_envs, -1), targets.reshape(steps * n_envs, -1)
        flat_bonus, logged = wrapper.compute_bonus(flat_in, flat_out)
        check_finite_bonus(wrapper, flat_bonus)
        bonus = flat_bonus.reshape(steps, n_envs)
        add_bonus_to_rollout(buffer, bonus, dones[-1])
        self.track_episodes(bonus, dones)
        logged.update(wrapper.rollout_learnt(flat_in, flat_out))
        for key, value in logged.items():
            self.logger.record(key, value)
        # every transition's bonus, as a TensorBoard histogram (the other outputs skip tensors)
        self.logger.record(f"{wrapper.log_prefix}/bonus", torch.as_tensor(flat_bonus, dtype=torch.float32),
                           exclude=("stdout", "log", "json", "csv"))
        self._write_log(logged, flat_bonus)
        if self.episode_intrinsic:
            self.logger.record("rollout/ep_intrinsic_mean", float(np.mean(self.episode_intrinsic)))

    def track_episodes(self, bonus: np.ndarray, dones: np.ndarray) -> None:
        """Add (steps, n_envs) bonuses to each env's running intrinsic return; keep it when its episode ends."""
        if self._running is None or len(self._running) != bonus.shape[1]:
            self._running = np.zeros(bonus.shape[1])
        cumulative = np.cumsum(bonus, axis=0, dtype=np.float64)
        counted = np.zeros(bonus.shape[1])  # each env's cumulative bonus at its last episode end in this rollout
        for t, i in np.argwhere(dones):  # in step order, then env order
            self.episode_intrinsic.append(float(self._running[i] + cumulative[t, i] - counted[i]))
            self._running[i], counted[i] = 0.0, cumulative[t, i]
        self._running += cumulative[-1] - counted

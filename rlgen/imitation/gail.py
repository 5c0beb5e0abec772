"""GAIL: generative adversarial imitation learning (Ho & Ermon 2016) as an SB3 VecEnv wrapper.

The wrapper replaces the env's reward with the reward of a :class:`~rlgen.imitation.Discriminator`
trained to tell the expert's (s, a) pairs from the policy's, so any SB3 agent learns to imitate the
demonstrations. The env's own reward stays in ``info["env_reward"]``, and SB3's ``rollout/ep_rew_mean``
(from the Monitor inside the stack) stays the true env return.

**When the reward is computed.** With an on-policy agent that attached :attr:`GAIL.callback` (PPO, TRPO, A2C,
as ``rlgen train`` does), the discriminator's rewards of a whole rollout are computed in one batch at its end,
the discriminator being fixed within a rollout anyway: the wrapper hands the agent 0 at each step and the
callback adds the rewards into the rollout buffer and recomputes its returns and advantages, as a rollout bonus
does. A VecNormalize between the wrapper and the agent (rlgen's stack) is replayed over the rollout with the
true rewards first, so its reward statistics and every normalised reward are what per-step rewards would have
made them. With a forward pass per env step, GAIL's own code had taken 0.083 of a one-env PPO run's time on
Hopper-v5 (benchmarks/results/throughput.md, its gail section, measured before and after). Anything else (a
hand-driven loop, an off-policy agent, another wrapper between this one and the agent that changes step
rewards, a VecNormalize with its own ``step_wait``, a discriminator with spectral norm) gets the reward at step
time, as before; ``defer_rewards=False`` asks for that always. A run stopped
inside a rollout has its VecNormalize replayed over the steps it took; a callback that saves the VecNormalize at
a step inside a rollout saves the statistics of the zeros handed out so far. A rollout's steps are kept as they
come and made into transitions in one batch at its end, before a state is saved, or, for a ``learn()`` an
exception stopped inside a rollout, when a callback is next attached or the wrapper reset (the VecNormalize then
keeps the statistics of the zeros handed out: nothing replays them).

**The discriminator's schedule** is set in policy transitions and Adam steps, not in rollouts: ``disc_steps``
Adam steps (1) per ``disc_transitions`` policy transitions (2,048), each on a minibatch of ``batch_size``
policy transitions (default: ``disc_transitions``) against as many expert samples. The steps are taken at the
end of each rollout (the wrapper's callback tells it when one ends), on the transitions collected since the
last steps (the latest ``batch_size`` if fewer came since), so every reward of a rollout comes from one fixed
discriminator, the one from before the rollout's update (as OpenAI baselines and the imitation library do; the
GAIL paper's Algorithm 1 scores a rollout after updating the discriminator on it). A rollout of 16,384
transitions gets 8 steps, each on a fresh eighth of it (a random permutation of the rollout cut into minibatches); one of 2,048 gets 1 step on all of
it; rollouts of 512 take theirs every fourth rollout, on the latest 2,048 transitions. What a rollout owes in
fractions of a step carries over to the next (and is saved with the wrapper's state). Why: the original takes
one full-batch step per policy iteration, which ties the discriminator's pace to the rollout size, so a
learner collecting 8 envs x 2,048 steps per rollout gave it 8 times fewer steps per transition than one
collecting 2,048. The defaults keep what rlgen did at its default layout of 2,048-transition rollouts (one
step on all of the rollout's transitions against as many expert samples, the same random draws) and take
that pace to every other layout. Without the callback (a hand-driven loop, or an agent not given
``callback=gail.callback``) the wrapper sees no rollouts: it then takes its steps at step time, every
``disc_transitions`` transitions, after that step's reward.

**Absorbing states** (``absorbing=True``; Kostrikov et al. 2019, "Discriminator-Actor-Critic"). An episode
that ends early (Hopper falls) simply stops: with ``-log(1 - D) > 0`` every step lived is a bonus, so the
learner is pushed to survive whatever the expert did, and with ``log D < 0`` it is pushed to die early. DAC
lets a terminal transition lead to an absorbing state that loops on itself, and has the discriminator learn
the absorbing state's reward like any other: the expert's demos show how often the expert ends in it. What
is implemented, without changing the policy's observation:

- the discriminator gets one more input, an absorbing flag (:class:`~rlgen.imitation.Discriminator`'s
  ``absorbing``): 0 on every real transition, 1 on an absorbing-to-absorbing transition, whose other inputs
  carry nothing;
- each expert pair that ends a terminated demo episode (``Trajectory.terminated``; with subsampling, only
  those the subsampling keeps, as for every other pair) is paired with one absorbing transition on the
  expert side, and each terminal transition of the policy (``done`` without ``TimeLimit.truncated``) with one
  on the policy side, so the discriminator sees absorbing transitions about as often in both as episodes end;
- the policy's terminal step gets, on top of its own reward, the discounted return of staying in the
  absorbing state for ever: ``gamma / (1 - gamma) x r_abs``, ``r_abs`` the current discriminator's reward of
  an absorbing transition (the first absorbing step comes one step after the terminal one, hence the
  ``gamma``), ``gamma`` the agent's discount (read by the callback from the agent; ``gamma`` sets it). The
  agent's episode still ends there (SB3 does not bootstrap past it), so the term stands in for the value of
  the absorbing state, which DAC's off-policy critic learns instead.

Limits: the term is computed with the discriminator in force during the rollout, not re-evaluated later;
time-limit ends are not absorbing (SB3 already bootstraps them); a run whose expert never terminates gets an
absorbing state the discriminator learns to call "not expert", so dying costs the rewards it forgoes, as
before, and nothing more (with ``log_d`` or ``airl`` rewards it is then penalised, the fix DAC aims at). Off
by default: it changes the discriminator's inputs (a state saved without it does not load with it), and
rlgen's committed imitation results were trained without it.

The reward normalisation goes outermost (a VecNormalize *outside* this wrapper): the pace of the
discriminator relative to the policy, and the scale of the reward, decide whether GAIL learns
(benchmarks/results/gail-pilot.md and imitation.md compare settings). The callback drives the schedule and
logs ``gail/*`` to TensorBoard:

>>> from stable_baselines3 import PPO                                   # doctest: +SKIP
>>> from stable_baselines3.common.env_util import make_vec_env          # doctest: +SKIP
>>> from stable_baselines3.common.vec_env import VecNormalize          # doctest: +SKIP
>>> gail = GAIL(make_vec_env("Hopper-v5"), load_demos("hopper.npz", subsample=20))   # doctest: +SKIP
>>> PPO("MlpPolicy", VecNormalize(gail)).learn(200_000, callback=gail.callback)      # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from rlgen.deprecation import renamed
from rlgen.imitation.demos import Trajectories
from rlgen.imitation.discriminator import REWARD_KINDS, Discriminator
from rlgen.reward_wrapper import (
    RewardWrapper,
    TransitionRecorder,
    TransitionRing,
    WrapperCallback,
    add_bonus_to_rollout,
    normalises_observations,
)


class GAIL(RewardWrapper):
    """Replaces the env reward by the discriminator reward and trains the discriminator on the way.

    :param venv: a VecEnv with a Box observation space and Box or Discrete actions (Monitor inside, so
        SB3 reports the true env return).
    :param demos: the expert's :class:`~rlgen.imitation.demos.Trajectories` (subsampled or not).
    :param disc_steps: discriminator Adam steps per ``disc_transitions`` policy transitions (1: the original
        and the calibrated choice). ``disc_updates`` is its old name (deprecated).
    :param disc_transitions: policy transitions per ``disc_steps`` steps (2,048: rlgen's rollout size, where
        one full-batch step per rollout is the original's pace). ``update_every`` is its old name (deprecated);
        it no longer needs to be a multiple of the rollout size.
    :param batch_size: policy transitions per Adam step, against as many expert samples (all of them if
        there are fewer); None: ``disc_transitions``. A step whose pool of policy transitions is no larger
        takes all of it, as the original's full-batch step did.
    :param reward: ``gail`` (-log(1 - D), default; tasks that end early on failure), ``log_d`` (log D;
        tasks that end on success) or ``airl`` (the logit).
    :param absorbing: absorbing states for episodes that terminate (see the module docstring); off by default.
    :param gamma: the agent's discount, for the absorbing state's return; None: the agent's own, read by the
        callback (0.99 without one).
    :param defer_rewards: compute a rollout's rewards in one batch at its end when the agent allows it (see the
        module docstring; the same rewards without a forward pass per env step); False: always at step time.
    :param seed: seed of the discriminator's initialisation, of the expert and minibatch sampling and of the
        discriminator's input noise and gradient penalty (none of them draws from torch's global RNG).
    :param discriminator_kwargs: the rest go to :class:`~rlgen.imitation.Discriminator` (hidden,
        activation, use_next_obs, entropy_bonus, label_smoothing, gradient_penalty, penalty_kind,
        spectral_norm, input_noise, learning_rate, clip_input).
    """

    state_file = "gail.pt"
    settings_go_to = (Discriminator,)
    state_name = "GAIL"
    log_prefix = "gail"
    callback: GAILCallback

    def __init__(
        self,
        venv: VecEnv,
        demos: Trajectories,
        *,
        disc_steps: int = 1,
        disc_transitions: int = 2048,
        batch_size: int | None = None,
        reward: str = "gail",
        absorbing: bool = False,
        gamma: float | None = None,
        defer_rewards: bool = True,
        seed: int = 0,
        update_every: int | None = None,
        disc_updates: int | None = None,
        **discriminator_kwargs: Any,
    ):
        disc_transitions = renamed("GAIL", "update_every", update_every, "disc_transitions", disc_transitions)
        disc_steps = renamed("GAIL", "disc_updates", disc_updates, "disc_steps", disc_steps)
        _refuse_normalised_observations(venv)  # before the base class's warning about the same
        super().__init__(venv)
        obs_space, act_space = venv.observation_space, venv.action_space
        if not isinstance(obs_space, spaces.Box) or not isinstance(act_space, (spaces.Box, spaces.Discrete)):
            raise TypeError(
                f"GAIL needs a Box observation space and Box or Discrete actions, got "
                f"{type(obs_space).__name__} observations and {type(act_space).__name__} actions"
            )
        if not isinstance(demos, Trajectories):
            raise TypeError(f"demos must be rlgen.imitation.demos.Trajectories (see load_demos), "
                            f"got {type(demos).__name__}")
        demos.check_compatible(_env_id(venv), obs_space, act_space)
        if reward not in REWARD_KINDS:
            raise ValueError(f"unknown GAIL reward {reward!r}; choose one of: {', '.join(REWARD_KINDS)}")
        for name, value in (("disc_transitions", disc_transitions), ("disc_steps", disc_steps)):
            if not _positive_int(value):
                raise ValueError(f"GAIL {name} must be a positive integer, got {value!r}")
        if batch_size is not None and not _positive_int(batch_size):
            raise ValueError(f"GAIL batch_size must be a positive integer or None, got {batch_size!r}")
        for name, flag in (("absorbing", absorbing), ("defer_rewards", defer_rewards)):
            if not isinstance(flag, bool):
                raise ValueError(f"GAIL {name} must be true or false, got {flag!r}")
        if gamma is not None and not (isinstance(gamma, (int, float)) and 0 <= gamma < 1):
            raise ValueError(f"GAIL gamma must be in [0, 1) or None (the agent's), got {gamma!r}")
        self.disc_steps, self.disc_transitions, self.batch_size = disc_steps, disc_transitions, batch_size
        self.reward_kind = reward
        self.absorbing, self.gamma = absorbing, gamma
        self.agent_gamma: float | None = None
        """The discount of the agent the callback is attached to (used when ``gamma`` is None)."""
        self.demos = demos

        with torch.random.fork_rng():  # seed the initialisation without moving the caller's RNG
            torch.manual_seed(seed)
            self.discriminator = Discriminator(obs_space, act_space, absorbing=absorbing, **discriminator_kwargs)
        self.generator = torch.Generator().manual_seed(seed)
        self.discriminator.generator = self.generator  # its input noise and gradient penalty: seeded, saved
        obs, acts, next_obs, ends = demos.transitions()
        expert = (torch.as_tensor(obs.reshape(len(obs), -1), dtype=torch.float32),
                  torch.as_tensor(acts if self.discriminator.discrete_actions else acts.astype(np.float32)),
                  torch.as_tensor(next_obs.reshape(len(next_obs), -1), dtype=torch.float32))
        self.discriminator.set_expert_statistics(*expert)
        # with absorbing states: one absorbing transition per terminal pair of the (subsampled) demos
        self.expert: tuple[torch.Tensor, ...] = _with_absorbing(self.discriminator, expert, int(ends.sum()),
                                                                self.absorbing)

        self.obs_dim = int(np.prod(obs_space.shape))
        act_dtype = np.dtype(np.int64) if isinstance(act_space, spaces.Discrete) else np.dtype(np.float32)
        act_shape = tuple(act_space.shape or ())
        capacity = max(disc_transitions, batch_size or 0)  # grows to hold a longer rollout
        self.buffer = TransitionRing(capacity, self.obs_dim, act_shape, owner=self.state_name, act_dtype=act_dtype)
        self.row_data: dict[str, np.ndarray] = {}
        """Arrays of one entry per row of :attr:`buffer`, kept in step with it (grown, saved as
        ``buffer_<name>`` and loaded with it): ``terminal`` with absorbing states, InfoGAIL's ``codes``."""
        if self.absorbing:
            self.row_data["terminal"] = np.zeros(capacity, dtype=bool)
        self.recorder = TransitionRecorder(self.num_envs, self.state_name, act_shape, act_dtype, per_transition=True)
        self.n_updates = 0
        """Rounds of discriminator steps so far (``gail/disc_updates``); :attr:`n_disc_steps` counts the steps."""
        self.n_disc_steps = 0
        self.last_stats: dict[str, float] = {}
        self.callback = GAILCallback(self)
        self._since_round = 0  # policy transitions since the last round of steps
        self._credit = 0  # policy transitions x disc_steps whose steps are not taken yet
        self.rounds_at_rollout_end = False
        """Whether rounds of discriminator steps wait for :meth:`end_rollout` (set while an agent's callback is
        attached; a hand-written loop may set it and call :meth:`end_rollout` at its own rollouts' ends)
        rather than come every ``disc_transitions`` transitions at step time."""
        self._absorbing_reward = self.discriminator.absorbing_reward(reward) if absorbing else 0.0
        self._reward_sum, self._reward_count = 0.0, 0
        self._fingerprint: str | None = None
        self.defer_rewards = defer_rewards and self.can_defer_rewards
        self.deferring = False
        """Whether the rewards of the rollout under way are left to its end (set by the callback for each
        rollout it can do so)."""
        self._rollout_dones: list[np.ndarray] = []

    # -- stepping --------------------------------------------------------------------------------
    @property
    def num_transitions(self) -> int:
        """Transitions seen so far, summed over the envs."""
        return self.recorder.steps * self.num_envs

    @property
    def discount(self) -> float:
        """The discount of the absorbing state's return: ``gamma``, else the agent's, else 0.99."""
        if self.gamma is not None:
            return float(self.gamma)
        return self.agent_gamma if self.agent_gamma is not None else 0.99

    @property
    def absorbing_return(self) -> float:
        """What a terminal step gets on top of its own reward: ``gamma / (1 - gamma) x r_abs`` (0 without
        absorbing states)."""
        if not self.absorbing:
            return 0.0
        return self.discount / (1.0 - self.discount) * self._absorbing_reward

    def reset(self) -> np.ndarray:
        self.end_deferral()  # a rollout a raised exception left unfinished: its steps keep their s
        obs = self.venv.reset()
        self.recorder.on_reset(obs)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self.recorder.on_actions(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, env_rewards, dones, infos = self.venv.step_wait()
        for info, env_reward in zip(infos, env_rewards.tolist(), strict=True):
            info["env_reward"] = env_reward
        if self.deferring:  # the callback adds this step's reward at the rollout's end; its rows are made then
            self.recorder.stage(obs, dones, infos)
            return obs, np.zeros(self.num_envs, dtype=np.float32), dones, infos
        s, a, next_obs = self.recorder.on_step(obs, dones, infos)
        terminal = None
        if self.absorbing:
            terminal = np.array([bool(done) and not info.get("TimeLimit.truncated", False)
                                 for done, info in zip(dones, infos, strict=True)])
        rewards = self.discriminator.step_reward(s, a, next_obs, kind=self.reward_kind)
        if terminal is not None:
            rewards[terminal] += np.float32(self.absorbing_return)
        self._check_rewards(rewards)
        rows = self._record(s, a, next_obs, terminal)
        self._recorded(s, a, rows)
        # without an agent's rollouts: a round every disc_transitions transitions, after this step's reward
        if not self.rounds_at_rollout_end and self._since_round >= self.disc_transitions:
            self.end_rollout()
        return obs, rewards, dones, infos

    def end_deferral(self) -> None:
        """Leave a deferred rollout that will not reach its end (``learn()`` stopped by an exception, so its callback
        never saw the end): its steps go into the buffer, as step-time recording had put them, no reward of theirs
        is owed any more, and later steps get their rewards at step time until a callback defers again (at a
        rollout's start). Called by :meth:`reset` and when a callback is attached."""
        self._take_staged()
        self._rollout_dones, self.deferring = [], False

    def _take_staged(self) -> None:
        """Move the steps a deferred rollout staged (:meth:`TransitionRecorder.stage`) into the buffer, their dones
        into the rollout's: before the rollout's rewards, and before the state is saved."""
        if not self.recorder.staged_steps:
            return
        s, a, next_obs, dones, truncated = self.recorder.take_staged()
        terminal = (dones & ~truncated).reshape(-1) if self.absorbing else None
        start = 0
        while start < len(s):  # in runs of steps that fit, so the ring grows (and evicts) as step by step it would
            fit = (self.buffer.capacity - self._since_round) // self.num_envs
            part = slice(start, start + max(fit, 1) * self.num_envs)
            rows = self._record(s[part], a[part], next_obs[part], None if terminal is None else terminal[part])
            self._recorded(s[part], a[part], rows)
            start = part.stop
        self._rollout_dones.extend(dones)

    def _record(self, s: np.ndarray, a: np.ndarray, next_obs: np.ndarray, terminal: np.ndarray | None
                ) -> slice | np.ndarray:
        """Add transitions (a step's, or a deferred rollout's) to the buffer (grown first if the transitions since
        the last round would not fit); returns the rows they went to (a slice unless the ring wrapped around)."""
        n = len(s)
        if self._since_round + n > self.buffer.capacity:
            self._grow_buffer(max(2 * self.buffer.capacity, self._since_round + n))
        first = self.buffer.cursor
        rows = (slice(first, first + n) if first + n <= self.buffer.capacity
                else (first + np.arange(n)) % self.buffer.capacity)
        self.buffer.add(s, a, next_obs)
        if terminal is not None:
            self.row_data["terminal"][rows] = terminal
        self._since_round += n
        self._credit += n * self.disc_steps
        return rows

    def _recorded(self, obs: np.ndarray, acts: np.ndarray, rows: slice | np.ndarray) -> None:
        """Called with each step's transitions and their buffer rows, before a round that step may end (with a
        deferred rollout's, all of them at once)."""

    def _grow_buffer(self, capacity: int) -> None:
        order = self.buffer.grow(capacity)
        for name, values in self.row_data.items():
            grown = np.zeros(capacity, dtype=values.dtype)
            grown[:len(order)] = values[order]
            self.row_data[name] = grown

    def _check_rewards(self, rewards: np.ndarray) -> None:
        """Refuse non-finite rewards; count the rest for ``gail/reward_mean``."""
        total = float(rewards.sum())
        if not math.isfinite(total) and not np.isfinite(rewards).all():  # the sum: one check for the usual case
            raise FloatingPointError(f"GAIL: non-finite discriminator reward at transition {self.num_transitions}")
        self._reward_sum += total
        self._reward_count += rewards.size

    @property
    def can_defer_rewards(self) -> bool:
        """Whether this wrapper's rewards can wait for the rollout's end: its discriminator's forward pass changes
        nothing (not so with spectral norm, whose every training-mode pass takes a power-iteration step), and
        no reward of a subclass's own comes at step time (InfoGAIL's does)."""
        return self.discriminator._numpy_net is not None

    def take_rollout_rewards(self) -> tuple[np.ndarray, np.ndarray]:
        """The discriminator's rewards of the steps since the rollout began (``deferring``), computed in one batch
        with the discriminator in force during it, shaped (steps, n_envs), and those steps' dones; ends the
        deferral."""
        self._take_staged()
        dones = np.array(self._rollout_dones, dtype=bool).reshape(-1, self.num_envs)
        self._rollout_dones, self.deferring = [], False
        n = dones.size
        order = self.buffer.order()
        rows = order[len(order) - n:]
        if n:
            rewards = self.discriminator.reward(self.buffer.obs[rows], self.buffer.actions[rows],
                                                self.buffer.next_obs[rows], kind=self.reward_kind)
        else:
            rewards = np.zeros(0, dtype=np.float32)
        if self.absorbing:
            rewards[self.row_data["terminal"][rows]] += np.float32(self.absorbing_return)
        self._check_rewards(rewards)
        return rewards.reshape(dones.shape), dones

    def end_rollout(self) -> dict[str, float] | None:
        """A rollout ended: take the discriminator steps its transitions (and what earlier ones left) are owed,
        on the transitions since the last round (at least the latest ``batch_size``). Returns the last step's
        statistics, or None when no step is owed yet."""
        n_steps = self._credit // self.disc_transitions
        if n_steps == 0:
            return None
        self._credit -= n_steps * self.disc_transitions
        batch = self.batch_size or self.disc_transitions
        pool = self.buffer.order()[-max(self._since_round, batch):]
        self._since_round = 0
        return self.train_discriminator(n_steps, pool)

    # -- the discriminator -----------------------------------------------------------------------
    def _sample(self, n_rows: int, size: int) -> torch.Tensor:
        if size >= n_rows:
            return torch.arange(n_rows)
        return torch.randperm(n_rows, generator=self.generator)[:size]

    def _policy_pool(self, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        """The policy transitions of buffer ``rows`` (and an absorbing transition for each terminal one)."""
        pool = tuple(torch.as_tensor(part[rows]) for part in (self.buffer.obs, self.buffer.actions,
                                                               self.buffer.next_obs))
        if not self.absorbing:
            return pool
        return _with_absorbing(self.discriminator, pool, int(self.row_data["terminal"][rows].sum()), True)

    def train_discriminator(self, n_steps: int | None = None, rows: np.ndarray | None = None) -> dict[str, float]:
        """One round: ``n_steps`` (default ``disc_steps``) Adam steps on minibatches of ``batch_size`` policy
        transitions from buffer ``rows`` (default: the latest ``max(disc_transitions, batch_size)``) against
        as many expert samples. A pool no larger than ``batch_size`` is taken whole at every step (with the
        absorbing transitions of its terminal ones); a larger one is cut into fresh minibatches along a random
        permutation (a new one when it runs out)."""
        n_steps = self.disc_steps if n_steps is None else n_steps
        batch = self.batch_size or self.disc_transitions
        if rows is None:
            rows = self.buffer.order()[-max(self.disc_transitions, batch):]
        policy = self._policy_pool(rows)
        n_policy, n_expert = len(policy[0]), len(self.expert[0])
        stats: dict[str, float] = {}
        perm, used = torch.arange(0), n_policy
        for _ in range(n_steps):
            if batch >= len(rows):  # the whole pool (absorbing transitions included), against as many expert samples
                policy_idx = torch.arange(n_policy)
                expert_idx = self._sample(n_expert, n_policy)
            else:
                if used + batch > n_policy:
                    perm, used = torch.randperm(n_policy, generator=self.generator), 0
                policy_idx = perm[used:used + batch]
                used += batch
                expert_idx = self._sample(n_expert, batch)
            stats = self.discriminator.train_step(tuple(part[expert_idx] for part in self.expert),
                                                  tuple(part[policy_idx] for part in policy))
        self.n_updates += 1
        self.n_disc_steps += n_steps
        self.last_stats = stats
        if self.absorbing:
            self._absorbing_reward = self.discriminator.absorbing_reward(self.reward_kind)
        self._after_round(rows)
        return stats

    def _after_round(self, rows: np.ndarray) -> None:
        """Called after each round with the buffer rows it learnt from."""

    def take_reward_mean(self) -> float | None:
        """Mean discriminator reward handed out since the last call (None: no steps since)."""
        if self._reward_count == 0:
            return None
        mean = self._reward_sum / self._reward_count
        self._reward_sum, self._reward_count = 0.0, 0
        return mean

    def discriminator_reward(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None = None
                             ) -> np.ndarray:
        """The reward this wrapper would hand out for these transitions (raw observations; not terminal ones,
        which also get :attr:`absorbing_return`)."""
        return self.discriminator.reward(obs, acts, next_obs, kind=self.reward_kind)

    # -- saving ----------------------------------------------------------------------------------
    @property
    def demos_fingerprint(self) -> str:
        if self._fingerprint is None:
            offsets = ",".join(str(o) for o in self.demos.sample_offsets)
            self._fingerprint = f"{self.demos.fingerprint()}/every{self.demos.subsample}/{offsets}"
        return self._fingerprint

    def state_dict(self) -> dict[str, Any]:
        self._take_staged()  # saved inside a deferred rollout: its steps so far are in the buffer
        size = self.buffer.size
        return {"discriminator": self.discriminator.full_state_dict(), "buffer": self.buffer.state("acts"),
                **{f"buffer_{name}": torch.from_numpy(values[:size].copy()) for name, values in self.row_data.items()},
                "num_transitions": self.num_transitions, "since_update": self._since_round,
                "disc_credit": self._credit, "n_updates": self.n_updates, "n_disc_steps": self.n_disc_steps,
                "generator": self.generator.get_state(), "last_stats": dict(self.last_stats),
                "demos_fingerprint": self.demos_fingerprint}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output, or a state saved before the schedule counted in transitions
        (its round was every ``update_every`` transitions: what it owed is taken from its count since the last
        round)."""
        if state.get("demos_fingerprint") != self.demos_fingerprint:
            raise ValueError("the GAIL state was trained on other demonstrations (or another subsampling) "
                             "than the ones given now")
        try:
            self.discriminator.load_full_state_dict(state["discriminator"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ValueError(f"GAIL state does not fit this discriminator: {exc}".splitlines()[0]) from None
        self.recorder.discard_staged()  # steps staged before the load: the loaded state replaces them
        self._rollout_dones = []
        saved_rows = len(state["buffer"]["obs"])
        if saved_rows > self.buffer.capacity:  # a ring grown by long rollouts: every row comes back
            self._grow_buffer(saved_rows)
        order = self.buffer.load(state["buffer"])
        for name, values in self.row_data.items():
            values[:] = 0
            if f"buffer_{name}" in state:
                values[:len(order)] = state[f"buffer_{name}"].numpy()[order]
        self.recorder.steps = int(state["num_transitions"]) // self.num_envs
        self._since_round = int(state["since_update"])
        self._credit = int(state.get("disc_credit", self._since_round * self.disc_steps))
        self.n_updates = int(state["n_updates"])
        self.n_disc_steps = int(state.get("n_disc_steps", self.n_updates * self.disc_steps))
        self.generator.set_state(state["generator"])
        self.last_stats = {k: float(v) for k, v in state["last_stats"].items()}
        if self.absorbing:
            self._absorbing_reward = self.discriminator.absorbing_reward(self.reward_kind)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _with_absorbing(discriminator: Discriminator, batch: tuple[torch.Tensor, ...], n_absorbing: int,
                    absorbing: bool) -> tuple[torch.Tensor, ...]:
    """``batch`` (obs, acts, next_obs) as it is without absorbing states; with them, followed by ``n_absorbing``
    absorbing transitions and the per-row absorbing flag."""
    if not absorbing:
        return batch
    extra = [torch.as_tensor(part) for part in discriminator.absorbing_rows(n_absorbing)]
    flags = torch.cat([torch.zeros(len(batch[0]), dtype=torch.bool), extra[3]])
    return (*(torch.cat([part, add.to(part.dtype).reshape(-1, *part.shape[1:])])
              for part, add in zip(batch, extra[:3], strict=True)), flags)


def _replay_vec_normalize(normaliser: VecNormalize, rewards: np.ndarray, dones: np.ndarray,
                          start: tuple[np.ndarray, np.ndarray, np.ndarray, float]) -> np.ndarray:
    """SB3's VecNormalize reward path over a rollout of (steps, n_envs) ``rewards`` from its ``start`` state
    (returns, ret_rms mean, var, count), as its ``step_wait`` would have run it step by step: the discounted
    returns (reset at each done), ``ret_rms`` updated with each step's returns (while ``training``), each reward
    divided by the standard deviation after its step's update and clipped. The running statistics of every
    step come from the prefix sums of the returns merged with the start state (the update's parallel form, exact
    up to rounding), instead of one update per step. Leaves the VecNormalize where the last step would have."""
    returns0, mean0, var0, count0 = start
    steps, n = rewards.shape
    discounted = np.empty((steps, n))
    running = np.array(returns0, dtype=np.float64, copy=True)
    for t in range(steps):
        if normaliser.training:  # (a VecNormalize not training leaves its returns alone, but for the dones)
            running = running * normaliser.gamma + rewards[t]
            discounted[t] = running
        running[dones[t]] = 0
    if normaliser.training:
        counts = n * np.arange(1, steps + 1, dtype=np.float64)
        shifted = discounted - mean0  # about the start mean: sums of squares without cancellation
        batch_mean = np.cumsum(shifted.sum(axis=1)) / counts  # the prefix's mean, less mean0 (= the merge's delta)
        batch_var = np.maximum(np.cumsum(np.square(shifted).sum(axis=1)) / counts - np.square(batch_mean), 0.0)
        total = count0 + counts
        means = mean0 + batch_mean * counts / total
        variances = (var0 * count0 + batch_var * counts + np.square(batch_mean) * count0 * counts / total) / total
        normaliser.ret_rms.mean = np.asarray(means[-1], dtype=np.asarray(mean0).dtype).reshape(np.shape(mean0))
        normaliser.ret_rms.var = np.asarray(variances[-1], dtype=np.asarray(var0).dtype).reshape(np.shape(var0))
        normaliser.ret_rms.count = float(total[-1])
    else:
        variances = np.full(steps, float(var0))
    normaliser.returns = running
    out = rewards.astype(np.float64)
    if normaliser.norm_reward:
        out = np.clip(out / np.sqrt(variances[:, None] + normaliser.epsilon), -normaliser.clip_reward,
                      normaliser.clip_reward)
    return out.astype(np.float32)


def _refuse_normalised_observations(venv: VecEnv) -> None:
    """A VecNormalize that normalises observations beneath the wrapper would have the discriminator compare the
    learner's normalised observations with the expert's raw ones: refused, naming the order that works."""
    if normalises_observations(venv):
        raise ValueError("GAIL wraps a VecNormalize that normalises observations: the discriminator would "
                         "compare normalised learner observations with the raw expert demos; wrap GAIL in "
                         "it instead, VecNormalize(GAIL(venv, demos)) (norm_obs=False beneath is fine)")


def _env_id(venv: VecEnv) -> str | None:
    """The Gymnasium id of the first env, when it has one (a hand-made env may not)."""
    try:
        spec = venv.get_attr("spec", indices=[0])[0]
    except (AttributeError, IndexError):
        return None
    return getattr(spec, "id", None)


class GAILCallback(WrapperCallback):
    """Ends the wrapper's rounds of discriminator steps at each rollout's end, reads the agent's discount, and
    logs the discriminator's state: TensorBoard ``gail/*``."""

    def __init__(self, gail: GAIL):
        super().__init__(gail)
        self.gail = gail

    def _init_callback(self) -> None:
        super()._init_callback()
        self.gail.end_deferral()  # one an earlier learn() left (stopped by an exception) whatever this one does
        self.gail.rounds_at_rollout_end = True
        gamma = getattr(self.model, "gamma", None)
        self.gail.agent_gamma = float(gamma) if isinstance(gamma, (int, float)) else None
        self.normaliser: VecNormalize | None = None
        self.defer = self.gail.defer_rewards and self._reward_path_allows_deferral()
        self._normaliser_start: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None

    def _reward_path_allows_deferral(self) -> bool:
        """Whether the rewards can be added at the rollout's end: an agent with a rollout buffer, and between it
        and the wrapper nothing that changes step rewards but at most one VecNormalize (replayed then)."""
        if not isinstance(getattr(self.model, "rollout_buffer", None), RolloutBuffer):
            return False
        env = self.model.get_env()
        while env is not self.gail:
            if (isinstance(env, VecNormalize) and self.normaliser is None
                    and type(env).step_wait is VecNormalize.step_wait):  # SB3's reward path, which is replayed
                self.normaliser = env
            elif not (isinstance(env, RewardWrapper) and not env.changes_step_rewards):
                return False
            env = getattr(env, "venv", None)
            if env is None:  # the wrapper is not in the agent's env: its rewards reach no agent
                return False
        return True

    def _on_training_end(self) -> None:
        self.gail.rounds_at_rollout_end = False  # a later hand-driven loop gets step-time rounds again
        if self.gail.deferring:  # stopped mid-rollout (a callback said so): the VecNormalize's statistics as
            self._replayed(*self.gail.take_rollout_rewards())  # per-step rewards would have left them

    def _on_rollout_start(self) -> None:
        if not self.defer:
            return
        if self.normaliser is not None:  # its reward statistics before the rollout, to replay it from
            rms = self.normaliser.ret_rms
            self._normaliser_start = (self.normaliser.returns.copy(), np.copy(rms.mean), np.copy(rms.var),
                                      rms.count)
        self.gail.end_deferral()  # a rollout that never ended (learn() stopped by an exception)
        self.gail.deferring = True

    def _replayed(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """What the VecNormalize makes of the rollout's rewards, its reward statistics brought to where per-step
        rewards would have left them: SB3's own update and normalisation, in one pass over the rollout (a
        VecNormalize that overrides them: its own methods, step by step)."""
        normaliser, start = self.normaliser, self._normaliser_start
        if normaliser is None or start is None:
            return rewards
        if (type(normaliser)._update_reward is VecNormalize._update_reward
                and type(normaliser).normalize_reward is VecNormalize.normalize_reward
                and type(normaliser.ret_rms) is RunningMeanStd):
            return _replay_vec_normalize(normaliser, rewards, dones, start)
        normaliser.returns, normaliser.ret_rms.mean, normaliser.ret_rms.var, normaliser.ret_rms.count = (
            start[0].copy(), start[1], start[2], start[3])
        out = np.empty_like(rewards)
        for t in range(len(rewards)):
            if normaliser.training:
                normaliser._update_reward(rewards[t])
            out[t] = normaliser.normalize_reward(rewards[t])
            normaliser.returns[dones[t]] = 0
        return out

    def _on_rollout_end(self) -> None:
        if self.gail.deferring:
            buffer = self.model.rollout_buffer
            rewards, dones = self.gail.take_rollout_rewards()
            if rewards.shape != buffer.rewards.shape:
                raise RuntimeError(f"GAIL recorded {rewards.shape[0]} steps x {rewards.shape[1]} envs in this rollout, "
                                   f"but the rollout buffer holds {buffer.rewards.shape[0]} x {buffer.rewards.shape[1]}")
            # each step was handed 0 (normalised: 0), so adding the rewards gives what per-step rewards would have
            add_bonus_to_rollout(buffer, self._replayed(rewards, dones), dones[-1])
        self.gail.end_rollout()
        stats = self.gail.last_stats
        if stats:
            self.logger.record("gail/disc_loss", stats["loss"])
            self.logger.record("gail/disc_acc_expert", stats["acc_expert"])
            self.logger.record("gail/disc_acc_policy", stats["acc_policy"])
            self.logger.record("gail/disc_entropy", stats["entropy"])
        mean = self.gail.take_reward_mean()
        if mean is not None:
            self.logger.record("gail/reward_mean", mean)
        self.logger.record("gail/disc_updates", self.gail.n_updates)
        self.logger.record("gail/disc_steps", self.gail.n_disc_steps)
        if self.gail.absorbing:
            self.logger.record("gail/absorbing_return", self.gail.absorbing_return)

"""GAIL: generative adversarial imitation learning (Ho & Ermon 2016) as an SB3 VecEnv wrapper.

The wrapper replaces the env's reward with the reward of a :class:`~rlgen.imitation.Discriminator`
trained to tell the expert's (s, a) pairs from the policy's, so any SB3 agent learns to imitate the
demonstrations. The env's own reward stays in ``info["env_reward"]``, and SB3's ``rollout/ep_rew_mean``
(from the Monitor inside the stack) stays the true env return.

The discriminator reward is a cheap forward pass, so it is computed at step time. The wrapper keeps the
latest ``update_every`` policy transitions and, every ``update_every`` transitions, takes
``disc_updates`` Adam steps on them against expert samples. With ``update_every`` equal to the agent's
rollout size (n_steps x n_envs), every reward of a rollout comes from one fixed discriminator, as in
the original algorithm.

The defaults follow the original algorithm (one discriminator step per policy iteration; Ho & Ermon 2016),
with the reward normalised by a VecNormalize *outside* this wrapper: the pace of the discriminator relative to
the policy, and the scale of the reward, decide whether GAIL learns (benchmarks/results/gail-pilot.md and
imitation.md compare settings).

The reward normalisation goes outermost; the callback only logs ``gail/*`` to TensorBoard:

>>> from stable_baselines3 import PPO                                   # doctest: +SKIP
>>> from stable_baselines3.common.env_util import make_vec_env          # doctest: +SKIP
>>> from stable_baselines3.common.vec_env import VecNormalize          # doctest: +SKIP
>>> gail = GAIL(make_vec_env("Hopper-v5"), load_demos("hopper.npz", subsample=20))   # doctest: +SKIP
>>> PPO("MlpPolicy", VecNormalize(gail)).learn(200_000, callback=gail.callback)      # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from rlgen.imitation.demos import Trajectories
from rlgen.imitation.discriminator import REWARD_KINDS, Discriminator
from rlgen.reward_wrapper import RewardWrapper, TransitionRecorder, TransitionRing, WrapperCallback


class GAIL(RewardWrapper):
    """Replaces the env reward by the discriminator reward and trains the discriminator on the way.

    :param venv: a VecEnv with a Box observation space and Box or Discrete actions (Monitor inside, so
        SB3 reports the true env return).
    :param demos: the expert's :class:`~rlgen.imitation.demos.Trajectories` (subsampled or not).
    :param update_every: train the discriminator every this many transitions (summed over envs), on the
        latest ``update_every`` policy transitions. Make it the agent's rollout size n_steps x n_envs
        (or a multiple), so that each rollout's rewards come from one discriminator.
    :param disc_updates: Adam steps per update (1: the original and the calibrated choice).
    :param batch_size: expert and policy transitions per Adam step; None: all the latest policy
        transitions against as many expert transitions (all of them if there are fewer).
    :param reward: ``gail`` (-log(1 - D), default; tasks that end early on failure), ``log_d`` (log D;
        tasks that end on success) or ``airl`` (the logit).
    :param seed: seed of the discriminator's initialisation and of the expert sampling.
    :param discriminator_kwargs: the rest go to :class:`~rlgen.imitation.Discriminator` (hidden,
        activation, use_next_obs, entropy_bonus, label_smoothing, gradient_penalty, penalty_kind,
        spectral_norm, input_noise, learning_rate, clip_input).
    """

    state_file = "gail.pt"
    state_name = "GAIL"
    log_prefix = "gail"
    callback: GAILCallback

    def __init__(
        self,
        venv: VecEnv,
        demos: Trajectories,
        *,
        update_every: int = 2048,
        disc_updates: int = 1,
        batch_size: int | None = None,
        reward: str = "gail",
        seed: int = 0,
        **discriminator_kwargs: Any,
    ):
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
        for name, value in (("update_every", update_every), ("disc_updates", disc_updates)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GAIL {name} must be a positive integer, got {value!r}")
        if update_every < venv.num_envs:
            raise ValueError(f"GAIL update_every ({update_every}) must be at least the number of envs "
                             f"({venv.num_envs})")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"GAIL batch_size must be a positive integer or None, got {batch_size!r}")
        self.update_every, self.disc_updates, self.batch_size = update_every, disc_updates, batch_size
        self.reward_kind = reward
        self.demos = demos

        with torch.random.fork_rng():  # seed the initialisation without moving the caller's RNG
            torch.manual_seed(seed)
            self.discriminator = Discriminator(obs_space, act_space, **discriminator_kwargs)
        self.generator = torch.Generator().manual_seed(seed)
        obs, acts, next_obs, _ = demos.transitions()
        self.expert = (torch.as_tensor(obs.reshape(len(obs), -1), dtype=torch.float32),
                       torch.as_tensor(acts if self.discriminator.discrete_actions else acts.astype(np.float32)),
                       torch.as_tensor(next_obs.reshape(len(next_obs), -1), dtype=torch.float32))
        self.discriminator.set_expert_statistics(*self.expert)

        self.obs_dim = int(np.prod(obs_space.shape))
        act_dtype = np.dtype(np.int64) if isinstance(act_space, spaces.Discrete) else np.dtype(np.float32)
        act_shape = tuple(act_space.shape or ())
        self.buffer = TransitionRing(update_every, self.obs_dim, act_shape, owner=self.state_name, act_dtype=act_dtype)
        self.recorder = TransitionRecorder(self.num_envs, self.state_name, act_shape, act_dtype, per_transition=True)
        self.n_updates = 0
        self.last_stats: dict[str, float] = {}
        self.callback = GAILCallback(self)
        self._since_update = 0
        self._reward_sum, self._reward_count = 0.0, 0
        self._fingerprint: str | None = None

    # -- stepping --------------------------------------------------------------------------------
    @property
    def num_transitions(self) -> int:
        """Transitions seen so far, summed over the envs."""
        return self.recorder.steps * self.num_envs

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self.recorder.on_reset(obs)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self.recorder.on_actions(actions)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, env_rewards, dones, infos = self.venv.step_wait()
        s, a, next_obs = self.recorder.on_step(obs, dones, infos)
        rewards = self.discriminator.reward(s, a, next_obs, kind=self.reward_kind)
        if not np.isfinite(rewards).all():
            raise FloatingPointError(f"GAIL: non-finite discriminator reward at transition {self.num_transitions}")
        for i, info in enumerate(infos):
            info["env_reward"] = float(env_rewards[i])
        self.buffer.add(s, a, next_obs)
        self._since_update += self.num_envs
        self._reward_sum += float(rewards.sum())
        self._reward_count += len(rewards)
        # after this step's reward: the rewards of the interval that just ended all came from one model
        if self._since_update >= self.update_every:
            self._since_update = 0
            self.train_discriminator()
        return obs, rewards, dones, infos

    # -- the discriminator -----------------------------------------------------------------------
    def _sample(self, n_rows: int, size: int) -> torch.Tensor:
        if size >= n_rows:
            return torch.arange(n_rows)
        return torch.randperm(n_rows, generator=self.generator)[:size]

    def train_discriminator(self) -> dict[str, float]:
        """``disc_updates`` Adam steps on the latest policy transitions against expert samples."""
        obs, acts, next_obs = (torch.as_tensor(a) for a in self.buffer.contents())
        n_expert = len(self.expert[0])
        stats: dict[str, float] = {}
        for _ in range(self.disc_updates):
            if self.batch_size is None:
                policy_idx = torch.arange(len(obs))
                expert_idx = self._sample(n_expert, len(obs))
            else:
                policy_idx = torch.randint(len(obs), (self.batch_size,), generator=self.generator)
                expert_idx = torch.randint(n_expert, (self.batch_size,), generator=self.generator)
            expert = tuple(part[expert_idx] for part in self.expert)
            policy = (obs[policy_idx], acts[policy_idx], next_obs[policy_idx])
            stats = self.discriminator.train_step(expert, policy)
        self.n_updates += 1
        self.last_stats = stats
        return stats

    def take_reward_mean(self) -> float | None:
        """Mean discriminator reward handed out since the last call (None: no steps since)."""
        if self._reward_count == 0:
            return None
        mean = self._reward_sum / self._reward_count
        self._reward_sum, self._reward_count = 0.0, 0
        return mean

    def discriminator_reward(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None = None
                             ) -> np.ndarray:
        """The reward this wrapper would hand out for these transitions (raw observations)."""
        return self.discriminator.reward(obs, acts, next_obs, kind=self.reward_kind)

    # -- saving ----------------------------------------------------------------------------------
    @property
    def demos_fingerprint(self) -> str:
        if self._fingerprint is None:
            offsets = ",".join(str(o) for o in self.demos.sample_offsets)
            self._fingerprint = f"{self.demos.fingerprint()}/every{self.demos.subsample}/{offsets}"
        return self._fingerprint

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.full_state_dict(), "buffer": self.buffer.state("acts"),
                "num_transitions": self.num_transitions, "since_update": self._since_update,
                "n_updates": self.n_updates, "generator": self.generator.get_state(),
                "last_stats": dict(self.last_stats), "demos_fingerprint": self.demos_fingerprint}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("demos_fingerprint") != self.demos_fingerprint:
            raise ValueError("the GAIL state was trained on other demonstrations (or another subsampling) "
                             "than the ones given now")
        try:
            self.discriminator.load_full_state_dict(state["discriminator"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ValueError(f"GAIL state does not fit this discriminator: {exc}".splitlines()[0]) from None
        self.buffer.load(state["buffer"])
        self.recorder.steps = int(state["num_transitions"]) // self.num_envs
        self._since_update = int(state["since_update"])
        self.n_updates = int(state["n_updates"])
        self.generator.set_state(state["generator"])
        self.last_stats = {k: float(v) for k, v in state["last_stats"].items()}



def _env_id(venv: VecEnv) -> str | None:
    """The Gymnasium id of the first env, when it has one (a hand-made env may not)."""
    try:
        spec = venv.get_attr("spec", indices=[0])[0]
    except (AttributeError, IndexError):
        return None
    return getattr(spec, "id", None)


class GAILCallback(WrapperCallback):
    """Logs the discriminator's state at each rollout's end: TensorBoard ``gail/*``. GAIL's reward does not
    depend on it."""

    def __init__(self, gail: GAIL):
        super().__init__(gail)
        self.gail = gail

    def _init_callback(self) -> None:
        super()._init_callback()
        n_steps = getattr(self.model, "n_steps", None)
        if n_steps is None:
            return
        rollout = int(n_steps) * self.model.n_envs
        if self.gail.update_every % rollout:
            warnings.warn(
                f"GAIL trains its discriminator every {self.gail.update_every} transitions but a rollout holds "
                f"{rollout}: some rollouts mix rewards of two discriminators; use a multiple of {rollout}",
                stacklevel=2,
            )

    def _on_rollout_end(self) -> None:
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


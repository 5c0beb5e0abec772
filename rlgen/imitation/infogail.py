"""InfoGAIL (Li, Song & Ermon 2017): GAIL whose policy is given a latent code, and a posterior that reads
the code back from the policy's (s, a), so that different codes come to mean different behaviours.

Demonstrations may mix several experts (e.g. one running forward and one backward) without saying which
episode is whose. Plain GAIL then imitates an average of them or one of them. InfoGAIL draws a categorical
code ``c`` uniformly from ``n_modes`` values at the start of each episode (per env), appends it one-hot to
the policy's observation, and adds ``lambda_info * log Q(c | s, a)`` to the GAIL reward, where the
posterior Q is trained with cross-entropy on the policy's own (s, a, c), as InfoGAN trains its Q head on
its generator's samples. The policy can only earn that term by acting differently under different codes,
and the discriminator (which sees (s, a) without c) only rewards behaviour found in the demos, so each
code settles on one demonstrated behaviour. The sum is a variational lower bound on the mutual
information between c and the trajectory, up to the constant H(c) = ln K.

This wrapper is :class:`~rlgen.imitation.GAIL` plus the code and Q: the discriminator, its schedule,
its reward kinds and its saving are GAIL's; Q is trained at the same moments as the discriminator (each
round of discriminator steps), on the same policy transitions, so every reward of a rollout comes from one
fixed pair of models. Q's ``q_updates`` steps are per round, not per transition. Q is InfoGAN's Q head
(:func:`rlgen.generative.infogan.posterior_head`, without batch norm) on the [s, a] inputs the
discriminator reads, standardised with the same expert statistics.

``log Q <= 0``: the information term is a per-step cost of at most ``lambda_info * ln K`` when Q cannot
tell the codes apart, which adds to GAIL's own sign bias (see :mod:`rlgen.imitation.discriminator`) on
tasks whose episodes end early.

An InfoGAIL policy needs a code in its observation wherever it runs: :class:`AppendCode` gives a plain
VecEnv the same observations (``rlgen eval`` uses it), and :meth:`InfoGAIL.fix_code` /
``AppendCode(..., code=c)`` hold the code constant to see what one code does:

>>> info = InfoGAIL(make_vec_env("HalfCheetah-v5"), load_demos("both_ways.npz"), n_modes=2)   # doctest: +SKIP
>>> model = PPO("MlpPolicy", VecNormalize(info)).learn(1_000_000, callback=info.callback)          # doctest: +SKIP
>>> info.fix_code(1)   # c = 1 from now on (reset for whole episodes under it)                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn
from torch import Tensor, nn

from rlgen.deprecation import renamed
from rlgen.generative.infogan import categorical_information, categorical_log_posterior, posterior_head
from rlgen.imitation.demos import Trajectories
from rlgen.imitation.gail import GAIL, GAILCallback
from rlgen.imitation.numpy_mlp import NumpyMLP

__all__ = ["AppendCode", "CodePosterior", "InfoGAIL", "InfoGAILCallback", "LatentCodes", "coded_space"]

CodeArg = int | Sequence[int] | np.ndarray | None


def check_n_modes(n_modes: Any) -> int:
    if not isinstance(n_modes, (int, np.integer)) or isinstance(n_modes, bool) or n_modes < 2:
        raise ValueError(f"InfoGAIL n_modes must be an integer >= 2 (the number of behaviours to tell apart), "
                         f"got {n_modes!r}")
    return int(n_modes)


def coded_space(observation_space: spaces.Space, n_modes: int) -> spaces.Box:
    """The observation space with a one-hot code of ``n_modes`` values appended (flattened, float32)."""
    if not isinstance(observation_space, spaces.Box):
        raise TypeError(f"a latent code is appended to Box observations, got a "
                        f"{type(observation_space).__name__} observation space")
    low = np.concatenate([observation_space.low.reshape(-1).astype(np.float32), np.zeros(n_modes, np.float32)])
    high = np.concatenate([observation_space.high.reshape(-1).astype(np.float32), np.ones(n_modes, np.float32)])
    return spaces.Box(low, high, dtype=np.float32)


def random_codes(n_modes: int, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A function appending a one-hot code, drawn uniformly and independently for every row, to rows of
    observations (float32): what InfoGAIL's policy is behaviour-cloned on, as the original pre-trained its
    policy (``bc_pretrain`` with ``imitation: infogail``). The demos carry no codes, so the clone starts out
    ignoring its code; telling the codes apart is left to the information term. Draws come from ``seed``."""
    n_modes = check_n_modes(n_modes)
    rng = np.random.default_rng(seed)
    eye = np.eye(n_modes, dtype=np.float32)

    def append(obs: np.ndarray) -> np.ndarray:
        flat = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        return np.concatenate([flat, eye[rng.integers(0, n_modes, len(flat))]], axis=1)

    return append


class LatentCodes:
    """One categorical code per env, held for a whole episode and drawn again when the episode ends.

    Draws come from a seeded ``torch.Generator`` (saved with a run, like GAIL's); a fixed code (one for all
    envs, or one per env) replaces the draws until released.
    """

    def __init__(self, n_modes: int, n_envs: int, seed: int = 0) -> None:
        self.n_modes = check_n_modes(n_modes)
        self.n_envs = n_envs
        self.generator = torch.Generator().manual_seed(seed)
        self.fixed: np.ndarray | None = None
        self.current = np.zeros(n_envs, dtype=np.int64)
        self._eye = np.eye(self.n_modes, dtype=np.float32)

    def fix(self, code: CodeArg) -> None:
        """Hold ``code`` (an int for every env, or one per env) from now on; ``None`` draws again."""
        if code is None:
            self.fixed = None
            return
        codes = np.asarray(code)
        if codes.dtype.kind not in "iu" or codes.ndim > 1 or (codes.ndim == 1 and len(codes) != self.n_envs):
            raise ValueError(f"a code is an integer in [0, {self.n_modes}) or one per env ({self.n_envs}), "
                             f"got {code!r}")
        if codes.min() < 0 or codes.max() >= self.n_modes:
            raise ValueError(f"codes must lie in [0, {self.n_modes}), got {code!r}")
        self.fixed = np.broadcast_to(codes.astype(np.int64), (self.n_envs,)).copy()
        self.current = self.fixed.copy()

    def draw(self, envs: np.ndarray | None = None) -> None:
        """New codes for ``envs`` (indices; None: every env)."""
        index = np.arange(self.n_envs) if envs is None else np.asarray(envs, dtype=np.int64)
        if len(index) == 0:
            return
        if self.fixed is not None:
            self.current[index] = self.fixed[index]
        else:
            self.current[index] = torch.randint(self.n_modes, (len(index),), generator=self.generator).numpy()

    def append(self, obs: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
        """``[obs flattened, one_hot(code)]`` per row (float32); the current codes unless given."""
        codes = self.current if codes is None else codes
        flat = np.asarray(obs, dtype=np.float32).reshape(len(codes), -1)
        return np.concatenate([flat, self._eye[codes]], axis=1)

    def end_episodes(self, dones: np.ndarray, infos: Sequence[dict[str, Any]]) -> np.ndarray:
        """Stamp each info with the code of its transition (``info["code"]``), give the terminal
        observations of finished episodes their episode's code (SB3 bootstraps the value of a truncated
        episode from it, so it must look like every other observation), then draw new codes for those
        envs. Returns the codes the transitions were taken under."""
        used = self.current.copy()
        for i, info in enumerate(infos):
            info["code"] = int(used[i])
            if dones[i] and info.get("terminal_observation") is not None:
                info["terminal_observation"] = self.append(info["terminal_observation"][None], used[i:i + 1])[0]
        self.draw(np.flatnonzero(dones))
        return used


class AppendCode(VecEnvWrapper):
    """Appends a per-episode one-hot latent code to a VecEnv's observations, nothing else: the env that an
    :class:`InfoGAIL` policy needs outside training (evaluation, rollouts, demos).

    :param code: hold this code (an int, or one per env); None draws one per episode uniformly.
    """

    def __init__(self, venv: VecEnv, n_modes: int, *, code: CodeArg = None, seed: int = 0) -> None:
        self.codes = LatentCodes(n_modes, venv.num_envs, seed)
        super().__init__(venv, observation_space=coded_space(venv.observation_space, self.codes.n_modes))
        self.codes.fix(code)

    def fix_code(self, code: CodeArg) -> None:
        """Hold ``code`` from now on (the current episodes too); None: draw a code per episode again."""
        self.codes.fix(code)

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        """Seed the envs and the code draws: an evaluation seeded alike sees the same codes."""
        if seed is not None:
            self.codes.generator.manual_seed(seed)
        return self.venv.seed(seed)

    def reset(self) -> VecEnvObs:
        obs = self.venv.reset()
        self.codes.draw()
        return self.codes.append(obs)  # type: ignore[arg-type]

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.codes.end_episodes(dones, infos)
        return self.codes.append(obs), rewards, dones, infos  # type: ignore[arg-type]


class CodePosterior(nn.Module):
    """Q(c | x): a categorical posterior over ``n_modes`` codes from input rows x (here [s, a]).

    The inputs are standardised (with statistics given by the owner: the expert's) and clipped, go through
    ``hidden[:-1]`` tanh layers (none by default) and InfoGAN's Q head with ``hidden[-1]`` units.
    """

    in_mean: Tensor
    in_std: Tensor

    def __init__(self, in_dim: int, n_modes: int, *, hidden: Sequence[int] = (100,), learning_rate: float = 1e-3,
                 clip_input: float = 10.0) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"InfoGAIL q_hidden must be a non-empty list of positive widths, got {list(hidden)}")
        if not learning_rate > 0:
            raise ValueError(f"InfoGAIL q_learning_rate must be > 0, got {learning_rate}")
        self.n_modes = check_n_modes(n_modes)
        self.clip_input = float(clip_input)
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        layers: list[nn.Module] = []
        width = in_dim
        for size in hidden[:-1]:
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        layers.append(posterior_head(width, hidden[-1], self.n_modes, batch_norm=False))
        self.net = nn.Sequential(*layers)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        self._numpy_net = NumpyMLP.of(self.net)  # log_prob_array's

    @torch.no_grad()
    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        self.in_mean.copy_(mean)
        self.in_std.copy_(std)

    def logits(self, x: Tensor) -> Tensor:
        return self.net(((x - self.in_mean) / self.in_std).clamp(-self.clip_input, self.clip_input))

    @torch.no_grad()
    def log_prob(self, x: Tensor, codes: Tensor) -> Tensor:
        """log Q(c | x) per row."""
        return categorical_log_posterior(self.logits(x), codes)

    def log_prob_array(self, x: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """:meth:`log_prob` on numpy rows (float32 x, integer codes), run in numpy when the layers allow it
        (``rlgen.imitation.numpy_mlp``): the reward's path at every env step."""
        if self._numpy_net is None:
            return self.log_prob(torch.from_numpy(x), torch.as_tensor(codes, dtype=torch.long)).numpy()
        logits = self._numpy_net(x, standardise=(self.in_mean, self.in_std, self.clip_input))
        top = logits.max(axis=1)
        log_norm = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        return logits[np.arange(len(logits)), np.asarray(codes, dtype=np.int64)] - log_norm

    @torch.no_grad()
    def evaluate(self, x: Tensor, codes: Tensor) -> dict[str, float]:
        """Cross-entropy, accuracy and the MI lower bound of Q on these rows, without training."""
        terms = categorical_information(self.logits(x), codes)
        return {"loss": float(-terms["log_q"]), "accuracy": float(terms["q_accuracy"]),
                "mi_lower_bound": float(terms["mi_lower_bound"])}

    def train_step(self, x: Tensor, codes: Tensor) -> float:
        """One Adam step on the cross-entropy of the codes; returns the loss before the step."""
        loss = -categorical_information(self.logits(x), codes)["log_q"]
        if not torch.isfinite(loss):
            raise FloatingPointError("the InfoGAIL posterior loss is not finite; lower q_learning_rate or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def full_state_dict(self) -> dict[str, Any]:
        return {"model": self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_full_state_dict(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


class InfoGAIL(GAIL):
    """GAIL with a per-episode latent code in the policy's observation and an information reward.

    The observation the agent sees is ``[obs flattened, one_hot(c)]`` (``observation_space`` grows by
    ``n_modes``); the reward is GAIL's plus ``lambda_info * log Q(c | s, a)``; ``info["env_reward"]`` keeps
    the env's reward and ``info["code"]`` the code each transition was taken under.

    :param venv: as for :class:`~rlgen.imitation.GAIL` (Box observations, Box or Discrete actions).
    :param demos: the demonstrations, whose behaviours need not be labelled (see
        :func:`~rlgen.imitation.demos.mix_demos`).
    :param n_modes: the number of code values K (>= 2).
    :param lambda_info: weight of the information reward (InfoGAN's categorical weight is 1).
    :param q_hidden: Q's layer widths: ``q_hidden[:-1]`` tanh layers, then InfoGAN's Q head with
        ``q_hidden[-1]`` units.
    :param q_learning_rate: Q's Adam learning rate (``q_lr``: its old name, deprecated).
    :param q_updates: Adam steps on Q at each round of discriminator steps.
    :param q_batch_size: rows of the round's policy transitions per Q step; None: all of them.
    :param seed: seeds the discriminator, Q, the code draws and the sampling.
    :param gail_kwargs: GAIL's settings (disc_steps, disc_transitions, batch_size, reward, absorbing) and the
        discriminator's (hidden, learning_rate, entropy_bonus, ...).
    """

    state_file = "infogail.pt"
    state_name = "InfoGAIL"

    def __init__(
        self,
        venv: VecEnv,
        demos: Trajectories,
        *,
        n_modes: int,
        lambda_info: float = 1.0,
        q_hidden: Sequence[int] = (100,),
        q_learning_rate: float = 1e-3,
        q_updates: int = 10,
        q_batch_size: int | None = None,
        seed: int = 0,
        q_lr: float | None = None,
        **gail_kwargs: Any,
    ) -> None:
        q_learning_rate = renamed("InfoGAIL", "q_lr", q_lr, "q_learning_rate", q_learning_rate)
        n_modes = check_n_modes(n_modes)
        if not (isinstance(lambda_info, (int, float)) and lambda_info >= 0):
            raise ValueError(f"InfoGAIL lambda_info must be a number >= 0, got {lambda_info!r}")
        if not isinstance(q_updates, int) or isinstance(q_updates, bool) or q_updates < 1:
            raise ValueError(f"InfoGAIL q_updates must be a positive integer, got {q_updates!r}")
        if q_batch_size is not None and (not isinstance(q_batch_size, int) or q_batch_size < 1):
            raise ValueError(f"InfoGAIL q_batch_size must be a positive integer or None, got {q_batch_size!r}")
        super().__init__(venv, demos, seed=seed, **gail_kwargs)
        self.n_modes, self.lambda_info = n_modes, float(lambda_info)
        self.q_updates, self.q_batch_size = q_updates, q_batch_size
        self.observation_space = coded_space(venv.observation_space, n_modes)
        disc = self.discriminator
        width = disc.obs_dim + disc.act_dim
        with torch.random.fork_rng():
            torch.manual_seed(seed + 1)
            self.posterior = CodePosterior(width, n_modes, hidden=q_hidden, learning_rate=q_learning_rate,
                                           clip_input=disc.clip_input)
        # Q reads the [s, a] columns of the discriminator's inputs, standardised with the same expert statistics
        self.posterior.set_statistics(disc.in_mean[:width], disc.in_std[:width])
        self.codes = LatentCodes(n_modes, self.num_envs, seed)
        self.row_data["codes"] = np.zeros(self.buffer.capacity, dtype=np.int64)  # the code of each buffer row
        self._step_codes = self.codes.current.copy()
        self._step_info_rewards = np.zeros(self.num_envs, dtype=np.float32)
        self.n_q_updates = 0
        self.last_q_stats: dict[str, float] = {}
        self.callback: InfoGAILCallback = InfoGAILCallback(self)
        self._info_sum, self._info_count = 0.0, 0

    # -- the policy outside training -------------------------------------------------------------
    takes_code = True

    @classmethod
    def policy_env(cls, venv: VecEnv, settings: dict[str, Any], *, seed: int = 0, code: int | None = None) -> VecEnv:
        """``venv`` with the code appended to its observations (:class:`AppendCode`): drawn per episode from
        ``seed``, or held at ``code``."""
        return AppendCode(venv, settings.get("n_modes"), code=code, seed=seed)  # type: ignore[arg-type]

    @classmethod
    def policy_observation(cls, settings: dict[str, Any], code: int | None = None
                           ) -> Callable[[np.ndarray], np.ndarray]:
        """One observation with ``code`` appended (a policy rolled out by hand acts under one fixed code)."""
        n_modes = check_n_modes(settings.get("n_modes"))
        if code is None:
            raise ValueError(f"an infogail run's policy needs a latent code (0..{n_modes - 1}) to act under")
        codes = LatentCodes(n_modes, 1)
        codes.fix(code)
        return lambda obs: codes.append(obs[None])[0]

    # -- the code --------------------------------------------------------------------------------
    def fix_code(self, code: CodeArg) -> None:
        """Hold ``code`` (an int for every env, or one per env) from now on, the current episodes included
        (their next observation shows it; reset first for whole episodes); None: draw per episode again."""
        self.codes.fix(code)

    @property
    def buffer_codes(self) -> np.ndarray:
        """The code each transition of the buffer was taken under (one entry per buffer row)."""
        return self.row_data["codes"]

    @property
    def current_codes(self) -> np.ndarray:
        """The code each env's current episode runs under."""
        return self.codes.current.copy()

    # -- stepping --------------------------------------------------------------------------------
    @property
    def can_defer_rewards(self) -> bool:
        return False  # the information reward is added at step time, after GAIL's

    def reset(self) -> np.ndarray:
        obs = super().reset()
        self.codes.draw()
        return self.codes.append(obs)

    def step_wait(self) -> VecEnvStepReturn:
        self._step_codes = self.codes.current.copy()
        obs, rewards, dones, infos = super().step_wait()  # GAIL's reward; a round of D and Q steps may end it
        self.codes.end_episodes(dones, infos)
        return self.codes.append(obs), rewards + self._step_info_rewards, dones, infos  # type: ignore[arg-type]

    def _recorded(self, obs: np.ndarray, acts: np.ndarray, rows: slice | np.ndarray) -> None:
        # this step's information reward comes from the Q in force before a round the step may end, like D's
        info_rewards = self.info_reward(obs, acts, self._step_codes)
        if not np.all(np.isfinite(info_rewards)):
            raise FloatingPointError(f"InfoGAIL: non-finite information reward at transition {self.num_transitions}")
        self.buffer_codes[rows] = self._step_codes
        self._step_info_rewards = info_rewards
        self._info_sum += float(info_rewards.sum())
        self._info_count += len(info_rewards)

    def _after_round(self, rows: np.ndarray) -> None:
        self.train_posterior(rows)

    # -- the posterior ---------------------------------------------------------------------------
    def _q_inputs(self, obs: np.ndarray, acts: np.ndarray) -> Tensor:
        return torch.from_numpy(self.discriminator.state_action_features(obs, acts))

    def log_posterior(self, obs: np.ndarray, acts: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """log Q(c | s, a) per row (raw observations, the actions that reached the env)."""
        return self.posterior.log_prob_array(self.discriminator.state_action_features(obs, acts), codes)

    def posterior_probabilities(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray:
        """Q(. | s, a) per row, shape (n, n_modes)."""
        with torch.no_grad():
            return self.posterior.logits(self._q_inputs(obs, acts)).softmax(dim=1).numpy()

    def info_reward(self, obs: np.ndarray, acts: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """``lambda_info * log Q(c | s, a)`` per row: what this wrapper adds to the GAIL reward."""
        return (self.lambda_info * self.log_posterior(obs, acts, codes)).astype(np.float32)

    def train_posterior(self, rows: np.ndarray | None = None) -> dict[str, float]:
        """``q_updates`` Adam steps of Q's cross-entropy on the policy (s, a, c) of buffer ``rows`` (default:
        every row held; a round passes the rows the discriminator learnt from).

        The logged ``loss``/``accuracy``/``mi_lower_bound`` are measured on those transitions *before*
        the steps: a round's transitions are ones Q has never trained on (when the rollouts hold at least
        ``batch_size`` transitions), so the accuracy says how well the codes can be told apart, not how
        well Q memorised.
        """
        rows = self.buffer.order() if rows is None else rows
        x = self._q_inputs(self.buffer.obs[rows], self.buffer.actions[rows])
        codes = torch.from_numpy(self.buffer_codes[rows])
        self.posterior.train()
        stats = self.posterior.evaluate(x, codes)
        for _ in range(self.q_updates):
            if self.q_batch_size is None or self.q_batch_size >= len(x):
                stats["train_loss"] = self.posterior.train_step(x, codes)
            else:
                index = torch.randint(len(x), (self.q_batch_size,), generator=self.generator)
                stats["train_loss"] = self.posterior.train_step(x[index], codes[index])
        self.n_q_updates += 1
        self.last_q_stats = stats
        return stats

    def take_info_reward_mean(self) -> float | None:
        """Mean information reward handed out since the last call (None: no steps since)."""
        if self._info_count == 0:
            return None
        mean = self._info_sum / self._info_count
        self._info_sum, self._info_count = 0.0, 0
        return mean

    # -- saving ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update({"n_modes": self.n_modes, "posterior": self.posterior.full_state_dict(),
                      "code_generator": self.codes.generator.get_state(), "n_q_updates": self.n_q_updates,
                      "last_q_stats": dict(self.last_q_stats)})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "posterior" not in state:
            raise ValueError("the state holds no InfoGAIL posterior (a plain GAIL state?)")
        if int(state["n_modes"]) != self.n_modes:
            raise ValueError(f"the InfoGAIL state has {int(state['n_modes'])} modes, this wrapper has {self.n_modes}")
        super().load_state_dict(state)
        try:
            self.posterior.load_full_state_dict(state["posterior"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ValueError(f"InfoGAIL state does not fit this posterior: {exc}".splitlines()[0]) from None
        self.codes.generator.set_state(state["code_generator"])
        self.n_q_updates = int(state["n_q_updates"])
        self.last_q_stats = {k: float(v) for k, v in state["last_q_stats"].items()}


class InfoGAILCallback(GAILCallback):
    """GAIL's ``gail/*`` keys and ``infogail/q_loss``, ``q_accuracy``, ``mi_lower_bound``,
    ``info_reward_mean`` at each rollout's end."""

    gail: InfoGAIL

    def _on_rollout_end(self) -> None:
        super()._on_rollout_end()
        stats = self.gail.last_q_stats
        if stats:
            self.logger.record("infogail/q_loss", stats["loss"])
            self.logger.record("infogail/q_accuracy", stats["accuracy"])
            self.logger.record("infogail/mi_lower_bound", stats["mi_lower_bound"])
        mean = self.gail.take_info_reward_mean()
        if mean is not None:
            self.logger.record("infogail/info_reward_mean", mean)

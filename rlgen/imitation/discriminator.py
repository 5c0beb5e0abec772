"""GAIL's discriminator: an MLP telling expert (s, a) pairs from the policy's, built from rlgen's GAN parts.

As in Ho & Ermon's code: inputs standardised with statistics of the expert data, 2 x 100 tanh hidden
layers, a zero-initialised output (so D = 1/2 and the reward is the same constant everywhere until the
first update), expert label 1, class-balanced binary cross-entropy minus 0.001 x the Bernoulli entropy
of the logits. The improved-GAN stabilisers of :mod:`rlgen.generative.gan_parts` (one-sided label
smoothing, gradient penalty, spectral norm, input noise) are options, off by default.

The reward handed to the policy is a function of the logit ``l = log D - log(1 - D)``:

- ``"gail"``: ``-log(1 - D) = softplus(l)``, always positive: a survival bonus, right for tasks that end
  early on failure (locomotion);
- ``"log_d"``: ``log D = -softplus(-l)``, always negative: right for tasks that end on success;
- ``"airl"``: ``l`` itself (``log D - log(1 - D)``), the AIRL-style reward with no sign bias.

With ``absorbing=True`` the inputs get one more column, the absorbing-state flag of Kostrikov et al. (2019):
0 on every real transition, 1 on the transitions of the absorbing state that an episode's termination leads
to (:class:`~rlgen.imitation.GAIL` pairs them with the terminal transitions of the expert and of the policy).
An absorbing row's other columns are the expert mean (0 once standardised): the state, the action and the
next state of the absorbing state carry no information, the flag is all that tells it apart.

>>> disc = Discriminator(env.observation_space, env.action_space)   # doctest: +SKIP
>>> disc.set_expert_statistics(expert_obs, expert_acts)   # doctest: +SKIP
>>> disc.train_step((expert_obs, expert_acts), (policy_obs, policy_acts))   # doctest: +SKIP
{'loss': 0.69, 'acc_expert': 0.5, 'acc_policy': 0.5, ...}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from rlgen.deprecation import renamed
from rlgen.generative.gan_parts import (
    GaussianNoise,
    Norm,
    bernoulli_entropy,
    discriminator_bce,
    gradient_penalty,
    linear,
    normalized,
)
from rlgen.imitation.numpy_mlp import NumpyMLP

REWARD_KINDS = ("gail", "log_d", "airl")
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU,
                                           "leaky_relu": nn.LeakyReLU}
PENALTY_KINDS = ("wgan_gp", "r1")

ArrayLike = np.ndarray | Tensor
Batch = Sequence[ArrayLike]
"""``(obs, acts)``, ``(obs, acts, next_obs)`` or ``(obs, acts, next_obs, absorbing)`` (a boolean per row, for a
discriminator with ``absorbing=True``); numpy arrays or tensors with a leading batch dimension."""


def _space_width(space: spaces.Space, what: str) -> int:
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if what == "action" and isinstance(space, spaces.Discrete):
        return int(space.n)
    kinds = "Box" if what == "observation" else "Box or Discrete"
    raise TypeError(f"the discriminator needs {kinds} {what}s, got a {type(space).__name__} {what} space")


class Discriminator(nn.Module):
    """D(s, a) (or D(s, a, s')) as the logit of "this pair came from the expert".

    :param observation_space: a Box space (flattened).
    :param action_space: a Box space (flattened) or Discrete (one-hot encoded).
    :param hidden: hidden layer widths (the original: two of 100).
    :param activation: tanh (the original), relu, elu or leaky_relu.
    :param use_next_obs: also look at the next observation s' (a reward on transitions).
    :param entropy_bonus: subtract this multiple of the mean Bernoulli entropy of the logits from the loss
        (0.001 in the original), which keeps D from becoming overconfident.
    :param label_smoothing: one-sided label smoothing: the expert label is ``1 - label_smoothing``.
    :param gradient_penalty: coefficient of a gradient penalty on the (standardised) inputs (0: off).
    :param penalty_kind: ``wgan_gp`` (at interpolates of expert and policy inputs) or ``r1`` (at expert inputs).
    :param spectral_norm: spectrally normalise every layer. Spectral norm rescales a zero matrix to NaN,
        so the output layer then starts at a small random weight instead of zero.
    :param input_noise: standard deviation of Gaussian noise added to the standardised inputs in training.
    :param learning_rate: Adam learning rate (0.01 in the original, which took one full-batch step per iteration).
    :param lr: the old name of ``learning_rate`` (deprecated).
    :param clip_input: standardised inputs are clipped to [-clip_input, clip_input], as VecNormalize does,
        so a state far outside the expert's does not saturate every unit.
    :param absorbing: one more input column, the absorbing-state flag (see the module docstring); rows are
        marked absorbing by the ``absorbing`` argument of :meth:`features` and :meth:`reward`.
    """

    in_mean: Tensor
    in_std: Tensor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        hidden: Sequence[int] = (100, 100),
        activation: str = "tanh",
        use_next_obs: bool = False,
        entropy_bonus: float = 0.001,
        label_smoothing: float = 0.0,
        gradient_penalty: float = 0.0,
        penalty_kind: str = "wgan_gp",
        spectral_norm: bool = False,
        input_noise: float = 0.0,
        learning_rate: float = 0.01,
        clip_input: float = 10.0,
        absorbing: bool = False,
        lr: float | None = None,
    ) -> None:
        super().__init__()
        learning_rate = renamed("Discriminator", "lr", lr, "learning_rate", learning_rate)
        self.obs_dim = _space_width(observation_space, "observation")
        self.act_dim = _space_width(action_space, "action")
        self.discrete_actions = isinstance(action_space, spaces.Discrete)
        self.action_start = int(action_space.start) if isinstance(action_space, spaces.Discrete) else 0
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown discriminator activation {activation!r}; choose one of: "
                             f"{', '.join(ACTIVATIONS)}")
        if penalty_kind not in PENALTY_KINDS:
            raise ValueError(f"unknown gradient penalty kind {penalty_kind!r}; choose one of: "
                             f"{', '.join(PENALTY_KINDS)}")
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty list of positive widths, got {list(hidden)}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        for name, value in (("entropy_bonus", entropy_bonus), ("gradient_penalty", gradient_penalty),
                            ("input_noise", input_noise)):
            if not value >= 0:
                raise ValueError(f"discriminator {name} must be >= 0, got {value}")
        if not learning_rate > 0 or not clip_input > 0:
            raise ValueError(f"discriminator learning_rate and clip_input must be > 0, got {learning_rate} and "
                             f"{clip_input}")
        self.use_next_obs = bool(use_next_obs)
        self.entropy_bonus = float(entropy_bonus)
        self.label_smoothing = float(label_smoothing)
        self.penalty_coef = float(gradient_penalty)
        self.penalty_kind = penalty_kind
        self.clip_input = float(clip_input)
        self.absorbing = bool(absorbing)
        self.base_dim = self.obs_dim * (2 if self.use_next_obs else 1) + self.act_dim
        """The columns [s, a(, s')] of an input row; the absorbing flag, if any, comes after them."""
        self.in_dim = self.base_dim + int(self.absorbing)
        self.register_buffer("in_mean", torch.zeros(self.in_dim))
        self.register_buffer("in_std", torch.ones(self.in_dim))

        norm: Norm = "spectral" if spectral_norm else "none"
        layers: list[nn.Module] = [GaussianNoise(input_noise)]
        width = self.in_dim
        for size in hidden:
            layers += [linear(width, size, norm=norm), ACTIVATIONS[activation]()]
            width = size
        output = nn.Linear(width, 1)
        nn.init.zeros_(output.bias)
        if spectral_norm:
            nn.init.normal_(output.weight, std=0.01)
        else:
            nn.init.zeros_(output.weight)  # D = 1/2 everywhere until the first update
        layers.append(normalized(output, norm))  # normalised after the initialisation above
        self.net = nn.Sequential(*layers)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        # reward()'s numpy forward of every layer but the input noise (rlgen.imitation.numpy_mlp); None where
        # it cannot run them (spectral norm): the torch path then
        self._numpy_net = NumpyMLP.of(list(self.net)[1:])
        self._generator: torch.Generator | None = None

    @property
    def generator(self) -> torch.Generator | None:
        """Where training draws its randomness (the input noise, the gradient penalty's interpolation weights
        and pairs) from; None: torch's global RNG. :class:`~rlgen.imitation.GAIL` sets its own seeded one, so
        its ``seed`` decides them and the agent's draws from the global RNG are left alone."""
        return self._generator

    @generator.setter
    def generator(self, generator: torch.Generator | None) -> None:
        self._generator = generator
        noise = self.net[0]
        assert isinstance(noise, GaussianNoise)
        noise.generator = generator

    # -- inputs ----------------------------------------------------------------------------------
    def features(self, obs: ArrayLike, acts: ArrayLike, next_obs: ArrayLike | None = None,
                 absorbing: ArrayLike | None = None) -> Tensor:
        """The raw (unstandardised) input rows [s, a(, s')], actions one-hot if discrete, then the absorbing
        flag if the discriminator has one (``absorbing``: a boolean per row, default none absorbing; an
        absorbing row's s, a and s' are ignored).

        Built in numpy and handed to torch once: this runs at every env step, where a handful of small
        tensor operations would cost more than the network itself.
        """
        return torch.from_numpy(self.feature_array(obs, acts, next_obs, absorbing))

    def feature_array(self, obs: ArrayLike, acts: ArrayLike, next_obs: ArrayLike | None = None,
                      absorbing: ArrayLike | None = None) -> np.ndarray:
        """:meth:`features` as a float32 numpy array."""
        state_action = self.state_action_features(obs, acts)
        if self.use_next_obs:
            if next_obs is None:
                raise ValueError("this discriminator looks at (s, a, s'): pass next_obs")
            next_np = _as_numpy(next_obs)
            if len(next_np) != len(state_action):
                raise ValueError(f"{len(state_action)} observations but {len(next_np)} next observations")
            next_np = _rows(next_np, len(state_action), self.obs_dim, "next observations")
            rows = np.concatenate([state_action, next_np], axis=1, dtype=np.float32)
        else:
            rows = state_action
        if not self.absorbing:
            if absorbing is not None and np.any(_as_numpy(absorbing)):
                raise ValueError("absorbing rows need a discriminator made with absorbing=True")
            return rows
        flag = np.zeros((len(rows), 1), dtype=np.float32)
        if absorbing is not None:
            mask = _as_numpy(absorbing).reshape(-1).astype(bool)
            if len(mask) != len(rows):
                raise ValueError(f"{len(rows)} rows but {len(mask)} absorbing flags")
            rows[mask] = self.in_mean[:self.base_dim].numpy()  # 0 once standardised: no information
            flag[mask] = 1.0
        return np.concatenate([rows, flag], axis=1)

    def absorbing_rows(self, n: int) -> tuple[np.ndarray, ...]:
        """A batch of ``n`` absorbing transitions ``(obs, acts, next_obs, absorbing)``, as :meth:`features`
        takes them (their s, a and s' are placeholders)."""
        if not self.absorbing:
            raise ValueError("this discriminator has no absorbing state (absorbing=False)")
        acts = (np.full(n, self.action_start, dtype=np.int64) if self.discrete_actions
                else np.zeros((n, self.act_dim), dtype=np.float32))
        obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        return obs, acts, obs, np.ones(n, dtype=bool)

    def absorbing_reward(self, kind: str = "gail") -> float:
        """The reward of one step in the absorbing state (same ``kind`` as :meth:`reward`)."""
        obs, acts, next_obs, absorbing = self.absorbing_rows(1)
        return float(self.reward(obs, acts, next_obs, kind=kind, absorbing=absorbing)[0])

    def state_action_features(self, obs: ArrayLike, acts: ArrayLike) -> np.ndarray:
        """The [s, a] part of :meth:`features` (float32 numpy), checked against the spaces' widths; the
        first ``obs_dim + act_dim`` columns of every input row. InfoGAIL's posterior reads these."""
        obs_np = _as_numpy(obs)
        n = len(obs_np)
        obs_np = _rows(obs_np, n, self.obs_dim, "observations")
        acts_np = _as_numpy(acts)
        if len(acts_np) != n:
            raise ValueError(f"{n} observations but {len(acts_np)} actions")
        if self.discrete_actions:
            index = acts_np.reshape(-1).astype(np.int64) - self.action_start
            if n and (index.min() < 0 or index.max() >= self.act_dim):
                raise ValueError(f"discrete actions must lie in [{self.action_start}, "
                                 f"{self.action_start + self.act_dim}), got {index.min() + self.action_start}"
                                 f"..{index.max() + self.action_start}")
            acts_np = np.eye(self.act_dim, dtype=np.float32)[index]
        else:
            acts_np = _rows(acts_np, n, self.act_dim, "actions")
        return np.concatenate([obs_np, acts_np], axis=1, dtype=np.float32)

    @torch.no_grad()
    def set_expert_statistics(self, obs: ArrayLike, acts: ArrayLike, next_obs: ArrayLike | None = None) -> None:
        """Standardise every later input with the mean and standard deviation of the expert's inputs (the
        real transitions; an absorbing flag column stays as it is)."""
        x = self.features(obs, acts, next_obs)
        if self.discrete_actions:  # one-hot columns stay as they are
            start = self.obs_dim
            x[:, start:start + self.act_dim] = 0.0
        mean, std = x.mean(0), x.std(0, unbiased=False)
        if self.discrete_actions:
            std[self.obs_dim:self.obs_dim + self.act_dim] = 1.0
        if self.absorbing:  # the flag column (all 0 here): mean 0, std 1
            std[self.base_dim:] = 1.0
        # a feature that is constant in the demos would divide by ~0; a floor keeps it finite
        self.in_mean.copy_(mean)
        self.in_std.copy_(torch.sqrt(std.square() + 1e-8))

    def standardise(self, x: Tensor) -> Tensor:
        return ((x - self.in_mean) / self.in_std).clamp(-self.clip_input, self.clip_input)

    # -- outputs ---------------------------------------------------------------------------------
    def logits(self, obs: ArrayLike, acts: ArrayLike, next_obs: ArrayLike | None = None,
               absorbing: ArrayLike | None = None) -> Tensor:
        """``log D - log(1 - D)`` per row, differentiable in the parameters."""
        return self.net(self.standardise(self.features(obs, acts, next_obs, absorbing))).squeeze(-1)

    def reward(self, obs: ArrayLike, acts: ArrayLike, next_obs: ArrayLike | None = None,
               kind: str = "gail", absorbing: ArrayLike | None = None) -> np.ndarray:
        """The policy's reward per row (float32 numpy): ``gail`` -log(1 - D), ``log_d`` log D, ``airl`` the logit."""
        if kind not in REWARD_KINDS:
            raise ValueError(f"unknown reward kind {kind!r}; choose one of: {', '.join(REWARD_KINDS)}")
        if self._numpy_net is None:
            return self._torch_reward(self.features(obs, acts, next_obs, absorbing), kind)
        # a few rows per env step: numpy, without torch's per-operation (and no_grad's) overhead
        logit = self._numpy_net(self.feature_array(obs, acts, next_obs, absorbing),
                                standardise=(self.in_mean, self.in_std, self.clip_input))[:, 0]
        if kind == "gail":
            out = np.logaddexp(0.0, logit)
        elif kind == "log_d":
            out = np.negative(np.logaddexp(0.0, -logit))
        else:
            out = logit
        return out.astype(np.float32, copy=False)

    def step_reward(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray | None, kind: str = "gail"
                    ) -> np.ndarray:
        """:meth:`reward` of rows a wrapper recorded itself at an env step: float32 ``(n, obs_dim)`` observations
        and ``(n, *action shape)`` Box actions (one row per env), none absorbing. It skips :meth:`reward`'s checks of
        shapes and kinds, which cost as much as the network here; anything else goes to :meth:`reward`."""
        if self._numpy_net is None or self.discrete_actions or self.absorbing or kind not in REWARD_KINDS:
            return self.reward(obs, acts, next_obs, kind=kind)  # (an unknown kind: its one-line error)
        acts = acts.reshape(len(acts), -1)  # a Box of any shape: one row per env (a view)
        x = np.concatenate((obs, acts, next_obs) if self.use_next_obs else (obs, acts), axis=1)
        logit = self._numpy_net(x, standardise=(self.in_mean, self.in_std, self.clip_input))[:, 0]
        if kind == "gail":
            np.logaddexp(0.0, logit, out=logit)
        elif kind == "log_d":
            np.negative(np.logaddexp(0.0, np.negative(logit, out=logit), out=logit), out=logit)
        return logit.astype(np.float32, copy=False)

    @torch.no_grad()
    def _torch_reward(self, features: Tensor, kind: str) -> np.ndarray:
        hidden = self.standardise(features)
        for layer in list(self.net)[1:]:  # every layer but the input noise, which only regularises training
            hidden = layer(hidden)
        logit_t = hidden.squeeze(-1)
        if kind == "gail":
            out = F.softplus(logit_t)
        elif kind == "log_d":
            out = F.logsigmoid(logit_t)
        else:
            out = logit_t
        return out.numpy().astype(np.float32)

    # -- training --------------------------------------------------------------------------------
    def loss(self, expert_batch: Batch, policy_batch: Batch) -> dict[str, Tensor]:
        """Loss terms on one expert and one policy batch; ``loss`` is what :meth:`train_step` minimises."""
        x_expert = self.standardise(self.features(*expert_batch))
        x_policy = self.standardise(self.features(*policy_batch))
        logits_expert = self.net(x_expert).squeeze(-1)
        logits_policy = self.net(x_policy).squeeze(-1)
        # The original weighs each class 1/2 and subtracts 0.001 x entropy: discriminator_bce sums the two
        # classes, so halving it and doubling the bonus reproduces that objective exactly.
        loss = 0.5 * discriminator_bce(logits_expert, logits_policy, real_label=1.0 - self.label_smoothing,
                                       entropy_bonus=2.0 * self.entropy_bonus)
        terms = {"bce_plus_entropy": loss.detach()}
        if self.penalty_coef > 0:
            x_expert_gp, fake = x_expert, x_policy
            if self.penalty_kind == "wgan_gp" and len(x_policy) != len(x_expert):
                # interpolates at every row of the larger batch, each paired with a random row of the smaller
                # one (not the smaller batch's length of leading rows: a policy pool is in step order, so
                # that would penalise only its oldest transitions, and never its absorbing rows)
                n = max(len(x_policy), len(x_expert))
                if len(x_expert) < n:
                    x_expert_gp = x_expert[torch.randint(len(x_expert), (n,), generator=self._generator)]
                else:
                    fake = x_policy[torch.randint(len(x_policy), (n,), generator=self._generator)]
            penalty = gradient_penalty(self.net, x_expert_gp, fake, kind=self.penalty_kind,
                                       generator=self._generator)
            loss = loss + self.penalty_coef * penalty
            terms["gradient_penalty"] = penalty.detach()
        terms.update({
            "loss": loss,
            "acc_expert": (logits_expert.detach() > 0).float().mean(),
            "acc_policy": (logits_policy.detach() <= 0).float().mean(),
            "entropy": bernoulli_entropy(torch.cat([logits_expert, logits_policy]).detach()).mean(),
            "logit_expert": logits_expert.detach().mean(),
            "logit_policy": logits_policy.detach().mean(),
        })
        return terms

    def train_step(self, expert_batch: Batch, policy_batch: Batch) -> dict[str, float]:
        """One Adam step; returns ``loss``, ``acc_expert``, ``acc_policy`` (and diagnostics) as floats."""
        self.train()
        terms = self.loss(expert_batch, policy_batch)
        if not torch.isfinite(terms["loss"]):
            raise FloatingPointError("the discriminator loss is not finite; lower its learning_rate or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        return {name: float(value.detach()) for name, value in terms.items()}

    def full_state_dict(self) -> dict[str, Any]:
        """Parameters, standardisation statistics and the optimiser's state."""
        return {"model": self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_full_state_dict(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


def _rows(array: np.ndarray, n: int, width: int, what: str) -> np.ndarray:
    """``array`` (``n`` rows) as flat rows of ``width`` columns, or a ValueError naming ``what``; unlike
    ``reshape(n, -1)`` this works for zero rows too (math.prod: this runs at every env step)."""
    flat = array.reshape(n, math.prod(array.shape[1:]))
    if flat.shape[1] != width:
        raise ValueError(f"the discriminator expects {what} of width {width}, got {flat.shape[1]}")
    return flat


def _as_numpy(array: ArrayLike) -> np.ndarray:
    if isinstance(array, Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)

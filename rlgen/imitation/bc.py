"""Behaviour cloning: supervised learning of an SB3 policy on expert (s, a) pairs.

A baseline on its own (the GAIL paper's BC column) and a pre-training step for GAIL, so the adversarial
phase starts from a policy that already roughly imitates the expert. It trains the policy that an
SB3 on-policy model acts with (``model.policy``, an ``ActorCriticPolicy``), in place:

- ``loss="nll"``: the negative log-likelihood of the expert's actions under the policy's distribution
  (Gaussian for Box actions, categorical for Discrete); it also fits the action noise (log std);
- ``loss="mse"``: the squared error of the distribution's mean (Box actions only); the noise is untouched,
  which keeps a pre-trained policy exploring.

Observations must be given as the policy sees them: a model trained behind VecNormalize needs them
normalised with the same statistics (``rlgen.agents`` does this for a run).

>>> stats = behaviour_cloning(model.policy, obs, acts, gradient_steps=2000)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecNormalize
from tqdm.auto import tqdm

from rlgen.deprecation import renamed
from rlgen.imitation.demos import Trajectories

LOSSES = ("nll", "mse")


def behaviour_cloning(
    policy: ActorCriticPolicy,
    obs: np.ndarray,
    acts: np.ndarray,
    *,
    loss: str = "nll",
    gradient_steps: int = 5000,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    ent_coef: float = 0.0,
    seed: int = 0,
    progress_bar: bool = False,
    lr: float | None = None,
) -> dict[str, float]:
    """Fit ``policy`` to (obs, acts) with Adam minibatches; returns the final ``loss`` and ``action_error``.

    :param obs: observations as the policy sees them, shape (N, *obs_shape).
    :param acts: the expert's actions, shape (N, *act_shape) (integers for Discrete).
    :param loss: ``nll`` or ``mse`` (see the module docstring).
    :param ent_coef: subtract this multiple of the policy entropy (nll only), a guard against a collapsed
        action noise when the demos are few.
    :return: ``loss`` (mean of the last 100 steps) and ``action_error`` (mean absolute error of the
        deterministic action for Box, error rate for Discrete) over all the data after training.
    """
    learning_rate = renamed("behaviour_cloning", "lr", lr, "learning_rate", learning_rate)
    if not isinstance(policy, ActorCriticPolicy):
        raise TypeError(f"behaviour cloning needs an on-policy SB3 policy (PPO, TRPO, A2C), got "
                        f"{type(policy).__name__}")
    if loss not in LOSSES:
        raise ValueError(f"unknown behaviour-cloning loss {loss!r}; choose one of: {', '.join(LOSSES)}")
    discrete = isinstance(policy.action_space, spaces.Discrete)
    if loss == "mse" and discrete:
        raise ValueError("the mse loss needs Box actions; use nll for Discrete actions")
    for name, value in (("gradient_steps", gradient_steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"behaviour cloning {name} must be a positive integer, got {value!r}")
    if not learning_rate > 0 or not ent_coef >= 0:
        raise ValueError(f"behaviour cloning needs learning_rate > 0 and ent_coef >= 0, got {learning_rate} and "
                         f"{ent_coef}")
    if len(obs) != len(acts) or len(obs) == 0:
        raise ValueError(f"behaviour cloning needs as many observations as actions (> 0), got {len(obs)} "
                         f"and {len(acts)}")
    obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32).reshape(len(obs), *policy.observation_space.shape)
    if discrete:
        acts_t = torch.as_tensor(np.asarray(acts), dtype=torch.long).reshape(-1)
    else:
        acts_t = torch.as_tensor(np.asarray(acts), dtype=torch.float32).reshape(len(acts), *policy.action_space.shape)

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=learning_rate)
    policy.set_training_mode(True)
    recent: list[float] = []
    try:
        for _ in tqdm(range(gradient_steps), desc="behaviour cloning", disable=not progress_bar):
            idx = torch.randint(len(obs_t), (batch_size,), generator=generator)
            distribution = policy.get_distribution(obs_t[idx])
            if loss == "nll":
                value = -distribution.log_prob(acts_t[idx]).mean()
                if ent_coef:
                    value = value - ent_coef * distribution.entropy().mean()
            else:
                value = (distribution.mode() - acts_t[idx]).square().mean()
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            recent.append(float(value.detach()))
            if len(recent) > 100:
                recent.pop(0)
    finally:
        policy.set_training_mode(False)
    with torch.no_grad():
        predicted = policy.get_distribution(obs_t).mode()
        if discrete:
            error = float((predicted != acts_t).float().mean())
        else:
            error = float((predicted - acts_t).abs().mean())
    return {"loss": float(np.mean(recent)), "action_error": error}


def clone_demos(policy: ActorCriticPolicy, demos: Trajectories, normalizer: VecNormalize | None = None,
                augment: Callable[[np.ndarray], np.ndarray] | None = None, **kwargs: Any) -> dict[str, float]:
    """Behaviour-clone ``policy`` on every (s, a) pair of ``demos`` (``kwargs``: :func:`behaviour_cloning`'s).

    Behind a VecNormalize (``normalizer``) the policy sees normalised observations, and before any env step the
    only statistics there are are the expert's: the observation statistics start as those of every demo
    observation (counted as that many samples, so training moves them as slowly as it would have). ``augment``
    maps the demos' observations (rows) to what the policy sees, before both (InfoGAIL: a random code appended,
    :func:`rlgen.imitation.infogail.random_codes`). Returns :func:`behaviour_cloning`'s statistics with the
    numbers of ``pairs`` and ``episodes`` cloned.
    """
    obs, acts, _, _ = demos.transitions()
    if augment is not None:
        obs = augment(obs)
    if normalizer is not None and normalizer.norm_obs:
        every_obs = np.concatenate([traj.obs for traj in demos])
        if augment is not None:
            every_obs = augment(every_obs)
        normalizer.obs_rms.mean = every_obs.mean(axis=0).astype(np.float64)
        normalizer.obs_rms.var = every_obs.var(axis=0).astype(np.float64)
        normalizer.obs_rms.count = float(len(every_obs))
        obs = normalizer.normalize_obs(obs)
    stats = behaviour_cloning(policy, obs, acts, **kwargs)
    return {**stats, "pairs": float(len(obs)), "episodes": float(len(demos))}

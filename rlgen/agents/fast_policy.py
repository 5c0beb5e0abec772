"""A faster ``forward`` for SB3's plain MLP actor-critic, the call an on-policy agent makes at every env step.

While collecting a rollout, PPO, TRPO and A2C call ``policy(obs)`` once per step for an action, its log-probability
and the state's value. For the small networks of locomotion and sparse-reward tasks that call is mostly per-module
and per-distribution bookkeeping (``nn.Module.__call__`` for every layer, a ``Normal`` built per step), about
half of its time here (~230 us against ~130 us). :func:`install_fast_forward` gives a policy of the common shape
(flat Box observations through SB3's ``FlattenExtractor``, shared features, an ``MlpExtractor`` of
``nn.Linear`` + Tanh/ReLU layers, a diagonal Gaussian without gSDE) a ``forward`` that runs the same tensor
operations in the same order on the same parameters: the same actions for the same torch RNG state, the same
values and log-probabilities (tests/test_fast_policy.py checks it bit for bit). Everything else about the policy
(training's ``evaluate_actions``, saving) is untouched, and a policy of any other shape is left as it is. Its
``predict`` of a deterministic action, what every evaluation calls per env step, gets the same shortcut.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from torch import Tensor, nn

_ACTIVATIONS: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {nn.Tanh: torch.tanh, nn.ReLU: F.relu}
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))  # as torch's Normal.log_prob writes it

Layers = list[tuple[nn.Linear, Callable[[Tensor], Tensor]]]


def _layers(net: nn.Module) -> Layers | None:
    """``[(linear, activation), ...]`` of a Sequential of Linear + activation pairs; None for anything else."""
    modules = list(net) if isinstance(net, nn.Sequential) else None
    if modules is None or len(modules) % 2:
        return None
    pairs: Layers = []
    for linear, activation in zip(modules[::2], modules[1::2], strict=True):
        function = _ACTIVATIONS.get(type(activation))
        if type(linear) is not nn.Linear or function is None or linear._forward_hooks or linear._forward_pre_hooks:
            return None
        pairs.append((linear, function))
    return pairs


def _plain(policy: BasePolicy) -> tuple[Layers, Layers] | None:
    """The actor's and critic's hidden layers if ``policy`` has the shape the fast forward reproduces."""
    if type(policy) is not ActorCriticPolicy:
        return None
    assert isinstance(policy, ActorCriticPolicy)
    if not policy.share_features_extractor or policy.use_sde:
        return None
    space = policy.observation_space
    if not isinstance(space, spaces.Box) or is_image_space(space) or not isinstance(policy.action_space, spaces.Box):
        return None
    if type(policy.features_extractor) is not FlattenExtractor or type(policy.mlp_extractor) is not MlpExtractor:
        return None
    if type(policy.action_dist) is not DiagGaussianDistribution or policy.squash_output:
        return None
    if type(policy.action_net) is not nn.Linear or type(policy.value_net) is not nn.Linear:
        return None
    actor, critic = _layers(policy.mlp_extractor.policy_net), _layers(policy.mlp_extractor.value_net)
    if actor is None or critic is None:
        return None
    return actor, critic


def install_fast_forward(policy: BasePolicy) -> bool:
    """Give ``policy`` (in place) the fast ``forward`` and ``predict`` if it has the plain shape; returns whether it
    did (any other policy, an off-policy agent's say, is left alone). The layers are kept on the policy itself, so
    a deep copy of it computes with its own."""
    layers = _plain(policy)
    if layers is None:
        return False
    policy._fast_layers = layers  # type: ignore[attr-defined]
    policy.forward = types.MethodType(_fast_forward, policy)  # type: ignore[method-assign]
    policy.predict = types.MethodType(_fast_predict, policy)  # type: ignore[method-assign]
    return True


def _fast_forward(self: ActorCriticPolicy, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    actor, critic = self._fast_layers  # type: ignore[attr-defined]
    features = obs.float().flatten(1)  # preprocess_obs of a Box, then FlattenExtractor
    latent_pi = latent_vf = features
    for linear, activation in actor:
        latent_pi = activation(F.linear(latent_pi, linear.weight, linear.bias))
    for linear, activation in critic:
        latent_vf = activation(F.linear(latent_vf, linear.weight, linear.bias))
    values = F.linear(latent_vf, self.value_net.weight, self.value_net.bias)
    mean = F.linear(latent_pi, self.action_net.weight, self.action_net.bias)
    std = torch.ones_like(mean) * self.log_std.exp()  # DiagGaussianDistribution.proba_distribution
    if deterministic:
        actions = mean
    else:  # Normal.rsample: loc + eps * scale, eps drawn with normal_()
        actions = mean + torch.empty(mean.shape, dtype=mean.dtype, device=mean.device).normal_() * std
    # Normal.log_prob, summed over the action dimensions
    log_prob = (-((actions - mean) ** 2) / (2 * std**2) - std.log() - _LOG_SQRT_2PI).sum(dim=1)
    return actions.reshape((-1, *self.action_space.shape)), values, log_prob


def _fast_predict(self: ActorCriticPolicy, observation: Any, state: Any = None, episode_start: Any = None,
                  deterministic: bool = False) -> tuple[np.ndarray, Any]:
    """SB3's ``predict`` of a deterministic action (an evaluation's, a demo's), the actor's mean clipped to the
    action space, without its per-call bookkeeping (the training mode set on every module, a distribution
    built): about half of an evaluation step's time on Ant besides the env. A stochastic action, a recurrent
    state or an observation SB3 would reshape otherwise goes to SB3's own."""
    if not deterministic or state is not None or not isinstance(observation, np.ndarray):
        return ActorCriticPolicy.predict(self, observation, state, episode_start, deterministic)
    shape = self.observation_space.shape
    if observation.shape == shape:
        vectorized = False
    elif observation.shape[1:] == shape:
        vectorized = True
    else:  # SB3 says what is wrong with it
        return ActorCriticPolicy.predict(self, observation, state, episode_start, deterministic)
    actor, _ = self._fast_layers  # type: ignore[attr-defined]
    with torch.no_grad():
        latent = torch.as_tensor(observation.reshape((-1, *shape))).float().flatten(1)
        for linear, activation in actor:
            latent = activation(F.linear(latent, linear.weight, linear.bias))
        mean = F.linear(latent, self.action_net.weight, self.action_net.bias)
    actions = mean.numpy().reshape((-1, *self.action_space.shape))
    assert isinstance(self.action_space, spaces.Box)
    actions = np.clip(actions, self.action_space.low, self.action_space.high)
    return (actions if vectorized else actions.squeeze(axis=0)), None

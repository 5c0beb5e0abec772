"""rlgen.agents.fast_policy: the functional forward gives SB3's actions, values and log-probabilities bit for bit."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import TRPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from rlgen.agents.fast_policy import install_fast_forward
from tests.fakes import LineEnv


def _venv(n=3):
    return DummyVecEnv([lambda: gym.wrappers.TimeLimit(LineEnv(horizon=20), 20) for _ in range(n)])


@pytest.mark.parametrize("policy_kwargs", [{"net_arch": [16, 16]},
                                           {"net_arch": {"pi": [8], "vf": [16, 4]}, "activation_fn": torch.nn.ReLU,
                                            "log_std_init": -0.7}])
def test_the_fast_forward_returns_what_sb3s_does_for_the_same_rng_state(policy_kwargs):
    model = PPO("MlpPolicy", _venv(), policy_kwargs=policy_kwargs, seed=0, device="cpu")
    fast = copy.deepcopy(model.policy)
    assert install_fast_forward(fast)
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(5, 2)), dtype=torch.float32)
    with torch.no_grad():
        for deterministic in (False, True):
            torch.manual_seed(7)
            expected = model.policy(obs, deterministic=deterministic)
            torch.manual_seed(7)
            got = fast(obs, deterministic=deterministic)
            for e, g in zip(expected, got, strict=True):
                assert e.shape == g.shape and torch.equal(e, g)
    assert not torch.equal(got[0], fast(obs)[0])  # stochastic: other draws give other actions


@pytest.mark.parametrize("algo", [PPO, TRPO, A2C])
def test_training_with_the_fast_forward_is_training_without_it(algo):
    def trained(fast):
        model = algo("MlpPolicy", _venv(2), n_steps=32, seed=3, device="cpu", policy_kwargs={"net_arch": [8]},
                     **({"batch_size": 32} if algo is not A2C else {}))
        assert install_fast_forward(model.policy) if fast else True
        model.learn(128)
        return torch.cat([p.detach().flatten() for p in model.policy.parameters()])

    assert torch.equal(trained(True), trained(False))


def test_the_fast_forward_takes_float64_observations_as_sb3_does():
    # Gymnasium's MuJoCo tasks observe float64; SB3 casts the observation to float32 before its networks
    class Float64LineEnv(LineEnv):
        def __init__(self):
            super().__init__(horizon=20)
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)

        def _obs(self):
            return super()._obs().astype(np.float64)

    venv = DummyVecEnv([lambda: gym.wrappers.TimeLimit(Float64LineEnv(), 20) for _ in range(2)])
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, seed=3, device="cpu", policy_kwargs={"net_arch": [8]})
    reference = copy.deepcopy(model)
    assert install_fast_forward(model.policy)
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(5, 2)), dtype=torch.float64)
    with torch.no_grad():
        torch.manual_seed(7)
        expected = reference.policy(obs.float())
        torch.manual_seed(7)
        got = model.policy(obs)
    assert all(torch.equal(e, g) for e, g in zip(expected, got, strict=True))
    model.learn(64)  # and trains on them


def test_other_policies_are_left_alone():
    discrete = PPO("MlpPolicy", "CartPole-v1", device="cpu")
    assert not install_fast_forward(discrete.policy)
    sde = PPO("MlpPolicy", _venv(1), use_sde=True, device="cpu")
    assert not install_fast_forward(sde.policy)
    elu = PPO("MlpPolicy", _venv(1), policy_kwargs={"activation_fn": torch.nn.ELU}, device="cpu")
    assert not install_fast_forward(elu.policy)
    assert "forward" not in vars(elu.policy)  # untouched: the class's own forward


def test_the_fast_predict_gives_sb3s_deterministic_actions_and_leaves_the_rest_to_sb3():
    # the evaluation's call at every env step: the actor's mean, clipped to the action space, for one observation
    # or a batch, float64 or float32; a stochastic action is SB3's own (the same draws for the same RNG state)
    model = PPO("MlpPolicy", _venv(), policy_kwargs={"net_arch": [16, 16], "log_std_init": 1.0}, seed=0,
                device="cpu")
    with torch.no_grad():  # a large output layer: some actions fall outside [-1, 1] and are clipped
        model.policy.action_net.weight.mul_(40.0)
        model.policy.action_net.bias.fill_(0.95)
    fast = copy.deepcopy(model.policy)
    assert install_fast_forward(fast)
    rng = np.random.default_rng(0)
    for obs in (rng.normal(size=(6, 2)), rng.normal(size=(6, 2)).astype(np.float32), rng.normal(size=2)):
        expected, _ = model.policy.predict(obs, deterministic=True)
        got, state = fast.predict(obs, deterministic=True)
        assert got.shape == expected.shape and got.dtype == expected.dtype and np.array_equal(got, expected)
        assert state is None
    many = rng.normal(size=(50, 2))
    assert np.array_equal(fast.predict(many, deterministic=True)[0], model.policy.predict(many, deterministic=True)[0])
    assert np.abs(fast.predict(many, deterministic=True)[0]).max() == 1.0  # some clipped, as SB3 clips them
    torch.manual_seed(5)
    expected, _ = model.policy.predict(obs, deterministic=False)
    torch.manual_seed(5)
    assert np.array_equal(fast.predict(obs, deterministic=False)[0], expected)
    with pytest.raises(ValueError):  # an observation of another shape: SB3's own error
        fast.predict(np.zeros(3), deterministic=True)
    # a deep copy computes with its own weights, not the original's
    twin = copy.deepcopy(fast)
    with torch.no_grad():
        twin.action_net.bias.add_(0.3)
    assert not np.array_equal(twin.predict(obs, deterministic=True)[0], fast.predict(obs, deterministic=True)[0])
    assert not torch.equal(twin(torch.as_tensor(obs[None]), deterministic=True)[0],
                           fast(torch.as_tensor(obs[None]), deterministic=True)[0])

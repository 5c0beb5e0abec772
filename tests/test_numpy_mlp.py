"""The numpy forward pass behind GAIL's and InfoGAIL's per-step rewards follows the torch module exactly."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from rlgen.imitation import Discriminator
from rlgen.imitation.infogail import CodePosterior
from rlgen.imitation.numpy_mlp import NumpyMLP


def rows(n=7, width=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, width)).astype(np.float32) * 3


def torch_out(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("activation", [nn.Tanh(), nn.ReLU(), nn.LeakyReLU(0.2), nn.ELU(0.7), nn.Identity()])
def test_numpy_forward_matches_torch_for_every_supported_layer(activation):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), activation, nn.Sequential(nn.Linear(16, 8, bias=False), activation),
                        nn.Linear(8, 3))
    fast = NumpyMLP.of(net)
    assert fast is not None
    x = rows()
    np.testing.assert_allclose(fast(x), torch_out(net, x), rtol=1e-5, atol=1e-5)


def test_numpy_forward_sees_optimiser_steps_loads_and_replaced_parameters():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1))
    fast = NumpyMLP.of(net)
    x = rows()
    before = fast(x).copy()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    optimizer.zero_grad()
    net(torch.from_numpy(x)).square().mean().backward()
    optimizer.step()  # in place
    after = fast(x)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, torch_out(net, x), rtol=1e-5, atol=1e-5)
    other = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1))
    net.load_state_dict(other.state_dict())  # copied in place
    np.testing.assert_allclose(fast(x), torch_out(other, x), rtol=1e-5, atol=1e-5)
    net[2].weight = nn.Parameter(torch.ones(1, 16))  # a new tensor: looked up again, not a stale view
    net[0].bias.data = torch.zeros(16)
    np.testing.assert_allclose(fast(x), torch_out(net, x), rtol=1e-5, atol=1e-5)


def hooked_linear() -> nn.Linear:
    layer = nn.Linear(5, 5)
    layer.register_forward_hook(lambda module, inputs, output: output * 2)
    return layer


def old_weight_norm() -> nn.Linear:
    with pytest.warns(FutureWarning):  # the hook-based API: an nn.Linear whose weight is rebuilt by a hook
        return nn.utils.weight_norm(nn.Linear(5, 5))


@pytest.mark.parametrize("make", [lambda: nn.utils.parametrizations.spectral_norm(nn.Linear(5, 5)),
                                  old_weight_norm, hooked_linear, lambda: nn.BatchNorm1d(5),
                                  lambda: nn.Dropout(0.5), lambda: nn.Softplus()])
def test_layers_it_cannot_run_give_none(make):
    assert NumpyMLP.of(nn.Sequential(nn.Linear(5, 5), make())) is None


def trained_discriminator(use_next_obs=True, **options):
    obs_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    act_space = spaces.Box(-1, 1, (2,), np.float32)
    torch.manual_seed(0)
    disc = Discriminator(obs_space, act_space, use_next_obs=use_next_obs, **options)
    rng = np.random.default_rng(1)
    expert = (rng.normal(size=(64, 4)), rng.uniform(-1, 1, (64, 2)), rng.normal(size=(64, 4)))
    policy = (rng.normal(1.0, 2.0, (64, 4)), rng.uniform(-1, 1, (64, 2)), rng.normal(size=(64, 4)))
    disc.set_expert_statistics(*expert)
    for _ in range(30):
        disc.train_step(expert, policy)
    x = (rng.normal(0.5, 3.0, (9, 4)), rng.uniform(-1, 1, (9, 2)), rng.normal(size=(9, 4)))
    x[0][0] = 100.0  # far outside the expert's inputs: clipped after standardising
    return disc, x


@pytest.mark.parametrize("options", [{}, {"spectral_norm": True}, {"activation": "relu", "gradient_penalty": 10.0}])
def test_discriminator_reward_matches_its_torch_logits(options):
    disc, x = trained_discriminator(**options)
    disc.eval()  # spectral norm's power iteration advances at every forward in training mode
    with torch.no_grad():
        logit = disc.logits(*x)
    expected = {"gail": nn.functional.softplus(logit), "log_d": nn.functional.logsigmoid(logit), "airl": logit}
    for kind, value in expected.items():
        reward = disc.reward(*x, kind=kind)
        assert reward.dtype == np.float32
        np.testing.assert_allclose(reward, value.numpy(), rtol=1e-5, atol=1e-6)
    # the numpy path runs where it can, and only there; it keeps up with later training
    assert bool(disc._numpy_net) == (not options.get("spectral_norm", False))
    rng = np.random.default_rng(2)
    disc.train_step(tuple(a + 1 for a in x), (rng.normal(size=(9, 4)), rng.uniform(-1, 1, (9, 2)), rng.normal(size=(9, 4))))
    disc.eval()
    with torch.no_grad():
        np.testing.assert_allclose(disc.reward(*x, kind="airl"), disc.logits(*x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"spectral_norm": True}, {"absorbing": True}, {"use_next_obs": False}])
def test_step_reward_is_reward_for_recorded_rows(options):
    """The unchecked per-step path gives reward()'s numbers (the fallback where it cannot run)."""
    options = dict(options)
    use_next_obs = options.pop("use_next_obs", True)
    disc, (s, a, s2) = trained_discriminator(use_next_obs, **options)
    disc.eval()
    s, a, s2 = (part[:3].astype(np.float32) for part in (s, a, s2))  # as the recorder gives them; row 0 clipped
    for kind in ("gail", "log_d", "airl"):
        fast = disc.step_reward(s, a, s2 if use_next_obs else None, kind=kind)
        assert fast.shape == (3,) and fast.dtype == np.float32
        np.testing.assert_array_equal(fast, disc.reward(s, a, s2 if use_next_obs else None, kind=kind))
        assert len(np.unique(fast)) == 3


@pytest.mark.parametrize("act_shape", [(2, 1), ()])
def test_step_reward_takes_box_actions_of_any_shape(act_shape):
    obs_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    disc = Discriminator(obs_space, spaces.Box(-1, 1, act_shape, np.float32))
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (3, *act_shape)).astype(np.float32)  # as GAIL records them: one row per env
    s = rng.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(disc.step_reward(s, acts, None), disc.reward(s, acts))


def test_a_stack_without_linear_layers_runs_in_numpy_too():
    fast = NumpyMLP.of(nn.Sequential(nn.Tanh()))
    x = rows()
    np.testing.assert_allclose(fast(x), np.tanh(x), rtol=1e-6)


def test_code_posterior_log_prob_in_numpy_matches_torch():
    torch.manual_seed(0)
    q = CodePosterior(5, 3, hidden=(16, 8))
    q.set_statistics(torch.full((5,), 0.5), torch.full((5,), 2.0))
    x, codes = rows(), np.array([0, 1, 2, 2, 1, 0, 1])
    for _ in range(5):
        q.train_step(torch.from_numpy(x), torch.from_numpy(codes))
    fast = q.log_prob_array(x, codes)
    assert q._numpy_net
    np.testing.assert_allclose(fast, q.log_prob(torch.from_numpy(x), torch.from_numpy(codes)).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert np.all(fast < 0) and np.allclose(np.exp([q.log_prob_array(x, np.full(7, c)) for c in range(3)]).sum(0), 1.0)

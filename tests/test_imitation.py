import copy
import dataclasses
import hashlib
import json
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper, VecNormalize

from rlgen.agents import ConfigError, RunConfig, collect_demos, evaluate, load_run, train
from rlgen.cli import main
from rlgen.imitation import (
    GAIL,
    DemoError,
    Discriminator,
    InfoGAIL,
    Trajectories,
    Trajectory,
    behaviour_cloning,
    from_minari_episodes,
    load_demos,
    save_demos,
    to_minari_episodes,
)
from rlgen.imitation import collect_demos as collect_from_policy
from tests.fakes import LineEnv, line_venv, scalar_tags
from tests.fakes import one_line_error as _one_line_error

REACH_ID = "rlgen-test/Reach1D-v0"


class Reach1D(gym.Env):
    """Drive x to 0: x' = x + 0.25 a, reward -|x'|, 10 steps, x0 ~ U(-1, 1). The scripted expert
    a = clip(-4x) gets about -0.6; random actions about -6.5. Small enough for GAIL to learn in seconds."""

    def __init__(self, horizon: int = 10):
        self.observation_space = spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.horizon, self.t, self.x = horizon, 0, 0.0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.x = 0, float(self.np_random.uniform(-1.0, 1.0))
        return np.array([self.x], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        self.x = float(np.clip(self.x + 0.25 * float(np.clip(action[0], -1.0, 1.0)), -2.0, 2.0))
        return np.array([self.x], dtype=np.float32), -abs(self.x), False, self.t >= self.horizon, {}


if REACH_ID not in gym.registry:
    gym.register(REACH_ID, entry_point=Reach1D)


def expert(obs):
    return np.clip(-4.0 * np.asarray(obs, dtype=np.float32), -1.0, 1.0)


def _line_demos(n=3):
    return collect_from_policy(lambda obs: np.array([0.5], dtype=np.float32), LineEnv(horizon=5, reward=1.0), n)


def _reach_demos(n=10, env=None):
    return collect_from_policy(expert, env if env is not None else Reach1D(), n)


def _mean_return(policy, episodes=30, seed=100):
    env, total = Reach1D(), 0.0
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += reward
            done = terminated or truncated
    return total / episodes


def _hand_made_demos():
    rng = np.random.default_rng(0)
    episodes = [Trajectory(rng.normal(size=(t + 1, 2)), rng.uniform(-1, 1, (t, 1)).astype(np.float32),
                           rng.normal(size=t), terminated)
                for t, terminated in ((3, True), (6, False), (1, True), (5, False))]
    return Trajectories.from_episodes(episodes, env_id="Line-v0")


# -- the discriminator ---------------------------------------------------------------------------------
def _separable_problem(n=512, seed=0):
    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(99).normal(size=(3, 2))
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    expert_acts = np.tanh(obs @ weights).astype(np.float32)
    random_acts = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    return obs, expert_acts, random_acts


_SPACES = (spaces.Box(-np.inf, np.inf, (3,), np.float32), spaces.Box(-1.0, 1.0, (2,), np.float32))


def test_discriminator_separates_expert_from_random_pairs():
    torch.manual_seed(0)
    obs, expert_acts, random_acts = _separable_problem()
    disc = Discriminator(*_SPACES)
    disc.set_expert_statistics(obs, expert_acts)
    first = disc.train_step((obs, expert_acts), (obs, random_acts))
    for _ in range(150):
        stats = disc.train_step((obs, expert_acts), (obs, random_acts))
    assert first["loss"] == pytest.approx(np.log(2), abs=1e-3)  # zero-initialised output: D = 1/2
    assert stats["loss"] < 0.3 and stats["acc_expert"] > 0.9 and stats["acc_policy"] > 0.9
    test_obs, test_expert, test_random = _separable_problem(seed=1)  # held-out pairs
    d_expert = torch.sigmoid(disc.logits(test_obs, test_expert)).detach().numpy()
    d_random = torch.sigmoid(disc.logits(test_obs, test_random)).detach().numpy()
    assert (d_expert > 0.5).mean() > 0.9 and (d_random < 0.5).mean() > 0.9
    assert disc.reward(test_obs, test_expert).mean() > disc.reward(test_obs, test_random).mean() + 1.0


def test_reward_kinds_are_functions_of_one_logit():
    obs, expert_acts, random_acts = _separable_problem(n=64)
    disc = Discriminator(*_SPACES)
    np.testing.assert_allclose(disc.reward(obs, random_acts), np.log(2), rtol=1e-6)  # constant before training
    np.testing.assert_allclose(disc.reward(obs, random_acts, kind="log_d"), -np.log(2), rtol=1e-6)
    np.testing.assert_allclose(disc.reward(obs, random_acts, kind="airl"), 0.0)
    disc.set_expert_statistics(obs, expert_acts)
    for _ in range(20):
        disc.train_step((obs, expert_acts), (obs, random_acts))
    gail, log_d, airl = (disc.reward(obs, random_acts, kind=k) for k in ("gail", "log_d", "airl"))
    logit = disc.logits(obs, random_acts).detach().numpy()
    np.testing.assert_allclose(gail, np.logaddexp(0, logit), rtol=1e-5)  # -log(1 - D)
    np.testing.assert_allclose(airl, logit, rtol=1e-5)
    np.testing.assert_allclose(gail + log_d, airl, atol=1e-5)  # softplus(l) - softplus(-l) = l
    with pytest.raises(ValueError, match="unknown reward kind 'bogus'"):
        disc.reward(obs, random_acts, kind="bogus")


@pytest.mark.parametrize("options", [{}, {"use_next_obs": True}, {"spectral_norm": True}])
def test_discriminator_rewards_zero_rows_and_names_mismatched_next_observations(options):
    disc = Discriminator(*_SPACES, **options)
    obs, acts = np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32)
    for kind in ("gail", "log_d", "airl"):
        reward = disc.reward(obs, acts, obs, kind=kind)
        assert reward.shape == (0,) and reward.dtype == np.float32
    if options.get("use_next_obs"):
        obs, acts = np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)
        with pytest.raises(ValueError, match="4 observations but 3 next observations"):
            disc.reward(obs, acts, np.zeros((3, 3), np.float32))
        with pytest.raises(ValueError, match="next observations of width 3, got 2"):
            disc.reward(obs, acts, np.zeros((4, 2), np.float32))


@pytest.mark.parametrize("options", [
    {"spectral_norm": True},
    {"gradient_penalty": 1.0},
    {"gradient_penalty": 1.0, "penalty_kind": "r1"},
    {"label_smoothing": 0.2, "input_noise": 0.1},
    {"use_next_obs": True, "hidden": [32], "activation": "relu"},
])
def test_discriminator_stabilisers_still_learn(options):
    torch.manual_seed(0)
    obs, expert_acts, random_acts = _separable_problem(n=256)
    disc = Discriminator(*_SPACES, **options)
    extra = (obs[::-1].copy(),) if options.get("use_next_obs") else ()
    disc.set_expert_statistics(obs, expert_acts, *extra)
    for _ in range(100):
        stats = disc.train_step((obs, expert_acts, *extra), (obs, random_acts, *extra))
    assert np.isfinite(stats["loss"])
    # balanced accuracy > 0.7 (a 1-Lipschitz spectral-norm net has small logits and learns slowest)
    assert stats["acc_expert"] + stats["acc_policy"] > 1.4
    if options.get("gradient_penalty"):
        assert stats["gradient_penalty"] >= 0


def test_discrete_actions_are_one_hot_and_bad_spaces_are_refused():
    disc = Discriminator(spaces.Box(-1, 1, (2,)), spaces.Discrete(3))
    features = disc.features(np.zeros((2, 2)), np.array([0, 2]))
    np.testing.assert_array_equal(features[:, 2:].numpy(), [[1, 0, 0], [0, 0, 1]])
    with pytest.raises(TypeError, match="Box observations, got a Discrete observation space"):
        Discriminator(spaces.Discrete(4), spaces.Discrete(2))
    with pytest.raises(ValueError, match="unknown discriminator activation 'sigmoidish'"):
        Discriminator(*_SPACES, activation="sigmoidish")


def test_the_discriminator_loss_is_its_terms():
    """The loss minimised is half the class-balanced BCE (expert label 1 - label_smoothing), minus
    entropy_bonus x the mean Bernoulli entropy of the logits, plus gradient_penalty x the penalty: each option
    reaches the loss with its sign and weight, not only "still learns"."""
    torch.manual_seed(0)
    obs, expert_acts, random_acts = _separable_problem(n=64)
    disc = Discriminator(*_SPACES, label_smoothing=0.2, entropy_bonus=0.05, gradient_penalty=3.0)
    disc.set_expert_statistics(obs, expert_acts)
    for _ in range(20):  # logits away from 0, where every term is visible
        disc.train_step((obs, expert_acts), (obs, random_acts))
    terms = disc.loss((obs, expert_acts), (obs, random_acts))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    with torch.no_grad():
        le, lp = disc.logits(obs, expert_acts), disc.logits(obs, random_acts)
        p = torch.sigmoid(torch.cat([le, lp]))
        entropy = -(p * torch.log(p) + (1 - p) * torch.log(1 - p)).mean()
        expected = (0.5 * (bce(le, torch.full_like(le, 0.8)) + bce(lp, torch.zeros_like(lp))) - 0.05 * entropy
                    + 3.0 * terms["gradient_penalty"])
    assert float(terms["gradient_penalty"]) > 1e-3 and float(entropy) > 1e-3
    assert float(terms["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)


def _gp_spy(monkeypatch):
    import rlgen.imitation.discriminator as discriminator_module

    seen = []
    original = discriminator_module.gradient_penalty

    def spy(net, real, fake, **kwargs):
        seen.append((real.detach().clone(), fake.detach().clone()))
        return original(net, real, fake, **kwargs)

    monkeypatch.setattr(discriminator_module, "gradient_penalty", spy)
    return seen


def test_the_gradient_penalty_sees_every_policy_transition_when_the_expert_has_fewer(monkeypatch):
    """10 expert pairs against a pool of 64 policy transitions: the WGAN-GP interpolates reach every policy
    row (each paired with a random expert row), not only the pool's 10 oldest."""
    seen = _gp_spy(monkeypatch)
    gail = GAIL(line_venv(n=2, horizon=50), _line_demos(n=2), disc_transitions=64, gradient_penalty=10.0, seed=0)
    gail.seed(0)
    gail.reset()
    rng = np.random.default_rng(0)
    for _ in range(32):
        gail.step(rng.uniform(-1, 1, (2, 1)).astype(np.float32))
    assert gail.n_disc_steps == 1 and len(gail.expert[0]) == 10
    (real, fake), = seen
    disc = gail.discriminator
    pool = disc.standardise(disc.features(gail.buffer.obs[:64], gail.buffer.actions[:64]))
    expert = disc.standardise(disc.features(*gail.expert))
    assert len(fake) == len(real) == 64
    torch.testing.assert_close(torch.sort(fake, dim=0).values, torch.sort(pool, dim=0).values)
    assert all(bool((row == expert).all(dim=1).any()) for row in real)  # expert rows, drawn with replacement


@pytest.mark.parametrize("options", [{"input_noise": 0.1}, {"gradient_penalty": 10.0}])
def test_the_gail_seed_decides_the_discriminators_noise_and_penalty(options):
    """Input noise and the gradient penalty's draws come from the wrapper's seeded generator: the same seed
    gives the same discriminator whatever torch's global RNG holds, and the global RNG (the agent's action
    sampling) is not moved by a discriminator step."""
    params = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        gail = GAIL(line_venv(n=2), _line_demos(), disc_transitions=8, seed=0, **options)
        gail.seed(0)
        gail.reset()
        before = torch.get_rng_state()
        for _ in range(8):
            gail.step(np.full((2, 1), 0.3, dtype=np.float32))
        assert gail.n_disc_steps == 2 and torch.equal(torch.get_rng_state(), before)
        params.append(torch.cat([p.detach().flatten() for p in gail.discriminator.parameters()]))
    assert torch.equal(*params)


# -- demonstrations ------------------------------------------------------------------------------------
def test_demos_round_trip_exactly(tmp_path):
    trajs = _hand_made_demos()
    save_demos(tmp_path / "d.npz", trajs)
    loaded = load_demos(tmp_path / "d.npz")
    assert loaded.env_id == "Line-v0" and len(loaded) == 4
    assert (loaded.obs_shape, loaded.act_shape) == ((2,), (1,))
    assert (loaded.obs_dtype, loaded.act_dtype) == (np.float64, np.float32)
    for a, b in zip(trajs, loaded, strict=True):
        for name in ("obs", "acts", "rewards"):
            assert getattr(a, name).dtype == getattr(b, name).dtype
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert a.terminated == b.terminated
    assert loaded.fingerprint() == trajs.fingerprint()
    obs, acts, next_obs, dones = loaded.transitions()
    assert len(obs) == len(acts) == len(next_obs) == 15
    np.testing.assert_array_equal(next_obs[:3], trajs[0].obs[1:])  # s' of the last step is the final obs
    assert dones.tolist().count(True) == 2  # the last steps of the two terminated episodes


def test_subsampling_keeps_every_kth_pair(tmp_path):
    trajs = _hand_made_demos()
    save_demos(tmp_path / "d.npz", trajs)
    sub = load_demos(tmp_path / "d.npz", subsample=2, seed=3)
    assert sub.subsample == 2 and len(sub.sample_offsets) == 4
    assert load_demos(tmp_path / "d.npz", subsample=2, seed=3).sample_offsets == sub.sample_offsets
    obs, acts, next_obs, _ = sub.transitions()
    expected_obs, expected_acts, expected_next = [], [], []
    for traj, offset in zip(trajs, sub.sample_offsets, strict=True):
        idx = np.arange(min(offset, len(traj) - 1), len(traj), 2)
        expected_obs.append(traj.obs[idx])
        expected_acts.append(traj.acts[idx])
        expected_next.append(traj.obs[idx + 1])
    np.testing.assert_array_equal(obs, np.concatenate(expected_obs))
    np.testing.assert_array_equal(acts, np.concatenate(expected_acts))
    np.testing.assert_array_equal(next_obs, np.concatenate(expected_next))
    assert 15 // 2 <= len(obs) < 15
    assert len(load_demos(tmp_path / "d.npz", n_episodes=2)) == 2


def test_subsampling_draws_random_offsets_and_keeps_every_episode():
    """Each episode starts its every-k-th pairs at its own random offset in [0, k) (the GAIL paper's), and an
    episode shorter than its offset keeps its last pair instead of vanishing from the demos."""
    trajs = _hand_made_demos()  # episodes of 3, 6, 1 and 5 steps
    offsets = Trajectories.from_episodes(list(trajs) * 10).subsampled(20, seed=0).sample_offsets
    assert len(set(offsets)) > 5 and min(offsets) >= 0 and max(offsets) < 20
    late = dataclasses.replace(trajs, subsample=4, sample_offsets=(3, 3, 3, 3))
    obs, _, _, dones = late.transitions()
    np.testing.assert_array_equal(obs, np.stack([trajs[0].obs[2], trajs[1].obs[3], trajs[2].obs[0], trajs[3].obs[3]]))
    assert dones.tolist() == [True, False, True, False]  # the terminated episodes' last pairs


def test_n_episodes_keeps_the_first_episodes_of_the_file(tmp_path):
    """A benchmark's fewer-demos cells take the first n episodes of the file its more-demos cells use whole."""
    save_demos(tmp_path / "d.npz", _hand_made_demos())
    first_two = load_demos(tmp_path / "d.npz", n_episodes=2)
    assert [len(traj) for traj in first_two] == [3, 6]
    assert first_two.fingerprint() == _hand_made_demos()[:2].fingerprint()


def test_minari_episodes_convert_both_ways():
    trajs = _hand_made_demos()
    episodes = to_minari_episodes(trajs)
    assert episodes[0]["terminations"].tolist() == [False, False, True]
    assert episodes[1]["truncations"][-1] and not episodes[1]["terminations"].any()
    assert len(episodes[0]["observations"]) == len(episodes[0]["actions"]) + 1
    back = from_minari_episodes(episodes, env_id="Line-v0")
    assert [t.terminated for t in back] == [t.terminated for t in trajs]
    for a, b in zip(trajs, back, strict=True):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.acts, b.acts)
    assert back.fingerprint() == trajs.fingerprint()


def test_demos_for_another_env_get_one_line_errors_naming_both(tmp_path):
    save_demos(tmp_path / "d.npz", _hand_made_demos())
    with pytest.raises(DemoError) as info:
        load_demos(tmp_path / "d.npz", observation_space=spaces.Box(-1, 1, (3,)))
    assert "(2,)" in str(info.value) and "(3,)" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DemoError, match=r"actions of shape \(1,\).*this env has \(4,\)"):
        load_demos(tmp_path / "d.npz", action_space=spaces.Box(-1, 1, (4,)))
    with pytest.raises(DemoError, match="recorded on Line-v0 .* not on Hopper-v5"):
        load_demos(tmp_path / "d.npz", env_id="Hopper-v5")
    with pytest.raises(DemoError, match="observations of shape"):
        GAIL(line_venv(reward=1.0), Trajectories.from_episodes(
            [Trajectory(np.zeros((3, 5)), np.zeros((2, 1), np.float32), np.zeros(2))]))


def test_gail_refuses_to_sit_above_a_vecnormalize_that_normalises_observations():
    from stable_baselines3.common.vec_env import VecNormalize

    # the discriminator would compare normalised learner observations with raw expert ones
    with pytest.raises(ValueError, match=r"VecNormalize\(GAIL\(venv, demos\)\)") as info:
        GAIL(VecNormalize(line_venv(n=2)), _line_demos())
    assert "\n" not in str(info.value)
    GAIL(VecNormalize(line_venv(n=2), norm_obs=False), _line_demos())  # rewards alone: fine
    VecNormalize(GAIL(line_venv(n=2), _line_demos()))  # the order rlgen's own stack uses


def test_an_unreadable_demo_file_is_a_one_line_error(tmp_path, monkeypatch):
    save_demos(tmp_path / "d.npz", _hand_made_demos())
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self.name == "d.npz":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(DemoError, match="cannot read demo file .*d.npz: Permission denied"):
        load_demos(tmp_path / "d.npz")


def test_truncated_or_corrupt_files_get_one_line_errors(tmp_path):
    save_demos(tmp_path / "d.npz", _hand_made_demos())
    data = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npz").write_bytes((tmp_path / "array.npy").read_bytes())
    for name, message in (("cut", "truncated or corrupt"), ("junk", r"not an rlgen demo file \(not an .npz archive"),
                          ("array", "not an .npz archive"), ("other", "not an rlgen demo file"),
                          ("missing", "not found")):
        with pytest.raises(DemoError, match=message) as info:
            load_demos(tmp_path / f"{name}.npz")
        assert "\n" not in str(info.value)
    # a well-formed zip whose offsets disagree with its arrays
    with zipfile.ZipFile(tmp_path / "d.npz") as archive, zipfile.ZipFile(tmp_path / "bad.npz", "w") as out:
        for item in archive.namelist():
            payload = archive.read(item)
            if item == "episode_starts.npy":
                buffer = __import__("io").BytesIO()
                np.save(buffer, np.array([0, 2, 4, 5, 99]))
                payload = buffer.getvalue()
            out.writestr(item, payload)
    with pytest.raises(DemoError, match="inconsistent"):
        load_demos(tmp_path / "bad.npz")


@pytest.mark.parametrize("field, value, message", [
    ("obs_dtype", np.array("foo"), "shapes or dtypes cannot be read"),
    ("obs_shape", np.array(["a"]), "shapes or dtypes cannot be read"),
    ("schema_version", np.array("x"), "is no integer"),
    ("episode_starts", np.array([0.0, 3.0, 9.0, 10.0, 15.0]), "inconsistent"),
    ("rewards", np.zeros((15, 1)), "inconsistent"),
])
def test_a_demo_file_with_unreadable_metadata_is_a_one_line_error(tmp_path, capsys, field, value, message):
    """Fields a damaged or hand-made file may hold in place of shapes, dtypes and integer offsets: a DemoError
    naming the file (one line from `rlgen demos info` too), not a TypeError traceback."""
    save_demos(tmp_path / "d.npz", _hand_made_demos())
    arrays = dict(np.load(tmp_path / "d.npz"))
    arrays[field] = value
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DemoError, match=message) as info:
        load_demos(tmp_path / "bad.npz")
    assert "\n" not in str(info.value) and "bad.npz" in str(info.value)
    _one_line_error(capsys, ["demos", "info", str(tmp_path / "bad.npz")], message)


def test_empty_demos_are_refused(tmp_path):
    with pytest.raises(DemoError, match="no episodes"):
        Trajectories.from_episodes([])
    with pytest.raises(DemoError, match="at least one step"):
        Trajectory(np.zeros((1, 2)), np.zeros((0, 1)), np.zeros(0))
    with pytest.raises(DemoError, match="needs 4 observations"):
        Trajectory(np.zeros((3, 2)), np.zeros((3, 1)), np.zeros(3))
    arrays = dict(np.load(_save(tmp_path, _hand_made_demos())))
    arrays.update(terminated=np.zeros(0, bool), episode_starts=np.zeros(1, np.int64), obs=np.zeros((0, 2)),
                  acts=np.zeros((0, 1), np.float32), rewards=np.zeros(0))
    np.savez(tmp_path / "empty.npz", **arrays)
    with pytest.raises(DemoError, match="holds no episodes"):
        load_demos(tmp_path / "empty.npz")


def _save(tmp_path, trajs):
    save_demos(tmp_path / "demos.npz", trajs)
    return tmp_path / "demos.npz"


def test_collect_records_raw_observations_and_clipped_actions():
    trajs = collect_from_policy(lambda obs: np.array([5.0]), Reach1D(), 2, seed=7)
    env = Reach1D()
    first, _ = env.reset(seed=7)
    assert len(trajs) == 2 and trajs.lengths.tolist() == [10, 10]
    np.testing.assert_array_equal(trajs[0].obs[0], first)
    assert trajs[0].obs.shape == (11, 1) and trajs[0].acts.shape == (10, 1)
    np.testing.assert_array_equal(trajs[0].acts, 1.0)  # clipped to the action bounds, as the env saw it
    assert not trajs[0].terminated
    np.testing.assert_allclose(trajs[0].rewards, -np.abs(trajs[0].obs[1:, 0]), rtol=1e-6)


def test_collect_steps_an_env_that_looks_its_discrete_action_up():
    # FrozenLake indexes P[s][a] with the action: a 0-d array (what a policy's predict gives) is unhashable there
    env = gym.make("FrozenLake-v1", is_slippery=False)
    trajs = collect_from_policy(lambda obs: np.array([1]), env, 1, seed=0)  # always down: into the hole at (3, 0)
    assert trajs[0].acts.tolist() == [1, 1, 1] and trajs[0].terminated


def test_collect_with_a_minimum_return_keeps_the_first_episodes_that_reach_it():
    still = lambda obs: np.array([0.0], dtype=np.float32)  # noqa: E731  (x stays put: return -10 |x0|)
    trajs = collect_from_policy(still, Reach1D(), 3, seed=0, min_return=-3.0)
    env, passing = Reach1D(), []
    for seed in range(12):  # the seeds whose start is within 0.3 of the goal, in order
        x0 = env.reset(seed=seed)[0]
        if -10 * abs(float(x0[0])) >= -3.0:
            passing.append(x0)
    assert len(trajs) == 3 and all(r >= -3.0 for r in trajs.returns)
    for episode, x0 in zip(trajs, passing[:3], strict=True):
        np.testing.assert_array_equal(episode.obs[0], x0)
    unfiltered = collect_from_policy(still, Reach1D(), 3, seed=0)
    assert (unfiltered.returns < -3.0).any()  # the filter did leave episodes out
    with pytest.raises(DemoError, match=r"only 0 of 6 episodes reached the minimum return 1 \(the others: -"):
        collect_from_policy(still, Reach1D(), 3, seed=0, min_return=1.0, max_attempts=6)


# -- the GAIL wrapper ----------------------------------------------------------------------------------
def test_gail_replaces_the_reward_and_keeps_the_env_reward_in_info():
    gail = GAIL(line_venv(reward=1.0, n=2, horizon=3), _line_demos(), disc_transitions=100)
    first = gail.reset()
    for step in range(4):
        _, rewards, dones, infos = gail.step(np.full((2, 1), 0.5, dtype=np.float32))
        np.testing.assert_allclose(rewards, np.log(2), rtol=1e-6)  # untrained discriminator: D = 1/2
        assert [info["env_reward"] for info in infos] == [1.0, 1.0]
        assert "terminal_observation" in infos[0] if step == 2 else "terminal_observation" not in infos[0]
    obs, acts, next_obs = gail.buffer.contents()
    assert obs.shape == (8, 2) and acts.shape == (8, 1)
    np.testing.assert_allclose(obs[:2], first)
    # rows 4, 5 are the third step: s' is the terminal observation (x + 100), not the reset observation
    assert np.all(next_obs[4:6, 0] > 99)
    assert np.all(np.abs(obs[6:8, 0]) < 1)  # the next transition starts from the reset observation
    np.testing.assert_allclose(acts, 0.5)


def test_gail_without_an_agent_trains_the_discriminator_every_disc_transitions_transitions():
    gail = GAIL(line_venv(reward=1.0, n=2, horizon=3), _line_demos(), disc_transitions=8, seed=1)
    gail.reset()
    for _ in range(3):
        gail.step(np.full((2, 1), -1.0, dtype=np.float32))
    assert gail.n_updates == 0
    _, before, _, _ = gail.step(np.full((2, 1), -1.0, dtype=np.float32))
    assert gail.n_updates == 1 and set(gail.last_stats) >= {"loss", "acc_expert", "acc_policy"}
    np.testing.assert_allclose(before, np.log(2), rtol=1e-6)  # this step's reward came from the old model
    _, after, _, _ = gail.step(np.full((2, 1), -1.0, dtype=np.float32))
    assert np.all(after < np.log(2))  # actions of -1 are not the expert's 0.5: less reward now


def test_gail_refuses_bad_settings_and_non_finite_observations():
    with pytest.raises(TypeError, match="Box observation space"):
        GAIL(DummyVecEnv([lambda: gym.make("FrozenLake-v1")]), _line_demos())
    with pytest.raises(ValueError, match="unknown GAIL reward 'bogus'"):
        GAIL(line_venv(reward=1.0), _line_demos(), reward="bogus")
    with pytest.raises(ValueError, match="disc_transitions must be a positive integer"):
        GAIL(line_venv(reward=1.0), _line_demos(), disc_transitions=0)
    gail = GAIL(line_venv(reward=1.0, n=1, horizon=50, nan_at=3), _line_demos())
    gail.reset()
    gail.step(np.zeros((1, 1), dtype=np.float32))
    gail.step(np.zeros((1, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="non-finite observation at transition 2"):
        gail.step(np.zeros((1, 1), dtype=np.float32))


class _Capture(KVWriter):
    def __init__(self):
        self.rows = []

    def write(self, key_values, key_excluded, step=0):
        self.rows.append(dict(key_values))


class _EnvReturnCheck(BaseCallback):
    """Sums info["env_reward"] per env and compares with Monitor's episode return at each episode end."""

    def __init__(self):
        super().__init__()
        self.running, self.checked, self.agent_rewards = None, 0, []

    def _on_rollout_end(self):  # what the agent learns from: the rollout buffer, once GAIL's callback filled it
        self.agent_rewards.extend(self.model.rollout_buffer.rewards.ravel().tolist())

    def _on_step(self):
        infos, dones = self.locals["infos"], self.locals["dones"]
        if self.running is None:
            self.running = np.zeros(len(infos))
        self.running += [info["env_reward"] for info in infos]
        for i in np.flatnonzero(dones):
            assert infos[i]["episode"]["r"] == pytest.approx(self.running[i], abs=1e-5)
            self.running[i] = 0.0
            self.checked += 1
        return True


def test_sb3_reports_the_env_return_and_tensorboard_gets_gail_keys():
    venv = DummyVecEnv([lambda: Monitor(Reach1D()) for _ in range(2)])
    gail = GAIL(venv, _reach_demos(), disc_transitions=64)
    model = PPO("MlpPolicy", gail, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [8]},
                seed=0, device="cpu")
    capture = _Capture()
    model.set_logger(Logger(folder=None, output_formats=[capture]))
    check = _EnvReturnCheck()
    model.learn(128, callback=[gail.callback, check])
    assert check.checked >= 10
    assert min(check.agent_rewards) > 0  # the agent learned from -log(1 - D) > 0 ...
    ep_returns = [info["r"] for info in model.ep_info_buffer]
    assert max(ep_returns) < 0  # ... while SB3's episode returns are the env's (-|x| < 0)
    keys = set().union(*capture.rows)
    assert {"gail/disc_loss", "gail/disc_acc_expert", "gail/disc_acc_policy", "gail/reward_mean"} <= keys
    assert any("rollout/ep_rew_mean" in row and row["rollout/ep_rew_mean"] < 0 for row in capture.rows)


def test_gail_moves_the_learner_to_the_expert_return():
    """PPO on the GAIL reward alone (10 scripted demos, 12k steps, ~5 s) closes most of the gap from the
    untrained policy to the expert on the true env return."""
    torch.manual_seed(0)
    demos = _reach_demos(10)
    venv = DummyVecEnv([lambda: Monitor(Reach1D()) for _ in range(4)])
    gail = GAIL(venv, demos, disc_transitions=512, seed=0)
    env = VecNormalize(gail, norm_obs=False, norm_reward=True)  # reward normalisation outermost
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=128, n_epochs=10, learning_rate=1e-3,
                policy_kwargs={"net_arch": [32], "log_std_init": -1.0}, seed=0, device="cpu")
    policy = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
    before, expert_return = _mean_return(policy), _mean_return(expert)
    random_return = _mean_return(lambda obs: np.random.default_rng(0).uniform(-1, 1, 1))
    model.learn(12_288)
    after = _mean_return(policy)
    assert before < 0.7 * random_return  # the untrained policy is about as bad as random (~-6)
    assert after > before + 0.75 * (expert_return - before), (before, after, expert_return)
    assert gail.n_updates == 24


def test_gail_state_round_trip(tmp_path):
    demos = _line_demos()
    gail = GAIL(line_venv(reward=1.0, n=2), demos, disc_transitions=4)
    gail.reset()
    for _ in range(5):
        gail.step(np.full((2, 1), -0.3, dtype=np.float32))
    gail.save_state(tmp_path)
    other = GAIL(line_venv(reward=1.0, n=2), demos, disc_transitions=4, seed=9)
    other.load_state(tmp_path)
    for (name, a), (_, b) in zip(gail.discriminator.state_dict().items(),
                                 other.discriminator.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert (other.n_updates, other.num_transitions) == (gail.n_updates, gail.num_transitions) == (2, 10)
    for a, b in zip(gail.buffer.contents(), other.buffer.contents(), strict=True):
        np.testing.assert_array_equal(a, b)
    obs, acts, nxt = gail.buffer.contents()
    np.testing.assert_array_equal(gail.discriminator_reward(obs, acts, nxt), other.discriminator_reward(obs, acts, nxt))
    with pytest.raises(ValueError, match="other demonstrations"):
        GAIL(line_venv(reward=1.0, n=2), _line_demos(n=4), disc_transitions=4).load_state(tmp_path)
    (tmp_path / "gail.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot load GAIL state"):
        other.load_state(tmp_path)


def test_gail_and_bc_with_discrete_actions():
    def balance(obs):  # a scripted CartPole controller: push towards where the pole falls
        return int(obs[2] + 0.5 * obs[3] > 0)

    demos = collect_from_policy(balance, "CartPole-v1", 2)
    assert demos.act_shape == () and demos.returns.min() > 100
    venv = DummyVecEnv([lambda: Monitor(gym.make("CartPole-v1")) for _ in range(2)])
    gail = GAIL(venv, demos, disc_transitions=16, use_next_obs=True)
    gail.reset()
    for _ in range(9):
        _, rewards, _, _ = gail.step(np.array([0, 1]))
    assert gail.n_updates == 1 and np.all(np.isfinite(rewards))
    model = PPO("MlpPolicy", venv, policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    obs, acts, _, _ = demos.transitions()
    before = behaviour_cloning(model.policy, obs, acts, gradient_steps=1, learning_rate=1e-9)["action_error"]
    after = behaviour_cloning(model.policy, obs, acts, gradient_steps=1000, learning_rate=1e-2)["action_error"]
    assert after < 0.1 < before, (before, after)


# -- GAIL's schedule -----------------------------------------------------------------------------------
class _RolloutCheck(BaseCallback):
    """Listed after the GAIL callback: per rollout, the discriminator steps taken at its end (and the actions of
    their policy minibatches), and whether the discriminator stayed as it was from the rollout's start to its
    last step. Checks each step's reward against the discriminator in force."""

    def __init__(self, gail):
        super().__init__()
        self.gail, self.rollouts, self.batches = gail, [], []
        original = gail.discriminator.train_step

        def train_step(expert, policy):
            self.batches.append(np.asarray(policy[1]).reshape(-1).copy())
            return original(expert, policy)

        gail.discriminator.train_step = train_step

    def _params(self):
        return torch.cat([p.detach().flatten() for p in self.gail.discriminator.parameters()]).clone()

    def _on_rollout_start(self):
        self.rollouts.append({"start": self._params(), "steps_before": self.gail.n_disc_steps, "unchanged": True,
                              "discriminator": copy.deepcopy(self.gail.discriminator)})
        self.batches = []

    def _on_step(self):
        rollout = self.rollouts[-1]
        rollout["unchanged"] &= torch.equal(self._params(), rollout["start"])
        return True

    def _on_rollout_end(self):  # after GAIL's callback filled in the rollout's rewards (and took its steps)
        gail, rollout = self.gail, self.rollouts[-1]
        rows = gail.buffer.order()[-gail.num_envs * len(self.model.rollout_buffer.rewards):]  # this rollout's
        in_force = rollout.pop("discriminator")  # every reward of the rollout: the discriminator it started with
        np.testing.assert_allclose(self.model.rollout_buffer.rewards.ravel(),
                                   in_force.reward(gail.buffer.obs[rows], gail.buffer.actions[rows]), rtol=1e-6)
        rollout["steps"] = self.gail.n_disc_steps - rollout["steps_before"]
        rollout["batches"] = self.batches
        rollout["actions"] = self.gail.buffer.actions[self.gail.buffer.order()].reshape(-1).copy()


@pytest.mark.parametrize("n_envs, n_steps", [(1, 16), (2, 32), (4, 64)])
def test_gail_takes_discriminator_steps_per_transition_whatever_the_rollout_size(n_envs, n_steps):
    """The same GAIL settings (one step per 64 transitions, minibatches of 64) on rollouts of 16, 64 and 256
    transitions: every fourth rollout takes a step, every rollout one, every rollout four, so each layout
    takes 8 steps in 512 transitions; a rollout's four steps see four fresh quarters of it, and every reward
    of a rollout comes from the discriminator it started with."""
    gail = GAIL(line_venv(n=n_envs, horizon=3), _line_demos(), disc_transitions=64, seed=0)
    model = PPO("MlpPolicy", gail, n_steps=n_steps, batch_size=n_steps * n_envs, n_epochs=1,
                policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    check = _RolloutCheck(gail)
    model.learn(512, callback=[gail.callback, check])
    rollout_size = n_steps * n_envs
    assert gail.n_disc_steps == 8 and len(check.rollouts) == 512 // rollout_size
    steps = [rollout["steps"] for rollout in check.rollouts]
    if rollout_size == 16:
        assert steps == [0, 0, 0, 1] * 8
    else:
        assert steps == [rollout_size // 64] * len(steps)
    assert all(rollout["unchanged"] for rollout in check.rollouts)
    for rollout in check.rollouts:
        if not rollout["steps"]:
            continue
        seen = np.concatenate(rollout["batches"])
        assert all(len(batch) == 64 for batch in rollout["batches"])
        # the steps' minibatches together: each of the latest max(rollout, 64) transitions exactly once
        np.testing.assert_array_equal(np.sort(seen), np.sort(rollout["actions"][-max(rollout_size, 64):]))
    assert gail.n_updates == (8 if rollout_size <= 64 else 2)  # rounds: the rollout ends that took steps


def _drive_rollout(gail, steps, rng):
    for _ in range(steps):
        gail.step(rng.uniform(-1, 1, (gail.num_envs, 1)).astype(np.float32))
    return gail.end_rollout()


def test_a_saved_gail_state_resumes_the_schedule_where_it_stopped(tmp_path):
    """Rollouts of 40 transitions, one step per 64: what a rollout leaves of a step carries over, in the saved
    state too. A wrapper loaded from a state then takes the same steps at the same rollout ends, on the same
    transitions, as the one that saved it."""
    demos = _line_demos()
    first, other = (GAIL(line_venv(n=2, horizon=4), demos, disc_transitions=64, seed=seed) for seed in (1, 9))
    for gail in (first, other):
        gail.rounds_at_rollout_end = True
        gail.venv.seed(0)
        gail.reset()
    ours, theirs = np.random.default_rng(0), np.random.default_rng(1)
    for _ in range(3):
        _drive_rollout(first, 20, ours)
        _drive_rollout(other, 20, theirs)  # other actions, the same episode boundaries
    assert (first.n_disc_steps, first._credit, first._since_round) == (1, 56, 40)
    first.save_state(tmp_path)
    other.load_state(tmp_path)
    taken = []
    for _ in range(5):
        actions = ours.uniform(-1, 1, (20, 2, 1)).astype(np.float32)
        rewards = []
        for gail in (first, other):
            rewards.append([gail.step(a)[1] for a in actions])
            gail.end_rollout()
        np.testing.assert_array_equal(*rewards)
        taken.append((first.n_disc_steps, other.n_disc_steps))
    assert taken == [(2, 2), (3, 3), (3, 3), (4, 4), (5, 5)]
    for a, b in zip(first.discriminator.parameters(), other.discriminator.parameters(), strict=True):
        assert torch.equal(a, b)


def test_old_names_and_old_states_still_load(tmp_path):
    demos = _line_demos()
    with pytest.warns(DeprecationWarning) as caught:
        old = GAIL(line_venv(n=2), demos, update_every=6, disc_updates=3)
    assert [str(w.message).split(" is ")[0] for w in caught] == ["GAIL(update_every=...)", "GAIL(disc_updates=...)"]
    assert "use disc_transitions=..." in str(caught[0].message) and "use disc_steps=..." in str(caught[1].message)
    assert (old.disc_transitions, old.disc_steps) == (6, 3)
    old.reset()
    for _ in range(4):  # a round after 6 transitions (3 steps), then 2 transitions since
        old.step(np.full((2, 1), 0.2, dtype=np.float32))
    assert (old.n_updates, old.n_disc_steps, old._since_round) == (1, 3, 2)
    state = old.state_dict()
    for key in ("disc_credit", "n_disc_steps"):  # what a state saved before the schedule counted steps lacks
        del state[key]
    torch.save(state, tmp_path / "gail.pt")
    new = GAIL(line_venv(n=2), demos, disc_transitions=6, disc_steps=3)
    new.load_state(tmp_path)
    assert (new.n_updates, new.n_disc_steps, new._since_round, new._credit) == (1, 3, 2, 6)


# -- absorbing states ----------------------------------------------------------------------------------
def _terminal_and_truncated_venv():
    """Env 0 terminates every 3 steps (LineEnv), env 1 is cut by a time limit every 3 steps."""
    return DummyVecEnv([lambda: Monitor(LineEnv(horizon=3)),
                        lambda: Monitor(gym.wrappers.TimeLimit(LineEnv(horizon=100), max_episode_steps=3))])


def test_absorbing_states_add_the_absorbing_return_to_terminal_steps_only():
    gail = GAIL(_terminal_and_truncated_venv(), _line_demos(), absorbing=True, gamma=0.9, disc_transitions=6,
                seed=2)
    r_abs = gail.discriminator.absorbing_reward()
    assert gail.absorbing_return == pytest.approx(9.0 * r_abs) and r_abs == pytest.approx(np.log(2))
    gail.reset()
    actions = np.full((2, 1), 0.3, dtype=np.float32)
    for step in range(1, 10):
        # the discriminator in force for this step (a round comes after the reward of every third step)
        own, absorbing_return = gail.discriminator_reward(gail.recorder.last_obs, actions), gail.absorbing_return
        _, rewards, dones, infos = gail.step(actions)
        if step % 3 == 0:  # both episodes end: env 0 terminates, env 1 is truncated
            assert dones.all() and infos[1]["TimeLimit.truncated"] and not infos[0].get("TimeLimit.truncated")
            assert rewards[0] == pytest.approx(own[0] + absorbing_return, rel=1e-5)
            assert rewards[1] == own[1]
        else:
            np.testing.assert_array_equal(rewards, own)
    assert gail.n_updates == 3 and gail.absorbing_return != pytest.approx(9.0 * np.log(2))


def test_the_discriminator_sees_absorbing_transitions_flagged_on_both_sides():
    demos = _line_demos(n=3)  # LineEnv episodes end terminated: three terminal pairs
    gail = GAIL(line_venv(n=2, horizon=3), demos, absorbing=True, disc_transitions=12, seed=0)
    expert_obs, expert_acts, expert_next, expert_flags = gail.expert
    assert gail.discriminator.in_dim == 2 + 1 + 1  # s, a and the flag
    assert int(expert_flags.sum()) == 3 and len(expert_flags) == demos.n_transitions + 3
    batches = []
    original = gail.discriminator.train_step
    gail.discriminator.train_step = lambda expert, policy: batches.append((expert, policy)) or original(expert, policy)
    gail.reset()
    for _ in range(6):  # 12 transitions, 4 of them terminal (episodes of 3 steps, 2 envs)
        gail.step(np.full((2, 1), -0.5, dtype=np.float32))
    (expert, policy), = batches
    x_policy = gail.discriminator.features(*policy).numpy()
    assert x_policy.shape == (12 + 4, 4) and x_policy[:, -1].tolist() == [0.0] * 12 + [1.0] * 4
    in_mean = gail.discriminator.in_mean[:3].numpy()
    np.testing.assert_array_equal(x_policy[12:, :-1], np.tile(in_mean, (4, 1)))  # 0 once standardised
    x_expert = gail.discriminator.features(*expert).numpy()
    assert len(x_expert) == 16  # as many expert rows as policy rows, drawn from the 15 pairs and 3 absorbing
    np.testing.assert_array_equal(x_expert[:, -1], expert[3].numpy())
    np.testing.assert_array_equal(x_expert[expert[3].numpy(), :-1], np.tile(in_mean, (int(expert[3].sum()), 1)))
    # the absorbing state's reward is learnt: the expert ends in it 3 times in 18 rows, the policy 4 in 16
    assert gail.discriminator.absorbing_reward() != pytest.approx(np.log(2))
    policy_state = gail.state_dict()
    assert policy_state["buffer_terminal"].sum() == 4


def test_without_absorbing_states_nothing_changes():
    """Off (the default): no flag input, the expert's pairs alone, terminal steps paid the discriminator's
    reward and nothing more, no terminal flags kept or saved."""
    gail = GAIL(_terminal_and_truncated_venv(), _line_demos(), disc_transitions=10, seed=2)
    obs, acts, next_obs, _ = _line_demos().transitions()
    assert gail.discriminator.in_dim == 3 and len(gail.expert) == 3 and gail.absorbing_return == 0.0
    for part, demo_part in zip(gail.expert, (obs, acts, next_obs), strict=True):
        np.testing.assert_array_equal(part.numpy(), demo_part)
    policy_batches = []
    original = gail.discriminator.train_step
    gail.discriminator.train_step = lambda e, p: policy_batches.append(p) or original(e, p)
    gail.reset()
    actions = np.full((2, 1), 0.3, dtype=np.float32)
    for step in range(1, 6):  # a terminal step (env 0) and a truncated one (env 1) at step 3; a round at step 5
        own = gail.discriminator_reward(gail.recorder.last_obs, actions)
        _, rewards, dones, _ = gail.step(actions)
        np.testing.assert_array_equal(rewards, own)
        assert dones.all() == (step == 3) and len(policy_batches) == (step == 5)
    assert len(policy_batches[0]) == 3 and len(policy_batches[0][0]) == 10
    assert "buffer_terminal" not in gail.state_dict() and gail.row_data == {}


def test_the_callback_gives_the_absorbing_return_the_agents_discount():
    gail = GAIL(line_venv(n=2, horizon=3), _line_demos(), absorbing=True, disc_transitions=32)
    assert gail.discount == 0.99  # no agent yet
    model = PPO("MlpPolicy", gail, n_steps=16, batch_size=32, n_epochs=1, gamma=0.8,
                policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    model.learn(64, callback=gail.callback)
    assert gail.discount == pytest.approx(0.8) and gail.n_disc_steps == 2
    assert gail.absorbing_return == pytest.approx(4.0 * gail.discriminator.absorbing_reward())
    assert not gail.rounds_at_rollout_end  # training over: a hand-driven loop gets step-time rounds again


# -- behaviour cloning ---------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["nll", "mse"])
def test_behaviour_cloning_imitates_the_expert(loss):
    demos = _reach_demos(10)
    obs, acts, _, _ = demos.transitions()
    model = PPO("MlpPolicy", DummyVecEnv([Reach1D]), policy_kwargs={"net_arch": [32]}, seed=0, device="cpu")
    policy = lambda o: model.predict(o, deterministic=True)[0]  # noqa: E731
    before = _mean_return(policy)
    stats = behaviour_cloning(model.policy, obs, acts, loss=loss, gradient_steps=400, learning_rate=3e-3)
    after = _mean_return(policy)
    assert stats["action_error"] < 0.15
    assert after > before + 0.8 * (_mean_return(expert) - before), (before, after)


# -- through rlgen.agents ------------------------------------------------------------------------------
def _reach_demo_file(tmp_path, n=10):
    path = tmp_path / "reach_demos.npz"
    if not path.exists():
        save_demos(path, collect_from_policy(expert, REACH_ID, n))
    return path


def _gail_config(tmp_path, **fields):
    base = dict(algo="ppo", env_id=REACH_ID, total_steps=512, n_envs=2, out_dir=str(tmp_path / "runs"),
                imitation="gail", demos=str(_reach_demo_file(tmp_path)),
                hyperparams={"n_steps": 128, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [8]}},
                eval_freq=0, eval_episodes=2, checkpoint_freq=256, progress_bar=False)
    base.update(fields)
    return RunConfig(**base)


def test_run_config_gail_trains_logs_and_resumes(tmp_path):

    config = _gail_config(tmp_path, imitation_kwargs={"disc_transitions": 256})
    result = train(config)
    assert result.run_dir.name == "ppo-gail_rlgen-test-Reach1D-v0_s0"
    state = torch.load(result.run_dir / "gail.pt", weights_only=True)
    assert state["n_updates"] == 2 and state["num_transitions"] == 512  # one update per 256-step rollout
    assert result.eval_mean_return < 0  # the evaluation reports the env return
    tags = scalar_tags(result.run_dir / "tb")
    assert {"gail/disc_loss", "gail/disc_acc_expert", "gail/disc_acc_policy", "gail/reward_mean",
            "rollout/ep_rew_mean"} <= tags
    config.total_steps = 1024
    resumed = train(config, resume=True)
    state = torch.load(resumed.run_dir / "gail.pt", weights_only=True)
    assert state["n_updates"] == 4 and state["num_transitions"] == 1024
    returns = evaluate(resumed.run_dir, episodes=2)
    assert len(returns) == 2 and np.all(returns < 0)
    # which demos it learnt from, beside its config; resuming on changed demos is refused
    digest = hashlib.sha256(Path(config.demos).read_bytes()).hexdigest()
    record = json.loads((result.run_dir / "demos.json").read_text())
    assert record["sha256"] == digest and record["path"] == config.demos
    trajs = load_demos(config.demos)
    save_demos(config.demos, dataclasses.replace(trajs, episodes=trajs.episodes[1:]))
    config.total_steps = 1536
    with pytest.raises(ConfigError, match=f"demos of sha256 {digest}; .* now has [0-9a-f]{{64}}") as refused:
        train(config, resume=True)
    assert "\n" not in str(refused.value)
    assert json.loads((result.run_dir / "demos.json").read_text())["sha256"] == digest


@pytest.mark.parametrize("algo", ["trpo", "a2c"])
def test_run_config_gail_works_with_trpo_and_a2c(tmp_path, algo):
    hyperparams = {"n_steps": 64, "policy_kwargs": {"net_arch": [8]}}
    if algo == "trpo":
        hyperparams["batch_size"] = 64
    result = train(_gail_config(tmp_path, algo=algo, total_steps=256, hyperparams=hyperparams, checkpoint_freq=0,
                                imitation_kwargs={"disc_transitions": 128}))
    state = torch.load(result.run_dir / "gail.pt", weights_only=True)
    assert state["n_updates"] == 2 and result.eval_mean_return < 0


def test_the_run_loop_gives_gail_one_schedule_whatever_the_layout(tmp_path):
    """The run loop no longer makes GAIL's pace from the rollout size: every layout gets the settings given
    (through imitation_kwargs), and the defaults otherwise."""
    from rlgen.agents.envstack import attach_reward_wrappers, make_vec_env

    for kwargs, expected in (({}, (1, 2048, None, False)),
                             ({"disc_steps": 2, "disc_transitions": 512, "batch_size": 128, "absorbing": True,
                               "gamma": 0.9}, (2, 512, 128, True))):
        for algo, n_steps, n_envs in (("ppo", 2048, 1), ("ppo", 128, 2), ("trpo", 1024, 4), ("a2c", None, 1)):
            config = _gail_config(tmp_path, algo=algo, n_envs=n_envs, imitation_kwargs=kwargs,
                                  hyperparams={"n_steps": n_steps} if n_steps else {})
            venv, (gail,) = attach_reward_wrappers(make_vec_env(config), config)
            assert (gail.disc_steps, gail.disc_transitions, gail.batch_size, gail.absorbing) == expected
            venv.close()
    assert gail.discount == 0.9


def test_run_config_refuses_bad_imitation_settings(tmp_path):
    with pytest.raises(ConfigError, match="imitation gail needs a demonstrations file"):
        RunConfig(imitation="gail").validated()
    with pytest.raises(ConfigError, match="unknown imitation 'gial'"):
        RunConfig(imitation="gial", demos="d.npz").validated()
    with pytest.raises(ConfigError, match="behaviour cloning trains an on-policy agent"):
        RunConfig(algo="sac", imitation="bc", demos="d.npz").validated()
    config = _gail_config(tmp_path, env_id="Pendulum-v1")
    with pytest.raises(ConfigError, match=f"recorded on {REACH_ID} .* not on Pendulum-v1") as info:
        train(config)
    assert "\n" not in str(info.value)
    assert not (config.run_dir / "config.yaml").exists()  # nothing half-made blocks a corrected re-run
    with pytest.raises(ConfigError, match=r"imitation_kwargs.etaa is no setting of GAIL \(gail\); valid: absorbing"):
        train(_gail_config(tmp_path, imitation_kwargs={"etaa": 1}))


def test_behaviour_cloning_run_and_collecting_demos_from_it(tmp_path):
    config = _gail_config(tmp_path, imitation="bc", eval_episodes=5, normalize=True,
                          bc_kwargs={"gradient_steps": 400, "learning_rate": 3e-3})
    result = train(config)
    assert result.timesteps == 0 and result.run_dir.name == "ppo-bc_rlgen-test-Reach1D-v0_s0"
    assert result.eval_mean_return > -1.5  # expert ~-0.6, random ~-6.5
    assert json.loads((result.run_dir / "bc.json").read_text())["action_error"] < 0.2
    assert (json.loads((result.run_dir / "demos.json").read_text())["sha256"]
            == hashlib.sha256(Path(config.demos).read_bytes()).hexdigest())
    assert evaluate(result.run_dir, episodes=3).mean() > -1.5

    trajs = collect_demos(result.run_dir, 3, seed=5)
    assert trajs.env_id == REACH_ID and len(trajs) == 3
    env = gym.make(REACH_ID)
    np.testing.assert_array_equal(trajs[0].obs[0], env.reset(seed=5)[0])  # raw, not normalised
    _, model, stats_path = load_run(result.run_dir)
    stats = np.load(stats_path)
    seen = np.clip((trajs[0].obs[:-1] - stats["obs_mean"]) / np.sqrt(stats["obs_var"] + stats["epsilon"]),
                   -stats["clip_obs"], stats["clip_obs"])
    np.testing.assert_allclose(trajs[0].acts, model.predict(seen.astype(np.float32), deterministic=True)[0],
                               atol=1e-5)  # the policy acted on normalised observations
    assert not np.allclose(seen, trajs[0].obs[:-1])


def test_cloning_behind_vecnormalize_fits_the_observations_the_policy_will_see(monkeypatch):
    """Behind VecNormalize the statistics start as every demo observation's (counted as that many samples), and
    the policy is fitted on the demo pairs normalised with them, the observations it acts on. Reach1D's expert
    (a = clip(-4x)) barely changes under a rescaled x, so a run's return would not tell."""
    import rlgen.imitation.bc as bc_module

    demos = _reach_demos(10).subsampled(3, seed=1)
    normalizer = VecNormalize(DummyVecEnv([Reach1D]), gamma=0.99)
    model = PPO("MlpPolicy", normalizer, policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    fitted = {}
    monkeypatch.setattr(bc_module, "behaviour_cloning",
                        lambda policy, obs, acts, **kwargs: fitted.update(obs=obs, acts=acts) or {"loss": 0.0})
    stats = bc_module.clone_demos(model.policy, demos, normalizer)
    every_obs = np.concatenate([traj.obs for traj in demos])
    np.testing.assert_allclose(normalizer.obs_rms.mean, every_obs.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(normalizer.obs_rms.var, every_obs.var(axis=0), rtol=1e-5)
    assert normalizer.obs_rms.count == len(every_obs) and float(np.sqrt(every_obs.var())) < 0.5  # far from 1
    obs, acts, _, _ = demos.transitions()
    assert stats["pairs"] == len(obs) < demos.n_transitions  # the subsampled pairs
    expected = np.clip((obs - every_obs.mean(axis=0)) / np.sqrt(every_obs.var(axis=0) + normalizer.epsilon),
                       -normalizer.clip_obs, normalizer.clip_obs)
    np.testing.assert_allclose(fitted["obs"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fitted["acts"], acts)


def test_bc_pretraining_before_gail(tmp_path):
    config = _gail_config(tmp_path, total_steps=256, bc_pretrain=True, bc_kwargs={"gradient_steps": 300, "learning_rate": 3e-3})
    result = train(config)
    assert json.loads((result.run_dir / "bc.json").read_text())["pairs"] == 100
    assert result.eval_mean_return > -2.0  # pre-trained: far above random (~-6.5) after one rollout


# -- command line --------------------------------------------------------------------------------------


def test_cli_demos_info_imitate_eval_and_collect(capsys, tmp_path):
    demos = _reach_demo_file(tmp_path)
    assert main(["demos", "info", str(demos), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["env_id"] == REACH_ID and info["episodes"] == 10 and info["observation_shape"] == [1]
    assert main(["demos", "info", str(demos)]) == 0
    assert "episodes:      10" in capsys.readouterr().out

    out = tmp_path / "runs"
    common = ["--demos", str(demos), "--out", str(out), "--no-progress", "-p", "n_steps=128", "-p", "batch_size=64",
              "-p", "n_epochs=1", "-p", "eval_freq=0", "-p", "eval_episodes=2", "-p", "policy_kwargs.net_arch=[8]"]
    assert main(["imitate", "--steps", "256", *common]) == 0  # the env id comes from the demos
    assert "true env return" in capsys.readouterr().out
    run_dir = out / f"ppo-gail_{REACH_ID.replace('/', '-')}_s0"
    assert (run_dir / "gail.pt").is_file()
    assert main(["eval", str(run_dir), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_return"] < 0
    _one_line_error(capsys, ["imitate", "--resume", str(run_dir), "--steps", "512", "--method", "infogail"],
                    "holds a run with imitation 'gail'; it cannot be resumed with imitation 'infogail'")
    _one_line_error(capsys, ["imitate", "--resume", str(run_dir), "--steps", "512", "--demos", str(demos)],
                    "--demos is for a new run")
    assert main(["imitate", "--resume", str(run_dir), "--steps", "512", "--no-progress"]) == 0
    assert "after 512 steps" in capsys.readouterr().out

    assert main(["imitate", "--method", "bc", "-p", "bc_kwargs.gradient_steps=50", *common]) == 0
    bc_dir = out / f"ppo-bc_{REACH_ID.replace('/', '-')}_s0"
    assert "behaviour cloning:" in capsys.readouterr().out
    _one_line_error(capsys, ["imitate", "--resume", str(bc_dir), "--steps", "512"],
                    "is a behaviour-cloning run; it trains in one go and cannot be resumed")
    (tmp_path / "bc.yaml").write_text("imitation: bc\nbc_kwargs: {gradient_steps: 50}\n")  # the file's method
    assert main(["imitate", "--config", str(tmp_path / "bc.yaml"), "--run-name", "bc-file", *common]) == 0
    assert "behaviour cloning:" in capsys.readouterr().out
    collected = tmp_path / "collected.npz"
    assert main(["demos", "collect", str(bc_dir), "-n", "2", "--out", str(collected), "--no-progress"]) == 0
    assert "episodes:      2" in capsys.readouterr().out
    _one_line_error(capsys, ["demos", "collect", str(bc_dir), "-n", "2", "--out", str(collected)], "exists")
    kept = tmp_path / "kept.npz"  # a return floor no episode reaches (Reach1D's rewards are <= 0): nothing written
    _one_line_error(capsys, ["demos", "collect", str(bc_dir), "-n", "2", "--out", str(kept), "--min-return", "1",
                             "--no-progress"], "only 0 of 8 episodes reached the minimum return 1")
    assert not kept.exists()
    assert main(["demos", "collect", str(bc_dir), "-n", "2", "--out", str(kept), "--min-return", "-1000",
                 "--no-progress"]) == 0


def test_cli_bad_demos_are_one_line_errors(capsys, tmp_path):
    demos = _reach_demo_file(tmp_path)
    err = _one_line_error(capsys, ["imitate", "--env", "Pendulum-v1", "--demos", str(demos), "--out", str(tmp_path)],
                          "recorded on")
    assert REACH_ID in err and "Pendulum-v1" in err
    (tmp_path / "cut.npz").write_bytes(demos.read_bytes()[:100])
    _one_line_error(capsys, ["demos", "info", str(tmp_path / "cut.npz")], "truncated or corrupt")
    _one_line_error(capsys, ["imitate", "--demos", str(tmp_path / "cut.npz")], "truncated or corrupt")
    _one_line_error(capsys, ["imitate", "--env", REACH_ID], "needs --demos")
    bc = ["imitate", "--demos", str(demos), "--method", "bc", "--out", str(tmp_path)]
    _one_line_error(capsys, [*bc, "--reward", "log_d"], "--reward sets the discriminator's reward")
    _one_line_error(capsys, [*bc, "-p", "imitation_kwargs.disc_steps=2"], "imitation_kwargs.disc_steps would be ignored")


def test_imitation_subcommands_have_help(capsys):
    for command in (["demos", "collect"], ["demos", "info"], ["imitate"]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--help"])
        assert info.value.code == 0
        assert "usage: rlgen " + " ".join(command) in capsys.readouterr().out


def test_old_learning_rate_spellings_still_work_with_a_deprecation_warning(tmp_path):
    from gymnasium import spaces

    from rlgen.imitation import Discriminator

    box = spaces.Box(-1, 1, (2,), np.float32)
    with pytest.warns(DeprecationWarning, match=r"Discriminator\(lr=...\) is deprecated; use learning_rate"):
        old = Discriminator(box, box, lr=0.5)
    assert old.optimizer.param_groups[0]["lr"] == 0.5
    assert Discriminator(box, box, learning_rate=0.25).optimizer.param_groups[0]["lr"] == 0.25
    # a config written with the old keys loads under the new ones, so an archived run keeps its settings
    with pytest.warns(DeprecationWarning, match="bc_kwargs.lr is deprecated"):
        config = RunConfig.from_dict({"bc_kwargs": {"lr": 1e-3}, "imitation_kwargs": {"q_lr": 2e-3}})
    assert config.bc_kwargs == {"learning_rate": 1e-3} and config.imitation_kwargs == {"q_learning_rate": 2e-3}
    with pytest.warns(DeprecationWarning) as caught:
        config = RunConfig.from_dict({"imitation_kwargs": {"update_every": 4096, "disc_updates": 2}})
    assert {str(w.message).split(" is ")[0] for w in caught} == {"imitation_kwargs.update_every",
                                                                 "imitation_kwargs.disc_updates"}
    assert config.imitation_kwargs == {"disc_transitions": 4096, "disc_steps": 2}
    with pytest.raises(ConfigError, match="sets both lr and learning_rate"):
        RunConfig.from_dict({"bc_kwargs": {"lr": 1e-3, "learning_rate": 1e-3}})


@pytest.mark.parametrize("array, row, episode", [("obs", 11, 2), ("acts", 5, 1), ("rewards", 14, 3)])
def test_a_demo_file_with_nan_names_the_file_and_the_episode(tmp_path, capsys, array, row, episode):
    save_demos(tmp_path / "d.npz", _hand_made_demos())  # episodes of 3, 6, 1 and 5 steps
    with np.load(tmp_path / "d.npz", allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays[array] = arrays[array].astype(np.float64 if array != "acts" else np.float32)
    arrays[array].reshape(len(arrays[array]), -1)[row, 0] = np.inf if array == "rewards" else np.nan
    np.savez(tmp_path / "d.npz", **arrays)
    name = {"obs": "observations", "acts": "actions", "rewards": "rewards"}[array]
    with pytest.raises(DemoError, match=rf"d.npz holds non-finite {name} in episode {episode} \(row {row}\)"):
        load_demos(tmp_path / "d.npz")
    _one_line_error(capsys, ["demos", "info", str(tmp_path / "d.npz")], f"non-finite {name} in episode {episode}")


class _RolloutRecord(BaseCallback):
    """The rollout buffer's rewards and advantages and the VecNormalize's reward statistics at each rollout's end
    (placed after GAIL's callback, so it sees what the agent learns from)."""

    def __init__(self, normaliser=None):
        super().__init__()
        self.normaliser, self.rollouts = normaliser, []

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        buffer = self.model.rollout_buffer
        rms = None if self.normaliser is None else self.normaliser.ret_rms
        stats = () if rms is None else (rms.mean.copy(), rms.var.copy(), rms.count, self.normaliser.returns.copy())
        logged = self.model.logger.name_to_value.get("gail/reward_mean")
        self.rollouts.append((buffer.rewards.copy(), buffer.advantages.copy(), (*stats, logged)))


def _gail_stack(kind, defer, agent="ppo"):
    if kind == "discrete":
        def balance(obs):
            return int(obs[2] + 0.5 * obs[3] > 0)
        demos = collect_from_policy(balance, "CartPole-v1", 2)
        venv = DummyVecEnv([lambda: Monitor(gym.make("CartPole-v1")) for _ in range(2)])
        gail = GAIL(venv, demos, disc_transitions=32, defer_rewards=defer, seed=1)
    else:  # env 0 terminates every 3 steps, env 1 is truncated every 3: absorbing return and bootstrapping
        gail = GAIL(_terminal_and_truncated_venv(), _line_demos(), absorbing=True, disc_transitions=32,
                    defer_rewards=defer, seed=1)
    gail.seed(0)

    class OwnNormalize(VecNormalize):  # overrides SB3's reward path: replayed with its own methods, step by step
        def normalize_reward(self, reward):
            return super().normalize_reward(reward)

    outer = (gail if kind == "no-normaliser" else OwnNormalize(gail, gamma=0.9) if kind == "own-normaliser"
             else VecNormalize(gail, gamma=0.9))
    if kind == "not-training":  # statistics frozen: only the returns' resets at dones move
        outer.returns[:] = [0.5, 0.25]
        outer.ret_rms.var[...] = 3.0
        outer.training = False
    if agent == "a2c":
        from stable_baselines3 import A2C

        model = A2C("MlpPolicy", outer, n_steps=5, gamma=0.9, seed=0, device="cpu", policy_kwargs={"net_arch": [8]})
    elif agent == "recurrent-ppo":  # hands its callbacks no final values: the bonus must not need them
        from sb3_contrib import RecurrentPPO

        model = RecurrentPPO("MlpLstmPolicy", outer, n_steps=16, batch_size=16, n_epochs=2, gamma=0.9, seed=0,
                             device="cpu", policy_kwargs={"net_arch": [8], "lstm_hidden_size": 8})
    else:
        model = PPO("MlpPolicy", outer, n_steps=16, batch_size=16, n_epochs=2, gamma=0.9, seed=0, device="cpu",
                    policy_kwargs={"net_arch": [8]})
    return gail, outer, model


@pytest.mark.parametrize("kind, agent", [("absorbing", "ppo"), ("discrete", "ppo"), ("no-normaliser", "ppo"),
                                         ("own-normaliser", "ppo"), ("not-training", "ppo"), ("absorbing", "a2c"),
                                         ("absorbing", "recurrent-ppo")])
def test_rewards_added_at_the_rollout_end_are_what_step_time_rewards_would_have_been(kind, agent):
    seen = {}
    rollout = 5 * 2 if agent == "a2c" else 16 * 2
    for defer in (False, True):
        gail, outer, model = _gail_stack(kind, defer, agent)
        record = _RolloutRecord(outer if isinstance(outer, VecNormalize) else None)
        model.learn(rollout * 3, callback=[gail.callback, record])
        assert gail.callback.defer is defer  # the deferred run did defer: the agent was handed 0 at each step
        seen[defer] = (record.rollouts, gail.n_updates)
    (step_time, updates), (deferred, deferred_updates) = seen[False], seen[True]
    assert updates == deferred_updates and len(step_time) == len(deferred) == 3
    for (rewards, advantages, stats), (d_rewards, d_advantages, d_stats) in zip(step_time, deferred, strict=True):
        assert np.abs(rewards).max() > 0.05  # rewards to compare, not zeros
        np.testing.assert_allclose(d_rewards, rewards, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(d_advantages, advantages, rtol=1e-4, atol=1e-5)
        for a, b in zip(stats, d_stats, strict=True):  # the normaliser's statistics, replayed; gail/reward_mean
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-7)


def test_a_run_stopped_mid_rollout_leaves_the_normaliser_as_step_time_rewards_would():
    class StopAt(BaseCallback):
        def __init__(self, gail):
            super().__init__()
            self.gail, self.saved = gail, None

        def _on_step(self):
            if self.num_timesteps == 36:  # a state saved inside a rollout holds its steps so far
                self.saved = self.gail.state_dict()
            return self.num_timesteps < 40  # mid-way through the second rollout of 32

    seen, saved = {}, {}
    for defer in (False, True):
        gail, outer, model = _gail_stack("absorbing", defer)
        stop = StopAt(gail)
        model.learn(96, callback=[gail.callback, stop])
        seen[defer] = (outer.ret_rms.mean.copy(), outer.ret_rms.var.copy(), outer.ret_rms.count, outer.returns.copy())
        saved[defer] = stop.saved
    assert seen[True][2] == seen[False][2] == pytest.approx(1e-4 + 40)  # 20 steps of 2 envs
    for a, b in zip(seen[False], seen[True], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    assert np.abs(seen[False][3]).max() > 0.1
    assert saved[True]["num_transitions"] == saved[False]["num_transitions"] == 36
    assert saved[True]["since_update"] == saved[False]["since_update"] == 4
    for name in ("buffer", "buffer_terminal"):
        a, b = saved[False][name], saved[True][name]
        for key in (a if isinstance(a, dict) else {"": a}):
            np.testing.assert_array_equal(b[key] if key else b, a[key] if key else a, err_msg=f"{name} {key}")


def test_deferred_recording_keeps_the_buffer_and_survives_an_interrupted_learn_as_step_time_recording_does():
    """Rollouts longer than the ring (48 steps x 2 envs against disc_transitions 32) grow it as step-time
    recording does, to the same capacity, rows and cursor; and a learn() that an exception stops inside a
    rollout (its callback never sees the rollout end) leaves GAIL ready for the next learn(), with the stopped
    rollout's steps in the buffer as step-time recording left them. (A policy that does not learn keeps the two
    runs' trajectories the same; the VecNormalize of a rollout stopped so is not replayed, so the rewards after
    it are not compared.)"""
    class Boom(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == 40:
                raise KeyboardInterrupt
            return True

    seen = {}
    for defer in (False, True):
        gail = GAIL(_terminal_and_truncated_venv(), _line_demos(), absorbing=True, disc_transitions=32,
                    defer_rewards=defer, seed=1)
        gail.seed(0)
        outer = VecNormalize(gail, gamma=0.9)
        model = PPO("MlpPolicy", outer, n_steps=48, batch_size=32, n_epochs=1, gamma=0.9, seed=0, device="cpu",
                    learning_rate=0.0, policy_kwargs={"net_arch": [8]})
        with pytest.raises(KeyboardInterrupt):
            model.learn(96, callback=[gail.callback, Boom()])
        model.learn(192, callback=gail.callback, reset_num_timesteps=False)  # two rollouts
        assert gail.callback.defer is defer
        state = gail.state_dict()
        seen[defer] = (gail.buffer.capacity, gail.buffer.cursor, state)
    (cap, cursor, state), (d_cap, d_cursor, d_state) = seen[False], seen[True]
    assert (d_cap, d_cursor) == (cap, cursor) and cap > 64  # grown past the first capacity, as step by step
    assert d_state["num_transitions"] == state["num_transitions"] == 40 + 192
    for key in state["buffer"]:
        np.testing.assert_array_equal(d_state["buffer"][key], state["buffer"][key], err_msg=key)
    np.testing.assert_array_equal(d_state["buffer_terminal"], state["buffer_terminal"])
    assert d_state["n_disc_steps"] == state["n_disc_steps"]
    # after an interrupted deferred learn(): a learn() that does not defer pays step-time rewards (it was handed
    # zeros and failed at its rollout's end), and a state loaded over the stopped rollout's steps replaces them
    for then in ("step-time learn", "load", "hand loop"):
        gail = GAIL(_terminal_and_truncated_venv(), _line_demos(), disc_transitions=32, seed=1)
        saved = gail.state_dict()
        model = PPO("MlpPolicy", VecNormalize(gail, gamma=0.9), n_steps=48, batch_size=32, n_epochs=1, seed=0,
                    device="cpu", policy_kwargs={"net_arch": [8]})
        with pytest.raises(KeyboardInterrupt):
            model.learn(96, callback=[gail.callback, Boom()])
        if then == "load":
            gail.load_state_dict(saved)
            assert gail.state_dict()["since_update"] == 0 and gail.buffer.size == 0
            continue
        if then == "hand loop":  # a loop of its own, after a reset: rewards at step time
            gail.reset()
            assert np.abs(gail.step(np.full((2, 1), 0.5, dtype=np.float32))[1]).min() > 0
            continue
        gail.defer_rewards = False
        record = _RolloutRecord()
        model.learn(96, callback=[gail.callback, record], reset_num_timesteps=False)
        assert gail.callback.defer is False and not gail.deferring
        assert np.abs(record.rollouts[0][0]).min() > 0  # every step's reward paid, none left at 0
    # a reset inside a deferred rollout: the step after it starts from the reset observation
    gail = GAIL(_terminal_and_truncated_venv(), _line_demos(), disc_transitions=32, seed=1)
    gail.reset()
    gail.deferring = True
    for _ in range(2):
        gail.step(np.full((2, 1), 0.5, dtype=np.float32))
    start = gail.reset()
    gail.step(np.full((2, 1), 0.5, dtype=np.float32))
    gail.take_rollout_rewards()
    np.testing.assert_array_equal(gail.buffer.obs[4:6], start)


def test_rewards_stay_at_step_time_where_they_cannot_wait():
    class Scale(VecEnvWrapper):  # an unknown wrapper that changes the step rewards between GAIL and the agent
        def reset(self):
            return self.venv.reset()

        def step_wait(self):
            obs, rewards, dones, infos = self.venv.step_wait()
            return obs, 2 * rewards, dones, infos

    gail = GAIL(_terminal_and_truncated_venv(), _line_demos(), disc_transitions=32, seed=1)
    model = PPO("MlpPolicy", VecNormalize(Scale(gail)), n_steps=16, batch_size=16, seed=0, device="cpu")
    record = _RolloutRecord()
    model.learn(32, callback=[gail.callback, record])
    assert gail.callback.defer is False and np.abs(record.rollouts[0][0]).max() > 0.05

    class OwnStep(VecNormalize):  # reworks the reward path in its own step_wait: not replayable
        def step_wait(self):
            return super().step_wait()

    # and spectral norm, whose every forward pass moves its estimate of the norm
    for spectral_norm, outer in ((False, OwnStep), (True, lambda env: env)):
        gail = GAIL(_terminal_and_truncated_venv(), _line_demos(), disc_transitions=32, seed=1,
                    spectral_norm=spectral_norm)
        PPO("MlpPolicy", outer(gail), n_steps=16, batch_size=16, seed=0, device="cpu").learn(
            32, callback=gail.callback)
        assert gail.callback.defer is False
    info = InfoGAIL(_terminal_and_truncated_venv(), _line_demos(), n_modes=2, seed=1)  # adds its own step reward
    PPO("MlpPolicy", info, n_steps=16, batch_size=16, seed=0, device="cpu").learn(32, callback=info.callback)
    assert info.callback.defer is False

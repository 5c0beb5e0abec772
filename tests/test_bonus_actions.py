"""Exploration bonuses on discrete action spaces: actions reach the model one-hot (rlgen.reward_wrapper.ActionEncoding)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from rlgen.exploration import RND, VIME, DensityBonus
from rlgen.reward_wrapper import ActionEncoding
from tests.fakes import DiscreteLineEnv, RolloutRecorder


def test_action_encodings():
    discrete = ActionEncoding(spaces.Discrete(3, start=-1), "X")
    np.testing.assert_array_equal(discrete(np.array([-1, 1]), 2), [[1, 0, 0], [0, 0, 1]])
    multi = ActionEncoding(spaces.MultiDiscrete([2, 3]), "X")
    assert multi.dim == 5
    np.testing.assert_array_equal(multi(np.array([[1, 0], [0, 2]]), 2), [[0, 1, 1, 0, 0], [1, 0, 0, 0, 1]])
    binary = ActionEncoding(spaces.MultiBinary(3), "X")
    np.testing.assert_array_equal(binary(np.array([[1, 0, 1]]), 1), [[1.0, 0.0, 1.0]])
    box = ActionEncoding(spaces.Box(-1, 1, (2, 2)), "X")
    assert box(np.ones((1, 2, 2)), 1).shape == (1, 4) and box.dim == 4
    with pytest.raises(TypeError, match="X needs Box, Discrete, MultiDiscrete or MultiBinary actions, got Tuple"):
        ActionEncoding(spaces.Tuple([spaces.Discrete(2)]), "X")


def _discrete_venv(n=2):
    return DummyVecEnv([lambda: Monitor(DiscreteLineEnv(horizon=20)) for _ in range(n)])


@pytest.mark.parametrize("kind", ["vime", "rnd", "density"])
def test_a_bonus_records_discrete_actions_one_hot_and_pays_ppo(kind):
    make = {"vime": lambda v: VIME(v, min_replay=1, model_steps=5, update_every=64),
            "rnd": lambda v: RND(v, min_replay=1, model_steps=5, update_every=64),
            "density": lambda v: DensityBonus(v, "made", target="transition", min_replay=1, model_steps=5,
                                              update_every=64)}
    bonus = make[kind](_discrete_venv())
    assert bonus.act_dim == 3
    model = PPO("MlpPolicy", bonus, n_steps=32, batch_size=32, seed=0, policy_kwargs={"net_arch": [8]}, device="cpu")
    recorder = RolloutRecorder()
    model.learn(64, callback=[bonus.callback, recorder])
    actions = bonus.pool.rows()[0][:, bonus.obs_dim:]
    assert set(actions.sum(1).tolist()) == {1.0} and set(np.unique(actions).tolist()) == {0.0, 1.0}
    assert recorder.seen["rewards"].max() > 0  # the env pays nothing: what is there is the bonus


class _MultiDiscreteLine(gym.Env):
    observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = spaces.MultiDiscrete([2, 3])

    def reset(self, seed=None, options=None):
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.array([action[0] + 10 * action[1]], np.float32), 0.0, False, False, {}


def test_multidiscrete_actions_of_several_envs_are_one_block_per_sub_action():
    rnd = RND(DummyVecEnv([_MultiDiscreteLine, _MultiDiscreteLine]))
    assert rnd.act_dim == 5
    rnd.reset()
    rnd.step(np.array([[1, 0], [0, 2]]))
    _, actions, next_obs, _ = rnd._pending[-1]
    np.testing.assert_array_equal(actions, [[0, 1, 1, 0, 0], [1, 0, 0, 0, 1]])
    np.testing.assert_array_equal(next_obs[:, 0], [1, 20])  # the env got the actions as they were


def test_a_discrete_action_never_taken_is_the_surprise():
    # the BNN learnt from left and right steps only; staying put is an action it has never seen
    vime = VIME(_discrete_venv(1), min_replay=1, model_steps=1500, batch_size=10, seed=0, update_every=400)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 400)
    moves = rng.integers(0, 2, 400)
    one_hot = np.eye(3, dtype=np.float32)[moves]
    inputs = np.column_stack([x, np.ones(400), one_hot]).astype(np.float32)
    targets = np.column_stack([x + 0.1 * (2 * moves - 1), np.ones(400)]).astype(np.float32)
    vime.train_model(inputs, targets)
    stay = inputs[:50].copy()
    stay[:, 2:] = np.eye(3, dtype=np.float32)[2]
    stay_targets = np.column_stack([x[:50], np.ones(50)]).astype(np.float32)
    assert np.median(vime.information_gain(stay, stay_targets)) > 5 * np.median(
        vime.information_gain(inputs[:50], targets[:50]))


def test_observations_must_be_a_box():
    env = gym.make("CartPole-v1")
    dict_env = gym.wrappers.TransformObservation(env, lambda o: {"x": o}, spaces.Dict({"x": env.observation_space}))
    with pytest.raises(TypeError, match=r"VIME needs a Box observation space, got Dict observations \(flatten the Dict"):
        VIME(DummyVecEnv([lambda: dict_env]))
    with pytest.raises(TypeError, match="RND needs a Box observation space, got Tuple observations$"):
        RND(DummyVecEnv([lambda: gym.make("Blackjack-v1")]))


def test_the_configs_bonus_names_are_the_wrappers_the_run_loop_builds():
    # the config validates --bonus without importing torch-heavy modules, so it keeps its own list: a new bonus
    # goes into both (rlgen.exploration.BONUS_WRAPPERS and rlgen.agents.config.BONUSES)
    from rlgen.agents.config import BONUSES
    from rlgen.exploration import BONUS_WRAPPERS

    assert [b for b in BONUSES if b] == list(BONUS_WRAPPERS)

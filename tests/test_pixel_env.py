"""rlgen/SparseMountainCarPixels-v0: SparseMountainCar observed as a small grey image, and the density bonus on it."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import DummyVecEnv

import rlgen.envs  # noqa: F401  (registers the tasks)
from rlgen.agents import RunConfig, evaluate, load_run, train
from rlgen.envs.mountain_car import SparseMountainCarPixelsEnv
from rlgen.exploration import DensityBonus
from rlgen.generative import PixelCNN

PIXELS, STATE = "rlgen/SparseMountainCarPixels-v0", "rlgen/SparseMountainCar-v0"


def test_check_env_passes_without_warnings_and_sb3_sees_an_image() -> None:
    env = gym.make(PIXELS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unlike the state tasks' unbounded boxes, nothing to excuse here
        check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space == spaces.Box(0, 255, (2, 16, 24), np.uint8)
    assert is_image_space(env.observation_space)
    assert gym.spec(PIXELS).max_episode_steps == gym.spec(STATE).max_episode_steps == 500


def _pump(velocity: float) -> np.ndarray:
    """Push along the velocity: pumps energy into the swing and reaches the goal in a couple of hundred steps."""
    return np.array([1.0 if velocity >= 0 else -1.0], dtype=np.float32)


def test_rewards_and_episode_ends_are_the_state_tasks() -> None:
    pixels, state = gym.make(PIXELS), gym.make(STATE)
    rng = np.random.default_rng(0)
    ends = {"goal": 0, "time": 0}
    for episode in range(4):  # pumping episodes reach the goal, random ones run out of time
        _, info = pixels.reset(seed=episode)
        obs, _ = state.reset(seed=episode)
        assert (info["x"], info["velocity"]) == (obs[0], obs[1])
        done = False
        while not done:
            action = _pump(obs[1]) if episode % 2 == 0 else rng.uniform(-1, 1, 1).astype(np.float32)
            _, reward, terminated, truncated, info = pixels.step(action)
            obs, state_reward, state_terminated, state_truncated, state_info = state.step(action)
            assert (reward, terminated, truncated) == (state_reward, state_terminated, state_truncated)
            assert (info["x"], info["velocity"]) == (obs[0], obs[1])
            assert info["reward_dense"] == state_info["reward_dense"]
            done = terminated or truncated
        ends["goal" if reward == 1.0 else "time"] += 1
    assert ends == {"goal": 2, "time": 2}


def test_goal_position_is_a_keyword() -> None:
    env = gym.make(PIXELS, goal_position=-1.2)  # every position is >= -1.2: the goal is reached at once
    env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(np.zeros(1, dtype=np.float32))
    assert reward == 1.0 and terminated


def test_the_observation_is_the_frame_of_the_position_over_the_frame_of_the_previous_one() -> None:
    env = gym.make(PIXELS)
    other = SparseMountainCarPixelsEnv()  # another instance draws the same frames: nothing but x goes in
    obs, info = env.reset(seed=3)
    np.testing.assert_array_equal(obs, np.stack([other.frame(info["x"])] * 2))  # at rest after a reset
    rng = np.random.default_rng(0)
    previous = info["x"]
    for _ in range(200):
        obs, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, 1).astype(np.float32))
        np.testing.assert_array_equal(obs, np.stack([other.frame(info["x"]), other.frame(previous)]))
        assert obs.dtype == np.uint8 and obs in env.observation_space
        previous = info["x"]
        assert not (terminated or truncated)


def test_every_position_has_a_frame_of_its_own() -> None:
    env = SparseMountainCarPixelsEnv()
    xs = np.linspace(env.min_position, env.max_position, 1801)  # 1e-3 apart across the track
    frames = np.stack([env.frame(x) for x in xs])
    assert len({frame.tobytes() for frame in frames}) == len(xs)
    # the car is at most two columns of two pixels brightened, and the brighter column moves right with x
    car = frames.astype(int) - env.background
    assert np.all(car >= 0) and np.all((car > 0).sum(axis=(1, 2)) <= 4)
    column = car.max(axis=1).argmax(axis=1)
    assert np.all(np.diff(column) >= 0) and column[0] == 0 and column[-1] == env.image_width - 1


def _frames(env: SparseMountainCarPixelsEnv, xs: list[float]) -> np.ndarray:
    """Flat observations of the car at rest at each x, as a bonus wrapper records them."""
    return np.stack([np.stack([env.frame(x)] * 2) for x in xs]).reshape(len(xs), -1).astype(np.float32)


def test_a_novel_frame_earns_a_larger_bonus_than_a_frame_seen_many_times() -> None:
    env = SparseMountainCarPixelsEnv()
    bonus = DensityBonus(DummyVecEnv([SparseMountainCarPixelsEnv]), "pixelcnn", min_replay=1, seed=0, replay_size=64,
                         model_steps=250, batch_size=8, learning_rate=5e-3, update_every=64)
    assert isinstance(bonus.model, PixelCNN) and bonus.model.input_shape == (2, 16, 24) and bonus.bounds == "space"
    seen = _frames(env, [-0.5])  # the car at rest in the valley, fed 64 times and trained on
    seen_inputs = np.hstack([seen, np.zeros((1, 1), np.float32)])
    bonus.update_model(np.repeat(seen_inputs, 64, 0), np.repeat(seen, 64, 0))
    novel = _frames(env, [-1.1, -0.9, 0.0, 0.3, 0.45])  # up both slopes
    (seen_bonus,), _ = bonus.compute_bonus(seen_inputs, seen)
    novel_bonus, _ = bonus.compute_bonus(np.hstack([novel, np.zeros((5, 1), np.float32)]), novel)
    # seeds 0-7 gave 7 to 150 times the seen frame's bonus for the least novel of these
    assert novel_bonus.min() > 3 * seen_bonus, (novel_bonus, seen_bonus)


def test_the_run_loop_trains_ppo_with_the_pixelcnn_bonus_on_unnormalised_frames(tmp_path) -> None:
    config = RunConfig(algo="ppo", env_id=PIXELS, total_steps=128, n_envs=2, out_dir=str(tmp_path), bonus="density",
                       bonus_kwargs={"model": "pixelcnn", "min_replay": 1, "model_steps": 2, "update_every": 128},
                       hyperparams={"n_steps": 64, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [8]}},
                       eval_freq=0, eval_episodes=1, checkpoint_freq=0, progress_bar=False)
    result = train(config)
    state = torch.load(result.run_dir / "density.pt", weights_only=True)
    assert state["model_class"] == "PixelCNN" and state["pool"]["obs"].shape == (128, 2 * 16 * 24)
    assert state["pool"]["obs"].dtype == state["pool"]["next_obs"].dtype == torch.uint8  # frames kept as bytes
    # images are left as they are (the policy scales them to [0, 1]); rewards are still normalised
    with np.load(result.run_dir / "vecnormalize.npz") as stats:
        assert not stats["norm_obs"] and stats["norm_reward"]
    _, model, _ = load_run(result.run_dir)
    assert model.observation_space == spaces.Box(0, 255, (2, 16, 24), np.uint8)
    assert evaluate(result.run_dir, episodes=1).shape == (1,)


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_the_pixel_task_has_the_state_tasks_presets(algo: str) -> None:
    from rlgen.agents import preset_for

    assert preset_for(algo, PIXELS) == preset_for(algo, STATE) != {}

"""Tiny envs for testing reward wrappers without physics, and a CLI error check."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv


class LineEnv(gym.Env):
    """x' = x + 0.1 a on a line, a constant env ``reward`` per step; the episode ends after ``horizon``
    steps with a terminal observation (x + 100) that no reset observation can be mistaken for.
    ``nan_at`` makes the observation of that (global) step NaN, ``nan_reward_at`` its reward."""

    def __init__(self, horizon: int = 3, nan_at: int | None = None, reward: float = 0.0,
                 nan_reward_at: int | None = None):
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.horizon, self.nan_at, self.reward, self.t, self.total = horizon, nan_at, reward, 0, 0
        self.nan_reward_at = nan_reward_at
        self.x = 0.0

    def _obs(self):
        return np.array([self.x, 1.0], dtype=np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.x = 0, float(self.np_random.uniform(-0.1, 0.1))
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.total += 1
        self.x += 0.1 * float(action[0])
        obs = self._obs()
        if self.t == self.horizon:
            obs[0] += 100.0
        if self.nan_at is not None and self.total == self.nan_at:
            obs[0] = np.nan
        reward = float("nan") if self.total == self.nan_reward_at else self.reward
        return obs, reward, self.t == self.horizon, False, {}


def line_venv(n: int = 2, **kwargs) -> DummyVecEnv:
    return DummyVecEnv([lambda: Monitor(LineEnv(**kwargs)) for _ in range(n)])


class DiscreteLineEnv(LineEnv):
    """LineEnv with Discrete(3) actions: 0 steps left (x' = x - 0.1), 1 right (x + 0.1), 2 stays."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.action_space = spaces.Discrete(3)

    def step(self, action):
        move = {0: -1.0, 1: 1.0, 2: 0.0}[int(action)]
        return super().step(np.array([move], dtype=np.float32))


class SwitchingLineEnv(gym.Env):
    """x' = clip(x + speed * a, -1, 1) on a line; from global step ``switch_at`` on the action pushes the other
    way (x' = clip(x - speed * a, -1, 1)): physics that change midway. Under random actions the states visited
    stay distributed alike, only the transitions change. Observation [x]; episodes of ``horizon`` steps."""

    def __init__(self, speed: float = 0.5, switch_at: int | None = None, horizon: int = 20):
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.speed, self.switch_at, self.horizon = speed, switch_at, horizon
        self.t, self.total, self.x = 0, 0, 0.0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.x = 0, float(self.np_random.uniform(-1, 1))
        return np.array([self.x], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        self.total += 1
        switched = self.switch_at is not None and self.total > self.switch_at
        self.x = float(np.clip(self.x + (-1 if switched else 1) * self.speed * float(action[0]), -1, 1))
        return np.array([self.x], dtype=np.float32), 0.0, self.t == self.horizon, False, {}


def one_line_error(capsys, argv, needle):
    """Run the CLI; assert exit code 2 and a single stderr line containing ``needle``; return it."""
    from rlgen.cli import main

    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err, err
    return err


class GridImageEnv(gym.Env):
    """A lit pixel moving on a ``size`` x ``size`` grid, observed as a (1, size, size) uint8 image; the two
    action components, rounded, move it by one cell. Episodes of ``horizon`` steps."""

    def __init__(self, size: int = 4, horizon: int = 10):
        self.observation_space = spaces.Box(0, 255, (1, size, size), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.size, self.horizon, self.t = size, horizon, 0
        self.position = np.zeros(2, dtype=int)

    def _obs(self):
        image = np.zeros((1, self.size, self.size), np.uint8)
        image[0, self.position[0], self.position[1]] = 255
        return image

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.position = 0, np.zeros(2, dtype=int)
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.position = np.clip(self.position + np.round(action).astype(int), 0, self.size - 1)
        return self._obs(), 0.0, self.t == self.horizon, False, {}


class RolloutRecorder(BaseCallback):
    """Runs after a bonus wrapper's callback: keeps copies of the first rollout's buffer (its rewards,
    values, returns, advantages, episode starts), the rollout's last values and dones, and what the
    logger holds at that moment."""

    def __init__(self):
        super().__init__()
        self.seen = None

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        if self.seen is None:
            buffer = self.model.rollout_buffer
            self.seen = {k: getattr(buffer, k).copy() for k in ("rewards", "values", "returns", "advantages",
                                                                   "episode_starts")}
            self.seen["last_values"] = self.locals["values"].detach().numpy().ravel().copy()
            self.seen["dones"] = self.locals["dones"].copy()
            self.seen["logged"] = dict(self.logger.name_to_value)


def scalar_tags(log_dir, kind: str = "scalars") -> set[str]:
    """Every scalar tag (or ``kind``: "histograms", ...) written to the TensorBoard event files under ``log_dir``."""
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in Path(log_dir).rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()[kind])
    return tags


def step_until_nan(wrapper, nan_at: int = 3) -> None:
    """Reset a recording wrapper over ``line_venv(n=1, nan_at=nan_at)`` and step it up to the NaN observation."""
    wrapper.reset()
    for _ in range(nan_at):
        wrapper.step(np.zeros((1, 1), dtype=np.float32))



class SizedFrameEnv(gym.Env):
    """A one-step-per-episode env that draws frames of the size given as ``render_kwargs={width, height}`` (as
    shimmy's dm_control tasks take it), not as ``width`` and ``height``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None, render_kwargs=None):
        self.render_mode = render_mode
        self.size = (render_kwargs or {}).get("height", 10), (render_kwargs or {}).get("width", 12)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(2, 0.1 * self.t, np.float32), 0.0, False, self.t >= 5, {}

    def render(self):
        frame = np.zeros((*self.size, 3), np.uint8)
        frame[:, : 1 + self.t] = 200  # a moving bar: frames differ
        return frame


gym.register("SizedFrame-v0", entry_point=SizedFrameEnv, max_episode_steps=5)

"""Tiny envs for testing reward wrappers without physics, and a CLI error check."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv


class LineEnv(gym.Env):
    """x' = x + 0.1 a on a line, a constant env ``reward`` per step; the episode ends after ``horizon``
    steps with a terminal observation (x + 100) that no reset observation can be mistaken for.
    ``nan_at`` makes the observation of that (global) step NaN."""

    def __init__(self, horizon: int = 3, nan_at: int | None = None, reward: float = 0.0):
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.horizon, self.nan_at, self.reward, self.t, self.total = horizon, nan_at, reward, 0, 0
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
        return obs, self.reward, self.t == self.horizon, False, {}


def line_venv(n: int = 2, **kwargs) -> DummyVecEnv:
    return DummyVecEnv([lambda: Monitor(LineEnv(**kwargs)) for _ in range(n)])


def one_line_error(capsys, argv, needle):
    """Run the CLI; assert exit code 2 and a single stderr line containing ``needle``; return it."""
    from rlgen.cli import main

    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err, err
    return err

"""Sparse-reward continuous Mountain Car (VIME's SparseMountainCar).

The car earns reward 1 on the step it reaches ``x >= goal_position`` and the episode ends there; every
other step earns 0. Gymnasium's shaped reward (goal bonus of 100 minus 0.1 * action**2) stays available
as ``info["reward_dense"]``, with the action cost alone in ``info["reward_ctrl"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv


class SparseMountainCarEnv(Continuous_MountainCarEnv):
    """Continuous Mountain Car with reward 1 at the goal and 0 elsewhere."""

    def __init__(self, render_mode: str | None = None, goal_position: float = 0.45) -> None:
        super().__init__(render_mode=render_mode)
        # The parent reads this attribute for its dense goal bonus and for drawing the flag, so both follow.
        self.goal_position = float(goal_position)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, dense_reward, _, truncated, info = super().step(action)
        # VIME's goal is a position; the parent also demands velocity >= 0, which only a hand-placed state
        # moving backwards past the goal could fail.
        terminated = bool(obs[0] >= self.goal_position)
        info = {
            **info,
            "reward_dense": float(dense_reward),
            "reward_ctrl": -0.1 * float(np.asarray(action, dtype=np.float64).reshape(-1)[0]) ** 2,
        }
        # The parent hands out its internal state array; a copy keeps callers from mutating it.
        return np.array(obs, dtype=np.float32), float(terminated), terminated, truncated, info

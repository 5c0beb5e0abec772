"""How near a sparse task's agent came to its goal: the part of the reward a return of 0 hides.

A locomotion task with a goal sets ``info["goal_fraction"]`` on every step (how far along the goal's own
measure the robot is, 1.0 at the goal: distance from the start over ``goal_distance``, torso x over
``goal_x``) and says so with the class attribute ``reports_goal_fraction``. :class:`EpisodeMax` keeps the
episode's maximum so far in ``info["max_goal_fraction"]``, which the run loop's Monitor writes as a column
of every training episode, and the benchmark report turns into "how far each method got".
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

GOAL_FRACTION = "goal_fraction"
MAX_GOAL_FRACTION = "max_goal_fraction"


def goal_fraction(value: float, goal: float) -> float:
    """``value / goal`` for a goal above 0; for a goal at or below 0 (a threshold moved by hand),
    ``1 + value - goal``: either way above 1 exactly when ``value`` is past ``goal``."""
    return value / goal if goal > 0 else 1.0 + value - goal


def reports_goal_fraction(env: gym.Env) -> bool:
    return bool(getattr(env.unwrapped, "reports_goal_fraction", False))


class EpisodeMax(gym.Wrapper):
    """Adds ``info["max_<key>"]``: the largest ``info[key]`` since the episode began (reset info included)."""

    def __init__(self, env: gym.Env, key: str = GOAL_FRACTION) -> None:
        super().__init__(env)
        self.key, self.max_key = key, f"max_{key}"
        self._max = float("-inf")

    def _update(self, info: dict[str, Any]) -> dict[str, Any]:
        if self.key in info:
            self._max = max(self._max, float(info[self.key]))
        info[self.max_key] = self._max
        return info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._max = float("-inf")
        return obs, self._update(info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._update(info)

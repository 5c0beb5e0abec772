"""How near a sparse task's agent came to its goal: the part of the reward a return of 0 hides.

A locomotion task with a goal sets ``info["goal_fraction"]`` on every step (how far along the goal's own
measure the robot is, 1.0 at the goal: distance from the start over ``goal_distance``, torso x over
``goal_x``) and says so with the class attribute ``reports_goal_fraction``. It is those tasks' progress measure
(:mod:`rlgen.envs.coverage`, which holds every task's): the run loop's Monitor writes each training episode's
maximum in its ``max_progress`` column, and the benchmark report turns it into "how far each method got".
Runs trained before that wrote it as ``max_goal_fraction`` (:data:`MAX_GOAL_FRACTION`), which the report still
reads.
"""

from __future__ import annotations

import gymnasium as gym

GOAL_FRACTION = "goal_fraction"
MAX_GOAL_FRACTION = "max_goal_fraction"
"""The Monitor column of the episode's highest goal fraction in runs trained before ``max_progress``."""


def goal_fraction(value: float, goal: float) -> float:
    """``value / goal`` for a goal above 0; for a goal at or below 0 (a threshold moved by hand),
    ``1 + value - goal``: either way above 1 exactly when ``value`` is past ``goal``."""
    return value / goal if goal > 0 else 1.0 + value - goal


def reports_goal_fraction(env: gym.Env) -> bool:
    return bool(getattr(env.unwrapped, "reports_goal_fraction", False))

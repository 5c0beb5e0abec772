"""Sparse-reward tasks (VIME's benchmarks), registered with Gymnasium on import as ``rlgen/<Name>-v<N>``.

Registration uses entry-point strings, so MuJoCo is only imported when a locomotion task is made.
``TASKS`` describes each task for ``rlgen envs``; every threshold in it is a constructor keyword of the
env, e.g. ``gymnasium.make("rlgen/SparseAnt-v0", goal_distance=10.0)``.

Third-party sparse-reward tasks (the DeepMind Control Suite, Gymnasium-Robotics' mazes) are made through their
own packages, registered by them on first use: :mod:`rlgen.envs.suites`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import gymnasium

__all__ = ["TASKS", "TaskInfo", "register_all"]


@dataclass(frozen=True)
class TaskInfo:
    """One registered task: its id, reward rule, default thresholds (constructor keywords) and horizon."""

    id: str
    reward: str
    thresholds: Mapping[str, float]
    episode_steps: int
    entry_point: str
    follows: str = ""
    """What the task's dynamics and timing follow (VIME's original env, or Gymnasium's)."""


def _task(
    id: str, reward: str, thresholds: dict[str, float], episode_steps: int, entry_point: str, follows: str = ""
) -> TaskInfo:
    # A read-only view keeps the shared defaults from being edited through TASKS.
    return TaskInfo(id, reward, MappingProxyType(dict(thresholds)), episode_steps, entry_point, follows)


_GYM_TIMING = "easy variant with Gymnasium's timing and scales, not VIME's"
_VIME = "VIME's env as coded (openai/vime on rllab)"


# Thresholds here must equal the constructor defaults; tests/test_envs.py checks that they do.
TASKS: tuple[TaskInfo, ...] = (
    _task(
        "rlgen/SparseMountainCar-v0",
        "1 on reaching x >= goal_position (episode ends), else 0",
        {"goal_position": 0.45},
        # VIME's path length for MountainCar; Gymnasium's continuous version uses 999.
        500,
        "rlgen.envs.mountain_car:SparseMountainCarEnv",
        f"{_GYM_TIMING}: Gymnasium's continuous mountain car, its usual goal 0.45",
    ),
    _task(
        "rlgen/SparseMountainCar-v1",
        "1 on reaching x >= goal_position, or |x| >= 2 (the track's ends), and the episode ends; else 0",
        {"goal_position": 0.6},
        500,
        "rlgen.envs.mountain_car:VIMEMountainCarEnv",
        f"{_VIME}: rllab's sine track, 0.4 kg cart, force <= 1 N, g 10, 0.05 s steps; a bead with drag 0.9/s "
        f"fitted to Box2D's car",
    ),
    _task(
        "rlgen/SparseMountainCarPixels-v0",
        "as SparseMountainCar, observed as a 2x16x24 uint8 image (current and previous frame)",
        {"goal_position": 0.45},
        500,
        "rlgen.envs.mountain_car:SparseMountainCarPixelsEnv",
    ),
    _task(
        "rlgen/SparseCartPoleSwingup-v0",
        "1 while cos(theta) > cos_threshold and |x| <= x_limit, else 0; ends when |x| > x_limit",
        {"cos_threshold": 0.8, "x_limit": 3.0},
        500,  # VIME's path length
        "rlgen.envs.cartpole_swingup:SparseCartPoleSwingupEnv",
        f"{_GYM_TIMING}: unit actions (x 10 N), cos/sin observed, g 9.8",
    ),
    _task(
        "rlgen/SparseCartPoleSwingup-v1",
        "1 while cos(theta) > cos_threshold and |x| <= x_limit, else 0; ends when |x| > x_limit",
        {"cos_threshold": 0.8, "x_limit": 3.0},
        500,
        "rlgen.envs.cartpole_swingup:SparseCartPoleSwingupEnv",
        f"{_VIME}: the force in [-10, 10] N as the action, the raw angle observed, g 10; a joint drag fitted to "
        f"Box2D's",
    ),
    _task(
        "rlgen/SparseHalfCheetah-v0",
        "1 while torso x > goal_x, else 0; never ends (truncated at 500 steps)",
        {"goal_x": 5.0},
        500,  # VIME's path length; random policies first reach x > 5 at step 597 (locomotion.py)
        "rlgen.envs.locomotion:SparseHalfCheetahEnv",
        f"{_GYM_TIMING}: HalfCheetah-v5, 0.05 s per step (25 s per episode), the torso's x",
    ),
    _task(
        "rlgen/SparseHalfCheetah-v1",
        "1 while the body's centre of mass x > goal_x, else 0; never ends (truncated at 500 steps)",
        {"goal_x": 5.0},
        500,
        "rlgen.envs.locomotion:VIMEHalfCheetahEnv",
        f"{_VIME}: 0.01 s per step (5 s per episode), centre of mass, rllab's 20-d observation and reset noise",
    ),
    _task(
        "rlgen/SparseAnt-v0",
        "1 while torso (x, y) is farther than goal_distance from its start, else 0; ends when unhealthy",
        {"goal_distance": 20.0},
        1000,
        "rlgen.envs.locomotion:SparseAntEnv",
    ),
    _task(
        "rlgen/SparseHumanoid-v0",
        "1 while torso (x, y) is farther than goal_distance from its start, else 0; ends when unhealthy",
        {"goal_distance": 5.0},
        1000,
        "rlgen.envs.locomotion:SparseHumanoidEnv",
    ),
)


# Constructor keywords that make a version out of a shared class.
_VERSION_KWARGS: dict[str, dict[str, object]] = {
    "rlgen/SparseCartPoleSwingup-v1": {"gravity": 10.0, "force_actions": True, "raw_angle": True, "pole_drag": 6e-4},
}


def register_all() -> None:
    """Register every task with Gymnasium; ids already present are left alone, so repeat calls are no-ops."""
    for task in TASKS:
        if task.id not in gymnasium.registry:
            gymnasium.register(id=task.id, entry_point=task.entry_point, max_episode_steps=task.episode_steps,
                               kwargs=dict(_VERSION_KWARGS.get(task.id, {})))


register_all()

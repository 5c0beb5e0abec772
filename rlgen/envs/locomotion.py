"""Sparse-reward MuJoCo locomotion tasks built on Gymnasium's v5 environments.

* SparseHalfCheetah-v0: reward 1 on every step the torso's x position exceeds ``goal_x`` (5 m, as in VIME),
  else 0; never terminates; Gymnasium's HalfCheetah-v5 as it is (frame skip 5: 0.05 s per step, so 500 steps
  are 25 s and ~0.2 m/s reaches the goal: the easy variant).
* SparseHalfCheetah-v1: VIME's task as its code defined it (:class:`VIMEHalfCheetahEnv`): 0.01 s per step, the
  whole body's centre of mass past 5 m.
* SparseAnt / SparseHumanoid: reward 1 on every step the torso's horizontal (x, y) distance from where it
  stood after reset exceeds ``goal_distance``, else 0; the base env's unhealthy termination stays.

The base env's reward is kept as ``info["reward_dense"]`` next to its own ``reward_*`` terms, and Ant and
Humanoid add ``info["distance_from_start"]``; every task adds ``info["goal_fraction"]``, how far along its goal's
measure the robot is (1.0 at the goal; rlgen.envs.progress).

Deviation from Gymnasium's defaults: ``exclude_current_positions_from_observation=False``, because the
sparse reward depends on absolute position and a policy that cannot see it is chasing a hidden target.

Goal distances come from random-policy measurements (uniform random actions, seeds 0..199, episodes of up to
1000 steps): benchmarks/results/sparse_thresholds_uniform.md, made by an earlier version of
benchmarks/sparse_thresholds.py. Largest horizontal
distance from the start position reached in any episode (median of the per-episode maxima in brackets):

* Ant-v5: 5.38 m (1.51 m) with default termination, where flailing trips the z-range check after ~160
  steps; 9.38 m (3.13 m) with ``terminate_when_unhealthy=False``: random full-gear actions make the Ant
  bounce and tumble at up to ~3 m/s before it settles on its back. ``goal_distance = 20.0``, over 2x the
  worst random case; an Ant walking at 1 m/s gets there in 20 of its 50 s.
* Humanoid-v5: 0.44 m (0.06 m) with default termination (it falls within ~24 steps); 1.81 m (1.15 m)
  with ``terminate_when_unhealthy=False`` (thrashing on the floor). ``goal_distance = 5.0``, near 3x the
  worst random case; a humanoid walking at 1 m/s gets there in 5 of its 15 s.
* HalfCheetah-v5 (``goal_x`` kept at VIME's 5 m): max torso x 7.52 m (median 0.61 m); 4 of 200 random
  episodes earn some reward, the first at step 597, so the task keeps VIME's 500-step episodes, within
  which no random episode earned anything (max torso x 4.16 m).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces, utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv

from rlgen.envs.progress import GOAL_FRACTION, goal_fraction
from rlgen.envs.quiet import quiet_settotalmass

HALF_CHEETAH_GOAL_X = 5.0
ANT_GOAL_DISTANCE = 20.0
HUMANOID_GOAL_DISTANCE = 5.0


class SparseHalfCheetahEnv(HalfCheetahEnv):
    """HalfCheetah-v5 rewarded 1 per step while the torso is past ``goal_x``."""

    reports_goal_fraction = True  # info["goal_fraction"] = torso x / goal_x

    def __init__(
        self,
        goal_x: float = HALF_CHEETAH_GOAL_X,
        exclude_current_positions_from_observation: bool = False,
        **kwargs: Any,
    ) -> None:
        with quiet_settotalmass():
            super().__init__(
                exclude_current_positions_from_observation=exclude_current_positions_from_observation,
                **kwargs,
            )
        # Re-record constructor arguments so pickling/copying rebuilds the sparse env, not the base one.
        utils.EzPickle.__init__(
            self,
            goal_x=goal_x,
            exclude_current_positions_from_observation=exclude_current_positions_from_observation,
            **kwargs,
        )
        self.goal_x = float(goal_x)

    # MujocoEnv annotates rewards and info values as np.float64; plain floats serve every caller as well.
    def step(  # type: ignore[override]
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, dense_reward, terminated, truncated, info = super().step(action)
        info["reward_dense"] = float(dense_reward)
        reward = float(self.data.qpos[0] > self.goal_x)
        info[GOAL_FRACTION] = goal_fraction(float(self.data.qpos[0]), self.goal_x)
        return obs, reward, terminated, truncated, info


class VIMEHalfCheetahEnv(HalfCheetahEnv):
    """VIME's SparseHalfCheetah as its code defined it (openai/vime envs/half_cheetah_env_x.py on rllab's
    MujocoEnv): one MuJoCo step of 0.01 s per env step (frame skip 1, so a 500-step episode is 5 s of simulated
    time and x > 5 needs ~1 m/s), reward 1 on every step the centre of mass of the whole body (the torso's
    ``subtree_com``) is past ``goal_x``, else 0, never ending; the observation is rllab's 20 numbers
    ``[qpos[1:], qvel, centre of mass (x, y, z)]``; a reset adds N(0, 0.01) to the initial joint positions and
    N(0, 0.1) to the velocities, as rllab's ``reset_mujoco`` did. Gymnasium's own reward stays in
    ``info["reward_dense"]``; ``info["com_x"]`` is the centre of mass's x.
    """

    reports_goal_fraction = True  # info["goal_fraction"] = centre-of-mass x / goal_x

    FIXED: dict[str, str] = {
        "reset_noise_scale": "its reset noise is rllab's: N(0, 0.01) on the joint positions, N(0, 0.1) on the "
                             "velocities",
        "exclude_current_positions_from_observation": "its observation is rllab's 20 numbers (qpos[1:], qvel, "
                                                      "centre of mass)",
    }
    """HalfCheetah-v5 keywords this task would ignore or override, and why: refused rather than dropped."""

    def __init__(self, goal_x: float = HALF_CHEETAH_GOAL_X, frame_skip: int = 1, **kwargs: Any) -> None:
        for key, reason in self.FIXED.items():
            if key in kwargs:
                raise TypeError(f"SparseHalfCheetah-v1 does not take {key}: {reason}")
        with quiet_settotalmass():
            super().__init__(frame_skip=frame_skip, exclude_current_positions_from_observation=True, **kwargs)
        utils.EzPickle.__init__(self, goal_x=goal_x, frame_skip=frame_skip, **kwargs)
        self.goal_x = float(goal_x)
        self._torso = self.model.body("torso").id
        width = self.model.nq - 1 + self.model.nv + 3
        self.observation_space = spaces.Box(-np.inf, np.inf, (width,), np.float64)

    def centre_of_mass(self) -> np.ndarray:
        """The whole body's centre of mass (the torso is the root of every other body)."""
        return self.data.subtree_com[self._torso].copy()

    def _get_obs(self) -> np.ndarray:
        # mj_step leaves subtree_com at the positions it started from (rllab ran the model forward after each
        # step): bring it to the current ones, or the observation and the reward would lag one step behind
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        return np.concatenate([self.data.qpos.flat[1:], self.data.qvel.flat, self.centre_of_mass()])

    def reset_model(self) -> np.ndarray:
        qpos = self.init_qpos + self.np_random.normal(0.0, 0.01, self.model.nq)
        qvel = self.init_qvel + self.np_random.normal(0.0, 0.1, self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def step(  # type: ignore[override]
        self, action: np.ndarray
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, dense_reward, terminated, truncated, info = super().step(action)
        com_x = float(self.centre_of_mass()[0])
        info["reward_dense"] = float(dense_reward)
        info["com_x"] = com_x
        info[GOAL_FRACTION] = goal_fraction(com_x, self.goal_x)
        return obs, float(com_x > self.goal_x), terminated, truncated, info


class _DistanceFromStartGoal:
    """Mixin for free-floating robots: reward 1 while the torso is farther than ``goal_distance`` from start.

    Must precede the MuJoCo env in the bases so its ``step``/``reset_model`` wrap the env's own.
    """

    goal_distance: float
    data: Any
    _start_xy: np.ndarray
    reports_goal_fraction = True  # info["goal_fraction"] = distance from the start / goal_distance

    def __init__(
        self,
        goal_distance: float,
        exclude_current_positions_from_observation: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(  # type: ignore[call-arg]
            exclude_current_positions_from_observation=exclude_current_positions_from_observation, **kwargs
        )
        # Re-record constructor arguments so pickling/copying rebuilds the sparse env, not the base one.
        utils.EzPickle.__init__(
            self,
            goal_distance=goal_distance,
            exclude_current_positions_from_observation=exclude_current_positions_from_observation,
            **kwargs,
        )
        self.goal_distance = float(goal_distance)
        self._start_xy = self.data.qpos[:2].copy()

    def _distance_from_start(self) -> float:
        # qpos[:2] is the root free joint, i.e. the torso's horizontal position.
        return float(np.linalg.norm(self.data.qpos[:2] - self._start_xy))

    def reset_model(self) -> np.ndarray:
        obs = super().reset_model()  # type: ignore[misc]
        # Measured after the reset noise so the goal is a distance travelled, not one granted by the noise.
        self._start_xy = self.data.qpos[:2].copy()
        return obs

    def _get_reset_info(self) -> dict[str, Any]:
        # the goal fraction of distance 0 (0.0 for a goal above 0; a goal moved to or below 0 by hand counts on)
        return {**super()._get_reset_info(), "distance_from_start": 0.0,  # type: ignore[misc]
                GOAL_FRACTION: goal_fraction(0.0, self.goal_distance)}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, dense_reward, terminated, truncated, info = super().step(action)  # type: ignore[misc]
        distance = self._distance_from_start()
        info["reward_dense"] = float(dense_reward)
        info["distance_from_start"] = distance
        info[GOAL_FRACTION] = goal_fraction(distance, self.goal_distance)
        return obs, float(distance > self.goal_distance), terminated, truncated, info


class SparseAntEnv(_DistanceFromStartGoal, AntEnv):  # type: ignore[misc]  # float vs np.float64, as above
    """Ant-v5 rewarded 1 per step while the torso is more than ``goal_distance`` from its start."""

    def __init__(self, goal_distance: float = ANT_GOAL_DISTANCE, **kwargs: Any) -> None:
        super().__init__(goal_distance=goal_distance, **kwargs)


class SparseHumanoidEnv(_DistanceFromStartGoal, HumanoidEnv):  # type: ignore[misc]  # as above
    """Humanoid-v5 rewarded 1 per step while the torso is more than ``goal_distance`` from its start."""

    def __init__(self, goal_distance: float = HUMANOID_GOAL_DISTANCE, **kwargs: Any) -> None:
        super().__init__(goal_distance=goal_distance, **kwargs)

"""Sparse-reward cart-pole swing-up (VIME's SparseCartpoleSwingup), simulated in plain numpy.

Gymnasium has no swing-up task, so the classic cart-pole equations of motion (Barto et al. 1983, with the
sign fix of Florian 2007, the same model as gymnasium's CartPole) are integrated here with semi-implicit
Euler. ``theta = 0`` is upright and ``theta = pi`` hangs down; theta is not wrapped, the observation only
sees it through cos and sin.

Observation (float32): ``[x, x_dot, cos(theta), sin(theta), theta_dot]`` (``raw_angle``: ``[x, x_dot, theta,
theta_dot]``, the state rllab's env observed, though Box2D measures the angle the other way round: rllab's
``(theta, theta_dot)`` is this module's ``(2 pi - theta, -theta_dot)``).
Action: force in [-1, 1], scaled by ``max_force`` newtons (``force_actions``: the force itself, in
[-max_force, max_force], as rllab's env took it).
Reward: 1 while ``cos(theta) > cos_threshold`` and ``|x| <= x_limit``, else 0.
Termination: ``|x| > x_limit`` (the cart left the track).
Reset: x ~ U(-1, 1), x_dot ~ U(-2, 2), theta ~ U(pi - 1, pi + 1), theta_dot ~ U(-3, 3).
Dense terms in info: ``reward_upright`` (cos theta), ``reward_centered`` (-|x| / x_limit) and
``reward_ctrl`` (-0.01 * (force / max_force)**2).

Versions: ``rlgen/SparseCartPoleSwingup-v0`` takes unit actions, observes cos/sin and uses g = 9.8;
``-v1`` follows VIME's env (openai/vime envs/cartpole_swingup_env_x.py on rllab's Box2D cart-pole: a 1 kg cart,
a 0.1 kg pole 1 m long, g = 10, one 0.05 s step per action) in everything but the physics engine: forces of
up to 10 N as the action itself (a policy starting with a unit-variance Gaussian pushes with ~1 N there, a
tenth of v0's push), the raw angle observed, g = 10. The equations of motion are this module's, not Box2D's;
``pole_drag`` (a torque ``-pole_drag * theta_dot**3`` at the pole's joint, 0.0006 N m s^3 in v1) sheds a fast
swing's energy as Box2D's joint does at its 0.05 s steps (benchmarks/results/vime_box2d_check.md: it brings the
angle of the same actions within 0.1 rad of Box2D's over 100 steps, 0.8 rad without it).

Where -v1 departs from how VIME ran the task: VIME's launchers (experiments/run_trpo*.py) wrapped every env
in rllab's ``NormalizedEnv``, which maps the policy's [-1, 1] onto the env's bounds and clips, so VIME's agent
(initial std 1) pushed with up to 10 N from the start, as -v0's unit actions do; -v1 takes the force itself
(``env_kwargs.force_actions=false`` gives the launchers' scaling on -v1's physics). Its reset also places a
consistent state, where rllab moved the cart and left the pole's body behind for Box2D to snap back
(benchmarks/results/vime_box2d_check.md compares the two).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SparseCartPoleSwingupEnv(gym.Env[np.ndarray, np.ndarray]):
    """Cart-pole that starts hanging down and is rewarded only while held near upright on the track."""

    metadata = {"render_modes": []}

    cart_mass = 1.0
    pole_mass = 0.1
    pole_half_length = 0.5

    def __init__(
        self,
        render_mode: str | None = None,
        cos_threshold: float = 0.8,
        x_limit: float = 3.0,
        max_force: float = 10.0,
        dt: float = 0.05,
        substeps: int = 5,
        gravity: float = 9.8,
        force_actions: bool = False,
        raw_angle: bool = False,
        pole_drag: float = 0.0,
    ) -> None:
        if render_mode is not None:
            raise ValueError("SparseCartPoleSwingup has no renderer; use render_mode=None")
        self.render_mode = render_mode
        self.cos_threshold = float(cos_threshold)
        self.x_limit = float(x_limit)
        self.max_force = float(max_force)
        self.dt = float(dt)
        self.gravity = float(gravity)
        self.force_actions, self.raw_angle = bool(force_actions), bool(raw_angle)
        if not pole_drag >= 0:
            raise ValueError(f"pole_drag must be >= 0, got {pole_drag}")
        # a step of no time, or of no substeps, would leave the state where it is (a task that never moves); no
        # force would divide by zero in the first step; no track would end every episode at its first step
        for name, value in (("max_force", max_force), ("dt", dt), ("x_limit", x_limit)):
            if not value > 0:  # NaN too
                raise ValueError(f"{name} must be > 0, got {value}")
        if int(substeps) != substeps or substeps < 1:
            raise ValueError(f"substeps must be a whole number >= 1, got {substeps}")
        self.pole_drag = float(pole_drag)
        # Several small integration steps per control step keep the fast swinging pole accurate.
        self.substeps = int(substeps)

        bound = self.max_force if self.force_actions else 1.0
        self.action_space = spaces.Box(-bound, bound, shape=(1,), dtype=np.float32)
        high = np.array([np.inf] * 4 if self.raw_angle else [np.inf, np.inf, 1.0, 1.0, np.inf], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        # [x, x_dot, theta, theta_dot]; public so tests and scripts can place the system anywhere.
        self.state = np.zeros(4, dtype=np.float64)

    def _obs(self) -> np.ndarray:
        x, x_dot, theta, theta_dot = self.state
        if self.raw_angle:
            return np.array([x, x_dot, theta, theta_dot], dtype=np.float32)
        return np.array([x, x_dot, math.cos(theta), math.sin(theta), theta_dot], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        self.state = np.array(
            [
                rng.uniform(-1.0, 1.0),
                rng.uniform(-2.0, 2.0),
                rng.uniform(math.pi - 1.0, math.pi + 1.0),
                rng.uniform(-3.0, 3.0),
            ]
        )
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        bound = float(self.action_space.high[0])
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -bound, bound)) / bound
        force = a * self.max_force
        x, x_dot, theta, theta_dot = (float(v) for v in self.state)

        total_mass = self.cart_mass + self.pole_mass
        pole_moment = self.pole_mass * self.pole_half_length
        h = self.dt / self.substeps
        for _ in range(self.substeps):
            sin, cos = math.sin(theta), math.cos(theta)
            temp = (force + pole_moment * theta_dot**2 * sin) / total_mass
            torque = -self.pole_drag * theta_dot**3  # at the pole's joint (see pole_drag)
            theta_acc = (self.gravity * sin - cos * temp + torque / pole_moment) / (
                self.pole_half_length * (4.0 / 3.0 - self.pole_mass * cos**2 / total_mass)
            )
            x_acc = temp - pole_moment * theta_acc * cos / total_mass
            # Semi-implicit: velocities first, positions from the new velocities (energy-stable swinging).
            x_dot += h * x_acc
            theta_dot += h * theta_acc
            x += h * x_dot
            theta += h * theta_dot
        self.state = np.array([x, x_dot, theta, theta_dot])

        on_track = abs(x) <= self.x_limit
        upright = math.cos(theta)
        reward = float(upright > self.cos_threshold and on_track)
        info = {
            "reward_upright": upright,
            "reward_centered": -abs(x) / self.x_limit,
            "reward_ctrl": -0.01 * a**2,
        }
        return self._obs(), reward, not on_track, False, info

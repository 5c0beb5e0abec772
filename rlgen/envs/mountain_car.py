"""Sparse-reward continuous Mountain Car (VIME's SparseMountainCar), and its pixel-observation variant.

``rlgen/SparseMountainCar-v0`` is Gymnasium's continuous mountain car with a sparse reward (the goal at 0.45, the
usual one there); ``-v1`` (:class:`VIMEMountainCarEnv`) is VIME's own task: rllab's hill, cart and goal at 0.6.

The car earns reward 1 on the step it reaches ``x >= goal_position`` and the episode ends there; every
other step earns 0. Gymnasium's shaped reward (goal bonus of 100 minus 0.1 * action**2) stays available
as ``info["reward_dense"]``, with the action cost alone in ``info["reward_ctrl"]``.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv


class SparseMountainCarEnv(Continuous_MountainCarEnv):
    """Continuous Mountain Car with reward 1 at the goal and 0 elsewhere."""

    def __init__(self, render_mode: str | None = None, goal_position: float = 0.45) -> None:
        super().__init__(render_mode=render_mode)
        if not float(goal_position) <= self.max_position:  # NaN too
            # the parent stops the car at max_position: a goal beyond it would never pay, silently
            raise ValueError(f"goal_position must be at most the track's end, {self.max_position}, got {goal_position}")
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


class SparseMountainCarPixelsEnv(SparseMountainCarEnv):
    """SparseMountainCar observed as a small grey image: the same dynamics, reward, goal and episode rules.

    The observation is a ``(2, height, width)`` uint8 image (default 2 x 16 x 24): channel 0 the current frame,
    channel 1 the previous one (the current one again after a reset), so that the velocity can be read off.
    A frame, drawn with numpy, shows the hill (its surface grey 96, the ground below it grey 32) under a sky
    shaded from 0 at the left edge to 144 at the right, and the car as a bright blob two pixels high resting
    on the surface. The track's ``width`` columns sample ``[min_position, max_position]`` evenly and the car
    is split between the two columns around its position in proportion to its closeness to them (a column's
    car pixels are its sky blended towards 255 by that share), so every position has a frame of its own to
    within 1/111 of a column (7e-4 of the 1.8-long track) and a move too small to change columns still
    changes the image. The true state is kept in ``info["x"]`` and ``info["velocity"]``.

    The sky's shading is there for convolutional density models (the PixelCNN of the density bonus): a
    convolution sees only a pixel's neighbourhood, and over a uniform sky the car would look the same
    anywhere above a similar slope; with the shading the neighbourhood tells the columns apart. (The density
    bonus's default image PixelCNN, trained 400 Adam steps on frames of the car in the valley, gave new valley
    frames 34 nats and frames from the right slope's upper half 195 with the shading; 395 and 417 without.)
    """

    SURFACE, GROUND, SKY = 96, 32, 144

    def __init__(self, render_mode: str | None = None, goal_position: float = 0.45, height: int = 16,
                 width: int = 24) -> None:
        super().__init__(render_mode=render_mode, goal_position=goal_position)
        if height < 4 or width < 2:
            raise ValueError(f"SparseMountainCarPixels needs height >= 4 and width >= 2, got {height} x {width}")
        self.image_height, self.image_width = int(height), int(width)
        self.observation_space = spaces.Box(0, 255, (2, self.image_height, self.image_width), np.uint8)
        columns = np.linspace(self.min_position, self.max_position, self.image_width)
        # The hill's heights lie in [0.1, 1.0] (0.45 sin(3x) + 0.55 over [-1.2, 0.6]); the surface spans rows
        # 2 .. height-1 so that the two rows of the car above it always fit.
        level = (self._height(columns) - 0.1) / 0.9
        self._surface = (2 + np.rint((1.0 - level) * (self.image_height - 3))).astype(np.intp)
        self._surface = np.clip(self._surface, 2, self.image_height - 1)
        rows = np.arange(self.image_height)[:, None]
        self._sky = np.rint(np.linspace(0, self.SKY, self.image_width)).astype(np.int64)
        # the frame without the car
        self.background = np.where(rows > self._surface, self.GROUND, self._sky[None, :]).astype(np.uint8)
        self.background[self._surface, np.arange(self.image_width)] = self.SURFACE
        self._scale = (self.image_width - 1) / (self.max_position - self.min_position)
        # plain Python numbers for frame(), which runs every step: numpy scalars are several times slower there
        self._surface_rows, self._sky_values = self._surface.tolist(), self._sky.tolist()
        self._previous_frame = self.background

    def frame(self, x: float) -> np.ndarray:
        """The (height, width) uint8 frame of the car at position ``x`` (clipped to the track)."""
        u = min(max((float(x) - self.min_position) * self._scale, 0.0), self.image_width - 1.0)
        left = min(int(u), self.image_width - 2)
        share = u - left  # of the car in column left + 1
        image = self.background.copy()
        for column, weight in ((left, 1.0 - share), (left + 1, share)):
            top, sky = self._surface_rows[column], self._sky_values[column]
            image[top - 2:top, column] = round(sky + weight * (255 - sky))
        return image

    def _observe(self, x: float) -> np.ndarray:
        obs = np.empty(self.observation_space.shape, dtype=np.uint8)
        obs[0] = current = self.frame(x)
        obs[1] = self._previous_frame
        self._previous_frame = current
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        state, info = super().reset(seed=seed, options=options)
        self._previous_frame = self.frame(state[0])
        return self._observe(state[0]), {**info, "x": float(state[0]), "velocity": float(state[1])}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        state, reward, terminated, truncated, info = super().step(action)
        info = {**info, "x": float(state[0]), "velocity": float(state[1])}
        return self._observe(state[0]), reward, terminated, truncated, info


class VIMEMountainCarEnv(gym.Env[np.ndarray, np.ndarray]):
    """VIME's SparseMountainCar as its code defined it (openai/vime envs/mountain_car_env_x.py on rllab's Box2D
    mountain car), with the physics of a bead on the track instead of Box2D's contacts.

    rllab's track is a chain along ``y = 1 - cos(pi x / 2)`` for x in [-2, 2] (a valley at 0, heights 1 at
    x = +-1 and 2 at the ends); its 0.4 kg cart is pushed along the track by a force of up to 1 N (the action
    itself), under gravity 10, one 0.05 s step per action. The cart starts at x = 0 with a velocity drawn from
    U(-1, 1). The episode ends when x >= ``goal_position`` (0.6) or |x| >= ``track_limit`` (2), and, as VIME's
    code has it, that step earns 1 (either way: leaving the track at x <= -2 pays too, though it needs four times
    the climb); every other step earns 0. Observation: ``[x, x_dot]`` (float32), rllab's Box2D state.

    Against Gymnasium's mountain car (rlgen/SparseMountainCar-v0) the goal is another hill: on this one the
    slope at the goal is 51 degrees, and gravity's pull along it (7.7 m/s^2) is three times what the motor can
    give (2.5 m/s^2), so the car must swing.

    ``damping`` (1/s) is a drag ``damping * mass * speed`` along the track. rllab's Box2D car loses most of an
    unforced swing's energy within 100 steps (its chain's friction and 0.05 s contact steps); a frictionless
    bead keeps all of it, and random policies then reach the goal in a quarter of their episodes where Box2D's
    reach it in none. 0.9 matches Box2D's car: the same success rates under the agents' initial policies (0 of
    200) and the same time for a full-force swing policy to the goal (84 steps against 84-87):
    benchmarks/results/vime_box2d_check.md.
    """

    metadata = {"render_modes": []}

    def __init__(self, render_mode: str | None = None, goal_position: float = 0.6, track_limit: float = 2.0,
                 mass: float = 0.4, max_force: float = 1.0, gravity: float = 10.0, dt: float = 0.05,
                 substeps: int = 5, damping: float = 0.9) -> None:
        if render_mode is not None:
            raise ValueError("SparseMountainCar-v1 has no renderer; use render_mode=None")
        if not 0 < goal_position < track_limit:
            raise ValueError(f"goal_position must lie in (0, track_limit), got {goal_position} and {track_limit}")
        self.render_mode = render_mode
        self.goal_position, self.track_limit = float(goal_position), float(track_limit)
        self.mass, self.max_force, self.gravity = float(mass), float(max_force), float(gravity)
        self.dt, self.substeps = float(dt), int(substeps)
        if not damping >= 0:
            raise ValueError(f"damping must be >= 0, got {damping}")
        # a step of no time, or of no substeps, would leave the car where it is; no mass or force divides by zero
        for name, value in (("mass", mass), ("max_force", max_force), ("dt", dt)):
            if not value > 0:  # NaN too
                raise ValueError(f"{name} must be > 0, got {value}")
        if int(substeps) != substeps or substeps < 1:
            raise ValueError(f"substeps must be a whole number >= 1, got {substeps}")
        self.damping = float(damping)
        self.action_space = spaces.Box(-self.max_force, self.max_force, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.state = np.zeros(2, dtype=np.float64)  # [x, x_dot]; public so tests can place the car

    @staticmethod
    def height(x: float | np.ndarray) -> float | np.ndarray:
        return 1.0 - np.cos(np.pi * np.asarray(x) / 2.0)

    def _acceleration(self, x: float, x_dot: float, force: float) -> float:
        """Lagrange's equation for x of a bead on y = h(x) pushed along the tangent:
        (1 + h'^2) x'' = F sqrt(1 + h'^2) / m - g h' - h' h'' x'^2."""
        k = math.pi / 2.0
        slope, curvature = k * math.sin(k * x), k * k * math.cos(k * x)
        stretch = 1.0 + slope * slope
        return (force * math.sqrt(stretch) / self.mass - self.gravity * slope
                - slope * curvature * x_dot * x_dot) / stretch - self.damping * x_dot

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.state = np.array([0.0, self.np_random.uniform(-1.0, 1.0)])
        return self.state.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        force = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -self.max_force, self.max_force))
        x, x_dot = (float(v) for v in self.state)
        h = self.dt / self.substeps
        for _ in range(self.substeps):  # classical Runge-Kutta: a frictionless swing keeps its energy
            k1x, k1v = x_dot, self._acceleration(x, x_dot, force)
            k2x, k2v = x_dot + h / 2 * k1v, self._acceleration(x + h / 2 * k1x, x_dot + h / 2 * k1v, force)
            k3x, k3v = x_dot + h / 2 * k2v, self._acceleration(x + h / 2 * k2x, x_dot + h / 2 * k2v, force)
            k4x, k4v = x_dot + h * k3v, self._acceleration(x + h * k3x, x_dot + h * k3v, force)
            x += h / 6 * (k1x + 2 * k2x + 2 * k3x + k4x)
            x_dot += h / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
        self.state = np.array([x, x_dot])
        terminated = bool(x >= self.goal_position or abs(x) >= self.track_limit)
        info = {"height": float(self.height(x)), "reward_ctrl": -((force / self.max_force) ** 2)}
        return self.state.astype(np.float32), float(terminated), terminated, False, info

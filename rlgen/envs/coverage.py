"""How near a sparse task's goal an agent came, and how much of the task's state space it visited.

Per task (:func:`measures_for`: rlgen's own tasks by id, third-party ones by id prefix such as ``PointMaze_`` or
``dm_control/cartpole-``), a :class:`TaskMeasures` holds

* a **progress** measure: a number read off the unwrapped env (its state, or the step's info), higher nearer the
  goal, e.g. the car's x, the pole's cos(angle), minus a maze ball's path distance to its goal (through the
  maze's corridors, :func:`maze_path_distance`), or the goal fraction rlgen's locomotion tasks report
  (:mod:`rlgen.envs.progress`: 1.0 at the goal);
* a low-dimensional **position**, the part of the state that exploration is about (the car's x and velocity, the
  cart's x and the pole's angle, a maze ball's x and y, ...), read off the unwrapped env's own state (never a
  flattened observation, whose layout depends on the wrapping), with a **cell size** per dimension: the cell of a
  state is ``floor(position / cell_size)`` per dimension, and the cells a run visited are its **state coverage**.
  Cell sizes are chosen so that the region a task's agent can reach spans some tens of cells per dimension: a
  random policy covers some of them, a policy that reaches the goal many more (the reasons are beside each task).

:class:`ReachAndCoverage`, which the run's env stack puts inside Monitor
(:func:`rlgen.agents.envstack.make_env_fn`), keeps each episode's maximum progress in ``info["max_progress"]``
(or the column a task's measure names, :attr:`TaskMeasures.column`) and, at each episode's end, the cells this
env first visited since its last episode-end in
``info["new_cells"]`` (text such as ``"3:-2;4:-2"``, no commas, so the Monitor file stays plain CSV). Monitor
writes both as columns; a run's coverage after t steps is the size of the union of the cells of all its
episodes that ended by t, over all its monitor files (:func:`rlgen.agents.plotting.coverage_over_steps`).
Any other env (CartPole-v1, Hopper-v5, ...) gets no measures and no columns.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rlgen.envs.progress import GOAL_FRACTION, reports_goal_fraction

__all__ = ["MAX_PATH_PROGRESS", "MAX_PROGRESS", "NEW_CELLS", "Cell", "ReachAndCoverage", "TaskMeasures", "format_cells",
           "maze_path_distance", "measures_for", "parse_cells", "task_measures", "wrap_angle"]

MAX_PROGRESS = "max_progress"
"""The Monitor column (and info key) of an episode's highest progress; NaN where the task measured none."""
MAX_PATH_PROGRESS = "max_path_progress"
"""The Monitor column of the mazes' progress (minus the path distance to the goal); their runs recorded before it
hold minus the straight-line distance, which ignores the walls, in ``max_progress``."""
NEW_CELLS = "new_cells"
"""The Monitor column (and info key, at an episode's end) of the cells first visited since the last one."""

Cell = tuple[int, ...]


@dataclass(frozen=True)
class TaskMeasures:
    """How near the goal a state is (``progress``) and where it lies (``position``, cut into cells)."""

    progress: Callable[[Any, Mapping[str, Any]], float | None]
    """(unwrapped env, the step's or reset's info) -> the progress of the env's current state; None: not known."""
    progress_text: str
    """What the progress is and where the goal lies on it, for tables and ``rlgen envs``."""
    position: Callable[[Any], Sequence[float]] | None = None
    """unwrapped env -> the position of its current state (None: the task has no coverage measure)."""
    position_names: tuple[str, ...] = ()
    cell_size: tuple[float, ...] = ()
    column: str = MAX_PROGRESS
    """The Monitor column (and info key) of the episode's highest progress. A measure whose meaning changed gets a
    column of its own, so that runs recorded under the old meaning are not read as the new one."""

    def cell(self, env: Any) -> Cell | None:
        """The cell of ``env``'s (the unwrapped env's) current state; None for a non-finite position."""
        assert self.position is not None
        values = [float(v) for v in self.position(env)]
        if not all(math.isfinite(v) for v in values):
            return None
        return tuple(math.floor(v / size) for v, size in zip(values, self.cell_size, strict=True))

    def position_text(self) -> str:
        """Each dimension and its cell size, e.g. ``x 0.05 by velocity 0.005`` or ``pole angle 10 deg``; empty
        without a position."""
        return " by ".join(f"{name} {math.degrees(size):.3g} deg" if "angle" in name else f"{name} {size:g}"
                           for name, size in zip(self.position_names, self.cell_size, strict=True))


def wrap_angle(angle: float) -> float:
    """``angle`` in [-pi, pi)."""
    return (float(angle) + math.pi) % (2.0 * math.pi) - math.pi


def format_cells(cells: Iterable[Cell]) -> str:
    """Cells as Monitor-column text: ``"3:-2;4:-2"`` (one-dimensional: ``"3;4"``; none: ``""``)."""
    return ";".join(":".join(str(i) for i in cell) for cell in cells)


def parse_cells(text: str) -> list[Cell]:
    """The cells of a :func:`format_cells` text."""
    return [tuple(int(i) for i in token.split(":")) for token in text.split(";") if token]


# -- each task's measures ------------------------------------------------------------------------------------
_PI_18 = math.pi / 18  # 10 degrees: 36 cells around a full turn


def _goal_fraction(env: Any, info: Mapping[str, Any]) -> float | None:
    value = info.get(GOAL_FRACTION)  # rlgen's locomotion tasks set it on every step (Ant, Humanoid: at reset too)
    return None if value is None else float(value)


def _car_x(env: Any, info: Mapping[str, Any]) -> float:
    return float(env.state[0])


def _car(env: Any) -> Sequence[float]:
    return env.state[0], env.state[1]


def _pole_cos(env: Any, info: Mapping[str, Any]) -> float:
    return math.cos(env.state[2])


def _cartpole(env: Any) -> Sequence[float]:
    return env.state[0], wrap_angle(env.state[2])


def _torso_x(env: Any) -> Sequence[float]:
    return (env.data.qpos[0],)


def _com_x(env: Any) -> Sequence[float]:
    return (env.centre_of_mass()[0],)


def _torso_xy(env: Any) -> Sequence[float]:
    return env.data.qpos[:2]  # the root free joint: the torso's horizontal position


def _dm_cartpole_progress(env: Any, info: Mapping[str, Any]) -> float:
    return float(np.min(env.physics.pole_angle_cosine()))  # every pole must be upright for the reward


def _dm_cartpole(env: Any) -> Sequence[float]:
    qpos = env.physics.named.data.qpos
    return qpos["slider"][0], wrap_angle(qpos["hinge_1"][0])


def _acrobot_progress(env: Any, info: Mapping[str, Any]) -> float:
    return -float(env.physics.to_target())


def _acrobot(env: Any) -> Sequence[float]:
    qpos = env.physics.named.data.qpos
    return wrap_angle(qpos["shoulder"][0]), wrap_angle(qpos["elbow"][0])


def _pendulum_progress(env: Any, info: Mapping[str, Any]) -> float:
    return float(env.physics.pole_vertical())


def _pendulum(env: Any) -> Sequence[float]:
    data = env.physics.named.data
    return wrap_angle(data.qpos["hinge"][0]), data.qvel["hinge"][0]


def _maze_robot(env: Any) -> Any:
    return env.point_env if hasattr(env, "point_env") else env.ant_env


def _maze_progress(env: Any, info: Mapping[str, Any]) -> float:
    # the ball's (the Ant's torso's) x, y is the observation's achieved_goal
    return -maze_path_distance(env.maze, _maze_robot(env).data.qpos[:2], env.goal)


class _MazeWalls:
    """A Gymnasium-Robotics ``Maze``'s walls as boxes, the corners a shortest path can bend at, and the lengths of
    the straight free paths between those corners (built once per maze)."""

    def __init__(self, maze: Any) -> None:
        size, rows, cols = float(maze.maze_size_scaling), int(maze.map_length), int(maze.map_width)
        x0, y0 = float(maze.x_map_center), float(maze.y_map_center)

        def wall(i: int, j: int) -> bool:  # outside the map counts as a wall
            return not (0 <= i < rows and 0 <= j < cols) or maze.maze_map[i][j] == 1

        # cell (i, j) spans x in [j, j + 1] * size - x0 and y in y0 - [i + 1, i] * size (Maze.cell_rowcol_to_xy)
        def box(i: int, j: int) -> tuple[float, float, float, float]:  # xmin, xmax, ymin, ymax
            return j * size - x0, (j + 1) * size - x0, y0 - (i + 1) * size, y0 - i * size

        self.size, self.x0, self.y0 = size, x0, y0
        self.free_cells = {(i, j) for i in range(rows) for j in range(cols) if not wall(i, j)}
        self.free = np.array([box(*cell) for cell in sorted(self.free_cells)], dtype=float).reshape(-1, 4)
        # a segment between two free points that passes through walls enters one next to a free cell (side or
        # corner): only those walls are tested; outside the map counts as walls
        boxes = [box(i, j) for i in range(-1, rows + 1) for j in range(-1, cols + 1) if wall(i, j) and any(
            (i + di, j + dj) in self.free_cells for di in (-1, 0, 1) for dj in (-1, 0, 1))]
        # walls grown by a hair overlap their neighbours, so no path slips through the seam between two of them
        grow = 1e-9 * size
        walls = np.array(boxes, dtype=float).reshape(-1, 4) + np.array([-grow, grow, -grow, grow])
        self.low, self.high = walls[:, [0, 2]], walls[:, [1, 3]]  # (walls, axes): xmin, ymin and xmax, ymax
        # a shortest path between two points bends only at the walls' corners that stick out into the free space:
        # the grid points with exactly one wall among the four cells around them, each moved a hair away from
        # that wall (more than the walls grew), so that a path may run along a wall's face
        corners, off = [], 1e-6 * size
        for a in range(rows + 1):
            for b in range(cols + 1):
                around = [(di, dj) for di in (-1, 0) for dj in (-1, 0) if wall(a + di, b + dj)]
                if len(around) == 1:  # row a - 1 lies above (larger y), column b - 1 to the left
                    (di, dj), = around
                    corners.append((b * size - x0 + (off if dj == -1 else -off),
                                    y0 - a * size + (-off if di == -1 else off)))
        self.corners = np.array(corners, dtype=float).reshape(-1, 2)
        n = len(self.corners)
        between = np.array([np.where(self.visible(corner, self.corners), np.linalg.norm(self.corners - corner, axis=1),
                                     np.inf) for corner in self.corners]).reshape(n, n)
        np.fill_diagonal(between, 0.0)
        for k in range(n):  # Floyd-Warshall: the shortest path between every two corners
            between = np.minimum(between, between[:, k:k + 1] + between[k:k + 1, :])
        self.between = between
        self._goal: tuple[float, float] | None = None
        self._target, self._to_goal = np.zeros(2), np.zeros(n)

    def visible(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Per end point (rows of ``end``), whether the segment from ``start`` (one point, or one per row) to it
        misses the inside of every wall: the slab method, both axes at once. A segment along a face, parallel to
        it, grazes it (0 * inf is NaN there, and NaN compares false)."""
        start = np.asarray(start, dtype=float).reshape(-1, 1, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = 1.0 / (np.asarray(end, dtype=float) - start[:, 0])[:, None, :]  # inf where parallel
            low, high = (self.low - start) * inverse, (self.high - start) * inverse  # (ends, walls, axes)
        near, far = np.minimum(low, high), np.maximum(low, high)
        enter = np.maximum(np.maximum(near[..., 0], near[..., 1]), 0.0)
        leave = np.minimum(np.minimum(far[..., 0], far[..., 1]), 1.0)
        return ~(enter < leave).any(axis=1)

    def into_free(self, point: np.ndarray) -> np.ndarray:
        """``point``, or where it lies inside a wall (or outside the map, or on a wall's face), the nearest point of
        a free cell a hair inside it."""
        i, j = math.floor((self.y0 - point[1]) / self.size), math.floor((point[0] + self.x0) / self.size)
        if not len(self.free) or ((i, j) in self.free_cells and not np.any(
                np.all((point > self.low) & (point < self.high), axis=1))):  # free, and clear of the walls' growth
            return point
        gap = np.stack([np.maximum(self.free[:, 0] - point[0], point[0] - self.free[:, 1]),
                        np.maximum(self.free[:, 2] - point[1], point[1] - self.free[:, 3])], axis=1)
        nearest = self.free[np.argmin(np.linalg.norm(np.maximum(gap, 0.0), axis=1))]
        off = 1e-6 * self.size  # inside the cell, clear of the walls' growth
        return np.array([np.clip(point[0], nearest[0] + off, nearest[1] - off),
                         np.clip(point[1], nearest[2] + off, nearest[3] - off)])

    def to_goal(self, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``goal`` moved out of any wall, and the path length to it from each corner (inf where none); kept for the
        last goal asked, since a maze's goal stays put for an episode."""
        key = (float(goal[0]), float(goal[1]))
        if key != self._goal:
            target = self.into_free(np.array(key))
            direct = np.where(self.visible(target, self.corners), np.linalg.norm(self.corners - target, axis=1),
                              np.inf)
            self._to_goal = np.min(self.between + direct[None, :], axis=1) if len(direct) else direct
            self._target, self._goal = target, key
        return self._target, self._to_goal


_WALLS: weakref.WeakKeyDictionary[Any, _MazeWalls] = weakref.WeakKeyDictionary()


def maze_path_distance(maze: Any, xy: Sequence[float], goal: Sequence[float]) -> float:
    """The length of a shortest path from ``xy`` to ``goal`` that passes through no wall of a Gymnasium-Robotics
    ``Maze`` (its cells marked 1, and everything outside its map): straight where the goal can be seen, else
    bending at the corners of walls (the geodesic distance of the maze's free space, for a point-sized robot).
    In a U-maze a robot at the end of one arm is about four cell sizes from a goal at the end of the other (round
    the end of the wall between them), not the two of a straight line through it. A point inside a wall (a robot
    pressed into it) or outside the map counts from the nearest point of a free cell; a goal that no path reaches
    gives the straight-line distance; a position or goal that is not finite (a simulation gone wrong) gives NaN,
    which the progress record skips."""
    if not (np.isfinite(np.asarray(xy, dtype=float)[:2]).all() and np.isfinite(np.asarray(goal, dtype=float)[:2]).all()):
        return math.nan
    walls = _WALLS.get(maze)
    if walls is None:
        walls = _WALLS[maze] = _MazeWalls(maze)
    target, corner_lengths = walls.to_goal(np.asarray(goal, dtype=float)[:2])
    point = walls.into_free(np.asarray(xy, dtype=float)[:2])
    seen = walls.visible(point, np.vstack([target[None, :], walls.corners]))
    straight = float(np.linalg.norm(point - target))
    if seen[0]:
        return straight
    lengths = np.linalg.norm(walls.corners - point, axis=1) + corner_lengths
    best = float(np.min(lengths[seen[1:]])) if seen[1:].any() else math.inf
    return best if math.isfinite(best) else straight


def _maze_xy(env: Any) -> Sequence[float]:
    return _maze_robot(env).data.qpos[:2]


_MOUNTAIN_CAR = TaskMeasures(
    _car_x, "car x (reward at x >= goal_position, 0.45 by default)", _car, ("x", "velocity"),
    # the track is [-1.2, 0.6] and speeds stay within +-0.07: 36 x 28 cells (uniform random actions cover
    # x in [-0.9, -0.1] and velocities within +-0.035, about 16 x 14)
    (0.05, 0.005))
_CART_POLE = TaskMeasures(
    _pole_cos, "cos(pole angle) (reward above cos_threshold, 0.8 by default)", _cartpole, ("x", "pole angle"),
    # the track is [-3, 3] (x_limit): 30 cells; the angle 10 degrees a cell, 36 around (the reward's cos > 0.8
    # is the 7 or 8 cells nearest upright)
    (0.2, _PI_18))
_TORSO_X = TaskMeasures(_goal_fraction, "torso x / goal_x (1 at the goal, 5 m by default)", _torso_x, ("torso x",),
                        # 20 cells from the start to the goal at 5 m
                        (0.25,))

_BY_ID: dict[str, TaskMeasures] = {
    "rlgen/SparseMountainCar-v0": _MOUNTAIN_CAR,
    "rlgen/SparseMountainCarPixels-v0": _MOUNTAIN_CAR,  # the same car under its pixels
    "rlgen/SparseMountainCar-v1": TaskMeasures(
        _car_x, "car x (reward at x >= goal_position, 0.6 by default, or at abs(x) >= 2)", _car, ("x", "velocity"),
        # a swing to the goal stays within x in [-1, 0.6] (32 cells) and |velocity| < 2 m/s (40 cells); uniform
        # random actions stay within x in [-0.2, 0.2] and +-1 m/s (8 x 20)
        (0.05, 0.1)),
    "rlgen/SparseCartPoleSwingup-v0": _CART_POLE,
    "rlgen/SparseCartPoleSwingup-v1": _CART_POLE,
    "rlgen/SparseHalfCheetah-v0": _TORSO_X,
    "rlgen/SparseHalfCheetah-v1": TaskMeasures(
        _goal_fraction, "centre-of-mass x / goal_x (1 at the goal, 5 m by default)", _com_x, ("centre-of-mass x",),
        (0.25,)),  # as v0's torso x
    "rlgen/SparseAnt-v0": TaskMeasures(
        _goal_fraction, "distance from the start / goal_distance (1 at the goal, 20 m by default)", _torso_xy,
        # the goal circle is 40 cells across; random flailing stays within ~5 m of the start
        ("torso x", "torso y"), (1.0, 1.0)),
    "rlgen/SparseHumanoid-v0": TaskMeasures(
        _goal_fraction, "distance from the start / goal_distance (1 at the goal, 5 m by default)", _torso_xy,
        # the goal circle is 40 cells across; a random humanoid falls within 0.5 m of the start
        ("torso x", "torso y"), (0.25, 0.25)),
}

_BY_PREFIX: tuple[tuple[str, TaskMeasures], ...] = (
    ("dm_control/cartpole-", TaskMeasures(
        _dm_cartpole_progress, "cos(pole angle) (swingup_sparse: reward at >= 0.995 with abs(cart x) <= 0.25)",
        # the slider's range is [-1.8, 1.8]: 36 cells; the angle 10 degrees a cell
        _dm_cartpole, ("cart x", "pole angle"), (0.1, _PI_18))),
    ("dm_control/acrobot-", TaskMeasures(
        _acrobot_progress, "minus the tip's distance to the target (swingup_sparse: reward within 0.2)",
        # both joints turn freely: 36 cells each
        _acrobot, ("shoulder angle", "elbow angle"), (_PI_18, _PI_18))),
    ("dm_control/pendulum-", TaskMeasures(
        _pendulum_progress, "cos(pole angle) (reward at >= cos 8 degrees = 0.990)",
        # a pole dropped from upright swings through the bottom at ~8 rad/s: +-8 rad/s is 32 cells
        _pendulum, ("pole angle", "angular velocity"), (_PI_18, 0.5))),
    ("PointMaze_", TaskMeasures(
        _maze_progress, "minus the ball's path distance to the goal through the maze (reward within 0.45)",
        # the maze's cells are 1 m (maze_size_scaling 1): 10 position cells per maze cell, so U-maze's
        # 3 x 3 free cells are 30 x 30
        _maze_xy, ("x", "y"), (0.1, 0.1), MAX_PATH_PROGRESS)),
    ("AntMaze_", TaskMeasures(
        _maze_progress, "minus the torso's path distance to the goal through the maze (reward within 0.45)",
        # the maze's cells are 4 m (maze_size_scaling 4): 10 position cells per maze cell, as PointMaze's
        _maze_xy, ("torso x", "torso y"), (0.4, 0.4), MAX_PATH_PROGRESS)),
)

_GOAL_FRACTION_ONLY = TaskMeasures(_goal_fraction, "goal fraction (1 at the goal)")
"""For an env of another id that reports a goal fraction (a locomotion class registered under another id)."""


def measures_for(env_id: str) -> TaskMeasures | None:
    """The measures rlgen knows for ``env_id`` (None for any other task)."""
    if env_id in _BY_ID:
        return _BY_ID[env_id]
    return next((measures for prefix, measures in _BY_PREFIX if env_id.startswith(prefix)), None)


def task_measures(env_id: str, env: gym.Env) -> TaskMeasures | None:
    """:func:`measures_for` ``env_id``, else a progress of the goal fraction for an env that reports one."""
    measures = measures_for(env_id)
    if measures is None and reports_goal_fraction(env):
        return _GOAL_FRACTION_ONLY
    return measures


class ReachAndCoverage(gym.Wrapper):
    """Records a task's :class:`TaskMeasures` for Monitor: ``info["max_progress"]`` on every reset and step (the
    episode's highest progress so far, reset state included; NaN while none is known) and, where the task has a
    position, ``info["new_cells"]`` at each episode's end (terminated or truncated): the cells of the states this
    env visited (reset states included) that it had not visited before, since it was made or since ``seen`` (the
    cells a resumed run's earlier episodes recorded), in the order first visited. The cells of an episode cut off
    by an early reset are reported at the next episode's end."""

    def __init__(self, env: gym.Env, measures: TaskMeasures, seen: Iterable[Cell] = ()) -> None:
        super().__init__(env)
        self.measures = measures
        self.seen: set[Cell] = set(seen)
        self._new: list[Cell] = []
        self._max = math.nan

    @property
    def info_keywords(self) -> tuple[str, ...]:
        """The info keys Monitor should write as columns."""
        column = self.measures.column
        return (column, NEW_CELLS) if self.measures.position is not None else (column,)

    def _record(self, info: dict[str, Any]) -> dict[str, Any]:
        base = self.env.unwrapped
        value = self.measures.progress(base, info)
        if value is not None and (math.isnan(self._max) or value > self._max):  # NaN: none known yet
            self._max = float(value)
        info[self.measures.column] = self._max
        if self.measures.position is not None:
            cell = self.measures.cell(base)
            if cell is not None and cell not in self.seen:
                self.seen.add(cell)
                self._new.append(cell)
        return info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._max = math.nan
        return obs, self._record(info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = self._record(info)
        if (terminated or truncated) and self.measures.position is not None:
            info[NEW_CELLS], self._new = format_cells(self._new), []
        return obs, reward, terminated, truncated, info

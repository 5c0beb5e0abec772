"""rlgen.envs.coverage: each task's progress and the cell of its state, the wrapper that records both for Monitor,
and a run's state coverage (the union of the cells of its monitor files) read back from its run directory."""

from __future__ import annotations

import heapq
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import rlgen.envs
from rlgen.agents import train
from rlgen.agents.envstack import make_env_fn
from rlgen.agents.plotting import coverage_over_steps, training_episodes
from rlgen.agents.rundir import align_monitor_columns, read_monitor_file
from rlgen.envs.coverage import (
    MAX_PATH_PROGRESS,
    MAX_PROGRESS,
    NEW_CELLS,
    ReachAndCoverage,
    TaskMeasures,
    format_cells,
    measures_for,
    parse_cells,
    wrap_angle,
)
from rlgen.envs.progress import MAX_GOAL_FRACTION
from rlgen.envs.quiet import make as quiet_make
from rlgen.envs.suites import SOURCES, SUITE_TASKS

needs_suites = pytest.mark.skipif(not all(source.installed() for source in SOURCES),
                                  reason="the suites extra is not installed: pip install 'rlgen[suites]'")


def _cell_and_progress(env_id: str, place: Any, **kwargs: Any) -> tuple[tuple[int, ...], float]:
    """The cell and progress of the state ``place(unwrapped env)`` sets, after a reset."""
    env = quiet_make(env_id, **kwargs)  # registers a suite's ids, sets a maze's continuing_task=False
    env.reset(seed=0)
    place(env.unwrapped)
    measures = measures_for(env_id)
    assert measures is not None
    try:
        return measures.cell(env.unwrapped), measures.progress(env.unwrapped, {})
    finally:
        env.close()


# ---------------------------------------------------------------- which task has which measures


def test_every_sparse_task_has_a_progress_and_a_position_and_other_envs_have_none() -> None:
    for env_id in [task.id for task in rlgen.envs.TASKS] + [task.id for task in SUITE_TASKS]:
        measures = measures_for(env_id)
        assert measures is not None and measures.position is not None, env_id
        assert len(measures.position_names) == len(measures.cell_size) > 0
        assert "|" not in measures.progress_text + measures.position_text()  # they go into Markdown tables
    # any maze and any dm_control cartpole task, by prefix
    assert measures_for("PointMaze_Medium-v3") is measures_for("PointMaze_UMaze-v3")
    assert measures_for("AntMaze_Large_Diverse_GR-v5") is measures_for("AntMaze_UMaze-v5")
    assert measures_for("dm_control/cartpole-balance-v0") is measures_for("dm_control/cartpole-swingup_sparse-v0")
    for env_id in ("CartPole-v1", "Pendulum-v1", "Hopper-v5", "dm_control/walker-walk-v0", "PointMazeX"):
        assert measures_for(env_id) is None


# ---------------------------------------------------------------- the cell of hand-set states


def test_mountain_car_cells_are_floors_of_x_and_velocity() -> None:
    def place(x: float, v: float) -> Any:
        return lambda env: setattr(env, "state", np.array([x, v]))

    # cells of 0.05 in x and 0.005 in velocity, counted from 0 (floor: -0.52 lies in cell -11, not -10)
    assert _cell_and_progress("rlgen/SparseMountainCar-v0", place(0.32, 0.012)) == ((6, 2), pytest.approx(0.32))
    assert _cell_and_progress("rlgen/SparseMountainCar-v0", place(-0.52, -0.003))[0] == (-11, -1)
    assert _cell_and_progress("rlgen/SparseMountainCar-v0", place(0.02, 0.001))[0] == (0, 0)
    assert _cell_and_progress("rlgen/SparseMountainCar-v0", place(-0.02, -0.001))[0] == (-1, -1)
    # VIME's car: velocity cells of 0.1 m/s
    assert _cell_and_progress("rlgen/SparseMountainCar-v1", place(0.32, 0.25))[0] == (6, 2)


def test_cart_pole_cells_wrap_the_angle_and_the_progress_is_its_cosine() -> None:
    def place(x: float, theta: float) -> Any:
        return lambda env: setattr(env, "state", np.array([x, 0.0, theta, 0.0]))

    for env_id in ("rlgen/SparseCartPoleSwingup-v0", "rlgen/SparseCartPoleSwingup-v1"):  # the same state, any obs
        cell, progress = _cell_and_progress(env_id, place(0.5, 2 * math.pi + 0.2))
        assert cell == (2, 1) and progress == pytest.approx(math.cos(0.2))  # cells of 0.2 m and 10 degrees
        assert _cell_and_progress(env_id, place(-0.5, -0.2))[0] == (-3, -2)
        assert _cell_and_progress(env_id, place(0.0, 3 * math.pi - 0.05))[0] == (0, 17)  # hanging, just short of pi
    assert wrap_angle(math.pi + 0.1) == pytest.approx(-math.pi + 0.1)


def test_locomotion_cells_follow_the_torso() -> None:
    def torso(*xy: float) -> Any:
        def place(env: Any) -> None:
            qpos = env.data.qpos.copy()
            qpos[:len(xy)] = xy
            env.set_state(qpos, env.data.qvel)
        return place

    assert _cell_and_progress("rlgen/SparseHalfCheetah-v0", torso(1.3))[0] == (5,)  # cells of 0.25 m
    assert _cell_and_progress("rlgen/SparseAnt-v0", torso(2.5, -0.5))[0] == (2, -1)  # cells of 1 m


def _place_ball(xy: tuple[float, float], goal: tuple[float, float]) -> Any:
    def place(env: Any) -> None:
        qpos = env.point_env.data.qpos.copy()
        qpos[:2] = xy
        env.point_env.set_state(qpos, np.zeros_like(env.point_env.data.qvel))
        env.goal = np.array(goal)
    return place


@needs_suites
def test_a_maze_cell_is_its_balls_x_y_and_its_progress_minus_the_path_distance_around_the_walls() -> None:
    # U-maze, 1 m cells centred at 0: free (-1.5..1.5, 0.5..1.5) across the top, (0.5..1.5, -1.5..1.5) down the
    # right, (-1.5..1.5, -1.5..-0.5) across the bottom; the wall (-1.5..0.5, -0.5..0.5) between the arms
    measures = measures_for("PointMaze_UMaze-v3")
    assert measures is not None and measures.column == MAX_PATH_PROGRESS != MAX_PROGRESS
    cell, progress = _cell_and_progress("PointMaze_UMaze-v3", _place_ball((-0.9, -0.8), (-1.0, 1.0)))
    assert cell == (-9, -8)  # cells of 0.1 m
    # bottom arm to top arm: round the wall's two corners at (0.5, -0.5) and (0.5, 0.5), not the straight 1.80 m
    assert progress == pytest.approx(-(math.hypot(1.4, 0.3) + 1.0 + math.hypot(1.5, 0.5)), abs=1e-4)
    # the goal in sight (the same arm): the straight line
    assert _cell_and_progress("PointMaze_UMaze-v3", _place_ball((0.3, 1.2), (-1.0, 1.0)))[1] == pytest.approx(
        -math.hypot(1.3, 0.2), abs=1e-5)
    # along the wall's face, and past its corner to the right arm
    assert _cell_and_progress("PointMaze_UMaze-v3", _place_ball((-1.4, -0.5), (0.5, -0.5)))[1] == pytest.approx(
        -1.9, abs=1e-5)
    # straight up the seam between two wall cells is no way through
    assert _cell_and_progress("PointMaze_UMaze-v3", _place_ball((-0.5, -1.0), (-0.5, 1.0)))[1] == pytest.approx(
        -(2 * math.hypot(1.0, 0.5) + 1.0), abs=1e-5)


@needs_suites
def test_the_maze_path_distance_grows_against_a_wall_and_is_never_shorter_than_a_fine_grid_search() -> None:
    from rlgen.envs.coverage import maze_path_distance

    env = quiet_make("PointMaze_Medium-v3")
    env.reset(seed=0)
    maze, goal = env.unwrapped.maze, np.array([-1.0, 1.0])
    u_maze = quiet_make("PointMaze_UMaze-v3")
    u_maze.reset(seed=0)
    # along the bottom arm under a goal behind the wall: nearer in a straight line, farther by the path (away from
    # the corner the path turns at)
    along = [(x, -1.0) for x in (0.2, -0.2, -0.6, -1.0)]
    assert np.all(np.diff([np.linalg.norm(np.subtract(xy, goal)) for xy in along]) < 0)
    assert np.all(np.diff([maze_path_distance(u_maze.unwrapped.maze, xy, goal) for xy in along]) > 0)
    # the medium maze against a 16-neighbour Dijkstra over 0.05 m squares of its free cells (paths between square
    # centres may not cut a wall's corner): the grid's path is a real path, so never shorter than the shortest,
    # and at most a few percent longer (its directions are 16) and some squares (half of one at either end, and
    # one or two round each corner it turns)
    res, size = 20, float(maze.maze_size_scaling)
    rows, cols = maze.map_length * res, maze.map_width * res
    free = np.zeros((rows, cols), dtype=bool)
    for i in range(maze.map_length):
        for j in range(maze.map_width):
            free[i * res:(i + 1) * res, j * res:(j + 1) * res] = maze.maze_map[i][j] != 1

    def centre(a: int, b: int) -> np.ndarray:
        return np.array([(b + 0.5) * size / res - maze.x_map_center, maze.y_map_center - (a + 0.5) * size / res])

    start = int((maze.y_map_center - goal[1]) * res / size), int((goal[0] + maze.x_map_center) * res / size)
    moves = [(a, b) for a in range(-2, 3) for b in range(-2, 3) if (a, b) != (0, 0) and math.gcd(abs(a), abs(b)) == 1]
    dist = np.full((rows, cols), np.inf)
    dist[start] = float(np.linalg.norm(centre(*start) - goal))
    queue = [(dist[start], start)]
    while queue:
        d, (a, b) = heapq.heappop(queue)
        if d > dist[a, b]:
            continue
        for da, db in moves:
            na, nb = a + da, b + db
            if (0 <= na < rows and 0 <= nb < cols and free[na, nb] and free[a + np.sign(da), b]
                    and free[a, b + np.sign(db)] and free[na - np.sign(da), nb] and free[na, nb - np.sign(db)]):
                nd = d + math.hypot(da, db) * size / res
                if nd < dist[na, nb]:
                    dist[na, nb] = nd
                    heapq.heappush(queue, (nd, (na, nb)))
    rng = np.random.default_rng(0)
    squares = [tuple(ab) for ab in np.argwhere(free & np.isfinite(dist))]
    for index in rng.choice(len(squares), size=200, replace=False):
        a, b = squares[index]
        exact = maze_path_distance(maze, centre(a, b), goal)
        assert exact <= dist[a, b] + 1e-5 and dist[a, b] <= 1.03 * exact + 5 * size / res, (a, b)
    assert math.isnan(maze_path_distance(maze, (math.nan, 0.0), goal))  # a simulation gone wrong: no crash
    # 1-Lipschitz between nearby free points (a geodesic distance has no jumps)
    for _ in range(300):
        p = centre(*squares[rng.integers(len(squares))]) + rng.uniform(-0.02, 0.02, 2)
        q = p + rng.normal(0.0, 0.01, 2)
        gap = abs(maze_path_distance(maze, p, goal) - maze_path_distance(maze, q, goal))
        assert gap <= np.linalg.norm(p - q) + 1e-6
    env.close()
    u_maze.close()


@needs_suites
def test_dm_control_cells_are_joint_angles_wrapped() -> None:
    def joints(**values: float) -> Any:
        def place(env: Any) -> None:
            for name, value in values.items():
                target = env.physics.named.data.qvel if name == "velocity" else env.physics.named.data.qpos
                target["hinge" if name == "velocity" else name] = value
            env.physics.forward()
        return place

    cell, progress = _cell_and_progress("dm_control/pendulum-swingup-v0", joints(hinge=2 * math.pi + 0.3,
                                                                                 velocity=1.2))
    assert cell == (1, 2) and progress == pytest.approx(math.cos(0.3), abs=1e-6)  # 10 degrees by 0.5 rad/s
    # both acrobot joints wrap (a shoulder past pi reads as the negative angle it is)
    cell, _ = _cell_and_progress("dm_control/acrobot-swingup_sparse-v0", joints(shoulder=-0.1 + 2 * math.pi,
                                                                               elbow=7.0))
    assert cell == (-1, math.floor(wrap_angle(7.0) / (math.pi / 18)))
    # the tip nearer the target (up) is nearer the goal: upright beats hanging
    _, up = _cell_and_progress("dm_control/acrobot-swingup_sparse-v0", joints(shoulder=0.0, elbow=0.0))
    _, down = _cell_and_progress("dm_control/acrobot-swingup_sparse-v0", joints(shoulder=math.pi, elbow=0.0))
    assert up > down
    # the dm_control cart-pole's pole angle wraps as well
    cell, _ = _cell_and_progress("dm_control/cartpole-swingup_sparse-v0", joints(slider=0.05,
                                                                               hinge_1=2 * math.pi + 0.2))
    assert cell == (0, math.floor(0.2 / (math.pi / 18)))


# ---------------------------------------------------------------- the wrapper


class Walk(gym.Env):
    """Scripted episodes of positions: ``episodes[i][0]`` after reset, one more per step."""

    observation_space = gym.spaces.Box(-10, 10, (2,))
    action_space = gym.spaces.Discrete(1)

    def __init__(self, episodes: list[list[tuple[float, float]]]) -> None:
        self.episodes, self.episode = episodes, -1

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        self.episode, self.t = self.episode + 1, 0
        self.pos = self.episodes[self.episode][0]
        return np.zeros(2, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        self.pos = self.episodes[self.episode][self.t]
        return np.zeros(2, np.float32), 0.0, self.t == len(self.episodes[self.episode]) - 1, False, {}


WALK = TaskMeasures(lambda env, info: env.pos[0], "x", lambda env: env.pos, ("x", "y"), (1.0, 1.0))


def _play(env: gym.Env, steps: int | None = None) -> dict[str, Any]:
    """One episode (or ``steps`` steps of it); the last info."""
    env.reset()
    done, taken, info = False, 0, {}
    while not done and (steps is None or taken < steps):
        *_, terminated, truncated, info = env.step(0)
        done, taken = terminated or truncated, taken + 1
    return info


def test_the_wrapper_reports_each_cell_once_at_the_end_of_the_episode_that_first_visited_it() -> None:
    first = [(0.5, 0.5), (1.5, 0.5), (1.7, 0.9), (-0.5, 0.2)]  # the third state shares the second's cell
    episodes = [first, first, [(0.5, 0.5), (2.5, -0.5), (0.5, 0.5)], [(3.5, 0.5), (0.2, 0.2), (0.1, 0.1)],
                [(0.5, 0.5), (0.6, 9.5)]]
    env = ReachAndCoverage(Walk(episodes), WALK)
    info = _play(env)
    assert info[NEW_CELLS] == "0:0;1:0;-1:0"  # in the order first visited, the reset state included
    assert info[MAX_PROGRESS] == pytest.approx(1.7)
    info = _play(env)
    assert info[NEW_CELLS] == ""  # the same episode again: nothing new
    info = _play(env)
    assert info[NEW_CELLS] == "2:-1" and info[MAX_PROGRESS] == pytest.approx(2.5)
    # an episode cut off by a reset: its cell is reported at the next episode's end
    assert NEW_CELLS not in _play(env, steps=1)
    info = _play(env)
    assert info[NEW_CELLS] == "3:0;0:9" and info[MAX_PROGRESS] == pytest.approx(0.6)  # the max restarts each episode


def test_a_resumed_env_reports_only_cells_its_file_does_not_hold() -> None:
    env = ReachAndCoverage(Walk([[(0.5, 0.5), (1.5, 0.5), (2.5, 0.5)]]), WALK, seen=parse_cells("0:0;1:0"))
    assert _play(env)[NEW_CELLS] == "2:0"
    assert parse_cells(format_cells([(3, -2), (4, -2)])) == [(3, -2), (4, -2)] and parse_cells("") == []


def test_a_task_without_a_position_gets_only_its_progress() -> None:
    env = ReachAndCoverage(Walk([[(0.5, 0.5), (1.5, 0.5)]]), TaskMeasures(lambda env, info: None, "none"))
    info = _play(env)
    assert NEW_CELLS not in info and math.isnan(info[MAX_PROGRESS]) and env.info_keywords == (MAX_PROGRESS,)


# ---------------------------------------------------------------- a run's coverage


def _monitor_file(path: Path, columns: str, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in ['#{"t_start": 0.0, "env_id": "x"}', columns, *rows]))


def test_a_runs_coverage_is_the_union_of_its_files_cells_in_step_order(tmp_path: Path) -> None:
    columns = f"r,l,t,{MAX_PROGRESS},{NEW_CELLS}"
    _monitor_file(tmp_path / "monitor" / "0.monitor.csv", columns, ["0,10,1,0.1,0:0;1:0", "0,10,2,0.2,2:0"])
    _monitor_file(tmp_path / "monitor" / "1.monitor.csv", columns, ["0,10,1,0.1,1:0;5:5", "0,20,3,0.3,"])
    steps, cells = coverage_over_steps(tmp_path)
    # two envs in lockstep: episodes end at global steps 20, 20, 40 and 60; the cell 1:0 both found counts once
    assert steps.tolist() == [20, 20, 40, 60] and cells.tolist() == [2, 3, 4, 4]


def test_a_run_without_the_column_has_no_coverage_and_an_older_runs_goal_fraction_is_still_read(tmp_path):
    from rlgen.agents import RunConfig
    from rlgen.bench.report import collect
    from rlgen.bench.suite import SuiteRun

    config = RunConfig(algo="ppo", env_id="rlgen/SparseAnt-v0", out_dir=str(tmp_path), run_name="old")
    _monitor_file(config.run_dir / "monitor" / "0.monitor.csv", f"r,l,t,{MAX_GOAL_FRACTION}",
                  ["0,10,1,0.4", "1,10,2,1.2"])
    assert coverage_over_steps(config.run_dir) is None
    _, _, reach = training_episodes(config.run_dir, column=(MAX_PROGRESS, MAX_GOAL_FRACTION))
    assert reach.tolist() == [0.4, 1.2]
    [record] = collect([SuiteRun("ppo", config.env_id, 0, config)])
    assert record.farthest == 1.2 and math.isnan(record.cells_visited)


def test_a_mazes_straight_line_progress_of_older_runs_is_not_read_as_its_path_progress(tmp_path: Path) -> None:
    import dataclasses

    from rlgen.agents import RunConfig
    from rlgen.bench.report import _reach_table, collect
    from rlgen.bench.suite import SuiteRun

    runs = []
    for name, column in (("old", MAX_PROGRESS), ("new", MAX_PATH_PROGRESS)):
        config = RunConfig(algo="ppo", env_id="PointMaze_UMaze-v3", out_dir=str(tmp_path), run_name=name)
        _monitor_file(config.run_dir / "monitor" / "0.monitor.csv", f"r,l,t,{column},{NEW_CELLS}",
                      ["0,10,1,-0.9,0:0", "1,10,2,-0.4,1:0"])
        runs.append(SuiteRun(name, config.env_id, 0, config))
    old, new = (dataclasses.replace(record, state="finished") for record in collect(runs))
    assert math.isnan(old.farthest) and new.farthest == -0.4
    table = "\n".join(_reach_table([new], ["PointMaze_UMaze-v3"], ["new"]))
    assert "path distance" in table and "| PointMaze_UMaze-v3 | new | 1 |" in table and "Not recorded" not in table
    table = "\n".join(_reach_table([old, new], ["PointMaze_UMaze-v3", "AntMaze_UMaze-v5"], ["old", "new"]))
    assert "| PointMaze_UMaze-v3 | old |" not in table
    # a task whose finished runs all predate its measure's column is named, with the column
    old_ant = dataclasses.replace(old, run=SuiteRun("old", "AntMaze_UMaze-v5", 0, old.run.config))
    table = "\n".join(_reach_table([old_ant, new], ["PointMaze_UMaze-v3", "AntMaze_UMaze-v5"], ["old", "new"]))
    assert "Not recorded by the finished runs of AntMaze_UMaze-v5" in table and MAX_PATH_PROGRESS in table


def test_resuming_a_maze_file_of_the_straight_line_column_keeps_it_after_the_path_column(tmp_path: Path) -> None:
    path = tmp_path / "monitor" / "0.monitor.csv"
    _monitor_file(path, f"r,l,t,{MAX_PROGRESS},{NEW_CELLS}", ["0,10,1,-0.9,0:0"])
    align_monitor_columns(path, ("r", "l", "t", MAX_PATH_PROGRESS, NEW_CELLS))
    header, rows = read_monitor_file(path)
    assert header == ["r", "l", "t", MAX_PATH_PROGRESS, NEW_CELLS, MAX_PROGRESS]
    assert rows == [["0", "10", "1", "nan", "0:0", "-0.9"]]  # nothing recorded is lost
    with path.open("a") as file:  # Monitor appends rows of its own columns
        file.write("1,10,2,-0.4,1:0\n")
    align_monitor_columns(path, ("r", "l", "t", MAX_PATH_PROGRESS, NEW_CELLS))  # its columns come first: left alone
    assert read_monitor_file(path)[0] == header
    _, _, reach = training_episodes(tmp_path, column=MAX_PATH_PROGRESS)
    assert np.isnan(reach[0]) and reach[1] == -0.4
    _, _, straight = training_episodes(tmp_path, column=MAX_PROGRESS)
    assert straight[0] == -0.9 and np.isnan(straight[1])


def test_resuming_a_file_of_older_columns_renames_them_and_appends_aligned_rows(tmp_path: Path) -> None:
    # files of an older rlgen: a locomotion task's goal fraction column, and no extra column at all
    for name, columns, row in (("0", f"r,l,t,{MAX_GOAL_FRACTION}", "0,10,1,0.4"), ("1", "r,l,t", "0,10,1")):
        _monitor_file(tmp_path / "monitor" / f"{name}.monitor.csv", columns, [row])
        env = make_env_fn("rlgen/SparseMountainCar-v0", {"max_episode_steps": 5}, str(tmp_path / "monitor" / name),
                          append=True)()
        env.reset(seed=0)
        for _ in range(5):
            env.step(np.zeros(1, np.float32))
        env.close()
    header, rows = read_monitor_file(tmp_path / "monitor" / "0.monitor.csv")
    assert header == ["r", "l", "t", MAX_PROGRESS, NEW_CELLS]
    assert rows[0] == ["0", "10", "1", "0.4", "nan"] and len(rows) == 2 and rows[1][4]  # nan: not recorded
    assert read_monitor_file(tmp_path / "monitor" / "1.monitor.csv")[1][0] == ["0", "10", "1", "nan", "nan"]
    align_monitor_columns(tmp_path / "monitor" / "0.monitor.csv", tuple(header))  # already so: left alone
    assert read_monitor_file(tmp_path / "monitor" / "0.monitor.csv") == (header, rows)
    _, _, reach = training_episodes(tmp_path, column=MAX_PROGRESS)
    assert reach[0] == 0.4 and np.isnan(reach[1]) and np.isfinite(reach[2:]).all()
    # the cells of the episodes before the resume are unknown: no count that would miss them
    assert coverage_over_steps(tmp_path) is None


def _cells_per_file(run_dir: Path) -> list[list[str]]:
    files = []
    for path in sorted((run_dir / "monitor").glob("*.monitor.csv")):
        header, rows = read_monitor_file(path)
        assert header == ["r", "l", "t", MAX_PROGRESS, NEW_CELLS]
        files.append([cell for row in rows for cell in row[4].split(";") if cell])
    return files


def test_a_sparse_mountain_car_run_records_progress_and_coverage_and_a_resume_repeats_no_cell(tiny_config):
    config = tiny_config(env_id="rlgen/SparseMountainCar-v0", env_kwargs={"max_episode_steps": 64}, n_envs=2,
                         total_steps=256, eval_freq=256, checkpoint_freq=256)
    run_dir = train(config).run_dir
    steps, returns, reach = training_episodes(run_dir, column=MAX_PROGRESS)
    assert len(reach) == 4 and np.all((reach > -1.2) & (reach < 0.6))  # two 64-step episodes per env
    _, cells = coverage_over_steps(run_dir)
    files = _cells_per_file(run_dir)
    assert cells[-1] == len(set().union(*files)) > 0
    train(tiny_config(env_id="rlgen/SparseMountainCar-v0", env_kwargs={"max_episode_steps": 64}, n_envs=2,
                      total_steps=512, eval_freq=256, checkpoint_freq=256), resume=True)
    for cells_of_one_env in _cells_per_file(run_dir):
        assert len(cells_of_one_env) == len(set(cells_of_one_env))  # each env's file lists a cell once
    assert coverage_over_steps(run_dir)[1][-1] >= cells[-1]


def test_a_task_without_a_position_trains_and_records_as_before(tiny_config) -> None:
    run_dir = train(tiny_config(total_steps=256, eval_freq=256)).run_dir  # CartPole-v1
    header, rows = read_monitor_file(run_dir / "monitor" / "0.monitor.csv")
    assert header == ["r", "l", "t"] and rows
    assert coverage_over_steps(run_dir) is None


def test_the_report_gives_each_methods_cells_and_a_bonus_minus_the_same_agent_without_it() -> None:
    from rlgen.agents import RunConfig
    from rlgen.bench.report import RunRecord, _coverage_table
    from rlgen.bench.stats import difference_ci
    from rlgen.bench.suite import SuiteRun

    task = "rlgen/SparseMountainCar-v0"

    def record(label: str, bonus: str | None, seed: int, cells: int) -> RunRecord:
        # half the cells by step 100, within the first tenth (200) of the 2,000 steps; all by step 300
        config = RunConfig(algo="ppo", env_id=task, bonus=bonus, seed=seed, total_steps=2000)
        coverage = (np.array([100.0, 300.0]), np.array([cells // 2, cells]))
        return RunRecord(SuiteRun(label, task, seed, config), "finished", np.zeros(0), np.zeros(0), coverage=coverage)

    records = [record("ppo", None, 0, 40), record("ppo", None, 1, 44),
               record("ppo+rnd", "rnd", 0, 60), record("ppo+rnd", "rnd", 1, 70)]
    text = "\n".join(_coverage_table(records, [task], ["ppo", "ppo+rnd"]))
    assert "| rlgen/SparseMountainCar-v0 | ppo | 2 | 42 [40, 44] | — | 21 [20, 22] | — | — | 40 (20), 44 (22) |" in text
    _, low, high = difference_ci([60, 70], [40, 44])
    _, early_low, early_high = difference_ci([30, 35], [20, 22])
    assert (f"| ppo+rnd | 2 | 65 [60, 70] | +23 [{low:+.0f}, {high:+.0f}] | 32 [30, 35] | "
            f"+12 [{early_low:+.0f}, {early_high:+.0f}] | ppo | 60 (30), 70 (35) |") in text
    assert 16 <= low < 23 < high <= 30  # the extremes: 60 - 44 and 70 - 40
    assert "- rlgen/SparseMountainCar-v0: x 0.05 by velocity 0.005" in text


def test_the_report_says_where_a_bonus_helps_hurts_or_makes_no_difference() -> None:
    from rlgen.agents import RunConfig
    from rlgen.bench.report import RunRecord, _verdict_table
    from rlgen.bench.suite import SuiteRun

    def record(task: str, label: str, bonus: str | None, seed: int, successes: int, final: float) -> RunRecord:
        config = RunConfig(algo="ppo", env_id=task, bonus=bonus, seed=seed, total_steps=2000)
        train_returns = np.array([1.0] * successes + [0.0] * (10 - successes))
        return RunRecord(SuiteRun(label, task, seed, config), "finished", np.array([2000.0]), np.array([final]),
                         train_steps=np.arange(10.0) * 200, train_returns=train_returns)

    hard, easy, even = "rlgen/SparseMountainCar-v1", "rlgen/SparseMountainCar-v0", "rlgen/SparseCartPoleSwingup-v1"
    costly = "PointMaze_UMaze-v3"  # successes alike, but the final policy worse with the bonus
    records = []
    for seed in range(3):
        records += [record(hard, "ppo", None, seed, 0, 0.0), record(hard, "ppo+vime", "vime", seed, 8 + seed % 2, 1.0),
                    record(easy, "ppo", None, seed, 9, 1.0), record(easy, "ppo+vime", "vime", seed, 2, 0.0),
                    record(even, "ppo", None, seed, seed, 0.0), record(even, "ppo+vime", "vime", seed, 2 - seed, 0.0),
                    record(costly, "ppo", None, seed, 9, 1.0 + seed), record(costly, "ppo+vime", "vime", seed, 9, -seed)]
    text = "\n".join(_verdict_table(records, [hard, easy, even, costly], ["ppo", "ppo+vime"]))
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if "| ppo+vime | ppo |" in line}
    assert "| no | **helps** | +0.833 [" in rows[hard] and rows[hard].count("**helps**") == 2
    assert "| yes | **hurts** | -0.700 [" in rows[easy] and rows[easy].count("**hurts**") == 2
    assert rows[even].count("no difference") == 2
    assert "| yes | no difference | +0.000 [+0.000, +0.000], p 1.000 | **hurts** | -3.0 [" in rows[costly]
    # beside each difference its exact permutation p: 3 seeds against 3 wholly apart is 2 of the 20 splits
    assert "], p 0.100 | **helps** |" in rows[hard]
    # the summary gives each task's p, and how many of them are below 0.05: 3 seeds against 3 cannot be
    assert (f"- ppo+vime: success better on 1 task(s) ({hard} p 0.100; 0 of 1 with p below 0.05); worse success or "
            f"final return on 2 ({easy} p 0.100, {costly} p 0.100; 0 of 2 with p below 0.05).") in text
    # the agent without a bonus is never compared with itself
    assert "| ppo | ppo |" not in text
    # one seed a side gives no verdict (its interval is a point), and other seeds are said
    lone = "rlgen/SparseHalfCheetah-v0"
    single = [record(lone, "ppo", None, 0, 0, 0.0), record(lone, "ppo+vime", "vime", 1, 9, 1.0)]
    row = [line for line in _verdict_table(single, [lone], ["ppo", "ppo+vime"]) if "| ppo+vime |" in line][0]
    assert row == f"| {lone} | ppo+vime | ppo (other seeds) | no | — | — | — | — |"


def test_a_helps_against_a_plain_agent_that_never_succeeds_carries_its_weak_p_into_the_summary() -> None:
    # plain PPO never succeeds (its interval is the point 0); three of five bonus seeds succeed a little: the
    # intervals do not overlap (helps), yet only 42 of the 252 splits (p 0.167) are less far apart
    from rlgen.agents import RunConfig
    from rlgen.bench.report import RunRecord, _verdict_table
    from rlgen.bench.suite import SuiteRun

    task = "rlgen/SparseCartPoleSwingup-v1"

    def record(label: str, bonus: str | None, seed: int, successes: int) -> RunRecord:
        config = RunConfig(algo="ppo", env_id=task, bonus=bonus, seed=seed, total_steps=2000)
        train_returns = np.array([1.0] * successes + [0.0] * (20 - successes))
        return RunRecord(SuiteRun(label, task, seed, config), "finished", np.array([2000.0]),
                         np.array([float(successes)]), train_steps=np.arange(20.0) * 100, train_returns=train_returns)

    records = [record("ppo", None, s, 0) for s in range(5)]
    records += [record("ppo+rnd", "rnd", s, n) for s, n in enumerate([3, 0, 2, 4, 0])]
    text = "\n".join(_verdict_table(records, [task], ["ppo", "ppo+rnd"]))
    assert "| no | **helps** | +0.090 [" in text and "], p 0.167 | **helps** |" in text
    assert f"- ppo+rnd: success better on 1 task(s) ({task} p 0.167; 0 of 1 with p below 0.05);" in text
    assert "three seeds of five above it read **helps** at p 0.167" in text


def test_steps_to_first_success_get_a_median_with_its_interval_and_never_counts_as_latest() -> None:
    from rlgen.agents import RunConfig
    from rlgen.bench.report import RunRecord, _first_success_ci
    from rlgen.bench.suite import SuiteRun

    def record(seed: int, first: float | None) -> RunRecord:
        config = RunConfig(algo="ppo", env_id="rlgen/SparseMountainCar-v0", seed=seed, total_steps=100_000)
        # a success at ``first`` and another later: the first one counts
        returns = np.array([0.0, 0.0, 1.0, 1.0]) if first is not None else np.zeros(4)
        steps = np.array([1000.0, 2000.0, first or 3000.0, (first or 3000.0) + 50_000])
        return RunRecord(SuiteRun("ppo", config.env_id, seed, config), "finished", np.zeros(1), np.zeros(1),
                         train_steps=steps, train_returns=returns)

    assert _first_success_ci([record(0, 20_000), record(1, 30_000), record(2, 40_000)]) == "30k [20k, 40k]"
    assert _first_success_ci([record(0, 20_000), record(1, 30_000), record(2, None)]) == "30k [20k, never]"
    assert _first_success_ci([record(0, None), record(1, 30_000), record(2, None)]) == "never [30k, never]"
    # a run with no training episodes recorded is not "never": it is left out
    unrecorded = record(3, None)
    unrecorded.train_returns, unrecorded.train_steps = np.zeros(0), np.zeros(0)
    assert np.isnan(unrecorded.first_success) and np.isnan(unrecorded.success_rate)
    assert _first_success_ci([record(0, 20_000), unrecorded]) == "20k [20k, 20k]"


def test_methods_are_ranked_across_tasks_only_on_the_tasks_they_all_ran() -> None:
    """A method run on an easier subset of the tasks (TRPO+VIME on VIME's tasks, or a benchmark half done) must
    not outrank the others by its tasks: the ranking covers the methods run everywhere on the tasks they all
    finished, and the per-method table says it is not a ranking."""
    from rlgen.bench.report import _normalised_tables, ranked_on_common_tasks

    tasks = ["easy", "hard", "later"]
    scores = {"ppo": {"easy": np.array([1.0, 1.0]), "hard": np.array([0.0, 0.0])},
              "ppo+bonus": {"easy": np.array([0.5, 0.5]), "hard": np.array([0.2, 0.2])},
              "trpo+bonus": {"easy": np.array([0.9, 0.9])},
              "ppo+unfinished": {}}
    planned = {"ppo": set(tasks), "ppo+bonus": set(tasks), "trpo+bonus": {"easy"}, "ppo+unfinished": set(tasks)}
    ranked, common = ranked_on_common_tasks(scores, planned, tasks)
    assert (ranked, common) == (["ppo", "ppo+bonus"], ["easy", "hard"])  # not cut to trpo+bonus's one task
    text = "\n".join(_normalised_tables(scores, ranked, list(scores), tasks, common))
    shared, own = text.split("not a ranking")
    assert "on the 2 task(s) each of them has finished runs on (easy, hard):" in shared
    assert "| ppo | 0.500 [0.500, 0.500] | 0.500 [0.500, 0.500] | 4 | 2 |" in shared
    assert "| ppo+bonus | 0.350 " in shared and "trpo+bonus" not in shared
    assert "| trpo+bonus | 0.900 [0.900, 0.900] | 0.900 [0.900, 0.900] | 2 | 1 |" in own
    assert "| ppo |" not in own and "ppo+unfinished" not in text

    # the IQM pools a method's runs over the tasks (rliable's), not a mean of per-task IQMs: 6 runs, the middle 4
    skewed = {"ppo": {"easy": np.array([0.0, 0.0, 0.0, 0.9]), "hard": np.array([1.0, 0.1])}}
    row = next(line for line in _normalised_tables(skewed, ["ppo"], ["ppo"], tasks, ["easy", "hard"])
               if line.startswith("| ppo |"))
    assert row.startswith("| ppo | 0.250 [") and "| 0.333 [" in row and row.endswith("| 6 | 2 |")

    # a method run everywhere but finished nowhere does not empty the ranking; nothing finished: no ranking
    assert ranked_on_common_tasks({**scores, "ppo+bonus": {"later": np.array([0.1])}}, planned, tasks) == ([], [])
    assert ranked_on_common_tasks({}, planned, tasks) == ([], [])
    alone = "\n".join(_normalised_tables(scores, [], list(scores), tasks, []))
    assert "no shared tasks" in alone and "| trpo+bonus | 0.900" in alone and "On the" not in alone


def test_an_archived_only_cell_is_planned_only_where_earlier_code_made_its_runs() -> None:
    # earlier code's cell, listed on every task but made on two of three: its missing task is missing for good,
    # and must not leave that task out of every method's ranking
    from types import SimpleNamespace

    from rlgen.bench.report import planned_tasks, ranked_on_common_tasks

    def record(label, task, state, archived_only=""):
        return SimpleNamespace(run=SimpleNamespace(label=label, env_id=task, archived_only=archived_only),
                               state=state)

    tasks = ["a", "b", "c"]
    records = [record("ppo", t, "finished") for t in tasks]
    records += [record("old", t, "finished" if t != "c" else "missing", "before a fix") for t in tasks]
    records += [record("new", t, "finished" if t != "c" else "incomplete") for t in tasks]  # today's, under way
    planned = planned_tasks(records, ["ppo", "old", "new"])
    assert planned == {"ppo": {"a", "b", "c"}, "old": {"a", "b"}, "new": {"a", "b", "c"}}
    scores = {label: {t: np.array([0.5]) for t in ("a", "b", "c") if (label, t) not in
                      {("old", "c"), ("new", "c")}} for label in planned}
    assert ranked_on_common_tasks(scores, planned, tasks) == (["ppo", "new"], ["a", "b"])  # new: c not done yet
    done = {**scores, "new": {t: np.array([0.5]) for t in tasks}}
    assert ranked_on_common_tasks(done, planned, tasks) == (["ppo", "new"], ["a", "b", "c"])  # old: not ranked


def test_a_task_whose_reference_is_not_above_the_random_policy_gets_no_normalised_score() -> None:
    # the random policy's luck can score above every run (a maze: random 0.1, each run 0.0, the reference the
    # best run's 0.0): (0 - 0.1) / (0 - 0.1) would give every failed run a perfect 1, and a run above the
    # reference but below random more than 1 (the scale turned over); the task is left out, and said so
    from rlgen.agents import RunConfig
    from rlgen.bench.report import RunRecord, normalised_scores
    from rlgen.bench.suite import SuiteRun

    def record(task: str, label: str, seed: int, final: float) -> RunRecord:
        config = RunConfig(algo="ppo", env_id=task, seed=seed)
        return RunRecord(SuiteRun(label, task, seed, config), "finished", np.array([1.0]), np.array([final]))

    maze, car, cheetah = "AntMaze_UMaze-v5", "rlgen/SparseMountainCar-v0", "rlgen/SparseHalfCheetah-v0"
    records = [record(maze, "ppo", s, 0.0) for s in range(2)] + [record(car, "ppo", s, float(s)) for s in range(2)]
    records += [record(cheetah, "ppo", s, 3.0) for s in range(2)]
    refs = {maze: {"random": 0.1, "reference": 0.0}, car: {"random": 0.0, "reference": 1.0},
            cheetah: {"random": 3.0, "reference": 3.0}}
    scores, unscored = normalised_scores(records, [maze, car, cheetah], ["ppo"], refs)
    assert list(scores["ppo"]) == [car] and scores["ppo"][car].tolist() == [0.0, 1.0]
    assert unscored == {maze: "reference 0.0 not above the random policy's 0.1",
                        cheetah: "reference 3.0 not above the random policy's 3.0"}


def test_random_policy_scores_are_cached_per_env_settings(tmp_path, monkeypatch) -> None:
    # the random policy's score on a task depends on its settings (a farther goal): two suites that run one
    # env id with other env_kwargs must not share the first one's cached score
    from rlgen.agents import RunConfig
    from rlgen.bench import report
    from rlgen.bench.report import RunRecord, reference_scores
    from rlgen.bench.suite import Suite, SuiteRun

    measured = []
    monkeypatch.setattr(report, "random_policy_score",
                        lambda env_id, kwargs: measured.append(kwargs) or float(kwargs.get("goal_x", 0.0)))

    def scores(goal_x: float | None) -> dict[str, float]:
        kwargs = {} if goal_x is None else {"goal_x": goal_x}
        config = RunConfig(algo="ppo", env_id="rlgen/SparseHalfCheetah-v0", env_kwargs=kwargs, seed=0)
        record = RunRecord(SuiteRun("ppo", config.env_id, 0, config), "finished", np.array([1.0]), np.array([9.0]))
        return reference_scores(Suite("s", [], [0]), [record], tmp_path)[config.env_id]

    assert scores(2.0)["random"] == 2.0 and scores(3.0)["random"] == 3.0 and scores(None)["random"] == 0.0
    assert scores(2.0)["random"] == 2.0 and len(measured) == 3  # each measured once, then read from the cache


def test_todays_cell_is_compared_with_earlier_codes_cell_of_the_same_settings() -> None:
    from types import SimpleNamespace

    from rlgen.agents import RunConfig
    from rlgen.bench.report import _earlier_code_lines

    def record(label, seed, success, final, archived_only="", eta=0.01):
        config = RunConfig(env_id="CartPole-v1", seed=seed, bonus="vime", bonus_kwargs={"eta": eta})
        run = SimpleNamespace(label=label, env_id="CartPole-v1", seed=seed, config=config,
                              archived_only=archived_only)
        return SimpleNamespace(run=run, state="finished", success_rate=success, final=final)

    records = [record("ppo+vime", s, 0.9, 100.0 + s) for s in range(5)]
    records += [record("ppo+vime-old", s, 0.5, 50.0 + s, "before a fix") for s in range(5)]
    records += [record("ppo+vime-other-eta", s, 0.1, 0.0, "another setting", eta=1.0) for s in range(5)]
    text = "\n".join(_earlier_code_lines(records, ["CartPole-v1"]))
    assert "- ppo+vime-old: before a fix" in text and "- ppo+vime-other-eta: another setting" in text
    # the twin is the cell of the same settings, not one of other settings nor another kept cell
    assert ("| CartPole-v1 | ppo+vime (5) | ppo+vime-old (5) | +0.400 [+0.400, +0.400], p 0.008 | "
            "+50.0 [+48.2, +51.8], p 0.008 |") in text
    assert "ppo+vime-other-eta (5)" not in text
    assert _earlier_code_lines([r for r in records if not r.run.archived_only], ["CartPole-v1"]) == []

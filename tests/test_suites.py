"""Third-party sparse-reward tasks (rlgen.envs.suites) through rlgen's env stack: made, stepped and reset, flat
float32 observations that keep a maze's goal, mazes that end at the goal, the reward rules rlgen lists, a VIME
run, and the one-line error when the suites extra is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.spaces.utils import flatdim

from rlgen.agents import RunConfig, train
from rlgen.agents.config import ConfigError, build_config, check_env_id
from rlgen.agents.envstack import make_env_fn, make_vec_env
from rlgen.cli import main
from rlgen.envs.suites import SOURCES, SUITE_TASKS, _import_quietly, make_kwargs, source_for

needs_suites = pytest.mark.skipif(not all(source.installed() for source in SOURCES),
                                  reason="the suites extra is not installed: pip install 'rlgen[suites]'")
IDS = [task.id for task in SUITE_TASKS]
MAZES = ["PointMaze_UMaze-v3", "AntMaze_UMaze-v5"]
CARTPOLE = "dm_control/cartpole-swingup_sparse-v0"


def _config(env_id: str, **fields: Any) -> RunConfig:
    return RunConfig(**{"algo": "ppo", "env_id": env_id, "progress_bar": False, **fields}).validated()


def _base_env(venv: Any, index: int = 0) -> Any:
    """The package's own env under the stack's wrappers (FiniteGuard -> DummyVecEnv -> Monitor -> ...)."""
    return venv.unwrapped.envs[index].unwrapped


def _dict_layout(space: Any) -> dict[str, slice]:
    """Where each key of a Dict observation lands in its flat vector (the keys in the space's order)."""
    layout, start = {}, 0
    for key, sub in space.spaces.items():
        layout[key] = slice(start, start + flatdim(sub))
        start += flatdim(sub)
    return layout


@needs_suites
@pytest.mark.parametrize("env_id", IDS)
def test_each_task_makes_steps_and_resets_through_the_stack_as_a_flat_float32_box(env_id: str) -> None:
    venv = make_vec_env(_config(env_id, n_envs=2, env_kwargs={"max_episode_steps": 4}))
    try:
        raw = gym.make(env_id).observation_space  # the package's own: a Dict of float64 arrays
        assert isinstance(raw, gym.spaces.Dict)
        space = venv.observation_space  # what the reward wrappers and SB3 see
        assert isinstance(space, gym.spaces.Box) and space.dtype == np.float32 and space.shape == (flatdim(raw),)
        obs = venv.reset()
        assert obs.dtype == np.float32 and obs.shape == (2, flatdim(raw)) and np.all(np.isfinite(obs))
        venv.action_space.seed(0)
        dones, ended = [], []
        for _ in range(6):
            obs, rewards, done, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
            assert obs.dtype == np.float32 and rewards.shape == (2,) and np.all(np.isfinite(obs))
            dones.append(bool(done.all()) if done.all() or not done.any() else None)
            ended += [info for info in infos if "episode" in info]
        # the 4-step limit ends both episodes at step 4 (Monitor reports them) and the stack starts new ones
        assert dones == [False, False, False, True, False, False]
        assert [info["episode"]["l"] for info in ended] == [4, 4]
        assert all(info["terminal_observation"].dtype == np.float32 for info in ended)
    finally:
        venv.close()


def test_box_observations_of_other_envs_keep_their_space() -> None:
    # Gymnasium's MuJoCo tasks observe float64 Boxes: a cast would stop older runs' checkpoints from resuming
    env = make_env_fn("rlgen/SparseHalfCheetah-v0", {}, None, False)()
    assert env.observation_space == gym.make("rlgen/SparseHalfCheetah-v0").observation_space
    assert env.observation_space.dtype == np.float64
    env.close()


@needs_suites
@pytest.mark.parametrize("env_id", MAZES)
def test_flattening_keeps_the_maze_goal(env_id: str) -> None:
    flat_env = make_env_fn(env_id, {}, None, False)()
    dict_env = gym.make(env_id, continuing_task=False)
    layout = _dict_layout(dict_env.observation_space)
    flat, _ = flat_env.reset(seed=3)
    full, _ = dict_env.reset(seed=3)
    flat_env.action_space.seed(0)
    for step in range(3):
        for key in ("desired_goal", "achieved_goal", "observation"):
            np.testing.assert_array_equal(flat[layout[key]], full[key].astype(np.float32), err_msg=f"{key}@{step}")
        action = flat_env.action_space.sample()
        flat = flat_env.step(action)[0]
        full = dict_env.step(action)[0]
    # the goal is the env's, and it is not the agent's position
    np.testing.assert_allclose(flat[layout["desired_goal"]], flat_env.unwrapped.goal, atol=1e-6)
    assert np.linalg.norm(flat[layout["desired_goal"]] - flat[layout["achieved_goal"]]) > 0.45
    flat_env.close()
    dict_env.close()


def _put_agent(env: Any, xy: np.ndarray) -> None:
    """Move the maze's agent (the point, or the Ant's torso) to ``xy`` at rest."""
    robot = env.point_env if hasattr(env, "point_env") else env.ant_env
    qpos, qvel = robot.data.qpos.copy(), np.zeros_like(robot.data.qvel)
    qpos[:2] = xy
    robot.set_state(qpos, qvel)


@needs_suites
@pytest.mark.parametrize("env_id", MAZES)
def test_maze_episode_ends_at_the_goal_and_continuing_task_true_still_overrides(env_id: str) -> None:
    for overrides, ends in (({}, True), ({"continuing_task": True}, False)):
        venv = make_vec_env(_config(env_id, env_kwargs=overrides))
        try:
            venv.reset()
            maze = _base_env(venv)
            assert maze.continuing_task is not ends
            _put_agent(maze, maze.goal)
            _, rewards, dones, infos = venv.step(np.zeros((1, *venv.action_space.shape), dtype=np.float32))
            assert rewards[0] == 1.0 and infos[0]["success"]
            assert bool(dones[0]) is ends
            if ends:  # ended by the goal, not by the time limit
                assert not infos[0]["TimeLimit.truncated"] and infos[0]["episode"]["l"] == 1
        finally:
            venv.close()


@needs_suites
def test_point_maze_pays_1_within_045_of_the_goal_and_0_just_outside() -> None:
    env = make_env_fn("PointMaze_UMaze-v3", {}, None, False)()
    layout = _dict_layout(gym.make("PointMaze_UMaze-v3").observation_space)
    # the goal in the middle of the U's top corridor, which runs along x: the point can sit 0.5 either side of it
    options = {"goal_cell": np.array([1, 2]), "reset_cell": np.array([3, 1])}
    for distance, reward in ((0.43, 1.0), (-0.43, 1.0), (0.47, 0.0), (-0.47, 0.0)):
        env.reset(seed=0, options=options)
        goal = env.unwrapped.goal.copy()
        _put_agent(env.unwrapped, goal + np.array([distance, 0.0]))
        obs, r, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert np.linalg.norm(obs[layout["achieved_goal"]] - goal) == pytest.approx(abs(distance), abs=1e-3)
        assert (r, terminated, truncated) == (reward, reward == 1.0, False), distance
    env.close()


def _set_cartpole(env: Any, x: float, angle: float) -> None:
    physics = env.unwrapped._env.physics
    with physics.reset_context():
        physics.named.data.qpos["slider"] = x
        physics.named.data.qpos["hinge_1"] = angle  # 0: upright
        physics.named.data.qvel[:] = 0.0


@needs_suites
def test_cartpole_swingup_sparse_pays_only_upright_near_the_centre() -> None:
    env = make_env_fn(CARTPOLE, {}, None, False)()
    env.reset(seed=0)
    # |x| <= 0.25 and cos(angle) >= 0.995 (angle within ~0.1 rad)
    for x, angle, reward in ((0.0, 0.0, 1.0), (0.2, 0.05, 1.0), (0.3, 0.0, 0.0), (0.0, 0.15, 0.0),
                             (0.0, np.pi, 0.0)):
        _set_cartpole(env, x, angle)
        _, r, terminated, truncated, _ = env.step(np.zeros(1))
        assert r == reward and not terminated and not truncated, (x, angle)
    env.close()


@needs_suites
def test_vime_and_ppo_train_on_a_dm_control_task(tmp_path) -> None:
    config = _config(
        "dm_control/pendulum-swingup-v0", env_kwargs={"max_episode_steps": 100}, n_envs=2, total_steps=512,
        bonus="vime", bonus_kwargs={"min_replay": 64, "model_steps": 20},
        hyperparams={"n_steps": 128, "batch_size": 64, "n_epochs": 1, "policy_kwargs": {"net_arch": [16]}},
        eval_freq=0, eval_episodes=1, checkpoint_freq=0, out_dir=str(tmp_path),
    )
    result = train(config)
    assert result.timesteps == 512 and np.isfinite(result.eval_mean_return)
    rows = [json.loads(line) for line in (result.run_dir / "vime_log.jsonl").read_text().splitlines()]
    # the BNN learnt from the flat observations and paid a bonus on each rollout after its first
    assert rows and all(np.isfinite(row["vime/info_gain_mean"]) for row in rows)
    assert rows[-1]["vime/info_gain_mean"] > 0 and rows[-1]["vime/bonus_mean"] > 0


@needs_suites
def test_presets_and_check_env_id() -> None:
    for env_id in IDS:
        check_env_id(env_id)
        for algo in ("ppo", "trpo"):
            config = build_config(algo, env_id)
            assert (config.n_envs, config.hyperparams["n_steps"], config.eval_freq) == (4, 512, 25_000)
    with pytest.raises(ConfigError, match="did you mean: dm_control/cartpole-swingup_sparse-v0"):
        check_env_id("dm_control/cartpole-swingup_sparce-v0")


def test_rlgen_defaults_go_under_the_callers_kwargs() -> None:
    assert make_kwargs("PointMaze_UMaze-v3", {}) == {"continuing_task": False}
    assert make_kwargs("AntMaze_UMaze-v5", {"continuing_task": True}) == {"continuing_task": True}
    assert make_kwargs(CARTPOLE, {"max_episode_steps": 5}) == {"max_episode_steps": 5}
    assert make_kwargs("rlgen/SparseAnt-v0", {}) == {}


@pytest.mark.parametrize(("env_id", "module"), [(CARTPOLE, "shimmy"), ("PointMaze_UMaze-v3", "gymnasium_robotics")])
def test_a_missing_package_is_a_one_line_error_naming_the_extra(env_id, module, monkeypatch, capsys,
                                                                  tmp_path) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    source = source_for(env_id)
    assert source is not None
    for registered in [key for key in gym.registry if source.ids.match(key)]:  # registered by earlier tests
        monkeypatch.delitem(gym.registry, registered)
    with pytest.raises(ConfigError) as error:
        check_env_id(env_id)
    message = str(error.value)
    assert f"{env_id} needs the suites extra: pip install 'rlgen[suites]'" in message and "\n" not in message
    with pytest.raises(ConfigError, match="needs the suites extra"):  # a config that skipped validation
        make_vec_env(RunConfig(env_id=env_id))
    assert main(["train", "--env", env_id, "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rlgen: error: ") and "pip install 'rlgen[suites]'" in err and "\n" not in err
    assert main(["envs"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if f"{source.name} (not installed)" in line]
    assert len(listed) == sum(task.source is source for task in SUITE_TASKS) > 0


def test_envs_lists_every_suite_task_with_its_reward_and_package(capsys) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for task in SUITE_TASKS:
        line = out[out.index(task.id):].splitlines()
        assert task.reward in line[0] and f"{task.episode_steps:>5} steps" in line[0]
        assert task.source.name in line[1] and ("installed" in line[1])
    assert out.count("continuing_task=False") >= 2


def test_the_robotics_import_notice_is_dropped_and_other_output_kept(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "noisy_suite.py").write_text(
        "import sys, warnings\nprint('AdroitHandDoor-v1 rewards changed', file=sys.stderr)\n"
        "print('something else', file=sys.stderr)\n"
        "warnings.warn(\"(65550) b'X11: The DISPLAY environment variable is missing'\", UserWarning)\n"
        "warnings.warn('another warning', UserWarning)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "noisy_suite", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _import_quietly("noisy_suite")
    assert capsys.readouterr().err == "something else\n"
    assert [str(w.message) for w in caught] == ["another warning"]  # glfw's no-display warning dropped


@needs_suites
def test_packages_are_imported_only_for_their_own_ids() -> None:
    # a fresh interpreter: in this one, earlier tests have imported the packages already
    code = (
        "import sys\n"
        "from rlgen.agents.config import check_env_id\n"
        "import rlgen.agents, rlgen.cli\n"
        "assert not {'shimmy', 'dm_control', 'gymnasium_robotics'} & set(sys.modules), 'imported eagerly'\n"
        "check_env_id('PointMaze_UMaze-v3')\n"
        "assert 'gymnasium_robotics' in sys.modules and 'shimmy' not in sys.modules\n"
        "check_env_id('dm_control/acrobot-swingup_sparse-v0')\n"
        "assert 'shimmy' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "AdroitHand" not in done.stderr


@needs_suites
def test_an_id_no_suite_claims_is_looked_for_in_the_installed_registrars() -> None:
    # FetchReach-v4 is Gymnasium-Robotics' but no maze: found by importing the package (a fresh interpreter,
    # where nothing has imported it yet); an id nobody registers stays an unknown id
    code = (
        "import sys, gymnasium as gym\n"
        "from rlgen.envs.suites import ensure_registered\n"
        "ensure_registered('Hopper-v5')\n"
        "assert 'gymnasium_robotics' not in sys.modules, 'imported for a Gymnasium id'\n"
        "ensure_registered('FetchReach-v4')\n"
        "assert 'FetchReach-v4' in gym.registry\n"
        "from rlgen.agents.config import ConfigError, check_env_id\n"
        "try:\n"
        "    check_env_id('NoSuchTask-v0')\n"
        "except ConfigError as exc:\n"
        "    assert \"unknown env id 'NoSuchTask-v0'\" in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('an unknown id passed')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


class _BrokenEnv(gym.Env):
    def __init__(self, size: int = 1):
        raise AssertionError  # what Gymnasium-Robotics' Fetch tasks raise on MuJoCo 4 (mujoco_utils.py)


def test_an_env_that_fails_to_build_is_a_one_line_error_naming_it_and_where(tmp_path, capsys) -> None:
    from tests.fakes import one_line_error

    gym.register("rlgen-test/Broken-v0", entry_point=_BrokenEnv)
    try:
        err = one_line_error(capsys, ["train", "--env", "rlgen-test/Broken-v0", "--steps", "64", "--out",
                                      str(tmp_path), "--no-progress"], "rlgen-test/Broken-v0 could not be built")
        assert "AssertionError at test_suites.py:" in err and "its package may not support" in err
        err = one_line_error(capsys, ["train", "--env", "rlgen-test/Broken-v0", "-p", "env_kwargs.sise=2", "--steps",
                                      "64", "--out", str(tmp_path), "--no-progress"], "with env_kwargs {'sise': 2}")
        assert "TypeError" in err and "unexpected keyword argument 'sise'" in err and "check env_kwargs" in err
    finally:
        del gym.registry["rlgen-test/Broken-v0"]
    # with envs in sub-processes too: the worker's failure is made again here, as the same one line
    err = one_line_error(capsys, ["train", "--env", "CartPole-v1", "-p", "env_kwargs.sise=2", "-p", "vec_env=subproc",
                                  "-p", "n_envs=2", "--steps", "64", "--out", str(tmp_path), "--no-progress"],
                         "CartPole-v1 could not be built with env_kwargs {'sise': 2}: TypeError")


def test_env_build_errors_name_the_kind_of_failure() -> None:
    from rlgen.agents.envstack import env_build_error

    try:
        gym.make("NoSuch-v0")
    except gym.error.NameNotFound as exc:
        assert "(an unknown env id" in env_build_error("NoSuch-v0", {}, exc)
    missing = gym.error.DependencyNotInstalled("Box2D is not installed, run `pip install gymnasium[box2d]`")
    said = env_build_error("LunarLander-v3", {}, missing)
    assert said.startswith("LunarLander-v3 could not be built: DependencyNotInstalled: Box2D is not installed")
    assert said.endswith("(a package the env needs is not installed)")

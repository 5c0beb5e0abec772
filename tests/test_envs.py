"""Tests for rlgen.envs: registration, API conformance, and where each sparse reward does and does not fire."""

from __future__ import annotations

import importlib
import inspect
import math
import pickle
import warnings
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlgen.envs
from rlgen.envs import TASKS

IDS = [task.id for task in TASKS]
LOCOMOTION = ["rlgen/SparseHalfCheetah-v0", "rlgen/SparseAnt-v0", "rlgen/SparseHumanoid-v0"]
DISTANCE_TASKS = ["rlgen/SparseAnt-v0", "rlgen/SparseHumanoid-v0"]
# The base envs' own reward terms, which must add up to info["reward_dense"].
DENSE_TERMS = {
    "rlgen/SparseHalfCheetah-v0": ["reward_forward", "reward_ctrl"],
    "rlgen/SparseAnt-v0": ["reward_forward", "reward_ctrl", "reward_contact", "reward_survive"],
    "rlgen/SparseHumanoid-v0": ["reward_forward", "reward_ctrl", "reward_contact", "reward_survive"],
}


def _step(env: gym.Env, action: Any = None) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
    if action is None:
        action = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
    return env.step(action)


def _raw(env: gym.Env) -> Any:
    """The unwrapped env, typed loosely: tests reach into task-specific state (state, data, set_state)."""
    return env.unwrapped


def _random_rewards(env_id: str, steps: int, seed: int = 0, **kwargs: Any) -> list[float]:
    """Rewards of a uniform-random policy over `steps` steps, resetting whenever an episode ends."""
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    rewards = []
    for _ in range(steps):
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        rewards.append(float(reward))
        if terminated or truncated:
            env.reset()
    env.close()
    return rewards


def test_every_task_is_registered_and_reregistration_is_silent() -> None:
    assert len(set(IDS)) == len(IDS) == 9
    for env_id in IDS:
        assert env_id in gym.registry
        assert gym.spec(env_id).max_episode_steps == next(t.episode_steps for t in TASKS if t.id == env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(rlgen.envs)
        rlgen.envs.register_all()


@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_task_thresholds_match_constructor_defaults(task: rlgen.envs.TaskInfo) -> None:
    module, name = task.entry_point.split(":")
    params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    assert task.thresholds
    for key, value in task.thresholds.items():
        assert params[key].default == value


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings():
        # The checker advises against the unbounded (+-inf) observation boxes, which these tasks need.
        warnings.simplefilter("ignore", UserWarning)
        check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_half_cheetah_make_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    before = mujoco.get_mju_user_warning()
    gym.make("rlgen/SparseHalfCheetah-v0").close()
    assert "settotalmass" not in capfd.readouterr().err
    assert mujoco.get_mju_user_warning() is before


# ---------------------------------------------------------------- random policies earn (almost) nothing


def test_mountain_car_random_policy_never_reaches_goal() -> None:
    # benchmarks/sparse_thresholds.py: 0 of 200 random 500-step episodes reach the goal.
    assert sum(_random_rewards("rlgen/SparseMountainCar-v0", 5000)) == 0


def test_cartpole_random_policy_is_rarely_upright() -> None:
    # benchmarks/sparse_thresholds.py measured 0.0009 of random steps rewarded (3 of 3254 over 50
    # episodes; random episodes are short because the cart leaves the track). 1% leaves room for seeds.
    rewards = _random_rewards("rlgen/SparseCartPoleSwingup-v0", 5000)
    assert np.mean(rewards) < 0.01


@pytest.mark.parametrize("env_id", LOCOMOTION)
def test_locomotion_random_policy_earns_nothing(env_id: str) -> None:
    assert sum(_random_rewards(env_id, 300)) == 0


# ---------------------------------------------------------------- thresholds fire where they should


def test_mountain_car_goal() -> None:
    env = gym.make("rlgen/SparseMountainCar-v0")
    env.reset(seed=0)
    _raw(env).state = np.array([0.40, 0.0], dtype=np.float32)
    _, reward, terminated, _, info = _step(env)
    assert reward == 0.0 and not terminated
    assert {"reward_dense", "reward_ctrl"} <= info.keys()

    _raw(env).state = np.array([0.46, 0.01], dtype=np.float32)
    _, reward, terminated, _, info = _step(env, np.array([1.0], dtype=np.float32))
    assert reward == 1.0 and terminated
    assert info["reward_dense"] == pytest.approx(100.0 - 0.1)
    assert info["reward_ctrl"] == pytest.approx(-0.1)


def test_mountain_car_goal_is_a_keyword() -> None:
    # Every position is >= -1.2, so the goal is reached on the first step.
    env = gym.make("rlgen/SparseMountainCar-v0", goal_position=-1.2)
    env.reset(seed=0)
    _, reward, terminated, _, _ = _step(env)
    assert reward == 1.0 and terminated


def test_cartpole_upright_and_track_limits() -> None:
    env = gym.make("rlgen/SparseCartPoleSwingup-v0")
    env.reset(seed=0)
    cart = _raw(env)

    cart.state = np.array([0.0, 0.0, 0.0, 0.0])  # balanced upright at the centre
    obs, reward, terminated, _, info = _step(env)
    assert reward == 1.0 and not terminated
    np.testing.assert_allclose(obs, [0.0, 0.0, 1.0, 0.0, 0.0], atol=1e-6)
    assert info["reward_upright"] == pytest.approx(1.0)
    assert {"reward_centered", "reward_ctrl"} <= info.keys()

    cart.state = np.array([2.9, 0.0, 0.0, 0.0])  # upright, near the end of the track
    _, reward, terminated, _, _ = _step(env)
    assert reward == 1.0 and not terminated

    tilted = math.acos(0.8) + 0.05  # just outside the cone, and gravity only tips it further
    cart.state = np.array([0.0, 0.0, tilted, 0.0])
    _, reward, terminated, _, info = _step(env)
    assert reward == 0.0 and not terminated
    assert info["reward_upright"] < 0.8

    cart.state = np.array([3.05, 0.0, 0.0, 0.0])  # upright but off the track
    _, reward, terminated, _, _ = _step(env)
    assert reward == 0.0 and terminated


def test_cartpole_reset_distribution() -> None:
    env = gym.make("rlgen/SparseCartPoleSwingup-v0")
    states = []
    for seed in range(200):
        env.reset(seed=seed)
        states.append(_raw(env).state.copy())
    lo, hi = np.min(states, axis=0), np.max(states, axis=0)
    np.testing.assert_array_less([-1.0, -2.0, math.pi - 1.0, -3.0], lo)
    np.testing.assert_array_less(hi, [1.0, 2.0, math.pi + 1.0, 3.0])
    # ... and fills them: 200 uniform draws come within 5% of each bound (a narrower reset would not)
    np.testing.assert_array_less(lo, [-0.9, -1.8, math.pi - 0.9, -2.7])
    np.testing.assert_array_less([0.9, 1.8, math.pi + 0.9, 2.7], hi)
    # Hanging down, so the pole always starts well outside the rewarded cone.
    assert np.cos(np.array(states)[:, 2]).max() < 0.8


def test_cartpole_thresholds_are_keywords() -> None:
    env = gym.make("rlgen/SparseCartPoleSwingup-v0", cos_threshold=-1.01, x_limit=10.0)
    env.reset(seed=0)
    _, reward, terminated, _, _ = _step(env)
    assert reward == 1.0 and not terminated


def _place_torso(env: gym.Env, xy: np.ndarray) -> None:
    """Put the torso at horizontal position `xy`, at rest, keeping the rest of the reset pose."""
    base = _raw(env)
    qpos = base.data.qpos.copy()
    qpos[:2] = xy
    base.set_state(qpos, np.zeros(base.model.nv))


def test_half_cheetah_goal() -> None:
    env = gym.make("rlgen/SparseHalfCheetah-v0")
    obs, _ = env.reset(seed=0)
    assert obs[0] == _raw(env).data.qpos[0]  # the position is observed (deviation from the default)
    _place_torso(env, np.array([4.8]))
    _, reward, terminated, _, info = _step(env)
    assert reward == 0.0 and not terminated
    assert info["reward_dense"] == pytest.approx(info["reward_forward"] + info["reward_ctrl"])

    _place_torso(env, np.array([5.2]))
    _, reward, terminated, _, info = _step(env)
    assert reward == 1.0 and not terminated
    assert info["goal_fraction"] == pytest.approx(_raw(env).data.qpos[0] / 5.0)


@pytest.mark.parametrize("env_id", DISTANCE_TASKS)
def test_distance_goal(env_id: str) -> None:
    env = gym.make(env_id)
    env.reset(seed=0)
    base = _raw(env)
    start = base.data.qpos[:2].copy()
    goal = base.goal_distance

    _place_torso(env, start + [goal - 0.3, 0.0])
    _, reward, terminated, _, info = _step(env)
    assert reward == 0.0 and not terminated
    assert info["distance_from_start"] == pytest.approx(goal - 0.3, abs=0.05)

    # Diagonal, so both horizontal axes count.
    _place_torso(env, start + (goal + 0.3) / math.sqrt(2.0))
    _, reward, terminated, _, info = _step(env)
    assert reward == 1.0 and not terminated
    assert info["distance_from_start"] == pytest.approx(goal + 0.3, abs=0.05)
    assert info["goal_fraction"] == pytest.approx(info["distance_from_start"] / goal)


@pytest.mark.parametrize("env_id", ["rlgen/SparseHalfCheetah-v0", *DISTANCE_TASKS])
def test_goal_fraction_passes_one_exactly_when_the_reward_is_paid(env_id: str) -> None:
    """goal_fraction measures the goal's own quantity: above 1 on the steps that pay the sparse reward."""
    from rlgen.envs.progress import reports_goal_fraction

    small = {"goal_x": 0.3} if "Cheetah" in env_id else {"goal_distance": 0.05}
    env = gym.make(env_id, **small)
    assert reports_goal_fraction(env)
    env.reset(seed=1)
    env.action_space.seed(1)
    paid, above = [], []
    for _ in range(300):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        paid.append(reward == 1.0)
        above.append(info["goal_fraction"] > 1.0)
        if terminated or truncated:
            env.reset()
    assert paid == above and any(paid) and not all(paid)


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("rlgen/SparseHalfCheetah-v0", {"goal_x": -1.0}),
        ("rlgen/SparseAnt-v0", {"goal_distance": 0.0}),
        ("rlgen/SparseHumanoid-v0", {"goal_distance": 0.0}),
    ],
)
def test_locomotion_thresholds_are_keywords(env_id: str, kwargs: dict[str, Any]) -> None:
    env = gym.make(env_id, **kwargs)
    _, reset_info = env.reset(seed=0)
    _, reward, _, _, info = _step(env)
    assert reward == 1.0
    assert info["reward_dense"] == pytest.approx(sum(info[k] for k in DENSE_TERMS[env_id]))
    if env_id in DISTANCE_TASKS:
        assert reset_info["distance_from_start"] == 0.0
        assert info["distance_from_start"] > 0.0


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("rlgen/SparseHalfCheetah-v0", {"goal_x": 7.0}),
        ("rlgen/SparseAnt-v0", {"goal_distance": 3.0, "terminate_when_unhealthy": False}),
    ],
)
def test_pickle_keeps_keywords(env_id: str, kwargs: dict[str, Any]) -> None:
    env = pickle.loads(pickle.dumps(gym.make(env_id, **kwargs).unwrapped))
    threshold = next(iter(kwargs.values()))
    assert getattr(env, next(iter(kwargs))) == threshold
    obs, _ = env.reset(seed=0)
    assert obs[0] == env.data.qpos[0]  # still observing the position


def test_gymnasium_half_cheetah_made_by_rlgen_is_quiet_and_other_warnings_pass(capfd, recwarn, tmp_path, monkeypatch):
    from rlgen.agents.envstack import make_env_fn

    monkeypatch.chdir(tmp_path)  # MuJoCo's default handler also appends to MUJOCO_LOG.TXT here
    gym.make("HalfCheetah-v5").close()  # made plainly, the model warns: the premise
    if "settotalmass" not in capfd.readouterr().err:
        pytest.skip(f"MuJoCo {mujoco.__version__} does not warn about settotalmass")
    before = mujoco.get_mju_user_warning()
    make_env_fn("HalfCheetah-v5", {}, None, False)().close()  # Gymnasium's half_cheetah.xml: settotalmass
    assert "settotalmass" not in capfd.readouterr().err
    assert mujoco.get_mju_user_warning() is before
    from rlgen.envs.quiet import quiet_settotalmass

    with quiet_settotalmass():  # any other warning still reaches the user
        mujoco.get_mju_user_warning()("a different MuJoCo warning")
    assert any("a different MuJoCo warning" in str(w.message) for w in recwarn.list)


# ---------------------------------------------------------------- VIME's own versions (-v1)


def test_half_cheetah_v1_pays_for_the_centre_of_mass_past_the_goal_at_vimes_timestep() -> None:
    env = gym.make("rlgen/SparseHalfCheetah-v1")
    obs, _ = env.reset(seed=0)
    base = _raw(env)
    assert base.dt == pytest.approx(0.01) and obs.shape == (20,)  # rllab: qpos[1:], qvel, centre of mass
    np.testing.assert_allclose(obs[-3:], base.data.subtree_com[base.model.body("torso").id])
    offset = float(base.centre_of_mass()[0] - base.data.qpos[0])  # the body's centre sits ahead of the torso
    for com_x, paid in ((4.95, 0.0), (5.05, 1.0)):
        _place_torso(env, np.array([com_x - offset]))
        _, reward, terminated, _, info = _step(env)
        assert info["com_x"] == pytest.approx(com_x, abs=0.01)
        assert reward == paid and not terminated
    # the whole body's centre decides, not the torso: the torso short of 5 m with the centre past it pays
    assert offset > 0.01
    _place_torso(env, np.array([5.0 - offset / 2]))
    assert _step(env)[1] == 1.0 and _raw(env).data.qpos[0] < 5.0


def test_half_cheetah_v1_observes_and_pays_the_centre_of_mass_of_the_step_just_taken() -> None:
    # mj_step computes subtree_com before it moves the bodies; rllab ran the model forward after each step, so
    # its observation and reward saw the centre of mass where the step left it
    import mujoco

    env = gym.make("rlgen/SparseHalfCheetah-v1")
    env.reset(seed=0)
    env.action_space.seed(0)
    base = _raw(env)
    for _ in range(5):
        obs, _, _, _, info = env.step(env.action_space.sample())
        fresh = mujoco.MjData(base.model)
        fresh.qpos[:], fresh.qvel[:] = base.data.qpos, base.data.qvel
        mujoco.mj_forward(base.model, fresh)
        np.testing.assert_allclose(obs[-3:], fresh.subtree_com[base.model.body("torso").id], atol=1e-12)
        assert info["com_x"] == pytest.approx(fresh.subtree_com[base.model.body("torso").id][0], abs=1e-12)


def test_half_cheetah_v1_random_policy_stays_far_from_the_goal() -> None:
    # 500 steps of 0.01 s: uniform random actions move the centre of mass a few tens of centimetres
    env = gym.make("rlgen/SparseHalfCheetah-v1")
    env.reset(seed=0)
    env.action_space.seed(0)
    farthest = max(env.step(env.action_space.sample())[4]["com_x"] for _ in range(500))
    assert farthest < 1.0


def test_cartpole_v1_takes_the_force_itself_and_observes_the_angle() -> None:
    env = gym.make("rlgen/SparseCartPoleSwingup-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,) and env.action_space.high[0] == 10.0
    base = _raw(env)
    assert base.gravity == 10.0
    np.testing.assert_allclose(obs, base.state, rtol=1e-6)  # [x, x_dot, theta, theta_dot], theta unwrapped
    # the same push: action 10 here is action 1 in v0
    v0 = gym.make("rlgen/SparseCartPoleSwingup-v0", gravity=10.0, pole_drag=base.pole_drag)
    v0.reset(seed=0)
    _raw(v0).state = base.state.copy()
    after_v1 = env.step(np.array([10.0], np.float32))[0]
    after_v0 = v0.step(np.array([1.0], np.float32))[0]
    assert after_v1[1] == pytest.approx(after_v0[1])  # x_dot
    for angle, paid in ((math.acos(0.79), 0.0), (math.acos(0.81), 1.0)):
        base.state = np.array([0.0, 0.0, angle, 0.0])
        assert env.step(np.zeros(1, np.float32))[1] == paid


def test_mountain_car_v1_pays_at_either_end_of_vimes_track_and_sheds_a_swings_energy_as_box2d_does() -> None:
    env = gym.make("rlgen/SparseMountainCar-v1", damping=0.0)
    obs, _ = env.reset(seed=0)
    assert obs[0] == 0.0 and -1.0 <= obs[1] <= 1.0  # rllab: at the bottom, velocity U(-1, 1)
    base = _raw(env)
    base.state = np.array([0.55, 0.0])
    _, reward, terminated, _, _ = _step(env)
    assert reward == 0.0 and not terminated
    base.state = np.array([0.59, 2.0])
    _, reward, terminated, _, _ = _step(env)
    assert reward == 1.0 and terminated
    base.state = np.array([-1.99, -3.0])  # leaving the track at its far end ends the episode and pays, as coded
    _, reward, terminated, _, _ = _step(env)
    assert reward == 1.0 and terminated
    # no friction: with the motor off, height and speed trade without loss over a swing
    base.state = np.array([0.0, 2.0])

    def energy(state: np.ndarray) -> float:
        slope = math.pi / 2 * math.sin(math.pi / 2 * state[0])
        return 0.5 * (1 + slope**2) * state[1] ** 2 + 10.0 * float(base.height(state[0]))

    start = energy(base.state)
    for _ in range(100):
        _step(env)
    assert energy(base.state) == pytest.approx(start, rel=0.01)  # the bead itself keeps it
    # the default drag sheds most of it within 100 steps, as rllab's Box2D car does (vime_box2d_check.md: ~3% left)
    damped = gym.make("rlgen/SparseMountainCar-v1")
    damped.reset(seed=0)
    _raw(damped).state = np.array([0.0, 2.0])
    for _ in range(100):
        _step(damped)
    assert energy(_raw(damped).state) < 0.1 * start
    # ... but not so much that the task cannot be done: pushing with the full 1 N along the velocity reaches the
    # goal from rest in under 200 steps (rllab's Box2D car: 84-87 steps)
    pump = gym.make("rlgen/SparseMountainCar-v1")
    pump.reset(seed=0)
    _raw(pump).state = np.array([0.0, 0.0])
    paid = False
    for _ in range(199):
        paid = _step(pump, np.array([1.0 if _raw(pump).state[1] >= 0 else -1.0], np.float32))[1] == 1.0
        if paid:
            break
    assert paid and _raw(pump).state[0] >= 0.6
    # the reset's velocity fills U(-1, 1)
    velocities = [gym.make("rlgen/SparseMountainCar-v1").reset(seed=seed)[0][1] for seed in range(100)]
    assert min(velocities) < -0.9 and max(velocities) > 0.9
    # the motor's 1 N cannot hold the 0.4 kg cart where gravity's pull along the slope is over 2.5 m/s^2
    base.state = np.array([0.5, 0.0])
    _step(env, np.array([1.0], np.float32))
    assert base.state[1] < 0


@pytest.mark.parametrize("key", ["reset_noise_scale", "exclude_current_positions_from_observation"])
def test_half_cheetah_v1_refuses_the_base_keywords_it_would_ignore(key: str) -> None:
    # its reset noise and observation are rllab's: HalfCheetah-v5's reset_noise_scale used to be taken and dropped
    value = 0.5 if key == "reset_noise_scale" else False
    with pytest.raises(TypeError, match=f"SparseHalfCheetah-v1 does not take {key}"):
        gym.make("rlgen/SparseHalfCheetah-v1", **{key: value})
    # the keywords it does take still work
    env = gym.make("rlgen/SparseHalfCheetah-v1", goal_x=3.0, forward_reward_weight=2.0)
    assert _raw(env).goal_x == 3.0


@pytest.mark.parametrize("env_id", ["rlgen/SparseMountainCar-v0", "rlgen/SparseMountainCarPixels-v0"])
def test_mountain_car_goal_beyond_the_tracks_end_is_refused(env_id: str) -> None:
    # Gymnasium's car stops at x = 0.6: a goal past it used to make a task that never pays
    for goal in (0.61, float("nan")):
        with pytest.raises(ValueError, match="goal_position must be at most the track's end, 0.6"):
            gym.make(env_id, goal_position=goal)
    env = gym.make(env_id, goal_position=0.6)  # the end itself is reached
    env.reset(seed=0)
    _raw(env).state = np.array([0.59, 0.07], dtype=np.float32)
    assert _step(env, np.array([1.0], dtype=np.float32))[1] == 1.0


@pytest.mark.parametrize("env_id", ["rlgen/SparseCartPoleSwingup-v0", "rlgen/SparseCartPoleSwingup-v1",
                                    "rlgen/SparseMountainCar-v1"])
@pytest.mark.parametrize(("key", "value"), [("substeps", 0), ("substeps", -1), ("substeps", 2.5), ("dt", 0.0),
                                            ("dt", -0.05), ("max_force", 0.0), ("max_force", float("nan"))])
def test_a_step_that_cannot_move_the_system_is_refused(env_id: str, key: str, value: float) -> None:
    # substeps < 1 or dt <= 0 used to freeze the state silently (substeps 0 and no force divided by zero in step)
    with pytest.raises(ValueError, match=f"^{key} must be"):
        gym.make(env_id, **{key: value})


def test_cartpole_without_a_track_and_a_massless_car_are_refused() -> None:
    with pytest.raises(ValueError, match="^x_limit must be > 0"):
        gym.make("rlgen/SparseCartPoleSwingup-v0", x_limit=0.0)
    with pytest.raises(ValueError, match="^mass must be > 0"):
        gym.make("rlgen/SparseMountainCar-v1", mass=0.0)


@pytest.mark.parametrize("env_id", DISTANCE_TASKS)
@pytest.mark.parametrize("goal", [5.0, 0.0, -1.0])
def test_the_reset_goal_fraction_is_that_of_distance_zero(env_id: str, goal: float) -> None:
    from rlgen.envs.progress import goal_fraction

    env = gym.make(env_id, goal_distance=goal)
    _, info = env.reset(seed=0)
    # it was 0.0 whatever the goal: below the 1 + distance - goal of every later step when the goal is at 0 or below
    assert info["goal_fraction"] == goal_fraction(0.0, goal) == (0.0 if goal > 0 else 1.0 - goal)

"""The reward-wrapper contract (rlgen.reward_wrapper): the ring buffer, the recorder, the callback check."""

import numpy as np
import pytest
import torch

from rlgen.exploration.rollout_bonus import standardisation
from rlgen.reward_wrapper import TransitionRing


def test_ring_keeps_integer_observations_as_they_are_and_reads_the_old_layout():
    rng = np.random.default_rng(0)
    frames, next_frames = rng.integers(0, 256, (5, 6)), rng.integers(0, 256, (5, 6))
    actions = rng.normal(size=(5, 2)).astype(np.float32)
    inputs = np.hstack([frames, actions]).astype(np.float32)
    pool = TransitionRing(4, 6, 2, obs_dtype=np.uint8)
    pool.add_inputs(inputs, next_frames.astype(np.float32))  # 5 rows into 4 places: the first one makes way
    assert pool.obs.dtype == np.uint8 and pool.obs.nbytes == 4 * 6 and pool.size == 4
    rows_in, rows_out = pool.rows()
    assert rows_in.dtype == np.float32
    assert sorted(map(tuple, rows_in)) == sorted(map(tuple, inputs[1:]))  # exact: the frames were bytes
    assert sorted(map(tuple, rows_out)) == sorted(map(tuple, next_frames[1:].astype(np.float32)))
    state = pool.state()
    assert state["obs"].dtype == torch.uint8 and state["actions"].dtype == torch.float32
    # a state saved before observations and actions were kept apart: float32 [s, a] and s' rows
    old = {"inputs": torch.from_numpy(inputs[:3]), "targets": torch.from_numpy(next_frames[:3].astype(np.float32)),
           "cursor": 3}
    other = TransitionRing(4, 6, 2, obs_dtype=np.uint8)
    other.load(old)
    np.testing.assert_array_equal(other.rows()[0], inputs[:3])
    assert other.cursor == 3
    with pytest.raises(ValueError, match="observation width"):
        TransitionRing(4, 5, 2).load(old)


def test_ring_loaded_into_another_capacity_keeps_the_newest_rows_in_order():
    def filled(capacity, n):
        pool = TransitionRing(capacity, 1, 1)
        values = np.arange(n, dtype=np.float32)[:, None]
        pool.add_inputs(np.hstack([values, values]), values)
        return pool

    saved = filled(10, 23).state()  # wrapped: holds 13..22, the oldest (13) at the cursor
    new_rows = (np.full((2, 2), 99, np.float32), np.full((2, 1), 99, np.float32))
    larger = TransitionRing(100, 1, 1)
    larger.load(saved)
    assert larger.rows()[1][:, 0].tolist() == list(range(13, 23))
    larger.add_inputs(*new_rows)  # room to spare: nothing held is overwritten and no empty row counts
    assert larger.rows()[1][:, 0].tolist() == [*range(13, 23), 99, 99]
    smaller = TransitionRing(4, 1, 1)
    smaller.load(saved)
    assert smaller.rows()[1][:, 0].tolist() == [19, 20, 21, 22]  # the newest that fit
    smaller.add_inputs(*new_rows)  # the oldest of them make way
    assert smaller.rows()[1][:, 0].tolist() == [99, 99, 21, 22]
    same = TransitionRing(10, 1, 1)
    same.load(saved)  # the same capacity: rows and cursor exactly as they were
    np.testing.assert_array_equal(same.next_obs, filled(10, 23).next_obs)
    assert same.cursor == 3


def test_ring_statistics_in_blocks_match_the_whole_pool_and_bytes_stay_bytes():
    rng = np.random.default_rng(1)
    pool = TransitionRing(1000, 3, 2)
    pool.add_inputs(rng.normal(5, 3, (700, 5)).astype(np.float32), rng.normal(-2, 0.5, (700, 3)).astype(np.float32))
    whole = standardisation(*pool.rows())
    blocks = pool.statistics(block=64)
    for key, value in whole.items():
        np.testing.assert_allclose(blocks[key], value, rtol=1e-5, atol=1e-6)
    frames = TransitionRing(10, 2, 1, obs_dtype=np.uint8)
    with pytest.raises(ValueError, match="not uint8 values.*-3 to 256"):
        frames.add_inputs(np.array([[-3.0, 256.0, 0.5]], np.float32), np.array([[1.0, 2.0]], np.float32))
    assert TransitionRing(10, 2, 1, obs_dtype=np.int64).obs_dtype == np.float32  # no saving over float32


def test_ring_keeps_the_latest_rows_across_the_wrap():
    buffer = TransitionRing(5, 2, (1,))
    rows = np.arange(14, dtype=np.float32)
    for start in range(0, 14, 3):  # 3 rows a step into 5 slots: every other step wraps
        chunk = rows[start:start + 3]
        buffer.add(np.stack([chunk, -chunk], 1), chunk[:, None] * 10, np.stack([chunk + 1, chunk], 1))
    obs, acts, next_obs = buffer.contents()
    assert buffer.size == 5 and buffer.cursor == 14 % 5
    # slot i holds the latest row r with r % 5 == i: rows 9..13
    expected = np.array([10, 11, 12, 13, 9], dtype=np.float32)
    np.testing.assert_array_equal(obs, np.stack([expected, -expected], 1))
    np.testing.assert_array_equal(acts[:, 0], expected * 10)
    np.testing.assert_array_equal(next_obs[:, 0], expected + 1)


def _vime_after_a_rollout(seed):
    from rlgen.exploration import VIME
    from tests.fakes import line_venv

    vime = VIME(line_venv(n=2, horizon=5), min_replay=1, model_steps=20, seed=seed, update_every=64)
    rng = np.random.default_rng(0)  # the same data for every wrapper
    inputs = rng.normal(size=(64, 3)).astype(np.float32)
    targets = rng.normal(size=(64, 2)).astype(np.float32)
    vime.train_model(inputs, targets)
    return vime.compute_bonus(inputs, targets)[0]


def test_a_wrappers_seed_decides_all_of_its_randomness():
    # two VIME wrappers of one seed in one process give identical bonuses, however far the caller's global
    # torch RNG has moved in between; another seed gives other bonuses
    torch.manual_seed(1)
    first = _vime_after_a_rollout(seed=3)
    torch.randn(1000)
    second = _vime_after_a_rollout(seed=3)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, _vime_after_a_rollout(seed=4))


@pytest.mark.parametrize("mode, raises, n_envs", [("rollout", True, 1), ("rollout", True, 3), ("step", False, 1)])
def test_a_forgotten_callback_stops_a_rollout_bonus_with_the_fix_named(mode, raises, n_envs):
    from stable_baselines3 import PPO

    from rlgen.exploration import VIME
    from tests.fakes import line_venv

    vime = VIME(line_venv(n=n_envs, horizon=5), mode=mode, update_every=64, min_replay=1, model_steps=1)
    # a class default of 10,000 transitions: lowered to keep the test quick. The limit counts transitions,
    # not VecEnv steps (with 3 envs, 640 transitions are 214 steps: it never stopped)
    vime.unattached_limit = 300
    model = PPO("MlpPolicy", vime, n_steps=64, batch_size=64, n_epochs=1, policy_kwargs={"net_arch": [8]}, seed=0)
    if raises:
        with pytest.raises(RuntimeError, match=r"callback was never attached.*callback=vime.callback"):
            model.learn(640)
    else:  # step mode pays its bonus itself; its callback only logs
        model.learn(640)
    # with the callback attached, the same run records on without complaint
    attached = VIME(line_venv(n=1, horizon=5), min_replay=1, model_steps=1)
    attached.unattached_limit = 300
    PPO("MlpPolicy", attached, n_steps=64, batch_size=64, n_epochs=1, policy_kwargs={"net_arch": [8]},
        seed=0).learn(640, callback=attached.callback)


def test_the_recorder_pairs_each_step_with_the_true_next_observation_and_refuses_nan():
    from rlgen.reward_wrapper import TransitionRecorder

    recorder = TransitionRecorder(2, "Test")
    recorder.on_reset(np.array([[0.0], [1.0]]))
    recorder.on_actions(np.array([[0.5], [-0.5]]))
    infos = [{}, {"terminal_observation": np.array([7.0])}]
    s, a, s_next = recorder.on_step(np.array([[0.25], [0.0]]), np.array([False, True]), infos)
    np.testing.assert_array_equal(s[:, 0], [0.0, 1.0])
    np.testing.assert_array_equal(a[:, 0], [0.5, -0.5])
    np.testing.assert_array_equal(s_next[:, 0], [0.25, 7.0])  # the env that ended: its terminal observation
    np.testing.assert_array_equal(recorder.last_obs[:, 0], [0.25, 0.0])  # the next step starts from the reset
    recorder.on_actions(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="Test: non-finite observation at step 2"):
        recorder.on_step(np.array([[np.nan], [0.0]]), np.array([False, False]), [{}, {}])


def test_staged_steps_give_the_rows_step_by_step_recording_gives():
    """A deferred rollout keeps its steps (stage) and makes their rows in one batch (take_staged): the same
    (s, a, s') as on_step per step, terminal observations and time-limit ends included, also when taken in two
    parts (a state saved inside a rollout), and a VecEnv that reuses its arrays changes nothing kept."""
    from rlgen.reward_wrapper import TransitionRecorder

    rng = np.random.default_rng(0)
    n_envs, steps = 3, 12
    obs_seq = rng.normal(size=(steps + 1, n_envs, 2))
    act_seq = rng.normal(size=(steps, n_envs, 1)).astype(np.float32)
    dones = rng.random((steps, n_envs)) < 0.3
    truncated = dones & (rng.random((steps, n_envs)) < 0.5)
    infos = [[{"terminal_observation": rng.normal(size=2).astype(np.float32), "TimeLimit.truncated": bool(truncated[t, i])}
              if dones[t, i] else {} for i in range(n_envs)] for t in range(steps)]
    stepwise, staged = TransitionRecorder(n_envs, "Test"), TransitionRecorder(n_envs, "Test")
    for recorder in (stepwise, staged):
        recorder.on_reset(obs_seq[0])
    expected, parts = [], []
    env_obs, env_act = np.empty((n_envs, 2), np.float32), np.empty((n_envs, 1), np.float32)  # reused, as VecEnvs may
    env_terminals = [np.empty(2, np.float32) for _ in range(n_envs)]  # so are the terminal observations
    for t in range(steps):
        stepwise.on_actions(act_seq[t])
        expected.append(stepwise.on_step(obs_seq[t + 1], dones[t], infos[t]))
        env_act[:], env_obs[:] = act_seq[t], obs_seq[t + 1]
        env_infos = [{**info, "terminal_observation": env_terminal} if "terminal_observation" in info else info
                     for info, env_terminal in zip(infos[t], env_terminals, strict=True)]
        for info, env_terminal in zip(infos[t], env_terminals, strict=True):
            if "terminal_observation" in info:
                env_terminal[:] = info["terminal_observation"]
        staged.on_actions(env_act)
        staged.stage(env_obs, dones[t], env_infos)
        np.testing.assert_array_equal(staged.last_obs, stepwise.last_obs)
        if t == 4:
            parts.append(staged.take_staged())
    assert staged.staged_steps == steps - 5 and staged.steps == steps
    parts.append(staged.take_staged())
    for k, name in enumerate(("s", "a", "s'")):
        got = np.concatenate([part[k] for part in parts])
        np.testing.assert_array_equal(got, np.concatenate([step[k] for step in expected]), err_msg=name)
    np.testing.assert_array_equal(np.concatenate([part[3] for part in parts]), dones)
    np.testing.assert_array_equal(np.concatenate([part[4] for part in parts]), truncated)
    with pytest.raises(RuntimeError, match="no staged steps"):
        staged.take_staged()
    staged.on_actions(np.zeros((n_envs, 1)))
    with pytest.raises(ValueError, match="Test: non-finite observation at step 13"):
        staged.stage(np.full((n_envs, 2), np.nan), np.zeros(n_envs, bool), [{}] * n_envs)
    # a bad terminal observation of the last env keeps nothing of the step (not the first env's end either)
    ended = [{"terminal_observation": np.zeros(2)}, {}, {"terminal_observation": np.full(2, np.inf)}]
    with pytest.raises(ValueError, match="non-finite terminal observation"):
        staged.stage(np.zeros((n_envs, 2)), np.array([True, False, True]), ended)
    staged.stage(np.ones((n_envs, 2)), np.zeros(n_envs, bool), [{}] * n_envs)
    _, _, s_next, done_rows, _ = staged.take_staged()
    np.testing.assert_array_equal(s_next, np.ones((n_envs, 2)))
    assert not done_rows.any()


def test_an_infogail_policy_gets_its_code_outside_training_and_others_refuse_one():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlgen.agents import ConfigError, RunConfig
    from rlgen.agents.envstack import policy_env, policy_observation
    from tests.fakes import LineEnv

    coded = RunConfig(env_id="CartPole-v1", imitation="infogail", demos="d.npz", imitation_kwargs={"n_modes": 3})
    venv = policy_env(DummyVecEnv([LineEnv]), coded, code=2)
    np.testing.assert_array_equal(venv.reset()[0, -3:], [0, 0, 1])  # the held code, one-hot after the obs
    np.testing.assert_array_equal(policy_observation(coded, code=1)(np.array([5.0, 1.0]))[-3:], [0, 1, 0])
    with pytest.raises(ConfigError, match="needs a latent code"):
        policy_observation(coded)
    plain = RunConfig(env_id="CartPole-v1", bonus="vime")
    assert policy_observation(plain) is None
    with pytest.raises(ConfigError, match="only an infogail run's policy takes a latent code"):
        policy_env(DummyVecEnv([LineEnv]), plain, code=0)



def test_a_wrapper_over_vec_normalize_warns_at_the_users_line():
    from stable_baselines3.common.vec_env import VecNormalize

    from rlgen.exploration import RND
    from tests.fakes import line_venv

    with pytest.warns(UserWarning, match="RND wraps a VecNormalize that normalises observations: .*put VecNormalize on top") as record:
        RND(VecNormalize(line_venv(n=2)))
    assert record[0].filename == __file__  # not rlgen's constructors, three deep
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VecNormalize(RND(line_venv(n=2)))  # the right order: no warning
        RND(VecNormalize(line_venv(n=2), norm_obs=False))  # rewards alone beneath: no warning

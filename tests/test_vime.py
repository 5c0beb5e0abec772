import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.vec_env import DummyVecEnv

from rlgen.agents import ConfigError, RunConfig, train
from rlgen.agents.rundir import RunDir
from rlgen.exploration import VIME
from tests.fakes import RolloutRecorder, line_venv, step_until_nan


def test_non_box_observations_are_refused():
    with pytest.raises(TypeError, match="VIME needs a Box observation space, got Tuple observations"):
        VIME(DummyVecEnv([lambda: gym.make("Blackjack-v1")]))


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="unknown VIME method 'third_order'"):
        VIME(line_venv(), method="third_order")
    with pytest.raises(ValueError, match="eta must be >= 0"):
        VIME(line_venv(), eta=-1)


def test_records_true_next_observation_at_episode_ends():
    vime = VIME(line_venv(n=2, horizon=3))
    first = vime.reset()
    for _ in range(4):
        vime.step(np.full((2, 1), 0.5, dtype=np.float32))
    inputs, targets, dones = vime.take_rollout()
    assert inputs.shape == (4, 2, 3) and targets.shape == (4, 2, 2)
    np.testing.assert_allclose(inputs[0, :, :2], first)
    assert dones[:, 0].tolist() == [False, False, True, False]
    # at the episode end, s' is the terminal observation (x + 100), not the next reset observation
    assert np.all(targets[2, :, 0] > 99)
    # and the next transition starts from the reset observation
    assert np.all(np.abs(inputs[3, :, 0]) < 1)
    np.testing.assert_allclose(inputs[:, :, 2], 0.5)  # the actions that reached the env


def test_nan_observation_raises_with_the_step():
    with pytest.raises(ValueError, match="non-finite observation at step 3"):
        step_until_nan(VIME(line_venv(n=1, horizon=50, nan_at=3)))


def test_novel_transitions_gain_more_than_familiar_ones():
    torch.manual_seed(0)
    vime = VIME(line_venv(n=1), min_replay=1, model_steps=1500, batch_size=10, seed=0, update_every=400)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (400, 1))
    a = rng.uniform(-1, 1, (400, 1))
    inputs = np.hstack([x, np.ones_like(x), a]).astype(np.float32)
    targets = np.hstack([x + 0.1 * a, np.ones_like(x)]).astype(np.float32)
    vime.train_model(inputs, targets)
    familiar = vime.information_gain(inputs[:50], targets[:50])
    # same inputs, but the dynamics went the other way: the model is surprised
    novel_targets = targets[:50].copy()
    novel_targets[:, 0] = inputs[:50, 0] - 3.0 * inputs[:50, 2] + 2.0
    novel = vime.information_gain(inputs[:50], novel_targets)
    assert np.median(novel) > 3 * np.median(familiar)
    # pairwise, through each gain's own Monte-Carlo noise: 0.78 to 0.88 of the pairs over wrapper seeds 0-4
    assert (novel > familiar).mean() > 0.7


def _gain_of_a_moved_constant_column(**settings):
    """The median gains (familiar transitions; the same with the pool's constant column moved from 1 to 1.5) of a
    VIME whose BNN trained on transitions where that column never moved."""
    vime = VIME(line_venv(n=1), min_replay=1, model_steps=1500, batch_size=10, seed=0, update_every=400,
                **settings)
    rng = np.random.default_rng(0)
    x, a = rng.uniform(-1, 1, (400, 1)), rng.uniform(-1, 1, (400, 1))
    inputs = np.hstack([x, np.ones_like(x), a]).astype(np.float32)
    targets = np.hstack([x + 0.1 * a, np.ones_like(x)]).astype(np.float32)
    vime.train_model(inputs, targets)
    moved_in, moved_out = inputs[:50].copy(), targets[:50].copy()
    moved_in[:, 1] = moved_out[:, 1] = 1.5
    return np.median(vime.information_gain(inputs[:50], targets[:50])), np.median(vime.information_gain(moved_in,
                                                                                                         moved_out))


def test_a_column_constant_in_the_pool_no_longer_makes_a_gain_orders_of_magnitude_out():
    familiar, moved = _gain_of_a_moved_constant_column()  # the defaults: std floored at 0.01, clipped at 5
    original_familiar, original_moved = _gain_of_a_moved_constant_column(clip=None, std_floor=0.0)
    assert moved > 10 * familiar  # a change never seen is still the most informative transition
    # the original's standardisation puts it 500,000 standard deviations out: ~1e10 x the median gain (then
    # clipped at max_kl); floored and clipped it is 5 out, ~550 x (measured)
    assert original_moved / original_familiar > 1e3 * (moved / familiar)
    with pytest.raises(ValueError, match="std_floor must be >= 0"):
        VIME(line_venv(), std_floor=-1)


def test_the_bnns_training_noise_comes_from_the_wrapper_and_leaves_torchs_global_rng_alone():
    rng = np.random.default_rng(0)
    inputs, targets = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=(40, 2)).astype(np.float32)
    trained = []
    for draw in (False, True):
        torch.manual_seed(123)
        vime = VIME(line_venv(n=1), min_replay=1, model_steps=20, seed=3, update_every=40)
        before = torch.get_rng_state()
        if draw:
            torch.randn(1000)  # the caller's own draws in between change nothing of the wrapper's
            before = torch.get_rng_state()
        vime.train_model(inputs, targets)
        assert torch.equal(torch.get_rng_state(), before)  # the global stream did not move
        trained.append(torch.cat([p.detach().flatten() for p in vime.bnn.parameters()]))
    assert torch.equal(trained[0], trained[1])


def _first_rollout(eta, algo=PPO):
    vime = VIME(line_venv(n=2, horizon=20), eta=eta, min_replay=1, model_steps=5, update_every=64)
    model = algo("MlpPolicy", vime, n_steps=32, seed=0, policy_kwargs={"net_arch": [8]}, device="cpu",
                 **({"batch_size": 32} if algo is PPO else {}))
    recorder = RolloutRecorder()
    model.learn(64, callback=CallbackList([vime.callback, recorder]))
    return recorder.seen, model, vime


def _gae(rewards, values, episode_starts, last_values, dones, gamma, lam):
    advantages = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[1])
    for t in reversed(range(len(rewards))):
        next_non_terminal = 1.0 - (dones if t == len(rewards) - 1 else episode_starts[t + 1])
        next_values = last_values if t == len(rewards) - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_values * next_non_terminal - values[t]
        last = delta + gamma * lam * next_non_terminal * last
        advantages[t] = last
    return advantages


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_callback_adds_the_bonus_and_recomputes_advantages(algo):
    with_bonus, model, vime = _first_rollout(eta=0.5, algo=algo)
    without, _, _ = _first_rollout(eta=0.0, algo=algo)
    bonus = with_bonus["rewards"] - without["rewards"]  # same seed, same trajectory, only the bonus differs
    assert np.all(bonus >= 0) and bonus.max() > 0
    # the first rollout is normalised by its own median: the median bonus is eta
    assert np.median(bonus) == pytest.approx(0.5, rel=1e-4)
    expected = _gae(with_bonus["rewards"], with_bonus["values"], with_bonus["episode_starts"],
                    with_bonus["last_values"], with_bonus["dones"], model.gamma, model.gae_lambda)
    np.testing.assert_allclose(with_bonus["advantages"], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(with_bonus["returns"], expected + with_bonus["values"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(with_bonus["advantages"], without["advantages"])
    # SB3's episode statistics stay the env's own (zero) reward; the intrinsic return is logged apart
    assert all(info["r"] == 0.0 for info in model.ep_info_buffer)
    assert len(vime.callback.episode_intrinsic) > 0 and np.mean(vime.callback.episode_intrinsic) > 0


def test_max_normalised_caps_the_heavy_tail_of_the_normalised_gains():
    gains = np.concatenate([np.full(99, 1e-9), [1e-4]])  # the SparseAnt shape: a tiny median, one huge gain
    faithful, capped = VIME(line_venv()), VIME(line_venv(), max_normalised=10.0)
    assert faithful.normalise(gains).max() == pytest.approx(1e5)  # the original: 100,000 x the median
    out = capped.normalise(gains)
    assert out.max() == pytest.approx(10.0) and np.median(out) == pytest.approx(1.0)  # the bulk unchanged
    with pytest.raises(ValueError, match="max_normalised must be > 0"):
        VIME(line_venv(), max_normalised=0)


def test_eta_decays_linearly_to_its_final_value_then_stays():
    vime = VIME(line_venv(n=2, horizon=5), eta=0.4, eta_final=0.1, eta_decay_steps=40)
    vime.reset()
    etas = []
    for _ in range(30):
        etas.append(vime.current_eta())
        vime.step(np.zeros((2, 1), dtype=np.float32))
    # 2 transitions per vector step: 0.4 at the start, half-way (0.25) after 10 steps, 0.1 from step 20 on
    assert etas[0] == pytest.approx(0.4) and etas[10] == pytest.approx(0.25)
    assert etas[20:] == pytest.approx([0.1] * 10)
    assert np.all(np.diff(etas) <= 1e-12)
    inputs, targets, _ = vime.take_rollout()
    flat_in, flat_out = inputs.reshape(-1, 3), targets.reshape(-1, 2)
    torch.manual_seed(0)
    bonus, logged = vime.compute_bonus(flat_in, flat_out)
    assert logged["vime/eta"] == pytest.approx(0.1)
    assert np.median(bonus) == pytest.approx(0.1, rel=1e-4)  # one rollout, normalised by its own median
    with pytest.raises(ValueError, match="eta_final and eta_decay_steps go together"):
        VIME(line_venv(), eta_final=0.01)


def test_callback_refuses_off_policy_agents_in_rollout_mode():
    from stable_baselines3 import SAC

    vime = VIME(line_venv(n=1))
    model = SAC("MlpPolicy", vime, learning_starts=10, device="cpu")
    with pytest.raises(TypeError, match="on-policy agent.*mode='step'"):
        model.learn(20, callback=vime.callback)


def test_step_mode_adds_the_bonus_at_step_time_and_trains_every_window():
    vime = VIME(line_venv(n=2, horizon=5, reward=1.0), eta=0.5, mode="step", update_every=8, min_replay=1,
                model_steps=5)
    vime.reset()
    rng = np.random.default_rng(0)
    rewards, expected = [], []
    for step in range(12):
        actions = rng.uniform(-1, 1, (2, 1)).astype(np.float32)
        obs_before = vime.recorder.last_obs.copy()
        noise = vime.generator.get_state()  # the wrapper's own stream decides the BNN's weight samples
        _, reward, _, _ = vime.step(actions)
        rewards.append(reward)
        if step >= 4 and vime._pending:  # after the first window (4 steps x 2 envs), between model updates
            _, _, next_obs, _ = vime._pending[-1]
            after = vime.generator.get_state()
            vime.generator.set_state(noise)  # the same samples again
            gains = vime.information_gain(np.hstack([obs_before, actions]), next_obs)
            vime.generator.set_state(after)
            expected.append((step, 1.0 + 0.5 * gains / np.mean(vime.medians)))
    rewards = np.array(rewards)
    np.testing.assert_array_equal(rewards[:4], 1.0)  # the first window: the model has seen nothing, no bonus
    assert len(expected) == 6  # steps 4-6 and 8-10 (steps 7 and 11 end windows: their bonus preceded the update)
    for step, reward in expected:  # the current model's normalised gain, the stored medians unchanged by it
        np.testing.assert_allclose(rewards[step], reward, rtol=1e-5)
    assert np.all(rewards[4:] >= 1.0) and rewards[4:].max() > 1.0
    # one model update and one normalising median per window of 8 transitions, none per step
    assert vime.windows == 3 and vime.pool.size == 24 and len(vime.medians) == 3
    assert not vime._pending
    assert len(vime.callback.episode_intrinsic) == 4  # 2 envs x 2 episodes of 5 steps ended


def test_step_mode_pays_nothing_until_the_model_has_trained():
    # windows of 8 transitions, but the BNN waits for 20 in its pool: the first two windows train nothing
    vime = VIME(line_venv(n=2, horizon=5, reward=1.0), mode="step", update_every=8, min_replay=20,
                model_steps=5)
    vime.reset()
    rewards = [vime.step(np.full((2, 1), 0.3, dtype=np.float32))[1] for _ in range(16)]
    np.testing.assert_array_equal(np.array(rewards[:12]), 1.0)  # the update at step 12 is the first that trains
    assert vime.windows == 2 and len(vime.medians) == 2
    assert np.all(np.array(rewards[12:]) >= 1.0) and np.max(rewards[12:]) > 1.0


def test_step_mode_trains_sac_through_the_run_loop(tmp_path):
    from tests.fakes import scalar_tags

    # Pendulum's 200-step episodes: SAC writes its logs every 4 episodes
    config = RunConfig(algo="sac", env_id="Pendulum-v1", total_steps=800, out_dir=str(tmp_path),
                       bonus="vime", bonus_kwargs={"eta": 0.5, "mode": "step", "update_every": 256, "min_replay": 1,
                                                   "model_steps": 5},
                       hyperparams={"learning_starts": 32, "batch_size": 16, "buffer_size": 2000, "train_freq": 4,
                                    "policy_kwargs": {"net_arch": [16]}},
                       eval_freq=0, eval_episodes=1, checkpoint_freq=400, progress_bar=False)
    result = train(config)
    state = torch.load(result.run_dir / "vime.pt", weights_only=True)
    assert state["windows"] == 3 and state["pool"]["obs"].shape == (768, 3) and len(state["medians"]) == 3
    assert {"vime/info_gain_mean", "vime/bonus_mean", "vime/bnn_elbo",
            "rollout/ep_intrinsic_mean"} <= scalar_tags(result.run_dir / "tb")
    # SAC's replay buffer (saved with the checkpoint, raw rewards as SB3 keeps them behind VecNormalize) holds
    # Pendulum's reward plus the bonus: recompute the env's reward from the stored (s, a) and compare
    with np.load(RunDir(result.run_dir).checkpoint_files / "replay_buffer.npz", allow_pickle=False) as replay:
        assert int(replay["pos"]) == 800
        obs, actions, stored = replay["observations"][:, 0], replay["actions"][:, 0, 0], replay["rewards"][:, 0]
    theta, theta_dot, torque = np.arctan2(obs[:, 1], obs[:, 0]), obs[:, 2], 2.0 * actions
    env_reward = -(theta**2 + 0.1 * theta_dot**2 + 0.001 * torque**2)
    bonus = stored - env_reward
    np.testing.assert_allclose(bonus[:256], 0.0, atol=1e-3)  # the first window: nothing paid
    assert np.all(bonus[256:] > -1e-3) and np.median(bonus[256:]) > 0.01
    config.total_steps = 1024
    resumed = train(config, resume=True)
    assert torch.load(resumed.run_dir / "vime.pt", weights_only=True)["windows"] == 4
    with np.load(RunDir(resumed.run_dir).checkpoint_files / "replay_buffer.npz", allow_pickle=False) as replay:
        assert int(replay["pos"]) == 1024  # the resumed agent went on filling the buffer it had


def test_state_round_trip(tmp_path):
    _, _, vime = _first_rollout(eta=0.5)
    vime.save_state(tmp_path)
    other = VIME(line_venv(n=2, horizon=20), min_replay=1)
    other.load_state(tmp_path)
    for (name, a), (_, b) in zip(vime.bnn.state_dict().items(), other.bnn.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert other.pool.size == vime.pool.size == 64
    assert list(other.medians) == list(vime.medians)
    (tmp_path / "vime.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot load VIME state"):
        other.load_state(tmp_path)


@pytest.mark.parametrize("algo", ["ppo", "trpo", "a2c"])
def test_run_loop_attaches_vime_and_resumes_it(tmp_path, algo):
    hyperparams = {"n_steps": 64, "policy_kwargs": {"net_arch": [8]}}
    if algo != "a2c":
        hyperparams["batch_size"] = 64
    config = RunConfig(algo=algo, env_id="rlgen/SparseMountainCar-v0", total_steps=128, n_envs=2,
                       out_dir=str(tmp_path), bonus="vime", bonus_kwargs={"eta": 0.1, "min_replay": 1,
                                                                             "model_steps": 5, "update_every": 128},
                       hyperparams=hyperparams, eval_freq=0, eval_episodes=1, checkpoint_freq=128,
                       progress_bar=False)
    result = train(config)
    state = torch.load(result.run_dir / "vime.pt", weights_only=True)
    assert state["pool"]["obs"].shape == (128, 2)  # 1 rollout x 64 steps x 2 envs of [x, v]
    assert state["pool"]["actions"].shape == (128, 1)
    log = result.run_dir / "vime_log.jsonl"
    # what a crash after the checkpoint leaves: a row past it, and a line cut short
    log.write_text(log.read_text() + json.dumps({"timesteps": 192, "vime/bonus_mean": -1.0}) + '\n{"timest')
    config.total_steps = 256
    resumed = train(config, resume=True)
    state = torch.load(resumed.run_dir / "vime.pt", weights_only=True)
    assert state["pool"]["obs"].shape == (256, 2)  # the pool carried over and grew
    assert len(state["medians"]) == 1  # the second window's: the untrained BNN's first is not kept
    # the run's own log of VIME's values, one row per rollout; rows past the checkpoint were dropped on resume
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["timesteps"] for row in rows] == [128, 256]
    assert all(row["vime/bonus_mean"] >= 0 and row["bonus_p5"] <= row["bonus_median"] <= row["bonus_max"]
               for row in rows)
    assert rows[0]["bonus_median"] == pytest.approx(0.1, rel=1e-3)  # the first rollout: eta x its own median
    from tests.fakes import scalar_tags

    assert "vime/bonus" in scalar_tags(resumed.run_dir / "tb", kind="histograms")  # every transition's bonus
    assert "vime/bonus_mean" in scalar_tags(resumed.run_dir / "tb")


def test_bad_vime_settings_in_a_config_are_one_line_errors(tmp_path):
    config = RunConfig(env_id="rlgen/SparseMountainCar-v0", bonus="vime", bonus_kwargs={"etaa": 1},
                       out_dir=str(tmp_path), progress_bar=False)
    with pytest.raises(ConfigError, match="bonus_kwargs.etaa is no setting of VIME .*did you mean bonus_kwargs.eta"):
        train(config)
    with pytest.raises(ConfigError, match="sac has not: add bonus_kwargs.mode=step"):
        RunConfig(algo="sac", bonus="vime").validated()


def test_sac_with_a_bonus_is_refused_from_the_command_line_unless_in_step_mode(tmp_path, capsys):
    from rlgen.agents.config import build_config
    from tests.fakes import one_line_error

    config = build_config("sac", "Pendulum-v1", bonus="vime", overrides=["bonus_kwargs.mode=step"])
    assert config.bonus == "vime" and config.bonus_kwargs == {"mode": "step"}
    # the same from a config file that the override completes
    path = tmp_path / "sac_vime.yaml"
    path.write_text("algo: sac\nenv_id: Pendulum-v1\nbonus: vime\n")
    assert build_config(config_file=path, overrides=["bonus_kwargs.mode=step"]).bonus_kwargs == {"mode": "step"}
    one_line_error(capsys, ["train", "--algo", "sac", "--env", "Pendulum-v1", "--bonus", "vime", "--out",
                            str(tmp_path)], "add bonus_kwargs.mode=step")


def test_short_rollouts_share_log_rows(tmp_path):
    # A2C's 5-step rollouts would write one row per 10 transitions; rows pool rollouts up to `every` of them
    from rlgen.exploration.rollout_bonus import RolloutBonusCallback

    callback, log = RolloutBonusCallback(wrapper=None), tmp_path / "bonus_log.jsonl"
    callback.set_log(log, every=2048)
    for i in range(1, 601):  # 600 rollouts of 10 transitions, bonus i in rollout i
        callback.num_timesteps = 10 * i
        callback._write_log({"vime/bonus_mean": float(i)}, np.full(10, float(i)))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["timesteps"] for row in rows] == [2050, 4100]  # the third row is still open
    callback.flush_log()
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["timesteps"] for row in rows] == [2050, 4100, 6000]
    assert [row["rollouts"] for row in rows] == [205, 205, 190]
    assert rows[0]["vime/bonus_mean"] == pytest.approx(103.0)  # mean over rollouts 1-205
    assert rows[0]["bonus_median"] == pytest.approx(103.0) and rows[0]["bonus_max"] == 205.0
    assert rows[2]["bonus_p5"] >= 411.0 and rows[2]["bonus_max"] == 600.0  # only its own rollouts' bonuses
    callback.flush_log()  # nothing new: no empty row
    assert len(log.read_text().splitlines()) == 3


def test_a2c_run_with_a_bonus_writes_a_row_per_2048_transitions(tmp_path):
    config = RunConfig(algo="a2c", env_id="rlgen/SparseMountainCar-v0", total_steps=3000, n_envs=2,
                       out_dir=str(tmp_path), bonus="vime",
                       bonus_kwargs={"eta": 0.1, "min_replay": 10**9, "model_steps": 1},
                       hyperparams={"n_steps": 5, "policy_kwargs": {"net_arch": [8]}},
                       eval_freq=0, eval_episodes=1, checkpoint_freq=2500, progress_bar=False)
    result = train(config)
    rows = [json.loads(line) for line in (result.run_dir / "vime_log.jsonl").read_text().splitlines()]
    # a row at 2,050; the checkpoint at 2,500 writes the open row (the log stops where it does); the end
    assert [row["timesteps"] for row in rows] == [2050, 2500, 3000]
    assert sum(row["rollouts"] for row in rows) == 3000 // 10


def test_a_resumed_log_counts_its_rows_from_the_last_one_kept(tmp_path):
    # a step-mode checkpoint (SAC) usually finds no open row: the resumed run's next row must come where the
    # uninterrupted run's does, `every` transitions after the last row kept, not after the checkpoint
    from rlgen.exploration.rollout_bonus import RolloutBonusCallback

    log = tmp_path / "bonus_log.jsonl"
    log.write_text("".join(json.dumps({"timesteps": t, "vime/bonus_mean": 1.0}) + "\n" for t in (2048, 4096, 6144)))
    callback = RolloutBonusCallback(wrapper=None)
    callback.set_log(log, keep_until=5000, every=2048)  # resumed from a checkpoint at 5,000
    assert [json.loads(line)["timesteps"] for line in log.read_text().splitlines()] == [2048, 4096]
    callback.num_timesteps = 6144  # the next window, as in the uninterrupted run
    callback._write_log({"vime/bonus_mean": 2.0}, None)
    assert [json.loads(line)["timesteps"] for line in log.read_text().splitlines()] == [2048, 4096, 6144]


def test_intrinsic_episode_returns_sum_each_episodes_bonus_across_rollouts():
    vime = VIME(line_venv(n=2), seed=0)
    bonus = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    dones = np.array([[False, True], [True, False], [False, False]])
    vime.callback.track_episodes(bonus, dones)
    assert list(vime.callback.episode_intrinsic) == [10.0, 3.0]  # env 1 at t=0, then env 0 at t=1
    # the unfinished episodes carry over: env 0 has 3 so far, env 1 has 50
    vime.callback.track_episodes(np.array([[4.0, 5.0]]), np.array([[True, True]]))
    assert list(vime.callback.episode_intrinsic) == [10.0, 3.0, 7.0, 55.0]


def test_a_frozen_scale_lets_the_bonus_fall_as_the_gains_do():
    running = VIME(line_venv(n=1), median_window=3)
    frozen = VIME(line_venv(n=1), median_window=3, freeze_scale_at=4096)
    # gains falling tenfold per rollout of 2,048 (a BNN learning the dynamics): the running median follows them
    # down, so the normalised bonus keeps its size; the scale frozen at 4,096 transitions lets it fall
    for k in range(6):
        running.recorder.steps = frozen.recorder.steps = 2048 * k  # the transitions seen before this rollout
        gains = np.full(2048, 10.0 ** -k)
        late_running, late_frozen = running.normalise(gains), frozen.normalise(gains)
    assert late_running.mean() > 100 * late_frozen.mean()
    np.testing.assert_allclose(late_frozen, 1e-5 / np.mean([1.0, 0.1]))  # the two windows closed by then
    assert list(frozen.medians) == [1.0, 0.1] and frozen.scale_frozen
    np.testing.assert_allclose(frozen.normalise(gains, record=False), late_frozen)
    with pytest.raises(ValueError, match="VIME freeze_scale_at must be a positive number of transitions or None"):
        VIME(line_venv(), freeze_scale_at=0.5)


def test_the_gains_of_the_untrained_bnn_never_set_the_scale_of_later_windows():
    # the first window's gains come from a BNN that has not trained, on unstandardised inputs: hundreds of times
    # the trained BNN's. Kept among the medians they divided the next median_window - 1 windows' bonuses down to
    # a few percent of eta; VIME's original keeps none of its first iteration's gains
    vime = VIME(line_venv(n=2, horizon=20), eta=0.5, min_replay=1, model_steps=5, update_every=64, seed=0)
    vime.venv.seed(0)
    vime.reset()
    rng = np.random.default_rng(0)
    for window in range(3):
        for _ in range(32):
            vime.step(rng.uniform(-1, 1, (2, 1)).astype(np.float32))
        inputs, targets, _ = vime.take_rollout()
        flat_in, flat_out = inputs.reshape(64, -1), targets.reshape(64, -1)
        assert (vime.stats is None) == (window == 0)  # the BNN trains at the first window's end
        bonus, _ = vime.compute_bonus(flat_in, flat_out)
        assert len(vime.medians) == window  # the untrained window's median was not kept
        if window < 2:  # a window alone: its gains over their own median, not over the untrained window's
            assert np.median(bonus) == pytest.approx(0.5)
        vime.rollout_learnt(flat_in, flat_out)

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rlgen.agents import ConfigError, RunConfig, collect_demos, evaluate, train
from rlgen.imitation import (
    GAIL,
    AppendCode,
    DemoError,
    InfoGAIL,
    Trajectories,
    load_demos,
    mix_demos,
    save_demos,
)
from rlgen.imitation import collect_demos as collect_from_policy
from rlgen.imitation.bc import clone_demos
from rlgen.imitation.infogail import random_codes
from tests.fakes import LineEnv, line_venv, scalar_tags
from tests.fakes import one_line_error as _one_line_error
from tests.test_imitation import _Capture

LINE_ID = "rlgen-test/TwoWayLine-v0"
HORIZON = 10
SPEED = 0.8

if LINE_ID not in gym.registry:
    gym.register(LINE_ID, entry_point=LineEnv, kwargs={"horizon": HORIZON})


def _expert(sign):
    return lambda obs: np.array([sign * SPEED], dtype=np.float32)


def _two_way_demos(n=10):
    """Ten episodes of an expert going right and ten of one going left, mixed without labels."""
    right = collect_from_policy(_expert(1.0), LineEnv(horizon=HORIZON), n, seed=0)
    left = collect_from_policy(_expert(-1.0), LineEnv(horizon=HORIZON), n, seed=100)
    return mix_demos(right, left)


def _venv(n=4):
    return DummyVecEnv([lambda: Monitor(LineEnv(horizon=HORIZON)) for _ in range(n)])


def _code_of(obs, n_modes):
    return np.asarray(obs)[:, -n_modes:].argmax(axis=1)


# -- the code in the observation -----------------------------------------------------------------------
def test_the_code_is_one_hot_in_the_observation_held_for_an_episode_and_redrawn_at_its_end():
    info = InfoGAIL(line_venv(n=2, horizon=3), _two_way_demos(2), n_modes=3, disc_transitions=100)
    assert info.observation_space.shape == (2 + 3,)
    np.testing.assert_array_equal(info.observation_space.low[2:], 0.0)
    np.testing.assert_array_equal(info.observation_space.high[2:], 1.0)
    obs = info.reset()
    assert obs.shape == (2, 5)
    episode_codes = {0: [], 1: []}
    current = _code_of(obs, 3)
    for _ in range(60):
        np.testing.assert_array_equal(obs[:, 2:].sum(axis=1), 1.0)  # one-hot
        np.testing.assert_array_equal(current, info.current_codes)
        obs, _, dones, infos = info.step(np.zeros((2, 1), dtype=np.float32))
        for i in range(2):
            assert infos[i]["code"] == current[i]  # the code the step was taken under
            if dones[i]:
                terminal = infos[i]["terminal_observation"]
                assert terminal.shape == (5,) and terminal[0] > 99  # the true final observation ...
                assert terminal[2:].argmax() == current[i]  # ... with its episode's code
                episode_codes[i].append(current[i])
            else:  # within an episode the code stays
                assert _code_of(obs, 3)[i] == current[i]
        current = _code_of(obs, 3)
    for i in range(2):
        assert len(episode_codes[i]) == 20
        assert set(episode_codes[i]) == {0, 1, 2}  # redrawn at episode ends
    # the discriminator and its buffer see raw observations, without the code
    assert info.buffer.contents()[0].shape[1] == 2


@pytest.mark.parametrize("wrap", ["infogail", "append_code"])
def test_an_episode_ending_redraws_its_own_envs_code_only(wrap):
    """Envs whose episodes end at different steps (horizons 2 and 5): the end of one env's episode draws a new
    code for that env alone; the other keeps its code to the end of its own episode."""
    venv = DummyVecEnv([lambda: Monitor(LineEnv(horizon=2)), lambda: Monitor(LineEnv(horizon=5))])
    env = (InfoGAIL(venv, _two_way_demos(2), n_modes=4, disc_transitions=1000, seed=1) if wrap == "infogail"
           else AppendCode(venv, 4, seed=1))
    obs = env.reset()
    codes, episode_codes, redrawn = _code_of(obs, 4), {0: [], 1: []}, 0
    for _ in range(40):
        obs, _, dones, _ = env.step(np.zeros((2, 1), dtype=np.float32))
        new = _code_of(obs, 4)
        for i in range(2):
            if dones[i]:
                episode_codes[i].append(codes[i])
                redrawn += int(new[i] != codes[i])
            else:
                assert new[i] == codes[i], f"env {i}'s code changed inside its episode"
        codes = new
    assert len(episode_codes[0]) == 20 and len(episode_codes[1]) == 8 and redrawn > 10
    assert set(episode_codes[0]) == set(episode_codes[1]) == {0, 1, 2, 3}


def test_fix_code_holds_the_code_and_append_code_does_the_same_for_evaluation():
    info = InfoGAIL(line_venv(n=2, horizon=3), _two_way_demos(2), n_modes=2, disc_transitions=100)
    info.fix_code(1)
    info.reset()
    for _ in range(9):
        obs, _, _, infos = info.step(np.zeros((2, 1), dtype=np.float32))
        assert [i["code"] for i in infos] == [1, 1] and np.all(_code_of(obs, 2) == 1)
    info.fix_code([0, 1])
    assert info.current_codes.tolist() == [0, 1]
    info.fix_code(None)
    info.reset()
    seen = set()
    for _ in range(30):
        obs, _, _, _ = info.step(np.zeros((2, 1), dtype=np.float32))
        seen |= set(_code_of(obs, 2).tolist())
    assert seen == {0, 1}
    for bad in (2, -1, [0, 1, 1], 0.5):
        with pytest.raises(ValueError, match="code"):
            info.fix_code(bad)

    env = AppendCode(DummyVecEnv([lambda: LineEnv(horizon=3)]), 2, code=1)
    obs = env.reset()
    assert env.observation_space.shape == (4,) and obs.tolist()[0][2:] == [0.0, 1.0]
    codes_a, codes_b = [], []
    for codes in (codes_a, codes_b):  # seeded alike: the same codes
        env.fix_code(None)
        env.seed(5)
        obs = env.reset()
        for _ in range(30):
            codes.append(int(_code_of(obs, 2)[0]))
            obs, _, _, _ = env.step(np.zeros((1, 1), dtype=np.float32))
    assert codes_a == codes_b and set(codes_a) == {0, 1}


# -- the information reward and the posterior ----------------------------------------------------------
def test_the_reward_is_the_gail_reward_plus_lambda_log_q_of_the_episode_code():
    info = InfoGAIL(_venv(2), _two_way_demos(3), n_modes=2, lambda_info=0.5, disc_transitions=8, seed=3)
    obs = info.reset()
    rng = np.random.default_rng(0)
    checked_update_step = False
    for _ in range(12):
        raw, codes = obs[:, :2], _code_of(obs, 2)
        acts = rng.uniform(-1, 1, (2, 1)).astype(np.float32)
        x = torch.from_numpy(np.concatenate([raw, acts], axis=1))
        with torch.no_grad():
            log_q = torch.log_softmax(info.posterior.logits(x), dim=1)[torch.arange(2), torch.from_numpy(codes)]
        np.testing.assert_allclose(info.info_reward(raw, acts, codes), 0.5 * log_q.numpy(), rtol=1e-5)
        gail_reward = info.discriminator.reward(raw, acts)
        updates = info.n_q_updates
        obs, rewards, _, infos = info.step(acts)
        # from the models in force before the step, also at a step that updates them
        np.testing.assert_allclose(rewards, gail_reward + 0.5 * log_q.numpy(), rtol=1e-5, atol=1e-6)
        assert [i["env_reward"] for i in infos] == [0.0, 0.0]
        checked_update_step |= info.n_q_updates > updates
    assert checked_update_step and info.n_q_updates == 3 == info.n_updates
    assert np.all(info.log_posterior(raw, acts, codes) < 0)


def _drive(info, policy, steps):
    obs = info.reset()
    for _ in range(steps):
        obs, _, _, _ = info.step(policy(obs))
    return info.take_info_reward_mean()


def test_the_posterior_reads_inputs_standardised_with_the_experts_statistics():
    """Q sees [s, a] standardised (and clipped) with the mean and standard deviation of the expert's pairs, as
    the discriminator does: on a task whose observations are far from unit scale it would otherwise read raw
    magnitudes."""
    demos = _two_way_demos(3)
    info = InfoGAIL(_venv(2), demos, n_modes=2, seed=0)
    obs, acts, _, _ = demos.transitions()
    rows = np.concatenate([obs, acts], axis=1).astype(np.float64)
    np.testing.assert_allclose(info.posterior.in_mean.numpy(), rows.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info.posterior.in_std.numpy(), np.sqrt(rows.var(axis=0) + 1e-8), rtol=1e-4)
    raw = (obs[:5] * 50.0).astype(np.float32)  # beyond the clip: standardised rows are clipped to +-10
    x = np.clip((np.concatenate([raw, acts[:5]], axis=1) - rows.mean(axis=0)) / np.sqrt(rows.var(axis=0) + 1e-8),
                -10, 10).astype(np.float32)
    with torch.no_grad():
        expected = torch.log_softmax(info.posterior.net(torch.from_numpy(x)), dim=1)[:, 1].numpy()
    codes = np.ones(5, dtype=np.int64)
    np.testing.assert_allclose(info.log_posterior(raw, acts[:5], codes), expected, rtol=1e-4, atol=1e-5)  # reward
    features = torch.from_numpy(np.concatenate([raw, acts[:5]], axis=1))  # and the torch path Q trains on
    np.testing.assert_allclose(info.posterior.log_prob(features, torch.from_numpy(codes)).numpy(), expected,
                               rtol=1e-4, atol=1e-5)


def test_the_posterior_reads_the_code_from_actions_that_depend_on_it_and_only_then():
    """Q is trained on the policy's own (s, a, c): a scripted policy that goes right under c = 1 and left
    under c = 0 lets it recover the codes (and the information reward rises towards 0), one that ignores the
    code leaves it at chance (reward ~ -ln 2). Codes stored against the wrong transitions would fail both."""
    rng = np.random.default_rng(0)

    def follows(obs):
        return (np.where(_code_of(obs, 2) == 1, SPEED, -SPEED) + 0.2 * rng.normal(size=len(obs)))[:, None]

    def ignores(obs):
        return rng.uniform(-1, 1, (len(obs), 1))

    following = InfoGAIL(_venv(4), _two_way_demos(3), n_modes=2, disc_transitions=256, seed=0)
    _drive(following, follows, 64 * 6)
    assert following.last_q_stats["accuracy"] > 0.95  # measured on a batch Q had not trained on
    assert _drive(following, follows, 64) > -0.3  # chance: -ln 2 = -0.69
    ignoring = InfoGAIL(_venv(4), _two_way_demos(3), n_modes=2, disc_transitions=256, seed=0)
    _drive(ignoring, ignores, 64 * 6)
    assert ignoring.last_q_stats["accuracy"] < 0.65
    assert _drive(ignoring, ignores, 64) == pytest.approx(-np.log(2), abs=0.1)


def _final_x(model, code, episodes=5):
    env = AppendCode(DummyVecEnv([lambda: LineEnv(horizon=HORIZON)]), 2, code=code)
    finals = []
    for episode in range(episodes):
        env.seed(episode)
        obs = env.reset()
        for _ in range(HORIZON):
            obs, _, _, infos = env.step(model.predict(obs, deterministic=True)[0])
        finals.append(infos[0]["terminal_observation"][0] - 100.0)
    return float(np.mean(finals))


def _own_accuracy(info, model, steps=50):
    """Q's accuracy on the learner's own (s, a, c): stochastic actions, codes drawn per episode."""
    env = AppendCode(DummyVecEnv([lambda: LineEnv(horizon=HORIZON) for _ in range(4)]), 2, seed=7)
    obs, hits, total = env.reset(), 0, 0
    for _ in range(steps):
        acts = np.clip(model.predict(obs, deterministic=False)[0], -1, 1)
        probs = info.posterior_probabilities(obs[:, :2], acts)
        hits += int((probs.argmax(axis=1) == _code_of(obs, 2)).sum())
        total += len(obs)
        obs, _, _, _ = env.step(acts)
    return hits / total


@pytest.mark.parametrize("seed", [0, 2])
def test_infogail_separates_two_unlabelled_behaviours_into_two_codes(seed):
    """PPO on InfoGAIL's reward (6k steps, ~2 s), demos mixing an expert going right and one going left:
    fixing c = 0 and c = 1 gives policies that go to opposite ends, and Q reads the code back from the
    learner's own (s, a). Measured here: 8 of 8 seeds separate; with lambda_info = 0 (GAIL given the
    code, no information reward) 1 of 8 do."""
    torch.manual_seed(seed)
    info = InfoGAIL(_venv(4), _two_way_demos(), n_modes=2, disc_transitions=512, seed=seed)
    model = PPO("MlpPolicy", VecNormalize(info, norm_obs=False, norm_reward=True), n_steps=128, batch_size=128,
                n_epochs=10, learning_rate=1e-3, policy_kwargs={"net_arch": [32], "log_std_init": -1.0},
                seed=seed, device="cpu")
    model.learn(6144)
    ends = [_final_x(model, code) for code in (0, 1)]
    assert ends[0] * ends[1] < 0 and min(abs(e) for e in ends) > 0.3, ends  # the experts end at +-0.8
    assert _own_accuracy(info, model) > 0.9


def test_tensorboard_gets_infogail_keys_beside_gail_keys():
    info = InfoGAIL(_venv(2), _two_way_demos(2), n_modes=2, disc_transitions=64)
    model = PPO("MlpPolicy", info, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [8]},
                seed=0, device="cpu")
    capture = _Capture()
    model.set_logger(Logger(folder=None, output_formats=[capture]))
    model.learn(192, callback=info.callback)
    keys = set().union(*capture.rows)
    assert {"gail/disc_loss", "gail/reward_mean", "infogail/q_loss", "infogail/q_accuracy",
            "infogail/info_reward_mean", "infogail/mi_lower_bound"} <= keys
    assert max(row.get("infogail/info_reward_mean", -np.inf) for row in capture.rows) < 0  # log Q < 0


# -- saving and bad input ------------------------------------------------------------------------------
def test_state_round_trip_keeps_q_its_optimiser_the_codes_and_their_draws(tmp_path):
    demos = _two_way_demos(2)
    info = InfoGAIL(line_venv(n=2, horizon=3), demos, n_modes=2, disc_transitions=4)
    info.reset()
    for _ in range(5):
        info.step(np.full((2, 1), -0.3, dtype=np.float32))
    info.save_state(tmp_path)
    assert (tmp_path / "infogail.pt").is_file()
    other = InfoGAIL(line_venv(n=2, horizon=3), demos, n_modes=2, disc_transitions=4, seed=9)
    other.load_state(tmp_path)
    for (name, a), (_, b) in zip(info.posterior.state_dict().items(), other.posterior.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    for name in ("exp_avg", "exp_avg_sq"):
        for a, b in zip(info.posterior.optimizer.state_dict()["state"].values(),
                        other.posterior.optimizer.state_dict()["state"].values(), strict=True):
            assert torch.equal(a[name], b[name])
    assert (other.n_q_updates, other.n_updates, other.num_transitions) == (2, 2, 10)
    np.testing.assert_array_equal(other.buffer_codes, info.buffer_codes)
    obs, acts, _ = info.buffer.contents()
    codes = info.buffer_codes[:len(obs)]
    np.testing.assert_array_equal(info.log_posterior(obs, acts, codes), other.log_posterior(obs, acts, codes))
    info.codes.draw()
    other.codes.draw()
    np.testing.assert_array_equal(info.current_codes, other.current_codes)  # the draws continue alike

    with pytest.raises(ValueError, match="state has 2 modes, this wrapper has 3"):
        InfoGAIL(line_venv(n=2, horizon=3), demos, n_modes=3, disc_transitions=4).load_state(tmp_path)
    gail = GAIL(line_venv(n=2, horizon=3), demos, disc_transitions=4)
    gail.save_state(tmp_path)
    (tmp_path / "infogail.pt").write_bytes((tmp_path / "gail.pt").read_bytes())
    with pytest.raises(ValueError, match="no InfoGAIL posterior"):
        other.load_state(tmp_path)


def test_the_codes_follow_their_transitions_through_the_buffer_growing_and_a_saved_state(tmp_path):
    """One discriminator step per 8 transitions, rollouts of 12, 12, 40 and 40 transitions: the buffer grows
    from 8 rows to 64 to hold the rollouts (once while it had wrapped round), and each transition keeps its
    code (as stamped in its info) through the growth, the rounds, and a state saved from the wrapped buffer and
    loaded into a wrapper with a larger one."""
    demos = _two_way_demos(2)
    info = InfoGAIL(line_venv(n=2, horizon=3), demos, n_modes=3, disc_transitions=8, seed=0)
    info.rounds_at_rollout_end = True
    info.reset()
    rng, actions, codes = np.random.default_rng(0), [], []

    def held(wrapper):
        order = wrapper.buffer.order()
        return wrapper.buffer.actions[order, 0], wrapper.buffer_codes[order]

    for steps, disc_steps in ((6, 1), (6, 2), (20, 5), (20, 5)):
        for _ in range(steps):
            acts = rng.uniform(-1, 1, (2, 1)).astype(np.float32)
            _, _, _, infos = info.step(acts)
            actions.append(acts[:, 0])
            codes.append([i["code"] for i in infos])
        size = info.buffer.size
        for kept, recorded in zip(held(info), (actions, codes), strict=True):
            np.testing.assert_array_equal(kept, np.concatenate(recorded)[-size:])
        before = info.n_disc_steps
        info.end_rollout()
        assert info.n_disc_steps - before == disc_steps
    assert (info.buffer.capacity, info.buffer.cursor, info.n_updates, info.n_q_updates) == (64, 16, 4, 4)
    info.save_state(tmp_path)
    other = InfoGAIL(line_venv(n=2, horizon=3), demos, n_modes=3, disc_transitions=128, seed=4)
    other.load_state(tmp_path)
    for kept, recorded in zip(held(other), (actions, codes), strict=True):
        np.testing.assert_array_equal(kept, np.concatenate(recorded)[-64:])


def test_bad_settings_get_one_line_errors():
    demos = _two_way_demos(2)
    for bad in (1, 0, True, 2.5):
        with pytest.raises(ValueError, match="n_modes must be an integer >= 2") as error:
            InfoGAIL(line_venv(), demos, n_modes=bad)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="lambda_info must be"):
        InfoGAIL(line_venv(), demos, n_modes=2, lambda_info=-1.0)
    with pytest.raises(ValueError, match="q_updates must be"):
        InfoGAIL(line_venv(), demos, n_modes=2, q_updates=0)
    pendulum = collect_from_policy(lambda obs: np.zeros(1, dtype=np.float32), "Pendulum-v1", 1)
    venv = DummyVecEnv([lambda: gym.make("MountainCarContinuous-v0")])
    with pytest.raises(DemoError, match="recorded on Pendulum-v1 .* not on MountainCarContinuous-v0") as error:
        InfoGAIL(venv, pendulum, n_modes=2)
    assert "\n" not in str(error.value)


def test_mix_demos_keeps_the_schema_and_every_episode_in_a_seeded_order(tmp_path):
    right = collect_from_policy(_expert(1.0), LINE_ID, 3, seed=0)
    left = collect_from_policy(_expert(-1.0), LINE_ID, 4, seed=10)
    mixed = mix_demos(right, left, seed=1)
    assert isinstance(mixed, Trajectories) and len(mixed) == 7 and mixed.env_id == LINE_ID
    save_demos(tmp_path / "mixed.npz", mixed)
    loaded = load_demos(tmp_path / "mixed.npz", env_id=LINE_ID)
    assert loaded.fingerprint() == mixed.fingerprint()
    signs = [float(np.sign(traj.acts[0, 0])) for traj in loaded]
    assert sorted(signs) == [-1.0] * 4 + [1.0] * 3 and signs != sorted(signs)  # shuffled: an unlabelled mix
    assert mix_demos(right, left, seed=1).fingerprint() == mixed.fingerprint()
    assert [t.acts[0, 0] for t in mix_demos(right, left, shuffle=False)] == [SPEED] * 3 + [-SPEED] * 4
    with pytest.raises(DemoError, match="different envs: Pendulum-v1, " + LINE_ID):
        mix_demos(right, collect_from_policy(lambda obs: np.zeros(1, dtype=np.float32), "Pendulum-v1", 1))
    other_shape = Trajectories.from_episodes([traj for traj in collect_from_policy(
        lambda obs: np.zeros(1, dtype=np.float32), gym.make("Pendulum-v1"), 1)], env_id="")
    with pytest.raises(DemoError, match="part 1 has observations"):
        mix_demos(right, other_shape)


# -- through rlgen.agents and the command line ---------------------------------------------------------
def _demo_file(tmp_path):
    path = tmp_path / "two_way.npz"
    if not path.exists():
        right = collect_from_policy(_expert(1.0), LINE_ID, 5, seed=0)
        left = collect_from_policy(_expert(-1.0), LINE_ID, 5, seed=10)
        save_demos(path, mix_demos(right, left))
    return path


def _config(tmp_path, **fields):
    base = dict(algo="ppo", env_id=LINE_ID, total_steps=512, n_envs=2, out_dir=str(tmp_path / "runs"),
                imitation="infogail", demos=str(_demo_file(tmp_path)),
                imitation_kwargs={"n_modes": 2, "disc_transitions": 256},
                hyperparams={"n_steps": 128, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [8]}},
                eval_freq=256, eval_episodes=2, checkpoint_freq=256, progress_bar=False)
    base.update(fields)
    return RunConfig(**base)


def test_run_config_infogail_trains_logs_resumes_evaluates_and_collects(tmp_path):

    config = _config(tmp_path)
    result = train(config)
    assert result.run_dir.name == "ppo-infogail_rlgen-test-TwoWayLine-v0_s0"
    state = torch.load(result.run_dir / "infogail.pt", weights_only=True)
    assert state["n_updates"] == 2 == state["n_q_updates"] and state["n_modes"] == 2
    tags = scalar_tags(result.run_dir / "tb")
    assert {"gail/disc_loss", "infogail/q_loss", "infogail/q_accuracy", "infogail/info_reward_mean",
            "eval/mean_reward"} <= tags
    config.total_steps = 1024
    resumed = train(config, resume=True)
    assert torch.load(resumed.run_dir / "infogail.pt", weights_only=True)["n_q_updates"] == 4
    assert len(evaluate(resumed.run_dir, episodes=3)) == 3
    assert len(evaluate(resumed.run_dir, episodes=2, code=1)) == 2
    with pytest.raises(ConfigError, match=r"codes must lie in \[0, 2\)"):
        evaluate(resumed.run_dir, episodes=1, code=2)
    trajs = collect_demos(resumed.run_dir, 2, code=0)
    assert trajs.obs_shape == (2,) and trajs.env_id == LINE_ID  # raw observations, no code
    with pytest.raises(ConfigError, match="needs a latent code"):
        collect_demos(resumed.run_dir, 1)


def test_run_config_refuses_infogail_without_modes(tmp_path):
    with pytest.raises(ConfigError, match="needs imitation_kwargs.n_modes"):
        _config(tmp_path, imitation_kwargs={}).validated()
    with pytest.raises(ConfigError, match="needs imitation_kwargs.n_modes"):
        _config(tmp_path, imitation_kwargs={"n_modes": 1}).validated()
    with pytest.raises(ConfigError, match="imitation_kwargs.lamda is no setting of InfoGAIL .*did you mean "
                                          "imitation_kwargs.lambda_info"):
        train(_config(tmp_path, imitation_kwargs={"n_modes": 2, "lamda": 1}))


def test_cli_imitate_infogail_eval_with_a_code_and_demos_mix(capsys, tmp_path):
    from rlgen.cli import main

    right, left = tmp_path / "right.npz", tmp_path / "left.npz"
    save_demos(right, collect_from_policy(_expert(1.0), LINE_ID, 3))
    save_demos(left, collect_from_policy(_expert(-1.0), LINE_ID, 3, seed=5))
    mixed = tmp_path / "mixed.npz"
    assert main(["demos", "mix", str(right), str(left), "--out", str(mixed)]) == 0
    assert "episodes:      6" in capsys.readouterr().out
    _one_line_error(capsys, ["demos", "mix", str(right), "--out", str(mixed)], "exists")

    out = tmp_path / "runs"
    common = ["--demos", str(mixed), "--out", str(out), "--no-progress", "-p", "n_steps=128", "-p", "batch_size=64",
              "-p", "n_epochs=1", "-p", "eval_freq=0", "-p", "eval_episodes=2", "-p", "policy_kwargs.net_arch=[8]"]
    assert main(["imitate", "--method", "infogail", "--n-modes", "2", "--steps", "256", *common]) == 0
    run_dir = out / f"ppo-infogail_{LINE_ID.replace('/', '-')}_s0"
    assert (run_dir / "infogail.pt").is_file()
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "2", "--code", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2
    _one_line_error(capsys, ["eval", str(run_dir), "--code", "3"], "codes must lie in [0, 2)")
    _one_line_error(capsys, ["demos", "collect", str(run_dir), "-n", "1", "--out", str(tmp_path / "c.npz")],
                    "needs a latent code")
    assert main(["demos", "collect", str(run_dir), "-n", "1", "--code", "1", "--out", str(tmp_path / "c.npz"),
                 "--no-progress"]) == 0
    _one_line_error(capsys, ["imitate", "--method", "infogail", "--run-name", "x", *common],
                    "needs imitation_kwargs.n_modes")
    _one_line_error(capsys, ["imitate", "--method", "infogail", "--n-modes", "1", "--run-name", "y", *common],
                    "n_modes")
    _one_line_error(capsys, ["imitate", "--n-modes", "2", "--run-name", "z", *common],
                    "--n-modes is for --method infogail")


def test_demos_mix_has_help(capsys):
    from rlgen.cli import main

    with pytest.raises(SystemExit) as info:
        main(["demos", "mix", "--help"])
    assert info.value.code == 0 and "usage: rlgen demos mix" in capsys.readouterr().out


def test_random_codes_are_one_hot_uniform_and_seeded():
    rows = np.arange(6000, dtype=np.float32).reshape(3000, 2)
    coded = random_codes(3, seed=1)(rows)
    assert coded.shape == (3000, 5) and coded.dtype == np.float32
    np.testing.assert_array_equal(coded[:, :2], rows)
    np.testing.assert_array_equal(coded[:, 2:].sum(axis=1), 1.0)
    assert np.allclose(coded[:, 2:].mean(axis=0), 1 / 3, atol=0.03)  # each code about a third of the rows
    assert np.array_equal(random_codes(3, seed=1)(rows), coded)
    assert not np.array_equal(random_codes(3, seed=2)(rows), coded)


def test_bc_under_random_codes_clones_the_demos_whatever_the_code():
    """The original's pre-training: every demo (s, a) under a random code. The clone acts as the expert did,
    under each code alike (it has learnt to ignore the code, which the information term must then undo)."""
    demos = collect_from_policy(_expert(1.0), LineEnv(horizon=HORIZON), 10, seed=0)
    model = PPO("MlpPolicy", AppendCode(line_venv(n=1, horizon=HORIZON), n_modes=2), seed=0, device="cpu",
                policy_kwargs={"net_arch": [16]})
    stats = clone_demos(model.policy, demos, augment=random_codes(2, seed=0), loss="mse", gradient_steps=800,
                        learning_rate=3e-3)
    assert stats["pairs"] == 10 * HORIZON
    obs = demos.transitions()[0]
    eye = np.eye(2, dtype=np.float32)
    actions = [model.policy.predict(np.hstack([obs, np.repeat(eye[[c]], len(obs), axis=0)]), deterministic=True)[0]
               for c in (0, 1)]
    for acts in actions:
        np.testing.assert_allclose(acts, SPEED, atol=0.1)
    assert np.abs(actions[0] - actions[1]).max() < 0.05


def test_infogail_run_behaviour_clones_before_training(tmp_path):
    result = train(_config(tmp_path, bc_pretrain=True, total_steps=256,
                           bc_kwargs={"gradient_steps": 50, "learning_rate": 1e-3}))
    record = json.loads((result.run_dir / "bc.json").read_text())
    assert record["pairs"] == 10 * HORIZON and record["episodes"] == 10

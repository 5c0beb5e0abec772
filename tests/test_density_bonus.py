import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.vec_env import DummyVecEnv

from rlgen.agents import RunConfig, train
from rlgen.exploration import DensityBonus
from rlgen.exploration.density import count_bonus, pseudo_count
from rlgen.generative import BNN, VAE, PixelCNN, PixelRNN
from rlgen.generative.likelihoods import from_levels
from rlgen.generative.updates import per_example_updates
from tests.fakes import (
    GridImageEnv,
    RolloutRecorder,
    SwitchingLineEnv,
    line_venv,
    one_line_error,
    step_until_nan,
)


# -- the shared one-example-update primitive ----------------------------------------------------------
def _same_parameters(model, saved):
    return all(torch.equal(value, saved[name]) for name, value in model.state_dict().items())


@pytest.mark.parametrize("kind", ["pixelcnn", "pixelrnn"])
def test_batched_prediction_gain_equals_the_loop_and_leaves_the_model_as_found(kind):
    torch.manual_seed(0)
    x = from_levels(torch.randint(0, 8, (12, 4)), 8)
    context = torch.randn(12, 3)
    model = (PixelCNN((4,), 8, channels=16, context_dim=3) if kind == "pixelcnn"
             else PixelRNN((4,), 8, hidden=16, n_layers=2, context_dim=3))
    model.loss(x, context=context)["loss"].backward()  # as if an optimiser were between backward() and step()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    saved = model.snapshot()
    batched = model.prediction_gain(x, lr=0.05, context=context)
    loop = model.prediction_gain(x, lr=0.05, context=context, method="loop")
    # the vectorised SGD step is the real one, example by example (PixelRNN: an unrolled LSTM, same weights)
    torch.testing.assert_close(batched, loop, rtol=1e-4, atol=1e-5)
    assert (batched > 0).all()
    assert _same_parameters(model, saved)
    assert all(torch.equal(p.grad, grads[name]) for name, p in model.named_parameters())


def test_prediction_gain_passes_hold_about_24_mb_of_per_example_gradients():
    from torch import nn

    from rlgen.generative.updates import CHUNK_BYTES, MAX_CHUNK, auto_chunk

    assert auto_chunk(nn.Linear(10, 10)) == MAX_CHUNK  # small models: the cap
    big = nn.Linear(1000, 200)  # 200,200 parameters, 0.8 MB per example
    assert auto_chunk(big) == CHUNK_BYTES // (4 * 200_200) == 29
    big.weight.requires_grad_(False)  # only what trains counts
    assert auto_chunk(big) == MAX_CHUNK
    venv = DummyVecEnv([lambda: gym.make("rlgen/SparseAnt-v0")])
    try:
        bonus = DensityBonus(venv, "made", target="transition")
        assert bonus.chunk == auto_chunk(bonus.model) < 32  # SparseAnt's 107-d observation: small passes
    finally:
        venv.close()


def test_per_example_updates_start_each_example_from_the_same_parameters_and_restore_them():
    torch.manual_seed(0)
    model = PixelCNN((3,), 4, channels=8)
    x = from_levels(torch.randint(0, 4, (1, 3)), 4).repeat(5, 1)
    saved = model.snapshot()
    with torch.no_grad():  # callers may hold no_grad; the primitive still takes its steps
        after = per_example_updates(model, 5, objective=lambda i: -model.log_prob(x[i:i + 1]).sum(),
                                    measure=lambda i: model.log_prob(x[i:i + 1]).sum(),
                                    make_optimizer=lambda ps: torch.optim.Adam(ps, lr=0.01), n_steps=3)
    # copies of one example gain alike: nothing carried over from one example to the next
    torch.testing.assert_close(after, after[:1].expand(5))
    assert (after > model.log_prob(x).detach()).all()
    assert _same_parameters(model, saved)


def test_stochastic_models_score_before_and_after_with_the_same_noise():
    torch.manual_seed(0)
    vae = VAE((4,), latent_dim=2, hidden=(8,), likelihood="categorical", n_levels=4, context_dim=2)
    x, context = from_levels(torch.randint(0, 4, (6, 4)), 4), torch.randn(6, 2)
    # a zero step changes nothing, so with common noise the gain of a one-sample ELBO is zero, not noise
    assert vae.prediction_gain(x, lr=0.0, context=context).abs().max() < 1e-5
    assert vae.prediction_gain(x, lr=0.05, context=context).mean() > 0.01


# -- pseudo-counts ------------------------------------------------------------------------------------
def test_pseudo_count_and_bonus_formulas():
    gain = np.array([np.log(2.0), np.log(1.1), 0.0, -0.3])
    np.testing.assert_allclose(pseudo_count(gain)[:2], [1.0, 10.0])
    assert np.isinf(pseudo_count(gain)[2:]).all()
    np.testing.assert_allclose(count_bonus(pseudo_count(gain), 0.5), [0.5 / np.sqrt(1.01), 0.5 / np.sqrt(10.01), 0, 0])


def _states(rng, n, low, high):
    x = rng.uniform(low, high, (n, 1))
    return np.hstack([x, np.ones_like(x)]).astype(np.float32)  # LineEnv's observations: [x, 1]


def test_pseudo_count_grows_and_the_bonus_falls_when_one_state_is_fed_repeatedly():
    torch.manual_seed(0)
    bonus = DensityBonus(line_venv(n=1), "pixelcnn", min_replay=1, model_steps=20, batch_size=32, update_every=256)
    rng = np.random.default_rng(0)
    spread = _states(rng, 256, -1, 1)
    actions = np.zeros((256, 1), np.float32)
    bonus.update_model(np.hstack([spread, actions]), spread)  # the bounds of the discretisation, a little training
    state = spread[:1]
    inputs = np.hstack([state, actions[:1]])
    counts, bonuses = [], []
    for _ in range(6):
        values, logged = bonus.compute_bonus(inputs, state)
        counts.append(pseudo_count(bonus.prediction_gain(inputs, state)[0])[0])
        bonuses.append(values[0])
        bonus.update_model(np.repeat(inputs, 256, 0), np.repeat(state, 256, 0))  # 20 steps, as the first
    assert np.all(np.diff(counts) > 0), counts
    assert np.all(np.diff(bonuses) < 0), bonuses
    assert counts[-1] > 5 * counts[0], counts  # 8.9x here


@pytest.mark.parametrize("model", ["pixelcnn", "pixelrnn", "vae"])
def test_a_novel_state_earns_a_larger_bonus_than_a_familiar_one(model):
    torch.manual_seed(0)
    bonus = DensityBonus(line_venv(n=1), model, min_replay=1, model_steps=800, learning_rate=1e-2, seed=0,
                         update_every=1010)  # 800 steps on the 1,010 visited states
    rng = np.random.default_rng(0)
    # visited: x in [-1, 0] almost always, [0, 1] a few times (so it lies inside the discretisation's bounds)
    visited = np.vstack([_states(rng, 1000, -1, 0), _states(rng, 10, 0, 1)])
    bonus.update_model(np.hstack([visited, np.zeros((len(visited), 1), np.float32)]), visited)
    familiar, novel = _states(rng, 50, -0.9, -0.1), _states(rng, 50, 0.3, 1.0)
    no_actions = np.zeros((50, 1), np.float32)
    familiar_bonus, _ = bonus.compute_bonus(np.hstack([familiar, no_actions]), familiar)
    novel_bonus, _ = bonus.compute_bonus(np.hstack([novel, no_actions]), novel)
    # seeds 0 and 1 gave 1.9 to 2.0 (pixelcnn), 2.7 to 3.1 (pixelrnn), 3.5 to 3.8 (vae); plain SGD steps 1.2 to 1.7
    assert np.median(novel_bonus) > 1.6 * np.median(familiar_bonus), (np.median(novel_bonus), np.median(familiar_bonus))


def _run_through_switch(model, target, **kwargs):
    """Mean bonus per 256-step rollout of random actions, the physics reversing after the third rollout."""
    steps, before = 256, 3
    venv = DummyVecEnv([lambda: SwitchingLineEnv(switch_at=steps * before)])
    bonus = DensityBonus(venv, model, target=target, min_replay=1, seed=0, update_every=steps, **kwargs)
    bonus.reset()
    rng = np.random.default_rng(0)
    means = []
    for _ in range(before + 1):
        for _ in range(steps):
            bonus.step(rng.uniform(-1, 1, (1, 1)).astype(np.float32))
        inputs, targets, _ = bonus.take_rollout()
        inputs, targets = inputs.reshape(steps, -1), targets.reshape(steps, -1)
        values, _ = bonus.compute_bonus(inputs, targets)  # as the callback does: bonus first, then training
        bonus.update_model(inputs, targets)
        means.append(values.mean())
    return means[before] / means[before - 1]


@pytest.mark.parametrize(("model", "kwargs"), [("pixelcnn", {"model_steps": 300}),
                                               ("bnn", {"model_steps": 150, "learning_rate": 0.01})])
def test_the_transition_bonus_rises_when_the_dynamics_change_and_the_state_bonus_does_not(model, kwargs):
    torch.manual_seed(0)
    # seeds 0-3 gave 1.8 to 2.1 (pixelcnn) and 4.5 to 5.3 (bnn); the state bonus 0.98 to 1.01
    assert _run_through_switch(model, "transition", **kwargs) > 1.4
    if model != "bnn":
        # the states visited are distributed alike before and after the switch: no surprise for p(s')
        assert 0.85 < _run_through_switch(model, "state", **kwargs) < 1.15


@pytest.mark.parametrize("model", ["pixelcnn", "pixelrnn"])
def test_image_observations_are_modelled_as_images_between_the_space_bounds(model):
    torch.manual_seed(0)
    bonus = DensityBonus(DummyVecEnv([GridImageEnv]), model, target="transition", min_replay=1,
                         model_steps=5, update_every=32)
    assert bonus.model.input_shape == (1, 4, 4) and bonus.bounds == "space"
    bonus.reset()
    rng = np.random.default_rng(0)
    for _ in range(2):
        for _ in range(32):
            bonus.step(rng.uniform(-1, 1, (1, 2)).astype(np.float32))
        inputs, targets, _ = bonus.take_rollout()
        values, logged = bonus.compute_bonus(inputs.reshape(32, -1), targets.reshape(32, -1))
        bonus.update_model(inputs.reshape(32, -1), targets.reshape(32, -1))
        assert np.all(np.isfinite(values)) and np.all(values >= 0) and logged["density/uncounted_fraction"] == 0
    x, _ = bonus.encode(inputs.reshape(32, -1)[:1], targets.reshape(32, -1)[:1])
    assert sorted(torch.unique(x).tolist()) == [0.0, 1.0]  # pixel values 0 and 255 at the space's bounds


# -- in SB3 and the run loop --------------------------------------------------------------------------


def _learn(bonus, steps=64):
    model = PPO("MlpPolicy", bonus, n_steps=32, batch_size=32, seed=0, policy_kwargs={"net_arch": [8]},
                device="cpu")
    recorder = RolloutRecorder()
    model.learn(steps, callback=CallbackList([bonus.callback, recorder]))
    return model, recorder.seen


def test_callback_adds_the_bonus_to_the_rollout_and_logs_it():
    bonus = DensityBonus(line_venv(n=2, horizon=20), "pixelcnn", beta=0.5, min_replay=1, model_steps=5,
                         update_every=64)  # a window per rollout of 32 steps x 2 envs
    model, seen = _learn(bonus)
    rewards = seen["rewards"]  # LineEnv's own reward is 0: what is there is the bonus
    assert np.all(rewards >= 0) and np.all(rewards <= 5.0 + 1e-6) and rewards.max() > 0
    np.testing.assert_allclose(seen["returns"], seen["advantages"] + seen["values"], rtol=1e-5, atol=1e-6)
    assert seen["logged"]["density/bonus_mean"] == pytest.approx(float(rewards.mean()), rel=1e-4)
    for key in ("density/pseudo_count_mean", "density/model_nll", "density/prediction_gain_mean",
                "density/train_loss", "rollout/ep_intrinsic_mean"):
        assert key in seen["logged"], key
    assert all(info["r"] == 0.0 for info in model.ep_info_buffer)  # SB3's episode returns stay the env's


def test_step_mode_rewards_each_step_with_the_current_model_and_keeps_an_unfinished_window(tmp_path):
    bonus = DensityBonus(line_venv(n=2, horizon=20), "made", beta=0.5, mode="step", update_every=16, min_replay=1,
                         model_steps=5)
    bonus.reset()
    rewards = []
    for step in range(12):
        obs = bonus.recorder.last_obs.copy()
        actions = np.full((2, 1), 0.5 if step % 2 else -0.5, dtype=np.float32)
        _, reward, _, _ = bonus.step(actions)
        rewards.append(reward)
        if bonus.windows and bonus._pending:  # the bonus is what the current model gives the transition
            expected, _ = bonus.compute_bonus(np.hstack([obs, actions]), bonus._pending[-1][2], record=False)
            np.testing.assert_allclose(reward, expected, rtol=1e-5)
    rewards = np.array(rewards)
    np.testing.assert_array_equal(rewards[:8], 0.0)  # LineEnv's reward is 0; the first window earns nothing
    assert np.all(rewards[8:] > 0) and bonus.windows == 1 and bonus.pool.size == 16
    bonus.save_state(tmp_path)  # 4 steps into the second window: they resume with it
    other = DensityBonus(line_venv(n=2, horizon=20), "made", beta=0.5, mode="step", update_every=16)
    other.load_state(tmp_path)
    assert other.windows == 1 and len(other._pending) == 4
    np.testing.assert_array_equal(other._pending[-1][2], bonus._pending[-1][2])


def test_state_round_trip(tmp_path):
    bonus = DensityBonus(line_venv(n=2, horizon=20), "pixelrnn", target="transition", min_replay=1,
                         model_steps=5, update_every=64)
    _learn(bonus)
    bonus.save_state(tmp_path)
    other = DensityBonus(line_venv(n=2, horizon=20), "pixelrnn", target="transition", seed=1)
    other.load_state(tmp_path)
    for (name, a), (_, b) in zip(bonus.model.state_dict().items(), other.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert other.pool.size == bonus.pool.size == 64
    np.testing.assert_array_equal(other.low, bonus.low)
    np.testing.assert_array_equal(other.stats["in_mean"], bonus.stats["in_mean"])
    assert other.num_steps == bonus.num_steps == 32
    assert list(other.callback.episode_intrinsic) == list(bonus.callback.episode_intrinsic)
    inputs, targets = bonus.pool.rows(slice(0, 8))
    np.testing.assert_allclose(other.prediction_gain(inputs, targets)[1], bonus.prediction_gain(inputs, targets)[1],
                               rtol=1e-5)
    with pytest.raises(ValueError, match="state is for a PixelRNN with target 'transition'.*a PixelCNN"):
        DensityBonus(line_venv(n=2), "pixelcnn", target="transition").load_state(tmp_path)
    (tmp_path / "density.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot load DensityBonus state"):
        other.load_state(tmp_path)


def test_run_loop_trains_ppo_with_the_density_bonus_and_resumes_it(tmp_path):
    config = RunConfig(algo="ppo", env_id="rlgen/SparseMountainCar-v0", total_steps=128, n_envs=2,
                       out_dir=str(tmp_path), bonus="density",
                       bonus_kwargs={"model": "vae", "target": "transition", "beta": 0.1, "min_replay": 1,
                                     "model_steps": 5, "update_every": 128},
                       hyperparams={"n_steps": 64, "batch_size": 64, "policy_kwargs": {"net_arch": [8]}},
                       eval_freq=0, eval_episodes=1, checkpoint_freq=128, progress_bar=False)
    result = train(config)
    assert result.run_dir.name == "ppo-density_rlgen-SparseMountainCar-v0_s0"
    state = torch.load(result.run_dir / "density.pt", weights_only=True)
    assert state["model_class"] == "VAE" and state["pool"]["obs"].shape == (128, 2)
    config.total_steps = 256
    resumed = train(config, resume=True)
    state = torch.load(resumed.run_dir / "density.pt", weights_only=True)
    assert state["pool"]["obs"].shape == (256, 2)  # the pool carried over and grew


def test_cli_trains_with_a_chosen_bonus_model(tmp_path, capsys):
    from rlgen.cli import main

    code = main(["train", "--env", "rlgen/SparseMountainCar-v0", "--steps", "64", "--bonus", "density",
                 "--bonus-model", "pixelrnn", "--out", str(tmp_path), "--no-progress", "-p", "n_steps=64",
                 "-p", "batch_size=64", "-p", "eval_freq=0", "-p", "eval_episodes=1",
                 "-p", "bonus_kwargs.model_steps=2", "-p", "bonus_kwargs.min_replay=1"])
    assert code == 0, capsys.readouterr().err
    run_dir = tmp_path / "ppo-density_rlgen-SparseMountainCar-v0_s0"
    assert torch.load(run_dir / "density.pt", weights_only=True)["model_class"] == "PixelRNN"
    assert "model: pixelrnn" in (run_dir / "config.yaml").read_text()


# -- bad input ----------------------------------------------------------------------------------------
def test_bad_input_gets_one_line_errors():
    with pytest.raises(TypeError, match="DensityBonus needs a Box observation space, got Tuple observations"):
        DensityBonus(DummyVecEnv([lambda: gym.make("Blackjack-v1")]))
    with pytest.raises(ValueError, match="unknown density model 'gru'; choose one of: pixelcnn, pixelrnn, vae"):
        DensityBonus(line_venv(), "gru")
    with pytest.raises(ValueError, match="unknown DensityBonus target 'reward'; choose one of: state, transition"):
        DensityBonus(line_venv(), target="reward")
    with pytest.raises(ValueError, match="BNN is a dynamics model"):
        DensityBonus(line_venv(), "bnn")
    with pytest.raises(ValueError, match=r"context_dim=0; target 'transition' needs 3"):
        DensityBonus(line_venv(), PixelCNN((2,), 16), target="transition")
    with pytest.raises(ValueError, match=r"BNN maps 3 -> 1"):
        DensityBonus(line_venv(), BNN(3, 1), target="transition")
    with pytest.raises(TypeError, match="needs an rlgen density model"):
        DensityBonus(line_venv(), torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="bounds='space' needs finite"):
        DensityBonus(line_venv(), bounds="space")
    with pytest.raises(ValueError, match="DensityBonus: non-finite observation at step 3"):
        step_until_nan(DensityBonus(line_venv(n=1, horizon=50, nan_at=3)))


def test_bad_settings_from_the_command_line_are_one_line_errors(tmp_path, capsys):
    base = ["train", "--env", "rlgen/SparseMountainCar-v0", "--out", str(tmp_path), "--no-progress"]
    one_line_error(capsys, [*base, "--bonus", "density", "--bonus-model", "gru"],
                   "density: unknown density model 'gru'; choose one of: pixelcnn, pixelrnn, vae, made, bnn")
    one_line_error(capsys, [*base, "--bonus-model", "vae"], "add --bonus density")
    one_line_error(capsys, [*base, "--bonus", "rnd", "--bonus-model", "vae"], "add --bonus density (bonus is rnd)")
    (tmp_path / "vime.yaml").write_text("bonus: vime\n")  # the bonus from a config file
    one_line_error(capsys, [*base, "--config", str(tmp_path / "vime.yaml"), "--bonus-model", "vae"],
                   "--bonus-model chooses the density bonus's model; add --bonus density")
    one_line_error(capsys, [*base, "--bonus", "density", "-p", "bonus_kwargs.target=reward"],
                   "unknown DensityBonus target 'reward'")


def test_a_stochastic_models_prediction_gains_come_from_the_wrappers_seed():
    # a VAE's gains draw noise: from the wrapper's own stream, not from torch's global one (which they leave alone)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(64, 3)).astype(np.float32)
    targets = rng.normal(size=(64, 2)).astype(np.float32)
    gains = []
    for draws in (0, 1000):
        torch.manual_seed(0)
        bonus = DensityBonus(line_venv(n=1), "vae", min_replay=1, model_steps=5, update_every=64, seed=3)
        torch.randn(draws)  # the caller's own draws in between
        before = torch.get_rng_state()
        bonus.update_model(inputs, targets)
        gains.append(bonus.prediction_gain(inputs, targets)[0])
        assert torch.equal(torch.get_rng_state(), before)
    np.testing.assert_array_equal(gains[0], gains[1])

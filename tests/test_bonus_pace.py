"""A rollout bonus's model learns at a pace set in transitions, whatever the agent's rollout size
(rlgen.exploration.rollout_bonus: windows of ``update_every`` transitions, ``model_steps`` Adam steps per window)."""

from collections import deque

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO

from rlgen.exploration import RND, VIME, DensityBonus
from tests.fakes import line_venv

WINDOW, STEPS = 128, 16


def _bonus(kind, **kwargs):
    settings = {"min_replay": 1, "model_steps": STEPS, "update_every": WINDOW, "seed": 0, **kwargs}
    if kind == "vime":
        return VIME(line_venv(n=2, horizon=20), **settings)
    if kind == "rnd":
        return RND(line_venv(n=2, horizon=20), **settings)
    return DensityBonus(line_venv(n=2, horizon=20), "made", **settings)


def _count_training(bonus):
    """Wrap the bonus's optimiser step and update_model to count Adam steps and trainings."""
    counts = {"adam": 0, "trainings": 0}
    step, update = bonus.optimizer.step, bonus.update_model

    def counted_step(*args, **kwargs):
        counts["adam"] += 1
        return step(*args, **kwargs)

    def counted_update(inputs, targets):
        counts["trainings"] += 1
        return update(inputs, targets)

    bonus.optimizer.step, bonus.update_model = counted_step, counted_update
    return counts


@pytest.mark.parametrize("kind", ["vime", "rnd", "density"])
def test_the_model_learns_per_transition_not_per_rollout(kind):
    # A2C's rollouts of 5 steps x 2 envs and PPO's of 64 x 2: the same transitions, the same Adam steps
    seen = {}
    for name, agent, n_steps in (("a2c", A2C, 5), ("ppo", PPO, 64)):
        bonus = _bonus(kind)
        counts = _count_training(bonus)
        extra = {"batch_size": 64, "n_epochs": 1} if agent is PPO else {}
        model = agent("MlpPolicy", bonus, n_steps=n_steps, seed=0, policy_kwargs={"net_arch": [8]}, device="cpu",
                      **extra)
        model.learn(640, callback=bonus.callback)
        learnt = bonus.pool.size  # the transitions of the windows closed so far
        assert model.num_timesteps - WINDOW < learnt <= model.num_timesteps
        # each training is one window of at least WINDOW transitions (PPO's rollouts are one each, A2C's 13 of 10
        # transitions), and takes STEPS per WINDOW of them
        assert counts["trainings"] == learnt // WINDOW, (name, counts, learnt)
        assert counts["adam"] == learnt * STEPS // WINDOW, (name, counts, learnt)
        seen[name] = counts["adam"] / learnt
    assert seen["a2c"] == pytest.approx(seen["ppo"], rel=0.1)  # the per-rollout pace gave A2C 13x PPO's


def test_a_rollout_as_long_as_several_windows_gets_their_steps_in_one_training():
    bonus = _bonus("rnd")
    counts = _count_training(bonus)
    model = PPO("MlpPolicy", bonus, n_steps=256, batch_size=64, n_epochs=1, seed=0,  # 512 transitions a rollout
                policy_kwargs={"net_arch": [8]}, device="cpu")
    model.learn(1024, callback=bonus.callback)
    assert counts == {"adam": 1024 * STEPS // WINDOW, "trainings": 2}


def test_fractions_of_a_step_carry_over():
    bonus = _bonus("rnd", model_steps=3, update_every=10)
    assert [bonus.steps_for(4) for _ in range(5)] == [1, 1, 1, 1, 2]  # owed so far 1.2, 2.4, 3.6, 4.8, 6.0


def test_vimes_normaliser_closes_a_window_of_gains_once_it_holds_update_every():
    vime = VIME(line_venv(n=1), update_every=20, median_window=2)
    a, b, c, d = (np.full(10, v) for v in (1.0, 3.0, 8.0, 20.0))
    np.testing.assert_allclose(vime.normalise(a), a / 1.0)  # the open window alone: its median
    np.testing.assert_allclose(vime.normalise(b), b / 2.0)  # a and b: median 2, and the window closes
    assert list(vime.medians) == [2.0]
    np.testing.assert_allclose(vime.normalise(c), c / 5.0)  # mean of the closed 2 and the open window's 8
    np.testing.assert_allclose(vime.normalise(d, record=False), d / 2.0)  # the closed windows alone
    np.testing.assert_allclose(vime.normalise(d), d / 8.0)  # c and d: median 14, and it closes
    assert list(vime.medians) == [2.0, 14.0]
    # a rollout of a whole window: the mean of the last median_window rollouts' medians, as before
    np.testing.assert_allclose(vime.normalise(np.full(20, 4.0)), np.full(20, 4.0) / 9.0)
    assert list(vime.medians) == [14.0, 4.0]


@pytest.mark.parametrize("median_window", [1, 2, 3, 4, 10])
def test_vimes_normaliser_on_rollouts_of_a_whole_window_is_the_mean_of_the_last_rollout_medians(median_window):
    # what VIME did before windows (every committed result): each rollout's median into a deque, then its mean
    vime = VIME(line_venv(n=1), median_window=median_window)
    before: deque[float] = deque(maxlen=median_window)
    rng = np.random.default_rng(0)
    for _ in range(15):
        gains = rng.lognormal(0.0, 2.0, 2048)
        before.append(float(np.median(gains)))
        np.testing.assert_array_equal(vime.normalise(gains), gains / float(np.mean(before)))
        np.testing.assert_array_equal(vime.normalise(gains[:100], record=False), gains[:100] / float(np.mean(before)))


def test_model_steps_is_a_whole_number_and_its_old_name_is_not_taken_beside_it():
    with pytest.raises(ValueError, match="RND model_steps must be a whole number >= 0 .*got 0.5"):
        _bonus("rnd", model_steps=0.5)
    with pytest.raises(ValueError, match="VIME got both model_steps and updates_per_rollout"):
        VIME(line_venv(), model_steps=100, updates_per_rollout=50)
    with pytest.warns(DeprecationWarning, match="use model_steps=.*rather than per rollout"):
        assert VIME(line_venv(), updates_per_rollout=50).model_steps == 50


def test_a_config_with_both_names_is_a_config_error():
    from rlgen.agents.config import ConfigError, RunConfig

    with pytest.raises(ConfigError, match="sets both updates_per_rollout and model_steps"):
        RunConfig.from_dict({"env_id": "Pendulum-v1", "bonus": "vime",
                             "bonus_kwargs": {"updates_per_rollout": 5, "model_steps": 6}})
    with pytest.warns(DeprecationWarning):
        config = RunConfig.from_dict({"env_id": "Pendulum-v1", "bonus": "vime", "bonus_kwargs": {"updates_per_rollout": 5}})
    assert config.bonus_kwargs == {"model_steps": 5}


@pytest.mark.parametrize("kind", ["vime", "rnd", "density"])
def test_a_state_saved_inside_a_window_resumes_it(tmp_path, kind):
    def drive(bonus, rollouts, rng):
        for _ in range(rollouts):
            for _ in range(5):
                bonus.step(rng.uniform(-1, 1, (2, 1)).astype(np.float32))
            inputs, targets, _ = bonus.take_rollout()
            flat_in, flat_out = inputs.reshape(10, -1), targets.reshape(10, -1)
            bonus.compute_bonus(flat_in, flat_out)
            bonus.rollout_learnt(flat_in, flat_out)

    whole, first = _bonus(kind, model_steps=7, update_every=30), _bonus(kind, model_steps=7, update_every=30)
    for bonus in (whole, first):
        bonus.venv.seed(0)
        bonus.reset()
    drive(whole, 8, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    drive(first, 4, rng)  # one window closed (30 transitions), 10 in the open one
    assert first.pool.size == 30
    first.save_state(tmp_path)
    resumed = _bonus(kind, model_steps=7, update_every=30)
    resumed.load_state(tmp_path)
    resumed.recorder.on_reset(first.recorder.last_obs)
    resumed.venv = first.venv  # the envs go on where they were
    drive(resumed, 4, rng)  # 40 more: the open window closes at 30 (60 in all), 20 left open
    assert resumed.pool.size == whole.pool.size == 60
    np.testing.assert_array_equal(resumed.pool.rows()[0], whole.pool.rows()[0])
    assert resumed._step_credit == whole._step_credit
    model = {"vime": "bnn", "rnd": "predictor", "density": "model"}[kind]
    for (name, a), (_, b) in zip(getattr(resumed, model).state_dict().items(),
                                 getattr(whole, model).state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    if kind == "vime":
        assert list(resumed.medians) == list(whole.medians)
        np.testing.assert_array_equal(np.concatenate(resumed._open_gains), np.concatenate(whole._open_gains))


@pytest.mark.parametrize("name", ["vime", "rnd", "density"])
def test_a_diverged_bonus_model_stops_the_run_in_one_line(name):
    # a learning rate that sends the model's loss to NaN/inf stopped with a traceback from TensorBoard's
    # histogram of NaN bonuses (or paid them, in step mode): now a FloatingPointError naming the bonus
    from rlgen.exploration import BONUS_WRAPPERS

    cls = BONUS_WRAPPERS[name]
    extra = {"model": "made"} if name == "density" else {}
    wrapper = cls(line_venv(n=2, horizon=5), update_every=64, min_replay=1, **extra)
    state = wrapper.state_name
    for param in wrapper.optimizer.param_groups[0]["params"]:  # a model already diverged
        param.data.fill_(float("nan"))
    model = PPO("MlpPolicy", wrapper, n_steps=32, batch_size=64, n_epochs=1, policy_kwargs={"net_arch": [8]}, seed=0)
    with pytest.raises(FloatingPointError, match=rf"^{state}'s (model diverged|bonus is nan).*learning_rate"):
        model.learn(256, callback=wrapper.callback)
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        cls(line_venv(n=1), learning_rate=0.0, **extra)
    with pytest.raises(ValueError, match="min_replay must be a whole number >= 0"):
        cls(line_venv(n=1), min_replay=-5, **extra)


def test_a_nan_bonus_is_never_paid():
    from rlgen.exploration.rollout_bonus import check_finite_bonus

    wrapper = RND(line_venv(n=1))
    check_finite_bonus(wrapper, np.zeros(4))
    with pytest.raises(FloatingPointError, match=r"^RND's bonus is inf after 0 transitions"):
        check_finite_bonus(wrapper, np.array([0.0, np.inf]))

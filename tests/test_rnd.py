"""Random Network Distillation (rlgen.exploration.RND): the baseline bonus's mechanism."""

import numpy as np
import pytest

from rlgen.exploration import RND
from tests.fakes import line_venv


def _rows(states):
    """[s, a] inputs and s' targets for a batch of next states on the 2-d line env."""
    states = np.asarray(states, dtype=np.float32)
    inputs = np.hstack([states, np.zeros((len(states), 1), np.float32)])
    return inputs, states


def _visited(rng, n):
    return np.column_stack([rng.normal(0.0, 0.3, n), np.ones(n)]).astype(np.float32)


def test_a_novel_state_earns_more_than_a_familiar_one():
    rnd = RND(line_venv(n=1), min_replay=1, model_steps=300, batch_size=64, seed=0, update_every=512)
    rng = np.random.default_rng(0)
    for _ in range(3):  # three rollouts of states near x = 0
        rnd.update_model(*_rows(_visited(rng, 512)))
    familiar = rnd.compute_bonus(*_rows(_visited(rng, 64)), record=False)[0]
    novel_states = np.column_stack([rng.normal(4.0, 0.3, 64), np.ones(64)])  # far from every visited x
    novel = rnd.compute_bonus(*_rows(novel_states), record=False)[0]
    assert np.median(novel) > 5 * np.median(familiar)
    assert (novel > np.quantile(familiar, 0.95)).mean() > 0.9


def test_the_bonus_of_a_state_falls_as_it_is_visited():
    rnd = RND(line_venv(n=1), min_replay=1, model_steps=50, batch_size=64, seed=1, update_every=64)
    rng = np.random.default_rng(1)
    rnd.update_model(*_rows(_visited(rng, 512)))  # the statistics of the states around
    state = _rows([[0.5, 1.0]] * 64)
    errors = []
    for _ in range(6):  # visits: each rollout holds the state again
        errors.append(float(np.median(rnd.prediction_error(state[1]))))
        rnd.update_model(*state)
    assert errors[-1] < 0.2 * errors[0]
    assert all(later <= earlier * 1.05 for earlier, later in zip(errors, errors[1:], strict=False))


def test_errors_are_scaled_by_the_running_std_of_the_intrinsic_returns():
    rnd = RND(line_venv(n=2), min_replay=1, model_steps=1, beta=2.0, gamma_int=0.9, seed=2)
    rng = np.random.default_rng(2)
    inputs, targets = _rows(_visited(rng, 40))  # 20 steps x 2 envs, step-major
    error = rnd.prediction_error(targets)
    bonus, logged = rnd.compute_bonus(inputs, targets)
    returns = np.zeros(2)
    expected = []
    for row in error.reshape(-1, 2):
        returns = 0.9 * returns + row
        expected.append(returns.copy())
    np.testing.assert_allclose(logged["rnd/intrinsic_return_std"], np.std(expected), rtol=1e-3)
    np.testing.assert_allclose(bonus, 2.0 * error / np.std(expected), rtol=1e-3)
    np.testing.assert_allclose(rnd.intrinsic_returns, expected[-1])  # carried on into the next rollout


def test_one_seed_gives_one_bonus_and_the_target_never_trains():
    def run(seed):
        rnd = RND(line_venv(n=1), min_replay=1, model_steps=20, seed=seed, update_every=128)
        target = [p.detach().clone() for p in rnd.target.parameters()]
        rows = _rows(_visited(np.random.default_rng(0), 128))
        rnd.update_model(*rows)
        assert all(np.array_equal(a.numpy(), b.detach().numpy()) for a, b in zip(target, rnd.target.parameters(),
                                                                                   strict=True))
        return rnd.compute_bonus(*rows, record=False)[0]

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_rnd_trains_through_the_run_loop_and_resumes(tmp_path):
    from rlgen.agents import RunConfig, train

    config = RunConfig(algo="ppo", env_id="rlgen/SparseMountainCar-v0", total_steps=2048, n_envs=2, bonus="rnd",
                       hyperparams={"n_steps": 256, "batch_size": 128, "policy_kwargs": {"net_arch": [16]}},
                       bonus_kwargs={"min_replay": 64, "model_steps": 5}, eval_freq=0,
                       checkpoint_freq=1024, progress_bar=False, out_dir=str(tmp_path))
    result = train(config)
    assert (result.run_dir / "rnd.pt").is_file() and (result.run_dir / "rnd_log.jsonl").is_file()
    config.total_steps = 3072
    assert train(config, resume=True).timesteps == 3072


def test_bad_rnd_settings_are_refused():
    with pytest.raises(ValueError, match="RND gamma_int must be in"):
        RND(line_venv(n=1), gamma_int=1.0)
    with pytest.raises(ValueError, match="RND beta must be >= 0"):
        RND(line_venv(n=1), beta=-1.0)


@pytest.mark.parametrize("mode", ["rollout", "step"])
def test_a_non_finite_env_reward_stops_the_agent_with_a_one_line_error(mode):
    """The check of the rollout-bonus base (VIME, DensityBonus and RND share it), for agents built by hand."""
    import gymnasium as gym
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.env_util import make_vec_env

    class NanAtStep3(gym.Wrapper):
        def reset(self, **kwargs):
            self.t = 0
            return self.env.reset(**kwargs)

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.t += 1
            return obs, float("nan") if self.t == 3 else reward, terminated, truncated, info

    venv = make_vec_env(lambda: NanAtStep3(gym.make("Pendulum-v1")), n_envs=2, seed=0)
    rnd = RND(venv, seed=0, mode=mode, min_replay=1)
    agent = (PPO("MlpPolicy", rnd, n_steps=16, batch_size=32) if mode == "rollout"
             else SAC("MlpPolicy", rnd, learning_starts=100))
    where = "at step 2, env 0 of this rollout" if mode == "rollout" else "at env 0 of step 3"
    with pytest.raises(ValueError, match=f"RND: the reward the env returned is nan {where}") as info:
        agent.learn(64, callback=rnd.callback)
    assert "\n" not in str(info.value)


def test_the_bonus_is_the_novelty_of_the_next_state_not_of_the_state_left():
    rnd = RND(line_venv(n=1), min_replay=1, model_steps=300, batch_size=64, seed=0, update_every=512)
    rng = np.random.default_rng(0)
    for _ in range(3):
        rnd.update_model(*_rows(_visited(rng, 512)))
    familiar, novel = _visited(rng, 64), np.column_stack([rng.normal(4.0, 0.3, 64), np.ones(64)]).astype(np.float32)
    action = np.zeros((64, 1), np.float32)
    into_novel = rnd.compute_bonus(np.hstack([familiar, action]), novel, record=False)[0]  # s familiar, s' novel
    out_of_novel = rnd.compute_bonus(np.hstack([novel, action]), familiar, record=False)[0]  # s novel, s' familiar
    assert np.median(into_novel) > 5 * np.median(out_of_novel)


def test_a_resumed_rnd_pays_what_the_uninterrupted_one_does(tmp_path):
    # the running intrinsic returns and their statistics carry over: the next rollout's scale is the same
    rng = np.random.default_rng(0)
    rollouts = [_rows(_visited(rng, 128)) for _ in range(4)]

    def make():
        return RND(line_venv(n=2), min_replay=1, model_steps=10, update_every=128, seed=0)

    def play(rnd, parts):
        paid = []
        for inputs, targets in parts:
            paid.append(rnd.compute_bonus(inputs, targets)[0])
            rnd.rollout_learnt(inputs, targets)
        return paid

    uninterrupted = play(make(), rollouts)
    first = make()
    play(first, rollouts[:2])
    first.save_state(tmp_path)
    resumed = make()
    resumed.load_state(tmp_path)
    for a, b in zip(uninterrupted[2:], play(resumed, rollouts[2:]), strict=True):
        np.testing.assert_array_equal(a, b)

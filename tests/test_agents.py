import importlib.metadata
import json
import shutil
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import rlgen
from rlgen.agents import (
    ConfigError,
    RunConfig,
    apply_overrides,
    collect_demos,
    evaluate,
    load_run,
    preset_for,
    train,
)
from rlgen.agents.config import build_config, parse_override, resume_config
from rlgen.agents.envstack import build_model, make_vec_env
from rlgen.agents.presets import PRESETS
from rlgen.agents.rundir import RunDir, read_eval_history


def _params(run_dir):
    _, model, _ = load_run(run_dir)
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


def test_config_yaml_round_trip(tmp_path):
    config = RunConfig(algo="trpo", env_id="Pendulum-v1", seed=3, hyperparams={"n_steps": 256},
                       env_kwargs={"g": 9.0})
    config.save(tmp_path / "c.yaml")
    assert RunConfig.load(tmp_path / "c.yaml") == config
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["env_kwargs"] == {"g": 9.0}


def test_config_sources_resolve_in_order(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"hyperparams": {"n_steps": 1024}, "seed": 5}))
    config = build_config("ppo", "Ant-v5", config_file=tmp_path / "c.yaml", total_steps=1000,
                          overrides=["learning_rate=1e-4", "total_steps=2e3", "policy_kwargs.net_arch=[8,8]"])
    preset = preset_for("ppo", "Ant-v5")["hyperparams"]
    assert config.hyperparams["batch_size"] == preset["batch_size"]  # from the preset
    assert config.hyperparams["n_steps"] == 1024  # the file beats the preset
    assert config.seed == 5
    assert config.total_steps == 2000 and isinstance(config.total_steps, int)  # -p beats flags
    assert config.hyperparams["learning_rate"] == pytest.approx(1e-4)
    assert config.hyperparams["policy_kwargs"]["net_arch"] == [8, 8]
    assert config.hyperparams["policy_kwargs"]["activation_fn"] == "tanh"  # the rest of the preset stays


def test_a_config_file_and_overrides_read_numbers_and_names_as_meant(tmp_path):
    # YAML 1.1 reads 1e-3 as a string; rlgen's files read it as the number it is (a quoted "1e-3" stays text)
    (tmp_path / "c.yaml").write_text("total_steps: 1e6\nhyperparams:\n  ent_coef: 1e-3\n  target_kl: 2e-2\n"
                                     "env_kwargs:\n  label: '1e-3'\n")
    config = build_config("ppo", "CartPole-v1", config_file=tmp_path / "c.yaml").validated()
    assert config.total_steps == 1_000_000 and isinstance(config.total_steps, int)
    assert config.hyperparams["ent_coef"] == 1e-3 and config.hyperparams["target_kl"] == 2e-2
    assert config.env_kwargs["label"] == "1e-3"
    config = build_config("ppo", "CartPole-v1", overrides=["total_steps=2.5e5", "run_name=2024", "seed=3.0"])
    assert (config.total_steps, config.run_name, config.seed) == (250_000, "2024", 3)
    assert config.run_dir.name == "2024"
    assert build_config("ppo", "CartPole-v1", overrides=["run_name=2024.10"]).run_name == "2024.10"  # as typed
    # a name that reads like a number is written quoted, so it loads back as the same name
    named = build_config("ppo", "CartPole-v1", overrides=["run_name=1e5"])
    named.save(tmp_path / "named.yaml")
    assert RunConfig.load(tmp_path / "named.yaml").run_name == "1e5"
    (tmp_path / "bad.yaml").write_text("seed: ._\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        build_config("ppo", "CartPole-v1", config_file=tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="normalize must be true or false, got 'Flase'"):
        build_config("ppo", "CartPole-v1", overrides=["normalize=Flase"]).validated()
    # the preset follows --algo and --env: an override of either would come after it was chosen
    for item, flag in (("env_id=rlgen/SparseMountainCar-v0", "--env"), ("algo=trpo", "--algo")):
        with pytest.raises(ConfigError, match=f"give {flag}"):
            build_config("ppo", "CartPole-v1", overrides=[item])


def test_resume_config_takes_the_folder_as_named_and_only_raises_the_budget(tiny_config, monkeypatch):
    run_dir = train(tiny_config(total_steps=256, eval_freq=0, run_name="here")).run_dir
    monkeypatch.chdir(run_dir)
    assert resume_config(".").run_dir == run_dir.resolve()
    with pytest.raises(ConfigError, match="--steps 128 is below the run's budget of 256"):
        resume_config(run_dir, total_steps=128)
    assert resume_config(run_dir, total_steps=512).total_steps == 512
    # a schedule laid over the old budget would jump: said
    config = RunConfig.load(run_dir / "config.yaml")
    config.hyperparams = {**config.hyperparams, "learning_rate": {"schedule": "linear", "start": 1e-3, "end": 0.0}}
    config.save(run_dir / "config.yaml")
    with pytest.warns(UserWarning, match="learning_rate follows a schedule laid over the run's 256 env steps"):
        resume_config(run_dir, total_steps=512)


def test_a_wrapper_setting_of_its_own_kind_passes_the_type_check():
    # None where the setting's type admits it (VIME's clip: the original VIME's unclipped inputs), an int for a
    # float, a float for an int-valued default: the wrapper decides those, not the check
    config = build_config("ppo", "CartPole-v1", bonus="vime",
                          overrides=["bonus_kwargs.clip=null", "bonus_kwargs.std_floor=0", "bonus_kwargs.eta=1"])
    assert config.bonus_kwargs == {"clip": None, "std_floor": 0, "eta": 1}
    with pytest.raises(ConfigError, match="bonus_kwargs.eta must be a number"):  # eta has no None
        build_config("ppo", "CartPole-v1", bonus="vime", overrides=["bonus_kwargs.eta=null"])
    # a setting whose default is None is checked by its annotation (int | None): a number or null
    assert build_config("ppo", "CartPole-v1", bonus="vime",
                        overrides=["bonus_kwargs.freeze_scale_at=5e4"]).bonus_kwargs == {"freeze_scale_at": 50000}
    with pytest.raises(ConfigError, match=r"bonus_kwargs.freeze_scale_at must be a number or null \(VIME's default "
                                          r"null\), got 'abc'"):
        build_config("ppo", "CartPole-v1", bonus="vime", overrides=["bonus_kwargs.freeze_scale_at=abc"])
    # one of another kind (GAIL's hidden sizes, a sequence) is left to the wrapper
    build_config("ppo", "CartPole-v1", imitation="gail", demos="d.npz", overrides=["imitation_kwargs.hidden=[8,8]"])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RunConfig(algo="dqn").validated(), "unknown algorithm 'dqn'"),
        (lambda: RunConfig(env_id="Antt-v5").validated(), "unknown env id 'Antt-v5'"),
        (lambda: apply_overrides(RunConfig(), ["n_stepz=3"]), "unknown key 'n_stepz'"),
        (lambda: RunConfig(hyperparams={"n_stepz": 3}).validated(), "unknown ppo hyperparameter 'n_stepz'"),
        (lambda: RunConfig(total_steps=0).validated(), "total_steps must be a positive integer"),
        (lambda: RunConfig(total_steps=10**20).validated(), r"total_steps 1e\+20 is beyond what one run trains"),
        (lambda: parse_override("novalue"), "not of the form key=value"),
        (lambda: RunConfig.from_dict({"algoo": "ppo"}), "unknown config key 'algoo'"),
        # a wrapper's settings without the wrapper would train something else without a word
        (lambda: build_config("ppo", "CartPole-v1", overrides=["bonus_kwargs.eta=0.1"]),
         "bonus_kwargs.eta would be ignored: no bonus"),
        (lambda: build_config("ppo", "CartPole-v1", imitation="bc", demos="d.npz",
                              imitation_kwargs={"reward": "log_d"}),
         "imitation_kwargs.reward would be ignored: .* imitation is 'bc'"),
        (lambda: RunConfig(imitation_kwargs={"disc_steps": 2}).refuse_unused_settings(), "imitation is not set"),
        # and a setting the wrapper does not have, before any env is built
        (lambda: build_config("ppo", "CartPole-v1", bonus="rnd", overrides=["bonus_kwargs.betta=1"]),
         r"bonus_kwargs.betta is no setting of RND \(rnd\); did you mean bonus_kwargs.beta\?"),
        (lambda: build_config("ppo", "CartPole-v1", imitation="gail", demos="d.npz",
                              imitation_kwargs={"gradient_penalt": 10}),
         "imitation_kwargs.gradient_penalt is no setting of GAIL .* did you mean imitation_kwargs.gradient_penalty"),
        (lambda: build_config("ppo", "CartPole-v1", bonus="vime", bonus_kwargs={"zzz": 1}), "valid: batch_size, "),
        # and a value of the wrong kind for it, named, not a TypeError from deep inside the wrapper
        (lambda: build_config("ppo", "CartPole-v1", bonus="vime", overrides=["bonus_kwargs.eta=abc"]),
         r"bonus_kwargs.eta must be a number \(VIME's default 0.1\), got 'abc'"),
        (lambda: build_config("ppo", "CartPole-v1", bonus="vime", overrides=["bonus_kwargs.model_steps=true"]),
         "bonus_kwargs.model_steps must be a number .*, got True"),
        (lambda: build_config("ppo", "CartPole-v1", imitation="gail", demos="d.npz",
                              overrides=["imitation_kwargs.absorbing=1"]),
         r"imitation_kwargs.absorbing must be true or false \(GAIL's default false\), got 1"),
        (lambda: build_config("ppo", "CartPole-v1", bonus="density", overrides=["bonus_kwargs.model=3"]),
         "bonus_kwargs.model must be text .*, got 3"),
        # suggestions name the current keyword, not its deprecated name (which still works)
        (lambda: build_config("ppo", "CartPole-v1", imitation="gail", demos="d.npz",
                              imitation_kwargs={"update_everyy": 1}), "did you mean imitation_kwargs.disc_transitions"),
        # behaviour cloning alone takes no env steps: a bonus, or cloning before it, would be ignored
        (lambda: build_config("ppo", "CartPole-v1", imitation="bc", demos="d.npz", bonus="rnd"),
         "bonus rnd would be ignored: imitation bc is behaviour cloning alone"),
        (lambda: build_config("ppo", "CartPole-v1", imitation="bc", demos="d.npz", bc_pretrain=True),
         "bc_pretrain would be ignored"),
        (lambda: RunConfig(imitation="gail", demos="d.npz", bc_kwargs={"loss": "mse"}).refuse_unused_settings(),
         "bc_kwargs.loss would be ignored: no behaviour cloning"),
    ],
)
def test_bad_config_names_the_problem(make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_a_wrapper_s_settings_are_its_keywords_and_those_it_passes_on():
    from rlgen.exploration import VIME, DensityBonus
    from rlgen.imitation import GAIL, InfoGAIL

    assert {"eta", "freeze_scale_at", "seed"} <= VIME.setting_names()
    assert {"beta", "model", "model_kwargs"} <= DensityBonus.setting_names()
    assert {"disc_steps", "absorbing", "gradient_penalty", "hidden"} <= GAIL.setting_names()  # the last two: D's
    assert {"n_modes", "lambda_info", "disc_steps", "gradient_penalty"} <= InfoGAIL.setting_names()
    for cls in (VIME, DensityBonus, GAIL, InfoGAIL):  # what the run loop passes itself is no setting
        assert not {"venv", "demos", "obs_space", "self"} & cls.setting_names()


def test_a_wrapper_s_settings_pass_with_the_wrapper_and_a_saved_run_keeps_working(tiny_config):
    RunConfig(bonus="rnd", bonus_kwargs={"beta": 1.0}).refuse_unused_settings()
    RunConfig(imitation="gail", demos="d.npz", imitation_kwargs={"disc_steps": 2}).refuse_unused_settings()
    RunConfig(imitation="infogail", demos="d.npz", imitation_kwargs={"n_modes": 2}).refuse_unused_settings()
    RunConfig(imitation="gail", demos="d.npz", bc_pretrain=True, bc_kwargs={"loss": "mse"}).refuse_unused_settings()
    RunConfig(imitation="bc", demos="d.npz", bc_kwargs={"loss": "mse"}).refuse_unused_settings()
    config = tiny_config(bonus_kwargs={"eta": 0.1}, total_steps=256)
    with pytest.raises(ConfigError, match="bonus_kwargs.eta would be ignored"):  # a new run from Python
        train(config)
    # a run saved before the check (its setting ignored, as it was then) still resumes
    config.save(Path(config.run_dir).parent / "saved.yaml")
    train(replace(config, bonus_kwargs={}))
    saved = RunConfig.load(Path(config.run_dir).parent / "saved.yaml")
    (Path(config.run_dir) / "config.yaml").write_text((Path(config.run_dir).parent / "saved.yaml").read_text())
    assert train(resume_config(config.run_dir, total_steps=512), resume=True).timesteps == 512 and saved.bonus_kwargs


def test_a_run_its_env_or_wrapper_refuses_leaves_no_run_directory(tiny_config):
    config = tiny_config(env_id="FrozenLake-v1", bonus="vime")  # VIME needs Box observations
    with pytest.raises(ConfigError, match="VIME needs a Box observation space"):
        train(config)
    assert not config.run_dir.exists()  # nothing half-made to trip over or clean up
    config.run_dir.mkdir(parents=True)
    (config.run_dir / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="VIME needs a Box observation space"):
        train(config)
    assert (config.run_dir / "notes.txt").read_text() == "mine"  # a folder it did not make is left alone


def test_a_discrete_observation_trains_evaluates_and_resumes_with_normalize_on(tiny_config):
    # VecNormalize standardises Box observations only: a Discrete one (FrozenLake, Taxi) was a traceback from SB3
    # unless -p normalize=false; SB3's policy one-hot encodes it, so its statistics are kept unused, as for images
    config = tiny_config(env_id="FrozenLake-v1", total_steps=256, eval_freq=0, checkpoint_freq=0)
    assert config.normalize
    run_dir = train(config).run_dir
    assert len(evaluate(run_dir, episodes=2)) == 2
    assert train(resume_config(run_dir, total_steps=384), resume=True).timesteps == 384


def test_an_observation_space_no_policy_takes_is_one_line_and_leaves_no_run_directory(tiny_config):
    config = tiny_config(env_id="Blackjack-v1")  # Tuple(Discrete, Discrete, Discrete)
    with pytest.raises(ConfigError, match=r"Blackjack-v1 observes a Tuple space .* SB3's policies do not take"):
        train(config)
    assert not config.run_dir.exists()


def test_every_preset_builds_a_model():
    for (algo, env_id), preset in PRESETS.items():
        config = RunConfig(algo=algo, env_id=env_id, **preset).validated()
        venv = make_vec_env(config)
        try:
            model = build_model(config, venv)
            assert model.n_steps == preset["hyperparams"]["n_steps"]
        finally:
            venv.close()


def test_run_directory_holds_everything(tiny_config):
    result = train(tiny_config())
    run_dir = result.run_dir
    for name in ("config.yaml", "model.zip", "vecnormalize.npz", "eval.csv", "learning_curve.png",
                 "result.json", "checkpoint/progress.json"):
        assert (run_dir / name).is_file(), name
    # the last checkpoint's files, in the folder its progress file names
    assert RunDir(run_dir).checkpoint_files.parent == run_dir / "checkpoint"
    assert {p.name for p in (run_dir / "checkpoint").iterdir()} == {"progress.json", "step_000000000512"}
    assert (RunDir(run_dir).checkpoint_files / "model.zip").is_file()
    assert (RunDir(run_dir).checkpoint_files / "vecnormalize.npz").is_file()
    assert any((run_dir / "tb").iterdir())
    assert [row["timesteps"] for row in result.eval_history] == [256, 512]
    versions = json.loads((run_dir / "result.json").read_text())["versions"]  # what the numbers were made with
    assert {"python", "torch", "mujoco", "gymnasium", "stable-baselines3"} <= versions.keys()
    code = json.loads((run_dir / "result.json").read_text())["code"]  # and the code that made them
    assert code["rlgen"] == importlib.metadata.version("rlgen")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(rlgen.__file__).parent, capture_output=True,
                          text=True)
    if head.returncode == 0:  # a git checkout (CI's clone is one)
        assert code["commit"] == head.stdout.strip() and isinstance(code["dirty"], bool)
    assert json.loads((run_dir / "result.json").read_text())["timesteps"] == 512
    with np.load(run_dir / "vecnormalize.npz", allow_pickle=False) as stats:
        assert stats["obs_mean"].shape == (4,) and float(stats["obs_count"]) > 500
    assert RunConfig.load(run_dir / "config.yaml") == tiny_config()
    returns = evaluate(run_dir, episodes=3)
    assert returns.shape == (3,) and np.all(returns >= 1)


def test_env_reward_weight_zero_leaves_the_agent_no_env_reward_and_the_reports_the_true_one(tiny_config):
    from stable_baselines3.common.callbacks import BaseCallback

    class LastRollout(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_end(self):
            self.rewards = self.model.rollout_buffer.rewards.copy()

    seen = {}
    for weight in (1.0, 0.0):
        config = tiny_config(env_reward_weight=weight, normalize=False, run_name=f"w{weight}")
        venv = make_vec_env(config)
        model = build_model(config, venv)
        callback = LastRollout()
        model.learn(256, callback=callback)
        seen[weight] = (callback.rewards, [info["r"] for info in model.ep_info_buffer])
        venv.close()
    assert np.all(seen[1.0][0] == 1.0) and np.all(seen[0.0][0] == 0.0)  # CartPole pays 1 a step
    assert min(seen[0.0][1]) >= 8  # episode returns (Monitor's, SB3's ep_rew_mean) are the env's own
    with pytest.raises(ConfigError, match="env_reward_weight must be a finite number"):
        tiny_config(env_reward_weight=float("nan"))


def test_same_seed_same_run_other_seed_other_run(tiny_config):
    a = train(tiny_config(run_name="a"))
    b = train(tiny_config(run_name="b"))
    c = train(tiny_config(run_name="c", seed=1))
    assert torch.equal(_params(a.run_dir), _params(b.run_dir))
    assert a.eval_history[-1]["mean_return"] == b.eval_history[-1]["mean_return"]
    assert not torch.equal(_params(a.run_dir), _params(c.run_dir))
    np.testing.assert_array_equal(evaluate(a.run_dir, 3), evaluate(b.run_dir, 3))


def test_resume_continues_the_same_run(tiny_config):
    first = train(tiny_config(total_steps=256))
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_config(total_steps=256))
    resumed = train(tiny_config(total_steps=512), resume=True)
    assert resumed.run_dir == first.run_dir and resumed.timesteps == 512
    assert [row["timesteps"] for row in resumed.eval_history] == [256, 512]
    # the resumed model started from the checkpoint, not from scratch: fresh runs differ from it
    fresh = train(tiny_config(total_steps=512, run_name="fresh"))
    assert not torch.equal(_params(resumed.run_dir), _params(fresh.run_dir))


def test_a_run_resumed_under_other_code_names_each_sessions_commit(tiny_config, monkeypatch):
    import rlgen.agents.run as run_module

    monkeypatch.setattr(run_module, "code_version", lambda: {"rlgen": "0.1.0", "commit": "a" * 40, "dirty": False})
    first = train(tiny_config(total_steps=256))
    monkeypatch.setattr(run_module, "code_version", lambda: {"rlgen": "0.1.0", "commit": "b" * 40, "dirty": True})
    train(tiny_config(total_steps=512), resume=True)
    result = json.loads((first.run_dir / "result.json").read_text())
    assert result["code"] == {"rlgen": "0.1.0", "commit": "b" * 40, "dirty": True}  # the last session's
    assert [(s["from_step"], s["commit"][0]) for s in result["code_sessions"]] == [(0, "a"), (256, "b")]
    # a checkpoint from before progress.json kept the code: its sessions are named unknown, not today's
    progress = first.run_dir / "checkpoint" / "progress.json"
    record = json.loads(progress.read_text())
    progress.write_text(json.dumps({k: v for k, v in record.items() if k != "code"}))
    monkeypatch.setattr(run_module, "code_version", lambda: {"rlgen": "0.1.0", "commit": "d" * 40, "dirty": False})
    train(tiny_config(total_steps=640), resume=True)
    sessions = json.loads((first.run_dir / "result.json").read_text())["code_sessions"]
    assert [(s["from_step"], s.get("commit", "?")[0]) for s in sessions] == [(0, "?"), (512, "d")]
    # each further session adds its own, from the step it resumed at
    monkeypatch.setattr(run_module, "code_version", lambda: {"rlgen": "0.1.0", "commit": "c" * 40, "dirty": False})
    train(tiny_config(total_steps=768), resume=True)
    sessions = json.loads((first.run_dir / "result.json").read_text())["code_sessions"]
    assert [(s["from_step"], s.get("commit", "?")[0]) for s in sessions] == [(0, "?"), (512, "d"), (640, "c")]
    # a resume that trains nothing (the budget reached) adds no session, and the run's code stays the last one's
    monkeypatch.setattr(run_module, "code_version", lambda: {"rlgen": "0.1.0", "commit": "e" * 40, "dirty": False})
    train(tiny_config(total_steps=768), resume=True)
    result = json.loads((first.run_dir / "result.json").read_text())
    assert [(s["from_step"], s.get("commit", "?")[0]) for s in result["code_sessions"]] == [(0, "?"), (512, "d"),
                                                                                              (640, "c")]
    assert result["code"]["commit"] == "c" * 40


def test_checkpoints_fall_between_rollouts(tiny_config, monkeypatch):
    # checkpoint_freq 200 falls due mid-rollout (rollouts of 128 steps); the checkpoint waits for the next
    # rollout's start, so a run resumed from it collects the same whole rollouts as an uninterrupted one
    import rlgen.agents.run as run_module

    saved_at = []
    original = run_module.save_checkpoint

    def recording(model, *args, **kwargs):
        saved_at.append(model.num_timesteps)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(run_module, "save_checkpoint", recording)
    train(tiny_config(total_steps=640, checkpoint_freq=200, eval_freq=0))
    assert saved_at == [256, 512, 640]  # the last one is the end-of-run save


def test_best_model_is_the_policy_of_the_best_evaluation(tiny_config, monkeypatch):
    # scripted evaluation scores: the second of four evaluations is the best, and the saved best policy
    # (with the VecNormalize statistics of that moment) is the one that was evaluated then
    import rlgen.agents.run as run_module

    scores = iter([5.0, 9.0, 7.0, 2.0])
    real_returns = run_module.Evaluator.returns
    snapshots = []

    def scripted(self, model, episodes, deterministic=True):
        snapshots.append((torch.cat([p.detach().flatten().clone() for p in model.policy.parameters()]),
                          model.get_vec_normalize_env().obs_rms.mean.copy()))
        real_returns(self, model, episodes, deterministic)
        return np.full(episodes, next(scores))

    monkeypatch.setattr(run_module.Evaluator, "returns", scripted)
    run_dir = train(tiny_config(total_steps=512, eval_freq=128)).run_dir
    monkeypatch.setattr(run_module.Evaluator, "returns", real_returns)
    best = json.loads((run_dir / "best" / "best.json").read_text())
    assert best["timesteps"] == 256 and best["mean_return"] == 9.0
    _, model, stats = load_run(run_dir, best=True)
    params, obs_mean = snapshots[1]
    assert torch.equal(torch.cat([p.detach().flatten() for p in model.policy.parameters()]), params)
    assert not torch.equal(params, _params(run_dir))  # the final policy is another one
    with np.load(stats, allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["obs_mean"], obs_mean)
    assert evaluate(run_dir, episodes=2, best=True).shape == (2,)


def _scripted_scores(monkeypatch, values):
    """Evaluations return these mean returns in turn (the real rollout still runs); an exception is raised."""
    import rlgen.agents.run as run_module

    scores = iter(values)
    real_returns = run_module.Evaluator.returns

    def scripted(self, model, episodes, deterministic=True):
        value = next(scores)
        if isinstance(value, Exception):
            raise value
        real_returns(self, model, episodes, deterministic)
        return np.full(episodes, value)

    monkeypatch.setattr(run_module.Evaluator, "returns", scripted)


def test_resume_keeps_the_earlier_best_against_worse_later_evaluations(tiny_config, monkeypatch):
    _scripted_scores(monkeypatch, [5.0, 9.0, 7.0, 2.0])
    run_dir = train(tiny_config(total_steps=256, eval_freq=128)).run_dir
    before = (run_dir / "best" / "model.zip").read_bytes()
    train(tiny_config(total_steps=512, eval_freq=128), resume=True)
    best = json.loads((run_dir / "best" / "best.json").read_text())
    assert best["timesteps"] == 256 and best["mean_return"] == 9.0
    assert (run_dir / "best" / "model.zip").read_bytes() == before


def test_resumed_run_from_before_best_models_only_keeps_a_policy_that_beats_its_history(tiny_config, monkeypatch):
    no_best = train(tiny_config(total_steps=128, eval_freq=0, run_name="no-best")).run_dir
    shutil.rmtree(no_best / "best")  # as a run trained before best models were kept
    with pytest.raises(ConfigError, match="no best model"):
        evaluate(no_best, episodes=1, best=True)
    _scripted_scores(monkeypatch, [5.0, 9.0, 7.0, 12.0, 3.0])
    run_dir = train(tiny_config(total_steps=256, eval_freq=128)).run_dir
    shutil.rmtree(run_dir / "best")
    train(tiny_config(total_steps=384, eval_freq=128), resume=True)
    # 7.0 at 384 does not beat the 9.0 on record (whose policy is gone): still no best
    assert not (run_dir / "best").exists()
    train(tiny_config(total_steps=640, eval_freq=128), resume=True)
    assert json.loads((run_dir / "best" / "best.json").read_text())["timesteps"] == 512  # 12.0 does


def test_a_best_past_the_checkpoint_a_crashed_run_resumes_from_is_dropped(tiny_config, monkeypatch):
    # evaluations at 128, 256, 384 (a new best, 12.0), then a crash at 512; the checkpoint is at 256
    _scripted_scores(monkeypatch, [5.0, 9.0, 12.0, RuntimeError("crash")])
    with pytest.raises(RuntimeError, match="crash"):
        train(tiny_config(total_steps=512, eval_freq=128))
    run_dir = tiny_config().run_dir
    assert json.loads((run_dir / "best" / "best.json").read_text())["timesteps"] == 384
    monkeypatch.undo()
    _scripted_scores(monkeypatch, [7.0, 2.0])
    train(tiny_config(total_steps=512, eval_freq=128), resume=True)
    history = read_eval_history(run_dir / "eval.csv")
    assert [row["mean_return"] for row in history] == [5.0, 9.0, 7.0, 2.0]
    assert not (run_dir / "best").exists()  # 12.0's row is gone, and nothing after the resume beat 9.0


def test_demos_from_the_best_policy_see_its_own_statistics(tiny_config, monkeypatch):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlgen.agents import collect_demos
    from rlgen.agents.envstack import make_env_fn, vec_normalize
    from rlgen.agents.normalization import load_vecnormalize_stats

    _scripted_scores(monkeypatch, [5.0, 9.0, 7.0, 2.0])
    config = tiny_config(total_steps=512, eval_freq=128)
    run_dir = train(config).run_dir
    trajs = collect_demos(run_dir, 2, best=True)
    config, model, stats = load_run(run_dir, best=True)
    normalizer = vec_normalize(DummyVecEnv([make_env_fn(config.env_id, {}, None, False)]), config,
                               training=False, norm_reward=False)
    load_vecnormalize_stats(normalizer, stats)
    for traj in trajs:
        actions = model.predict(normalizer.normalize_obs(traj.obs[:-1]), deterministic=True)[0]
        np.testing.assert_array_equal(actions, traj.acts)
    final = collect_demos(run_dir, 2)
    assert any(len(a.acts) != len(b.acts) or not np.array_equal(a.acts, b.acts)
               for a, b in zip(trajs, final, strict=True))


def test_vecnormalize_statistics_round_trip_whole(tmp_path):
    # every number the running statistics carry, counts included: a resumed run's first update weighs its
    # new batch against what the count says was seen before
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rlgen.agents.normalization import load_vecnormalize_stats, save_vecnormalize_stats

    def venv():
        return VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), gamma=0.9, clip_obs=7.0)

    trained = venv()
    trained.reset()
    for _ in range(50):
        trained.step(np.array([[0.5]]))
    save_vecnormalize_stats(trained, tmp_path / "stats.npz")
    loaded = venv()
    load_vecnormalize_stats(loaded, tmp_path / "stats.npz")
    for name in ("obs_rms", "ret_rms"):
        mine, theirs = getattr(loaded, name), getattr(trained, name)
        assert mine.count == theirs.count and theirs.count > 50  # not the fresh 1e-4
        np.testing.assert_array_equal(mine.mean, theirs.mean)
        np.testing.assert_array_equal(mine.var, theirs.var)
    assert (loaded.clip_obs, loaded.gamma) == (7.0, 0.9)


def test_evaluation_episodes_start_apart_from_training_ones(tiny_config):
    from rlgen.agents.evaluation import EVAL_SEED_OFFSET, eval_seed

    config = tiny_config(seed=4)
    assert eval_seed(config) == 4 + EVAL_SEED_OFFSET and EVAL_SEED_OFFSET >= 1000  # never a training seed's
    # (a run's envs reset from seed + env index, so the offset keeps the two sets of starts apart)
    assert eval_seed(config) not in range(config.seed, config.seed + 64)


def test_resume_as_another_agent_is_refused(tiny_config):
    train(tiny_config(total_steps=256, run_name="run"))
    with pytest.raises(ConfigError, match="holds a run with algo 'ppo'; it cannot be resumed with algo 'a2c'"):
        train(tiny_config(total_steps=512, algo="a2c", hyperparams={"n_steps": 128}, run_name="run"), resume=True)


def test_resume_takes_a_setting_spelled_out_at_its_default_as_the_same_run(tiny_config):
    """A run that left a bonus setting or a hyperparameter to its default resumes with it given explicitly at that
    default (``--bonus-model pixelcnn``, ``-p gamma=0.99``); another value is refused, naming the default the run
    trained with (not None)."""
    hyper = {"n_steps": 128, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}}
    rnd = {"update_every": 128}
    train(tiny_config(total_steps=256, bonus="rnd", bonus_kwargs=rnd, run_name="run"))
    resumed = train(tiny_config(total_steps=384, bonus="rnd", bonus_kwargs={**rnd, "beta": 0.1},  # RND's default
                                hyperparams={**hyper, "gamma": 0.99}, run_name="run"), resume=True)
    assert resumed.timesteps == 384
    with pytest.raises(ConfigError, match=r"holds a run with hyperparams.gae_lambda 0.95; it cannot be resumed "
                                          r"with hyperparams.gae_lambda 0.9$"):
        train(tiny_config(total_steps=512, bonus="rnd", bonus_kwargs=rnd,
                          hyperparams={**hyper, "gae_lambda": 0.9}, run_name="run"), resume=True)
    with pytest.raises(ConfigError, match=r"holds a run with bonus_kwargs.beta 0.1; it cannot be resumed with "
                                          r"bonus_kwargs.beta 2.0$"):
        train(tiny_config(total_steps=512, bonus="rnd", bonus_kwargs={**rnd, "beta": 2.0}, run_name="run"),
              resume=True)
    with pytest.raises(ConfigError, match=r"holds a run with env_kwargs.sutton_barto_reward not set; it cannot be "
                                          r"resumed with env_kwargs.sutton_barto_reward True$"):  # no default known
        train(tiny_config(total_steps=512, bonus="rnd", bonus_kwargs=rnd, env_kwargs={"sutton_barto_reward": True},
                          run_name="run"), resume=True)
    # a wrapper's seed defaults to the run's (the run loop passes it), not to its constructor's 0
    train(tiny_config(total_steps=256, seed=3, bonus="rnd", bonus_kwargs=rnd, run_name="seeded"))
    with pytest.raises(ConfigError, match=r"holds a run with bonus_kwargs.seed 3; it cannot be resumed with "
                                          r"bonus_kwargs.seed 0$"):
        train(tiny_config(total_steps=384, seed=3, bonus="rnd", bonus_kwargs={**rnd, "seed": 0}, run_name="seeded"),
              resume=True)
    assert train(tiny_config(total_steps=384, seed=3, bonus="rnd", bonus_kwargs={**rnd, "seed": 3},
                             run_name="seeded"), resume=True).timesteps == 384


def test_a_resume_that_fails_before_training_leaves_the_run_directory_as_it_was(tiny_config):
    # it trimmed the Monitor files and the bonus's log to the checkpoint's step, and saved config.yaml, before
    # it found the checkpoint unusable
    config = tiny_config(total_steps=512, bonus="rnd", bonus_kwargs={"update_every": 128}, run_name="run")
    train(config)
    run = Path(config.run_dir)
    progress = run / "checkpoint" / "progress.json"
    state = json.loads(progress.read_text())
    progress.write_text(json.dumps({**state, "timesteps": 256, "files": "step_000000000256"}))  # no such folder
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert any(p.name == "rnd_log.jsonl" for p in before)
    with pytest.raises(ConfigError):
        train(tiny_config(total_steps=1024, bonus="rnd", bonus_kwargs={"update_every": 128}, run_name="run"),
              resume=True)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    assert [p for p in before if after[p] != before[p]] == []


def test_resume_without_checkpoint_is_refused(tiny_config):
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(tiny_config(), resume=True)


@pytest.mark.parametrize("algo", ["ppo", "a2c", "trpo", "sac"])
def test_each_algorithm_runs_on_a_continuous_task(tiny_config, algo):
    hyperparams = {"policy_kwargs": {"net_arch": [16]}}
    if algo in ("ppo", "trpo", "a2c"):
        hyperparams["n_steps"] = 64
    if algo in ("ppo", "trpo"):
        hyperparams["batch_size"] = 64
    if algo == "sac":
        hyperparams.update(learning_starts=64, batch_size=32)
    result = train(tiny_config(algo=algo, env_id="Pendulum-v1", total_steps=256, eval_freq=0,
                               hyperparams=hyperparams))
    assert result.timesteps >= 256
    assert np.isfinite(result.eval_mean_return)


def test_corrupt_model_file_gets_one_line_error(tiny_config):
    result = train(tiny_config(total_steps=128, eval_freq=0))
    (result.run_dir / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="model.zip is not a readable model archive") as info:
        evaluate(result.run_dir, episodes=1)
    assert "\n" not in str(info.value)


def test_a_nan_reward_stops_the_run_in_one_line_and_keeps_its_checkpoint(tmp_path, capsys):
    import gymnasium as gym

    from tests.fakes import one_line_error

    if "rlgen-test/NanReward-v0" not in gym.registry:
        gym.register("rlgen-test/NanReward-v0", entry_point="tests.fakes:LineEnv",
                     kwargs={"horizon": 50, "nan_reward_at": 300})
    err = one_line_error(capsys, ["train", "--algo", "ppo", "--env", "rlgen-test/NanReward-v0", "--steps", "1000",
                                  "--out", str(tmp_path), "-p", "n_steps=128", "-p", "batch_size=64",
                                  "-p", "checkpoint_freq=128", "-p", "eval_freq=0", "-p", "progress_bar=false"],
                         "rlgen-test/NanReward-v0 returned a non-finite reward at env step 300")
    assert "last checkpoint is kept" in err
    run_dir = tmp_path / "ppo_rlgen-test-NanReward-v0_s0"
    assert json.loads((run_dir / "checkpoint" / "progress.json").read_text())["timesteps"] == 256


def test_a2c_writes_its_logs_in_a_short_run(tiny_config):
    """SB3's A2C logs every 100 of its rollouts; a run of a few thousand steps must still have its curves."""
    from rlgen.reward_wrapper import LOG_EVERY
    from tests.fakes import scalar_tags

    result = train(tiny_config(algo="a2c", total_steps=3 * LOG_EVERY, eval_freq=0, n_envs=2,
                               hyperparams={"n_steps": 32, "policy_kwargs": {"net_arch": [8]}}))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = []
    for events in (result.run_dir / "tb").rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        steps += [event.step for event in accumulator.Scalars("train/value_loss")]
    assert {"rollout/ep_rew_mean", "eval/mean_reward"} <= scalar_tags(result.run_dir / "tb")  # final evaluation too
    assert len(steps) >= 3  # about one line per LOG_EVERY transitions, where SB3's default gives none


def test_a_config_file_value_equal_to_the_default_still_beats_the_preset(tmp_path):
    # the sparse presets run 4 envs; a file asking for 1 (RunConfig's default) means 1
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"n_envs": 1, "hyperparams": {"policy_kwargs": {"log_std_init": -1.0}}}))
    config = build_config("ppo", "rlgen/SparseMountainCar-v0", config_file=tmp_path / "c.yaml")
    assert preset_for("ppo", "rlgen/SparseMountainCar-v0")["n_envs"] == 4
    assert config.n_envs == 1
    # mappings merge at every depth, as -p does: the preset's network stays beside the file's log_std_init
    policy_kwargs = config.hyperparams["policy_kwargs"]
    assert policy_kwargs["log_std_init"] == -1.0
    assert policy_kwargs["net_arch"] == preset_for("ppo", "rlgen/SparseMountainCar-v0")["hyperparams"][
        "policy_kwargs"]["net_arch"]


def test_learning_rate_schedule_in_a_config():
    from rlgen.agents.envstack import resolve_hyperparams

    config = build_config("ppo", "CartPole-v1", overrides=["learning_rate={schedule: linear, start: 1e-3, end: 1e-4}"])
    schedule = resolve_hyperparams(config)["learning_rate"]
    assert schedule(1.0) == pytest.approx(1e-3) and schedule(0.0) == pytest.approx(1e-4)
    assert schedule(0.5) == pytest.approx(5.5e-4)
    with pytest.raises(ConfigError, match="learning_rate must be a number or"):
        resolve_hyperparams(build_config("ppo", "CartPole-v1", overrides=["learning_rate={schedule: cosine}"]))


def test_evaluate_by_default_repeats_the_runs_own_last_evaluation(tiny_config):
    config = tiny_config(total_steps=512, eval_freq=256, eval_episodes=3)
    result = train(config)
    last = result.eval_history[-1]
    returns = evaluate(result.run_dir, episodes=config.eval_episodes)
    assert returns.mean() == pytest.approx(last["mean_return"]) and returns.std() == pytest.approx(last["std_return"])


def test_evaluate_and_collect_demos_leave_torchs_thread_count_as_they_found_it(tiny_config):
    run_dir = train(tiny_config(total_steps=256, torch_threads=1)).run_dir
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        evaluate(run_dir, episodes=1)
        assert torch.get_num_threads() == 2
        collect_demos(run_dir, 1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_checkpoint_leaves_matplotlibs_backend_alone(tiny_config):
    import matplotlib

    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")  # a program that chose its own backend
        train(tiny_config(total_steps=256, checkpoint_freq=128))
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


def test_resume_with_another_setting_is_refused_and_names_it(tiny_config):
    config = tiny_config(total_steps=256, run_name="run")
    train(config)
    changed = tiny_config(total_steps=512, run_name="run", hyperparams={**config.hyperparams, "learning_rate": 1e-4})
    with pytest.raises(ConfigError, match=r"holds a run with hyperparams.learning_rate .*cannot be resumed"):
        train(changed, resume=True)
    train(tiny_config(total_steps=512, run_name="run", eval_freq=256), resume=True)  # a longer budget is fine


def test_a_start_that_failed_on_a_bad_setting_can_be_started_again(tiny_config):
    config = tiny_config(total_steps=256, run_name="run", hyperparams={"n_steps": 128, "batch_size": 1})
    with pytest.raises(ConfigError, match="rejected the hyperparameters"):
        train(config)
    assert not config.run_dir.exists()  # the agent refused it: nothing of it is left
    # a start that got further and stopped before its first checkpoint (a kill) leaves its config
    config.run_dir.mkdir(parents=True)
    config.save(config.run_dir / "config.yaml")
    with pytest.raises(ConfigError, match="stopped before its first checkpoint; start it again without --resume"):
        train(config, resume=True)
    fixed = tiny_config(total_steps=256, run_name="run")
    assert train(fixed).timesteps == 256  # the fixed command is not refused
    with pytest.raises(ConfigError, match="already holds a run"):
        train(fixed)  # a run that got somewhere is never started over


def test_a_run_directory_that_is_a_file_gets_a_one_line_error(tiny_config, tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "taken").write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot be made: .*taken is a file"):
        train(tiny_config(run_name="taken"))


class _Payload:
    """Unpickling this calls pathlib.Path.touch on a marker file: what a tampered model.zip could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def _tamper(model_zip, field, marker):
    import base64
    import pickle
    import zipfile

    with zipfile.ZipFile(model_zip) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(files["data"])
    data[field][":serialized:"] = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(model_zip, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)


@pytest.mark.parametrize("field", ["policy_class", "lr_schedule"])
def test_a_tampered_model_file_runs_no_code_and_gets_a_one_line_error(tiny_config, tmp_path, field):
    from rlgen.agents.model_file import load_model, pickled_globals

    run_dir = train(tiny_config(total_steps=256, eval_freq=0)).run_dir
    assert evaluate(run_dir, episodes=1).shape == (1,)  # the intact file loads, nothing unpickled
    marker = tmp_path / "pwned"
    _tamper(run_dir / "model.zip", field, marker)
    with pytest.raises(ConfigError, match=rf"its field {field} holds pickled code that would call pathlib") as info:
        evaluate(run_dir, episodes=1)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        load_model(RunConfig.load(run_dir / "config.yaml"), run_dir / "model.zip")
    assert not marker.exists()  # nothing ran
    assert any(name.endswith("Path.touch") or name.endswith("touch") for name in
               pickled_globals(__import__("pickle").dumps(_Payload(marker))))


def test_a_model_whose_weights_hold_a_pickled_object_runs_no_code_and_gets_a_one_line_error(tiny_config, tmp_path):
    import io

    run_dir = train(tiny_config(total_steps=256, eval_freq=0)).run_dir
    marker = tmp_path / "pwned"
    with zipfile.ZipFile(run_dir / "model.zip") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    buffer = io.BytesIO()
    torch.save({"weights": _Payload(marker)}, buffer)
    files["policy.pth"] = buffer.getvalue()
    with zipfile.ZipFile(run_dir / "model.zip", "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    with pytest.raises(ConfigError, match=r"model.zip: its weights hold objects other than tensors") as info:
        evaluate(run_dir, episodes=1)
    assert "\n" not in str(info.value) and not marker.exists()


def test_a_truncated_model_file_gets_a_one_line_error_naming_it(tiny_config):
    run_dir = train(tiny_config(total_steps=256, eval_freq=0)).run_dir
    content = (run_dir / "model.zip").read_bytes()
    (run_dir / "model.zip").write_bytes(content[: len(content) // 2])
    with pytest.raises(ConfigError, match=r"model.zip is not a readable model archive") as info:
        evaluate(run_dir, episodes=1)
    assert "\n" not in str(info.value)


def test_a_damaged_final_model_points_to_the_best_policy_when_there_is_one(tiny_config):
    run_dir = train(tiny_config(total_steps=256, eval_freq=128)).run_dir
    (run_dir / "model.zip").write_bytes(b"cut")
    with pytest.raises(ConfigError, match=r"best/, is another file: rlgen eval .* --best"):
        evaluate(run_dir, episodes=1)
    assert evaluate(run_dir, episodes=1, best=True).shape == (1,)


def test_a_resume_forgets_the_episodes_played_after_its_checkpoint_and_keeps_the_clock_rising(tiny_config,
                                                                                              monkeypatch):
    # a crash at step 384 (an evaluation that raises), past the checkpoint at 256: the Monitor file holds
    # episodes up to the crash; the resumed run plays steps 256.. again, so those episodes must go
    _scripted_scores(monkeypatch, [5.0, 6.0, RuntimeError("killed")])
    config = tiny_config(total_steps=512, eval_freq=128, checkpoint_freq=256)
    with pytest.raises(RuntimeError, match="killed"):
        train(config)
    monitor = config.run_dir / "monitor" / "0.monitor.csv"

    def episodes():
        lines = monitor.read_text().splitlines()[2:]
        return [(float(t), int(length)) for _, length, t in (line.split(",")[:3] for line in lines)]

    assert sum(length for _, length in episodes()) > 256  # the crashed run got past its checkpoint
    monkeypatch.undo()
    train(config, resume=True)
    lengths = [length for _, length in episodes()]
    assert 512 - 128 < sum(lengths) <= 512  # the run's steps, each counted once (the last episode may be open)
    times = [t for t, _ in episodes()]
    assert times == sorted(times)  # Monitor's clock runs on from the first start


@pytest.mark.parametrize("damage", ["truncated", "nan", "progress-text", "progress-type"])
def test_a_damaged_checkpoint_gets_a_one_line_error_naming_the_file(tiny_config, damage):
    config = tiny_config(total_steps=256, run_name="run")
    train(config)
    ckpt = RunDir(config.run_dir).checkpoint_files
    if damage == "truncated":
        content = (ckpt / "vecnormalize.npz").read_bytes()
        (ckpt / "vecnormalize.npz").write_bytes(content[: len(content) // 3])
        expected = r"cannot read VecNormalize statistics .*vecnormalize.npz"
    elif damage == "nan":
        with np.load(ckpt / "vecnormalize.npz") as data:
            arrays = {key: data[key] for key in data.files}
        arrays["obs_mean"] = np.full_like(arrays["obs_mean"], np.nan)
        np.savez(ckpt / "vecnormalize.npz", **arrays)
        expected = r"vecnormalize.npz hold non-finite values \(obs_mean\)"
    elif damage == "progress-text":
        (config.run_dir / "checkpoint" / "progress.json").write_text('{"timeste')
        expected = r"progress.json is damaged"
    else:
        (config.run_dir / "checkpoint" / "progress.json").write_text('{"timesteps": "many"}')
        expected = r"progress.json is damaged: timesteps is 'many'"
    with pytest.raises(ConfigError, match=expected) as info:
        train(tiny_config(total_steps=512, run_name="run"), resume=True)
    assert "\n" not in str(info.value)


def test_collect_demos_on_another_env_id_with_the_same_spaces(tiny_config):
    from rlgen.agents import collect_demos

    run_dir = train(tiny_config(total_steps=256)).run_dir
    trajs = collect_demos(run_dir, 2, seed=3, env_id="CartPole-v0")  # v1's spaces, a 200-step time limit
    assert trajs.env_id == "CartPole-v0" and len(trajs) == 2
    import gymnasium as gym

    np.testing.assert_array_equal(trajs[0].obs[0], gym.make("CartPole-v0").reset(seed=3)[0])
    assert all(len(traj) <= 200 for traj in trajs)
    same = collect_demos(run_dir, 2, seed=3)
    np.testing.assert_array_equal(trajs[0].acts[:10], same[0].acts[:10])  # the same policy acting
    with pytest.raises(ConfigError, match="Acrobot-v1 has observation_space .* cannot act there") as info:
        collect_demos(run_dir, 1, env_id="Acrobot-v1")
    assert "\n" not in str(info.value)


def test_training_runs_without_distribution_checks_and_a_nan_action_still_stops_it(tiny_config, monkeypatch):
    import contextlib

    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlgen.agents import run as run_module
    from rlgen.agents.envstack import FiniteGuard, NonFiniteAction
    from tests.fakes import LineEnv

    seen = []
    original = run_module.unchecked_distributions

    @contextlib.contextmanager
    def recording():
        with original():
            seen.append(torch.distributions.Distribution._validate_args)
            yield

    before = torch.distributions.Distribution._validate_args
    monkeypatch.setattr(run_module, "unchecked_distributions", recording)
    train(tiny_config(total_steps=128, eval_freq=0))
    assert seen == [False]  # learn() ran with the checks off ...
    assert torch.distributions.Distribution._validate_args == before  # ... and they are back as they were

    guard = FiniteGuard(DummyVecEnv([lambda: LineEnv(horizon=5)]), "rlgen-test/Line")
    guard.reset()
    guard.step(np.array([[0.5]], dtype=np.float32))
    with pytest.raises(NonFiniteAction, match="non-finite action at env step 2: its training diverged") as info:
        guard.step(np.array([[np.nan]], dtype=np.float32))
    assert "\n" not in str(info.value)

    # discrete actions: the NaN logits fail in torch's sampler before the guard sees an action (a traceback)
    hyperparams = {"n_steps": 128, "batch_size": 64, "n_epochs": 2, "learning_rate": float("inf")}
    with pytest.raises(NonFiniteAction, match="action probabilities on CartPole-v1 are not finite at env step 128"):
        train(tiny_config(total_steps=512, eval_freq=0, hyperparams=hyperparams, run_name="diverges"))

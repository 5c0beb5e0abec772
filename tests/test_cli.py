import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlgen.cli import build_parser, main
from rlgen.envs import TASKS
from tests.fakes import one_line_error as _one_line_error


def test_unknown_env_is_one_line_exit_2(capsys):
    err = _one_line_error(capsys, ["train", "--env", "Antt-v5"], "unknown env id 'Antt-v5'")
    assert "Ant-v5" in err  # names a valid choice
    err = _one_line_error(capsys, ["train", "--env", "Foo-v0"], "unknown env id 'Foo-v0'; see `rlgen envs`")
    assert "did you mean" not in err  # no far-fetched guesses
    _one_line_error(capsys, ["train", "--env", "ALE/Pong-v5"], "no env of the namespace 'ALE' is registered")
    _one_line_error(capsys, ["train", "--env", "rlegn/SparseMountainCar-v0"], "did you mean: rlgen/SparseMountainCar")


def test_unknown_preset_key_is_one_line_exit_2(capsys):
    err = _one_line_error(capsys, ["train", "--env", "CartPole-v1", "-p", "n_stepz=8"], "unknown key 'n_stepz'")
    assert err.endswith("; did you mean n_steps?") and "vf_coef" not in err  # the close key, not every valid one
    _one_line_error(capsys, ["train", "--env", "CartPole-v1", "-p", "polcy_kwargs.net_arch=[8]"],
                    "did you mean policy_kwargs.net_arch?")
    err = _one_line_error(capsys, ["train", "--env", "CartPole-v1", "-p", "zzz=8"], "unknown key 'zzz'")
    assert "did you mean" not in err and "n_steps" in err  # nothing close: the valid keys


def test_a_value_that_is_not_yaml_is_refused_naming_the_key(tmp_path, capsys):
    base = ["train", "--env", "CartPole-v1", "--out", str(tmp_path)]
    _one_line_error(capsys, [*base, "-p", "policy_kwargs.net_arch=[64,"],
                    "-p policy_kwargs.net_arch: '[64,' is not valid YAML (")
    err = _one_line_error(capsys, [*base, "-p", "env_kwargs.name=a: b: c"], "-p env_kwargs.name: 'a: b: c' is not")
    assert "quote text" in err
    assert not list(tmp_path.iterdir())  # refused before a run directory is made
    from rlgen.agents.config import parse_override

    assert parse_override('env_kwargs.name="a: b: c"') == (["env_kwargs", "name"], "a: b: c")  # quoted: text
    assert parse_override("run_name=[a") == (["run_name"], "[a")  # names are taken as typed


@pytest.mark.parametrize("argv", [["envs", "--json"], ["demos", "info", "d.npz", "--bogus"], ["gen", "train", "vae", "-x"]])
def test_an_unknown_option_is_named_by_its_own_command(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    command = " ".join(word for word in argv if not word.startswith("-") and "." not in word and word != "vae")
    assert info.value.code == 2
    assert f"usage: rlgen {command} [-h]" in err and f"rlgen {command}: error: unrecognized arguments: {argv[-1]}" in err


def test_unknown_algo_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--algo", "dqn"])
    assert info.value.code == 2
    assert "invalid choice: 'dqn'" in capsys.readouterr().err


def test_eval_of_a_missing_run_is_one_line_exit_2(capsys, tmp_path):
    _one_line_error(capsys, ["eval", str(tmp_path / "nope")], "is not a run directory")


def test_train_then_eval_json(capsys, tmp_path):
    code = main(["train", "--env", "CartPole-v1", "--steps", "256", "--out", str(tmp_path), "--no-progress",
                 "-p", "n_steps=128", "-p", "batch_size=64", "-p", "eval_freq=0", "-p", "n_epochs=1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "learning_curve.png" in out and "tensorboard --logdir" in out
    run_dir = tmp_path / "ppo_CartPole-v1_s0"
    assert main(["eval", str(run_dir), "--episodes", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and len(summary["returns"]) == 2
    assert summary["mean_return"] == pytest.approx(sum(summary["returns"]) / 2)
    # a flag that names a setting must agree with the run's own, and one that shapes a new run is refused,
    # rather than either being dropped without a word
    resume = ["train", "--resume", str(run_dir), "--steps", "384", "--no-progress"]
    _one_line_error(capsys, [*resume, "--env", "Acrobot-v1"], "holds a run with env_id 'CartPole-v1'; it cannot be "
                    "resumed with env_id 'Acrobot-v1'")
    _one_line_error(capsys, [*resume, "--seed", "1"], "with seed 1")
    _one_line_error(capsys, [*resume, "--bonus", "rnd"], "with bonus 'rnd'")
    _one_line_error(capsys, [*resume, "--run-name", "other"], "--run-name is for a new run")
    # resuming with a larger budget continues the same directory (flags that agree are welcome)
    assert main([*resume, "--env", "CartPole-v1", "--seed", "0"]) == 0
    assert "after 384 steps" in capsys.readouterr().out


def test_envs_lists_every_task(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for task in TASKS:
        assert task.id in out


def _commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
              ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command and command group under ``parser``, as (its words after `rlgen`, its parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*words, name), sub
                yield from _commands(sub, (*words, name))


def test_every_subcommand_has_help_that_explains_each_option(capsys):
    commands = dict(_commands(build_parser()))
    assert {("train",), ("eval",), ("envs",), ("bench",), ("demos", "collect"), ("demos", "info"),
            ("demos", "mix"), ("imitate",), ("gen", "train"), ("gen", "sample"), ("gen", "eval")
            } <= set(commands)
    for words, parser in commands.items():
        assert parser.description, words
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, (words, action.dest)  # argparse.SUPPRESS (a hidden old spelling) counts
        with pytest.raises(SystemExit) as info:
            main([*words, "--help"])
        assert info.value.code == 0
        assert "usage: rlgen " + " ".join(words) in capsys.readouterr().out


def test_a_diverged_learned_reward_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    import rlgen.agents
    import rlgen.cli as cli

    def diverge(config, resume=False):
        raise FloatingPointError("GAIL: non-finite discriminator reward at transition 4096")

    monkeypatch.setattr(rlgen.agents, "train", diverge)  # what `rlgen train` calls
    assert cli.main(["train", "--env", "CartPole-v1", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "non-finite discriminator reward at transition 4096" in err


def _option(words: list[str], option: str) -> argparse.Action:
    parser = dict(_commands(build_parser()))[tuple(words)]
    return next(a for a in parser._actions if option in a.option_strings)


def _commands_help(words: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        main([*words, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("words", [["train"], ["imitate"], ["gen", "train"]])
def test_out_is_the_parent_folder_wherever_a_run_directory_is_made(words):
    assert _option(words, "--out").help.startswith("parent folder of run directories (default ")
    assert _option(words, "--run-name").help.startswith("run directory name (default ")


def test_imitate_modes_is_a_warned_old_spelling_of_n_modes(capsys):
    parser = build_parser()
    assert parser.parse_args(["imitate", "--n-modes", "3"]).n_modes == 3
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["imitate", "--modes", "3"]).n_modes == 3
    assert capsys.readouterr().err == ("rlgen: warning: --modes is deprecated; use --n-modes (the old "
                                       "spelling will be removed in the next release)\n")
    assert parser.parse_args(["imitate", "--modes", "1e1"]).n_modes == 10  # parsed as --n-modes is
    with pytest.raises(SystemExit):
        parser.parse_args(["imitate", "--modes", "0"])
    help_text = _commands_help(["imitate"], capsys)
    assert "--n-modes K" in help_text and "--modes" not in help_text  # help shows the spelling to use


def test_eval_without_seed_leaves_the_seed_to_evaluate(monkeypatch, capsys):
    import rlgen.agents

    calls: list[dict] = []

    def evaluate(run_dir, **kwargs):
        calls.append(kwargs)
        return np.array([1.0, 3.0])

    monkeypatch.setattr(rlgen.agents, "evaluate", evaluate)  # what `rlgen eval` calls
    assert main(["eval", "RUN", "--episodes", "2"]) == 0
    assert "seed" not in calls[-1] and calls[-1]["episodes"] == 2  # evaluate's default: the run's eval seed
    assert main(["eval", "RUN", "--seed", "5"]) == 0
    assert calls[-1]["seed"] == 5
    assert "2.00 ± 1.00 over 2 episodes" in capsys.readouterr().out


@pytest.mark.parametrize("failing", ["model.zip", "vecnormalize.npz"])
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one_and_the_run_resumes(tmp_path, capsys, monkeypatch,
                                                                                     failing):
    import errno
    import json
    import zipfile

    import rlgen.atomic
    from rlgen.agents.rundir import RunDir
    from rlgen.cli import main

    real = rlgen.atomic.atomic_write
    writes = {"model": 0}

    def full_disk(path, write):
        # the first file a checkpoint writes, or a later one (its model already written)
        if "/checkpoint/" in str(path) and Path(path).name == failing:
            writes["model"] += 1
            if writes["model"] == 2:  # the second checkpoint: the disk is full half-way through the file
                def half(handle):
                    handle.write(b"partial")
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real(path, half)
        return real(path, write)

    monkeypatch.setattr(rlgen.atomic, "atomic_write", full_disk)
    argv = ["train", "--env", "CartPole-v1", "--steps", "768", "--out", str(tmp_path), "--run-name", "r",
            "-p", "n_steps=128", "-p", "checkpoint_freq=256", "-p", "eval_freq=0", "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left on the device writing" in err[0] and failing in err[0]
    ckpt = tmp_path / "r" / "checkpoint"
    assert json.loads((ckpt / "progress.json").read_text())["timesteps"] == 256  # the previous checkpoint
    assert not list(ckpt.glob(".*.tmp"))  # no half-written folder left behind
    with zipfile.ZipFile(RunDir(tmp_path / "r").checkpoint_files / "model.zip") as archive:
        assert json.loads(archive.read("data"))["num_timesteps"] == 256  # ... whole: its model is of that step
    monkeypatch.undo()  # space freed
    assert main(["train", "--resume", str(tmp_path / "r"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "r" / "result.json").read_text())["timesteps"] == 768


@pytest.mark.parametrize("module", ["rlgen", "rlgen.cli"])
def test_python_dash_m_runs_the_command_line(module):
    # `python -m rlgen envs` is the console script by another door: same parser, same exit codes
    ok = subprocess.run([sys.executable, "-m", module, "envs"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "SparseMountainCar" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", module, "trian"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "trian" in bad.stderr


def test_a_user_env_as_module_colon_id_trains_and_a_missing_module_is_one_line(tmp_path, monkeypatch, capsys):
    # gym.make("module:EnvId") imports module (which registers EnvId): the way to bring one's own env to a CLI
    (tmp_path / "my_envs.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('MyCartPole-v0', entry_point='gymnasium.envs.classic_control.cartpole:CartPoleEnv',\n"
        "             max_episode_steps=50)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "runs"
    assert main(["train", "--env", "my_envs:MyCartPole-v0", "--steps", "128", "-p", "n_steps=64", "-p",
                 "eval_episodes=1", "--out", str(out), "--no-progress"]) == 0
    run_dir = out / "ppo_my_envs-MyCartPole-v0_s0"
    assert (run_dir / "model.zip").is_file()
    assert main(["eval", str(run_dir), "--episodes", "1"]) == 0
    capsys.readouterr()
    _one_line_error(capsys, ["train", "--env", "no_such_module_here:X-v0"], "importing 'no_such_module_here' failed")
    _one_line_error(capsys, ["train", "--env", "my_envs:MyCartPol-v0"], "did you mean: MyCartPole-v0")


def test_ctrl_c_says_whether_a_checkpoint_was_kept_and_names_the_run_to_resume(tmp_path, capsys, monkeypatch):
    import rlgen.agents
    from rlgen.agents.rundir import RunDir

    def interrupt(config, resume=False, checkpoint=False):
        if checkpoint:
            RunDir(config.run_dir).checkpoint_dir.mkdir(parents=True)
            RunDir(config.run_dir).progress_file.write_text('{"timesteps": 256, "files": "step_256"}')
        raise KeyboardInterrupt

    argv = ["train", "--env", "CartPole-v1", "--out", str(tmp_path), "--run-name", "my run"]
    monkeypatch.setattr(rlgen.agents, "train", interrupt)  # Ctrl-C before the first checkpoint
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err == ("rlgen: interrupted (no checkpoint was written yet; run the same command again to start the run "
                   "anew)")
    monkeypatch.setattr(rlgen.agents, "train", lambda config, resume=False: interrupt(config, checkpoint=True))
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err == f"rlgen: interrupted (the last checkpoint is kept; resume with --resume '{tmp_path / 'my run'}')"


def test_an_action_space_the_algo_does_not_take_and_a_mistyped_hyperparameter_are_named(tmp_path, capsys):
    _one_line_error(capsys, ["train", "--algo", "sac", "--env", "CartPole-v1", "--out", str(tmp_path)],
                    "sac needs Box actions; CartPole-v1 has Discrete(2); use ppo, trpo or a2c")
    assert not (tmp_path / "sac_CartPole-v1_s0").exists()  # a run the agent refused leaves no run directory
    # a -p value of the wrong type for SB3's argument is refused before anything is built, naming the key
    base = ["train", "--env", "CartPole-v1", "--out", str(tmp_path)]
    _one_line_error(capsys, [*base, "-p", "n_steps=abc"], "ppo hyperparameter n_steps must be a number (default "
                    "2048), got 'abc'")
    _one_line_error(capsys, [*base, "-p", "normalize_advantage=abc"], "ppo hyperparameter normalize_advantage "
                    "must be true or false (default true), got 'abc'")
    _one_line_error(capsys, [*base, "--algo", "a2c", "-p", "gamma=true"], "a2c hyperparameter gamma must be a number")
    assert not (tmp_path / "ppo_CartPole-v1_s0").exists()


def test_a_non_finite_reward_names_the_runs_env_step_over_all_envs_and_across_a_resume(tmp_path, capsys,
                                                                                        monkeypatch):
    import gymnasium as gym

    env_id = "rlgen-test/NanLater-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point="tests.fakes:LineEnv", kwargs={"horizon": 50, "nan_reward_at": None})
    out = ["--out", str(tmp_path), "--run-name", "r", "--no-progress"]
    assert main(["train", "--env", env_id, "--n-envs", "2", "--steps", "256", "-p", "n_steps=64",
                 "-p", "batch_size=64", "-p", "eval_freq=0", "-p", "eval_episodes=1", *out]) == 0
    capsys.readouterr()
    # the resumed process's envs return NaN at their 64th step: the run's env step 256 + 64 x 2
    monkeypatch.setitem(gym.registry[env_id].kwargs, "nan_reward_at", 64)
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "r"), "--steps", "1024", "--no-progress"],
                    f"{env_id} returned a non-finite reward at env step 384 in env 0 of 2")


def test_gen_train_out_help_says_that_without_run_name_out_is_the_run_directory(capsys):
    from rlgen.cli.gen import _run_dir

    assert "without --run-name, DIR is the run directory itself" in _option(["gen", "train"], "--out").help
    args = build_parser().parse_args(["gen", "train", "vae", "--out", "gen"])
    assert _run_dir(args) == Path("gen")  # what the help says
    assert "deprecated" in capsys.readouterr().err


def test_train_help_names_the_default_env(capsys):
    from rlgen.agents import RunConfig

    assert f"default: {RunConfig().env_id}, or the config file's" in _option(["train"], "--env").help
    assert "rlgen/SparseMountainCar-v0" in " ".join(_commands_help(["train"], capsys).split())


def test_counts_and_seeds_take_whole_numbers_in_e_notation_and_bench_workers_must_be_positive(capsys):
    parser = build_parser()
    args = parser.parse_args(["train", "--seed", "1e2", "--n-envs", "1e1"])
    assert (args.seed, args.n_envs) == (100, 10)
    assert parser.parse_args(["imitate", "--seed", "1e2"]).seed == 100
    args = parser.parse_args(["eval", "RUN", "--episodes", "1e1", "--seed", "2e1"])
    assert (args.episodes, args.seed) == (10, 20)
    assert parser.parse_args(["demos", "collect", "RUN", "--seed", "1e3"]).seed == 1000
    assert parser.parse_args(["gen", "sample", "RUN", "--seed", "1e1"]).seed == 10
    assert parser.parse_args(["bench", "smoke", "--workers", "2"]).workers == 2
    for argv, needle in ((["bench", "smoke", "--workers", "-1"], "must be a positive whole number, got '-1'"),
                         (["train", "--n-envs", "0"], "must be a positive whole number, got '0'"),
                         (["train", "--seed", "-1"], "must be a non-negative whole number, got '-1'"),
                         (["eval", "RUN", "--episodes", "2.5"], "must be a positive whole number, got '2.5'")):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(argv)
        assert info.value.code == 2 and needle in capsys.readouterr().err, argv


def test_a_seed_past_2_to_the_32_is_refused_in_one_line(tmp_path, capsys):
    parser = build_parser()
    assert parser.parse_args(["train", "--seed", str(2**32 - 1)]).seed == 2**32 - 1
    for argv in (["train", "--seed", "1e12"], ["imitate", "--seed", str(2**32)]):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(argv)
        assert info.value.code == 2
        assert f"argument --seed: must be at most 2**32 - 1 = 4294967295, the largest numpy's generator takes, got " \
               f"{argv[-1]!r}" in capsys.readouterr().err
    base = ["train", "--env", "CartPole-v1", "--out", str(tmp_path)]
    _one_line_error(capsys, [*base, "-p", "seed=1e12"], "seed 1000000000000 is past 2**32 - 1 = 4294967295")
    (tmp_path / "seed.yaml").write_text("seed: 4294967296\n")
    _one_line_error(capsys, [*base, "--config", str(tmp_path / "seed.yaml")],
                    f"config file {tmp_path / 'seed.yaml'}: seed 4294967296 is past 2**32 - 1")
    # rlgen bench --first-seed S: the suite's seeds S, S + 1, ... are held to the same bound
    _one_line_error(capsys, ["bench", "smoke", "--first-seed", str(2**32 - 1), "--seeds", "2", "--plan",
                             "--out", str(tmp_path / "bench")], "seed 4294967296 is past 2**32 - 1")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["seed.yaml"]


def test_a_run_name_must_be_one_folder_name(tmp_path, capsys):
    out = tmp_path / "out"
    parser = build_parser()
    assert parser.parse_args(["train", "--run-name", "my run.v2"]).run_name == "my run.v2"
    for words in (["train"], ["imitate"], ["gen", "train", "vae"]):
        for name in ("../../escape", "a/b", "..", ".", ""):
            with pytest.raises(SystemExit) as info:
                parser.parse_args([*words, "--out", str(out), "--run-name", name])
            assert info.value.code == 2
            assert f"argument --run-name: {name!r} is not a folder name" in capsys.readouterr().err, (words, name)
    base = ["train", "--env", "CartPole-v1", "--out", str(out), "--steps", "64", "--no-progress"]
    _one_line_error(capsys, [*base, "-p", "run_name=../escape"], "run_name '../escape' is not a folder name")
    (tmp_path / "escape.yaml").write_text("run_name: ../escape\n")
    _one_line_error(capsys, [*base, "--config", str(tmp_path / "escape.yaml")], "is not a folder name")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["escape.yaml"]  # nothing written, in --out or not


def test_eval_takes_no_progress_as_the_other_commands_do():
    parser = build_parser()
    assert parser.parse_args(["eval", "RUN", "--no-progress"]).no_progress
    for words in (["train"], ["demos", "collect", "RUN"], ["gen", "sample", "RUN"]):
        assert parser.parse_args([*words, "--no-progress"]).no_progress


def test_an_empty_config_file_is_called_empty(tmp_path, capsys):
    for text in ("", "# nothing yet\n"):
        (tmp_path / "empty.yaml").write_text(text)
        _one_line_error(capsys, ["train", "--env", "CartPole-v1", "--config", str(tmp_path / "empty.yaml")],
                        f"config file {tmp_path / 'empty.yaml'} is empty: it must hold a mapping of keys")


def test_a_damaged_eval_csv_is_one_line_naming_the_file_and_line(tmp_path, capsys):
    assert main(["train", "--env", "CartPole-v1", "--steps", "256", "--out", str(tmp_path), "--run-name", "r",
                 "--no-progress", "-p", "n_steps=128", "-p", "batch_size=64", "-p", "n_epochs=1",
                 "-p", "eval_freq=128", "-p", "eval_episodes=1"]) == 0
    eval_file = tmp_path / "r" / "eval.csv"
    resume = ["train", "--resume", str(tmp_path / "r"), "--steps", "512", "--no-progress"]
    for text, needle in (("timesteps,mean_return\n1024,abc\n", "line 2 ('1024,abc') has mean_return 'abc', not a "
                                                                "number; correct or delete that line"),
                         (eval_file.read_text().splitlines()[0] + "\n128,1.0,0.0\n", "line 2 ('128,1.0,0.0') has "
                                                                                     "no episodes"),
                         ("timesteps,mean_return\n128,1.0,7\n", "line 2 ('128,1.0,7') has more values than the "
                                                                 "header's columns")):
        eval_file.write_text(text)
        _one_line_error(capsys, resume, f"{eval_file} is damaged: {needle}")


def test_a_config_files_top_level_sb3_argument_is_told_to_go_under_hyperparams(tmp_path, capsys):
    (tmp_path / "my_run.yaml").write_text("learning_rate: 1e-3\n")
    err = _one_line_error(capsys, ["train", "--config", str(tmp_path / "my_run.yaml")],
                          "unknown config key 'learning_rate' (a ppo hyperparameter: put it under hyperparams:)")
    assert "valid keys" not in err  # the hint says where it goes; no list of every key
    (tmp_path / "sac.yaml").write_text("algo: sac\ntau: 0.01\n")
    _one_line_error(capsys, ["train", "--config", str(tmp_path / "sac.yaml")], "'tau' (a sac hyperparameter")
    (tmp_path / "typo.yaml").write_text("learning_rat: 1e-3\n")
    err = _one_line_error(capsys, ["train", "--config", str(tmp_path / "typo.yaml")], "unknown config key 'learning_rat'")
    assert "hyperparameter" not in err
    (tmp_path / "near.yaml").write_text("total_step: 1000\n")
    err = _one_line_error(capsys, ["train", "--config", str(tmp_path / "near.yaml")],
                          "unknown config key 'total_step'; did you mean 'total_steps'?")
    assert "valid keys" not in err


def test_an_env_refusing_an_env_kwargs_value_is_told_to_check_the_values(tmp_path, capsys):
    err = _one_line_error(capsys, ["train", "--env", "FrozenLake-v1", "-p", "env_kwargs.map_name=nope", "--steps", "64",
                                   "--out", str(tmp_path), "--no-progress"],
                          "FrozenLake-v1 could not be built with env_kwargs {'map_name': 'nope'}: KeyError")
    assert "check the env_kwargs values" in err


def test_imitate_bc_refuses_steps_it_would_ignore(tmp_path, capsys):
    argv = ["imitate", "--demos", str(tmp_path / "d.npz"), "--env", "CartPole-v1", "--steps", "500"]
    _one_line_error(capsys, [*argv, "--method", "bc"], "--steps would be ignored: --method bc takes no env steps "
                    "(its updates: -p bc_kwargs.gradient_steps=N)")
    (tmp_path / "bc.yaml").write_text("imitation: bc\n")  # the method from the config file
    _one_line_error(capsys, [*argv, "--config", str(tmp_path / "bc.yaml")], "--steps would be ignored")


def test_a_run_directory_already_holding_a_run_points_to_the_run_name_flag(tmp_path, capsys):
    (tmp_path / "r" / "checkpoint").mkdir(parents=True)
    (tmp_path / "r" / "checkpoint" / "progress.json").write_text('{"timesteps": 256, "files": "step_256"}')
    _one_line_error(capsys, ["train", "--env", "CartPole-v1", "--out", str(tmp_path), "--run-name", "r"],
                    "already holds a run; resume it or choose another run_name (--run-name)")


def test_a_bad_value_in_a_config_file_names_the_file(tmp_path, capsys):
    config_file = tmp_path / "my_run.yaml"
    config_file.write_text("seed: abc\n")
    _one_line_error(capsys, ["train", "--env", "CartPole-v1", "--config", str(config_file)],
                    f"config file {config_file}: seed must be a non-negative integer, got 'abc'")
    err = _one_line_error(capsys, ["train", "--env", "CartPole-v1", "-p", "seed=abc"], "seed must be a non-negative")
    assert "config file" not in err  # not from a file
    config_file.write_text("seed: 1e1\ntotal_steps: 1e6\n")  # whole numbers in e-notation stay welcome
    from rlgen.agents.config import build_config

    config = build_config(env_id="CartPole-v1", config_file=config_file)
    assert (config.seed, config.total_steps) == (10, 1_000_000)


def test_the_algorithm_can_be_given_as_a_word(tmp_path, capsys):
    argv = ["--env", "CartPole-v1", "--steps", "64", "--out", str(tmp_path), "--no-progress",
            "-p", "n_steps=32", "-p", "eval_freq=0"]
    assert main(["train", "a2c", *argv]) == 0
    config = yaml.safe_load((tmp_path / "a2c_CartPole-v1_s0" / "config.yaml").read_text())
    assert config["algo"] == "a2c"
    _one_line_error(capsys, ["train", "a2c", "--algo", "ppo", *argv], "two algorithms: a2c and --algo ppo; give one")


def test_sigterm_stops_a_training_command_as_ctrl_c_does(tmp_path):
    # killed with SIGTERM, `rlgen train` died without a word (exit 143); now it stops as Ctrl-C does and says what
    # is kept and how to go on
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "rlgen", "train", "--env", "CartPole-v1", "--steps", "1000000",
                             "--out", str(tmp_path), "--no-progress", "-p", "n_steps=64"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("run directory:")
        # training under way (episodes logged): a signal during the imports before it once ended the process by
        # SIGINT (returncode -2) after the right message; the interrupted import's code is not rlgen's
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(
                len(p.read_text().splitlines()) for p in tmp_path.glob("*/monitor/*.csv")) < 5:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("rlgen: interrupted ("), err


def test_a_reader_that_goes_away_is_no_traceback():
    # `rlgen envs | head -1`: stdout's reader closed before the command wrote
    proc = subprocess.Popen([sys.executable, "-m", "rlgen", "envs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the command has imported rlgen
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 1

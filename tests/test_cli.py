import json

import pytest

from rlgen.cli import main
from rlgen.envs import TASKS
from tests.fakes import one_line_error as _one_line_error


def test_unknown_env_is_one_line_exit_2(capsys):
    err = _one_line_error(capsys, ["train", "--env", "Antt-v5"], "unknown env id 'Antt-v5'")
    assert "Ant-v5" in err  # names a valid choice


def test_unknown_preset_key_is_one_line_exit_2(capsys):
    err = _one_line_error(capsys, ["train", "--env", "CartPole-v1", "-p", "n_stepz=8"], "unknown key 'n_stepz'")
    assert "n_steps" in err


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
    # resuming with a larger budget continues the same directory
    assert main(["train", "--resume", str(run_dir), "--steps", "384", "--no-progress"]) == 0
    assert "after 384 steps" in capsys.readouterr().out


def test_envs_lists_every_task(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for task in TASKS:
        assert task.id in out


def test_every_subcommand_has_help(capsys):
    for command in ("train", "eval", "envs"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert "usage: rlgen " + command in capsys.readouterr().out


def test_a_diverged_learned_reward_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    import rlgen.agents
    import rlgen.cli as cli

    def diverge(config, resume=False):
        raise FloatingPointError("GAIL: non-finite discriminator reward at transition 4096")

    monkeypatch.setattr(rlgen.agents, "train", diverge)  # what `rlgen train` calls
    assert cli.main(["train", "--env", "CartPole-v1", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "non-finite discriminator reward at transition 4096" in err

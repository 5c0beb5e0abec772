"""`rlgen bench SUITE --plan`: what a suite has left and how long it will take, timed by its finished runs."""

import json

import pytest
import yaml

from rlgen.bench import load_suite
from rlgen.bench.plan import estimate_seconds, plan_lines, plan_runs
from rlgen.cli import main

SUITE = {"name": "plan-test", "seeds": 2, "total_steps": 1000,
         "tasks": [{"env_id": "CartPole-v1"}, {"env_id": "Acrobot-v1"}, {"env_id": "Pendulum-v1"}],
         "runs": [{"algo": "ppo"}, {"algo": "a2c", "label": "slow"}]}
K = 1000.0  # seconds are large enough to show in hours


def _finish(run, seconds, where=None, steps=1000, learn=None):
    """A finished run's record (config and result) in its run directory, or in ``where``."""
    folder = (where / run.config.run_dir.name) if where is not None else run.config.run_dir
    folder.mkdir(parents=True)
    run.config.save(folder / "config.yaml")
    (folder / "result.json").write_text(json.dumps({"timesteps": steps, "wall_time": seconds,
                                                    "learn_time": seconds if learn is None else learn}))


@pytest.fixture
def suite_runs(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    suite = load_suite(path)
    runs = {run.config.run_name: run for run in suite.runs(tmp_path / "out")}
    archive = tmp_path / "archive"
    # CartPole: ppo 10 and 20 (x K s), slow 40 (seed 0, in the archive; seed 1 was resumed: its learn_time is its
    # last session's alone, its wall time the whole run's); Acrobot: ppo 30; Pendulum: nothing
    _finish(runs["ppo_CartPole-v1_s0"], 10 * K)
    _finish(runs["ppo_CartPole-v1_s1"], 20 * K, learn=2 * K)
    _finish(runs["slow_CartPole-v1_s0"], 40 * K, where=archive)
    _finish(runs["ppo_Acrobot-v1_s0"], 30 * K)
    # ppo on Acrobot seed 1 is a quarter done
    checkpoint = runs["ppo_Acrobot-v1_s1"].config.run_dir / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "progress.json").write_text(json.dumps({"timesteps": 250}))
    return suite, runs, archive, tmp_path


def test_progress_comes_from_the_run_directories_and_the_archive(suite_runs):
    suite, runs, archive, _ = suite_runs
    plans = {p.run.config.run_name: p for p in plan_runs(list(runs.values()), archive)}
    assert {name for name, p in plans.items() if p.finished} == {"ppo_CartPole-v1_s0", "ppo_CartPole-v1_s1",
                                                                  "ppo_Acrobot-v1_s0", "slow_CartPole-v1_s0"}
    assert plans["slow_CartPole-v1_s0"].where == "archive"
    assert plans["ppo_Acrobot-v1_s1"].steps_left == 750 and plans["slow_Pendulum-v1_s0"].steps_left == 1000
    # the archive's run counts only if it is this run: not without --archive, not with other settings
    assert not {p.run.config.run_name: p for p in plan_runs(list(runs.values()))}["slow_CartPole-v1_s0"].finished
    record = archive / "slow_CartPole-v1_s0" / "config.yaml"
    record.write_text(record.read_text().replace("seed: 0", "seed: 7"))
    assert not {p.run.config.run_name: p for p in plan_runs(list(runs.values()), archive)}[
        "slow_CartPole-v1_s0"].finished


def test_a_run_cut_short_here_trains_again_whatever_the_archive_holds(suite_runs):
    _, runs, archive, _ = suite_runs
    run = runs["slow_CartPole-v1_s0"]
    _finish(run, 5 * K, steps=500)  # a result of half the budget in --out: the archive does not restore over it
    (plan,) = plan_runs([run], archive)
    assert not plan.finished and plan.steps_left == 1000


def test_each_run_left_is_timed_by_its_cell_else_its_task_else_its_method(suite_runs):
    _, runs, archive, _ = suite_runs
    plans = plan_runs(list(runs.values()), archive)
    estimate = {plans[i].run.config.run_name: value for i, value in estimate_seconds(plans).items()}
    assert estimate["slow_CartPole-v1_s1"] == pytest.approx((40 * K, "cell"))  # 40 s a step, 1,000 steps
    assert estimate["ppo_Acrobot-v1_s1"] == pytest.approx((22.5 * K, "cell"))  # 750 steps left at 30
    # slow has no Acrobot run: the task's ppo (30 s a step) times slow's cost against ppo's on CartPole (40/15;
    # the resumed run's wall time, 20, not its last session's 2)
    assert estimate["slow_Acrobot-v1_s0"][1] == "task"
    assert estimate["slow_Acrobot-v1_s0"][0] == pytest.approx(30 * K * 40 / 15)
    # nothing ran on Pendulum: the method's mean elsewhere, marked rough
    assert estimate["ppo_Pendulum-v1_s0"] == pytest.approx((1000 * (15 + 30) / 2, "method"))
    assert estimate["slow_Pendulum-v1_s0"] == pytest.approx((40 * K, "method"))


def test_the_plan_prints_per_task_and_in_all_and_writes_nothing(suite_runs, capsys):
    _, _, archive, tmp_path = suite_runs
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["bench", str(tmp_path / "suite.yaml"), "--plan", "--out", str(tmp_path / "out"), "--archive",
                 str(archive), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "12 runs; finished 4 (3 in --out, 1 only in the archive), 1 under way" in out
    assert "| CartPole-v1 | 3/4 | 1 | 1k | 11.1 | cell |" in out
    pendulum = 2 * 22.5 * K + 2 * 40 * K
    assert f"| Pendulum-v1 | 0/4 | 4 | 4k | ~{pendulum / 3600:.1f} | method |" in out
    total = 40 * K + (22.5 * K + 80 * K + 30 * K * 40 / 15) + pendulum  # CartPole, Acrobot, Pendulum
    assert (f"left: about {total / 3600:.1f} core-hours ({pendulum / 3600:.1f} of them rough, timed by the method "
            f"on other tasks), about {total / 7200:.1f} hours with 2 worker(s)") in out
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    # a part of the suite (seed 1 alone) is timed by every finished run of it, seed 0's included
    assert main(["bench", str(tmp_path / "suite.yaml"), "--plan", "--out", str(tmp_path / "out"), "--archive",
                 str(archive), "--first-seed", "1", "--seeds", "1"]) == 0
    assert "| CartPole-v1 | 1/2 | 1 | 1k | 11.1 | cell |" in capsys.readouterr().out


def test_plan_lines_say_when_nothing_can_time_a_run(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    lines = plan_lines("plan-test", load_suite(path).runs(tmp_path / "out"), None, 1)
    assert "| CartPole-v1 | 0/4 | 4 | 4k | ? | none |" in lines
    assert "left: 12 run(s), none of which a finished run of the suite can time" in lines

import itertools
import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

import rlgen
from rlgen.agents import RunConfig
from rlgen.agents.config import ConfigError
from rlgen.bench import load_suite, run_suite, stats
from rlgen.bench.report import collect
from rlgen.bench.runner import run_suite_runs
from rlgen.cli import main


def test_iqm_is_the_mean_of_the_middle_half():
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert stats.iqm(np.array([0, 0, 1, 1, 1, 1, 100, -100])) == pytest.approx(0.75)  # outliers ignored
    # n not divisible by 4: floor(n / 4) cut from each end, as rliable (scipy.stats.trim_mean(x, 0.25))
    assert stats.iqm(np.array([1.0, 2, 3, 4, 5])) == pytest.approx(3.0)  # 2, 3, 4
    assert stats.iqm(np.array([0.0, 0, 0, 10, 10])) == pytest.approx(10 / 3)  # 0, 0, 10
    from scipy.stats import trim_mean

    x = np.random.default_rng(0).normal(size=30)
    assert stats.iqm(x) == pytest.approx(trim_mean(x, 0.25))


def test_bootstrap_interval_is_the_percentile_interval_of_the_resampled_means():
    # two runs, 0 and 1: a resample's mean is 0, 0.5 or 1 with chances 1/4, 1/2, 1/4, so the 2.5% and 97.5%
    # percentiles of 2,000 resampled means are 0 and 1; with five runs 0, 0, 0, 0, 1 the chance that a resample
    # holds no 1 is 0.8^5 = 0.33 > 0.025, so the low end is 0, and the 97.5% point is 0.6 (three or more 1s:
    # 5.8%; four or more: 0.67%)
    assert stats.bootstrap_ci([0.0, 1.0])[1:] == (0.0, 1.0)
    point, low, high = stats.bootstrap_ci([0.0, 0, 0, 0, 1])
    assert (point, low, high) == (pytest.approx(0.2), 0.0, pytest.approx(0.6))
    # a 90% interval: the 5% and 95% points of the means of 2,000 resamples of the runs
    x = np.random.default_rng(1).normal(size=6)
    means = x[np.random.default_rng(7).integers(0, 6, size=(2000, 6))].mean(axis=1)
    assert stats.bootstrap_ci(x, confidence=0.9, seed=7)[1:] == pytest.approx(tuple(np.quantile(means, [0.05, 0.95])))


def test_permutation_test_counts_every_split():
    # 5 runs against 5, all of one group above all of the other: only the observed split and its mirror
    # image are as far apart, 2 of the 252 ways to split ten runs into five and five
    assert stats.permutation_test([1.0] * 5, [0.0] * 5) == pytest.approx(2 / 252)
    # three successes against none: the 21 splits with all three 1s on one side, on either side
    assert stats.permutation_test([0.3, 0.2, 0.1, 0, 0], [0.0] * 5) == pytest.approx(2 * 21 / 252)
    assert stats.permutation_test([1.0, 2, 3], [1.0, 2, 3]) == 1.0
    # too many splits to count: a seeded sample of them, near the exact value
    a, b = np.arange(12.0), np.arange(12.0) + 8
    assert stats.permutation_test(a, b) < 0.01 < stats.permutation_test(a, b + -7.5)


def test_permutation_test_counts_splits_tied_with_the_observed_one_whatever_the_rounding():
    # one run 0.1 below four others, all else alike: every split puts that run on one side or the other, so
    # every split is exactly as far apart as the observed one and p is 1; at returns in the hundreds the
    # differences of the 252 splits differ from the observed one in their last bits, and the ties must count
    assert stats.permutation_test([0.3, 0.3, 0.2, 0.3, 0.3], [0.3] * 5) == 1.0
    assert stats.permutation_test([315.3, 315.3, 315.2, 315.3, 315.3], [315.3] * 5) == 1.0
    # never below the smallest p the splits allow (2/252 for 5 against 5), at any scale of the scores
    a, b = 4042127.3 + np.zeros(5), 4042127.3 + np.array([3.1, 1.0, 0.5, 1.2, 6.4])
    assert stats.permutation_test(a, b) == pytest.approx(2 / 252)
    # the exact count, in integers, of splits at least as far apart as the observed one (tenths of a return)
    rng = np.random.default_rng(0)
    for _ in range(50):
        tenths = rng.integers(4380, 4400, size=10)
        pooled = tenths.sum()
        observed = abs(2 * tenths[:5].sum() - pooled)
        far = sum(abs(2 * tenths[list(first)].sum() - pooled) >= observed
                  for first in itertools.combinations(range(10), 5))
        assert stats.permutation_test(tenths[:5] / 10, tenths[5:] / 10) == pytest.approx(far / 252)


def test_permutation_test_of_a_group_with_a_value_that_is_not_finite_is_nan_not_significant():
    assert np.isnan(stats.permutation_test([1.0, np.nan, 2.0], [1.0, 2.0, 3.0]))
    assert np.isnan(stats.permutation_test([np.inf, 1.0], [1.0, 2.0]))
    assert np.isnan(stats.permutation_test([], [1.0, 2.0]))


def test_bootstrap_interval_covers_and_narrows():
    rng = np.random.default_rng(0)
    small, large = rng.normal(3.0, 1.0, 5), rng.normal(3.0, 1.0, 500)
    point, lo, hi = stats.bootstrap_ci(small)
    assert lo <= point <= hi and point == pytest.approx(small.mean())
    _, lo2, hi2 = stats.bootstrap_ci(large)
    assert lo2 < 3.0 < hi2
    assert hi2 - lo2 < (hi - lo) / 3


def test_stratified_bootstrap_resamples_within_tasks():
    # task A always scores 0, task B always 1: any within-task resample gives the same pooled mean
    point, lo, hi = stats.stratified_bootstrap_ci([np.zeros(3), np.ones(3)], stats.mean)
    assert point == lo == hi == pytest.approx(0.5)
    point, lo, hi = stats.stratified_bootstrap_ci([np.array([0.0, 1.0, 2.0])], stats.mean)
    assert lo < point < hi


def test_performance_profile_and_normalise():
    taus = np.array([-1.0, 0.5, 2.0])
    assert stats.performance_profile(np.array([0.0, 1.0]), taus).tolist() == [1.0, 0.5, 0.0]
    assert stats.normalise(np.array([10.0, 55.0]), 10.0, 100.0).tolist() == [0.0, 0.5]
    with pytest.raises(ValueError):
        stats.normalise(1.0, 2.0, 2.0)


def test_smoke_suite_runs_skips_and_reports(tmp_path, capsys):
    suite = load_suite("smoke")
    statuses, report = run_suite(suite, tmp_path, workers=2)
    assert sorted(s.status for s in statuses) == ["done", "done"]
    text = report.read_text()
    assert "| CartPole-v1 | ppo | 2/2 |" in text and "IQM" in text
    for png in ("smoke_curves.png", "smoke_profile.png"):
        assert (tmp_path / png).stat().st_size > 1000
    finals = {s.name: s.final_return for s in statuses}
    # the per-seed finals in the report are those of the runs
    for value in finals.values():
        assert f"{value:.1f}" in text
    # re-running trains nothing: every run is skipped and its files stay untouched
    model = tmp_path / "runs" / "ppo_CartPole-v1_s0" / "model.zip"
    mtime = model.stat().st_mtime_ns
    statuses, _ = run_suite(suite, tmp_path, workers=2)
    assert [s.status for s in statuses] == ["skipped", "skipped"]
    assert model.stat().st_mtime_ns == mtime
    # a larger budget resumes the finished runs rather than starting over
    runs = suite.runs(tmp_path, seeds=1, total_steps=2560)
    statuses = run_suite_runs(runs, workers=1)
    assert statuses[0].status == "done"
    result = json.loads((tmp_path / "runs" / "ppo_CartPole-v1_s0" / "result.json").read_text())
    assert result["timesteps"] == 2560


def test_a_failed_run_is_recorded_and_the_suite_goes_on(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({
        "name": "mixed", "seeds": 1, "total_steps": 256,
        "runs": [
            {"algo": "ppo", "env_id": "CartPole-v1", "label": "bad", "env_kwargs": {"no_such_kwarg": 1}},
            {"algo": "ppo", "env_id": "CartPole-v1", "label": "good", "eval_freq": 0,
             "overrides": ["n_steps=128", "batch_size=64", "n_epochs=1"]},
        ],
    }))
    statuses, report = run_suite(load_suite(path), tmp_path / "out", workers=1)
    by_label = {s.name.split("_")[0]: s for s in statuses}
    assert by_label["bad"].status == "failed" and "no_such_kwarg" in by_label["bad"].error
    assert by_label["good"].status == "done"
    error = json.loads((tmp_path / "out" / "runs" / "bad_CartPole-v1_s0" / "error.json").read_text())
    assert "no_such_kwarg" in error["error"] and "Traceback" in error["traceback"]
    assert "## Failed runs" in report.read_text()


def test_bad_suite_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["bench", "nosuchsuite"]) == 2
    err = capsys.readouterr().err
    assert "unknown suite 'nosuchsuite'" in err and "smoke" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("runs: []\n")
    assert main(["bench", str(bad)]) == 2
    assert "non-empty `runs` list" in capsys.readouterr().err
    # a typo in one run's wrapper settings stops the suite before any run starts, naming the run
    bad.write_text("name: typo\nruns:\n  - {algo: ppo, env_id: CartPole-v1}\n"
                   "  - {algo: ppo, env_id: CartPole-v1, label: rnd, bonus: rnd, bonus_kwargs: {betta: 1}}\n")
    assert main(["bench", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "suite 'typo', run rnd on CartPole-v1: bonus_kwargs.betta is no setting of RND" in err
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.slow
def test_ray_backend_gives_the_local_results(tmp_path):
    pytest.importorskip("ray.tune")
    suite = load_suite("smoke")
    local, _ = run_suite(suite, tmp_path / "local", workers=2)
    remote, report = run_suite(suite, tmp_path / "ray", backend="ray", workers=2)
    assert sorted(s.status for s in remote) == ["done", "done"]
    # the same train() with the same seeds: identical results on either backend
    assert {s.name: s.final_return for s in remote} == {s.name: s.final_return for s in local}
    assert "2/2" in report.read_text()


def test_entry_seeds_and_budgets_override_the_suites(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({
        "name": "s", "seeds": 4, "total_steps": 1000,
        "runs": [{"algo": "ppo", "env_id": "CartPole-v1"},
                 {"algo": "ppo", "env_id": "Pendulum-v1", "seeds": 2, "total_steps": 3000}],
    }))
    runs = load_suite(path).runs(tmp_path)
    assert [(r.env_id, r.seed, r.config.total_steps) for r in runs if r.env_id == "Pendulum-v1"] == \
        [("Pendulum-v1", 0, 3000), ("Pendulum-v1", 1, 3000)]
    assert len([r for r in runs if r.env_id == "CartPole-v1"]) == 4
    # --seeds and --steps from the command line win over both
    runs = load_suite(path).runs(tmp_path, seeds=1, total_steps=500)
    assert [(r.seed, r.config.total_steps) for r in runs] == [(0, 500), (0, 500)]


def test_stopping_a_suite_ends_its_workers(tmp_path):
    """A killed suite must not leave workers training on as orphans."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "from rlgen.bench import load_suite, run_suite\n"
        f"run_suite(load_suite('smoke'), {str(tmp_path)!r}, workers=2, total_steps=10**7)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    children: list[str] = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list(tmp_path.glob("runs/*/config.yaml")):
            time.sleep(0.5)
        assert list(tmp_path.glob("runs/*/config.yaml")), "the workers never started"
        children = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
        assert children
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
        time.sleep(1)
        alive = [pid for pid in children if os.path.exists(f"/proc/{pid}")
                 and "zombie" not in open(f"/proc/{pid}/status").read().lower()]
        assert not alive, f"orphaned workers still running: {alive}"
    finally:
        parent.kill()
        for pid in children:  # never leave a broken runner's workers behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def test_a_suites_tasks_cross_its_runs_and_a_run_can_keep_to_some(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({
        "name": "s", "seeds": 2, "total_steps": 1000,
        "tasks": [{"env_id": "CartPole-v1", "overrides": ["n_steps=64"]},
                  {"env_id": "Acrobot-v1", "total_steps": 3000}],
        "runs": [{"algo": "ppo"},
                 {"algo": "a2c", "label": "a2c-lr", "tasks": ["Acrobot-v1"], "overrides": ["learning_rate=0.01"],
                  "total_steps": 2000},
                 {"algo": "ppo", "label": "alone", "env_id": "Pendulum-v1"}],
    }))
    runs = load_suite(path).runs(tmp_path)
    cells = [(r.label, r.env_id, r.seed, r.config.total_steps) for r in runs]
    assert cells == [("ppo", "CartPole-v1", 0, 1000), ("ppo", "CartPole-v1", 1, 1000),
                     ("ppo", "Acrobot-v1", 0, 3000), ("ppo", "Acrobot-v1", 1, 3000),
                     ("a2c-lr", "Acrobot-v1", 0, 2000), ("a2c-lr", "Acrobot-v1", 1, 2000),  # the run's budget wins
                     ("alone", "Pendulum-v1", 0, 1000), ("alone", "Pendulum-v1", 1, 1000)]
    assert runs[0].config.hyperparams["n_steps"] == 64  # the task's overrides reach its runs
    assert runs[4].config.hyperparams["learning_rate"] == 0.01
    # a list of seeds (--first-seed on the command line) replaces the suite's
    assert [r.seed for r in load_suite(path).runs(tmp_path, seeds=[100, 101], match="^ppo_Cart")] == [100, 101]
    # a task a run names must be one of the suite's
    data = yaml.safe_load(path.read_text())
    data["runs"][1]["tasks"] = ["Pendulum-v1"]
    path.write_text(yaml.safe_dump(data))
    assert main(["bench", str(path), "--out", str(tmp_path)]) == 2
    assert "names task 'Pendulum-v1', which is not in `tasks`" in capsys.readouterr().err


def test_a_report_shows_published_figures_beside_its_own_and_each_runs_time(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({
        "name": "s", "seeds": 2, "total_steps": 512,
        "runs": [{"algo": "ppo", "env_id": "CartPole-v1",
                  "overrides": ["n_steps=256", "batch_size=64", "n_epochs=1", "policy_kwargs.net_arch=[8]"]}],
        "published": {"CartPole-v1": {"ppo": {"return": 500, "sd": 0, "source": "a zoo, 100k steps"}}},
    }))
    _, report = run_suite(load_suite(path), tmp_path / "out", workers=1)
    text = report.read_text()
    published = text.split("## Published figures beside these")[1].split("##")[0]
    assert "| CartPole-v1 | ppo |" in published and "| 500 ± 0 | a zoo, 100k steps |" in published
    assert "(2) |" in published  # both seeds counted beside it
    timing = text.split("## Time per run")[1].split("##")[0]
    row = next(line for line in timing.splitlines() if line.startswith("| CartPole-v1 | ppo |"))
    assert row.split("|")[3].strip() == "2" and float(row.split("|")[5].replace(",", "")) > 0  # steps/s
    data = yaml.safe_load(path.read_text())
    data["published"]["CartPole-v1"]["ppo"] = {"return": "high"}
    path.write_text(yaml.safe_dump(data))
    assert main(["bench", str(path), "--out", str(tmp_path / "o2")]) == 2
    assert "needs a numeric `return` and a `source`" in capsys.readouterr().err


def test_first_seed_runs_tuning_seeds(tmp_path):
    out = tmp_path / "out"
    assert main(["bench", "smoke", "--first-seed", "100", "--seeds", "1", "--workers", "1", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir() if not p.name.startswith(".")) == ["ppo_CartPole-v1_s100"]
    config = yaml.safe_load((out / "runs" / "ppo_CartPole-v1_s100" / "config.yaml").read_text())
    assert config["seed"] == 100


def test_match_keeps_part_of_a_suite(tmp_path, capsys):
    suite = load_suite("sparse")
    runs = suite.runs(tmp_path, match="^trpo.*(MountainCar|CartPole)")
    assert {r.label for r in runs} == {"trpo", "trpo+vime"}
    assert {r.env_id for r in runs} == {"rlgen/SparseMountainCar-v0", "rlgen/SparseCartPoleSwingup-v0"}
    assert len(runs) == 20
    assert main(["bench", "smoke", "--match", "nothing-like-this", "--out", str(tmp_path)]) == 2
    assert "keeps none of the 2 runs" in capsys.readouterr().err


def test_runs_start_in_the_order_asked_for(tmp_path, capsys, monkeypatch):
    from rlgen.bench.suite import order_runs

    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"name": "ordered", "seeds": 2, "total_steps": 512, "runs": [
        {"algo": "ppo", "env_id": "CartPole-v1"}, {"algo": "ppo", "env_id": "Pendulum-v1"},
        {"algo": "a2c", "env_id": "CartPole-v1"}]}))
    runs = load_suite(str(path)).runs(tmp_path)
    names = {order: [run.config.run_name for run in order_runs(runs, order)] for order in ("suite", "task", "seed")}
    assert names["suite"] == ["ppo_CartPole-v1_s0", "ppo_CartPole-v1_s1", "ppo_Pendulum-v1_s0", "ppo_Pendulum-v1_s1",
                              "a2c_CartPole-v1_s0", "a2c_CartPole-v1_s1"]
    assert names["task"] == ["ppo_CartPole-v1_s0", "ppo_CartPole-v1_s1", "a2c_CartPole-v1_s0", "a2c_CartPole-v1_s1",
                             "ppo_Pendulum-v1_s0", "ppo_Pendulum-v1_s1"]
    assert names["seed"] == ["ppo_CartPole-v1_s0", "ppo_Pendulum-v1_s0", "a2c_CartPole-v1_s0", "ppo_CartPole-v1_s1",
                             "ppo_Pendulum-v1_s1", "a2c_CartPole-v1_s1"]
    with pytest.raises(ConfigError, match="unknown run order 'random'"):
        order_runs(runs, "random")
    # the harness hands its runner the runs in that order (the local pool starts them in the order given)
    handed = []
    monkeypatch.setattr("rlgen.bench.run_suite_runs", lambda runs, **kwargs: handed.extend(runs) or [])
    run_suite(load_suite(str(path)), tmp_path / "out", order="seed")
    assert [run.config.run_name for run in handed] == names["seed"]
    with pytest.raises(SystemExit):
        main(["bench", str(path), "--order", "random"])
    assert "invalid choice: 'random'" in capsys.readouterr().err


def test_a_suite_run_in_parts_reports_every_part(tmp_path):
    suite = load_suite("smoke")
    run_suite(suite, tmp_path, workers=1, total_steps=512, match="_s0$")
    statuses, report = run_suite(suite, tmp_path, workers=1, total_steps=512, match="_s1$")
    assert [s.name for s in statuses] == ["ppo_CartPole-v1_s1"]
    text = report.read_text()
    assert "| CartPole-v1 | ppo | 2/2 |" in text  # seed 0 from the first part, seed 1 from this
    assert f"the report covers every run of the suite finished under `{tmp_path}`" in text


def test_a_run_stopped_before_its_first_checkpoint_starts_over(tmp_path):
    suite = load_suite("smoke")
    runs = suite.runs(tmp_path, seeds=1, total_steps=512)
    run_dir = runs[0].config.run_dir
    run_dir.mkdir(parents=True)
    runs[0].config.save(run_dir / "config.yaml")  # what a run killed in its first minutes leaves
    (run_dir / "monitor").mkdir()
    statuses = run_suite_runs(runs, workers=1)
    assert statuses[0].status == "done", statuses[0].error
    assert json.loads((run_dir / "result.json").read_text())["timesteps"] == 512


def _check_bonus_kwargs(config):
    """A bonus's settings are keywords its wrapper takes (RunConfig.validated() does not look into them)."""
    import inspect

    from rlgen.exploration import BONUS_WRAPPERS

    if config.bonus:
        try:
            inspect.signature(BONUS_WRAPPERS[config.bonus]).bind_partial(None, **config.bonus_kwargs)
        except TypeError as exc:
            raise AssertionError(f"{config.run_name}: bonus_kwargs {config.bonus_kwargs}: {exc}") from None


def test_every_built_in_suite_loads_and_builds_its_runs(tmp_path):
    """A typo in a shipped suite (an unknown key, env id, algo or bonus option) fails here, not hours into a run."""
    from rlgen.bench import available_suites

    for name in available_suites():
        runs = load_suite(name).runs(tmp_path / name)
        assert runs, name
        names = [run.config.run_dir.name for run in runs]
        assert len(set(names)) == len(names), f"{name}: two runs share a run directory"
        for run in runs:
            run.config.validated()
            _check_bonus_kwargs(run.config)


def test_every_suite_file_of_the_benchmarks_loads_and_builds_its_runs(tmp_path):
    """The same for benchmarks/*.yaml (tuning grids, suites waiting for their compute): their runs build and
    validate, but for demo files that a benchmark stage makes first."""
    from pathlib import Path

    files = sorted((Path(__file__).parents[1] / "benchmarks").glob("*.yaml"))
    assert any(f.name == "locomotion_tune_trpo_ant.yaml" for f in files)
    for path in files:
        runs = load_suite(path).runs(tmp_path / path.stem)
        assert runs, path.name
        for run in runs:
            _check_bonus_kwargs(run.config)
            if not run.config.demos:
                run.config.validated()


def test_a_run_another_process_is_training_is_left_alone(tmp_path):
    """Two suites on one folder: the second reports the busy run and neither deletes nor writes into it."""
    import subprocess
    import sys

    from rlgen.agents import train
    from rlgen.agents.config import ConfigError
    from rlgen.atomic import run_lock

    suite = load_suite("smoke")
    runs = suite.runs(tmp_path, seeds=1, total_steps=512)[:1]
    run_dir = runs[0].config.run_dir
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("in progress")  # what the other process has written so far
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from rlgen.atomic import run_lock\n"
         f"with run_lock({str(run_dir)!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        statuses = run_suite_runs(runs, workers=1)
        assert statuses[0].status == "busy" and f"pid {holder.pid}" in statuses[0].error
        assert (run_dir / "config.yaml").read_text() == "in progress" and not (run_dir / "error.json").exists()
        with pytest.raises(ConfigError, match="in use by another process"):
            train(runs[0].config, resume=True)
    finally:
        holder.kill()
        holder.wait()
    # once released, the same process may take the lock, and take it again inside (train within run_one)
    with run_lock(run_dir), run_lock(run_dir):
        pass
    assert run_suite_runs(runs, workers=1)[0].status == "done"


def test_restricted_keeps_some_entries_and_overrides_their_fields():
    suite = load_suite("sparse")
    small = suite.restricted(lambda entry: "HalfCheetah" in entry["env_id"], total_steps=4096, eval_episodes=None)
    assert {entry["env_id"] for entry in small.entries} == {"rlgen/SparseHalfCheetah-v0"}
    assert all(entry["total_steps"] == 4096 for entry in small.entries)
    assert all("eval_episodes" not in entry for entry in small.entries)  # None leaves a field alone
    assert len(suite.entries) > len(small.entries) and suite.entries[-1]["total_steps"] == 500_000  # untouched


def test_imitation_benchmarks_collect_rollouts_from_four_envs_with_the_presets_rollout_size():
    """The imitation and InfoGAIL experts (and, through them, their imitators) use the faster four-env layout
    without changing how many transitions each update sees."""

    for name in ("imitation-experts", "infogail-experts"):
        for run in load_suite(name).runs("/tmp/unused"):
            per_update = 4096 if run.env_id == "Humanoid-v5" else 2048  # the presets' (and Swimmer's) rollouts
            assert run.config.n_envs == 4, (name, run.label, run.env_id)
            assert run.config.n_envs * run.config.hyperparams["n_steps"] == per_update, (name, run.label)


def test_a_run_archive_carries_finished_runs_to_another_output_folder(tmp_path, caplog):
    """Runs finished on one machine and archived count as finished on another: skipped, and reported the same."""
    import logging

    from rlgen.bench import archive

    caplog.set_level(logging.INFO, logger="rlgen.bench")

    suite, store = load_suite("smoke"), tmp_path / "archive"
    first, report = run_suite(suite, tmp_path / "a", workers=1, total_steps=512, match="_s0$", archive_dir=store)
    assert [s.status for s in first] == ["done"]
    kept = {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}
    assert "ppo_CartPole-v1_s0/result.json" in kept and "ppo_CartPole-v1_s0/eval.csv" in kept
    assert "ppo_CartPole-v1_s0/monitor/0.monitor.csv" in kept
    assert not any(k.endswith(("model.zip", ".pt")) or "/tb/" in k or "/checkpoint/" in k for k in kept)
    # a cache written into the run since (a benchmark's scores) is archived, and so is its update
    local = tmp_path / "a" / "runs" / "ppo_CartPole-v1_s0"
    for text in ('{"returns": [1.0]}', '{"returns": [2.0]}'):
        (local / "benchmark_eval.json").write_text(text)
        assert archive.archive_run(local, store) and not archive.archive_run(local, store)
        assert (store / "ppo_CartPole-v1_s0" / "benchmark_eval.json").read_text() == text
    # another folder (a fresh machine): seed 0 comes from the archive and is not trained again, seed 1 is
    second, report_b = run_suite(suite, tmp_path / "b", workers=1, total_steps=512, archive_dir=store)
    assert {s.name: s.status for s in second} == {"ppo_CartPole-v1_s0": "skipped", "ppo_CartPole-v1_s1": "done"}
    assert f"restored 1 finished run(s) from {store}" in caplog.messages
    assert not (tmp_path / "b" / "runs" / "ppo_CartPole-v1_s0" / "model.zip").exists()
    assert (store / "ppo_CartPole-v1_s1" / "result.json").is_file()  # archived as it finished
    row = next(line for line in report.read_text().splitlines() if line.startswith("| CartPole-v1 | ppo |"))
    seed0 = row.split("|")[-2].split(",")[0].strip()
    assert "| CartPole-v1 | ppo | 2/2 |" in report_b.read_text() and seed0 in report_b.read_text()
    # an archived run shorter than the budget asked for is not restored over a local run in progress
    local = tmp_path / "c" / "runs" / "ppo_CartPole-v1_s0"
    (local / "checkpoint").mkdir(parents=True)
    (local / "checkpoint" / "progress.json").write_text('{"timesteps": 768}')
    assert not archive.restore_run(local, store, min_timesteps=1024)
    assert (local / "checkpoint" / "progress.json").is_file()
    assert archive.restore_run(local, store, min_timesteps=512)  # long enough: the finished run wins
    assert not (local / "checkpoint").exists() and (local / "result.json").is_file()


def test_report_only_with_an_archive_syncs_both_ways_and_names_its_report(tmp_path):
    store = tmp_path / "archive"
    run_suite(load_suite("smoke"), tmp_path / "a", workers=1, total_steps=512, match="_s0$")
    assert main(["bench", "smoke", "--steps", "512", "--out", str(tmp_path / "a"), "--report-only",
                 "--archive", str(store), "--report-name", "smoke-part", "--match", "_s0$"]) == 0
    assert (store / "ppo_CartPole-v1_s0" / "eval.csv").is_file()  # finished here: archived
    text = (tmp_path / "a" / "smoke-part.md").read_text()
    assert text.startswith("# Benchmark suite `smoke`: smoke-part") and "| CartPole-v1 | ppo | 1/1 |" in text
    assert (tmp_path / "a" / "smoke-part_curves.png").is_file()
    assert main(["bench", "smoke", "--steps", "512", "--out", str(tmp_path / "b"), "--report-only",
                 "--archive", str(store)]) == 0
    assert "| CartPole-v1 | ppo | 1/2 |" in (tmp_path / "b" / "smoke.md").read_text()  # seed 0 restored


def test_report_only_of_a_folder_without_any_run_of_the_suite_is_an_error_not_an_empty_report(tmp_path, capsys):
    from tests.fakes import one_line_error

    wrong = tmp_path / "wrong"
    one_line_error(capsys, ["bench", "smoke", "--report-only", "--out", str(wrong)],
                   f"--report-only: no run of suite 'smoke' in {wrong}; check --out")
    one_line_error(capsys, ["bench", "smoke", "--report-only", "--out", str(wrong), "--archive",
                            str(tmp_path / "archive")], f"no run of suite 'smoke' in {wrong} or {tmp_path / 'archive'}")
    assert not (wrong / "smoke.md").exists()


def test_a_sparse_report_says_how_near_the_goal_each_method_came(tmp_path):
    from rlgen.agents.plotting import coverage_over_steps, training_episodes

    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({
        "name": "near", "seeds": 1, "total_steps": 1024, "sparse": True,
        "runs": [{"algo": "ppo", "env_id": "rlgen/SparseHalfCheetah-v0", "eval_freq": 0, "eval_episodes": 1,
                  "env_kwargs": {"goal_x": 2.0}, "overrides": ["n_steps=256", "batch_size=64", "n_epochs=1"]}],
    }))
    _, report = run_suite(load_suite(path), tmp_path / "out", workers=1)
    run_dir = tmp_path / "out" / "runs" / "ppo_rlgen-SparseHalfCheetah-v0_s0"
    _, returns, reach = training_episodes(run_dir, column="max_progress")
    assert len(reach) == 2 and np.isfinite(reach).all()  # two 500-step episodes, each with its maximum
    assert ((returns > 0) == (reach > 1)).all()  # an episode is paid exactly when it got past the goal
    text = report.read_text()
    assert "## How near the goal" in text and "- rlgen/SparseHalfCheetah-v0: torso x / goal_x" in text
    assert f"| {reach.max():.2f} [{reach.max():.2f}, {reach.max():.2f}] |" in text
    # how much of the state space it visited: the cells of the torso's x, at the end and over the steps
    steps, counts = coverage_over_steps(run_dir)
    cells = counts[-1]
    assert cells > 0 and "## State coverage" in text and "- rlgen/SparseHalfCheetah-v0: torso x 0.25" in text
    # by a tenth of the 1,024 steps no 500-step episode had ended: 0 cells counted yet
    assert f"| rlgen/SparseHalfCheetah-v0 | ppo | 1 | {cells} [{cells}, {cells}] | — | 0 [0, 0] | — | — | " \
           f"{cells} (0) |" in text
    record = next(r for r in collect(load_suite(path).runs(tmp_path / "out")))
    assert record.cells_by(steps[0] - 1) == 0 and record.cells_by(steps[0]) == counts[0]
    assert record.cells_by(steps[-1] + 10**6) == cells
    assert "![state coverage](near_coverage.png)" in text
    assert (tmp_path / "out" / "near_coverage.png").read_bytes().startswith(b"\x89PNG")


def test_the_archive_keeps_the_better_record_and_the_suites_settings(tmp_path, caplog):
    """A shorter run never replaces a longer archived one; runs of other settings are not restored; a local
    result and a run another process holds are left alone; a broken archive does not stop the suite."""
    from rlgen.atomic import run_lock
    from rlgen.bench import archive

    suite, store = load_suite("smoke"), tmp_path / "archive"
    run_suite(suite, tmp_path / "long", workers=1, total_steps=1024, seeds=1, archive_dir=store)
    long_result = (store / "ppo_CartPole-v1_s0" / "result.json").read_text()
    run_suite(suite, tmp_path / "short", workers=1, total_steps=512, seeds=1)
    assert main(["bench", "smoke", "--steps", "512", "--seeds", "1", "--out", str(tmp_path / "short"),
                 "--report-only", "--archive", str(store)]) == 0
    assert (store / "ppo_CartPole-v1_s0" / "result.json").read_text() == long_result  # kept the 1,024-step run
    short_run = tmp_path / "short" / "runs" / "ppo_CartPole-v1_s0"
    assert not archive.restore_run(short_run, store)  # it has a result of its own
    assert json.loads((short_run / "result.json").read_text())["timesteps"] == 512
    # the same name with other settings: trained here, not taken from the archive
    other = [r for r in suite.runs(tmp_path / "other", seeds=1, total_steps=512)]
    other[0].config.hyperparams = {**other[0].config.hyperparams, "n_steps": 128}
    assert not archive.restore_run(other[0].config.run_dir, store, 512, other[0].config)
    assert any("was trained with other settings than the suite's; not restored" in m for m in caplog.messages)
    # a run another process is training is not replaced
    busy = tmp_path / "busy" / "runs" / "ppo_CartPole-v1_s0"
    (busy / "checkpoint").mkdir(parents=True)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with run_lock(busy):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(30)
    try:
        assert not archive.restore_run(busy, store)
    finally:
        release.set()
        holder.join()
    assert (busy / "checkpoint").is_dir() and not (busy / "result.json").exists()
    # an archive that cannot be written: the runs still finish and are reported
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    statuses, report = run_suite(suite, tmp_path / "c", workers=1, total_steps=512, archive_dir=blocked)
    assert [s.status for s in statuses] == ["done", "done"] and "2/2" in report.read_text()
    assert any(m.startswith("archive: could not copy ppo_CartPole-v1_s0 to ") for m in caplog.messages)


def test_a_finished_run_of_other_settings_under_a_suite_runs_name_is_never_counted_resumed_or_archived(tmp_path):
    suite, store = load_suite("smoke"), tmp_path / "archive"
    other = suite.runs(tmp_path, seeds=1, total_steps=512)[0]
    other.config.hyperparams = {**other.config.hyperparams, "n_steps": 128}
    assert [s.status for s in run_suite_runs([other], workers=1)] == ["done"]
    result = (other.config.run_dir / "result.json").read_text()
    statuses, report = run_suite(suite, tmp_path, workers=1, total_steps=512, seeds=1, archive_dir=store)
    assert [s.status for s in statuses] == ["failed"]
    assert "was trained with hyperparams.n_steps=128" in statuses[0].error and "--out" in statuses[0].error
    assert (other.config.run_dir / "result.json").read_text() == result  # left as it was
    assert not (store / other.config.run_dir.name).exists()
    text = report.read_text()
    assert "| CartPole-v1 | ppo | 0/1 |" in text and "## Runs left out" in text
    assert f"- `{other.config.run_dir.name}`: {other.config.run_dir.name} was trained with hyperparams.n_steps=128" \
        in text
    # a run trained for a larger budget than the suite's is not the suite's run either
    longer = suite.runs(tmp_path / "long", seeds=1, total_steps=1024)[0]
    run_suite_runs([longer], workers=1)
    statuses, report = run_suite(suite, tmp_path / "long", workers=1, total_steps=512, seeds=1)
    assert [s.status for s in statuses] == ["failed"] and "budget of 1,024 env steps, not 512" in statuses[0].error
    assert "| CartPole-v1 | ppo | 0/1 |" in report.read_text()
    # ... nor is it once unfinished (a checkpoint, no result): it is not resumed as the smaller run
    (longer.config.run_dir / "result.json").unlink()
    statuses = run_suite_runs(suite.runs(tmp_path / "long", seeds=1, total_steps=512), workers=1)
    assert [s.status for s in statuses] == ["failed"] and "budget of 1,024 env steps, not 512" in statuses[0].error
    assert RunConfig.load(longer.config.run_dir / "config.yaml").total_steps == 1024  # left as it was


def test_a_hook_before_archiving_writes_what_the_archive_carries_and_its_failure_costs_only_its_file(tmp_path,
                                                                                                   caplog):
    suite, store = load_suite("smoke"), tmp_path / "archive"

    def note(run_dir):
        if run_dir.name.endswith("_s1"):
            raise RuntimeError("no score for seed 1\nsecond line")
        (run_dir / "benchmark_eval.json").write_text('{"returns": [3.0]}')

    statuses, _ = run_suite(suite, tmp_path / "a", workers=1, total_steps=512, archive_dir=store,
                            before_archive=note)
    assert [s.status for s in statuses] == ["done", "done"]
    assert (store / "ppo_CartPole-v1_s0" / "benchmark_eval.json").read_text() == '{"returns": [3.0]}'
    assert (store / "ppo_CartPole-v1_s1" / "result.json").is_file()  # archived without the hook's file
    assert not (store / "ppo_CartPole-v1_s1" / "benchmark_eval.json").exists()
    said = [line for line in caplog.messages if "no score for seed 1" in line]
    assert said == ["archive: ppo_CartPole-v1_s1: before archiving: no score for seed 1; archived without it"]


def test_the_hook_before_archiving_runs_for_skipped_runs_and_never_for_failed_ones(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({
        "name": "mixed", "seeds": 1, "total_steps": 256,
        "runs": [
            {"algo": "ppo", "env_id": "CartPole-v1", "label": "bad", "env_kwargs": {"no_such_kwarg": 1}},
            {"algo": "ppo", "env_id": "CartPole-v1", "label": "good", "eval_freq": 0,
             "overrides": ["n_steps=128", "batch_size=64", "n_epochs=1"]},
        ],
    }))
    suite, store, seen = load_suite(path), tmp_path / "archive", []

    def note(run_dir):
        seen.append(run_dir.name)
        (run_dir / "benchmark_eval.json").write_text(json.dumps({"call": len(seen)}))

    statuses, _ = run_suite(suite, tmp_path / "out", workers=1, archive_dir=store, before_archive=note)
    assert {s.name: s.status for s in statuses} == {"bad_CartPole-v1_s0": "failed", "good_CartPole-v1_s0": "done"}
    assert seen == ["good_CartPole-v1_s0"] and not (tmp_path / "out" / "runs" / "bad_CartPole-v1_s0" /
                                                     "benchmark_eval.json").exists()
    # again on the same folder: the finished run is skipped, and the hook still fills what it archives
    (store / "good_CartPole-v1_s0" / "benchmark_eval.json").unlink()
    statuses, _ = run_suite(suite, tmp_path / "out", workers=1, archive_dir=store, before_archive=note)
    assert {s.name: s.status for s in statuses}["good_CartPole-v1_s0"] == "skipped"
    assert seen == ["good_CartPole-v1_s0"] * 2
    assert json.loads((store / "good_CartPole-v1_s0" / "benchmark_eval.json").read_text()) == {"call": 2}


def test_a_report_covering_fewer_runs_never_replaces_a_fuller_one(tmp_path, caplog):
    suite, reports = load_suite("smoke"), tmp_path / "results"
    run_suite(suite, tmp_path / "a", workers=1, total_steps=512, report_dir=reports)
    full = (reports / "smoke.md").read_text()
    assert "| CartPole-v1 | ppo | 2/2 |" in full
    # another machine with only one of the runs: its report goes to its own folder
    _, report = run_suite(suite, tmp_path / "b", workers=1, total_steps=512, match="_s0$", report_dir=reports)
    assert report == tmp_path / "b" / "smoke.md" and "| CartPole-v1 | ppo | 1/2 |" in report.read_text()
    assert (reports / "smoke.md").read_text() == full
    assert any("covers 2 finished runs, this one 1: written to " in m for m in caplog.messages)


def test_a_folder_swapped_in_whole_keeps_the_old_one_when_filling_fails(tmp_path):
    from rlgen.atomic import atomic_dir

    target = tmp_path / "best"

    def fill(folder, tag, fail=False):
        (folder / "model.zip").write_text(tag)
        if fail:
            raise OSError("disk full")
        (folder / "best.json").write_text(tag)

    atomic_dir(target, lambda folder: fill(folder, "first"))
    with pytest.raises(OSError, match="disk full"):
        atomic_dir(target, lambda folder: fill(folder, "second", fail=True))
    assert {p.name: p.read_text() for p in target.iterdir()} == {"model.zip": "first", "best.json": "first"}
    atomic_dir(target, lambda folder: fill(folder, "third"))
    assert {p.name: p.read_text() for p in target.iterdir()} == {"model.zip": "third", "best.json": "third"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no temporary folders left behind


def _children(pid):
    """The pids whose parent is ``pid`` (from /proc)."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process parents from /proc (Linux)")
def test_workers_die_with_a_benchmark_killed_by_kill_9(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    suite = tmp_path / "long.yaml"
    suite.write_text("name: long\nseeds: 2\ntotal_steps: 2000000\nruns:\n  - {algo: ppo, env_id: CartPole-v1}\n")
    parent = subprocess.Popen([sys.executable, "-m", "rlgen.cli", "bench", str(suite), "--workers", "2",
                               "--out", str(tmp_path / "out")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        workers: list[int] = []
        while time.time() < deadline and not any((tmp_path / "out" / "runs").glob("*/config.yaml")):
            time.sleep(0.5)  # the workers are training once a run has written its config
        workers = [pid for pid in _children(parent.pid) if "spawn" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert workers, "no worker processes found"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    for pid in alive:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their killed parent"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks processes through /proc (Linux)")
def test_a_ray_trials_watch_ends_it_with_the_driver(tmp_path):
    # a Ray trial's process is not the driver's child: it watches the driver's pid instead (the same watch,
    # here on a stand-in driver process that is killed with kill -9)
    import signal
    import subprocess
    import sys

    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    trial = subprocess.Popen([sys.executable, "-c",
                              "import socket, sys, time\n"
                              "from rlgen.bench.runner import die_with_process\n"
                              f"die_with_process({driver.pid}, socket.gethostname())\n"
                              "print('watching', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert trial.stdout.readline().strip() == "watching"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        trial.wait(timeout=10)  # ends within the watch's second, not after its 60 s
    finally:
        for process in (driver, trial):
            if process.poll() is None:
                process.kill()
    assert trial.returncode == 1


def test_archived_only_cells_come_from_the_archive_and_are_never_trained(tmp_path, capsys):
    """Earlier code's runs kept beside today's (a fix since changed what their settings do): restored from the
    archive and reported, never trained by today's code, however the suite is run."""
    tiny = ["n_steps=128", "batch_size=64", "n_epochs=1"]
    path = tmp_path / "suite.yaml"
    spec = {"name": "kept", "seeds": 1, "total_steps": 256,
            "runs": [{"algo": "ppo", "env_id": "CartPole-v1", "eval_freq": 0, "overrides": tiny},
                     {"algo": "ppo", "env_id": "CartPole-v1", "label": "old", "eval_freq": 0, "overrides": tiny,
                      "archived_only": "made before fix abc123"}]}
    path.write_text(yaml.safe_dump(spec))
    suite = load_suite(path)
    assert [run.archived_only for run in suite.runs(tmp_path / "x")] == ["", "made before fix abc123"]
    statuses, report = run_suite(suite, tmp_path / "out", workers=1, archive_dir=tmp_path / "store")
    by_label = {s.name.split("_")[0]: s for s in statuses}
    assert by_label["ppo"].status == "done"
    assert by_label["old"].status == "archived-only" and "made before fix abc123" in by_label["old"].error
    assert not (tmp_path / "out" / "runs" / "old_CartPole-v1_s0").exists()  # nothing trained, nothing written
    text = report.read_text()
    assert "## Cells kept from earlier code" in text and "- old: made before fix abc123" in text
    assert "1 archived-only run(s) are missing: old_CartPole-v1_s0" in text
    assert "have not finished" not in text  # re-running would not finish it: not promised
    assert main(["bench", str(path), "--plan", "--out", str(tmp_path / "out"), "--archive",
                 str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert "finished 1 (1 in --out, 0 only in the archive), 0 under way (a checkpoint in --out), 0 to train, " \
           "1 archived only and missing" in out and "old: made before fix abc123" in out
    assert "| CartPole-v1 | 1/2 (1 archived only, missing) | 0 |" in out
    # the earlier code's run in the archive (here: trained as its plain twin, then put there): restored, reported
    spec["runs"][1].pop("archived_only")
    path.write_text(yaml.safe_dump(spec))
    assert [s.status for s in run_suite(load_suite(path), tmp_path / "earlier", workers=1,
                                        archive_dir=tmp_path / "store")[0]] == ["skipped", "done"]
    spec["runs"][1]["archived_only"] = "made before fix abc123"
    path.write_text(yaml.safe_dump(spec))
    record = tmp_path / "store" / "old_CartPole-v1_s0" / "result.json"  # as a run from before commits were kept
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items()
                                  if k not in ("code", "code_sessions")}))
    statuses, report = run_suite(load_suite(path), tmp_path / "new", workers=1, archive_dir=tmp_path / "store")
    assert [s.status for s in statuses] == ["skipped", "skipped"]
    text = report.read_text()
    assert "| CartPole-v1 | old | 1/1 |" in text and "are missing" not in text
    # the code each cell's runs were made by
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(rlgen.__file__).parent, capture_output=True,
                          text=True)
    if head.returncode == 0:  # a git checkout
        assert f"| ppo | {head.stdout.strip()[:10]}" in text and "| old | not recorded (1) |" in text
    # an archived_only entry must say why
    spec["runs"][1]["archived_only"] = " "
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="archived_only must say why"):
        load_suite(path).runs(tmp_path / "x")

"""benchmarks/imitation_library.py and its runner: the library's settings, the demos handed to the runner, the
report's numbers and the one-line errors. Tests that run the runner need the library's venv (by default
/work/scratch/imitation-venv, or $RLGEN_IMITATION_VENV) and skip without it."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlgen.bench import stats as bstats
from rlgen.imitation import Trajectories, Trajectory, save_demos
from tests.benchmark_scripts import ROOT, ok, run

spec = importlib.util.spec_from_file_location("imitation_library", ROOT / "benchmarks" / "imitation_library.py")
script = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = script
spec.loader.exec_module(script)

VENV = Path(os.environ.get("RLGEN_IMITATION_VENV", "/work/scratch/imitation-venv"))
needs_venv = pytest.mark.skipif(not (VENV / "bin" / "python").is_file(),
                                reason=f"the imitation library's venv is not at {VENV}")


def fake_demos(env_id="Hopper-v4", lengths=(7, 3, 5), obs_dim=11, act_dim=3, seed=0):
    rng = np.random.default_rng(seed)
    episodes = [Trajectory(obs=rng.normal(size=(n + 1, obs_dim)), acts=rng.uniform(-1, 1, size=(n, act_dim)),
                           rewards=rng.normal(size=n), terminated=bool(i % 2)) for i, n in enumerate(lengths)]
    return Trajectories.from_episodes(episodes, env_id)


# -- the library's settings --------------------------------------------------------------------------------------
def test_the_settings_table_holds_the_librarys_documented_tuned_values():
    s = script.LIBRARY_SETTINGS
    assert set(s) == {"Hopper-v4", "HalfCheetah-v4", "Ant-v4", "Humanoid-v4"}
    assert all(t["n_envs"] == 8 and t["n_disc_updates_per_round"] == 8 for t in s.values())
    hopper = s["Hopper-v4"]
    assert (hopper["demo_batch_size"], hopper["gen_replay_buffer_capacity"], hopper["rollout"]) == (128, 4096, 4096)
    assert hopper["ppo"] == {"batch_size": 512, "clip_range": 0.1, "ent_coef": 0.001255299425412744,
                             "gae_lambda": 0.98, "gamma": 0.995, "learning_rate": 4.3984856156897565e-05,
                             "max_grad_norm": 0.9, "n_epochs": 20, "vf_coef": 0.20315938606555833}
    assert (hopper["policy"], hopper["net_arch"], hopper["activation"]) == (
        "MlpPolicy", {"pi": [64, 64], "vf": [64, 64]}, "relu")
    cheetah = s["HalfCheetah-v4"]
    assert (cheetah["demo_batch_size"], cheetah["gen_replay_buffer_capacity"], cheetah["rollout"]) == (8192, 512, 4096)
    assert cheetah["ppo"] == {"batch_size": 64, "clip_range": 0.1, "ent_coef": 3.992371122209408e-06,
                              "gae_lambda": 0.95, "gamma": 0.95, "learning_rate": 0.00026250519057717037,
                              "max_grad_norm": 0.8, "n_epochs": 5, "vf_coef": 0.11483689492120866}
    ant = s["Ant-v4"]
    assert (ant["demo_batch_size"], ant["gen_replay_buffer_capacity"], ant["rollout"]) == (32, 16384, 16384)
    assert ant["ppo"] == {"batch_size": 16, "clip_range": 0.3, "ent_coef": 0.008871887607426377,
                          "gae_lambda": 0.8, "gamma": 0.995, "learning_rate": 2.428297806883194e-05,
                          "max_grad_norm": 0.9, "n_epochs": 10, "vf_coef": 0.4351450387648799}
    assert cheetah["policy"] == ant["policy"] == "FeedForward32Policy" and "net_arch" not in ant
    # no tuned Humanoid setting: Ant's, and the report says where it comes from
    assert s["Humanoid-v4"] == ant and s["Humanoid-v4"]["tuned_on"] == "seals/Ant-v1"


def test_budgets_and_demo_counts_are_the_imitation_benchmarks():
    full = script.FULL
    assert full.steps == {"Hopper-v4": 1_000_000, "HalfCheetah-v4": 1_000_000, "Ant-v4": 1_000_000,
                          "Humanoid-v4": 2_000_000}
    assert full.trajectories["Hopper-v4"] == (4, 25) and full.trajectories["Humanoid-v4"] == (25, 80)
    assert (full.eval_every, full.final_eval_episodes, full.demo_floor) == (25_000, 20, 0.8)


# -- demos for the runner ----------------------------------------------------------------------------------------
def test_the_runners_demos_file_holds_every_episode_with_its_final_observation(tmp_path):
    trajs = fake_demos()
    script.write_library_demos(tmp_path / "d.npz", trajs)
    with np.load(tmp_path / "d.npz", allow_pickle=False) as data:
        assert str(data["env_id"]) == "Hopper-v4" and list(data["lengths"]) == [7, 3, 5]
        assert data["obs"].shape == (15 + 3, 11) and data["acts"].shape == (15, 3)
        np.testing.assert_array_equal(data["obs"][8:12], trajs[1].obs)  # episode 1's T + 1 observations


@needs_venv
def test_the_runners_trajectories_equal_rlgens_demos(tmp_path):
    trajs = fake_demos(lengths=(7, 3, 5, 4))
    script.write_library_demos(tmp_path / "d.npz", trajs)
    done = subprocess.run([str(VENV / "bin" / "python"), str(script.RUNNER), "--demos", str(tmp_path / "d.npz"),
                           "--env-id", "Hopper-v4", "--episodes", "3", "--convert-only", str(tmp_path / "c.npz")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(tmp_path / "c.npz", allow_pickle=False) as data:
        assert list(data["lengths"]) == [7, 3, 5] and data["terminal"].all()  # complete episodes, the first 3
        np.testing.assert_array_equal(data["obs"], np.concatenate([t.obs for t in trajs[:3]]))
        np.testing.assert_array_equal(data["acts"], np.concatenate([t.acts for t in trajs[:3]]))


@needs_venv
@pytest.mark.parametrize(("env_id", "episodes", "message"), [
    ("Ant-v4", 2, "holds demos of Hopper-v4, not of Ant-v4"),
    ("Hopper-v4", 9, "holds 3 episodes; asked for 9"),
])
def test_the_runner_refuses_other_demos_in_one_line(tmp_path, env_id, episodes, message):
    script.write_library_demos(tmp_path / "d.npz", fake_demos())
    done = subprocess.run([str(VENV / "bin" / "python"), str(script.RUNNER), "--demos", str(tmp_path / "d.npz"),
                           "--env-id", env_id, "--episodes", str(episodes), "--convert-only", str(tmp_path / "c.npz")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}, timeout=300)
    assert done.returncode == 2 and message in done.stderr
    assert len([line for line in done.stderr.splitlines() if "imitation_library_runner.py:" in line]) == 1
    assert "Traceback" not in done.stderr


# -- the report --------------------------------------------------------------------------------------------------
def fabricate(out, library_finals, curve_returns):
    """An output folder with Hopper-v4 demos (random 100, expert 1100) and library results of three seeds."""
    save_demos(out / "demos" / "Hopper-v4.npz", fake_demos())
    (out / "demos" / "Hopper-v4.json").write_text(json.dumps({
        "expert": {"algo": "ppo", "source": "a fabricated expert"}, "random_score": 100.0, "expert_score": 1100.0}))
    (out / "library").mkdir()
    for n in (4, 25):
        for seed, (final, curve) in enumerate(zip(library_finals, curve_returns, strict=True)):
            result = {"timesteps": 999_424, "train_seconds": 900.0, "eval_seconds": 100.0, "final_returns": final,
                      "evaluations": [{"timesteps": t, "mean_return": r} for t, r in zip(
                          (250_000, 500_000, 999_424), curve, strict=True)],
                      "versions": {"imitation": "1.0.1"}}
            (out / "library" / f"Hopper-v4_{n}demos_s{seed}.json").write_text(json.dumps(result))


def test_the_report_normalises_both_sides_with_bootstrap_intervals(tmp_path, monkeypatch):
    fabricate(tmp_path, [[600.0, 600.0], [700.0, 700.0], [800.0, 800.0]],
              [(200.0, 300.0, 600.0), (300.0, 400.0, 700.0), (400.0, 500.0, 800.0)])
    ours = script.Side(finals=[1000.0, 1050.0, 1100.0],  # ahead at the end, behind at 250k
                       curves=[(np.array([250_000.0, 1_000_000.0]), np.array([150.0, 1000.0]))] * 3,
                       speeds=[1500.0, 1500.0, 1500.0])
    monkeypatch.setattr(script, "rlgen_sides", lambda args, out, episodes: {("Hopper-v4", 4): ours})
    assert script.main(["--stage", "report", "--envs", "Hopper-v4", "--out", str(tmp_path),
                        "--report-dir", str(tmp_path)]) == 0
    text = (tmp_path / "imitation_library.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| rlgen GAIL") or line.startswith("| imitation")]
    theirs = bstats.bootstrap_ci(bstats.normalise(np.array([600.0, 700.0, 800.0]), 100.0, 1100.0))
    assert theirs[0] == pytest.approx(0.6)
    assert rows[1] == (f"| imitation GAIL | 3 | 0.60 [{theirs[1]:.2f}, {theirs[2]:.2f}] | 0.20 [0.10, 0.30] | "
                       "0.30 [0.20, 0.40] | 0.60 [0.50, 0.70] | 999 |")  # 999,424 steps in 1,000 s
    assert rows[0].startswith("| rlgen GAIL | 3 | 0.95 [") and rows[0].endswith("| 0.05 [0.05, 0.05] | "
                                                                               "0.33 [0.33, 0.33] | 0.90 [0.90, 0.90] | 1,500 |")
    assert rows[2] == "| rlgen GAIL | 0 | — | — | — | — | — |"  # 25 demos: no rlgen run yet
    behind = text.split("## Where rlgen is not ahead")[1]
    assert "Hopper-v4 4 demos, at 250,000 steps: rlgen 150.0, library 300.0" in behind
    assert "final" not in behind and "500,000" not in behind and "1,000,000" not in behind
    assert "seals/Hopper-v1" in text and "10M env steps" in text and "Hopper-v4 1,000,000" in text


# -- one-line errors ---------------------------------------------------------------------------------------------
def test_an_unknown_task_is_refused(tmp_path):
    done = run("imitation_library", "--stage", "report", "--envs", "Hopper-v5", "--out", tmp_path)
    assert done.returncode == 2 and "unknown task 'Hopper-v5'; choose from Hopper-v4" in done.stderr


def test_a_missing_venv_is_named_in_one_line(tmp_path):
    save_demos(tmp_path / "demos" / "Hopper-v4.npz", fake_demos())
    done = run("imitation_library", "--stage", "run", "--envs", "Hopper-v4", "--out", tmp_path,
               "--venv", tmp_path / "nowhere")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (f"imitation_library.py: no library venv at {tmp_path / 'nowhere'} "
                                                    f"({tmp_path / 'nowhere' / 'bin' / 'python'} is missing); run "
                                                    f"--stage setup --venv {tmp_path / 'nowhere'}")


def test_demos_of_another_env_are_named_in_one_line(tmp_path):
    save_demos(tmp_path / "demos" / "Hopper-v4.npz", fake_demos(env_id="HalfCheetah-v4"))
    done = run("imitation_library", "--stage", "run", "--envs", "Hopper-v4", "--out", tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"imitation_library.py: {tmp_path / 'demos' / 'Hopper-v4.npz'} holds demos of HalfCheetah-v4, not of Hopper-v4")


def test_setup_skips_a_venv_whose_marker_names_the_pins(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / script.MARKER).write_text(json.dumps({"installs": [list(i) for i in script.INSTALLS]}))
    assert ok("imitation_library", "--stage", "setup", "--venv", venv, "--out", tmp_path)[-1] == (
        f"setup: {venv} has the pinned library")


@needs_venv
@pytest.mark.slow
def test_a_quick_run_end_to_end(tmp_path):
    lines = ok("imitation_library", "--quick", "--envs", "Hopper-v4", "--venv", VENV, "--out", tmp_path)
    assert any(line.startswith("library Hopper-v4 2 demos seed 0:") for line in lines)
    report = (tmp_path / "imitation_library.md").read_text()
    assert "| rlgen GAIL | 1 |" in report and "| imitation GAIL | 1 |" in report

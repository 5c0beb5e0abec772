"""benchmarks/imitation_library.py and its runner: the library's settings, the demos handed to the runner, the
report's numbers, the one-line errors and the run archive (--archive: experts, demo records, the library's results,
rlgen's runs). Tests that run the runner need the library's venv (by default
/work/scratch/imitation-venv, or $RLGEN_IMITATION_VENV) and skip without it."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlgen.bench import Suite
from rlgen.bench import stats as bstats
from rlgen.imitation import Trajectories, Trajectory, save_demos
from tests.benchmark_scripts import ROOT, ok, run, sha256, tables

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
    store = tmp_path / "arch"
    lines = ok("imitation_library", "--quick", "--envs", "Hopper-v4", "--venv", VENV, "--out", tmp_path / "a",
               "--archive", store)
    assert any(line.startswith("library Hopper-v4 2 demos seed 0:") for line in lines)
    report = (tmp_path / "a" / "imitation_library.md").read_text()
    assert "| rlgen GAIL | 1 |" in report and "| imitation GAIL | 1 |" in report
    kept = {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}
    rlgen_run = "gail-2_Hopper-v4_s0"
    assert {"budgets.json", "random_scores.json", "demos/Hopper-v4.json", "library/Hopper-v4_2demos_s0.json",
            "library/Hopper-v4_2demos_s0.log", f"rlgen/{rlgen_run}/result.json",
            f"rlgen/{rlgen_run}/benchmark_eval.json"} <= kept, kept
    assert not any(k.endswith(".npz") and not k.endswith("vecnormalize.npz") for k in kept)  # demos are made again
    assert not any(k.endswith("model.zip") for k in kept)  # Hopper-v4's expert is the imitation benchmark's

    # a fresh machine: everything restored, nothing trained again, the same report
    lines = ok("imitation_library", "--quick", "--envs", "Hopper-v4", "--venv", VENV, "--out", tmp_path / "b",
               "--archive", store)
    assert not any(line.startswith("library ") for line in lines), lines
    assert f"restored 1 library result(s) from {store}" in lines
    assert any(line.startswith("restored 1 finished run(s) from ") for line in lines)
    assert any(line.startswith(f"[1/1] skipped {rlgen_run}") for line in lines), lines
    run_dir = tmp_path / "b" / "rlgen" / "runs" / rlgen_run
    assert (run_dir / "result.json").is_file() and not (run_dir / "model.zip").exists()
    assert not (run_dir / "checkpoint").exists()
    assert tables(tmp_path / "b" / "imitation_library.md") == tables(tmp_path / "a" / "imitation_library.md")


# -- the run archive (--archive) ---------------------------------------------------------------------------------
FAKE_RUNNER = """
import argparse, json, os
parser = argparse.ArgumentParser()
for name in ("--demos", "--env-id", "--settings", "--out"):
    parser.add_argument(name)
for name in ("--episodes", "--seed", "--total-steps", "--eval-every", "--eval-episodes", "--final-eval-episodes",
             "--eval-seed"):
    parser.add_argument(name, type=int)
a = parser.parse_args()
with open(os.environ["FAKE_RUNNER_CALLS"], "a") as f:
    f.write(f"{a.env_id}_{a.episodes}demos_s{a.seed}\\n")
result = {"env_id": a.env_id, "demo_episodes": a.episodes, "seed": a.seed, "timesteps": a.total_steps,
          "total_steps": a.total_steps, "train_seconds": 1.0, "eval_seconds": 0.0, "steps_per_second": 1.0,
          "settings": json.load(open(a.settings)), "final_returns": [600.0 + a.seed, 600.0 + a.seed],
          "evaluations": [{"timesteps": a.total_steps, "mean_return": 500.0, "std_return": 0.0}],
          "eval_seed": a.eval_seed, "versions": {"imitation": "fake"}}
json.dump(result, open(a.out, "w"))
print(f"{a.env_id} {a.episodes} demos seed {a.seed}: 600.0 after {a.total_steps:,} steps")
"""


def fake_venv(folder):
    """A venv whose marker names the pins, its python this one's."""
    venv = folder / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / script.MARKER).write_text(json.dumps({"installs": [list(i) for i in script.INSTALLS]}))
    return venv


@pytest.fixture
def fake_runner(tmp_path, monkeypatch):
    """The library's runner replaced by a script that writes a result at once; returns the runs it was asked for."""
    runner, calls = tmp_path / "fake_runner.py", tmp_path / "calls.txt"
    runner.write_text(FAKE_RUNNER)
    calls.touch()
    monkeypatch.setattr(script, "RUNNER", runner)
    monkeypatch.setenv("FAKE_RUNNER_CALLS", str(calls))
    return lambda: calls.read_text().split()


@pytest.fixture
def suites(monkeypatch):
    """rlgen's side (run_suite) replaced by a recorder of its keyword arguments."""
    calls = []
    monkeypatch.setattr(script, "run_suite", lambda suite, out_dir, **kw: (calls.append(kw) or [], Path(out_dir)))
    return calls


def demos_with_record(out):
    """Fabricated Hopper-v4 demos with their runner's file and a record as the demos stage writes one."""
    path = out / "demos" / "Hopper-v4.npz"
    save_demos(path, fake_demos())
    script.write_library_demos(out / "demos" / "Hopper-v4.library.npz", fake_demos())
    record = {"expert": {"algo": "ppo", "run_dir": "elsewhere/ppo_Hopper-v5_s0", "source": "a fabricated expert"},
              "episodes": 3, "min_return": None, "random_score": 100.0, "expert_score": 1100.0,
              "sha256": sha256(path)}
    (out / "demos" / "Hopper-v4.json").write_text(json.dumps(record))
    return record


def test_a_library_result_archived_then_deleted_comes_back_and_is_not_run_again(tmp_path, fake_runner, suites,
                                                                              capsys):
    out, store = tmp_path / "out", tmp_path / "arch"
    record = demos_with_record(out)
    argv = ["--stage", "run", "--envs", "Hopper-v4", "--seeds", "1", "--workers", "1", "--venv",
            str(fake_venv(tmp_path)), "--out", str(out), "--archive", str(store)]
    assert script.main(argv) == 0
    names = ["Hopper-v4_4demos_s0", "Hopper-v4_25demos_s0"]
    assert sorted(fake_runner()) == sorted(names)
    files = [f"{name}{suffix}" for name in names for suffix in (".json", ".log")]
    made = {name: (out / "library" / name).read_bytes() for name in files}
    assert {name: (store / "library" / name).read_bytes() for name in files} == made  # archived as they finished
    assert sorted(p.name for p in (store / "library").iterdir()) == sorted(files)  # no settings, no logs dir
    assert json.loads((store / "demos" / "Hopper-v4.json").read_text()) == record
    assert json.loads((store / "budgets.json").read_text()) == {"quick": False}
    # rlgen's side goes through the harness's archive, each run's score cached before it is archived
    assert suites[-1]["archive_dir"] == store / "rlgen" and suites[-1]["before_archive"] is not None

    for name in files:  # lost here (or another machine's folder): the archive's come back, nothing runs again
        (out / "library" / name).unlink()
    capsys.readouterr()
    assert script.main(argv) == 0
    assert sorted(fake_runner()) == sorted(names)
    assert {name: (out / "library" / name).read_bytes() for name in files} == made
    assert f"restored 2 library result(s) from {store}" in capsys.readouterr().out

    # an archived result of another budget is named, not restored, and run again (then archived in its place)
    archived = store / "library" / "Hopper-v4_4demos_s0.json"
    archived.write_text(json.dumps({**json.loads(archived.read_text()), "total_steps": 4096}))
    (out / "library" / "Hopper-v4_4demos_s0.json").unlink()
    assert script.main(argv) == 0
    said = capsys.readouterr().out.splitlines()
    assert "archive: library/Hopper-v4_4demos_s0.json was trained for 4096 env steps, not 1000000; not restored" in said
    assert sorted(fake_runner()) == sorted([*names, "Hopper-v4_4demos_s0"])
    assert json.loads(archived.read_text())["total_steps"] == 1_000_000


def test_a_library_result_finished_before_the_archive_was_used_is_archived(tmp_path, fake_runner, suites):
    out, store = tmp_path / "out", tmp_path / "arch"
    demos_with_record(out)
    argv = ["--stage", "run", "--envs", "Hopper-v4", "--seeds", "1", "--workers", "1", "--venv",
            str(fake_venv(tmp_path)), "--out", str(out)]
    assert script.main(argv) == 0 and len(fake_runner()) == 2 and suites[-1]["archive_dir"] is None
    assert script.main([*argv, "--archive", str(store)]) == 0
    assert len(fake_runner()) == 2  # not run again
    assert sorted(p.name for p in (store / "library").iterdir()) == sorted(
        f"Hopper-v4_{n}demos_s0{suffix}" for n in (4, 25) for suffix in (".json", ".log"))


@pytest.fixture(scope="module")
def demos_archive(tmp_path_factory):
    """Quick Hopper-v4 demos (2 episodes of the imitation benchmark's Hopper-v5 expert) made with an archive;
    their output folder then deleted (another machine's). Returns the archive and both demo files' sha256."""
    tmp = tmp_path_factory.mktemp("imitation-library")
    assert script.main(["--quick", "--stage", "demos", "--envs", "Hopper-v4", "--out", str(tmp / "a"),
                        "--archive", str(tmp / "arch")]) == 0
    digests = {name: sha256(tmp / "a" / "demos" / name) for name in ("Hopper-v4.npz", "Hopper-v4.library.npz")}
    shutil.rmtree(tmp / "a")
    return tmp / "arch", digests


def test_a_demo_record_in_the_archive_makes_both_demo_files_again_identical(demos_archive, tmp_path, capsys):
    store, digests = demos_archive
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()) == [
        "budgets.json", "demos/Hopper-v4.json", "random_scores.json"]  # no .npz
    assert json.loads((store / "demos" / "Hopper-v4.json").read_text())["sha256"] == digests["Hopper-v4.npz"]
    capsys.readouterr()
    assert script.main(["--quick", "--stage", "demos", "--envs", "Hopper-v4", "--out", str(tmp_path),
                        "--archive", str(store)]) == 0
    assert {name: sha256(tmp_path / "demos" / name) for name in digests} == digests
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("demos: Hopper-v4:")]
    assert said == [f"demos: Hopper-v4: 2 episodes made again from ppo_Hopper-v5_s0 (the recorded sha256) -> "
                    f"{tmp_path / 'demos' / 'Hopper-v4.npz'}"]


def test_demos_made_again_that_differ_from_their_record_stop_in_one_line(demos_archive, tmp_path, capsys):
    store, digests = demos_archive
    shutil.copytree(store, tmp_path / "arch")
    record_path = tmp_path / "arch" / "demos" / "Hopper-v4.json"
    record_path.write_text(json.dumps({**json.loads(record_path.read_text()), "sha256": "0" * 64}))
    argv = ["--quick", "--stage", "demos", "--envs", "Hopper-v4", "--out", str(tmp_path / "out"), "--archive",
            str(tmp_path / "arch")]
    with pytest.raises(SystemExit) as stopped:
        script.main(argv)
    message = str(stopped.value.code)
    assert len(message.splitlines()) == 1 and message.startswith(
        f"imitation_library.py: Hopper-v4: Hopper-v4.npz made again has sha256 {digests['Hopper-v4.npz']}, its "
        f"record says {'0' * 64} (")
    assert "--accept-new-demos" in message
    assert not (tmp_path / "out" / "demos" / "Hopper-v4.npz").exists()
    assert not (tmp_path / "out" / "demos" / "Hopper-v4.library.npz").exists()
    capsys.readouterr()
    assert script.main([*argv, "--accept-new-demos"]) == 0  # asked to, it keeps them and says so
    assert {name: sha256(tmp_path / "out" / "demos" / name) for name in digests} == digests
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("demos: Hopper-v4:")]
    assert len(said) == 1 and "(not the recorded sha256: kept, as asked)" in said[0], said


def test_the_report_from_a_fresh_out_with_only_the_archive(demos_archive, tmp_path, capsys):
    store, digests = demos_archive
    shutil.copytree(store, tmp_path / "arch")
    settings = script.LIBRARY_SETTINGS["Hopper-v4"]
    result = {"timesteps": 4096, "total_steps": 4096, "train_seconds": 3.0, "eval_seconds": 1.0,
              "settings": settings, "final_returns": [600.0, 610.0],
              "evaluations": [{"timesteps": 4096, "mean_return": 500.0}], "versions": {"imitation": "1.0.1"}}
    (tmp_path / "arch" / "library").mkdir()
    (tmp_path / "arch" / "library" / "Hopper-v4_2demos_s0.json").write_text(json.dumps(result))
    (tmp_path / "arch" / "library" / "Hopper-v4_2demos_s0.log").write_text("its output\n")
    out = tmp_path / "out"
    assert script.main(["--quick", "--stage", "report", "--envs", "Hopper-v4", "--out", str(out), "--archive",
                        str(tmp_path / "arch")]) == 0
    assert {name: sha256(out / "demos" / name) for name in digests} == digests  # made again by the report
    assert (out / "library" / "Hopper-v4_2demos_s0.log").read_text() == "its output\n"
    text = (out / "imitation_library.md").read_text()
    record = json.loads((store / "demos" / "Hopper-v4.json").read_text())
    assert f"Hopper-v4: random {record['random_score']:,.1f}, expert (demos) {record['expert_score']:,.1f}" in text
    assert "| imitation GAIL | 1 |" in text and "| rlgen GAIL | 0 |" in text
    assert "library: imitation 1.0.1." in text

    # local demos other than the archive's (its runs were trained on those) stop the report in one line
    record_path = out / "demos" / "Hopper-v4.json"
    record_path.write_text(json.dumps({**json.loads(record_path.read_text()), "sha256": "1" * 64}))
    with pytest.raises(SystemExit) as stopped:
        script.main(["--quick", "--stage", "report", "--envs", "Hopper-v4", "--out", str(out), "--archive",
                     str(tmp_path / "arch")])
    message = str(stopped.value.code)
    assert len(message.splitlines()) == 1 and message.startswith(f"imitation_library.py: {record_path} and ")
    assert "record different files" in message


def test_a_quick_archive_refuses_a_full_run_and_a_full_one_a_quick_run(demos_archive, tmp_path, capsys):
    store, _ = demos_archive  # --quick

    def refused(*argv):
        with pytest.raises(SystemExit) as stopped:
            script.main([*argv, "--stage", "report", "--envs", "Hopper-v4", "--report-dir", str(tmp_path)])
        assert stopped.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert refused("--out", str(tmp_path / "a"), "--archive", str(store)).endswith(
        f"error: {store} holds a --quick benchmark's runs; use another --archive")
    assert not (tmp_path / "a").exists()  # refused before anything was written
    assert script.main(["--stage", "report", "--envs", "Hopper-v4", "--out", str(tmp_path / "b"), "--report-dir",
                        str(tmp_path), "--archive", str(tmp_path / "full")]) == 0
    assert json.loads((tmp_path / "full" / "budgets.json").read_text()) == {"quick": False}
    assert refused("--quick", "--out", str(tmp_path / "c"), "--archive", str(tmp_path / "full")).endswith(
        f"error: {tmp_path / 'full'} holds a full benchmark's runs; use another --archive")
    # a --quick run never writes into the full run's committed place, nor any run into the imitation benchmark's
    assert "never writes into the committed archive" in refused("--quick", "--out", str(tmp_path / "d"),
                                                                "--archive", str(script.ARCHIVE))
    assert not script.ARCHIVE.exists()
    before = sorted(p.relative_to(script.IMITATION_ARCHIVE) for p in script.IMITATION_ARCHIVE.rglob("*"))
    assert refused("--out", str(tmp_path / "e"), "--archive", str(script.IMITATION_ARCHIVE)).endswith(
        f"error: {script.IMITATION_ARCHIVE} is the imitation benchmark's archive (this script reads its experts "
        "there); use another --archive")
    assert sorted(p.relative_to(script.IMITATION_ARCHIVE) for p in script.IMITATION_ARCHIVE.rglob("*")) == before


def test_trained_experts_are_archived_with_their_models_and_restored_not_trained_again(tmp_path, monkeypatch,
                                                                                       capsys):
    # a CartPole expert trained in a second stands for the Ant-v4 one: the archive's path is the same
    tiny = Suite(name="imitation-library-experts", seeds=[0], entries=[
        {"algo": "ppo", "env_id": "CartPole-v1", "total_steps": 256, "n_envs": 1, "eval_freq": 128,
         "eval_episodes": 1, "overrides": ["n_steps=128", "batch_size=64", "n_epochs=1", "policy_kwargs.net_arch=[8]"]}])
    monkeypatch.setattr(script, "experts_suite", lambda args: tiny)
    store = tmp_path / "arch"

    def experts(out):
        capsys.readouterr()
        assert script.main(["--quick", "--stage", "experts", "--envs", "Ant-v4", "--workers", "1", "--out", str(out),
                            "--archive", str(store)]) == 0
        return capsys.readouterr().out.splitlines()

    assert any(line.startswith("[1/1] done ") for line in experts(tmp_path / "a"))
    assert {"model.zip", "result.json", "config.yaml"} <= {
        p.name for p in (store / "experts" / "ppo_CartPole-v1_s0").iterdir()}
    said = experts(tmp_path / "b")  # a fresh machine
    assert "restored 1 expert(s) and demo record(s) from " + str(store) in said
    assert any(line.startswith("[1/1] skipped ") for line in said) and not any(" done " in line for line in said)
    run = tmp_path / "b" / "experts" / "runs" / "ppo_CartPole-v1_s0"
    assert (run / "model.zip").is_file() and not (run / "checkpoint").exists()

"""The imitation benchmarks' shared pipeline (rlgen.bench.pipeline, experts, records, scores, archive): experts
picked and archived with their models, demos rolled out and made again from their records, run identity."""

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlgen.agents import RunConfig, collect_demos
from rlgen.bench import load_suite, show_messages
from rlgen.bench.archive import archive_run, restore_run
from rlgen.bench.experts import expert_policy, expert_settings, has_policy, pick_experts
from rlgen.bench.pipeline import Pipeline
from rlgen.bench.records import (
    DemoFile,
    RecordMismatch,
    benchmark_archive,
    demo_floor,
    keep_demos_record,
    package_versions,
)
from rlgen.bench.runner import RunStatus, log_progress
from rlgen.bench.scores import SCORE_FILES, cached_score, scorable, score_before_archiving

PARTS = ("a", "b", "mixed")
EPISODES = 2  # evaluation episodes that score an expert, and demo episodes per expert


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def experts_suite(folder):
    """Two cheap experts on Pendulum-v1, each evaluated during training (so each keeps a best/ policy)."""
    path = folder / "experts.yaml"
    cheap = ["n_steps=256", "batch_size=64", "n_epochs=1", "policy_kwargs.net_arch=[16]"]
    path.write_text(yaml.safe_dump({"name": "experts", "seeds": 1, "total_steps": 1024, "runs": [
        {"algo": "ppo", "env_id": "Pendulum-v1", "label": label, "eval_freq": 512, "eval_episodes": 1,
         "overrides": cheap} for label in ("a", "b")]}))
    return load_suite(path)


def pipeline(suite, out, archive, **fields):
    """Experts keyed by their label (as InfoGAIL's are by behaviour), a demo file each and their mix."""
    return Pipeline(out, archive, suite, expert_key=lambda run: run.label,
                    demos=[DemoFile(out / "demos" / f"{part}.npz", f"Pendulum-v1 {part}") for part in PARTS],
                    eval_episodes=EPISODES, eval_seed=7, workers=1, **fields)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Experts trained, picked and their demos made with an archive; the output folder then deleted (it was
    another machine's). Returns the suite, the archive and the demo files' sha256."""
    tmp = tmp_path_factory.mktemp("pipeline")
    suite = experts_suite(tmp)
    pipe = pipeline(suite, tmp / "a", tmp / "arch")
    assert pipe.train_experts()
    experts = pipe.pick_experts()
    demos = {Path(demo.path).stem: demo for demo in pipe.demos}
    for key in ("a", "b"):
        assert pipe.make_demos(demos[key], experts[key], EPISODES, None) is not None
    assert len(pipe.mix_demos(demos["mixed"], [demos["a"], demos["b"]])) == 2 * EPISODES
    digests = {part: sha256(demos[part].path) for part in PARTS}
    shutil.rmtree(tmp / "a")
    return suite, tmp / "arch", digests


def test_experts_are_archived_with_their_models_and_scores_and_named_in_experts_json(made):
    _, store, _ = made
    experts = json.loads((store / "experts.json").read_text())
    assert sorted(experts) == ["a", "b"]
    for key, record in experts.items():
        run = store / "experts" / f"{key}_Pendulum-v1_s0"
        for name in ("model.zip", "vecnormalize.npz", "best/model.zip", "best/best.json", *SCORE_FILES.values()):
            assert (run / name).is_file(), name
        returns = cached_score(run, EPISODES, 7, record["model"])
        assert record["eval_mean"] == pytest.approx(returns.mean()) and record["algo"] == "ppo"
    for part in PARTS:  # the records, never the files
        assert json.loads((store / "demos" / f"{part}.json").read_text())["sha256"]
    assert not list(store.glob("demos/*.npz"))
    mixed = json.loads((store / "demos" / "mixed.json").read_text())
    assert mixed["parts"] == ["a.npz", "b.npz"] and mixed["seed"] == 0 and mixed["episodes"] == 2 * EPISODES


def test_a_fresh_output_folder_gets_experts_and_demos_back_from_the_archive(made, tmp_path, caplog):
    suite, store, digests = made
    caplog.set_level(logging.INFO, logger="rlgen.bench")
    pipe = pipeline(suite, tmp_path / "b", store)
    assert pipe.restore() == 2 + len(PARTS)  # two experts, three demo records
    assert f"restored 5 expert(s) and demo record(s) from {store}" in caplog.messages
    assert pipe.regenerate_demos()
    assert {part: sha256(tmp_path / "b" / "demos" / f"{part}.npz") for part in PARTS} == digests
    for run in (tmp_path / "b" / "experts" / "runs").iterdir():
        if run.is_dir():  # restored with the models, not trained again
            assert (run / "model.zip").is_file() and not (run / "checkpoint").exists()
    made_again = [m for m in caplog.messages if m.startswith("demos: Pendulum-v1 ")]
    assert len(made_again) == 3 and all(m.endswith(".npz") and "(the recorded sha256)" in m for m in made_again)
    assert "2 episodes made again from a_Pendulum-v1_s0" in made_again[0] and "mixed again (seed 0)" in made_again[2]
    assert pipe.restore() == 0  # nothing is missing now


def test_demos_made_again_that_differ_from_their_record_are_refused_in_one_line_unless_accepted(made, tmp_path,
                                                                                                 caplog):
    suite, store, digests = made
    shutil.copytree(store, tmp_path / "arch")
    for part, versions in (("a", {**package_versions(), "mujoco": "0.0.1"}), ("mixed", None)):
        path = tmp_path / "arch" / "demos" / f"{part}.json"
        record = {**json.loads(path.read_text()), "sha256": "0" * 64}
        path.write_text(json.dumps({**record, "versions": versions} if versions else record))
    pipe = pipeline(suite, tmp_path / "c", tmp_path / "arch")
    pipe.restore()
    with pytest.raises(RecordMismatch) as refused:
        pipe.regenerate_demos()
    message = str(refused.value)
    assert message.startswith("Pendulum-v1 a: a.npz made again has sha256 ") and "\n" not in message
    assert digests["a"] in message and "0" * 64 in message and "--accept-new-demos" in message
    assert f"package versions changed: mujoco 0.0.1 -> {package_versions()['mujoco']})" in message
    assert not (tmp_path / "c" / "demos" / "a.npz").exists()
    # asked to, it keeps them, and says so; the mixed file is checked the same way
    caplog.set_level(logging.INFO, logger="rlgen.bench")
    accepting = pipeline(suite, tmp_path / "c", tmp_path / "arch", accept_new_demos=True)
    assert accepting.regenerate_demos()
    assert sha256(tmp_path / "c" / "demos" / "a.npz") == digests["a"]
    kept = [m for m in caplog.messages if "not the recorded sha256: kept, as asked" in m]
    assert [m.split(":")[1].strip() for m in kept] == ["Pendulum-v1 a", "Pendulum-v1 mixed"]
    assert any(m.startswith("archive: mixed.npz made again has sha256 ") and m.endswith("; kept")
               for m in caplog.messages)


def test_a_demo_record_that_names_other_demos_than_the_archive_stops_and_an_old_one_gets_its_hash(tmp_path):
    demo = DemoFile(tmp_path / "out" / "x.npz", "x")
    demo.path.parent.mkdir(parents=True)
    demo.path.write_bytes(b"demos")
    demo.record_path.write_text(json.dumps({"episodes": 2}))  # made before records held a hash
    keep_demos_record(demo, tmp_path / "arch")
    assert json.loads((tmp_path / "arch" / "x.json").read_text()) == {"episodes": 2, "sha256": sha256(demo.path)}
    demo.path.write_bytes(b"other demos")
    demo.record_path.write_text(json.dumps({"episodes": 2, "sha256": sha256(demo.path)}))
    with pytest.raises(RecordMismatch, match=r"record different files .*; delete .*x\.json and .*x\.npz to use the "
                       "archive's, or use another --archive$"):
        keep_demos_record(demo, tmp_path / "arch")


def test_demos_keep_only_episodes_above_the_floor_and_are_made_again_with_it(made, tmp_path, caplog):
    suite, store, _ = made
    shutil.copytree(store, tmp_path / "arch")
    shutil.rmtree(tmp_path / "arch" / "demos")
    pipe = pipeline(suite, tmp_path / "d", tmp_path / "arch")
    pipe.restore()
    expert = json.loads((tmp_path / "arch" / "experts.json").read_text())["a"]
    expert = {**expert, "run_dir": str(tmp_path / "d" / "experts" / "runs" / Path(expert["run_dir"]).name)}
    # the expert's first 8 episodes, unfiltered: a floor above one of the first two, which two later ones reach
    returns = collect_demos(expert["run_dir"], 8, seed=0, best=expert["model"] == "best").returns
    above = sorted(r for r in returns if r > min(returns[:2]))
    assert len(above) >= 2, returns  # the test's premise
    floor = (min(returns[:2]) + above[0]) / 2
    demo = pipe.demos[0]
    trajs = pipe.make_demos(demo, expert, 2, floor)
    np.testing.assert_allclose(trajs.returns, [r for r in returns if r >= floor][:2], rtol=1e-6)
    record = json.loads((tmp_path / "arch" / "demos" / "a.json").read_text())
    assert record["min_return"] == floor and record["sha256"] == sha256(demo.path)
    # a fresh machine makes them again with the recorded floor: the same file
    again = pipeline(suite, tmp_path / "e", tmp_path / "arch")
    again.restore()
    assert again.regenerate_demos() and sha256(again.demos[0].path) == record["sha256"]
    # no episode reaches a floor: nothing written, nothing archived, one line says why
    caplog.clear()
    assert pipe.make_demos(pipe.demos[1], expert, 2, 1e9) is None
    said = [m for m in caplog.messages if m.startswith("demos: Pendulum-v1 b:")]
    assert len(said) == 1 and "minimum return" in said[0] and "\n" not in said[0]
    assert not pipe.demos[1].path.exists() and not (tmp_path / "arch" / "demos" / "b.json").exists()
    assert demo_floor(None, -1000.0, -200.0) is None and demo_floor(0.8, -1000.0, -200.0) == pytest.approx(-360.0)


def fake_run(run_dir, final, best=None, timesteps=100, best_timesteps=50):
    """A finished run whose scores are cached (no model to evaluate): ``final`` and, with ``best``, a best/."""
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(json.dumps({"timesteps": timesteps}))
    scores = {"final": final} | ({"best": best} if best is not None else {})
    for model, returns in scores.items():
        (run_dir / SCORE_FILES[model]).write_text(json.dumps({"episodes": 2, "seed": 7, "model": model,
                                                              "returns": returns}))
    if best is not None:
        (run_dir / "best").mkdir()
        (run_dir / "best" / "best.json").write_text(json.dumps({"timesteps": best_timesteps}))
        (run_dir / "best" / "model.zip").write_bytes(b"")


def test_an_experts_policy_is_its_final_or_best_whichever_scores_higher_and_ties_keep_the_final(tmp_path):
    fake_run(tmp_path / "better_best", [1.0, 3.0], [4.0, 4.0])
    fake_run(tmp_path / "tie", [2.0, 2.0], [1.0, 3.0])
    fake_run(tmp_path / "no_best", [5.0, 5.0])
    model, steps, returns = expert_policy(tmp_path / "better_best", 2, 7)
    assert (model, steps, returns.tolist()) == ("best", 50, [4.0, 4.0])
    assert expert_policy(tmp_path / "tie", 2, 7)[:2] == ("final", 100)
    assert expert_policy(tmp_path / "no_best", 2, 7)[:2] == ("final", 100)
    assert has_policy(tmp_path / "better_best", "best") and not has_policy(tmp_path / "no_best", "best")
    assert not has_policy(tmp_path / "better_best")  # no final model.zip: restored without it


def test_pick_experts_keeps_per_key_the_best_expert_and_the_ones_picked_before(tmp_path):
    suite = experts_suite(tmp_path)
    runs = suite.runs(tmp_path / "out")
    for run, scores in zip(runs, ([1.0, 1.0], [3.0, 3.0]), strict=True):
        fake_run(run.config.run_dir, scores, timesteps=run.config.total_steps)
    path = tmp_path / "experts.json"
    path.write_text(json.dumps({"other": {"eval_mean": 0.0}}))
    picked = pick_experts(runs, lambda run: run.env_id, 2, 7, path, {"eval_episodes": 2})
    assert picked == json.loads(path.read_text())
    assert picked["other"] == {"eval_mean": 0.0}
    assert picked["Pendulum-v1"] == {"run_dir": str(runs[1].config.run_dir), "algo": "ppo", "total_steps": 1024,
                                     "model": "final", "model_timesteps": 1024, "eval_mean": 3.0, "eval_std": 0.0,
                                     "eval_episodes": 2}
    # an unfinished run is never an expert
    (runs[1].config.run_dir / "result.json").write_text(json.dumps({"timesteps": 10}))
    assert "b" not in pick_experts(runs, lambda run: run.label, 2, 7, path)


def test_expert_settings_are_the_first_accepted_entrys_fields():
    """The imitators collect their rollouts as the experts do (four in-process envs, the presets' rollout size)."""
    suite = load_suite("imitation-experts")
    assert expert_settings(suite, ("n_envs", "overrides"), lambda entry: entry["env_id"] == "Humanoid-v5") == {
        "n_envs": 4, "overrides": ["n_steps=1024"]}
    assert expert_settings(suite, ("n_envs",), lambda entry: False) == {}


def imitation_run(folder, demos, sha=None, timesteps=100):
    """A finished GAIL run's record on ``demos`` (no training: a config, a result and maybe demos.json)."""
    config = RunConfig(algo="ppo", env_id="Pendulum-v1", imitation="gail", demos=str(demos), total_steps=100,
                       out_dir=str(folder), run_name="gail_Pendulum-v1_s0")
    config.run_dir.mkdir(parents=True)
    config.save(config.run_dir / "config.yaml")
    (config.run_dir / "result.json").write_text(json.dumps({"timesteps": timesteps}))
    if sha is not None:
        (config.run_dir / "demos.json").write_text(json.dumps({"path": str(demos), "sha256": sha}))
    return config


def test_an_archived_imitation_run_is_the_run_asked_for_only_on_the_same_demos(tmp_path, caplog):
    mine, theirs = tmp_path / "mine.npz", tmp_path / "theirs.npz"
    mine.write_bytes(b"my demos")
    theirs.write_bytes(b"their demos")
    archived = imitation_run(tmp_path / "store", theirs, sha256(theirs))
    asked = RunConfig.from_dict({**archived.to_dict(), "out_dir": str(tmp_path / "here"), "demos": str(mine)})
    assert not restore_run(asked.run_dir, tmp_path / "store", 100, asked)
    assert any("trained on other demos" in m and sha256(theirs) in m for m in caplog.messages)
    # demos made again here and kept with --accept-new-demos: their record names the archive's, they stand for it
    (tmp_path / "mine.json").write_text(json.dumps({"sha256": sha256(theirs)}))
    assert restore_run(asked.run_dir, tmp_path / "store", 100, asked)
    shutil.rmtree(asked.run_dir)
    (tmp_path / "mine.json").unlink()
    # the same bytes under another path: the same run
    (tmp_path / "copy.npz").write_bytes(theirs.read_bytes())
    same = RunConfig.from_dict({**asked.to_dict(), "demos": str(tmp_path / "copy.npz")})
    assert restore_run(same.run_dir, tmp_path / "store", 100, same)
    # an archived run that predates demos.json, or demos not made yet here: nothing to compare, restored
    shutil.rmtree(same.run_dir)
    (archived.run_dir / "demos.json").unlink()
    assert restore_run(asked.run_dir, tmp_path / "store", 100, asked)
    shutil.rmtree(asked.run_dir)
    imitation_run(tmp_path / "store2", theirs, sha256(theirs))
    missing = RunConfig.from_dict({**asked.to_dict(), "demos": str(tmp_path / "not-made-yet.npz")})
    assert restore_run(missing.run_dir, tmp_path / "store2", 100, missing)


def test_a_longer_archived_run_on_other_demos_is_replaced_by_the_local_one(tmp_path):
    demos = tmp_path / "d.npz"
    demos.write_bytes(b"demos")
    kept = imitation_run(tmp_path / "store", demos, "1" * 64, timesteps=200)
    local = imitation_run(tmp_path / "here", demos, sha256(demos), timesteps=100)
    assert archive_run(local.run_dir, tmp_path / "store")
    assert json.loads((kept.run_dir / "result.json").read_text())["timesteps"] == 100
    # on the same demos the longer archived record stays
    (kept.run_dir / "result.json").write_text(json.dumps({"timesteps": 200}))
    assert not archive_run(local.run_dir, tmp_path / "store")


def test_a_score_that_fails_before_archiving_costs_only_the_cache(tmp_path, monkeypatch, caplog):
    import rlgen.bench.scores as scores

    run_dir = tmp_path / "run"
    fake_run(run_dir, [1.0, 2.0])
    assert scorable(run_dir, 2, 7) and not scorable(run_dir, 3, 7)  # no model to score 3 episodes with
    (run_dir / "model.zip").write_bytes(b"")
    assert scorable(run_dir, 3, 7)

    def fail(*args, **kwargs):
        raise RuntimeError("no score\nsecond line")

    monkeypatch.setattr(scores, "run_score", fail)
    score_before_archiving(3, 7)(run_dir)  # does not raise
    assert caplog.messages == ["archive: run: could not score it: no score; archived without its score"]
    seen = []
    monkeypatch.setattr(scores, "run_score", lambda *args: seen.append(args))
    score_before_archiving(3, 7)(run_dir)
    assert seen == [(run_dir, 3, 7)]
    (run_dir / "model.zip").unlink()
    score_before_archiving(3, 7)(run_dir)  # no model: nothing to score
    assert len(seen) == 1


def test_a_quick_benchmark_keeps_out_of_the_committed_archive_and_an_archive_holds_one_kind(tmp_path):
    committed = tmp_path / "committed"
    assert benchmark_archive(None, True, committed) is None and not committed.exists()
    assert benchmark_archive("", False, committed) is None
    with pytest.raises(ValueError, match="never writes into the committed archive"):
        benchmark_archive(str(committed), True, committed)
    assert benchmark_archive(None, False, committed) == committed
    with pytest.raises(ValueError, match="holds a full benchmark's runs"):
        benchmark_archive(str(committed), True, tmp_path / "elsewhere")
    assert benchmark_archive(str(tmp_path / "q"), True, committed) == tmp_path / "q"
    with pytest.raises(ValueError, match="holds a --quick benchmark's runs"):
        benchmark_archive(str(tmp_path / "q"), False, committed)


@pytest.fixture
def shown():
    """show_messages() for one test, undone after it (the handler would outlive the test)."""
    logger = logging.getLogger("rlgen.bench")
    handlers, level = list(logger.handlers), logger.level
    show_messages()
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_show_messages_puts_the_harness_lines_on_stdout_once(shown, capsys):
    show_messages()  # a second call adds no second handler
    log_progress(1, 2, 0.0, RunStatus("ppo_CartPole-v1_s0", "done", seconds=3.2, final_return=21.57))
    logging.getLogger("rlgen.bench.archive").warning("archive: a line")
    logging.getLogger("rlgen.other").info("not the harness's")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1] == "archive: a line"
    assert lines[0].startswith("[1/2] done    ppo_CartPole-v1_s0  return 21.6  (3 s; suite ")


def test_a_benchmark_scripts_stages_run_after_the_restore_in_order_and_a_record_mismatch_stops_it_in_one_line(
        caplog):
    from rlgen.bench.pipeline import run_stages

    caplog.set_level(logging.INFO, logger="rlgen.bench")
    done = []

    class Restoring:
        def restore(self):
            done.append("restore")

    def step(name, result=True):
        return lambda: done.append(name) or result

    steps = {"experts": step("experts"), "demos": step("demos", False), "imitate": step("imitate"),
             "report": lambda: done.append("report") or Path("r.md")}
    assert run_stages("x.py", "all", Restoring(), steps) == 1  # the demos stage failed; the others ran all the same
    assert done == ["restore", "experts", "demos", "imitate", "report"] and caplog.messages == ["report: r.md"]
    done.clear()
    assert run_stages("x.py", "imitate", Restoring(), steps) == 0 and done == ["restore", "imitate"]

    def mismatch():
        raise RecordMismatch("a.npz made again has sha256 1, its record says 2")

    with pytest.raises(SystemExit, match=r"^x\.py: a\.npz made again has sha256 1, its record says 2$"):
        run_stages("x.py", "demos", Restoring(), {"demos": mismatch})


def test_the_scripts_shared_options_default_and_refuse_as_before(tmp_path, monkeypatch, capsys):
    import argparse

    from rlgen.bench.pipeline import add_arguments, finish_arguments, task_list

    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser(prog="x.py")
    parser.add_argument("--seeds", type=int, default=None)
    add_arguments(parser, "x", "plot")

    def parse(*argv, **kwargs):
        args = parser.parse_args(argv)
        return args, finish_arguments(parser, args, list(argv), "x", tmp_path / "results", tmp_path / "committed",
                                      **kwargs)

    args, out = parse("--quick", "--archive", "")
    assert (args.seeds, out, args.report_dir, args.archive) == (1, Path("runs/bench/x-quick"), out, None)
    assert args.command == "python benchmarks/x.py --quick --archive ''"
    args, out = parse("--out", "o", "--archive", "")
    assert (args.seeds, out, args.report_dir) == (3, Path("o"), tmp_path / "results")
    for argv, needle in ((("--seeds", "0"), "--seeds must be at least 1"),
                         (("--quick", "--archive", str(tmp_path / "committed")), "never writes into the committed")):
        with pytest.raises(SystemExit):
            parse(*argv)
        assert needle in capsys.readouterr().err
    parse("--quick", "--out", "q", "--archive", "", mark_out=True)  # an output folder of quick runs
    with pytest.raises(SystemExit):
        parse("--out", "q", "--archive", "", mark_out=True)
    assert "q holds a --quick benchmark's runs and demos; use another --out" in capsys.readouterr().err
    assert task_list(parser, " a, b,,", ("a", "b")) == ["a", "b"]
    with pytest.raises(SystemExit):
        task_list(parser, "a,c", ("a", "b"))
    assert "unknown task 'c'; choose from a, b" in capsys.readouterr().err

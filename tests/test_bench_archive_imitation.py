"""The imitation and InfoGAIL benchmarks carried to a fresh machine by their run archive (``--quick`` budgets)."""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.fakes import load_benchmark_script

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def load_script(name):
    return load_benchmark_script(name)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tables(report):
    """The report's table rows: its numbers (the command and the date around them differ)."""
    return [line for line in report.read_text().splitlines() if line.startswith("|")]


def run_dirs(folder):
    return [path for path in folder.iterdir() if path.is_dir()]  # not the run locks beside them


def imitation(archive, out, *extra):
    return ["--quick", "--envs", "Hopper-v5", "--workers", "1", "--archive", str(archive), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def imitation_archive(tmp_path_factory):
    """One quick imitation benchmark on Hopper-v5, archived; its output folder is then deleted (it was another
    machine's). Returns the script, the archive, the report's tables and the demos' sha256."""
    tmp = tmp_path_factory.mktemp("imitation")
    bench = load_script("imitation")
    assert bench.main(imitation(tmp / "arch", tmp / "a")) == 0
    report, digest = tables(tmp / "a" / "imitation.md"), sha256(tmp / "a" / "demos" / "Hopper-v5.npz")
    shutil.rmtree(tmp / "a")
    return bench, tmp / "arch", report, digest


def test_imitation_benchmark_carries_on_from_its_archive_without_training_again(imitation_archive, tmp_path):
    bench, store, report, digest = imitation_archive
    kept = {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}
    scores = {}
    for expert in ("ppo_Hopper-v5_s0", "trpo_Hopper-v5_s0"):  # rolled out by the demos stage: with the model
        # both candidates, the final policy and the best evaluation's (with its statistics of that moment), kept
        # and scored on fresh episodes
        assert {f"experts/{expert}/{name}" for name in ("model.zip", "vecnormalize.npz", "best/model.zip",
                                                        "best/vecnormalize.npz", "best/best.json")} <= kept
        for model, name in (("final", "benchmark_eval.json"), ("best", "benchmark_eval_best.json")):
            cache = json.loads((store / "experts" / expert / name).read_text())
            assert cache["model"] == model
            scores[expert, model] = sum(cache["returns"]) / len(cache["returns"])
    record = json.loads((store / "demos" / "Hopper-v5.json").read_text())
    chosen = Path(record["run_dir"]).name
    winner = "best" if scores[chosen, "best"] > scores[chosen, "final"] else "final"
    assert record["model"] == winner and record["eval_mean"] == pytest.approx(scores[chosen, winner])
    assert record["eval_mean"] == pytest.approx(max(scores.values()))
    # the report's experts table: both runs with both policies' scores, the demos' source marked
    rows = {expert: [line for line in report if f"| {expert} |" in line] for expert in ("ppo_Hopper-v5_s0",
                                                                                       "trpo_Hopper-v5_s0")}
    assert all(len(found) == 1 for found in rows.values()), rows
    for expert, (row,) in rows.items():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        for cell, model in zip(cells[2:4], ("final", "best"), strict=True):
            assert cell.startswith(f"{scores[expert, model]:,.1f} ± ")
            assert cell.endswith("*") == (expert == chosen and model == winner)
        assert bool(cells[4]) == (expert == chosen)  # the demos' returns beside their source
    learners = ["gail-gp10/gail-1_Hopper-v5_s0", "gail-gp10/gail-2_Hopper-v5_s0", "bc/bc-1_Hopper-v5_s0", "bc/bc-2_Hopper-v5_s0"]
    assert {f"{run}/{name}" for run in learners for name in ("result.json", "benchmark_eval.json")} <= kept
    assert {"experts.json", "random_scores.json", "demos/Hopper-v5.json"} <= kept
    assert not any(k.endswith(".npz") and not k.endswith("vecnormalize.npz") for k in kept)  # demos are made again
    assert not any(k.endswith("model.zip") and not k.startswith("experts/") for k in kept)
    assert json.loads((store / "demos" / "Hopper-v5.json").read_text())["sha256"] == digest

    out = tmp_path / "b"  # a fresh machine
    assert bench.main(imitation(store, out)) == 0
    assert sha256(out / "demos" / "Hopper-v5.npz") == digest
    for expert in run_dirs(out / "experts" / "runs"):  # restored, not trained
        assert (expert / "model.zip").is_file() and not (expert / "checkpoint").exists()
    for run in learners:
        run_dir = out / run.replace("/", "/runs/")
        assert (run_dir / "result.json").is_file() and not (run_dir / "model.zip").exists()
    assert tables(out / "imitation.md") == report


def test_imitation_demos_made_again_that_differ_from_the_archived_ones_stop_the_benchmark(imitation_archive, tmp_path,
                                                                                          capsys):
    bench, store, _, digest = imitation_archive
    shutil.copytree(store, tmp_path / "arch")
    record_path = tmp_path / "arch" / "demos" / "Hopper-v5.json"
    record = json.loads(record_path.read_text())
    assert set(record["versions"]) >= {"python", "numpy", "torch", "mujoco", "gymnasium", "stable-baselines3"}
    mujoco_now = record["versions"]["mujoco"]
    record_path.write_text(json.dumps({**record, "sha256": "0" * 64, "versions": {**record["versions"],
                                                                                  "mujoco": "0.0.1"}}))
    with pytest.raises(SystemExit) as stop:
        bench.main(imitation(tmp_path / "arch", tmp_path / "c", "--stage", "demos"))
    message = str(stop.value)
    assert "Hopper-v5" in message and digest in message and "0" * 64 in message and "\n" not in message
    assert f"package versions changed: mujoco 0.0.1 -> {mujoco_now})" in message
    assert "--accept-new-demos" in message and not (tmp_path / "c" / "demos" / "Hopper-v5.npz").exists()
    # asked to, it keeps them and says so
    capsys.readouterr()
    assert bench.main(imitation(tmp_path / "arch", tmp_path / "c", "--stage", "demos", "--accept-new-demos")) == 0
    assert sha256(tmp_path / "c" / "demos" / "Hopper-v5.npz") == digest
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("demos: Hopper-v5:")]
    assert len(said) == 1 and "not the recorded sha256: kept" in said[0], said
    # demos that match their record say so
    shutil.copytree(store, tmp_path / "arch2")
    assert bench.main(imitation(tmp_path / "arch2", tmp_path / "g", "--stage", "demos")) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("demos: Hopper-v5:")]
    assert len(said) == 1 and "(the recorded sha256)" in said[0], said


def test_imitation_report_alone_from_the_archive_names_a_run_it_cannot_score(imitation_archive, tmp_path, capsys):
    bench, store, report, _ = imitation_archive
    shutil.copytree(store, tmp_path / "arch")
    (tmp_path / "arch" / "gail-gp10" / "gail-1_Hopper-v5_s0" / "benchmark_eval.json").unlink()
    assert bench.main(imitation(tmp_path / "arch", tmp_path / "d", "--stage", "report")) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "gail-1_Hopper-v5_s0" in line]
    assert len(said) == 1 and "not scored" in said[0]
    text = (tmp_path / "d" / "imitation.md").read_text()
    assert "1 finished run(s) left out" in text and "gail-1_Hopper-v5_s0" in text
    bc_rows = [row for row in report if row.startswith("| BC ")]  # across tasks: BC's scores from the archive alone
    assert bc_rows and [row for row in tables(tmp_path / "d" / "imitation.md") if row.startswith("| BC ")] == bc_rows


def test_imitation_learners_are_archived_with_their_score_by_the_imitate_stage_alone(imitation_archive, tmp_path,
                                                                                    capsys):
    """The archive keeps no learner's model, so a learner archived before a report scored it (the machine gone
    after the imitate stage) could never be scored: the imitate stage caches each learner's score first."""
    bench, store, report, _ = imitation_archive
    shutil.copytree(store, tmp_path / "arch")
    learners = ["gail-gp10/gail-1_Hopper-v5_s0", "gail-gp10/gail-2_Hopper-v5_s0", "bc/bc-1_Hopper-v5_s0",
                "bc/bc-2_Hopper-v5_s0"]
    for run in learners:
        shutil.rmtree(tmp_path / "arch" / run)
    assert bench.main(imitation(tmp_path / "arch", tmp_path / "e", "--stage", "imitate")) == 0
    episodes = bench.QUICK.eval_episodes
    for run in learners:
        cache = json.loads((tmp_path / "arch" / run / "benchmark_eval.json").read_text())
        assert len(cache["returns"]) == episodes and cache["model"] == "final", run
        assert not (tmp_path / "arch" / run / "model.zip").exists()
    capsys.readouterr()
    # another machine's report from the archive alone scores every learner
    assert bench.main(imitation(tmp_path / "arch", tmp_path / "f", "--stage", "report")) == 0
    assert "not scored" not in capsys.readouterr().out
    assert "left out" not in (tmp_path / "f" / "imitation.md").read_text()


def test_imitation_learners_whose_score_fails_are_archived_without_it_and_the_report_names_them(
        imitation_archive, tmp_path, monkeypatch, capsys):
    bench, store, _, _ = imitation_archive
    shutil.copytree(store, tmp_path / "arch")
    learners = ["gail-gp10/gail-1_Hopper-v5_s0", "bc/bc-1_Hopper-v5_s0"]
    for run in [*learners, "bc/bc-2_Hopper-v5_s0"]:
        shutil.rmtree(tmp_path / "arch" / run)
    score = bench.final_score

    def no_score(run_dir, episodes):
        if run_dir.name not in [run.split("/")[1] for run in learners]:
            return score(run_dir, episodes)
        raise RuntimeError(f"no score for {run_dir.name}\nsecond line")

    monkeypatch.setattr(bench, "final_score", no_score)
    assert bench.main(imitation(tmp_path / "arch", tmp_path / "e", "--stage", "imitate")) == 0
    out = capsys.readouterr().out.splitlines()
    for run in learners:
        name = run.split("/")[1]
        assert (tmp_path / "arch" / run / "result.json").is_file(), run  # archived all the same
        assert not (tmp_path / "arch" / run / "benchmark_eval.json").exists(), run
        said = [line for line in out if f"no score for {name}" in line]
        assert said == [f"archive: {name}: could not score it: no score for {name}; archived without its score"]
    # the BC run after the failing one was still trained and archived with its score
    cache = json.loads((tmp_path / "arch" / "bc" / "bc-2_Hopper-v5_s0" / "benchmark_eval.json").read_text())
    assert len(cache["returns"]) == bench.QUICK.eval_episodes
    monkeypatch.undo()
    # a report from the archive alone names both as not scored
    assert bench.main(imitation(tmp_path / "arch", tmp_path / "f", "--stage", "report")) == 0
    text = (tmp_path / "f" / "imitation.md").read_text()
    assert "2 finished run(s) left out" in text and all(run.split("/")[1] in text for run in learners)


def test_imitation_gail_settings_reach_their_runs_and_the_report_shows_every_one_with_runs(imitation_archive, tmp_path,
                                                                                          capsys):
    bench, store, report, _ = imitation_archive
    shutil.copytree(store, tmp_path / "arch")
    # asked for, not trained yet: the report says how to resume it; the archive's setting is complete
    assert bench.main(imitation(tmp_path / "arch", tmp_path / "v", "--gail-variants", "gail", "--stage", "report")) == 0
    text = (tmp_path / "v" / "imitation.md").read_text()
    assert "GAIL: 2 run(s) not finished or not started; re-running the `imitate` stage with `--gail-variants gail`" in text
    assert "GAIL+GP10: " not in text and "BC: " not in text
    assert bench.main(imitation(tmp_path / "arch", tmp_path / "v", "--gail-variants", "gail")) == 0
    assert "not finished or not started" not in (tmp_path / "v" / "imitation.md").read_text()
    # a setting kept from earlier cells but no longer trained: its missing cells are not work left to resume
    for folder in (tmp_path / "arch" / "gail", tmp_path / "v" / "gail" / "runs"):
        shutil.rmtree(folder / "gail-1_Hopper-v5_s0")
    assert bench.main(imitation(tmp_path / "arch", tmp_path / "w", "--stage", "report")) == 0
    text = (tmp_path / "w" / "imitation.md").read_text()
    assert "not finished or not started" not in text
    assert "GAIL has runs on Hopper-v5 only: it is not among the trained settings (`--gail-variants gail-gp10`)" in text
    for variant, penalty in (("gail", None), ("gail-gp10", 10.0)):
        config = yaml.safe_load((tmp_path / "arch" / variant / "gail-2_Hopper-v5_s0" / "config.yaml").read_text())
        assert config["imitation_kwargs"].get("gradient_penalty") == penalty
    rows = tables(tmp_path / "v" / "imitation.md")
    header = next(row for row in rows if row.startswith("| task | random |"))
    assert "| GAIL few | GAIL many | GAIL+GP10 few | GAIL+GP10 many |" in header
    gp_rows = [row for row in report if row.startswith("| GAIL+GP10 ")]  # the archive's, unchanged
    assert gp_rows and [row for row in rows if row.startswith("| GAIL+GP10 ")] == gp_rows
    assert [row for row in rows if row.startswith("| GAIL few ")]
    with pytest.raises(SystemExit) as refused:
        bench.main(imitation(tmp_path / "arch", tmp_path / "v", "--gail-variants", "gail-gp99"))
    assert refused.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'gail-gp99'" in error and "choose from gail, gail-gp10" in error


def fresh_demos(store, tmp_path):
    """A copy of the archive without its demos and learners: the demos stage makes new demos."""
    shutil.copytree(store, tmp_path / "arch")
    for part in ("demos", "gail-gp10", "bc"):
        shutil.rmtree(tmp_path / "arch" / part)
    return tmp_path / "arch"


def test_imitation_demos_keep_only_episodes_above_the_floor_and_are_made_again_with_it(imitation_archive, tmp_path,
                                                                                        monkeypatch):
    bench, store, _, _ = imitation_archive
    expert = json.loads((store / "demos" / "Hopper-v5.json").read_text())
    random = json.loads((store / "random_scores.json").read_text())["Hopper-v5"]
    # the expert's first 8 episodes, unfiltered: a floor above one of the first two, which two later ones reach
    returns = bench.collect_demos(store / "experts" / Path(expert["run_dir"]).name, 8, seed=0,
                                  best=expert["model"] == "best").returns
    above = sorted(r for r in returns if r > min(returns[:2]))
    assert len(above) >= 2, returns  # the test's premise
    floor = (min(returns[:2]) + above[0]) / 2
    arch = fresh_demos(store, tmp_path)
    fraction = (floor - random) / (expert["eval_mean"] - random)
    monkeypatch.setattr(bench, "QUICK", dataclasses.replace(bench.QUICK, demo_floor=fraction))
    assert bench.main(imitation(arch, tmp_path / "g", "--stage", "demos")) == 0
    record = json.loads((arch / "demos" / "Hopper-v5.json").read_text())
    assert record["min_return"] == pytest.approx(floor)
    demos = bench.load_demos(tmp_path / "g" / "demos" / "Hopper-v5.npz")
    np.testing.assert_allclose(demos.returns, [r for r in returns if r >= floor][:2], rtol=1e-6)
    # a fresh machine makes them again with the recorded floor, whatever its budget says: the same file
    monkeypatch.setattr(bench, "QUICK", dataclasses.replace(bench.QUICK, demo_floor=None))
    assert bench.main(imitation(arch, tmp_path / "h", "--stage", "report")) == 0
    assert sha256(tmp_path / "h" / "demos" / "Hopper-v5.npz") == record["sha256"]
    assert f"floor {floor:,.1f} |" in (tmp_path / "h" / "imitation.md").read_text()


def test_imitation_demos_no_episode_of_which_reaches_the_floor_are_not_written(imitation_archive, tmp_path,
                                                                               monkeypatch, capsys):
    bench, store, _, _ = imitation_archive
    arch = fresh_demos(store, tmp_path)
    monkeypatch.setattr(bench, "QUICK", dataclasses.replace(bench.QUICK, demo_floor=100.0))
    assert bench.main(imitation(arch, tmp_path / "g", "--stage", "demos")) == 1
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("demos: Hopper-v5:")]
    assert len(said) == 1 and "return" in said[0]
    assert not (tmp_path / "g" / "demos" / "Hopper-v5.npz").exists()
    assert not (arch / "demos").exists()


def test_a_quick_imitation_run_keeps_out_of_the_committed_archive(imitation_archive, tmp_path, monkeypatch):
    bench, store, _, _ = imitation_archive
    monkeypatch.setattr(bench, "ARCHIVE", tmp_path / "committed")
    assert bench.main(["--quick", "--stage", "report", "--out", str(tmp_path / "e")]) == 0
    assert not (tmp_path / "committed").exists()  # --quick: no archive by default
    with pytest.raises(SystemExit) as refused:
        bench.main(["--quick", "--stage", "report", "--out", str(tmp_path / "e"), "--archive", str(bench.ARCHIVE)])
    assert refused.value.code == 2
    with pytest.raises(SystemExit) as refused:  # a full run never mixes with quick runs
        bench.main(["--stage", "report", "--out", str(tmp_path / "f"), "--archive", str(store)])
    assert refused.value.code == 2


def test_infogail_benchmark_carries_on_from_its_archive_without_training_again(tmp_path):
    bench = load_script("infogail")

    def infogail(out, *extra):
        return ["--quick", "--pairs", "Swimmer-v5", "--workers", "1", "--archive", str(tmp_path / "arch"),
                "--out", str(out), *extra]

    assert bench.main(infogail(tmp_path / "a")) == 0
    demos = tmp_path / "a" / "demos"
    digests = {p.name: sha256(p) for p in demos.glob("*.npz")}
    assert sorted(digests) == ["Swimmer-v5-backward.npz", "Swimmer-v5-forward.npz", "Swimmer-v5-mixed.npz"]
    report = tables(tmp_path / "a" / "infogail.md")
    for behaviour in ("forward", "backward"):  # the experts table names the run whose episodes are in the demos
        source = json.loads((demos / f"Swimmer-v5-{behaviour}.json").read_text())
        row = [line for line in report if line.startswith(f"| Swimmer-v5 | {behaviour} |")]
        assert len(row) == 1 and f"| {Path(source['run_dir']).name}, {source['model']} policy" in row[0], row
    shutil.rmtree(tmp_path / "a")
    store = tmp_path / "arch"
    for name, digest in digests.items():
        assert json.loads((store / "demos" / name).with_suffix(".json").read_text())["sha256"] == digest
    for run in ("ppo-infogail_Swimmer-v5_s0", "ppo-gail_Swimmer-v5_s0"):
        assert (store / "imitate" / run / "benchmark_signatures.json").is_file()
        assert not (store / "imitate" / run / "model.zip").exists()
        # both discriminators with the imitation benchmark's gradient penalty
        config = yaml.safe_load((store / "imitate" / run / "config.yaml").read_text())
        assert config["imitation_kwargs"]["gradient_penalty"] == bench.DISC_KWARGS["gradient_penalty"] == 10.0

    out = tmp_path / "b"  # a fresh machine
    assert bench.main(infogail(out)) == 0
    assert {p.name: sha256(p) for p in (out / "demos").glob("*.npz")} == digests
    for expert in run_dirs(out / "experts" / "runs"):  # restored, not trained
        assert (expert / "model.zip").is_file() and not (expert / "checkpoint").exists()
    for run in run_dirs(out / "imitate" / "runs"):
        assert (run / "result.json").is_file() and not (run / "model.zip").exists()
    assert tables(out / "infogail.md") == report

    # the mixed file is made again by the seeded mix and checked like the experts' demos
    record_path = store / "demos" / "Swimmer-v5-mixed.json"
    record_path.write_text(json.dumps({**json.loads(record_path.read_text()), "sha256": "0" * 64}))
    with pytest.raises(SystemExit) as stop:
        bench.main(infogail(tmp_path / "c", "--stage", "demos"))
    message = str(stop.value)
    assert "Swimmer-v5 mixed" in message and digests["Swimmer-v5-mixed.npz"] in message and "\n" not in message


def test_infogail_demos_no_episode_of_which_reaches_the_floor_are_not_written(tmp_path, monkeypatch, capsys):
    bench = load_script("infogail")
    monkeypatch.setattr(bench, "QUICK", dataclasses.replace(bench.QUICK, demo_floor=100.0))
    args = ["--quick", "--pairs", "Swimmer-v5", "--workers", "1", "--archive", "", "--out", str(tmp_path / "a")]
    assert bench.main([*args, "--stage", "experts"]) == 0
    assert bench.main([*args, "--stage", "demos"]) == 1
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("demos: Swimmer-v5 ")]
    assert {line.split(":")[1].strip() for line in said} == {"Swimmer-v5 forward", "Swimmer-v5 backward"}
    assert all("minimum return" in line for line in said), said
    assert not list((tmp_path / "a").glob("demos/*.npz"))

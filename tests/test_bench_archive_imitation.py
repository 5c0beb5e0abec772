"""The imitation benchmark script carried to a fresh machine by its run archive (``--quick``
budgets), run as a user runs it; the pipeline it shares with the InfoGAIL benchmark (test_bench_archive_infogail.py)
is tested on its own in test_bench_pipeline.py."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.benchmark_scripts import ROOT, ok, run, run_dirs, sha256, tables


def imitation(archive, out, *extra):
    return ["--quick", "--envs", "Hopper-v5", "--workers", "1", "--archive", str(archive), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def imitation_archive(tmp_path_factory):
    """One quick imitation benchmark on Hopper-v5, archived; its output folder is then deleted (it was another
    machine's). Returns the archive, the report's tables and the demos' sha256."""
    tmp = tmp_path_factory.mktemp("imitation")
    said = ok("imitation", *imitation(tmp / "arch", tmp / "a"))
    assert any(line.startswith("[1/2] done ") for line in said), said  # the harness's progress, on stdout
    assert said[-1] == f"report: {tmp / 'a' / 'imitation.md'}"
    report, digest = tables(tmp / "a" / "imitation.md"), sha256(tmp / "a" / "demos" / "Hopper-v5.npz")
    shutil.rmtree(tmp / "a")
    return tmp / "arch", report, digest


def test_imitation_benchmark_carries_on_from_its_archive_without_training_again(imitation_archive, tmp_path):
    store, report, digest = imitation_archive
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
    assert "eval_episodes" not in record  # this benchmark's records are as they were (the committed archive's)
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
    # GAIL collects its rollouts as the experts do: four in-process envs, the preset's rollout size
    gail = yaml.safe_load((store / "gail-gp10" / "gail-2_Hopper-v5_s0" / "config.yaml").read_text())
    assert gail["n_envs"] == 4 and gail["n_envs"] * gail["hyperparams"]["n_steps"] == 2048

    out = tmp_path / "b"  # a fresh machine
    said = ok("imitation", *imitation(store, out))
    assert f"restored 3 expert(s) and demo record(s) from {store}" in said  # two experts, the demos' record
    assert sha256(out / "demos" / "Hopper-v5.npz") == digest
    for expert in run_dirs(out / "experts" / "runs"):  # restored, not trained
        assert (expert / "model.zip").is_file() and not (expert / "checkpoint").exists()
    for learner in learners:
        run_dir = out / learner.replace("/", "/runs/")
        assert (run_dir / "result.json").is_file() and not (run_dir / "model.zip").exists()
    assert tables(out / "imitation.md") == report


def test_imitation_demos_made_again_that_differ_from_the_archived_ones_stop_the_benchmark(imitation_archive,
                                                                                          tmp_path):
    store, _, digest = imitation_archive
    shutil.copytree(store, tmp_path / "arch")
    record_path = tmp_path / "arch" / "demos" / "Hopper-v5.json"
    record = json.loads(record_path.read_text())
    assert set(record["versions"]) >= {"python", "numpy", "torch", "mujoco", "gymnasium", "stable-baselines3"}
    record_path.write_text(json.dumps({**record, "sha256": "0" * 64}))
    stopped = run("imitation", *imitation(tmp_path / "arch", tmp_path / "c", "--stage", "demos"))
    message = stopped.stderr.strip().splitlines()[-1]
    assert stopped.returncode == 1 and message.startswith("imitation.py: Hopper-v5: Hopper-v5.npz made again has ")
    assert digest in message and "0" * 64 in message and "--accept-new-demos" in message
    assert not (tmp_path / "c" / "demos" / "Hopper-v5.npz").exists()
    # asked to, it keeps them and says so
    said = ok("imitation", *imitation(tmp_path / "arch", tmp_path / "c", "--stage", "demos", "--accept-new-demos"))
    assert sha256(tmp_path / "c" / "demos" / "Hopper-v5.npz") == digest
    said = [line for line in said if line.startswith("demos: Hopper-v5:")]
    assert len(said) == 1 and "not the recorded sha256: kept" in said[0], said
    # demos that match their record say so
    shutil.copytree(store, tmp_path / "arch2")
    said = ok("imitation", *imitation(tmp_path / "arch2", tmp_path / "g", "--stage", "demos"))
    said = [line for line in said if line.startswith("demos: Hopper-v5:")]
    assert len(said) == 1 and "(the recorded sha256)" in said[0], said


def test_imitation_report_alone_from_the_archive_names_a_run_it_cannot_score(imitation_archive, tmp_path):
    store, report, _ = imitation_archive
    shutil.copytree(store, tmp_path / "arch")
    (tmp_path / "arch" / "gail-gp10" / "gail-1_Hopper-v5_s0" / "benchmark_eval.json").unlink()
    said = ok("imitation", *imitation(tmp_path / "arch", tmp_path / "d", "--stage", "report"))
    said = [line for line in said if "gail-1_Hopper-v5_s0" in line]
    assert len(said) == 1 and "not scored" in said[0]
    text = (tmp_path / "d" / "imitation.md").read_text()
    assert "1 finished run(s) left out" in text and "gail-1_Hopper-v5_s0" in text
    bc_rows = [row for row in report if row.startswith("| BC ")]  # across tasks: BC's scores from the archive alone
    assert bc_rows and [row for row in tables(tmp_path / "d" / "imitation.md") if row.startswith("| BC ")] == bc_rows


def test_imitation_learners_are_archived_with_their_score_by_the_imitate_stage_alone(imitation_archive, tmp_path):
    """The archive keeps no learner's model, so a learner archived before a report scored it (the machine gone
    after the imitate stage) could never be scored: the imitate stage caches each learner's score first."""
    store, report, _ = imitation_archive
    shutil.copytree(store, tmp_path / "arch")
    learners = ["gail-gp10/gail-1_Hopper-v5_s0", "gail-gp10/gail-2_Hopper-v5_s0", "bc/bc-1_Hopper-v5_s0",
                "bc/bc-2_Hopper-v5_s0"]
    for learner in learners:
        shutil.rmtree(tmp_path / "arch" / learner)
    ok("imitation", *imitation(tmp_path / "arch", tmp_path / "e", "--stage", "imitate"))
    for learner in learners:
        cache = json.loads((tmp_path / "arch" / learner / "benchmark_eval.json").read_text())
        assert len(cache["returns"]) == 2 and cache["model"] == "final", learner  # --quick: 2 episodes
        assert not (tmp_path / "arch" / learner / "model.zip").exists()
    # another machine's report from the archive alone scores every learner
    said = ok("imitation", *imitation(tmp_path / "arch", tmp_path / "f", "--stage", "report"))
    assert not any("not scored" in line for line in said)
    assert "left out" not in (tmp_path / "f" / "imitation.md").read_text()


@pytest.mark.slow  # trains a second GAIL setting's cells (~1 min idle); the default setting reaching its runs is
# checked in `make test` by test_imitation_benchmark_carries_on_from_its_archive_without_training_again
def test_imitation_gail_settings_reach_their_runs_and_the_report_shows_every_one_with_runs(imitation_archive,
                                                                                          tmp_path):
    store, report, _ = imitation_archive
    shutil.copytree(store, tmp_path / "arch")
    # asked for, not trained yet: the report says how to resume it; the archive's setting is complete
    ok("imitation", *imitation(tmp_path / "arch", tmp_path / "v", "--gail-variants", "gail", "--stage", "report"))
    text = (tmp_path / "v" / "imitation.md").read_text()
    assert "GAIL: 2 run(s) not finished or not started; re-running the `imitate` stage with `--gail-variants gail`" in text
    assert "GAIL+GP10: " not in text and "BC: " not in text
    ok("imitation", *imitation(tmp_path / "arch", tmp_path / "v", "--gail-variants", "gail"))
    assert "not finished or not started" not in (tmp_path / "v" / "imitation.md").read_text()
    # a setting kept from earlier cells but no longer trained: its missing cells are not work left to resume
    for folder in (tmp_path / "arch" / "gail", tmp_path / "v" / "gail" / "runs"):
        shutil.rmtree(folder / "gail-1_Hopper-v5_s0")
    ok("imitation", *imitation(tmp_path / "arch", tmp_path / "w", "--stage", "report"))
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
    refused = run("imitation", *imitation(tmp_path / "arch", tmp_path / "v", "--gail-variants", "gail-gp99"))
    assert refused.returncode == 2
    error = refused.stderr.strip().splitlines()[-1]
    assert "'gail-gp99'" in error and "choose from gail, gail-gp10" in error


def test_a_quick_imitation_run_never_writes_into_the_committed_archive_nor_a_full_run_into_a_quick_one(
        imitation_archive, tmp_path):
    store, _, _ = imitation_archive
    committed = ROOT / "benchmarks" / "results" / "runs" / "imitation"
    before = sorted(p.relative_to(committed) for p in committed.rglob("*"))
    refused = run("imitation", "--quick", "--stage", "report", "--out", tmp_path / "e", "--archive", committed)
    assert refused.returncode == 2 and "never writes into the committed archive" in refused.stderr
    assert sorted(p.relative_to(committed) for p in committed.rglob("*")) == before
    refused = run("imitation", "--stage", "report", "--out", tmp_path / "f", "--archive", store)
    assert refused.returncode == 2 and "holds a --quick benchmark's runs" in refused.stderr

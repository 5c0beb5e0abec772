"""The InfoGAIL benchmark script carried to a fresh machine by its run archive (``--quick`` budgets), run as a user
runs it (a file of its own, so that the test runner can run it beside the imitation benchmark's)."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.benchmark_scripts import ok, run, run_dirs, sha256, tables


@pytest.mark.slow  # ~2.5 min on an idle machine, a quarter of `make test`: the pipeline it runs is the one the
# imitation benchmark's archive tests (test_bench_archive_imitation.py) cover in `make test`; `make test-slow` runs it
def test_infogail_benchmark_carries_on_from_its_archive_without_training_again(tmp_path):
    def infogail(out, *extra):
        return ["--quick", "--pairs", "Swimmer-v5", "--workers", "1", "--archive", str(tmp_path / "arch"),
                "--out", str(out), *extra]

    said = ok("infogail", *infogail(tmp_path / "a"))
    assert said[-1] == f"report: {tmp_path / 'a' / 'infogail.md'}"
    demos = tmp_path / "a" / "demos"
    digests = {p.name: sha256(p) for p in demos.glob("*.npz")}
    assert sorted(digests) == ["Swimmer-v5-backward.npz", "Swimmer-v5-forward.npz", "Swimmer-v5-mixed.npz"]
    report = tables(tmp_path / "a" / "infogail.md")
    for behaviour in ("forward", "backward"):  # the experts table names the run whose episodes are in the demos
        source = json.loads((demos / f"Swimmer-v5-{behaviour}.json").read_text())
        assert source["eval_episodes"] == 2  # this benchmark's records say how the expert was scored
        row = [line for line in report if line.startswith(f"| Swimmer-v5 | {behaviour} |")]
        assert len(row) == 1 and f"| {Path(source['run_dir']).name}, {source['model']} policy" in row[0], row
    # a variant beside the benchmark's methods: InfoGAIL after BC under random codes, its own runs and report
    said = ok("infogail", *infogail(tmp_path / "a", "--methods", "infogail-bc"))
    assert said[-1] == f"report: {tmp_path / 'a' / 'infogail_infogail-bc.md'}"
    variant = tmp_path / "a" / "imitate" / "runs" / "ppo-infogail-bc_Swimmer-v5_s0"
    assert json.loads((variant / "bc.json").read_text())["episodes"] == 4  # both experts' demos, mixed
    assert yaml.safe_load((variant / "config.yaml").read_text())["bc_kwargs"]["loss"] == "mse"
    variant_report = tables(tmp_path / "a" / "infogail_infogail-bc.md")
    assert any(line.startswith("| Swimmer-v5 | InfoGAIL, BC pre-trained (code matched") for line in variant_report)
    assert not any("| GAIL (one policy" in line for line in variant_report)
    assert tables(tmp_path / "a" / "infogail.md") == report  # the benchmark's own report untouched
    refused = run("infogail", *infogail(tmp_path / "a", "--methods", "infogail,vail"))
    assert refused.returncode == 2 and "--methods: unknown ['vail']" in refused.stderr
    shutil.rmtree(tmp_path / "a")
    store = tmp_path / "arch"
    for name, digest in digests.items():
        assert json.loads((store / "demos" / name).with_suffix(".json").read_text())["sha256"] == digest
    for learner in ("ppo-infogail_Swimmer-v5_s0", "ppo-gail_Swimmer-v5_s0"):
        assert (store / "imitate" / learner / "benchmark_signatures.json").is_file()
        assert not (store / "imitate" / learner / "model.zip").exists()
        # both discriminators with the imitation benchmark's gradient penalty
        config = yaml.safe_load((store / "imitate" / learner / "config.yaml").read_text())
        assert config["imitation_kwargs"]["gradient_penalty"] == 10.0

    out = tmp_path / "b"  # a fresh machine
    said = ok("infogail", *infogail(out))
    experts = len(run_dirs(store / "experts"))
    assert f"restored {experts + 3} expert(s) and demo record(s) from {store}" in said  # and three demo records
    assert {p.name: sha256(p) for p in (out / "demos").glob("*.npz")} == digests
    for expert in run_dirs(out / "experts" / "runs"):  # restored, not trained
        assert (expert / "model.zip").is_file() and not (expert / "checkpoint").exists()
    for learner in run_dirs(out / "imitate" / "runs"):
        assert (learner / "result.json").is_file() and not (learner / "model.zip").exists()
    assert tables(out / "infogail.md") == report

    # the mixed file is made again by the seeded mix and checked like the experts' demos
    record_path = store / "demos" / "Swimmer-v5-mixed.json"
    record_path.write_text(json.dumps({**json.loads(record_path.read_text()), "sha256": "0" * 64}))
    stopped = run("infogail", *infogail(tmp_path / "c", "--stage", "demos"))
    message = stopped.stderr.strip().splitlines()[-1]
    assert stopped.returncode == 1 and message.startswith("infogail.py: Swimmer-v5 mixed: ")
    assert digests["Swimmer-v5-mixed.npz"] in message and "0" * 64 in message

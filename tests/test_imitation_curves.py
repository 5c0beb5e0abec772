"""benchmarks/imitation_curves.py: the imitation benchmark's learning curves, normalised, from its archive."""

import json

from tests.benchmark_scripts import ok, run


def _archive(tmp_path, curves):
    archive = tmp_path / "arch"
    (archive / "gail-gp10").mkdir(parents=True)
    (archive / "random_scores.json").write_text(json.dumps({"Hopper-v5": 0.0}))
    (archive / "experts.json").write_text(json.dumps({"Hopper-v5": {"eval_mean": 100.0}}))
    for name, returns in curves.items():
        run_dir = archive / "gail-gp10" / name
        run_dir.mkdir()
        rows = ["timesteps,mean_return,std_return"] + [f"{25000 * (i + 1)},{r},0" for i, r in enumerate(returns)]
        (run_dir / "eval.csv").write_text("\n".join(rows) + "\n")
    return archive


def test_a_run_that_gets_there_later_and_falls_back_is_told_apart_from_a_steady_one(tmp_path):
    archive = _archive(tmp_path, {
        "gail-4_Hopper-v5_s0": [10, 60, 95, 95, 95, 95, 95, 95],  # 0.9 at the third evaluation, stays
        "gail-25_Hopper-v5_s0": [10, 20, 30, 60, 92, 100, 80, 50],  # later, higher, then falls back
    })
    out = tmp_path / "curves.md"
    ok("imitation_curves", "--archive", archive, "--out", out)
    rows = {line.split("|")[2].strip(): line for line in out.read_text().splitlines() if line.startswith("| Hopper")}
    assert "| 0.95 | 0.95 | 0.95 | 50k (median) | 75k (median) |" in rows["4"]
    # final 0.50, best 1.00, last five (0.6, 0.92, 1.0, 0.8, 0.5) 0.76; 0.5 at 100k, 0.9 at 125k
    assert "| 0.50 | 1.00 | 0.76 | 100k (median) | 125k (median) |" in rows["25"]


def test_a_folder_that_is_not_the_archive_is_a_one_line_error(tmp_path):
    done = run("imitation_curves", "--archive", tmp_path, "--out", "-")
    assert done.returncode == 2 and "must be the imitation benchmark's run archive" in done.stderr

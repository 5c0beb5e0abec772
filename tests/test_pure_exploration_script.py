"""benchmarks/pure_exploration_sb3.py: the bonus wrappers on hand-built SB3 models, counted in visited cells."""

from tests.benchmark_scripts import ok, run


def test_the_hand_built_comparison_counts_cells_for_each_method(tmp_path):
    out = tmp_path / "pure.md"
    lines = ok("pure_exploration_sb3", "--steps", "2048", "--seeds", "0", "--bonuses", "rnd", "--out", out)
    rows = [line for line in lines if line.startswith("| ppo")]
    assert [row.split("|")[1].strip() for row in rows] == ["ppo", "ppo + rnd"]
    assert all(int(row.split("|")[3]) > 0 for row in rows)  # the four envs visited some cells
    assert "| ppo + rnd |" in out.read_text()


def test_a_task_without_a_position_or_an_unknown_bonus_is_refused_in_one_line():
    done = run("pure_exploration_sb3", "--env", "CartPole-v1")
    assert done.returncode == 2 and "has no coverage position" in done.stderr
    done = run("pure_exploration_sb3", "--bonuses", "icm")
    assert done.returncode == 2 and "unknown bonus 'icm'" in done.stderr

import numpy as np

from rlgen.agents import RunConfig
from rlgen.bench import load_suite
from rlgen.bench.report import RunRecord
from rlgen.bench.suite import SuiteRun
from rlgen.demo import success_curves_png, summary_table


def _record(label, seed, train_returns, final):
    config = RunConfig(env_id="rlgen/SparseMountainCar-v0", total_steps=1000, seed=seed)
    steps = np.linspace(100, 1000, len(train_returns))
    return RunRecord(SuiteRun(label, config.env_id, seed, config), "finished", np.array([1000.0]),
                     np.array([final]), None, steps, np.asarray(train_returns, dtype=float))


def test_summary_table_reports_rates_first_successes_and_never():
    records = [
        _record("plain", 0, [0, 0, 0, 0], 0.0),
        _record("plain", 1, [0, 0, 1, 1], 1.0),
        _record("vime", 0, [0, 1, 1, 1], 1.0),
        _record("vime", 1, [1, 1, 1, 1], 1.0),
    ]
    text = "\n".join(summary_table(records))
    rows = {tuple(line.split()[:2]): line for line in text.splitlines() if line.split()[:1] in (["plain"], ["vime"])}
    assert "never" in rows["plain", "0"] and "0.00" in rows["plain", "0"]
    assert "0.50" in rows["plain", "1"] and "1k steps" in rows["plain", "1"]  # first success at step 700
    assert "1.00" in rows["vime", "1"] and "0k steps" in rows["vime", "1"]
    overall = [line for line in text.splitlines() if line.startswith("vime") and "[" in line][0]
    assert "0.88" in overall and "2/2" in overall  # mean of 0.75 and 1.0; both seeds succeeded
    overall_plain = [line for line in text.splitlines() if line.startswith("plain") and "[" in line][0]
    assert "1/2" in overall_plain


def test_success_curves_png(tmp_path):
    path = success_curves_png([_record("plain", 0, [0, 1, 0, 1], 1.0)], tmp_path / "s.png", bins=4)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_suite_compares_an_agent_with_and_without_vime(tmp_path):
    runs = load_suite("vime-demo").runs(tmp_path)
    labels = {run.label for run in runs}
    assert len(labels) == 2
    by_label = {run.label: run.config for run in runs}
    (plain_label,) = [label for label in labels if by_label[label].bonus is None]
    (vime_label,) = [label for label in labels if by_label[label].bonus == "vime"]
    plain, vime = by_label[plain_label], by_label[vime_label]
    # the same agent, task and budget: only the bonus differs
    assert (plain.algo, plain.env_id, plain.total_steps, plain.hyperparams) == \
        (vime.algo, vime.env_id, vime.total_steps, vime.hyperparams)
    assert len(runs) >= 6


def test_demo_runs_are_cells_of_the_exploration_benchmark(tmp_path):
    """The demo repeats benchmark cells exactly (same settings and seeds), so its table can be checked
    against benchmarks/results/exploration.md."""
    def key(config):
        return (config.algo, config.env_id, config.seed, config.bonus, tuple(sorted(config.bonus_kwargs.items())))

    def settings(config):
        return (config.total_steps, config.hyperparams, config.eval_freq, config.env_kwargs)

    bench = {key(run.config): (settings(run.config), run.label)
             for run in load_suite("exploration").runs(tmp_path / "exploration")
             if not run.archived_only}  # earlier code's cells of the same settings: not what the demo runs
    for run in load_suite("vime-demo").runs(tmp_path / "demo"):
        # the same label too: the benchmark's headline cells, not a kept earlier setting (ppo+vime-round1)
        # or earlier code's (ppo+vime-before-fix)
        assert bench[key(run.config)] == (settings(run.config), run.label), run.label

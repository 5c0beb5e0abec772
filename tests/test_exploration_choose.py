"""benchmarks/exploration_choose.py: one setting per bonus from the tuning runs, by the tuning suite's rule."""

import importlib.util
from types import SimpleNamespace

import numpy as np

from rlgen.bench.report import RunRecord
from rlgen.bench.suite import Suite
from tests.benchmark_scripts import ROOT, run

spec = importlib.util.spec_from_file_location("exploration_choose", ROOT / "benchmarks" / "exploration_choose.py")
choose_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(choose_script)


def record(label, task, seed, success, state="finished"):
    """A run whose training episodes succeeded a share ``success`` of the time."""
    returns = np.array([1.0] * int(100 * success) + [0.0] * (100 - int(100 * success)))
    run_ = SimpleNamespace(label=label, env_id=task, seed=seed, config=SimpleNamespace(run_name=f"{label}_{task}_s{seed}"))
    return RunRecord(run_, state, np.array([]), np.array([]), train_steps=np.arange(100.0), train_returns=returns)


TUNED = Suite("tune", entries=[
    {"algo": "ppo"},
    {"algo": "ppo", "label": "ppo+rnd-beta0.01", "bonus": "rnd", "bonus_kwargs": {"beta": 0.01}},
    {"algo": "ppo", "label": "ppo+rnd-beta0.1", "bonus": "rnd", "bonus_kwargs": {"beta": 0.1}},
    {"algo": "ppo", "label": "ppo+rnd-beta1", "bonus": "rnd", "bonus_kwargs": {"beta": 1.0}},
    {"algo": "ppo", "label": "ppo+density-state-beta0.05", "bonus": "density",
     "bonus_kwargs": {"target": "state", "beta": 0.05}},
    {"algo": "ppo", "label": "ppo+density-state-beta0.5", "bonus": "density",
     "bonus_kwargs": {"target": "state", "beta": 0.5}},
], seeds=[100, 101])


def test_the_best_mean_success_over_tasks_and_seeds_wins_and_a_tie_goes_to_the_setting_listed_first():
    success = {"ppo": (0, 0, 0, 0), "ppo+rnd-beta0.01": (0.2, 0.2, 0.0, 0.0),
               "ppo+rnd-beta0.1": (0.9, 0.5, 0.3, 0.1),  # mean 0.45
               "ppo+rnd-beta1": (1.0, 1.0, 0.0, 0.0),  # mean 0.5: one task solved twice beats both half-solved
               "ppo+density-state-beta0.05": (0.5, 0.5, 0.5, 0.5),
               "ppo+density-state-beta0.5": (0.5, 0.5, 0.5, 0.5)}  # a tie: the smaller scale, listed first
    records = [record(label, task, seed, share) for label, shares in success.items()
               for (task, seed), share in zip([("a", 100), ("a", 101), ("b", 100), ("b", 101)], shares, strict=True)]
    chosen, missing = choose_script.choose(TUNED, records)
    assert chosen == {"ppo+rnd": "ppo+rnd-beta1", "ppo+density-state": "ppo+density-state-beta0.05"}
    assert missing == {}
    assert choose_script.split_label("ppo+vime-eta1-decay") == ("ppo+vime", "eta1-decay")
    assert choose_script.split_label("ppo") is None

    # one unfinished run keeps its method from being chosen, and the report says which run
    records[-1] = record("ppo+density-state-beta0.5", "b", 101, 0.0, state="incomplete")
    chosen, missing = choose_script.choose(TUNED, records)
    assert "ppo+density-state" not in chosen and missing["ppo+density-state"] == ["ppo+density-state-beta0.5_b_s101"]
    text = choose_script.report(TUNED, records, chosen, missing, "cmd")
    assert "| ppo+rnd | beta1 **chosen** |" in text and "ppo+density-state: not chosen yet, 1 runs unfinished" in text


def test_check_flags_benchmark_runs_without_the_chosen_setting_whatever_the_agent_or_density_target():
    chosen = {"ppo+rnd": "ppo+rnd-beta1", "ppo+density-state": "ppo+density-state-beta0.05"}
    good = Suite("bench", entries=[
        {"algo": "ppo"},
        {"algo": "ppo", "label": "ppo+rnd", "bonus": "rnd", "bonus_kwargs": {"beta": 1.0}},
        {"algo": "trpo", "label": "trpo+rnd", "bonus": "rnd", "bonus_kwargs": {"beta": 1.0}},
        {"algo": "ppo", "label": "ppo+density-transition", "bonus": "density",
         "bonus_kwargs": {"target": "transition", "beta": 0.05}},
        {"algo": "ppo", "label": "ppo+vime", "bonus": "vime"},  # not tuned here: not checked
    ], seeds=[0])
    assert choose_script.check(good, [(TUNED, chosen)]) == []
    bad = Suite("bench", entries=[
        {"algo": "trpo", "label": "trpo+rnd", "bonus": "rnd"},  # the default beta, not the chosen one
        {"algo": "ppo", "label": "ppo+density-transition", "bonus": "density", "bonus_kwargs": {"beta": 0.5}},
    ], seeds=[0])
    assert len(choose_script.check(bad, [(TUNED, chosen)])) == 2


def test_a_missing_runs_folder_is_a_one_line_error(tmp_path):
    done = run("exploration_choose", "--runs", tmp_path / "nowhere", "--out", "-")
    assert done.returncode == 2 and "is not a folder" in done.stderr


def test_a_later_round_sets_its_bonus_and_only_cells_labelled_with_an_earlier_round_may_keep_that_ones():
    first = Suite("tune1", entries=[
        {"algo": "ppo", "label": "ppo+vime-eta0.01", "bonus": "vime", "bonus_kwargs": {"eta": 0.01}},
        {"algo": "ppo", "label": "ppo+rnd-beta1", "bonus": "rnd", "bonus_kwargs": {"beta": 1.0}}], seeds=[100])
    second = Suite("tune2", entries=[
        {"algo": "ppo", "label": "ppo+vime-eta0.01-freeze50k", "bonus": "vime",
         "bonus_kwargs": {"eta": 0.01, "freeze_scale_at": 50000}}], seeds=[100])
    rounds = [(first, {"ppo+vime": "ppo+vime-eta0.01", "ppo+rnd": "ppo+rnd-beta1"}),
              (second, {"ppo+vime": "ppo+vime-eta0.01-freeze50k"})]
    latest = {"eta": 0.01, "freeze_scale_at": 50000}
    good = Suite("bench", entries=[
        {"algo": "ppo", "label": "ppo+vime", "bonus": "vime", "bonus_kwargs": latest},
        {"algo": "trpo", "label": "trpo+vime", "bonus": "vime", "bonus_kwargs": latest},
        {"algo": "ppo", "label": "ppo+vime-round1", "bonus": "vime", "bonus_kwargs": {"eta": 0.01}},
        {"algo": "ppo", "label": "ppo+rnd", "bonus": "rnd", "bonus_kwargs": {"beta": 1.0}}], seeds=[0])
    assert choose_script.check(good, rounds) == []
    bad = Suite("bench", entries=[
        {"algo": "ppo", "label": "ppo+vime", "bonus": "vime", "bonus_kwargs": {"eta": 0.01}},  # an old setting
        {"algo": "ppo", "label": "ppo+vime-round1", "bonus": "vime", "bonus_kwargs": latest},  # not round 1's
        {"algo": "ppo", "label": "ppo+vime-round3", "bonus": "vime", "bonus_kwargs": {"eta": 0.01}},  # no round 3
        {"algo": "ppo", "label": "ppo+rnd-round2", "bonus": "rnd", "bonus_kwargs": {"beta": 1.0}}], seeds=[0])
    problems = choose_script.check(bad, rounds)
    assert [p.split(":")[0] for p in problems] == ["ppo+vime", "ppo+vime-round1", "ppo+vime-round3", "ppo+rnd-round2"]
    assert "round 2 does not tune rnd" in problems[-1]
    # the later round not chosen yet (runs unfinished): not held to the earlier round's choice instead
    unfinished = choose_script.check(good, [rounds[0], (second, {})])
    assert [p.split(":")[0] for p in unfinished] == ["ppo+vime", "trpo+vime"]
    assert "round 2 has not chosen vime's setting yet" in unfinished[0]


def test_several_rounds_need_no_single_out_file(tmp_path):
    done = run("exploration_choose", "--tune", ROOT / "benchmarks" / "exploration_tune.yaml",
               "--tune", ROOT / "benchmarks" / "exploration_tune_vime_fade.yaml", "--out", tmp_path / "one.md")
    assert done.returncode == 2 and "several --tune rounds" in done.stderr


def test_the_exploration_suite_uses_the_settings_its_committed_tuning_runs_chose():
    """The benchmark's bonus settings are the ones the archived tuning runs pick (no hand edits after): the
    first round's for the density bonus and RND, the second's for VIME, the first's for cells labelled round 1."""
    done = run("exploration_choose", "--tune", ROOT / "benchmarks" / "exploration_tune.yaml",
               "--tune", ROOT / "benchmarks" / "exploration_tune_vime_fade.yaml", "--out", "-",
               "--check", "exploration")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "round 1 ppo+vime: ppo+vime-eta0.01 {'eta': 0.01}" in done.stdout
    assert "round 2 ppo+vime: ppo+vime-eta0.01-freeze50k {'eta': 0.01, 'freeze_scale_at': 50000}" in done.stdout

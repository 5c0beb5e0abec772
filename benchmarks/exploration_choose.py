"""Choose each exploration bonus's one setting from its tuning runs, as benchmarks/exploration_tune.yaml says.

    python benchmarks/exploration_choose.py [--tune benchmarks/exploration_tune.yaml [--tune LATER_ROUND.yaml]]
        [--runs benchmarks/results/runs/exploration-tune] [--out benchmarks/results/exploration_tune.md]
        [--check exploration]

Reads the tuning suite's runs from a folder of finished runs (its run archive by default), and for every method
(a label's part before its setting: ``ppo+vime-eta0.1`` is method ``ppo+vime``, setting ``eta0.1``) scores each
setting by its mean success rate (the share of training episodes with a positive env return, already on [0, 1]
for every task) over all tuning tasks and seeds; the best wins, ties (equal to three decimals) going to the
setting listed first in the suite (the smaller scale). Writes a markdown report (the grid, per task and overall,
plain PPO beside it, the choice with its ``bonus_kwargs``) and prints the choice.

A method is only chosen when every one of its runs has finished; otherwise the report shows what is there and
says what is missing. ``--check SUITE`` then exits non-zero unless every run of SUITE with a tuned bonus (matched
by its ``bonus`` field: TRPO+VIME takes PPO+VIME's setting) uses exactly the chosen ``bonus_kwargs``.

Several tuning rounds: ``--tune`` given more than once, in the order they were run. A later round's choice
replaces an earlier one's for the bonuses it tunes, and ``--check`` then also accepts a run that keeps round k's
choice if its label says so by ending in ``-round<k>`` (e.g. ``ppo+vime-round1``: the first round's cells, kept
for comparison). Each round's report goes to ``--out`` when it is one round, else to
benchmarks/results/<tuning suite's file name>.md (``--out -`` prints them all).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlgen.atomic import atomic_write_text  # noqa: E402
from rlgen.bench.report import RunRecord, collect  # noqa: E402
from rlgen.bench.suite import Suite, SuiteRun, load_suite  # noqa: E402

SETTING = re.compile(r"^(?P<method>.+?)-(?P<setting>(?:eta|beta|scale|lr)[^_]*)$")
TIE_DIGITS = 3


def split_label(label: str) -> tuple[str, str] | None:
    """(method, setting) of a tuning label such as ``ppo+vime-eta1-decay``; None for an untuned one (``ppo``)."""
    match = SETTING.match(label)
    return (match["method"], match["setting"]) if match else None


def archived_runs(suite: Suite, runs_dir: Path) -> list[SuiteRun]:
    """The suite's runs at its own seeds, each pointed at ``runs_dir/<run name>`` (an archive's layout)."""
    runs = suite.runs(runs_dir)
    for run in runs:
        run.config.out_dir = str(runs_dir)
    return runs


def grid(records: list[RunRecord]) -> dict[str, dict[str, list[RunRecord]]]:
    """label -> task -> the label's records on that task (any state), in suite order."""
    table: dict[str, dict[str, list[RunRecord]]] = {}
    for record in records:
        table.setdefault(record.run.label, {}).setdefault(record.run.env_id, []).append(record)
    return table


def score(records: list[RunRecord]) -> float:
    finished = [r.success_rate for r in records if r.state == "finished"]
    return float(np.mean(finished)) if finished else float("nan")


def choose(suite: Suite, records: list[RunRecord]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The chosen label per method (only methods whose runs all finished), and per method what is missing."""
    by_label = grid(records)
    methods: dict[str, list[str]] = {}
    for label in by_label:
        split = split_label(label)
        if split:
            methods.setdefault(split[0], []).append(label)
    chosen, missing = {}, {}
    for method, labels in methods.items():
        absent = [r.run.config.run_name for label in labels for task in by_label[label].values() for r in task
                  if r.state != "finished"]
        if absent:
            missing[method] = absent
            continue
        overall = {label: round(score([r for task in by_label[label].values() for r in task]), TIE_DIGITS)
                   for label in labels}
        best = max(overall.values())
        chosen[method] = next(label for label in labels if overall[label] == best)  # the first listed of a tie
    return chosen, missing


def bonus_kwargs(suite: Suite, label: str) -> dict[str, Any]:
    entry = next(entry for entry in suite.entries if entry.get("label") == label)
    return dict(entry.get("bonus_kwargs") or {})


def report(suite: Suite, records: list[RunRecord], chosen: dict[str, str], missing: dict[str, list[str]],
           command: str) -> str:
    by_label = grid(records)
    tasks = list(dict.fromkeys(r.run.env_id for r in records))
    seeds = sorted({r.run.seed for r in records})
    lines = [f"# Tuning the exploration bonuses ({suite.name})", "", suite.description, "",
             f"Command: `{command}`", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M')}; tuning seeds {seeds}; tasks: {', '.join(tasks)}. "
             "Score: success rate (share of training episodes with a positive env return), mean over seeds; "
             f"overall: mean over tasks and seeds; a tie (equal to {TIE_DIGITS} decimals) goes to the setting "
             "listed first (the smaller scale).", "",
             "## Success rate per setting", "",
             "| method | setting | " + " | ".join(tasks) + " | overall | runs finished |",
             "|---|---|" + "---|" * len(tasks) + "---|---|"]
    for label, per_task in by_label.items():
        split = split_label(label) or (label, "(none)")
        cells = []
        for task in tasks:
            group = per_task.get(task, [])
            value = score(group)
            per_seed = ", ".join(f"{r.success_rate:.2f}" if r.state == "finished" else r.state for r in group)
            cells.append(f"{value:.3f} ({per_seed})" if np.isfinite(value) else f"- ({per_seed or 'none'})")
        every = [r for group in per_task.values() for r in group]
        done = sum(r.state == "finished" for r in every)
        marker = " **chosen**" if chosen.get(split[0]) == label else ""
        lines.append(f"| {split[0]} | {split[1]}{marker} | " + " | ".join(cells) +
                     f" | {score(every):.3f} | {done}/{len(every)} |")
    lines += ["", "## Chosen", ""]
    for method, label in chosen.items():
        lines.append(f"- {method}: `{label}`, bonus_kwargs {bonus_kwargs(suite, label)}")
    for method, absent in missing.items():
        lines.append(f"- {method}: not chosen yet, {len(absent)} runs unfinished ({', '.join(absent[:4])}"
                     f"{', ...' if len(absent) > 4 else ''})")
    return "\n".join(lines) + "\n"


def chosen_kwargs(tuned: Suite, chosen: dict[str, str]) -> dict[str, dict[str, Any]]:
    """bonus name -> the chosen bonus_kwargs of a round, without the density bonus's ``target`` (the transition
    variant takes the state variant's scale)."""
    by_bonus = {}
    for label in chosen.values():
        entry = next(entry for entry in tuned.entries if entry.get("label") == label)
        by_bonus[entry["bonus"]] = {k: v for k, v in bonus_kwargs(tuned, label).items() if k != "target"}
    return by_bonus


ROUND = re.compile(r"-round(?P<k>[1-9][0-9]*)$")


def check(target: Suite, rounds: list[tuple[Suite, dict[str, str]]]) -> list[str]:
    """Runs of ``target`` with a tuned bonus whose bonus_kwargs differ from the chosen ones. A bonus is matched by
    its ``bonus`` field, whatever the agent (TRPO+VIME takes PPO+VIME's setting) and, for the density bonus,
    whatever its ``target``. ``rounds``: the tuning rounds in order, as (tuning suite, its chosen labels) pairs;
    the last round to tune a bonus sets it, and a run labelled ``...-round<k>`` must use round k's choice
    instead (a kept earlier cell)."""
    per_round = [chosen_kwargs(suite, picked) for suite, picked in rounds]
    tuning = [{entry.get("bonus") for entry in suite.entries if split_label(entry.get("label") or "")} - {None}
              for suite, _ in rounds]  # the bonuses each round tunes, chosen yet or not
    last_round = {bonus: k for k, bonuses in enumerate(tuning) for bonus in bonuses}  # the last one wins
    problems = []
    for entry in target.entries:
        bonus, label = entry.get("bonus"), entry.get("label") or entry.get("algo")
        if bonus not in last_round:
            continue
        kept = ROUND.search(label)
        if kept and not 1 <= int(kept["k"]) <= len(rounds):
            problems.append(f"{label}: names tuning round {kept['k']}, but there are {len(rounds)}")
            continue
        k = int(kept["k"]) - 1 if kept else last_round[bonus]
        if bonus not in tuning[k]:
            problems.append(f"{label}: tuning round {k + 1} does not tune {bonus}")
            continue
        want = per_round[k].get(bonus)
        if want is None:
            problems.append(f"{label}: tuning round {k + 1} has not chosen {bonus}'s setting yet")
            continue
        have = {k: v for k, v in (entry.get("bonus_kwargs") or {}).items() if k != "target"}
        if have != want:
            problems.append(f"{label}: bonus_kwargs {have}, chosen {want}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="append",
                        help="a tuning suite; repeat for later rounds, in order (default: "
                             "benchmarks/exploration_tune.yaml)")
    parser.add_argument("--runs", default=str(REPO / "benchmarks" / "results" / "runs" / "exploration-tune"),
                        help="folder holding its finished runs, one directory per run name (default: its archive)")
    parser.add_argument("--out", help="the report to write ('-': print only; default: benchmarks/results/<tuning "
                                      "suite's file name>.md)")
    parser.add_argument("--check", metavar="SUITE", help="fail unless SUITE's bonus runs use the chosen settings")
    args = parser.parse_args(argv)
    tunes = args.tune or [str(REPO / "benchmarks" / "exploration_tune.yaml")]
    runs_dir = Path(args.runs)
    if not runs_dir.is_dir():
        parser.error(f"--runs {runs_dir} is not a folder")
    if args.out not in (None, "-") and len(tunes) > 1:
        parser.error("--out names one report, but there are several --tune rounds (use '-' or leave it out)")
    command = "python benchmarks/exploration_choose.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rounds, incomplete = [], False
    for tune in tunes:
        tuned = load_suite(tune)
        records = collect(archived_runs(tuned, runs_dir))
        chosen, missing = choose(tuned, records)
        text = report(tuned, records, chosen, missing, command.strip())
        if args.out == "-":
            print(text)
        else:
            out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"{Path(tune).stem}.md"
            atomic_write_text(out, text)
        prefix = f"round {len(rounds) + 1} " if len(tunes) > 1 else ""
        for method, label in chosen.items():
            print(f"{prefix}{method}: {label} {bonus_kwargs(tuned, label)}")
        for method, absent in missing.items():
            print(f"{prefix}{method}: {len(absent)} runs unfinished, not chosen")
        rounds.append((tuned, chosen))
        incomplete = incomplete or bool(missing)
    if args.check:
        problems = check(load_suite(args.check), rounds)
        for problem in problems:
            print(f"not the chosen setting: {problem}", file=sys.stderr)
        if problems or incomplete:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

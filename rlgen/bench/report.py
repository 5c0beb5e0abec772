"""Aggregate a suite's run directories into tables, learning curves and a Markdown report."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlgen.agents.plotting import coverage_over_steps, training_episodes
from rlgen.agents.rundir import ERROR_FILE, RunDir
from rlgen.atomic import atomic_write_bytes, atomic_write_text
from rlgen.bench import stats
from rlgen.bench.suite import Suite, SuiteRun
from rlgen.envs.coverage import MAX_PROGRESS, measures_for
from rlgen.envs.progress import MAX_GOAL_FRACTION

RANDOM_SCORES_FILE = "random_scores.json"

logger = logging.getLogger(__name__)


@dataclass
class RunRecord:
    run: SuiteRun
    state: str  # finished | incomplete | failed | missing | other (another run under this name: left out)
    steps: np.ndarray
    returns: np.ndarray
    error: str | None = None
    train_steps: np.ndarray | None = None  # training episodes: approximate global step at their end
    train_returns: np.ndarray | None = None  # and their env return
    train_reach: np.ndarray | None = None  # and how near the goal they came (max progress; NaN: not recorded)
    coverage: tuple[np.ndarray, np.ndarray] | None = None  # (step, cells visited by then); None: not recorded
    wall_time: float = float("nan")  # seconds, from result.json (a resumed run: its last part's)
    steps_per_second: float = float("nan")  # env steps over the time inside learn()

    @property
    def farthest(self) -> float:
        """The highest progress any training episode reached (the task's measure, rlgen.envs.coverage; for
        rlgen's locomotion tasks the fraction of the goal, 1 = the goal; NaN: not recorded)."""
        if self.train_reach is None or not np.isfinite(self.train_reach).any():
            return float("nan")
        return float(np.nanmax(self.train_reach))

    @property
    def late_reach(self) -> float:
        """The median fraction of the goal reached by the last tenth of the training episodes."""
        if self.train_reach is None:
            return float("nan")
        tail = self.train_reach[-max(1, len(self.train_reach) // 10):]
        return float(np.median(tail)) if np.isfinite(tail).all() and len(tail) else float("nan")

    @property
    def cells_visited(self) -> float:
        """The cells of the task's discretised position the run's training episodes visited (NaN: not recorded)."""
        if self.coverage is None:
            return float("nan")
        counts = self.coverage[1]
        return float(counts[-1]) if len(counts) else 0.0

    def cells_by(self, step: float) -> float:
        """The cells visited by the training episodes that had ended by env step ``step`` (NaN: not recorded)."""
        if self.coverage is None:
            return float("nan")
        steps, counts = self.coverage
        done = np.searchsorted(steps, step, side="right")
        return float(counts[done - 1]) if done else 0.0

    @property
    def early_cells(self) -> float:
        """:meth:`cells_by` a tenth of the run's budget: how fast it spreads, where the end count saturates."""
        return self.cells_by(0.1 * self.run.config.total_steps)

    @property
    def final(self) -> float:
        return float(self.returns[-1]) if len(self.returns) else float("nan")

    @property
    def success_rate(self) -> float:
        """Fraction of training episodes with a positive env return (sparse tasks: reached the goal)."""
        if self.train_returns is None or not len(self.train_returns):
            return float("nan")
        return float((self.train_returns > 0).mean())

    @property
    def first_success(self) -> float:
        """Env steps until the first training episode with a positive return (inf: never; NaN: no training
        episodes recorded, which is not "never")."""
        if self.train_returns is None or not len(self.train_returns):
            return float("nan")
        if not (self.train_returns > 0).any():
            return float("inf")
        return float(self.train_steps[np.argmax(self.train_returns > 0)])


def collect(runs: list[SuiteRun]) -> list[RunRecord]:
    records = []
    for run in runs:
        run_dir = run.config.run_dir
        history = RunDir(run_dir).read_eval_history()
        steps = np.array([row["timesteps"] for row in history])
        returns = np.array([row["mean_return"] for row in history])
        error = None
        record = RunDir(run_dir)
        other = record.mismatch(run.config) if record.read_result() is not None else None
        if other is None and record.finished(run.config.total_steps):  # run_finished, its config read once
            state = "finished"
        elif other is not None:
            state, error = "other", other
        elif (run_dir / ERROR_FILE).is_file():
            state, error = "failed", json.loads((run_dir / ERROR_FILE).read_text())["error"]
        else:
            state = "incomplete" if history else "missing"
        train_steps, train_returns, reach = training_episodes(run_dir, column=_progress_columns(run.env_id))
        wall, speed = _timing(run_dir) if state == "finished" else (float("nan"), float("nan"))
        records.append(RunRecord(run, state, steps, returns, error, train_steps, train_returns, reach,
                                 coverage_over_steps(run_dir), wall, speed))
    return records


def _progress_columns(env_id: str) -> tuple[str, ...]:
    """The Monitor columns of ``env_id``'s progress measure, the first a file has counting: the measure's own
    (the mazes' path distance has a column of its own, so that their runs recorded as the straight-line distance
    are not read as it) or ``max_progress``, which older runs of the locomotion tasks recorded as
    ``max_goal_fraction``."""
    measures = measures_for(env_id)
    if measures is not None and measures.column != MAX_PROGRESS:
        return (measures.column,)
    return (MAX_PROGRESS, MAX_GOAL_FRACTION)


def _timing(run_dir: Path) -> tuple[float, float]:
    """(wall time in seconds, env steps per second inside learn()) from a finished run's result.json."""
    try:
        result = json.loads((run_dir / "result.json").read_text())
        wall, learn = float(result.get("wall_time", "nan")), float(result.get("learn_time", "nan"))
        return wall, float(result["timesteps"]) / learn if learn > 0 else float("nan")
    except (OSError, ValueError, KeyError, TypeError):
        return float("nan"), float("nan")


def _time_table(records: list[RunRecord], tasks: list[str], labels: list[str]) -> list[str]:
    rows = []
    for task in tasks:
        for label in labels:
            timed = [r for r in records if r.run.env_id == task and r.run.label == label
                     and np.isfinite(r.wall_time)]
            if not timed:
                continue
            walls = np.array([r.wall_time for r in timed]) / 60
            speeds = np.array([r.steps_per_second for r in timed])
            rows.append(f"| {task} | {label} | {len(timed)} | {walls.mean():.0f} min ({walls.min():.0f}-"
                        f"{walls.max():.0f}) | {np.nanmean(speeds):,.0f} |")
    if not rows:
        return []
    return ["", "## Time per run", "",
            "Wall time of each finished run and its training speed (env steps over the seconds inside SB3's "
            "`learn()`, evaluations included), as its result.json recorded them; a resumed run records its last "
            "part. Runs of one suite may have shared the machine with other jobs.", "",
            "| task | method | runs | wall time per run, mean (min-max) | training steps/s, mean |",
            "|---|---|---|---|---|", *rows]


def _commit_name(code: object) -> str:
    """A result's ``code`` record as a short commit (``with changes`` when rlgen/ differed from it)."""
    named = code.get("commit") if isinstance(code, dict) else None
    if not named:
        return "not recorded"
    return str(named)[:10] + (" (with changes)" if isinstance(code, dict) and code.get("dirty") else "")


def _code_lines(records: list[RunRecord], labels: list[str]) -> list[str]:
    """Per method, the rlgen commits its finished runs were made by (result.json's ``code``), where any run
    records one: a fix between two runs of a cell shows here."""
    made: dict[str, dict[str, int]] = {}
    for record in records:
        if record.state != "finished":
            continue
        try:
            result = json.loads((record.run.config.run_dir / "result.json").read_text())
            sessions = result.get("code_sessions") or [result.get("code") or {}]
        except (OSError, ValueError, AttributeError):
            sessions = [{}]
        names = list(dict.fromkeys(_commit_name(code) for code in sessions))
        name = names[0] if len(names) == 1 else "resumed across " + " then ".join(names)
        made.setdefault(record.run.label, {}).setdefault(name, 0)
        made[record.run.label][name] += 1
    if not any(name != "not recorded" for counts in made.values() for name in counts):
        return []
    rows = [f"| {label} | " + ", ".join(f"{name} ({n})" for name, n in made[label].items()) + " |"
            for label in labels if label in made]
    return ["", "## Code the runs were made by", "",
            "The rlgen commit of each finished run, as its result.json records it (runs finished before rlgen "
            "recorded it: not recorded; a run resumed under other code names each session's); run counts in "
            "brackets.", "",
            "| method | commit (runs) |", "|---|---|", *rows]


def _published_table(suite: Suite, records: list[RunRecord], tasks: list[str], labels: list[str]) -> list[str]:
    if not suite.published:
        return []
    lines = ["", "## Published figures beside these", "",
             "| task | method | here: final return, mean [95% CI] (runs) | published | source |",
             "|---|---|---|---|---|"]
    for task in tasks:
        for label in labels:
            figure = suite.published.get(task, {}).get(label)
            if figure is None:
                continue
            finals = np.array([r.final for r in records
                               if r.run.env_id == task and r.run.label == label and r.state == "finished"])
            sd = f" ± {figure['sd']:,.0f}" if isinstance(figure.get("sd"), int | float) else ""
            lines.append(f"| {task} | {label} | {_fmt_ci(*stats.bootstrap_ci(finals))} ({len(finals)}) | "
                         f"{figure['return']:,.0f}{sd} | {figure['source']} |")
    return lines


def random_policy_score(env_id: str, env_kwargs: dict, episodes: int = 10, seed: int = 0) -> float:
    """Mean return of uniformly random actions: the 0 of normalised scores."""
    import rlgen.envs  # noqa: F401
    from rlgen.envs.quiet import make as quiet_make

    env = quiet_make(env_id, **env_kwargs)
    env.action_space.seed(seed)
    total = 0.0
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
    env.close()
    return total / episodes


def reference_scores(suite: Suite, records: list[RunRecord], out_dir: Path) -> dict[str, dict[str, float]]:
    """Per task: `random` (given, or measured and cached) and `reference` (given, or the best final
    return of any finished run in the suite)."""
    cache_path = out_dir / RANDOM_SCORES_FILE
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    refs: dict[str, dict[str, float]] = {}
    for env_id in dict.fromkeys(r.run.env_id for r in records):
        given = suite.scores.get(env_id, {})
        finished = [r for r in records if r.run.env_id == env_id and r.state == "finished"]
        finals = [r.final for r in finished]
        # the random policy's score depends on the env's settings (a goal farther away, say): cached per both
        kwargs = finished[0].run.config.env_kwargs if finished else {}
        key = env_id if not kwargs else f"{env_id} {json.dumps(kwargs, sort_keys=True)}"
        if "random" in given:
            low = given["random"]
        elif key in cache:
            low = cache[key]
        elif finished:  # measured with the env settings of a run that worked
            low = cache[key] = random_policy_score(env_id, kwargs)
            atomic_write_text(cache_path, json.dumps(cache, indent=2))
        else:
            low = float("nan")
        high = given.get("reference", max(finals) if finals else float("nan"))
        refs[env_id] = {"random": float(low), "reference": float(high),
                        "reference_source": "suite file" if "reference" in given else "best run in suite"}
    return refs


def _unscored(ref: dict[str, float]) -> str | None:
    """Why a task's returns get no normalised score (None: they do): a reference that is not above the random
    policy's score would give every run the same score (equal) or turn the scale over, the worst run scoring
    highest (below)."""
    low, high = ref["random"], ref["reference"]
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no reference score" if not np.isfinite(high) else "no random policy score"
    if high <= low:
        return f"reference {high:.1f} not above the random policy's {low:.1f}"
    return None


def normalised_scores(records: list[RunRecord], tasks: list[str], labels: list[str],
                      refs: dict[str, dict[str, float]]) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """(label -> task -> the normalised final returns of its finished runs, task -> why it has none): a task is
    scored only where its reference lies above its random policy's score (:func:`_unscored`)."""
    scores: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    unscored: dict[str, str] = {}
    for task in tasks:
        why = _unscored(refs[task])
        if why is not None:
            if any(r.run.env_id == task and r.state == "finished" for r in records):
                unscored[task] = why
            continue
        for label in labels:
            finals = np.array([r.final for r in _finished(records, task, label)])
            if len(finals):
                scores[label][task] = stats.normalise(finals, refs[task]["random"], refs[task]["reference"])
    return scores, unscored


def _fmt_ci(point: float, low: float, high: float, digits: int = 1) -> str:
    if np.isnan(point):
        return "—"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _steps_formatter():
    """Tick labels like 250k and 1.5M, which stay readable side by side."""
    from matplotlib.ticker import FuncFormatter

    def label(value: float, _position: int) -> str:
        if abs(value) >= 1e6:
            return f"{value / 1e6:g}M"
        return f"{value / 1e3:g}k" if abs(value) >= 1e3 else f"{value:g}"

    return FuncFormatter(label)


def _curves_png(records: list[RunRecord], tasks: list[str], labels: list[str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for i, label in enumerate(labels):
            group = [r for r in records if r.run.env_id == task and r.run.label == label and len(r.steps) > 1
                     and r.state == "finished"]
            if not group:
                continue
            end = min(r.steps[-1] for r in group)
            grid = np.linspace(min(r.steps[0] for r in group), end, 40)
            values = np.array([np.interp(grid, r.steps, r.returns) for r in group])
            _mean_with_band(ax, grid, values, f"C{i}", f"{label} (n={len(group)})")
        _label_steps_axes(ax, task, "evaluation return")
    return figure_png(fig)


def _mean_with_band(ax, grid: np.ndarray, values: np.ndarray, color: str, label: str) -> None:
    """The mean over runs (rows of ``values``) at each step of ``grid``, with its 95% bootstrap band."""
    cis = np.array([stats.bootstrap_ci(values[:, j], resamples=500) for j in range(len(grid))])
    ax.plot(grid, cis[:, 0], color=color, label=label)
    ax.fill_between(grid, cis[:, 1], cis[:, 2], color=color, alpha=0.2)


def _label_steps_axes(ax, task: str, ylabel: str) -> None:
    ax.set_title(task, fontsize=9)
    ax.xaxis.set_major_formatter(_steps_formatter())
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _profile_png(normalised: dict[str, list[float]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    taus = np.linspace(-0.25, 1.25, 61)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for i, (label, scores) in enumerate(normalised.items()):
        ax.plot(taus, stats.performance_profile(np.array(scores), taus), color=f"C{i}", label=label)
    ax.set_xlabel("normalised score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return figure_png(fig)


def _finished(records: list[RunRecord], task: str, label: str) -> list[RunRecord]:
    """The finished runs of one method on one task."""
    return [r for r in records if r.run.env_id == task and r.run.label == label and r.state == "finished"]


def _success_table(records: list[RunRecord], tasks: list[str], labels: list[str]) -> list[str]:
    lines = ["", "## Success on the sparse reward (training episodes with env return > 0)", "",
             "| task | method | success rate, mean [95% CI] | runs that ever succeeded | steps to first success, median "
             "[95% CI] | per seed: rate (first success) |", "|---|---|---|---|---|---|"]
    for task in tasks:
        for label in labels:
            group = _finished(records, task, label)
            if not group:
                continue
            rates = np.array([r.success_rate for r in group])
            firsts = np.array([r.first_success for r in group])
            recorded = ~np.isnan(firsts)  # runs with no training episodes recorded count on neither side
            per_seed = ", ".join(
                f"{r.success_rate:.2f} ({r.first_success / 1000:.0f}k)" if np.isfinite(r.first_success)
                else f"{r.success_rate:.2f} (never)" if np.isinf(r.first_success)
                else "no episodes recorded" for r in group)
            lines.append(f"| {task} | {label} | {_fmt_ci(*stats.bootstrap_ci(rates[recorded]), digits=3)} | "
                         f"{int(np.isfinite(firsts).sum())}/{int(recorded.sum())} | {_first_success_ci(group)} | "
                         f"{per_seed} |")
    return lines


def _first_success_ci(group: list[RunRecord]) -> str:
    """The median over seeds of the env steps to the first success, with its 95% bootstrap interval; a seed that
    never succeeded counts as later than any that did, so a median (or bound) among those reads "never"."""
    firsts = np.array([r.first_success for r in group])
    firsts = firsts[~np.isnan(firsts)]  # no training episodes recorded: not "never", left out
    if not len(firsts):
        return "—"
    never = 10.0 * max(r.run.config.total_steps for r in group) + 1.0  # later than any success in these runs
    point, low, high = stats.bootstrap_ci(np.where(np.isfinite(firsts), firsts, never), np.median)

    def steps(value: float) -> str:
        return "never" if value >= never else f"{value / 1000:.0f}k"

    return f"{steps(point)} [{steps(low)}, {steps(high)}]"


def _reach_table(records: list[RunRecord], tasks: list[str], labels: list[str]) -> list[str]:
    """How near the goal the training episodes came, where the task records it (rlgen.envs.coverage)."""
    rows, measured = [], []
    for task in tasks:
        for label in labels:
            group = [r for r in records if r.run.env_id == task and r.run.label == label and r.state == "finished"
                     and np.isfinite(r.farthest)]
            if not group:
                continue
            measured += [task] if task not in measured else []
            farthest, late = np.array([r.farthest for r in group]), np.array([r.late_reach for r in group])
            per_seed = ", ".join(f"{r.farthest:.2f} ({r.late_reach:.2f})" for r in group)
            rows.append(f"| {task} | {label} | {len(group)} | {_fmt_ci(*stats.bootstrap_ci(farthest), digits=2)} | "
                        f"{_fmt_ci(*stats.bootstrap_ci(late), digits=2)} | {per_seed} |")
    if not rows:
        return []
    # tasks with a measure whose finished runs recorded none of it (trained before the measure or its column)
    unrecorded = [task for task in tasks if task not in measured and measures_for(task) is not None
                  and any(r.run.env_id == task and r.state == "finished" for r in records)]
    missing = ([f"Not recorded by the finished runs of {', '.join(unrecorded)} (trained before the task's measure, "
                f"or before its Monitor column {', '.join(dict.fromkeys(_progress_columns(t)[0] for t in unrecorded))}"
                ").", ""] if unrecorded else [])
    return ["", "## How near the goal (each task's progress measure; higher is nearer)", "",
            "Per run: the farthest any training episode got (the highest progress of any of its states), and in "
            "brackets the median over the last tenth of the training episodes; runs that recorded it. Each "
            "task's measure:", "",
            *(f"- {task}: {_progress_text(task)}" for task in measured), "", *missing,
            "| task | method | runs | farthest, mean [95% CI] | late median, mean [95% CI] | per seed: farthest (late) |",
            "|---|---|---|---|---|---|", *rows]


def _progress_text(task: str) -> str:
    measures = measures_for(task)
    return measures.progress_text if measures is not None else "the goal fraction the env reports (1 at the goal)"


def _without_bonus(records: list[RunRecord], task: str, label: str) -> str | None:
    """The method of ``task`` that is ``label``'s agent without its exploration bonus (the same algorithm,
    imitation and env reward weight), if ``label`` has a bonus and exactly one method is so."""
    config = next(r.run.config for r in records if r.run.env_id == task and r.run.label == label)
    if config.bonus is None:
        return None
    agent = (config.algo, config.imitation, config.env_reward_weight)
    plain = {r.run.label for r in records if r.run.env_id == task and r.run.config.bonus is None
             and (r.run.config.algo, r.run.config.imitation, r.run.config.env_reward_weight) == agent}
    return plain.pop() if len(plain) == 1 else None


def _coverage_table(records: list[RunRecord], tasks: list[str], labels: list[str]) -> list[str]:
    """The cells of each task's discretised position the finished runs visited, where the task records them."""
    def visited(task: str, label: str) -> list[RunRecord]:
        return [r for r in records if r.run.env_id == task and r.run.label == label and r.state == "finished"
                and np.isfinite(r.cells_visited)]

    rows, measured = [], []
    for task in tasks:
        for label in labels:
            group = visited(task, label)
            if not group:
                continue
            measured += [task] if task not in measured else []
            plain = _without_bonus(records, task, label)
            cells = []
            for measure in ("cells_visited", "early_cells"):
                values = np.array([getattr(r, measure) for r in group])
                versus = "—"
                if plain is not None and visited(task, plain):
                    others = np.array([getattr(r, measure) for r in visited(task, plain)])
                    point, low, high = stats.difference_ci(values, others)
                    versus = f"{point:+.0f} [{low:+.0f}, {high:+.0f}]"
                cells += [_fmt_ci(*stats.bootstrap_ci(values), digits=0), versus]
            per_seed = ", ".join(f"{r.cells_visited:.0f} ({r.early_cells:.0f})" for r in group)
            rows.append(f"| {task} | {label} | {len(group)} | {' | '.join(cells)} | {plain or '—'} | {per_seed} |")
    if not rows:
        return []
    positions = [f"- {task}: {measures.position_text()}" for task in measured
                 if (measures := measures_for(task)) is not None]
    return ["", "## State coverage (cells of a discretised position the training episodes visited)", "",
            "Per run: the cells visited by the end of training, over all its envs (a state's cell is "
            "floor(value / cell size) in each dimension of the task's position), and by a tenth of its steps "
            "(how fast it spreads: on a small space every method ends up covering it all). With a bonus, the "
            "difference from the same agent without one (the means over seeds, 95% bootstrap interval): above 0, "
            "the bonus covered more of the state space. Each task's position / cell size:", "", *positions, "",
            "| task | method | runs | cells visited, mean [95% CI] | bonus minus without | by a tenth of the steps "
            "| bonus minus without | without = | per seed: end (tenth) |", "|---|---|---|---|---|---|---|---|---|",
            *rows]


def _coverage_png(records: list[RunRecord], tasks: list[str], labels: list[str]) -> bytes | None:
    """Cells visited against env steps per task, a line per method (the mean over its runs, with the 95%
    bootstrap band); None if no run recorded its coverage. Drawn on a bare Agg canvas, as the run's own plots."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    covered = [task for task in tasks if any(r.run.env_id == task and r.coverage is not None
                                             and r.state == "finished" for r in records)]
    if not covered:
        return None
    fig = Figure(figsize=(4.2 * len(covered), 3.4))
    FigureCanvasAgg(fig)
    for column, task in enumerate(covered):
        ax = fig.add_subplot(1, len(covered), column + 1)
        for i, label in enumerate(labels):
            group = [r.coverage for r in records if r.run.env_id == task and r.run.label == label
                     and r.state == "finished" and r.coverage is not None and len(r.coverage[0])]
            if not group:
                continue
            grid = np.linspace(0.0, min(steps[-1] for steps, _ in group), 40)
            # each run's count is a step function: the cells of the episodes that had ended by then
            values = np.array([np.concatenate([[0], counts])[np.searchsorted(steps, grid, side="right")]
                               for steps, counts in group])
            _mean_with_band(ax, grid, values, f"C{i}", f"{label} (n={len(group)})")
        _label_steps_axes(ax, task, "cells visited")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _steps_per_task(records: list[RunRecord], tasks: list[str]) -> str:
    """What the runs of each task actually trained for: the finished runs' step counts (a run trained
    under an earlier, larger budget keeps its steps), else the configured budget."""
    parts = []
    for task in tasks:
        group = [r for r in records if r.run.env_id == task]
        done = sorted({(RunDir(r.run.config.run_dir).read_result() or {})["timesteps"]
                       for r in group if r.state == "finished"})
        budget = sorted({r.run.config.total_steps for r in group})
        text = ", ".join(f"{steps:,}" for steps in (done or budget))
        parts.append(f"{task} {text}" + ("" if done else " (budget; none finished)"))
    return "; ".join(parts)


_FINISHED_CELL = re.compile(r"^\| [^|]+ \| [^|]+ \| (\d+)/(\d+) \|")


def finished_runs_in(path: Path) -> int:
    """How many finished runs a report already written at ``path`` covers (0 if there is none): the sum of
    its final-return table's "runs finished" cells."""
    if not path.is_file():
        return 0
    return sum(int(m.group(1)) for line in path.read_text().splitlines() if (m := _FINISHED_CELL.match(line)))


def _compare(bonus: np.ndarray, plain: np.ndarray) -> str:
    """"better", "worse" or "same" by the issue's rule: the two 95% bootstrap intervals over seeds do not overlap
    (better / worse) or do (same: no difference the intervals can see); "unknown" with fewer than two finite
    values on a side (one seed's interval is a point: any difference would read as one)."""
    bonus, plain = bonus[np.isfinite(bonus)], plain[np.isfinite(plain)]
    if len(bonus) < 2 or len(plain) < 2:
        return "unknown"
    _, low, high = stats.bootstrap_ci(bonus)
    _, plain_low, plain_high = stats.bootstrap_ci(plain)
    if low > plain_high:
        return "better"
    if high < plain_low:
        return "worse"
    return "same"


_VERDICT_WORDS = {"better": "**helps**", "worse": "**hurts**", "same": "no difference", "unknown": "—"}


def planned_tasks(records: list[RunRecord], labels: list[str]) -> dict[str, set[str]]:
    """Per method, the tasks the suite runs it on; an archived-only cell only where earlier code made its runs
    (one missing is missing for good, and must not take a task out of every method's ranking)."""
    return {label: {r.run.env_id for r in records if r.run.label == label
                    and (not r.run.archived_only or r.state == "finished")} for label in labels}


def ranked_on_common_tasks(per_task_norm: dict[str, dict[str, np.ndarray]], planned: dict[str, set[str]],
                           tasks: list[str]) -> tuple[list[str], list[str]]:
    """The methods a cross-task ranking compares, and the tasks it compares them on: the methods the suite runs
    on every task (not those it runs on a subset, such as TRPO+VIME on VIME's tasks), on the tasks where each of
    them has finished runs (a benchmark run in parts is ranked on what is done everywhere). ``per_task_norm``:
    label -> task -> normalised scores of its finished runs; ``planned``: label -> the tasks the suite runs it on."""
    ranked = [label for label in planned if set(tasks) <= planned[label] and per_task_norm.get(label)]
    common = [t for t in tasks if all(t in per_task_norm[label] for label in ranked)] if ranked else []
    return (ranked, common) if common else ([], [])


def _normalised_tables(per_task_norm: dict[str, dict[str, np.ndarray]], ranked: list[str], labels: list[str],
                       tasks: list[str], common: list[str]) -> list[str]:
    """IQM and mean of the normalised scores: the ``ranked`` methods on the ``common`` tasks (see
    :func:`ranked_on_common_tasks`), then every method with other finished tasks, each on its own tasks."""
    def row(label: str, over: list[str]) -> str:
        groups = [per_task_norm[label][t] for t in over if t in per_task_norm[label]]
        return (f"| {label} | {_fmt_ci(*stats.stratified_bootstrap_ci(groups, stats.iqm), digits=3)} | "
                f"{_fmt_ci(*stats.stratified_bootstrap_ci(groups, stats.mean), digits=3)} | "
                f"{sum(len(g) for g in groups)} | {len(groups)} |")

    header = ["| method | IQM [95% CI] | mean [95% CI] | runs | tasks |", "|---|---|---|---|---|"]
    lines: list[str] = []
    if common:
        lines += ["", f"The methods run on every task, on the {len(common)} task(s) each of them has finished runs "
                  f"on ({', '.join(common)}):", ""]
        lines += header + [row(label, common) for label in ranked]
    wider = [label for label in labels if per_task_norm.get(label)
             and (label not in ranked or len(per_task_norm[label]) > len(common))]
    if wider:
        lines += ["", "Each method on every task it has finished runs on (different tasks for different methods: "
                  "not a ranking):" if common else "Each method on its own tasks (no shared tasks to rank the "
                  "methods on: not a ranking):", ""]
        lines += header + [row(label, tasks) for label in wider]
    return lines


def _verdict_table(records: list[RunRecord], tasks: list[str], labels: list[str]) -> list[str]:
    """Each bonus against the same agent without it, per task: success rate and final return, each "helps" /
    "hurts" where the two 95% intervals do not overlap and "no difference" where they do; then per bonus the
    tasks where it helps and those where it costs something."""
    rows: list[str] = []
    tally: dict[str, dict[str, list[tuple[str, float]]]] = {}  # label -> kind -> (task, its p)
    for task in tasks:
        for label in labels:
            group = _finished(records, task, label)
            plain = _without_bonus(records, task, label) if group else None
            others = _finished(records, task, plain) if plain is not None else []
            if not others:
                continue
            verdicts, p_values = [], []
            for measure in ("success_rate", "final"):
                mine = np.array([getattr(r, measure) for r in group])
                theirs = np.array([getattr(r, measure) for r in others])
                verdict = _compare(mine, theirs)
                difference, p_value = "—", float("nan")
                if verdict != "unknown":
                    mine_ok, theirs_ok = mine[np.isfinite(mine)], theirs[np.isfinite(theirs)]
                    point, low, high = stats.difference_ci(mine_ok, theirs_ok)
                    digits = 3 if measure == "success_rate" else 1
                    p_value = stats.permutation_test(mine_ok, theirs_ok)
                    difference = f"{point:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}], p {p_value:.3f}"
                verdicts += [verdict, difference]
                p_values.append(p_value)
            rates = [r.success_rate for r in others if np.isfinite(r.success_rate)]
            solved = "—" if not rates else "yes" if float(np.mean(rates)) >= 0.5 else "no"
            if {r.run.seed for r in group} != {r.run.seed for r in others}:
                plain += " (other seeds)"
            tally.setdefault(label, {"success": [], "cost": []})
            if verdicts[0] == "better":
                tally[label]["success"].append((task, p_values[0]))
            if verdicts[2] == "worse" or verdicts[0] == "worse":  # the smaller p of the measures found worse
                tally[label]["cost"].append((task, min(p for p, v in zip(p_values, verdicts[::2], strict=True)
                                                       if v == "worse")))
            rows.append(f"| {task} | {label} | {plain} | {solved} | {_VERDICT_WORDS[verdicts[0]]} | "
                        f"{verdicts[1]} | {_VERDICT_WORDS[verdicts[2]]} | {verdicts[3]} |")
    if not rows:
        return []

    def listed(found: list[tuple[str, float]]) -> str:
        if not found:
            return "none"
        firm = sum(p < 0.05 for _, p in found)
        return (", ".join(f"{task} p {p:.3f}" for task, p in found)
                + f"; {firm} of {len(found)} with p below 0.05")

    summary = []
    for label, kinds in tally.items():
        summary.append(f"- {label}: success better on {len(kinds['success'])} task(s) ({listed(kinds['success'])}); "
                       f"worse success or final return on {len(kinds['cost'])} ({listed(kinds['cost'])}).")
    return ["", "## Each bonus against the same agent without it", "",
            "Per task, a bonus's finished runs against those of the same agent without a bonus (same algorithm and "
            "settings; \"(other seeds)\" where the two finished different seeds): **helps** where the bonus's 95% "
            "interval lies wholly above the agent's own, **hurts** where wholly below, no difference where the two "
            "overlap, — with fewer than two seeds on a side; beside each, the difference of the means over seeds "
            "with its 95% bootstrap interval and p, the two-sided exact permutation test of that difference (5 "
            "seeds against 5: at least 0.008). Percentile bootstrap intervals over 5 seeds are narrow (a nominal "
            "95% interval of a mean covers it about 83% of the time: benchmarks/bootstrap_coverage.py), so a "
            "verdict whose p is above 0.05 is weak evidence; nothing here corrects for the many comparisons. "
            "The verdict asks whether the two groups' intervals overlap, which is stricter than whether the "
            "difference's own interval holds 0: a difference whose interval excludes 0 can still read no difference. "
            "It is not stricter where every seed of one side scores the same (every plain run never succeeds): that "
            "side's interval is a point, and three seeds of five above it read **helps** at p 0.167. The lists "
            "below give each task's p. "
            "\"Solved without\": the agent alone succeeds in at least half of its "
            "training episodes (mean over seeds).", "",
            "| task | method | without = | solved without | success rate | bonus minus without | final return "
            "| bonus minus without |", "|---|---|---|---|---|---|---|---|", *rows, "", *summary]


def _twin(records: list[RunRecord], task: str, label: str) -> str | None:
    """Today's method of ``task`` whose runs have the settings of the archived-only ``label``'s (seed by seed)."""
    from rlgen.agents.rundir import same_settings

    kept = {r.run.seed: r.run.config for r in records if r.run.env_id == task and r.run.label == label}
    for other in dict.fromkeys(r.run.label for r in records if r.run.env_id == task and not r.run.archived_only):
        mine = {r.run.seed: r.run.config for r in records if r.run.env_id == task and r.run.label == other}
        shared = set(kept) & set(mine)
        if shared and all(same_settings(kept[seed], mine[seed]) for seed in shared):
            return other
    return None


def _earlier_code_lines(records: list[RunRecord], tasks: list[str]) -> list[str]:
    """The archived-only cells, why they are kept, and per task today's cell of the same settings against them:
    what the change since did."""
    kept = {r.run.label: r.run.archived_only for r in records if r.run.archived_only}
    if not kept:
        return []
    lines = ["", "## Cells kept from earlier code", "",
             "Runs that earlier code made, reported as they are; today's code, which would make other runs under "
             "their settings, does not train them:", "", *(f"- {label}: {why}" for label, why in kept.items())]
    rows = []
    for task in tasks:
        for label in kept:
            earlier = _finished(records, task, label)
            today_label = _twin(records, task, label) if earlier else None
            today = _finished(records, task, today_label) if today_label is not None else []
            if len(earlier) < 2 or len(today) < 2:
                continue
            cells = []
            for measure, digits in (("success_rate", 3), ("final", 1)):
                mine = np.array([getattr(r, measure) for r in today], dtype=float)
                theirs = np.array([getattr(r, measure) for r in earlier], dtype=float)
                mine, theirs = mine[np.isfinite(mine)], theirs[np.isfinite(theirs)]
                if len(mine) < 2 or len(theirs) < 2:
                    cells.append("—")
                    continue
                point, low, high = stats.difference_ci(mine, theirs)
                cells.append(f"{point:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}], p "
                             f"{stats.permutation_test(mine, theirs):.3f}")
            rows.append(f"| {task} | {today_label} ({len(today)}) | {label} ({len(earlier)}) | {cells[0]} | "
                        f"{cells[1]} |")
    if rows:
        lines += ["", "Today's cell of the same settings against earlier code's, per task (finished runs in "
                  "brackets): the difference of the means over seeds with its 95% bootstrap interval and p (the "
                  "two-sided exact permutation test), as in the comparison of each bonus with its agent above.", "",
                  "| task | today's | earlier code's | success rate: today's minus earlier | final return: today's "
                  "minus earlier |", "|---|---|---|---|---|", *rows]
    return lines


def write_report(suite: Suite, runs: list[SuiteRun], out_dir: str | Path, command: str,
                 report_dir: str | Path | None = None, name: str | None = None) -> Path:
    """Write ``<report_dir>/<name>.md`` (default: ``<out_dir>/<suite name>.md``) with its two PNGs."""
    name = name or suite.name
    out_dir = Path(out_dir)
    report_dir = Path(report_dir) if report_dir is not None else out_dir
    records = collect(runs)
    tasks = list(dict.fromkeys(r.run.env_id for r in records))
    labels = list(dict.fromkeys(r.run.label for r in records))
    refs = reference_scores(suite, records, out_dir)
    budgets = _steps_per_task(records, tasks)
    finished_seeds = sorted({r.run.seed for r in records if r.state == "finished"})
    episodes = " or ".join(str(n) for n in sorted({r.run.config.eval_episodes for r in records})) or "the"

    lines = [f"# Benchmark suite `{suite.name}`" + (f": {name}" if name != suite.name else ""), ""]
    if suite.description:
        lines += [suite.description, ""]
    lines += [
        f"Command: `{command}`", "",
        f"Written {time.strftime('%Y-%m-%d %H:%M')}; env steps per run: {budgets}; seeds: {finished_seeds}. Return = mean over the "
        f"{episodes} evaluation episodes of the final evaluation (deterministic policy, true env reward); "
        "intervals are 95% "
        "percentile-bootstrap intervals over seeds.", "",
        "## Final return per task", "",
        "| task | method | runs finished | final return, mean [95% CI] | per seed |",
        "|---|---|---|---|---|",
    ]
    per_task_norm, unscored = normalised_scores(records, tasks, labels, refs)  # label -> task -> scores
    for task in tasks:
        for label in labels:
            group = [r for r in records if r.run.env_id == task and r.run.label == label]
            if not group:
                continue
            done = [r for r in group if r.state == "finished"]
            finals = np.array([r.final for r in done])
            seeds = ", ".join(f"{r.final:.1f}" if r.state == "finished" else r.state for r in group)
            lines.append(f"| {task} | {label} | {len(done)}/{len(group)} | "
                         f"{_fmt_ci(*stats.bootstrap_ci(finals))} | {seeds} |")
    lines += _published_table(suite, records, tasks, labels)
    if suite.sparse:
        lines += _success_table(records, tasks, labels)
        lines += _reach_table(records, tasks, labels)
        lines += _coverage_table(records, tasks, labels)
        lines += _verdict_table(records, tasks, labels)
    lines += ["", "## Normalised score across tasks", "",
              "Normalised score = (return - random) / (reference - random), per task:", "",
              "| task | random policy | reference | reference from |", "|---|---|---|---|"]
    lines += [f"| {t} | {refs[t]['random']:.1f} | {refs[t]['reference']:.1f} | {refs[t]['reference_source']} |"
              for t in tasks]
    if unscored:
        lines += ["", "Left out of the normalised scores below (no scale to put their returns on): "
                  + "; ".join(f"{task} ({why})" for task, why in unscored.items()) + "."]
    planned = planned_tasks(records, labels)
    ranked, common = ranked_on_common_tasks(per_task_norm, planned, tasks)
    lines += _normalised_tables(per_task_norm, ranked, labels, tasks, common)
    # the profile compares the ranked methods on their common tasks; without any, each method on its own
    profiled = {label: [per_task_norm[label][t] for t in common] for label in ranked} if common else \
        {label: list(per_task_norm[label].values()) for label in labels if per_task_norm[label]}
    normalised = {label: np.concatenate(groups).tolist() for label, groups in profiled.items()}
    if common:
        lines += ["", f"The performance profile below covers {', '.join(ranked)} on {', '.join(common)}."]
    lines += _time_table(records, tasks, labels)
    lines += _code_lines(records, labels)
    failed = [r for r in records if r.state == "failed"]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- `{r.run.config.run_dir.name}`: {r.error}" for r in failed]
    others = [r for r in records if r.state == "other"]
    if others:
        lines += ["", "## Runs left out", "",
                  "Finished runs under a suite run's name that are not that run (counted nowhere above):", ""]
        lines += [f"- `{r.run.config.run_dir.name}`: {r.error}" for r in others]
    lines += _earlier_code_lines(records, tasks)
    gone = [r for r in records if r.state in ("incomplete", "missing") and r.run.archived_only]
    if gone:
        lines += ["", f"{len(gone)} archived-only run(s) are missing: {', '.join(r.run.config.run_dir.name for r in gone)}"
                  " (give --archive the run archive that holds them)."]
    incomplete = [r for r in records if r.state in ("incomplete", "missing") and not r.run.archived_only]
    if incomplete:
        lines += ["", f"{len(incomplete)} run(s) have not finished; re-running the suite (or its part that holds "
                  "them) resumes them."]
    curves, profile, coverage = f"{name}_curves.png", f"{name}_profile.png", f"{name}_coverage.png"
    coverage_png = _coverage_png(records, tasks, labels) if suite.sparse else None
    lines += ["", f"![learning curves]({curves})", "", f"![performance profile]({profile})", ""]
    if coverage_png is not None:
        lines += [f"![state coverage]({coverage})", ""]

    finished = sum(r.state == "finished" for r in records)
    held = finished_runs_in(report_dir / f"{name}.md")
    if held > finished and report_dir.resolve() != out_dir.resolve():
        # e.g. a suite whose earlier runs are on another machine: never a thinner report over a fuller one
        logger.warning("report: %s covers %d finished runs, this one %d: written to %s instead",
                       report_dir / f"{name}.md", held, finished, out_dir)
        report_dir = out_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(report_dir / curves, _curves_png(records, tasks, labels))
    atomic_write_bytes(report_dir / profile, _profile_png(normalised))
    if coverage_png is not None:
        atomic_write_bytes(report_dir / coverage, coverage_png)
    path = report_dir / f"{name}.md"
    atomic_write_text(path, "\n".join(lines))
    return path

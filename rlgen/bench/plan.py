"""What a suite has left to train, and about how long it will take: ``rlgen bench SUITE --plan``.

Nothing is trained, copied or written. A run counts as finished when its run directory under ``--out`` or the
run archive (``--archive``, trained with the suite's settings) holds a result of its whole budget; a run with a
checkpoint under ``--out`` has only its remaining steps left. The time a run will take is its remaining env
steps times the seconds per env step (wall time over steps, from result.json) of the finished runs of its cell
(method label and task), or, for a cell none of whose runs has finished, of the task's other methods, or else of
the method on other tasks. The finished runs timed their machines as they were (other jobs beside them
included), so the figures estimate the same conditions; the wall time with ``--workers`` N is the total over N,
a lower bound (the last runs may leave workers idle).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rlgen.agents.config import ConfigError
from rlgen.agents.rundir import RunDir
from rlgen.bench.archive import archived_result
from rlgen.bench.suite import SuiteRun


@dataclass
class RunPlan:
    run: SuiteRun
    done_steps: int
    """Env steps already trained: the budget for a finished run, the checkpoint's for one under way, else 0."""
    finished: bool
    where: str
    """Where its progress is: ``out``, ``archive`` or ``''``."""
    seconds_per_step: float | None = None
    """Of the finished run itself (timing the others' estimates)."""

    @property
    def steps_left(self) -> int:
        return max(0, int(self.run.config.total_steps) - self.done_steps) if self.trainable else 0

    @property
    def trainable(self) -> bool:
        """Whether the runner would train it: not finished, and not archived only (earlier code's run)."""
        return not self.finished and not self.run.archived_only


def _seconds_per_step(result: dict) -> float | None:
    # wall_time covers every session of a resumed run, as timesteps do; learn_time only its last one
    try:
        seconds, steps = float(result["wall_time"]), int(result["timesteps"])
    except (KeyError, TypeError, ValueError):
        return None
    return seconds / steps if steps > 0 and seconds > 0 else None


def plan_runs(runs: Sequence[SuiteRun], archive_dir: str | Path | None = None) -> list[RunPlan]:
    """Each run's progress, from its run directory and the archive (read only)."""
    plans = []
    for run in runs:
        local = RunDir(run.config.run_dir)
        result = local.read_result()
        if result is not None and local.finished(run.config.total_steps):
            plans.append(RunPlan(run, int(result["timesteps"]), True, "out", _seconds_per_step(result)))
            continue
        # what the archive would restore: only where --out has no result of the run (one cut short there trains
        # again), only this very run (settings, demos), trained for its whole budget
        archived = (archived_result(run.config.run_dir, archive_dir, run.config.total_steps, run.config)[0]
                    if archive_dir is not None and result is None else None)
        if archived is not None:
            plans.append(RunPlan(run, int(archived["timesteps"]), True, "archive", _seconds_per_step(archived)))
            continue
        done = 0
        if local.has_checkpoint():
            try:
                done = local.checkpoint_timesteps()
            except ConfigError:  # a damaged checkpoint: the run starts again
                done = 0
        plans.append(RunPlan(run, done, False, "out" if done else ""))
    return plans


def estimate_seconds(plans: Sequence[RunPlan]) -> dict[int, tuple[float | None, str]]:
    """Per unfinished run (by index in ``plans``): (estimated seconds, how it was estimated).

    ``cell``: the mean seconds per step of the finished runs of its method on its task. ``task``: that of the
    task's other methods, times the method's cost relative to them where both ran on some other task (the
    median ratio over such tasks; ``task, unscaled`` where there is none). ``method``: the method on other tasks;
    the task's own cost is unknown, so this is rough. ``none``: nothing finished to time it by."""
    cell: dict[tuple[str, str], list[float]] = {}
    for plan in plans:
        if plan.finished and plan.seconds_per_step is not None:
            cell.setdefault((plan.run.label, plan.run.env_id), []).append(plan.seconds_per_step)
    per_cell = {key: statistics.fmean(values) for key, values in cell.items()}
    tasks = {env for _, env in per_cell}

    def task_mean(env: str, without: str) -> float | None:
        values = [v for (label, e), v in per_cell.items() if e == env and label != without]
        return statistics.fmean(values) if values else None

    def relative_cost(label: str, task: str) -> float | None:
        ratios = []
        for env in tasks - {task}:
            others = task_mean(env, label)
            if (label, env) in per_cell and others:
                ratios.append(per_cell[(label, env)] / others)
        return statistics.median(ratios) if ratios else None

    out: dict[int, tuple[float | None, str]] = {}
    for i, plan in enumerate(plans):
        if not plan.trainable:
            continue
        label, env = plan.run.label, plan.run.env_id
        others = task_mean(env, label)
        own = [v for (lab, _), v in per_cell.items() if lab == label]
        if (label, env) in per_cell:
            out[i] = (plan.steps_left * per_cell[(label, env)], "cell")
        elif others is not None:
            ratio = relative_cost(label, env)
            out[i] = (plan.steps_left * others * (ratio or 1.0), "task" if ratio is not None else "task, unscaled")
        elif own:
            out[i] = (plan.steps_left * statistics.fmean(own), "method")
        else:
            out[i] = (None, "none")
    return out


def _steps(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def plan_lines(suite_name: str, runs: Sequence[SuiteRun], archive_dir: str | Path | None, workers: int,
               timing_runs: Sequence[SuiteRun] = ()) -> list[str]:
    """The plan as printed: one row per task (in the suite's order), then the totals. ``timing_runs`` (e.g. the
    whole suite when ``runs`` is a ``--match`` part or other seeds) time the runs left too."""
    plans = plan_runs(runs, archive_dir)
    chosen = {plan.run.config.run_name for plan in plans}
    extra = [plan for plan in plan_runs([r for r in timing_runs if r.config.run_name not in chosen], archive_dir)
             if plan.finished]
    estimates = estimate_seconds([*plans, *extra])  # indices of ``plans`` come first, unchanged
    tasks = list(dict.fromkeys(plan.run.env_id for plan in plans))
    n_archive = sum(p.finished and p.where == "archive" for p in plans)
    n_out = sum(p.finished and p.where == "out" for p in plans)
    under_way = sum(p.trainable and p.done_steps > 0 for p in plans)
    gone = [p for p in plans if not p.finished and not p.trainable]
    lines = [f"suite {suite_name}: {len(plans)} runs; finished {n_out + n_archive} ({n_out} in --out, {n_archive} "
             f"only in the archive), {under_way} under way (a checkpoint in --out), "
             f"{sum(p.trainable for p in plans)} to train"
             + (f", {len(gone)} archived only and missing (not trained by this code)" if gone else ""), "",
             "| task | finished | to train | env steps left | estimated core-hours | estimated from |",
             "|---|---|---|---|---|---|"]
    total, unknown, rough = 0.0, 0, 0.0
    for task in tasks:
        index = [i for i, p in enumerate(plans) if p.run.env_id == task]
        left = [i for i in index if plans[i].trainable]
        seconds = [estimates[i][0] for i in left if estimates[i][0] is not None]
        kinds = sorted({estimates[i][1] for i in left})
        total += sum(seconds)
        rough += sum(estimates[i][0] or 0.0 for i in left if estimates[i][1] == "method")
        unknown += len(left) - len(seconds)
        hours = f"{sum(seconds) / 3600:.1f}" if seconds else ("0" if not left else "?")
        if "method" in kinds:
            hours = "~" + hours
        if len(seconds) < len(left) and seconds:
            hours += f" + {len(left) - len(seconds)} run(s) untimed"
        finished = sum(plans[i].finished for i in index)
        missing = sum(not plans[i].finished and not plans[i].trainable for i in index)
        done = f"{finished}/{len(index)}" + (f" ({missing} archived only, missing)" if missing else "")
        lines.append(f"| {task} | {done} | {len(left)} | "
                     f"{_steps(sum(plans[i].steps_left for i in left))} | {hours} | {', '.join(kinds) or '—'} |")
    if total == 0 and unknown:
        summary = f"left: {unknown} run(s), none of which a finished run of the suite can time"
    else:
        summary = (f"left: about {total / 3600:.1f} core-hours"
                   + (f" ({rough / 3600:.1f} of them rough, timed by the method on other tasks)" if rough else "")
                   + (f" (and {unknown} run(s) no finished run can time)" if unknown else "")
                   + f", about {total / 3600 / max(1, workers):.1f} hours with {workers} worker(s) (a lower bound: the "
                   "longest run may outlast the others)")
    reasons = dict.fromkeys(f"{p.run.label}: {p.run.archived_only}" for p in gone)
    lines += [f"archived only and missing ({len(gone)} run(s); give --archive the archive that holds them): "
              + "; ".join(reasons)] if gone else []
    lines += ["", summary,
              "estimated from: cell = finished runs of the same method and task; task = of the task's other methods, "
              "scaled by the method's relative cost elsewhere; method = of the same method on other tasks (rough: "
              "the task's own cost unknown)"]
    return lines

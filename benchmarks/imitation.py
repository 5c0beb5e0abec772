"""The imitation benchmark: experts, demonstrations, then GAIL and behaviour cloning on four MuJoCo tasks.

    python benchmarks/imitation.py [--stage experts|demos|imitate|report|all] [--envs Hopper-v5,Ant-v5]
                                   [--seeds 3] [--gail-variants gail-gp10] [--workers 2]
                                   [--out runs/bench/imitation] [--quick]
                                   [--archive benchmarks/results/runs/imitation]

Stages (each resumable: re-running skips finished work and resumes unfinished runs; ``all`` runs them
in order, and ``report`` can be run at any time on whatever has finished):

- ``experts``: the built-in suite ``imitation-experts`` (one seed each: PPO and TRPO presets for 1M steps
  on Hopper-v5 and HalfCheetah-v5; TRPO alone for 2M on Ant-v5 and 3M on Humanoid-v5; every run, and later
  every GAIL run, on four in-process envs with a quarter of the preset's n_steps, 1.3-2x as fast). A run's
  expert is its final policy or that of its best periodic evaluation (``best/``), whichever has the higher
  mean return over 20 fresh evaluation episodes: a locomotion policy's return can fall late in training (a
  Hopper PPO run at 3,450 on 5 of 5 evaluation episodes at 950k steps ended at 1,759). Per task the run whose
  expert scores higher becomes the expert (``<out>/experts.json``).
- ``demos``: the expert's deterministic rollouts, its VecNormalize statistics applied, raw observations
  saved: 25 episodes (Humanoid-v5: 80) in ``<out>/demos/<task>.npz``, keeping only episodes whose return
  reaches random + 0.8 (expert - random) with the expert's 20-episode evaluation mean (a HalfCheetah
  expert's episode flipped on its back taught GAIL to flip; demos made before this floor keep every
  episode, and their record says so). The expert score used for normalisation is the mean return of the
  demo episodes.
- ``imitate``: GAIL (the expert's agent preset and env layout, or ``--gail-algo``, + the GAIL wrapper: one
  discriminator step per 2,048-step rollout, reward normalised by VecNormalize, and the settings of
  ``--gail-variants``, by default a gradient penalty of 10, in ``<out>/<variant>/``) through the benchmark
  harness, and behaviour cloning (10,000 Adam steps of 64 pairs, Gaussian NLL), each with the first 4 and 25
  demo episodes (Humanoid-v5: 25 and 80), demo pairs subsampled every 20 steps as in the paper, ``--seeds``
  seeds (default 3).
  GAIL budgets: 1M env steps on Hopper-v5, HalfCheetah-v5 and Ant-v5, 2M on Humanoid-v5.
- ``report``: every finished run re-scored on 20 evaluation episodes (deterministic policy, true env
  reward; cached in the run directory), normalised score (score - random) / (expert - random) per run,
  IQM and mean across tasks with stratified-bootstrap 95% intervals (rlgen.bench.stats), GAIL learning
  curves, written to benchmarks/results/imitation.md and imitation_curves.png.

``--quick`` shrinks every budget (4,096 env steps per expert and GAIL run, 1 and 2 demo episodes, 50 BC
steps, 2 evaluation episodes, no demo floor, one seed unless ``--seeds`` is given) to check the pipeline
end to end in a few minutes; its numbers mean nothing, and its report goes to ``--out`` (default
runs/bench/imitation-quick).

Run archive (``--archive``, default benchmarks/results/runs/imitation, committed; ``--quick``: none unless
given, and never the committed one; ``''``: none). Run directories stay on the machine that trained them;
the archive keeps what later stages and the report need (``rlgen.bench.archive``), so the benchmark adds
up across sessions and machines:

- ``experts/<run>/``: every finished expert with its ``model.zip`` and ``vecnormalize.npz``, and ``best/``'s
  (the demos are rolled out from one of them) and its cached evaluations (``benchmark_eval.json``,
  ``benchmark_eval_best.json``); ``experts.json`` and ``random_scores.json`` in the archive's root;
  ``budgets.json`` says whether it holds ``--quick`` runs.
- ``demos/<task>.json``: which expert made the task's demos, how many episodes, their return floor
  (``min_return``; absent: every episode kept), and the sha256 of the .npz. The .npz itself is not kept
  (Humanoid's 80 episodes are ~100 MB): a later session makes it again from the archived expert with the
  same call and stops with a one-line error if its sha256 differs (the archived GAIL and BC runs were
  trained on other demos).
- ``<variant>/<run>/`` (``gail-gp10/``, ``gail/``) and ``bc/<run>/`` (``<variant>-<algo>``, ``bc-<algo>`` with
  ``--gail-algo``): the small files of
  every finished GAIL and BC run (config, result, evaluations, Monitor logs, ``bc.json``), no model, and
  after the report its cached score (``benchmark_eval.json``), which is all a later report reads.

Every stage first restores from the archive what ``--out`` lacks (a finished run is never trained again;
runs finished here are added as they finish), so a later session re-runs the same command and carries on
where the archive stands; ``--stage report`` alone rebuilds the report from the archive (its demos made
again from the experts). A run archived without a model and without a cached score for these evaluation
episodes cannot be scored: the report names it in one line and leaves it out.

In all: 9M env steps for the experts and 28M for each GAIL setting with 3 seeds (with two workers on a
2-core machine at ~1,000-1,400 steps/s per worker in four-env layout, roughly 1 h and 3.5-4 h); demos and
BC take minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from rlgen.agents import RunConfig, train  # noqa: E402
from rlgen.agents.config import build_config  # noqa: E402
from rlgen.agents.rundir import RunDir  # noqa: E402
from rlgen.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402
from rlgen.bench import Suite, load_suite, records, run_suite, show_messages  # noqa: E402
from rlgen.bench import stats as bstats  # noqa: E402
from rlgen.bench.archive import archive, archive_run  # noqa: E402
from rlgen.bench.experts import expert_settings  # noqa: E402
from rlgen.bench.pipeline import (  # noqa: E402
    DEMOS_DIR,
    STAGES,
    Pipeline,
    add_arguments,
    finish_arguments,
    run_stages,
    task_list,
)
from rlgen.bench.records import DemoFile  # noqa: E402
from rlgen.bench.report import RANDOM_SCORES_FILE, figure_png, random_policy_score  # noqa: E402
from rlgen.bench.runner import run_finished  # noqa: E402
from rlgen.bench.scores import (  # noqa: E402
    SCORE_FILE,
    cached_score,
    run_score,
    scorable,
    score_before_archiving,
)
from rlgen.cli.common import HelpFormatter  # noqa: E402
from rlgen.imitation import load_demos  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ARCHIVE = RESULTS / "runs" / "imitation"
ENVS = ("Hopper-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5")
SUBSAMPLE = 20
BC_KWARGS = {"batch_size": 64, "lr": 1e-3, "loss": "nll"}
EVAL_SEED = 12_345

# GAIL's settings the benchmark knows, by the name of their run folder: the wrapper's keyword arguments and a
# line for the report. The imitate stage trains --gail-variants; the report shows every one with finished runs.
GAIL_VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "gail": ({}, "the GAIL wrapper's defaults, no gradient penalty (the setting of the first Hopper-v5 cells)"),
    "gail-gp10": ({"gradient_penalty": 10.0},
                  "a gradient penalty of 10 on the discriminator (the benchmark's setting since the HalfCheetah-v5 "
                  "pilot on seeds 100-101, gail-pilot.md: without it the discriminator saturated within ~125k "
                  "steps and left no reward to climb)"),
}
DEFAULT_VARIANTS = ("gail-gp10",)

# The paper's results (Ho & Ermon 2016, old Gym v1 tasks; REFERENCE.md), GAIL / expert.
PAPER = {"Hopper-v5": "Hopper: 1.01 (4) / 1.00 (25)", "HalfCheetah-v5": "HalfCheetah: 1.01 (4) / 1.08 (25)",
         "Ant-v5": "Ant: 0.75 (4) / 0.98 (25)", "Humanoid-v5": "Humanoid: 1.07 (80) / 1.08 (240)"}




@dataclasses.dataclass(frozen=True)
class Budgets:
    expert_steps: int | None  # None: the suite's
    trajectories: dict[str, tuple[int, int]]  # (fewer, more) demo episodes per task
    gail_steps: dict[str, int]
    bc_gradient_steps: int
    eval_episodes: int  # final scoring of every run, the random policy
    run_eval_episodes: int | None  # None: the presets' periodic evaluation
    # demos keep only episodes whose return reaches random + demo_floor * (expert - random), the expert's
    # score being its evaluation mean (None: every episode)
    demo_floor: float | None


FULL = Budgets(
    expert_steps=None,
    # Humanoid follows the paper's larger counts as far as cheap
    trajectories={"Hopper-v5": (4, 25), "HalfCheetah-v5": (4, 25), "Ant-v5": (4, 25), "Humanoid-v5": (25, 80)},
    gail_steps={"Hopper-v5": 1_000_000, "HalfCheetah-v5": 1_000_000, "Ant-v5": 1_000_000, "Humanoid-v5": 2_000_000},
    bc_gradient_steps=10_000, eval_episodes=20, run_eval_episodes=None, demo_floor=0.8)
QUICK = Budgets(expert_steps=4096, trajectories={env_id: (1, 2) for env_id in ENVS},
                gail_steps={env_id: 4096 for env_id in ENVS}, bc_gradient_steps=50, eval_episodes=2,
                run_eval_episodes=1, demo_floor=None)


# -- helpers ---------------------------------------------------------------------------------------------
def budgets(args: argparse.Namespace) -> Budgets:
    return QUICK if args.quick else FULL


def random_scores(out: Path, envs: list[str], episodes: int) -> dict[str, float]:
    path = out / RANDOM_SCORES_FILE
    cache = json.loads(path.read_text()) if path.is_file() else {}
    for env_id in envs:
        if env_id not in cache:
            cache[env_id] = random_policy_score(env_id, {}, episodes=episodes, seed=EVAL_SEED)
            atomic_write_text(path, json.dumps(cache, indent=2))
    return {env_id: float(cache[env_id]) for env_id in envs}


def experts_suite(args: argparse.Namespace) -> Suite:
    b = budgets(args)
    return load_suite("imitation-experts").restricted(lambda entry: entry["env_id"] in args.envs,
                                                      total_steps=b.expert_steps, eval_episodes=b.run_eval_episodes)


def demos_path(out: Path, env_id: str) -> Path:
    return out / DEMOS_DIR / f"{env_id}.npz"


def pipeline(args: argparse.Namespace, out: Path) -> Pipeline:
    """The experts, demos and archive steps this benchmark shares with benchmarks/infogail.py: one expert
    and one demo file per task."""
    b = budgets(args)
    return Pipeline(out, args.archive, experts_suite(args), expert_key=lambda run: run.env_id,
                    demos=[DemoFile(demos_path(out, env_id), env_id, max(b.trajectories[env_id]))
                           for env_id in args.envs],
                    eval_episodes=b.eval_episodes, eval_seed=EVAL_SEED, workers=args.workers,
                    command=args.command, progress_bar=not args.quick, accept_new_demos=args.accept_new_demos)


def restore_learners(args: argparse.Namespace, out: Path) -> None:
    """Copy the finished GAIL and BC runs of the archive that ``out`` lacks into it (their demos must be
    there: the suite and the BC runs cover only the tasks whose demos are)."""
    if args.archive is None:
        return
    pipe = pipeline(args, out)
    restored = 0
    for variant in GAIL_VARIANTS:  # every variant's: the report shows them all
        gail = method_dir(args, out, variant)
        restored += pipe.restore_runs(gail.name, [run.config for run in gail_suite(args, out, variant).runs(gail)])
    bc = [config for *_, config in bc_configs(args, out)]
    restored += pipe.restore_runs(method_dir(args, out, "bc").name, bc, min_timesteps=0)  # BC: no env steps
    if restored:
        print(f"restored {restored} finished GAIL / BC run(s) from {args.archive}", flush=True)


def archive_learners(args: argparse.Namespace, out: Path) -> None:
    """Archive every finished GAIL and BC run (again once the report has cached its score)."""
    if args.archive is None:
        return
    pipe = pipeline(args, out)
    for variant in GAIL_VARIANTS:
        gail = method_dir(args, out, variant)
        pipe.archive_runs(gail.name, gail_suite(args, out, variant).runs(gail))
    bc = method_dir(args, out, "bc")
    archive((config.run_dir for *_, config in bc_configs(args, out)), args.archive / bc.name)


# -- stages ----------------------------------------------------------------------------------------------
def stage_experts(args: argparse.Namespace, out: Path) -> bool:
    return pipeline(args, out).train_experts()


def stage_demos(args: argparse.Namespace, out: Path) -> bool:
    pipe = pipeline(args, out)
    experts = pipe.pick_experts()
    ok = pipe.regenerate_demos()
    for demo in pipe.demos:
        env_id, path = demo.what, demo.path
        if path.is_file():
            print(f"demos: {path} exists", flush=True)
            if demo.record_path.is_file():
                pipe.keep_demos_record(demo)
            continue
        if demo.record_path.is_file():  # restored, but its expert is missing: said above
            continue
        if env_id not in experts:
            print(f"demos: no finished expert for {env_id}; run --stage experts first", flush=True)
            ok = False
            continue
        n = max(budgets(args).trajectories[env_id])
        trajs = pipe.make_demos(demo, experts[env_id], n, demo_floor(args, out, env_id, experts[env_id]))
        if trajs is None:  # too few episodes reach the floor: said
            ok = False
            continue
        print(f"demos: {env_id}: {n} episodes, return {trajs.returns.mean():.1f} ± {trajs.returns.std():.1f} "
              f"-> {path}", flush=True)
    return ok


def demo_floor(args: argparse.Namespace, out: Path, env_id: str, expert: dict[str, Any]) -> float | None:
    """The lowest return a demo episode may have (``rlgen.bench.records.demo_floor``), with the random
    policy's score on the task (computed only for a floor)."""
    fraction = budgets(args).demo_floor
    if fraction is None:
        return None
    random = random_scores(out, [env_id], budgets(args).eval_episodes)[env_id]
    pipeline(args, out).sync_json(RANDOM_SCORES_FILE)
    return records.demo_floor(fraction, random, expert["eval_mean"])


def expert_demo_scores(out: Path, envs: list[str]) -> dict[str, float]:
    return {env_id: float(load_demos(demos_path(out, env_id)).returns.mean())
            for env_id in envs if demos_path(out, env_id).is_file()}


def demo_source(out: Path, env_id: str) -> dict[str, Any]:
    """The expert whose episodes are in the task's demo file (recorded when they were collected)."""
    path = demos_path(out, env_id).with_suffix(".json")
    if not path.is_file():
        raise SystemExit(f"imitation.py: {path} is missing: it names the expert behind "
                         f"{demos_path(out, env_id)}; delete that file and re-run --stage demos")
    return json.loads(path.read_text())


def learner_algo(args: argparse.Namespace, out: Path, env_id: str) -> str:
    """The agent behind GAIL and BC on a task: ``--gail-algo``, or with ``expert`` the demos' expert's own."""
    return demo_source(out, env_id)["algo"] if args.gail_algo == "expert" else args.gail_algo


def method_dir(args: argparse.Namespace, out: Path, method: str) -> Path:
    """Where GAIL's or BC's runs go: ``<out>/<method>`` for the expert's agent, ``<out>/<method>-<algo>`` for a
    ``--gail-algo`` chosen by hand, so runs of different agents never share (or resume) a directory."""
    return out / (method if args.gail_algo == "expert" else f"{method}-{args.gail_algo}")


PINNED_KEYS = ("preset", "normalize", "eval_freq", "eval_episodes", "hyperparams", "env_kwargs")
"""What an experts' suite entry with ``preset: false`` writes out, and its imitators of the same agent take."""


def env_layout(env_id: str, algo: str) -> dict[str, Any]:
    """The experts' env layout on ``env_id`` (four in-process envs, a quarter of the preset's n_steps): the
    learners collect their rollouts the same way. An expert entry that pins its agent's settings (``preset:
    false``, the settings written out) gives its imitators of the same ``algo`` those settings too, so that a
    preset changed later changes neither."""
    suite = load_suite("imitation-experts")
    layout = expert_settings(suite, ("n_envs", "overrides"), lambda entry: entry["env_id"] == env_id)
    pinned = expert_settings(suite, PINNED_KEYS, lambda entry: entry["env_id"] == env_id and entry["algo"] == algo
                             and entry.get("preset") is False)
    return {**layout, **pinned}


def gail_suite(args: argparse.Namespace, out: Path, variant: str) -> Suite:
    envs = [env_id for env_id in args.envs if demos_path(out, env_id).is_file()]
    b = budgets(args)
    kwargs = GAIL_VARIANTS[variant][0]
    entries = [
        {**env_layout(env_id, learner_algo(args, out, env_id)), "algo": learner_algo(args, out, env_id),
         "env_id": env_id, "label": f"gail-{n}",
         "total_steps": b.gail_steps[env_id],
         "imitation": "gail", "demos": str(demos_path(out, env_id).absolute()), "demo_episodes": n,
         "demo_subsample": SUBSAMPLE, **({"imitation_kwargs": dict(kwargs)} if kwargs else {})}
        for env_id in envs for n in b.trajectories[env_id]
    ]
    if b.run_eval_episodes is not None:
        entries = [{**entry, "eval_episodes": b.run_eval_episodes} for entry in entries]
    return Suite(name=f"imitation-{variant}", entries=entries, seeds=list(range(args.seeds)),
                 description=f"GAIL ({args.gail_algo} agent preset; {GAIL_VARIANTS[variant][1]}) on the expert "
                 f"demos, subsampled every {SUBSAMPLE}",
                 source="benchmarks/imitation.py")


def bc_configs(args: argparse.Namespace, out: Path) -> list[tuple[str, int, int, RunConfig]]:
    configs = []
    for env_id in args.envs:
        if not demos_path(out, env_id).is_file():
            continue
        algo = learner_algo(args, out, env_id)
        pinned = {k: v for k, v in env_layout(env_id, algo).items() if k in PINNED_KEYS}
        use_preset = pinned.pop("preset", True)
        for n in budgets(args).trajectories[env_id]:
            for seed in range(args.seeds):
                config = build_config(
                    algo, env_id, use_preset=use_preset, **{**pinned, "eval_episodes": budgets(args).eval_episodes},
                    seed=seed, imitation="bc",
                    demos=str(demos_path(out, env_id).absolute()), demo_episodes=n, demo_subsample=SUBSAMPLE,
                    bc_kwargs={**BC_KWARGS, "gradient_steps": budgets(args).bc_gradient_steps},
                    progress_bar=False,
                    out_dir=str((method_dir(args, out, "bc") / "runs").absolute()), run_name=f"bc-{n}_{env_id}_s{seed}",
                )
                configs.append((env_id, n, seed, config))
    return configs


def stage_imitate(args: argparse.Namespace, out: Path) -> bool:
    ok = pipeline(args, out).regenerate_demos()
    if not any(demos_path(out, env_id).is_file() for env_id in args.envs):
        print("imitate: no demos yet; run --stage demos first", flush=True)
        return False
    restore_learners(args, out)
    # the archive keeps no learner's model: its final score is cached as it finishes, while the model is here
    score_for_archive = score_before_archiving(budgets(args).eval_episodes, EVAL_SEED)
    bc_kept = args.archive / method_dir(args, out, "bc").name if args.archive is not None else None
    for env_id, n, seed, config in bc_configs(args, out):
        if RunDir(config.run_dir).result_file.is_file():
            if bc_kept is not None:  # finished before this archive was used
                score_for_archive(config.run_dir)
                archive_run(config.run_dir, bc_kept)
            continue
        start = time.time()
        try:
            result = train(config)
        except Exception as exc:  # recorded and reported; the other runs go on
            ok = False
            print(f"bc failed: {config.run_dir.name}: {exc}".splitlines()[0], flush=True)
            continue
        print(f"bc {env_id} {n} demos seed {seed}: {result.eval_mean_return:.1f} ({time.time() - start:.0f} s)",
              flush=True)
        if bc_kept is not None:
            score_for_archive(config.run_dir)
            archive_run(config.run_dir, bc_kept)
    for variant in args.gail_variants:
        gail_dir = method_dir(args, out, variant)
        statuses, _ = run_suite(gail_suite(args, out, variant), gail_dir, workers=args.workers, report_dir=gail_dir,
                                command=args.command, archive_dir=pipeline(args, out).kept(gail_dir.name),
                                before_archive=score_for_archive)
        ok = ok and not any(s.status == "failed" for s in statuses)
    return ok


# -- report ----------------------------------------------------------------------------------------------
def _fmt(values: np.ndarray, digits: int = 1) -> str:
    if len(values) == 0:
        return "—"
    point, low, high = bstats.bootstrap_ci(values)
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] (n={len(values)})"


def _curves_png(curves: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]],
                lines: dict[str, dict[str, float]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(curves)
    labels = sorted({label for per_env in curves.values() for label in per_env})  # one colour per label throughout
    fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.4), squeeze=False)
    for ax, env_id in zip(axes[0], envs, strict=True):
        for label, runs in sorted(curves[env_id].items()):
            runs = [(x, y) for x, y in runs if len(x) > 1]
            if not runs:
                continue
            grid = np.linspace(max(x[0] for x, _ in runs), min(x[-1] for x, _ in runs), 40)
            values = np.array([np.interp(grid, x, y) for x, y in runs])
            cis = np.array([bstats.bootstrap_ci(values[:, j], resamples=500) for j in range(len(grid))])
            method, n = label.rsplit("-", 1)
            colour = f"C{labels.index(label) % 8}"  # C8, C9: the BC lines
            ax.plot(grid, cis[:, 0], color=colour, label=f"{method_name(method)} {n} demos (n={len(runs)})")
            ax.fill_between(grid, cis[:, 1], cis[:, 2], color=colour, alpha=0.2)
        styles = [("k", "--"), ("0.5", ":"), ("C8", "-."), ("C9", "-.")]
        for (name, value), (color, style) in zip(lines[env_id].items(), styles, strict=False):
            ax.axhline(value, color=color, ls=style, lw=1, label=name)
        ax.set_title(env_id, fontsize=9)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return (env reward)")
        ax.legend(fontsize=6)
    return figure_png(fig)


def _expert_policy(env_id: str, record: dict[str, Any]) -> str:
    if record.get("model") == "best":
        return f"{env_id} its best periodic evaluation, at {record['model_timesteps']:,} steps"
    return f"{env_id} its final policy, at {record.get('model_timesteps', record['total_steps']):,} steps"


def experts_table(args: argparse.Namespace, out: Path, envs: list[str]) -> list[str]:
    """Report lines: every finished expert run's final and best-evaluation policies with their cached scores,
    the one the demos came from marked, and the demos' own returns."""
    episodes = budgets(args).eval_episodes
    lines = ["## Experts", "",
             f"Each finished expert run's final policy and the policy of its best periodic evaluation (`best/`), "
             f"mean ± std return over {episodes} evaluation episodes; the demos come from the one marked *.", "",
             "| task | run | final policy | best evaluation's policy | demos (deterministic episodes) |",
             "|---|---|---|---|---|"]
    for env_id in envs:
        source = demo_source(out, env_id)
        demos = load_demos(demos_path(out, env_id)).returns
        floor = source.get("min_return")
        demo_cell = (f"{len(demos)}: {demos.mean():,.1f} ± {demos.std():,.1f}, lowest {demos.min():,.1f}, floor "
                     + ("none" if floor is None else f"{floor:,.1f}"))
        source_name, listed = Path(source["run_dir"]).name, False
        for run in experts_suite(args).runs(out / "experts"):
            if run.env_id != env_id or not run_finished(run.config):
                continue
            run_dir = run.config.run_dir
            chosen = source_name == run_dir.name
            listed |= chosen
            steps = {"final": (RunDir(run_dir).read_result() or {}).get("timesteps"),
                     "best": RunDir(run_dir).read_best().get("timesteps")}
            cells = []
            for model in ("final", "best"):
                scores = cached_score(run_dir, episodes, EVAL_SEED, model)
                cell = "—" if scores is None else f"{scores.mean():,.1f} ± {scores.std():,.1f}"
                if scores is not None and steps[model] is not None:
                    cell += f" (at {steps[model]:,} steps)"
                cells.append(cell + (" *" if chosen and source.get("model", "final") == model else ""))
            lines.append(f"| {env_id} | {run_dir.name} | {cells[0]} | {cells[1]} | {demo_cell if chosen else ''} |")
        if not listed:  # the demos' expert is no finished run of this suite here
            lines.append(f"| {env_id} | {source_name} (not a finished expert run here) | — | — | {demo_cell} |")
    return [*lines, ""]


def method_name(method: str) -> str:
    """A method's name in the report: BC, GAIL, GAIL+GP10 (a variant's folder name in capitals)."""
    return method.upper().replace("-", "+", 1)


def demo_floor_lines(args: argparse.Namespace) -> list[str]:
    fraction = budgets(args).demo_floor
    if fraction is None:
        return []
    return [f"Demos made since the floor was added keep only episodes whose return reaches random + {fraction} "
            "(expert - random), the expert's score being its evaluation mean; the experts table gives each demo "
            "file's floor (none: made before, every episode kept) and its lowest return.", ""]


def scored(run_dir: Path, episodes: int) -> bool:
    """Whether a finished run's final score is cached or can be computed; a run restored from the archive
    without a model and without a cached score is named in one line."""
    if scorable(run_dir, episodes, EVAL_SEED):
        return True
    print(f"report: {run_dir.name}: no model and no cached score of {episodes} episodes "
          f"({SCORE_FILE}); not scored", flush=True)
    return False


def stage_report(args: argparse.Namespace, out: Path) -> Path:
    pipeline(args, out).regenerate_demos()
    restore_learners(args, out)
    envs = [env_id for env_id in args.envs if demos_path(out, env_id).is_file()]
    experts = {env_id: demo_source(out, env_id) for env_id in envs}
    expert_scores = expert_demo_scores(out, envs)
    b = budgets(args)
    randoms = random_scores(out, envs, b.eval_episodes)
    pipeline(args, out).sync_json(RANDOM_SCORES_FILE)
    finals: dict[tuple[str, str], list[float]] = {}
    curves: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {env_id: {} for env_id in envs}
    unfinished: dict[str, int] = {}  # per method (bc, a GAIL variant)
    unscored: list[str] = []
    for variant in GAIL_VARIANTS:
        for run in gail_suite(args, out, variant).runs(method_dir(args, out, variant)):
            if not run_finished(run.config):
                unfinished[variant] = unfinished.get(variant, 0) + 1
                continue
            if not scored(run.config.run_dir, b.eval_episodes):
                unscored.append(f"{method_dir(args, out, variant).name}/{run.config.run_dir.name}")
                continue
            score = run_score(run.config.run_dir, b.eval_episodes, EVAL_SEED)
            label = f"{variant}-{run.label.removeprefix('gail-')}"
            finals.setdefault((run.env_id, label), []).append(float(score.mean()))
            history = RunDir(run.config.run_dir).read_eval_history()
            curves[run.env_id].setdefault(label, []).append(
                (np.array([r["timesteps"] for r in history]), np.array([r["mean_return"] for r in history])))
    for env_id, n, _, config in bc_configs(args, out):
        if not RunDir(config.run_dir).result_file.is_file():
            unfinished["bc"] = unfinished.get("bc", 0) + 1
        elif not scored(config.run_dir, b.eval_episodes):
            unscored.append(f"{method_dir(args, out, 'bc').name}/{config.run_dir.name}")
        else:
            score = run_score(config.run_dir, b.eval_episodes, EVAL_SEED)
            finals.setdefault((env_id, f"bc-{n}"), []).append(float(score.mean()))
    archive_learners(args, out)  # with the scores just cached: a later report needs no model

    shown = [v for v in GAIL_VARIANTS if v in args.gail_variants
             or any(label.rsplit("-", 1)[0] == v for _, label in finals)]
    methods = [(m, k) for m in ("bc", *shown) for k in (0, 1)]
    lines = [
        "# Imitation benchmark: GAIL and behaviour cloning", "",
        f"Command: `{args.command}`", "",
        *(["**This is a `--quick` run: every budget is shrunk to check the pipeline; its numbers mean nothing.**",
           ""] if args.quick else []),
        f"Written {time.strftime('%Y-%m-%d %H:%M')}. Tasks: {', '.join(envs) or 'none yet'}; seeds: "
        f"{list(range(args.seeds))}. Scores are mean returns over {b.eval_episodes} evaluation episodes "
        "(deterministic policy, true env reward, fixed evaluation seeds) of each finished run; intervals are "
        "95% percentile-bootstrap intervals over seeds.", "",
        "Budgets: experts (the better of the PPO and TRPO presets where both ran) "
        + ", ".join(f"{e} {experts[e]['algo']} {experts[e]['total_steps']:,}" for e in envs if e in experts)
        + " env steps (the expert: " + ", ".join(_expert_policy(e, experts[e]) for e in envs if e in experts)
        + "); GAIL (agent preset "
        + ("as the expert's" if args.gail_algo == "expert" else args.gail_algo) + ") "
        + ", ".join(f"{e} {b.gail_steps[e]:,}" for e in envs)
        + f" env steps; BC {b.bc_gradient_steps:,} Adam steps of {BC_KWARGS['batch_size']} pairs "
        f"({BC_KWARGS['loss']}), no env steps. Demo pairs subsampled every {SUBSAMPLE} steps.", "",
        "GAIL settings: " + "; ".join(f"{method_name(v)} (`{method_dir(args, out, v).name}/`): "
                                      f"{GAIL_VARIANTS[v][1]}" for v in shown) + ".", "",
        *demo_floor_lines(args),
        *experts_table(args, out, envs),
        "## Returns", "",
        "| task | random | expert (demos) | " + " | ".join(f"{method_name(m)} {('few', 'many')[k]}"
                                                       for m, k in methods) + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    for env_id in envs:
        few, many = b.trajectories[env_id]
        cells = [_fmt(np.array(finals.get((env_id, f"{m}-{(few, many)[k]}"), []))) for m, k in methods]
        lines.append(f"| {env_id} ({few} / {many} demos) | {randoms[env_id]:.1f} | "
                     f"{expert_scores.get(env_id, float('nan')):.1f} | " + " | ".join(cells) + " |")
    lines += ["", "## Normalised score (score - random) / (expert - random)", "",
              "| task | " + " | ".join(f"{method_name(m)} {('few', 'many')[k]}" for m, k in methods)
              + " | paper, GAIL / expert |", "|---|" + "---|" * (len(methods) + 1)]
    per_method: dict[tuple[str, int], list[np.ndarray]] = {m: [] for m in methods}
    covered: dict[tuple[str, int], list[str]] = {m: [] for m in methods}  # the tasks behind each row
    for env_id in envs:
        cells = []
        for method, k in methods:
            values = np.array(finals.get((env_id, f"{method}-{b.trajectories[env_id][k]}"), []))
            scores = bstats.normalise(values, randoms[env_id], expert_scores[env_id]) if len(values) else values
            if len(scores):
                per_method[(method, k)].append(scores)
                covered[(method, k)].append(env_id)
            cells.append(_fmt(scores, digits=3))
        lines.append(f"| {env_id} | " + " | ".join(cells) + f" | {PAPER[env_id]} |")
    lines += ["", "## Across tasks (stratified bootstrap over seeds within tasks)", "",
              "Each row pools the tasks it has runs on, which can differ between rows.", "",
              "| method | IQM [95% CI] | mean [95% CI] | runs | tasks |", "|---|---|---|---|---|"]
    for method, k in methods:
        groups = per_method[(method, k)]
        if not groups:
            continue
        iqm = bstats.stratified_bootstrap_ci(groups, bstats.iqm)
        mean = bstats.stratified_bootstrap_ci(groups, bstats.mean)
        lines.append(f"| {method_name(method)} {('few', 'many')[k]} demos | {iqm[0]:.3f} [{iqm[1]:.3f}, {iqm[2]:.3f}] | "
                     f"{mean[0]:.3f} [{mean[1]:.3f}, {mean[2]:.3f}] | {sum(len(g) for g in groups)} | "
                     f"{', '.join(covered[(method, k)])} |")
    lines += ["", "The paper (Ho & Ermon 2016, TRPO, ~25M steps per run, old Gym v1 tasks, one seed) reached "
              "about 1.0 of the expert on Hopper and HalfCheetah and 0.98 on Ant with 25 trajectories; "
              "the target here is >= 0.9 with the budgets above.", ""]
    for method in ("bc", *shown):  # a variant not shown has no finished run: nothing of it to resume
        if not unfinished.get(method):
            continue
        if method == "bc" or method in args.gail_variants:
            how = "" if method == "bc" else f" with `--gail-variants {method}`"
            lines += [f"{method_name(method)}: {unfinished[method]} run(s) not finished or not started; re-running the "
                      f"`imitate` stage{how} resumes them.", ""]
        else:  # a setting kept from earlier cells, no longer trained: its empty cells are not work left
            ran = sorted({env_id for env_id, label in finals if label.rsplit("-", 1)[0] == method},
                         key=args.envs.index)
            lines += [f"{method_name(method)} has runs on {', '.join(ran)} only: it is not among the trained "
                      f"settings (`--gail-variants {','.join(args.gail_variants)}`).", ""]
    if unscored:
        lines += [f"{len(unscored)} finished run(s) left out, restored without a model or a cached score: "
                  f"{', '.join(unscored)}.", ""]
    plot_lines = {e: {"expert": expert_scores[e], "random": randoms[e],
                      **{f"BC {n} (mean)": float(np.mean(finals[(e, f"bc-{n}")]))
                         for n in b.trajectories[e] if finals.get((e, f"bc-{n}"))}} for e in envs}
    if envs:
        atomic_write_bytes(args.report_dir / "imitation_curves.png", _curves_png(curves, plot_lines))
        lines += ["![GAIL learning curves](imitation_curves.png)", ""]
    path = args.report_dir / "imitation.md"
    atomic_write_text(path, "\n".join(lines))
    return path


# -- entry point -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--stage", choices=STAGES, default="all", help="what to run (all: every stage in order)")
    parser.add_argument("--envs", default=",".join(ENVS), help="comma-separated tasks")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per GAIL and BC cell (default 3; --quick 1)")
    parser.add_argument("--gail-algo", choices=("expert", "ppo", "trpo"), default="expert",
                        help="agent preset behind GAIL and BC: the task expert's, or ppo / trpo")
    parser.add_argument("--gail-variants", default=",".join(DEFAULT_VARIANTS),
                        help="comma-separated GAIL settings the imitate stage trains: "
                        + "; ".join(f"{name}: {line}" for name, (_, line) in GAIL_VARIANTS.items())
                        + ". The report shows every setting with finished runs")
    add_arguments(parser, "imitation", "plot")
    args = parser.parse_args(argv)
    show_messages()  # the harness's lines (progress, archive, demos made again), as this script's own
    args.envs = task_list(parser, args.envs, ENVS)
    args.gail_variants = [name.strip() for name in args.gail_variants.split(",") if name.strip()]
    bad = [name for name in args.gail_variants if name not in GAIL_VARIANTS]
    if bad or not args.gail_variants:
        problem = f"unknown GAIL setting {bad[0]!r}" if bad else "--gail-variants names no setting"
        parser.error(f"{problem}; choose from {', '.join(GAIL_VARIANTS)}")
    out = finish_arguments(parser, args, argv, "imitation", RESULTS, ARCHIVE, mark_out=True)
    steps = {"experts": stage_experts, "demos": stage_demos, "imitate": stage_imitate, "report": stage_report}
    return run_stages("imitation.py", args.stage, pipeline(args, out),
                      {name: functools.partial(step, args, out) for name, step in steps.items()})


if __name__ == "__main__":
    sys.exit(main())

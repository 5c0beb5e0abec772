"""rlgen's GAIL against the HumanCompatibleAI imitation library's (1.0.1), same tasks, demos, budgets and seeds.

    python benchmarks/imitation_library.py [--stage setup|experts|demos|run|report|all]
                                           [--envs Hopper-v4,HalfCheetah-v4] [--seeds 3] [--workers 2]
                                           [--venv PATH] [--out runs/bench/imitation-library] [--quick]
                                           [--archive DIR] [--accept-new-demos]

The library pins gymnasium 0.29 and stable-baselines3 2.2, so it runs in a venv of its own (nothing of it
is among rlgen's dependencies) through benchmarks/imitation_library_runner.py, which imports no rlgen. Both
sides train on Gymnasium's **v4** MuJoCo tasks (Hopper-v4, HalfCheetah-v4, Ant-v4, Humanoid-v4), which both
gymnasium 0.29 and rlgen's gymnasium 1.x make; 0.29 has no v5.

Stages (each resumable: re-running skips finished work; ``all`` runs them in order, and ``report`` can be
run at any time on whatever has finished):

- ``setup``: the library's venv (``--venv``, default ``<out>/venv``): ``torch==2.13.0`` first (the CPU build;
  an unpinned torch would pull a CUDA build of several GB), then ``imitation==1.0.1 "numpy<2" mujoco==2.3.7
  "gymnasium[mujoco]==0.29.1"``. Skipped when the venv's marker file names these pins, or when its installed
  packages are these versions (a venv made by hand).
- ``experts``: Hopper-v5's and HalfCheetah-v5's observations have v4's layout, so the imitation benchmark's
  archived experts (benchmarks/results/runs/imitation, its experts.json) make the v4 demos directly. Ant-v5's
  expert sees 105-d observations (v4: 27-d) and Humanoid-v5's 348-d (v4: 376-d): for those this stage trains
  a v4 expert through rlgen, with the settings of the imitation benchmark's experts on v5 (the suite
  ``imitation-experts``: TRPO, 2M steps on Ant, 3M on Humanoid, four envs), only what a task lacks.
- ``demos``: the expert rolled out on the v4 task (``rlgen.agents.collect_demos(env_id=...)``: deterministic,
  its VecNormalize statistics applied, raw observations saved): 25 episodes (Humanoid-v4: 80) in
  ``<out>/demos/<task>.npz`` (rlgen's demos format), keeping only episodes whose return reaches random + 0.8
  (expert - random), the expert's score being its mean over 20 evaluation episodes on v4, as in the
  imitation benchmark; the same episodes in ``<out>/demos/<task>.library.npz`` for the runner (``obs`` with
  each episode's final observation, ``acts``, ``lengths``). The expert score that normalises is the mean
  return of the demo episodes under v4's reward; the random policy's score is its mean over 20 episodes.
- ``run``: per task, demo count (the first 4 and 25 episodes; Humanoid-v4: 25 and 80) and seed: (a) the
  library's GAIL with its documented tuned settings (``LIBRARY_SETTINGS``), one runner process per run,
  its result in ``<out>/library/<task>_<n>demos_s<seed>.json``; (b) rlgen's GAIL with the imitation
  benchmark's setting (the expert's agent and env layout, a gradient penalty of 10, demo pairs subsampled
  every 20 steps) through the benchmark harness in ``<out>/rlgen/``. Budgets: 1M env steps on Hopper-v4,
  HalfCheetah-v4 and Ant-v4, 2M on Humanoid-v4, both sides. Both evaluate the deterministic policy on 5
  episodes every 25k steps and score the final policy on 20 (seeded, true env reward).
- ``report``: normalised score (return - random) / (expert - random) of both, mean and 95% bootstrap interval
  over seeds, final and at a quarter, half and all of the budget (each run's evaluation curve interpolated
  there), with each side's env steps per second; benchmarks/results/imitation_library.md.

``--quick`` shrinks every budget (one round of the library's GAIL per run: 4,096 env steps, Ant-v4 and
Humanoid-v4 16,384; 2 demo episodes, 1 seed, evaluations every 2,048 steps on 1 episode and 2 at the end, no
demo floor, 4,096 steps per expert) to check the pipeline end to end; its numbers mean nothing and its
report goes to ``--out`` (default runs/bench/imitation-library-quick).

Run archive (``--archive DIR``; default none; the full run's is meant for benchmarks/results/runs/imitation-library,
committed, which a ``--quick`` run never writes into). The full run (~40 core-hours) spans several sessions on
machines that may be new each time; run directories, demos and the venv stay on the machine that made them, and
the archive keeps, as the imitation benchmark's does (``rlgen.bench.pipeline``, ``rlgen.bench.archive``), what
later stages and the report need:

- ``experts/<run>/``: the v4 experts the ``experts`` stage trains, each with its models (final and ``best/``) and
  cached evaluations, archived as it finishes; ``experts.json`` and ``random_scores.json`` in the archive's root.
- ``demos/<task>.json``: each task's demo record (which expert, how many episodes, the return floor, the sha256
  of ``<task>.npz``). No .npz is kept: a later session makes both demo files again from the record's expert
  (the imitation benchmark's archive for Hopper-v4 and HalfCheetah-v4, the archived one for Ant-v4 and
  Humanoid-v4) with the same call, and stops with a one-line error if the sha256 differs (the archived runs
  were trained on the recorded demos; ``--accept-new-demos`` keeps them, with a line that says so). A local
  record other than the archive's stops the script too.
- ``library/<task>_<n>demos_s<seed>.json`` and ``.log``: each library run's result and output, copied in
  (atomically) as the run finishes.
- ``rlgen/<run>/``: rlgen's runs through the benchmark harness's archive (``run_suite(archive_dir=...)``): the
  small files of every finished run, no model, and its final score cached (``benchmark_eval.json``) before
  it is archived, which is all the report reads.
- ``budgets.json``: whether it holds ``--quick`` runs or full ones; the other kind is refused in one line.

Every stage first restores what ``--out`` lacks (a finished run, expert or library result is never trained
again), so a later session re-runs the same command with the same ``--archive`` and carries on where the archive
stands; ``--stage report`` alone, from a fresh ``--out``, rebuilds the report from the archive (its demos made
again from the experts).

In all, with 3 seeds: 30M env steps per side (60M), plus 5M for the Ant-v4 and Humanoid-v4 experts.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from rlgen.agents import collect_demos  # noqa: E402
from rlgen.agents.config import ConfigError  # noqa: E402
from rlgen.atomic import atomic_write, atomic_write_bytes, atomic_write_text, file_sha256  # noqa: E402
from rlgen.bench import Suite, load_suite, records, run_suite, show_messages  # noqa: E402
from rlgen.bench import stats as bstats  # noqa: E402
from rlgen.bench.experts import EXPERTS_FILE, has_policy  # noqa: E402
from rlgen.bench.pipeline import DEMOS_DIR, EXPERTS_DIR, Pipeline, run_stages, task_list  # noqa: E402
from rlgen.bench.records import BUDGETS_FILE, DemoFile  # noqa: E402
from rlgen.bench.report import RANDOM_SCORES_FILE  # noqa: E402
from rlgen.bench.runner import run_finished  # noqa: E402
from rlgen.bench.scores import SCORE_FILE, run_score, scorable, score_before_archiving  # noqa: E402
from rlgen.bench.suite import RUNS_DIR  # noqa: E402
from rlgen.cli.common import HelpFormatter  # noqa: E402
from rlgen.imitation import Trajectories, load_demos, save_demos  # noqa: E402
from rlgen.versions import package_versions  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results"
ARCHIVE = RESULTS / "runs" / "imitation-library"
"""Where the full run's archive is meant to be committed (``--archive`` is none unless given; a ``--quick`` run
never writes here)."""
LIBRARY_DIR = "library"
RLGEN_DIR = "rlgen"
RUNNER = HERE / "imitation_library_runner.py"
SCRIPT = "imitation_library.py"


def _imitation_benchmark() -> Any:
    """benchmarks/imitation.py, whose helpers (the experts' env layout, GAIL's setting) this script shares; loaded
    by path under another name (``imitation`` is the library's)."""
    spec = importlib.util.spec_from_file_location("rlgen_imitation_benchmark", HERE / "imitation.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # its dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


IMITATION = _imitation_benchmark()
IMITATION_ARCHIVE: Path = IMITATION.ARCHIVE
EVAL_SEED: int = IMITATION.EVAL_SEED
SUBSAMPLE: int = IMITATION.SUBSAMPLE
RLGEN_GAIL_KWARGS: dict[str, Any] = IMITATION.GAIL_VARIANTS["gail-gp10"][0]

TASKS = ("Hopper-v4", "HalfCheetah-v4", "Ant-v4", "Humanoid-v4")
V5 = {task: task.replace("-v4", "-v5") for task in TASKS}
"""The imitation benchmark's task each v4 task stands for (its experts' settings, its GAIL setting)."""
BORROWED = ("Hopper-v4", "HalfCheetah-v4")
"""Tasks whose v5 expert (the imitation benchmark's) has v4's spaces and makes the v4 demos."""
TRAINED = ("Ant-v4", "Humanoid-v4")
"""Tasks whose v5 expert sees other observations: a v4 expert is trained here."""

INSTALLS = (("torch==2.13.0",), ("imitation==1.0.1", "numpy<2", "mujoco==2.3.7", "gymnasium[mujoco]==0.29.1"))
"""pip installs into the library's venv, in this order (torch first: the CPU build)."""
EXPECTED = {"torch": "2.13.0", "imitation": "1.0.1", "mujoco": "2.3.7", "gymnasium": "0.29.1",
            "stable-baselines3": "2.2.", "numpy": "1."}
"""Installed versions that make a venv ready (prefixes)."""
MARKER = ".rlgen-imitation-library.json"

# -- the library's documented GAIL settings --------------------------------------------------------------------
# src/imitation/scripts/config/tuned_hps/gail_seals_<env>_best_hp_eval.json at tag v1.0.1, tuned on seals/<Env>-v1
# with 8 envs; `rl.batch_size` there is PPO's whole rollout (n_steps = rollout / 8). Every one normalises the
# reward net's input and output and the policy's features with RunningNorm (the runner builds them so).
_TUNED_PPO = {
    "Hopper": {"batch_size": 512, "clip_range": 0.1, "ent_coef": 0.001255299425412744, "gae_lambda": 0.98,
               "gamma": 0.995, "learning_rate": 4.3984856156897565e-05, "max_grad_norm": 0.9, "n_epochs": 20,
               "vf_coef": 0.20315938606555833},
    "HalfCheetah": {"batch_size": 64, "clip_range": 0.1, "ent_coef": 3.992371122209408e-06, "gae_lambda": 0.95,
                    "gamma": 0.95, "learning_rate": 0.00026250519057717037, "max_grad_norm": 0.8, "n_epochs": 5,
                    "vf_coef": 0.11483689492120866},
    "Ant": {"batch_size": 16, "clip_range": 0.3, "ent_coef": 0.008871887607426377, "gae_lambda": 0.8,
            "gamma": 0.995, "learning_rate": 2.428297806883194e-05, "max_grad_norm": 0.9, "n_epochs": 10,
            "vf_coef": 0.4351450387648799},
}
_TUNED = {
    "Hopper": {"demo_batch_size": 128, "gen_replay_buffer_capacity": 4096, "n_disc_updates_per_round": 8,
               "rollout": 4096, "policy": "MlpPolicy", "net_arch": {"pi": [64, 64], "vf": [64, 64]},
               "activation": "relu"},
    "HalfCheetah": {"demo_batch_size": 8192, "gen_replay_buffer_capacity": 512, "n_disc_updates_per_round": 8,
                    "rollout": 4096, "policy": "FeedForward32Policy"},
    "Ant": {"demo_batch_size": 32, "gen_replay_buffer_capacity": 16384, "n_disc_updates_per_round": 8,
            "rollout": 16384, "policy": "FeedForward32Policy"},
}
TUNED_ON = {"Hopper-v4": "Hopper", "HalfCheetah-v4": "HalfCheetah", "Ant-v4": "Ant",
            "Humanoid-v4": "Ant"}  # no tuned Humanoid setting: the library's docs suggest a similar env's
LIBRARY_SETTINGS: dict[str, dict[str, Any]] = {
    task: {**_TUNED[env], "n_envs": 8, "ppo": dict(_TUNED_PPO[env]), "tuned_on": f"seals/{env}-v1"}
    for task, env in TUNED_ON.items()
}


@dataclasses.dataclass(frozen=True)
class Budgets:
    expert_steps: int | None  # None: the imitation-experts suite's
    trajectories: dict[str, tuple[int, ...]]
    steps: dict[str, int]
    eval_every: int
    eval_episodes: int  # periodic
    final_eval_episodes: int  # final policy, the expert's v4 score, the random policy
    demo_floor: float | None


FULL = Budgets(expert_steps=None,
               trajectories={"Hopper-v4": (4, 25), "HalfCheetah-v4": (4, 25), "Ant-v4": (4, 25),
                             "Humanoid-v4": (25, 80)},
               steps={"Hopper-v4": 1_000_000, "HalfCheetah-v4": 1_000_000, "Ant-v4": 1_000_000,
                      "Humanoid-v4": 2_000_000},
               eval_every=25_000, eval_episodes=5, final_eval_episodes=20, demo_floor=0.8)
# --quick: one round of the library's GAIL (its PPO rollout: 4,096 steps, Ant's and Humanoid's 16,384) per run
QUICK = Budgets(expert_steps=4096, trajectories={task: (2,) for task in TASKS},
                steps={task: LIBRARY_SETTINGS[task]["rollout"] for task in TASKS},
                eval_every=2048, eval_episodes=1, final_eval_episodes=2, demo_floor=None)
EQUAL_STEPS = (0.25, 0.5, 1.0)
"""Where the report compares the curves, as fractions of a task's budget."""


def budgets(args: argparse.Namespace) -> Budgets:
    return QUICK if args.quick else FULL


def fail(message: str) -> SystemExit:
    return SystemExit(f"{SCRIPT}: {message}")


# -- setup -----------------------------------------------------------------------------------------------------
def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed_versions(venv: Path) -> dict[str, str]:
    code = ("import json, importlib.metadata as m\nout = {}\nfor n in " + repr(list(EXPECTED)) + ":\n"
            "    try: out[n] = m.version(n)\n    except m.PackageNotFoundError: pass\nprint(json.dumps(out))")
    done = subprocess.run([str(venv_python(venv)), "-c", code], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def venv_ready(venv: Path) -> bool:
    """Whether the venv holds the pinned library: its marker names the pins, or its packages are those versions."""
    if not venv_python(venv).is_file():
        return False
    marker = venv / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("installs") == [list(i) for i in INSTALLS]:
        return True
    found = installed_versions(venv)
    return all(found.get(name, "").startswith(prefix) for name, prefix in EXPECTED.items())


def require_venv(venv: Path) -> None:
    if not venv_python(venv).is_file():
        raise fail(f"no library venv at {venv} ({venv_python(venv)} is missing); run --stage setup"
                   + ("" if venv.name == "venv" else f" --venv {venv}"))
    if not venv_ready(venv):
        raise fail(f"{venv} lacks the pinned library ({', '.join(' '.join(i) for i in INSTALLS)}); "
                   f"run --stage setup --venv {venv}")


def stage_setup(args: argparse.Namespace, out: Path) -> bool:
    venv = args.venv
    if venv_ready(venv):
        print(f"setup: {venv} has the pinned library", flush=True)
        return True
    if not venv_python(venv).is_file():
        print(f"setup: creating {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for packages in INSTALLS:
        print(f"setup: pip install {shlex.join(packages)}", flush=True)
        if subprocess.run([*pip, *packages]).returncode != 0:
            print(f"setup: pip install {shlex.join(packages)} failed in {venv}", flush=True)
            return False
    atomic_write_text(venv / MARKER, json.dumps({"installs": [list(i) for i in INSTALLS],
                                                 "versions": installed_versions(venv)}, indent=2))
    return True


# -- experts ---------------------------------------------------------------------------------------------------
def experts_suite(args: argparse.Namespace) -> Suite:
    """The imitation benchmark's expert entries of the tasks trained here, on v4."""
    suite = load_suite("imitation-experts")
    wanted = {V5[task]: task for task in TRAINED if task in args.envs}
    entries = [{**entry, "env_id": wanted[entry["env_id"]]} for entry in suite.entries if entry["env_id"] in wanted]
    steps = budgets(args).expert_steps
    if steps is not None:
        entries = [{**entry, "total_steps": steps, "eval_episodes": 1} for entry in entries]
    return Suite(name="imitation-library-experts", entries=entries, seeds=[0],
                 description="v4 experts with the imitation benchmark's v5 experts' settings",
                 source="benchmarks/imitation_library.py")


def pipeline(args: argparse.Namespace, out: Path) -> Pipeline:
    """The experts trained here, the demos' records and the run archive (``--archive``; None: none), as the
    imitation benchmark keeps them (rlgen.bench.pipeline): at the start of every stage what the archive holds
    and ``--out`` lacks is restored (the experts with their models, experts.json, random_scores.json, the
    demos' records), and each expert is archived with its model as it finishes."""
    b = budgets(args)
    return Pipeline(out, args.archive, experts_suite(args), expert_key=lambda run: run.env_id,
                    demos=demo_files(args, out), eval_episodes=b.final_eval_episodes, eval_seed=EVAL_SEED,
                    workers=args.workers, command=args.command, accept_new_demos=args.accept_new_demos)


def stage_experts(args: argparse.Namespace, out: Path) -> bool:
    if not any(task in TRAINED for task in args.envs):
        print(f"experts: none to train ({', '.join(BORROWED)} use the imitation benchmark's)", flush=True)
        return True
    return pipeline(args, out).train_experts()


def expert_for(args: argparse.Namespace, out: Path, task: str) -> dict[str, Any] | None:
    """The expert that makes a task's demos: ``run_dir``, ``model`` (final, best), ``source`` (None: none yet)."""
    if task in BORROWED:
        chosen = json.loads((IMITATION_ARCHIVE / EXPERTS_FILE).read_text())[V5[task]]
        run_dir = IMITATION_ARCHIVE / "experts" / Path(chosen["run_dir"]).name
        return {**chosen, "run_dir": str(run_dir), "source": f"the imitation benchmark's {V5[task]} expert"}
    if not any(run_finished(run.config) for run in experts_suite(args).runs(out / "experts")
               if run.env_id == task):
        return None
    chosen = pipeline(args, out).pick_experts()[task]
    return {**chosen, "source": f"the {task} expert trained here"}


# -- demos -----------------------------------------------------------------------------------------------------
def demos_path(out: Path, task: str) -> Path:
    return out / DEMOS_DIR / f"{task}.npz"


def library_demos_path(out: Path, task: str) -> Path:
    return out / DEMOS_DIR / f"{task}.library.npz"


def demo_files(args: argparse.Namespace, out: Path) -> list[DemoFile]:
    """Each task's demo file with its record beside it (``<out>/demos/<task>.json``, the one the archive keeps)."""
    b = budgets(args)
    return [DemoFile(demos_path(out, task), task, max(b.trajectories[task])) for task in args.envs]


def library_arrays(trajs: Trajectories) -> dict[str, np.ndarray]:
    """The runner's demos file: every episode's T + 1 observations, its actions, its length, its end."""
    return {"env_id": np.array(trajs.env_id), "obs": np.concatenate([t.obs for t in trajs]),
            "acts": np.concatenate([t.acts for t in trajs]), "lengths": np.array([len(t) for t in trajs]),
            "terminated": np.array([t.terminated for t in trajs]), "rewards": np.concatenate([t.rewards for t in trajs])}


def write_library_demos(path: Path, trajs: Trajectories) -> None:
    arrays = library_arrays(trajs)
    atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


def demo_expert_dir(out: Path, task: str, expert: dict[str, Any]) -> Path:
    """Where the expert a demo record names is on this machine: in the imitation benchmark's archive (Hopper-v4,
    HalfCheetah-v4) or among this output folder's experts (restored from the archive with their models)."""
    name = Path(expert["run_dir"]).name
    return IMITATION_ARCHIVE / "experts" / name if task in BORROWED else out / EXPERTS_DIR / RUNS_DIR / name


def regenerate_demos(args: argparse.Namespace, out: Path) -> bool:
    """Make both demo files again for each task whose record is here without its demos (restored from the
    archive, which keeps no .npz): the record's expert rolled out on the task with the call that made them
    (its episodes, seed 0, its return floor), the runner's file from the same episodes. A file of another
    sha256 than the record's is not kept and stops the script in one line (``records.RecordMismatch``: the
    archived runs were trained on the recorded demos) unless ``--accept-new-demos``. False if one could not
    be made (its expert missing, the floor not reached again)."""
    ok = True
    for demo in demo_files(args, out):
        task = demo.what
        if demo.path.is_file() or not demo.record_path.is_file():
            continue
        record = demo.read_record()
        run_dir, model = demo_expert_dir(out, task, record["expert"]), record["expert"].get("model", "final")
        if not has_policy(run_dir, model):
            print(f"demos: cannot make {demo.path} again: its expert {run_dir.name} has no {model} model in "
                  f"{run_dir.parent}; run --stage experts", flush=True)
            ok = False
            continue
        try:
            trajs = collect_demos(run_dir, int(record["episodes"]), seed=0, best=model == "best", env_id=task,
                                  min_return=record.get("min_return"))
        except ConfigError as exc:  # the recorded floor not reached again: another machine's rollouts
            print(f"demos: cannot make {demo.path} again: {exc}".splitlines()[0], flush=True)
            ok = False
            continue
        digest = records.save_demos_checked(demo, trajs, record.get("sha256"), args.accept_new_demos,
                                            record.get("versions"))
        write_library_demos(library_demos_path(out, task), trajs)
        print(f"demos: {task}: {len(trajs)} episodes made again from {run_dir.name} "
              f"({records.sha256_check(record.get('sha256'), digest)}) -> {demo.path}", flush=True)
    return ok


def stage_demos(args: argparse.Namespace, out: Path) -> bool:
    b, pipe = budgets(args), pipeline(args, out)
    ok = regenerate_demos(args, out)
    for demo in demo_files(args, out):
        task, path = demo.what, demo.path
        if path.is_file() and demo.record_path.is_file():
            if not library_demos_path(out, task).is_file():  # the runner's file, from the same episodes
                write_library_demos(library_demos_path(out, task), demos_of(out, task))
            pipe.keep_demos_record(demo)
            print(f"demos: {path} exists", flush=True)
            continue
        if demo.record_path.is_file():  # its record is here, its expert could not make it again: said above
            continue
        expert = expert_for(args, out, task)
        if expert is None:
            print(f"demos: no finished {task} expert; run --stage experts first", flush=True)
            ok = False
            continue
        best, n = expert.get("model") == "best", max(b.trajectories[task])
        random = IMITATION.random_scores(out, [task], b.final_eval_episodes)[task]
        pipe.sync_json(RANDOM_SCORES_FILE)
        on_v4 = collect_demos(expert["run_dir"], b.final_eval_episodes, seed=EVAL_SEED, best=best, env_id=task)
        floor = records.demo_floor(b.demo_floor, random, float(on_v4.returns.mean()))
        try:  # the call regenerate_demos makes again from the record
            trajs = collect_demos(expert["run_dir"], n, seed=0, best=best, env_id=task, min_return=floor)
        except ConfigError as exc:  # too few episodes reach the floor
            print(f"demos: {task}: {exc}".splitlines()[0], flush=True)
            ok = False
            continue
        save_demos(path, trajs)
        write_library_demos(library_demos_path(out, task), trajs)
        record = {"expert": expert, "expert_v4_eval_mean": float(on_v4.returns.mean()), "episodes": n,
                  "min_return": floor, "expert_score": float(trajs.returns.mean()), "random_score": random,
                  "sha256": file_sha256(path), "versions": package_versions()}
        records.write_demos_record(demo, record, pipe.kept(DEMOS_DIR))
        print(f"demos: {task}: {n} episodes from {expert['source']}, return {trajs.returns.mean():.1f} "
              f"± {trajs.returns.std():.1f} -> {path}", flush=True)
    return ok


def demos_of(out: Path, task: str) -> Trajectories:
    """A task's demos, checked to be that task's (one line otherwise)."""
    trajs = load_demos(demos_path(out, task))
    if trajs.env_id != task:
        raise fail(f"{demos_path(out, task)} holds demos of {trajs.env_id}, not of {task}; "
                   "delete it and run --stage demos")
    return trajs


def demo_record(out: Path, task: str) -> dict[str, Any]:
    return dict(json.loads(demos_path(out, task).with_suffix(".json").read_text()))


# -- run -------------------------------------------------------------------------------------------------------
def library_result(out: Path, task: str, n: int, seed: int) -> Path:
    return out / LIBRARY_DIR / f"{task}_{n}demos_s{seed}.json"


def library_jobs(args: argparse.Namespace, tasks: list[str]) -> list[tuple[str, int, int]]:
    """The library's runs of ``tasks``: (task, demo episodes, seed)."""
    b = budgets(args)
    return [(task, n, seed) for task in tasks for n in b.trajectories[task] for seed in range(args.seeds)]


def run_library(args: argparse.Namespace, out: Path, task: str, n: int, seed: int) -> bool:
    """One run of the library's GAIL in its venv; its output in a .log beside the result."""
    b, result = budgets(args), library_result(out, task, n, seed)
    settings = out / LIBRARY_DIR / "settings" / f"{task}.json"
    atomic_write_text(settings, json.dumps(LIBRARY_SETTINGS[task], indent=2))
    command = [str(venv_python(args.venv)), str(RUNNER.absolute()), "--demos", str(library_demos_path(out, task)),
               "--env-id", task, "--episodes", str(n), "--settings", str(settings), "--seed", str(seed),
               "--total-steps", str(b.steps[task]), "--eval-every", str(b.eval_every),
               "--eval-episodes", str(b.eval_episodes), "--final-eval-episodes", str(b.final_eval_episodes),
               "--eval-seed", str(EVAL_SEED), "--out", str(result)]
    log = result.with_suffix(".log")
    with open(log, "w") as f:
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": ""})
    lines = log.read_text().strip().splitlines()
    if done.returncode != 0:
        problems = [line for line in lines if line.startswith("imitation_library_runner.py:")]
        print(f"library {result.stem} failed: {(problems or lines or ['no output'])[-1]} (log: {log})", flush=True)
        return False
    print(f"library {lines[-1] if lines else result.stem}", flush=True)
    archive_library(args, out, task, n, seed)
    return True


# -- the library's results in the archive: <archive>/library/<task>_<n>demos_s<seed>.json and .log --------------
def library_result_problem(path: Path, task: str, b: Budgets) -> str | None:
    """Why a library result is not this benchmark's run of ``task`` (another budget, other settings than
    LIBRARY_SETTINGS); None if it is."""
    result = json.loads(path.read_text())
    if result.get("total_steps") != b.steps[task]:
        return f"trained for {result.get('total_steps')} env steps, not {b.steps[task]}"
    ran = {k: v for k, v in result.get("settings", {}).items() if k != "demo_batch_size"}  # capped at the demos
    if ran != {k: v for k, v in LIBRARY_SETTINGS[task].items() if k != "demo_batch_size"}:
        return "trained with other settings than this script's LIBRARY_SETTINGS"
    return None


def copy_library_result(result: Path, folder: Path) -> None:
    """A library result and its log copied into ``folder``, each file atomically, the log first (a result says
    its run finished)."""
    for source in (result.with_suffix(".log"), result):
        if source.is_file():
            atomic_write_bytes(folder / source.name, source.read_bytes())


def archive_library(args: argparse.Namespace, out: Path, task: str, n: int, seed: int) -> None:
    """Copy a finished library result of this benchmark's run (and its log) into the archive, unless the
    archive holds these very files; one of another budget or other settings is named and left out, and a
    failed copy is said and costs only the copy."""
    local = library_result(out, task, n, seed)
    if args.archive is None or not local.is_file():
        return
    problem = library_result_problem(local, task, budgets(args))
    if problem is not None:
        print(f"archive: {local} was {problem}; not archived", flush=True)
        return
    kept = args.archive / LIBRARY_DIR
    files = [path for path in (local.with_suffix(".log"), local) if path.is_file()]
    if all((kept / path.name).is_file() and (kept / path.name).read_bytes() == path.read_bytes() for path in files):
        return
    try:
        copy_library_result(local, kept)
    except OSError as exc:  # the run matters more than its copy
        print(f"archive: could not copy {local.name} to {kept}: {exc}", flush=True)


def sync_library(args: argparse.Namespace, out: Path, tasks: list[str]) -> None:
    """The library's results of ``tasks`` the archive holds and ``--out`` lacks restored into ``--out`` (each
    with its log; one of another budget or other settings is named and left), and those finished here archived
    (one the archive holds differently is replaced by this side's, as rlgen.bench.archive does)."""
    if args.archive is None:
        return
    b, restored = budgets(args), 0
    for job in library_jobs(args, tasks):
        local = library_result(out, *job)
        archived = args.archive / LIBRARY_DIR / local.name
        if not local.is_file() and archived.is_file():
            problem = library_result_problem(archived, job[0], b)
            if problem is not None:
                print(f"archive: {LIBRARY_DIR}/{archived.name} was {problem}; not restored", flush=True)
                continue
            copy_library_result(archived, local.parent)
            restored += 1
        else:
            archive_library(args, out, *job)
    if restored:
        print(f"restored {restored} library result(s) from {args.archive}", flush=True)


def rlgen_suite(args: argparse.Namespace, out: Path) -> Suite:
    """rlgen's GAIL as the imitation benchmark runs it (the expert's agent and env layout, its GAIL setting) on
    the v4 tasks with demos."""
    b, entries = budgets(args), []
    for task in args.envs:
        if not demos_path(out, task).is_file():
            continue
        algo = demo_record(out, task)["expert"]["algo"]
        for n in b.trajectories[task]:
            entries.append({**IMITATION.env_layout(V5[task], algo), "algo": algo, "env_id": task,
                            "label": f"gail-{n}", "total_steps": b.steps[task], "imitation": "gail",
                            "demos": str(demos_path(out, task).absolute()), "demo_episodes": n,
                            "demo_subsample": SUBSAMPLE, "imitation_kwargs": dict(RLGEN_GAIL_KWARGS),
                            "eval_freq": b.eval_every, "eval_episodes": b.eval_episodes})
    return Suite(name="imitation-library-rlgen", entries=entries, seeds=list(range(args.seeds)),
                 description="rlgen's GAIL (the imitation benchmark's gail-gp10) on v4 tasks",
                 source="benchmarks/imitation_library.py")


def check_demos(args: argparse.Namespace, out: Path, tasks: list[str]) -> None:
    """The demos of ``tasks`` checked to be theirs (one line otherwise) and, with an archive, to be the
    archive's (their record kept there; another one stops the script in one line: the archived runs were
    trained on those)."""
    pipe = pipeline(args, out)
    for demo in demo_files(args, out):
        if demo.what in tasks:
            demos_of(out, demo.what)
            pipe.keep_demos_record(demo)


def stage_run(args: argparse.Namespace, out: Path) -> bool:
    b = budgets(args)
    ok = regenerate_demos(args, out)
    tasks = [task for task in args.envs if demos_path(out, task).is_file()]
    if not tasks:
        print("run: no demos yet; run --stage demos first", flush=True)
        return False
    check_demos(args, out, tasks)
    sync_library(args, out, tasks)
    todo = [job for job in library_jobs(args, tasks) if not library_result(out, *job).is_file()]
    if todo:
        require_venv(args.venv)
    (out / LIBRARY_DIR).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=args.workers or os.cpu_count() or 1) as pool:
        ok = all(pool.map(lambda job: run_library(args, out, *job), todo)) and ok
    # the archive keeps no model of rlgen's runs: each one's final score is cached first, for the report
    statuses, _ = run_suite(rlgen_suite(args, out), out / RLGEN_DIR, workers=args.workers,
                            report_dir=out / RLGEN_DIR, command=args.command,
                            archive_dir=pipeline(args, out).kept(RLGEN_DIR),
                            before_archive=score_before_archiving(b.final_eval_episodes, EVAL_SEED))
    return ok and not any(s.status == "failed" for s in statuses)


# -- report ----------------------------------------------------------------------------------------------------
def curve_at(steps: np.ndarray, returns: np.ndarray, at: float) -> float:
    """A run's evaluation curve read at ``at`` env steps (linear between evaluations; nan before the first)."""
    if len(steps) == 0 or at < steps[0]:
        return float("nan")
    return float(np.interp(at, steps, returns))


def fmt(values: list[float] | np.ndarray, digits: int = 2) -> str:
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return "—"
    point, low, high = bstats.bootstrap_ci(x)
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


@dataclasses.dataclass
class Side:
    """One method's finished runs in one cell: final returns, curves, steps per second."""

    finals: list[float] = dataclasses.field(default_factory=list)
    curves: list[tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=list)
    speeds: list[float] = dataclasses.field(default_factory=list)


def library_side(out: Path, task: str, n: int, seeds: int) -> Side:
    side = Side()
    for seed in range(seeds):
        path = library_result(out, task, n, seed)
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        side.finals.append(float(np.mean(result["final_returns"])))
        side.curves.append((np.array([e["timesteps"] for e in result["evaluations"]], dtype=float),
                            np.array([e["mean_return"] for e in result["evaluations"]], dtype=float)))
        side.speeds.append(result["timesteps"] / (result["train_seconds"] + result.get("eval_seconds", 0.0)))
    return side


def rlgen_sides(args: argparse.Namespace, out: Path, episodes: int) -> dict[tuple[str, int], Side]:
    from rlgen.agents.rundir import RunDir

    sides: dict[tuple[str, int], Side] = {}
    for run in rlgen_suite(args, out).runs(out / RLGEN_DIR):
        if not run_finished(run.config):
            continue
        if not scorable(run.config.run_dir, episodes, EVAL_SEED):  # restored without a model or a cached score
            print(f"report: {run.config.run_dir.name}: no model and no cached score of {episodes} episodes "
                  f"({SCORE_FILE}); not scored", flush=True)
            continue
        side = sides.setdefault((run.env_id, int(run.label.removeprefix("gail-"))), Side())
        side.finals.append(float(run_score(run.config.run_dir, episodes, EVAL_SEED).mean()))
        history = RunDir(run.config.run_dir).read_eval_history()
        side.curves.append((np.array([r["timesteps"] for r in history], dtype=float),
                            np.array([r["mean_return"] for r in history], dtype=float)))
        result = RunDir(run.config.run_dir).read_result() or {}
        if result.get("learn_time"):
            side.speeds.append(float(result["timesteps"]) / float(result["learn_time"]))
    return sides


def cell_table(task: str, n: int, sides: dict[str, Side], random: float, expert: float, budget: int,
               episodes: int) -> list[str]:
    """The report's table of one task and demo count: each side's normalised scores with intervals."""
    points = [int(f * budget) for f in EQUAL_STEPS]
    lines = [f"### {task}, {n} demo episodes", "",
             f"| method | runs | final ({episodes} episodes) | " + " | ".join(f"at {p // 1000:,}k (curve)" for p in points)
             + " | env steps/s |", "|---|---|---|" + "---|" * len(points) + "---|"]
    for name, side in sides.items():
        norm = [bstats.normalise(np.array(side.finals), random, expert)]
        at = [[curve_at(x, y, p) for x, y in side.curves] for p in points]
        cells = [fmt(norm[0])] + [fmt(bstats.normalise(np.array(v), random, expert)) if v else "—" for v in at]
        speed = f"{np.mean(side.speeds):,.0f}" if side.speeds else "—"
        lines.append(f"| {name} | {len(side.finals)} | " + " | ".join(cells) + f" | {speed} |")
    return [*lines, ""]


def behind(task: str, n: int, sides: dict[str, Side], budget: int) -> list[str]:
    """Where rlgen's mean is not above the library's (final, and at each comparison point)."""
    ours, theirs = sides["rlgen GAIL"], sides["imitation GAIL"]
    if not ours.finals or not theirs.finals:
        return []
    found = []
    if np.mean(ours.finals) <= np.mean(theirs.finals):
        diff = bstats.difference_ci(ours.finals, theirs.finals)
        found.append(f"{task} {n} demos, final: rlgen - library {diff[0]:,.1f} return [{diff[1]:,.1f}, {diff[2]:,.1f}]")
    for f in EQUAL_STEPS:
        p = int(f * budget)
        a = [curve_at(x, y, p) for x, y in ours.curves]
        c = [curve_at(x, y, p) for x, y in theirs.curves]
        if np.isfinite(a).all() and np.isfinite(c).all() and np.mean(a) <= np.mean(c):
            found.append(f"{task} {n} demos, at {p:,} steps: rlgen {np.mean(a):,.1f}, library {np.mean(c):,.1f}")
    return found


def settings_lines(args: argparse.Namespace, out: Path, tasks: list[str]) -> list[str]:
    b = budgets(args)
    lines = ["## Settings", "",
             "**imitation 1.0.1's GAIL**: its documented tuned settings "
             "(`src/imitation/scripts/config/tuned_hps/gail_seals_<env>_best_hp_eval.json`, tag v1.0.1, tuned on "
             "seals/<Env>-v1 with 8 envs for 10M env steps; here rlgen's budgets). BasicRewardNet with RunningNorm "
             "on its input and a RunningNorm-normalised output, policy features normalised by RunningNorm, 8 envs "
             "(in one process, DummyVecEnv; the library's scripts use subprocesses: the algorithm is the same), "
             "`allow_variable_horizon=True` (v4 episodes end when the body falls; seals envs have a fixed "
             "horizon), every demo transition (no subsampling). The demo batch is capped at the demos' "
             "transitions where it exceeds them (the library refuses a larger batch; HalfCheetah's 8,192 with 4 "
             "episodes: 4,000). Humanoid has no tuned setting: it runs Ant's (the library's docs: settings tuned "
             "for a similar environment may do).", "",
             "| task | tuned on | demo batch | replay buffer | disc. updates/round | PPO rollout (8 envs) | PPO |",
             "|---|---|---|---|---|---|---|"]
    for task in tasks:
        s = LIBRARY_SETTINGS[task]
        ppo = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in s["ppo"].items())
        policy = s["policy"] + (f" {s['net_arch']} {s['activation']}" if "net_arch" in s else "")
        lines.append(f"| {task} | {s['tuned_on']} | {s['demo_batch_size']} | {s['gen_replay_buffer_capacity']} | "
                     f"{s['n_disc_updates_per_round']} | {s['rollout']} | {ppo}; {policy} |")
    lines += ["", "**rlgen's GAIL**: the imitation benchmark's setting (benchmarks/imitation.py, `gail-gp10`): the "
              "demos' expert's agent preset and env layout (" + ", ".join(
                  f"{t} {demo_record(out, t)['expert']['algo'].upper()}" for t in tasks)
              + "), the GAIL wrapper with a gradient penalty of 10, one discriminator step per rollout, reward "
              f"normalised by VecNormalize, demo pairs subsampled every {SUBSAMPLE} steps.", "",
              "**Budgets** (env steps per run, both sides): " + ", ".join(f"{t} {b.steps[t]:,}" for t in tasks)
              + f". Evaluations: the deterministic policy on {b.eval_episodes} episode(s) every {b.eval_every:,} steps "
              f"(the library's at the first round boundary past each multiple), the final policy on "
              f"{b.final_eval_episodes} episodes, seeded, true env reward.", ""]
    return lines


def stage_report(args: argparse.Namespace, out: Path) -> Path:
    b, pipe = budgets(args), pipeline(args, out)
    regenerate_demos(args, out)
    tasks = [task for task in args.envs if demos_path(out, task).is_file()]
    if args.archive is not None:  # what finished elsewhere: the library's results, rlgen's runs
        check_demos(args, out, tasks)
        sync_library(args, out, tasks)
        restored = pipe.restore_runs(RLGEN_DIR, [run.config for run in rlgen_suite(args, out).runs(out / RLGEN_DIR)])
        if restored:
            print(f"restored {restored} finished rlgen run(s) from {args.archive}", flush=True)
    ours = rlgen_sides(args, out, b.final_eval_episodes)
    pipe.archive_runs(RLGEN_DIR, rlgen_suite(args, out).runs(out / RLGEN_DIR))  # with the scores just cached
    versions = next((json.loads(p.read_text()).get("versions") for p in sorted((out / LIBRARY_DIR).glob("*.json"))),
                    None)
    mine = package_versions()
    lines = ["# rlgen's GAIL against the imitation library's", "", f"Command: `{args.command}`", "",
             *(["**This is a `--quick` run: every budget is shrunk to check the pipeline; its numbers mean "
                "nothing.**", ""] if args.quick else []),
             f"Written {time.strftime('%Y-%m-%d %H:%M')}. Tasks: Gymnasium's v4 MuJoCo tasks "
             f"({', '.join(tasks) or 'none yet'}); seeds {list(range(args.seeds))}. rlgen: gymnasium "
             f"{mine.get('gymnasium')}, stable-baselines3 {mine.get('stable-baselines3')}, mujoco {mine.get('mujoco')}; "
             "library: " + (", ".join(f"{k} {v}" for k, v in versions.items()) if versions else "no run yet") + ".",
             "", "Normalised score (return - random) / (expert - random): random is a uniform-random policy's mean "
             f"over {b.final_eval_episodes} episodes on the v4 task, expert the mean return of the demo episodes "
             "under v4's reward. Means over seeds with 95% percentile-bootstrap intervals; the curve columns read "
             "each run's periodic evaluations (linear between them) at a quarter, half and all of the budget; "
             "env steps/s is the mean over runs of env steps over the time spent in training, periodic "
             "evaluations included.", "",
             "Demos: Hopper-v4 and HalfCheetah-v4 rolled out from the imitation benchmark's v5 experts (their "
             "observations have v4's layout), Ant-v4 and Humanoid-v4 from v4 experts trained here with those "
             "experts' settings" + (f"; episodes kept if their return reaches random + {b.demo_floor} "
                                    "(expert - random)" if b.demo_floor else "") + ".", "",
             *settings_lines(args, out, tasks), "## Results", ""]
    gaps: list[str] = []
    for task in tasks:
        record = demo_record(out, task)
        random, expert = record["random_score"], record["expert_score"]
        lines += [f"{task}: random {random:,.1f}, expert (demos) {expert:,.1f}; demos from {record['expert']['source']}.",
                  ""]
        for n in b.trajectories[task]:
            sides = {"rlgen GAIL": ours.get((task, n), Side()),
                     "imitation GAIL": library_side(out, task, n, args.seeds)}
            lines += cell_table(task, n, sides, random, expert, b.steps[task], b.final_eval_episodes)
            gaps += behind(task, n, sides, b.steps[task])
    lines += ["## Where rlgen is not ahead", ""]
    lines += [f"- {gap}" for gap in gaps] or ["Nowhere among the finished runs (means over seeds)."]
    lines.append("")
    path = args.report_dir / "imitation_library.md"
    atomic_write_text(path, "\n".join(lines))
    return path


# -- entry point -----------------------------------------------------------------------------------------------
def archive_dir(given: str | None, quick: bool) -> Path | None:
    """``--archive``: None without one ('' too); an archive of the other budgets, a --quick run into
    :data:`ARCHIVE`, or the imitation benchmark's archive (whose experts this script reads) raise ValueError
    naming it (``records.benchmark_archive``, which marks a new archive's budgets.json)."""
    if given and Path(given).resolve() == IMITATION_ARCHIVE.resolve():
        raise ValueError(f"{given} is the imitation benchmark's archive (this script reads its experts there); "
                         "use another --archive")
    return records.benchmark_archive(given or "", quick, ARCHIVE)


STAGES = {"setup": stage_setup, "experts": stage_experts, "demos": stage_demos, "run": stage_run,
          "report": stage_report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("--stage", choices=(*STAGES, "all"), default="all", help="what to run (all: every stage)")
    parser.add_argument("--envs", default=",".join(TASKS), help="comma-separated tasks")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell and side (default 3; --quick 1)")
    parser.add_argument("--workers", type=int, default=None, help="runs at once (default: the cores)")
    parser.add_argument("--venv", default=None, help="the library's venv (default <out>/venv)")
    parser.add_argument("--out", default=None, help="where runs and demos go (default runs/bench/imitation-library; "
                        "--quick: runs/bench/imitation-library-quick)")
    parser.add_argument("--report-dir", default=None,
                        help="where imitation_library.md goes (default benchmarks/results; --quick: --out)")
    parser.add_argument("--quick", action="store_true",
                        help="shrink every budget to check the pipeline end to end (numbers mean nothing)")
    parser.add_argument("--archive", default=None, metavar="DIR",
                        help="run archive to carry the benchmark across sessions and machines (commit it): what "
                        "is there and not in --out is restored first (the trained experts with their models, the "
                        "demos' records, from which the demos are made again and checked against their sha256, "
                        "the library's results, rlgen's runs), what finishes here is added; it holds --quick "
                        "runs or full ones, never both (default: none; the full run's place: "
                        "benchmarks/results/runs/imitation-library, which a --quick run never writes into)")
    parser.add_argument("--accept-new-demos", action="store_true",
                        help="keep demos made again from an archived record even if their sha256 differs from "
                        "the record's (another machine's floating point); a line says so")
    args = parser.parse_args(argv)
    show_messages()  # the harness's lines (progress, archive, demos made again), as this script's own
    args.envs = task_list(parser, args.envs, TASKS)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    out = Path(args.out or ("runs/bench/imitation-library-quick" if args.quick else "runs/bench/imitation-library"))
    marker = out / BUDGETS_FILE
    if marker.is_file() and json.loads(marker.read_text()).get("quick") != args.quick:
        parser.error(f"{out} holds a {'--quick' if not args.quick else 'full'} benchmark's runs; use another --out")
    try:
        args.archive = archive_dir(args.archive, args.quick)
    except ValueError as exc:
        parser.error(str(exc))
    atomic_write_text(marker, json.dumps({"quick": args.quick}))
    args.venv = Path(args.venv) if args.venv else out / "venv"
    args.report_dir = Path(args.report_dir) if args.report_dir else (out if args.quick else RESULTS)
    args.command = shlex.join(["python", f"benchmarks/{SCRIPT}", *(argv if argv is not None else sys.argv[1:])])
    return run_stages(SCRIPT, args.stage, pipeline(args, out),
                      {name: functools.partial(stage, args, out) for name, stage in STAGES.items()})


if __name__ == "__main__":
    sys.exit(main())

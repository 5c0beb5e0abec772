"""The InfoGAIL benchmark: unlabelled two-behaviour demonstrations, InfoGAIL's codes against plain GAIL.

    python benchmarks/infogail.py [--stage experts|demos|imitate|report|all] [--pairs HalfCheetah-v5,Swimmer-v5]
                                  [--seeds 3] [--algo ppo] [--workers 2] [--out runs/bench/infogail] [--quick]
                                  [--archive benchmarks/results/runs/infogail]

Two behaviour pairs, each on one task: running forward (the usual reward) and running backward
(``forward_reward_weight=-1.0``, Gymnasium v5's own parameter; it changes neither the dynamics nor the
observations) on HalfCheetah-v5 and on Swimmer-v5. Swimmer is the cheap second pair: 8-d observations,
2-d actions, cheap physics, and no early termination. GAIL's reward sign bias and InfoGAIL's
``log Q <= 0`` per-step cost both act on tasks whose episodes end early, as Hopper's do, and a backward
Hopper expert risks settling on standing still for the healthy reward. Swimmer's experts use
rl-baselines3-zoo's tuned Swimmer setting (gamma 0.9999; with 0.99 PPO and TRPO settle on a slow gait).

Stages (each resumable: re-running skips finished work and resumes unfinished runs; ``all`` runs them
in order, and ``report`` can be run at any time on whatever has finished):

- ``experts``: the built-in suite ``infogail-experts`` (PPO and TRPO presets, one seed each, two for
  Swimmer's backward experts, whose first seeds stalled at a return of ~50; 1M env steps per run, 10M
  in all). A run's expert is its final policy or that of its best periodic evaluation
  (``best/``), whichever has the higher mean return over 20 fresh evaluation episodes; per task and
  behaviour the run whose expert scores higher (under that behaviour's reward) becomes the expert
  (``<out>/experts.json``).
- ``demos``: 25 deterministic episodes of each expert (``rlgen.agents.collect_demos``: its VecNormalize
  statistics applied, raw observations saved), keeping only episodes whose return reaches random + 0.8
  (expert - random) under the expert's reward (as in benchmarks/imitation.py: a flipped HalfCheetah
  episode taught GAIL to flip), in ``<out>/demos/<task>-<behaviour>.npz``, then both
  experts' episodes mixed in a seeded random order, with nothing saying whose they are
  (``rlgen.imitation.mix_demos``), in ``<out>/demos/<task>-mixed.npz``: 50 episodes per task.
- ``imitate``: InfoGAIL (``n_modes`` 2, its defaults: ``lambda_info`` 1, Q a 100-unit InfoGAN head,
  10 Adam steps per update) and plain GAIL (one discriminator step per 2,048-step rollout, reward
  normalised by VecNormalize), both discriminators with a gradient penalty of 10 (the imitation
  benchmark's GAIL setting), on each mixed file, all 50 episodes, pairs subsampled
  every 20 steps, through the benchmark harness: the same agent (``--algo``, default the PPO preset;
  on Swimmer the experts' settings for that algorithm) and 1M env steps per run, ``--seeds`` seeds
  (default 3): 12 runs, 12M env steps.
- ``report``: every finished run rolled out with a deterministic policy for 20 episodes per code
  (InfoGAIL: code held fixed with ``AppendCode(code=c)``; GAIL: 20 episodes; experts: 20), same
  evaluation seeds for every code. Each episode's signature is its mean forward velocity
  (``info["x_velocity"]``); its sign classifies the episode as forward or backward. InfoGAIL's codes
  are matched one-to-one to the behaviours the best way (Hungarian method on the code x behaviour
  counts, ties broken by return; ``rlgen.generative.metrics.best_matching_accuracy`` is the accuracy);
  each code's return is scored under its matched behaviour's reward, normalised (score - random) /
  (expert - random). A policy's return under either reward comes from one rollout:
  ``w * sum(x_velocity) + sum(reward_ctrl)`` is exactly what the env with ``forward_reward_weight=w``
  returns (checked at every step against the env's own reward). Means over seeds with 95% bootstrap
  intervals. For InfoGAIL also how often its posterior Q reads the held code back from (s, a) (on
  as many episodes with sampled actions, what Q was trained on). Written to
  benchmarks/results/infogail.md with infogail_signatures.png.

Every run collects its rollouts from four in-process envs of 512 steps (the experts' suite sets it, the
imitators inherit it), 1.3-2x as fast as the presets' one env of 2,048. Time on a 2-core machine with two
workers: experts about an hour (10M steps), demos ~2 min, imitation ~2 h (12M steps), report ~10 min
(about 1M rollout steps in one process); about 3 h in all, longer if the cores are shared.

``--quick`` shrinks every budget (4,096 env steps per run, 2 demo episodes per expert, 2 evaluation
episodes, one seed unless ``--seeds`` is given) to check the pipeline end to end in a few minutes; its
numbers mean nothing, and its report goes to ``--out`` (default runs/bench/infogail-quick), never to
benchmarks/results.

Run archive (``--archive``, default benchmarks/results/runs/infogail, committed; ``--quick``: none unless
given, and never the committed one; ``''``: none). Run directories stay on the machine that trained them;
the archive keeps what later stages and the report need (``rlgen.bench.archive``), so the benchmark adds
up across sessions and machines:

- ``experts/<run>/``: every finished expert with its ``model.zip`` and ``vecnormalize.npz``, and ``best/``'s
  (the demos are rolled out from one of them) and its cached evaluations and signatures
  (``benchmark_eval.json``, ``benchmark_eval_best.json``, ``benchmark_signatures.json``); ``experts.json``
  and ``random_scores.json`` in the archive's root; ``budgets.json`` says whether it holds ``--quick`` runs.
- ``demos/<task>-<behaviour>.json`` (which expert made them, how many episodes) and
  ``demos/<task>-mixed.json`` (the parts and the mixing seed), each with the sha256 of its .npz. The .npz
  files are not kept: a later session makes them again, from the archived experts with the same call and
  by the same seeded mix, and stops with a one-line error if a sha256 differs (the archived imitation
  runs were trained on other demos).
- ``imitate/<run>/``: the small files of every finished InfoGAIL and GAIL run (config, result,
  evaluations, Monitor logs), no model, and after the report its cached signatures
  (``benchmark_signatures.json``), which is all a later report reads.

Every stage first restores from the archive what ``--out`` lacks (a finished run is never trained again;
runs finished here are added as they finish), so a later session re-runs the same command and carries on
where the archive stands; ``--stage report`` alone rebuilds the report from the archive (its demos made
again from the experts). A run archived without a model and without cached signatures for these
evaluation episodes cannot be scored: the report names it in one line and leaves it out.
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

from rlgen.agents import RunConfig, collect_demos, load_run  # noqa: E402
from rlgen.agents.envstack import attach_reward_wrappers, make_vec_env  # noqa: E402
from rlgen.agents.evaluation import Evaluator  # noqa: E402
from rlgen.agents.normalization import load_vecnormalize_stats  # noqa: E402
from rlgen.agents.rundir import RunDir  # noqa: E402
from rlgen.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402
from rlgen.bench import Suite, load_suite, records, run_suite, show_messages  # noqa: E402
from rlgen.bench import stats as bstats  # noqa: E402
from rlgen.bench.experts import expert_settings  # noqa: E402
from rlgen.bench.pipeline import (  # noqa: E402
    DEMOS_DIR,
    EXPERTS_DIR,
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
from rlgen.cli.common import HelpFormatter  # noqa: E402
from rlgen.generative.metrics import best_matching_accuracy  # noqa: E402
from rlgen.imitation import load_demos  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ARCHIVE = RESULTS / "runs" / "infogail"
PAIRS = ("HalfCheetah-v5", "Swimmer-v5")
BEHAVIOURS = ("forward", "backward")
WEIGHTS = {"forward": 1.0, "backward": -1.0}
"""forward_reward_weight of each behaviour's reward: w * x_velocity - ctrl_cost."""
METHODS: dict[str, dict[str, Any]] = {
    "infogail": {"imitation": "infogail", "name": "InfoGAIL"},
    "gail": {"imitation": "gail", "name": "GAIL"},
    # the original InfoGAIL's pre-training: the code-conditioned policy cloned on every demo (s, a) under a random
    # code (the squared error of its mean: the policy keeps its exploration noise), then InfoGAIL as above
    "infogail-bc": {"imitation": "infogail", "name": "InfoGAIL, BC pre-trained", "bc_pretrain": True,
                    "bc_kwargs": {"loss": "mse", "gradient_steps": 5000}},
}
"""Each imitation method: what the run does (``imitation``, and BC pre-training) and its name in the report."""
DEFAULT_METHODS = ("infogail", "gail")
DEMO_PARTS = (*BEHAVIOURS, "mixed")
"""A task's demo files (``<task>-<part>.npz``), each after those it is made from."""
N_MODES = 2
# both methods' discriminator: the imitation benchmark's GAIL setting (benchmarks/imitation.py's gail-gp10;
# without the penalty GAIL's discriminator saturated on HalfCheetah-v5 within ~125k steps)
DISC_KWARGS = {"gradient_penalty": 10.0}
EXPERTS_SUITE = "infogail-experts"


@dataclasses.dataclass(frozen=True)
class Budgets:
    expert_steps: int | None  # None: the suite's (1M per run)
    imitate_steps: dict[str, int]
    demo_episodes: int  # per expert; the mixed file holds twice as many
    eval_episodes: int  # per code (InfoGAIL), per run (GAIL, experts), for the random policy
    run_eval_episodes: int | None  # None: the presets' periodic evaluation (5 episodes every 25k steps)
    # an expert's demos keep only episodes whose return reaches random + demo_floor * (expert - random) under
    # its behaviour's reward, the expert's score being its evaluation mean (None: every episode)
    demo_floor: float | None


FULL = Budgets(expert_steps=None, imitate_steps={"HalfCheetah-v5": 1_000_000, "Swimmer-v5": 1_000_000},
               demo_episodes=25, eval_episodes=20, run_eval_episodes=None, demo_floor=0.8)
QUICK = Budgets(expert_steps=4096, imitate_steps={"HalfCheetah-v5": 4096, "Swimmer-v5": 4096},
                demo_episodes=2, eval_episodes=2, run_eval_episodes=1, demo_floor=None)
SUBSAMPLE = 20
EVAL_SEED = 12_345
SIGNATURE_FILE = "benchmark_signatures.json"


# -- helpers ---------------------------------------------------------------------------------------------
def budgets(args: argparse.Namespace) -> Budgets:
    return QUICK if args.quick else FULL


def is_infogail(method: str) -> bool:
    return METHODS[method]["imitation"] == "infogail"


def imitate_steps(args: argparse.Namespace, env_id: str) -> int:
    return args.imitate_steps or budgets(args).imitate_steps[env_id]


def method_key(args: argparse.Namespace, method: str) -> str:
    """A method's runs' label after the agent's: the method, and the budget when --imitate-steps changes it
    (``infogail-bc-2000k``), so runs of another budget get their own directories."""
    if args.imitate_steps is None:
        return method
    return f"{method}-{args.imitate_steps // 1000}k"


def method_name(args: argparse.Namespace, method: str) -> str:
    name = METHODS[method]["name"]
    return name if args.imitate_steps is None else f"{name}, {args.imitate_steps:,} steps"


def report_stem(args: argparse.Namespace) -> str:
    """infogail (the benchmark's own methods and budget), else infogail_<method keys> (a variant's own report)."""
    if tuple(args.methods) == DEFAULT_METHODS and args.imitate_steps is None:
        return "infogail"
    return "infogail_" + "_".join(method_key(args, m) for m in args.methods)


def behaviour_of(label: str) -> str:
    """``ppo-backward`` -> ``backward``."""
    return label.rsplit("-", 1)[-1]


def experts_suite(args: argparse.Namespace) -> Suite:
    suite = load_suite(EXPERTS_SUITE)
    for entry in suite.entries:
        behaviour = behaviour_of(entry["label"])
        weight = float((entry.get("env_kwargs") or {}).get("forward_reward_weight", 1.0))
        if behaviour not in WEIGHTS or weight != WEIGHTS[behaviour]:
            raise SystemExit(f"{EXPERTS_SUITE}: entry {entry['label']} on {entry['env_id']} has forward_reward_weight "
                             f"{weight}; the labels must read <algo>-forward (1.0) or <algo>-backward (-1.0)")
    b = budgets(args)
    return suite.restricted(lambda entry: entry["env_id"] in args.pairs,
                            total_steps=b.expert_steps, eval_episodes=b.run_eval_episodes)


def agent_fields(args: argparse.Namespace, env_id: str) -> dict[str, Any]:
    """The imitators' agent settings on ``env_id``: those of the forward expert of ``args.algo`` (the
    preset where there is one; on Swimmer-v5 the suite's own hyperparameters)."""
    keys = ("hyperparams", "overrides", "normalize", "n_envs", "eval_freq", "eval_episodes")
    return expert_settings(load_suite(EXPERTS_SUITE), keys, lambda entry: entry["algo"] == args.algo
                           and entry["env_id"] == env_id and behaviour_of(entry["label"]) == "forward")


def demos_path(out: Path, env_id: str, part: str) -> Path:
    return out / DEMOS_DIR / f"{env_id}-{part}.npz"


def random_scores(args: argparse.Namespace, out: Path, envs: list[str]) -> dict[tuple[str, str], float]:
    """Mean return of uniformly random actions under each behaviour's reward: the 0 of normalised scores."""
    episodes = budgets(args).eval_episodes
    path = out / RANDOM_SCORES_FILE
    cache = json.loads(path.read_text()) if path.is_file() else {}
    scores = {}
    for env_id in envs:
        for behaviour in BEHAVIOURS:
            key = f"{env_id}/{behaviour}/{episodes}"
            if key not in cache:
                cache[key] = random_policy_score(env_id, {"forward_reward_weight": WEIGHTS[behaviour]},
                                                 episodes=episodes, seed=EVAL_SEED)
                atomic_write_text(path, json.dumps(cache, indent=2))
            scores[env_id, behaviour] = float(cache[key])
    return scores


# -- signatures: roll a run's policy out and measure what it does ----------------------------------------
def _posterior(config: RunConfig, run_dir: Path) -> Any:
    """The run's trained InfoGAIL wrapper (discriminator and Q), rebuilt as in training and loaded."""
    venv = make_vec_env(config)
    try:
        _, wrappers = attach_reward_wrappers(venv, config)
        wrappers[0].load_state(run_dir)
        return wrappers[0]
    finally:
        venv.close()


def rollout_signatures(run_dir: Path, episodes: int, seed: int, code: int | None = None,
                       best: bool = False) -> dict[str, Any]:
    """Per episode: mean forward velocity, sum of x_velocity and of reward_ctrl, env return, length; and
    for an InfoGAIL run ``q_accuracy``, how often its posterior Q reads ``code`` back from the (s, a) of as
    many episodes with *sampled* actions (what Q was trained on: deterministic actions lie outside its
    training data, and an early Q can be confidently wrong on them).

    The env stack is the run's evaluation stack (``Evaluator``: the code appended and held for InfoGAIL,
    frozen VecNormalize statistics), the policy deterministic: the final one, or with ``best`` that of the
    run's best periodic evaluation (an expert's)."""
    import torch

    config, model, stats_path = load_run(run_dir, best)
    if best and config.imitation == "infogail":  # Q's accuracy below reads the final posterior
        raise ValueError(f"{run_dir.name}: an infogail run is scored on its final policy and posterior")
    torch.set_num_threads(1)
    weight = float(config.env_kwargs.get("forward_reward_weight", 1.0))
    evaluator = Evaluator(config, seed=seed, code=code)
    venv = evaluator.venv
    out: dict[str, list[float]] = {k: [] for k in ("mean_velocity", "velocity_sum", "ctrl_sum", "env_return", "length")}
    try:
        if stats_path is not None:
            load_vecnormalize_stats(venv, stats_path)  # type: ignore[arg-type]
            venv.training = False  # type: ignore[attr-defined]
            venv.norm_reward = False  # type: ignore[attr-defined]
        venv.seed(seed)
        obs = venv.reset()
        velocity = ctrl = ret = 0.0
        steps = 0
        while len(out["length"]) < episodes:
            action, _ = model.predict(obs, deterministic=True)
            obs, rewards, dones, infos = venv.step(action)
            info = infos[0]
            expected = weight * info["x_velocity"] + info["reward_ctrl"]
            if abs(float(rewards[0]) - expected) > 1e-4 * (1.0 + abs(expected)):
                raise RuntimeError(f"{run_dir.name}: env reward {float(rewards[0])} != {weight} * x_velocity + "
                                   f"reward_ctrl = {expected}; the reward decomposition does not hold")
            velocity += float(info["x_velocity"])
            ctrl += float(info["reward_ctrl"])
            ret += float(rewards[0])
            steps += 1
            if dones[0]:
                for key, value in (("mean_velocity", velocity / steps), ("velocity_sum", velocity),
                                   ("ctrl_sum", ctrl), ("env_return", ret), ("length", float(steps))):
                    out[key].append(value)
                velocity = ctrl = ret = 0.0
                steps = 0
    finally:
        evaluator.close()
    result: dict[str, Any] = dict(out)
    if config.imitation == "infogail" and code is not None:
        sampled = collect_demos(run_dir, episodes, code=code, deterministic=False, seed=seed)
        obs = np.concatenate([traj.obs[:-1] for traj in sampled])
        acts = np.concatenate([traj.acts for traj in sampled])
        probs = _posterior(config, run_dir).posterior_probabilities(obs, acts)
        result["q_accuracy"] = float((probs.argmax(axis=1) == code).mean())
    return result


def _signature_key(run_dir: Path, episodes: int, code: int | None, best: bool = False) -> str:
    result = RunDir(run_dir).read_result()
    steps = result["timesteps"] if result is not None else -1
    return f"code={code}|episodes={episodes}|seed={EVAL_SEED}|steps={steps}" + ("|model=best" if best else "")


def signatures_cached(run_dir: Path, episodes: int, code: int | None = None) -> bool:
    path = run_dir / SIGNATURE_FILE
    return path.is_file() and _signature_key(run_dir, episodes, code) in json.loads(path.read_text())


def signatures(run_dir: Path, episodes: int, code: int | None = None, best: bool = False) -> dict[str, Any]:
    """:func:`rollout_signatures` at the benchmark's evaluation seed, cached in the run directory (and
    recomputed when the run has trained further since); a cached one is read without loading the model."""
    key = _signature_key(run_dir, episodes, code, best)
    path = run_dir / SIGNATURE_FILE
    cache = json.loads(path.read_text()) if path.is_file() else {}
    if key not in cache:
        cache[key] = rollout_signatures(run_dir, episodes, EVAL_SEED, code, best)
        atomic_write_text(path, json.dumps(cache, indent=2))
    return cache[key]


def return_under(sig: dict[str, Any], behaviour: str) -> np.ndarray:
    """Per-episode return under ``behaviour``'s reward: w * sum(x_velocity) + sum(reward_ctrl)."""
    return WEIGHTS[behaviour] * np.asarray(sig["velocity_sum"]) + np.asarray(sig["ctrl_sum"])


def classify(sig: dict[str, Any]) -> np.ndarray:
    """Behaviour index per episode: 0 forward (mean velocity > 0), 1 backward."""
    return (np.asarray(sig["mean_velocity"]) <= 0).astype(np.int64)


# -- experts, demos and the run archive: the pipeline benchmarks/imitation.py shares ---------------------
def demo_file(out: Path, env_id: str, part: str) -> DemoFile:
    return DemoFile(demos_path(out, env_id, part), f"{env_id} {part}")


def pipeline(args: argparse.Namespace, out: Path) -> Pipeline:
    """The experts, demos and archive steps this benchmark shares with benchmarks/imitation.py: one expert
    per task and behaviour, its demo file, and per task the mix of the two."""
    b = budgets(args)
    return Pipeline(out, args.archive, experts_suite(args),
                    expert_key=lambda run: f"{run.env_id}/{behaviour_of(run.label)}",
                    demos=[demo_file(out, env_id, part) for env_id in args.pairs for part in DEMO_PARTS],
                    eval_episodes=b.eval_episodes, eval_seed=EVAL_SEED, workers=args.workers,
                    command=args.command, progress_bar=not args.quick, accept_new_demos=args.accept_new_demos,
                    expert_fields={"eval_episodes": b.eval_episodes})


def restored_expert(out: Path, record: dict[str, Any]) -> Path:
    """The run directory under ``out`` of the expert a demos record names (recorded on another machine, maybe)."""
    return out / EXPERTS_DIR / "runs" / Path(record["run_dir"]).name


def demo_experts(out: Path, envs: list[str]) -> dict[str, dict[str, Any]]:
    """Per task and behaviour the expert whose episodes are in the demos (their record names it; a better
    expert found after the demos were made changes experts.json, not the demos the imitators learned from),
    its run directory the one restored under ``out``."""
    experts: dict[str, dict[str, Any]] = {}
    for env_id in envs:
        for behaviour in BEHAVIOURS:
            demo = demo_file(out, env_id, behaviour)
            if demo.record_path.is_file():
                record = demo.read_record()
                experts[f"{env_id}/{behaviour}"] = {**record, "run_dir": str(restored_expert(out, record))}
    return experts


def restore_imitators(args: argparse.Namespace, out: Path) -> None:
    """Copy the finished InfoGAIL and GAIL runs of the archive that ``out`` lacks into it (on the tasks whose
    mixed demos are there)."""
    restored = pipeline(args, out).restore_runs("imitate", (run.config for run in
                                                             imitate_suite(args, out).runs(out / "imitate")))
    if restored:
        print(f"restored {restored} finished imitation run(s) from {args.archive}", flush=True)


# -- stages ----------------------------------------------------------------------------------------------
def stage_experts(args: argparse.Namespace, out: Path) -> bool:
    return pipeline(args, out).train_experts()


def stage_demos(args: argparse.Namespace, out: Path) -> bool:
    pipe = pipeline(args, out)
    experts = pipe.pick_experts()
    randoms = random_scores(args, out, list(args.pairs))
    pipe.sync_json(RANDOM_SCORES_FILE)
    n = budgets(args).demo_episodes
    ok = pipe.regenerate_demos()
    for env_id in args.pairs:
        mixed = demo_file(out, env_id, "mixed")
        if mixed.path.is_file():
            print(f"demos: {mixed.path} exists", flush=True)
            for part in DEMO_PARTS:
                pipe.keep_demos_record(demo_file(out, env_id, part))
            continue
        if mixed.record_path.is_file():  # restored, but not made again: said above
            continue
        parts = []
        for behaviour in BEHAVIOURS:
            demo = demo_file(out, env_id, behaviour)
            expert = experts.get(f"{env_id}/{behaviour}")
            if demo.path.is_file():
                parts.append(demo)
                continue
            if demo.record_path.is_file():  # restored, but not made again: said above
                continue
            if expert is None:
                print(f"demos: no finished {behaviour} expert for {env_id}; run --stage experts first", flush=True)
                ok = False
                continue
            random = randoms[env_id, behaviour]
            floor = records.demo_floor(budgets(args).demo_floor, random, expert["eval_mean"])
            trajs = pipe.make_demos(demo, expert, n, floor)
            if trajs is None:  # too few episodes reach the floor: said
                ok = False
                continue
            parts.append(demo)  # mixed from the files, as when it is made again
            note = ""
            if trajs.returns.mean() <= randoms[env_id, behaviour]:
                note = f"  WARNING: no better than the random policy ({randoms[env_id, behaviour]:.1f})"
            print(f"demos: {env_id} {behaviour} ({expert['algo']}): {n} episodes, return "
                  f"{trajs.returns.mean():.1f} ± {trajs.returns.std():.1f} -> {demo.path}{note}", flush=True)
        if len(parts) == len(BEHAVIOURS):
            both = pipe.mix_demos(mixed, parts, seed=0)
            print(f"demos: {env_id}: {len(both)} unlabelled episodes -> {mixed.path}", flush=True)
    return ok


def imitate_suite(args: argparse.Namespace, out: Path) -> Suite:
    b = budgets(args)
    entries = []
    for env_id in args.pairs:
        if not demos_path(out, env_id, "mixed").is_file():
            continue
        for method in args.methods:
            spec = METHODS[method]
            entry: dict[str, Any] = {
                **agent_fields(args, env_id), "algo": args.algo, "env_id": env_id,
                # runs of another --algo or budget get their own directories
                "label": f"{args.algo}-{method_key(args, method)}",
                "total_steps": imitate_steps(args, env_id), "imitation": spec["imitation"],
                "demos": str(demos_path(out, env_id, "mixed").absolute()), "demo_subsample": SUBSAMPLE,
            }
            if spec.get("bc_pretrain"):
                entry["bc_pretrain"], entry["bc_kwargs"] = True, dict(spec["bc_kwargs"])
            entry["imitation_kwargs"] = {**DISC_KWARGS, **({"n_modes": N_MODES} if is_infogail(method) else {})}
            if b.run_eval_episodes is not None:
                entry["eval_episodes"] = b.run_eval_episodes
            entries.append(entry)
    return Suite(name="infogail-imitate", entries=entries, seeds=list(range(args.seeds)),
                 description=f"{', '.join(method_name(args, m) for m in args.methods)} ({args.algo}, InfoGAIL with "
                 f"{N_MODES} modes) on the mixed forward/backward demos, subsampled every {SUBSAMPLE}",
                 source="benchmarks/infogail.py")


def stage_imitate(args: argparse.Namespace, out: Path) -> bool:
    ok = pipeline(args, out).regenerate_demos()
    suite = imitate_suite(args, out)
    if not suite.entries:
        print("imitate: no mixed demos yet; run --stage demos first", flush=True)
        return False
    restore_imitators(args, out)
    statuses, _ = run_suite(suite, out / "imitate", workers=args.workers, report_dir=out / "imitate",
                            command=args.command, archive_dir=pipeline(args, out).kept("imitate"))
    missing = [env_id for env_id in args.pairs if not demos_path(out, env_id, "mixed").is_file()]
    if missing:
        print(f"imitate: no mixed demos for {', '.join(missing)}; run --stage demos first", flush=True)
    return ok and not missing and not any(s.status == "failed" for s in statuses)


# -- report ----------------------------------------------------------------------------------------------
def match_codes(codes: np.ndarray, labels: np.ndarray, norm: np.ndarray) -> dict[int, int]:
    """code -> behaviour, one-to-one, maximising the episodes whose behaviour is their code's match; ties
    (e.g. both codes running forward) broken by the normalised return ``norm[code, behaviour]``."""
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((N_MODES, len(BEHAVIOURS)))
    np.add.at(counts, (codes, labels), 1)
    rows, cols = linear_sum_assignment(counts + 1e-6 * np.clip(np.nan_to_num(norm), -10, 10), maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


def score_infogail(sigs: dict[int, dict[str, Any]], randoms: dict[str, float], experts: dict[str, float]
                   ) -> dict[str, Any]:
    codes = np.concatenate([np.full(len(sigs[c]["mean_velocity"]), c) for c in range(N_MODES)])
    labels = np.concatenate([classify(sigs[c]) for c in range(N_MODES)])
    norm = np.array([[float(bstats.normalise(return_under(sigs[c], b).mean(), randoms[b], experts[b]))
                      for b in BEHAVIOURS] for c in range(N_MODES)])
    mapping = match_codes(codes, labels, norm)
    by_behaviour = {BEHAVIOURS[b]: c for c, b in mapping.items()}
    majority = {int(np.bincount(classify(sigs[c]), minlength=len(BEHAVIOURS)).argmax()) for c in range(N_MODES)}
    return {
        "accuracy": best_matching_accuracy(codes, labels),
        "norm": {b: float(norm[by_behaviour[b], i]) for i, b in enumerate(BEHAVIOURS)},
        "code_of": by_behaviour,
        "covered": len(majority),
        "velocity": {c: float(np.mean(sigs[c]["mean_velocity"])) for c in range(N_MODES)},
        "forward_fraction": {c: float((classify(sigs[c]) == 0).mean()) for c in range(N_MODES)},
        "q_accuracy": float(np.mean([sigs[c]["q_accuracy"] for c in range(N_MODES)])),
    }


def score_gail(sig: dict[str, Any], randoms: dict[str, float], experts: dict[str, float]) -> dict[str, Any]:
    norm = {b: float(bstats.normalise(return_under(sig, b).mean(), randoms[b], experts[b])) for b in BEHAVIOURS}
    return {"norm": norm, "velocity": float(np.mean(sig["mean_velocity"])),
            "forward_fraction": float((classify(sig) == 0).mean())}


def _fmt(values: list[float] | np.ndarray, digits: int = 2) -> str:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return "—"
    point, low, high = bstats.bootstrap_ci(values)
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _signatures_png(points: dict[str, dict[str, list[tuple[int, np.ndarray]]]]) -> bytes:
    """Per task: per-episode mean forward velocity of the experts, of InfoGAIL's code matched to each
    behaviour and of GAIL, one colour per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(points)
    fig, axes = plt.subplots(1, len(envs), figsize=(5.2 * len(envs), 3.6), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, env_id in zip(axes[0], envs, strict=True):
        columns = list(points[env_id])
        for x, column in enumerate(columns):
            for seed, values in points[env_id][column]:
                jitter = rng.uniform(-0.18, 0.18, len(values))
                color = "k" if seed < 0 else f"C{seed}"
                ax.scatter(x + jitter, values, s=9, color=color, alpha=0.7,
                           label=(f"seed {seed}" if seed >= 0 else None))
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels(columns, fontsize=7, rotation=20)
        ax.set_ylabel("mean forward velocity per episode")
        ax.set_title(env_id, fontsize=9)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        if unique:
            ax.legend(unique.values(), unique.keys(), fontsize=6)
    return figure_png(fig)


def stage_report(args: argparse.Namespace, out: Path) -> Path:
    b = budgets(args)
    episodes = b.eval_episodes
    pipe = pipeline(args, out)
    pipe.regenerate_demos()
    restore_imitators(args, out)
    envs = [env_id for env_id in args.pairs if demos_path(out, env_id, "mixed").is_file()]
    if envs:
        pipe.pick_experts()  # experts.json and the archive, with every expert's score cached
    experts_info = demo_experts(out, envs)
    randoms_all = random_scores(args, out, envs)
    pipe.sync_json(RANDOM_SCORES_FILE)
    randoms = {env_id: {beh: randoms_all[env_id, beh] for beh in BEHAVIOURS} for env_id in envs}
    expert_scores = {env_id: {beh: float(load_demos(demos_path(out, env_id, beh)).returns.mean())
                              for beh in BEHAVIOURS} for env_id in envs}
    expert_sigs = {env_id: {beh: signatures(Path(experts_info[f"{env_id}/{beh}"]["run_dir"]), episodes,
                                            best=experts_info[f"{env_id}/{beh}"].get("model") == "best")
                            for beh in BEHAVIOURS if f"{env_id}/{beh}" in experts_info} for env_id in envs}

    scores: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    points: dict[str, dict[str, list[tuple[int, np.ndarray]]]] = {}
    unfinished = 0
    unscored: list[str] = []
    for env_id in envs:
        points[env_id] = {f"expert {beh}": [(-1, np.asarray(expert_sigs[env_id][beh]["mean_velocity"]))]
                          for beh in BEHAVIOURS if beh in expert_sigs[env_id]}
        for method in args.methods:
            name = method_name(args, method)
            for key in ([f"{name} code→{beh}" for beh in BEHAVIOURS] if is_infogail(method) else [name]):
                points[env_id][key] = []
    for run in imitate_suite(args, out).runs(out / "imitate"):
        if not run_finished(run.config):
            unfinished += 1
            continue
        run_dir, env_id = run.config.run_dir, run.env_id
        method = next(m for m in args.methods if run.label == f"{args.algo}-{method_key(args, m)}")
        name = method_name(args, method)
        codes = list(range(N_MODES)) if is_infogail(method) else [None]
        if not RunDir(run_dir).has_model() and not all(signatures_cached(run_dir, episodes, c)
                                                       for c in codes):
            print(f"report: {run_dir.name}: no model and no cached signatures of {episodes} episodes "
                  f"({SIGNATURE_FILE}); not scored", flush=True)
            unscored.append(run_dir.name)
            continue
        if is_infogail(method):
            sigs = {c: signatures(run_dir, episodes, code=c) for c in range(N_MODES)}
            result = score_infogail(sigs, randoms[env_id], expert_scores[env_id])
            for beh in BEHAVIOURS:
                code = result["code_of"][beh]
                points[env_id][f"{name} code→{beh}"].append((run.seed, np.asarray(sigs[code]["mean_velocity"])))
        else:
            sig = signatures(run_dir, episodes)
            result = score_gail(sig, randoms[env_id], expert_scores[env_id])
            points[env_id][name].append((run.seed, np.asarray(sig["mean_velocity"])))
        scores.setdefault((env_id, method), []).append((run.seed, result))
    # with the signatures just cached: a later report needs no model
    pipe.archive_experts()
    pipe.archive_runs("imitate", imitate_suite(args, out).runs(out / "imitate"))

    quick_note = ["**This is a `--quick` run: every budget is shrunk to check the pipeline; its numbers mean "
                  "nothing.**", ""] if args.quick else []
    expert_budget = "; ".join(
        f"{env_id} {beh} {experts_info[f'{env_id}/{beh}']['algo'].upper()} "
        f"{experts_info[f'{env_id}/{beh}']['total_steps']:,}"
        for env_id in envs for beh in BEHAVIOURS if f"{env_id}/{beh}" in experts_info)
    lines = [
        "# InfoGAIL benchmark: one policy, two unlabelled behaviours, a code to choose between them", "",
        f"Command: `{args.command}`", "", *quick_note,
        f"Written {time.strftime('%Y-%m-%d %H:%M')}. Tasks: {', '.join(envs) or 'none yet'}; imitation seeds: "
        f"{list(range(args.seeds))}.", "",
        "**Behaviours.** On each task, running forward (the usual reward, `forward_reward_weight=1`) and "
        "running backward (`forward_reward_weight=-1`: reward `-x_velocity - ctrl_cost`; the weight changes "
        "neither dynamics nor observations).", "",
        "**Budgets.** Experts: PPO and TRPO presets (Swimmer-v5: the same settings with gamma 0.9999), one "
        "seed each (two for Swimmer-v5's backward experts), the best run per task and behaviour making the "
        f"demos (mean return over {episodes} evaluation episodes): {expert_budget or 'none finished yet'} env "
        f"steps (suite `{EXPERTS_SUITE}`). Demos: "
        f"{b.demo_episodes} deterministic episodes per expert"
        + ("" if b.demo_floor is None else
           f" (only episodes whose return reaches random + {b.demo_floor} (expert - random) under the expert's "
           "reward: a failed episode, such as a cheetah flipped on its back, teaches failing)")
        + ", both experts' episodes mixed without labels "
        f"({2 * b.demo_episodes} per task), (s, a) pairs subsampled every {SUBSAMPLE} steps. Imitation: "
        f"{args.algo.upper()} (preset; on Swimmer-v5 the experts' settings) on InfoGAIL's reward "
        f"(n_modes {N_MODES}, lambda_info 1, Q a 100-unit InfoGAN head, 10 Q steps per update) and on plain "
        "GAIL's (one discriminator step per 2,048-step rollout, reward normalised), both discriminators with "
        f"{', '.join(f'{k} {v}' for k, v in DISC_KWARGS.items())} (the imitation benchmark's GAIL setting), "
        + ", ".join(f"{env_id} {imitate_steps(args, env_id):,}" for env_id in envs)
        + f" env steps per run, {args.seeds} seed(s) per method."
        + (" InfoGAIL, BC pre-trained: before InfoGAIL, its code-conditioned policy is behaviour-cloned on every "
           "demo (s, a) under a uniformly drawn code, as the original InfoGAIL pre-trained its policy (5,000 Adam "
           "steps on the squared error of the policy's mean; the exploration noise is kept)."
           if "infogail-bc" in args.methods else ""), "",
        f"**Measurement.** Each finished run's deterministic policy is rolled out for {episodes} episodes per "
        "code (InfoGAIL, the code held fixed for whole episodes) or per run (GAIL, experts), with the same "
        "evaluation seeds for every code. An episode's signature is its mean forward velocity "
        "(`info['x_velocity']`); its sign says forward or backward. InfoGAIL's codes are matched one-to-one "
        "to the behaviours the best way (Hungarian method on the counts; ties broken by return), "
        "**accuracy** is the fraction of episodes whose behaviour is their code's match (0.5: the code does "
        "not choose the behaviour), and each code's return is scored under its matched behaviour's reward. "
        "Returns under either reward come from the same rollouts (`w * sum(x_velocity) + sum(reward_ctrl)`, "
        "checked against the env's reward at every step). Normalised score = (return - random) / "
        "(expert - random) under that behaviour's reward: 1 is the expert, 0 the random policy, about -1 "
        "the opposite expert. Plain GAIL has no code: its one policy is scored under both rewards, so "
        "picking one mode gives about (1, -1) and averaging them about (0, 0). **Q accuracy**: how often "
        "InfoGAIL's trained posterior Q reads the held code back from the (s, a) of as many episodes with "
        "sampled actions (what Q trained on; 0.5 is chance): high Q accuracy with a code -> behaviour "
        "accuracy near 0.5 means the codes change how the policy moves but not where. Intervals: 95% "
        "percentile bootstrap over seeds.", "",
        "## Experts and reference scores", "",
        f"| task | behaviour | expert | return (demos) | random | mean velocity ({episodes} eval episodes) "
        "| eval episodes with the expected sign |",
        "|---|---|---|---|---|---|---|",
    ]
    for env_id in envs:
        for i, beh in enumerate(BEHAVIOURS):
            info = experts_info.get(f"{env_id}/{beh}")
            sig = expert_sigs[env_id].get(beh)
            if info is None or sig is None:
                continue
            right = float((classify(sig) == i).mean())
            lines.append(f"| {env_id} | {beh} | {Path(info['run_dir']).name}, {info.get('model', 'final')} policy "
                         f"({info['algo'].upper()}, {info['total_steps']:,} steps) | "
                         f"{expert_scores[env_id][beh]:.1f} | {randoms[env_id][beh]:.1f} | "
                         f"{np.mean(sig['mean_velocity']):+.3f} | {right:.2f} |")

    lines += ["", "## Does the code select the behaviour?", "",
              "| task | method | code → behaviour accuracy | normalised return, forward | normalised return, "
              "backward | mean over the two behaviours | behaviours covered (of 2) | Q accuracy (sampled actions) | runs |",
              "|---|---|---|---|---|---|---|---|---|"]
    per_pair_mean: dict[str, list[np.ndarray]] = {m: [] for m in args.methods}
    per_pair_acc: dict[str, list[np.ndarray]] = {m: [] for m in args.methods}
    for env_id in envs:
        for method in args.methods:
            name = method_name(args, method)
            results = [r for _, r in scores.get((env_id, method), [])]
            if not results:
                lines.append(f"| {env_id} | {name} | — | — | — | — | — | — | 0 |")
                continue
            fwd = [r["norm"]["forward"] for r in results]
            bwd = [r["norm"]["backward"] for r in results]
            mean = [(r["norm"]["forward"] + r["norm"]["backward"]) / 2 for r in results]
            per_pair_mean[method].append(np.asarray(mean))
            if is_infogail(method):
                covered = _fmt([r["covered"] for r in results], 1)
                acc = [r["accuracy"] for r in results]
                per_pair_acc[method].append(np.asarray(acc))
                lines.append(f"| {env_id} | {name} (code matched to each behaviour) | {_fmt(acc)} | {_fmt(fwd)} | "
                             f"{_fmt(bwd)} | {_fmt(mean)} | {covered} | "
                             f"{_fmt([r['q_accuracy'] for r in results])} | {len(results)} |")
            else:
                lines.append(f"| {env_id} | {name} (one policy, no code) | n/a | {_fmt(fwd)} | {_fmt(bwd)} | "
                             f"{_fmt(mean)} | 1 at most | n/a | {len(results)} |")
    if envs:
        lines += ["", "Across tasks (stratified bootstrap over seeds within tasks):", "",
                  "| method | mean normalised return over behaviours [95% CI] | code → behaviour accuracy [95% CI] |",
                  "|---|---|---|"]
        for method in args.methods:
            groups = per_pair_mean[method]
            if not groups:
                continue
            m = bstats.stratified_bootstrap_ci(groups, bstats.mean)
            accuracies = per_pair_acc[method]
            acc = bstats.stratified_bootstrap_ci(accuracies, bstats.mean) if accuracies else None
            acc_text = f"{acc[0]:.2f} [{acc[1]:.2f}, {acc[2]:.2f}]" if acc else "n/a"
            lines.append(f"| {method_name(args, method)} | {m[0]:.2f} [{m[1]:.2f}, {m[2]:.2f}] | {acc_text} |")

    lines += ["", "## Per seed", "",
              "Mean forward velocity per code (fraction of its episodes running forward); InfoGAIL's codes "
              "with the behaviour each is matched to.", "",
              "| task | method | seed | signature | accuracy | normalised return (fwd / bwd) |",
              "|---|---|---|---|---|---|"]
    for env_id in envs:
        for method in args.methods:
            for seed, r in sorted(scores.get((env_id, method), []), key=lambda item: item[0]):
                if is_infogail(method):
                    matched = {c: beh for beh, c in r["code_of"].items()}
                    sig_text = "; ".join(f"c={c} → {matched[c]}: {r['velocity'][c]:+.3f} ({r['forward_fraction'][c]:.2f})"
                                         for c in range(N_MODES))
                    acc_text = f"{r['accuracy']:.2f}"
                else:
                    sig_text = f"{r['velocity']:+.3f} ({r['forward_fraction']:.2f})"
                    acc_text = "n/a"
                lines.append(f"| {env_id} | {method_name(args, method)} | {seed} | {sig_text} | {acc_text} | "
                             f"{r['norm']['forward']:.2f} / {r['norm']['backward']:.2f} |")
    if unfinished:
        lines += ["", f"{unfinished} imitation run(s) have not finished; re-running the `imitate` stage resumes them."]
    if unscored:
        lines += ["", f"{len(unscored)} finished imitation run(s) left out, restored without a model or cached "
                  f"signatures: {', '.join(unscored)}."]
    lines += [""]
    if envs:
        atomic_write_bytes(args.report_dir / f"{report_stem(args)}_signatures.png", _signatures_png(points))
        lines += ["![per-episode mean forward velocity of experts, InfoGAIL codes and GAIL]"
                  f"({report_stem(args)}_signatures.png)", "",
                  "Each point is one evaluation episode's mean forward velocity (black: the experts; colours: "
                  "imitation seeds). InfoGAIL's two codes are placed by the behaviour each was matched to.", ""]
    args.report_dir.mkdir(parents=True, exist_ok=True)
    path = args.report_dir / f"{report_stem(args)}.md"
    atomic_write_text(path, "\n".join(lines))
    return path


# -- entry point -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--stage", choices=STAGES, default="all", help="what to run (all: every stage in order)")
    parser.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated tasks, one behaviour pair each")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per imitation method (default 3; --quick 1)")
    parser.add_argument("--algo", choices=("ppo", "trpo"), default="ppo", help="agent behind InfoGAIL and GAIL")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated imitation methods, of {', '.join(METHODS)} (infogail-bc: InfoGAIL "
                        f"after behaviour cloning under random codes, as the original); default "
                        f"{','.join(DEFAULT_METHODS)}")
    parser.add_argument("--imitate-steps", type=int, default=None, metavar="N",
                        help="env steps per imitation run instead of the benchmark's (1M); such runs are labelled "
                        "with their budget (ppo-infogail-bc-2000k), apart from the others")
    add_arguments(parser, "infogail", "figure")
    args = parser.parse_args(argv)
    show_messages()  # the harness's lines (progress, archive, demos made again), as this script's own
    args.pairs = task_list(parser, args.pairs, PAIRS)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not args.methods:
        parser.error(f"--methods: unknown {unknown or 'none given'}; choose from {', '.join(METHODS)}")
    if args.imitate_steps is not None and args.imitate_steps < 1:
        parser.error(f"--imitate-steps must be a positive number of env steps, got {args.imitate_steps}")
    out = finish_arguments(parser, args, argv, "infogail", RESULTS, ARCHIVE)
    steps = {"experts": stage_experts, "demos": stage_demos, "imitate": stage_imitate, "report": stage_report}
    return run_stages("infogail.py", args.stage, pipeline(args, out),
                      {name: functools.partial(step, args, out) for name, step in steps.items()})


if __name__ == "__main__":
    sys.exit(main())

"""``rlgen train``, ``rlgen eval`` and ``rlgen envs``: train an agent, score a run, list the sparse-reward tasks."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rlgen.agents.config import ALGOS, BONUSES, ConfigError, RunConfig, apply_overrides, build_config
from rlgen.cli.common import (
    HelpFormatter,
    Subparsers,
    add_training_options,
    add_video_options,
    nonnegative_int,
    positive_int,
    print_result,
    start_run,
    train_run,
)


def register(sub: Subparsers) -> None:
    _add_train(sub)
    _add_eval(sub)
    _add_envs(sub)


def _add_train(sub: Subparsers) -> None:
    p = sub.add_parser(
        "train",
        help="train an agent (PPO, TRPO, A2C or SAC) and write a run directory",
        description="Train an SB3 agent on a Gymnasium env. Settings resolve as: built-in defaults < preset "
        "for (algo, env) < --config FILE < flags < -p key=value. The run directory (--out/--run-name) "
        "receives the model, VecNormalize statistics, config.yaml, eval.csv, learning_curve.png, "
        "TensorBoard logs (tb/) and a resumable checkpoint.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("algo_word", nargs="?", choices=ALGOS, default=None, metavar="ALGO",
                   help="the algorithm, as a word (`rlgen train sac --env Ant-v5`) or as --algo")
    p.add_argument("--algo", choices=ALGOS, default=None,
                   help="algorithm (default: ppo, or the config file's)")
    p.add_argument("--env", dest="env_id", default=None, metavar="ENV",
                   help=f"Gymnasium env id, e.g. Ant-v5 or rlgen/SparseHalfCheetah-v0 (see `rlgen envs`; default: "
                   f"{RunConfig.env_id}, or the config file's)")
    p.add_argument("--bonus", choices=[b for b in BONUSES if b], default=None,
                   help="exploration bonus wrapper; its settings via -p bonus_kwargs.NAME=VALUE (e.g. eta)")
    p.add_argument("--bonus-model", default=None, metavar="MODEL",
                   help="with --bonus density: its density model, pixelcnn (default), pixelrnn, vae, made or "
                   "bnn (the same as -p bonus_kwargs.model=MODEL)")
    add_training_options(p, run_name="<algo>[-<bonus>]_<env>_s<seed>",
                         overrides_example="-p learning_rate=1e-4 -p policy_kwargs.net_arch=[32,32] "
                         "-p env_kwargs.goal_x=3",
                         resume_help="continue the run in RUN_DIR from its checkpoint (--steps raises its "
                         "budget)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    if args.algo_word is not None:
        if args.algo is not None and args.algo != args.algo_word:
            raise ConfigError(f"two algorithms: {args.algo_word} and --algo {args.algo}; give one")
        args.algo = args.algo_word
    config = start_run(args, args.overrides, lambda: build_config(
        algo=args.algo, env_id=args.env_id, config_file=args.config_file, overrides=args.overrides,
        use_preset=not args.no_preset, total_steps=args.total_steps, seed=args.seed,
        n_envs=args.n_envs, out_dir=args.out_dir, run_name=args.run_name, bonus=args.bonus,
    ))
    if args.bonus_model:
        if config.bonus != "density":
            raise ConfigError(f"--bonus-model chooses the density bonus's model; add --bonus density (bonus is "
                              f"{config.bonus})")
        # a flag ranks below -p overrides: they go on top of it again
        config = apply_overrides(config, [f"bonus_kwargs.model={args.bonus_model}", *args.overrides])
    print_result(train_run(args, config))
    return 0


def _add_eval(sub: Subparsers) -> None:
    p = sub.add_parser("eval", help="evaluate a run's policy on the true env return",
                       description="Roll out a trained run's policy (its VecNormalize statistics applied) "
                       "and print the mean and standard deviation of the env's own episode return.",
                       formatter_class=HelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="a run directory written by `rlgen train` or `rlgen imitate`")
    p.add_argument("--episodes", type=positive_int, default=10, metavar="N", help="episodes to roll out")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy's mean")
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="seed of the evaluation env (default: the run's own evaluation seed, config seed + "
                   "10000, which reproduces its eval.csv)")
    p.add_argument("--code", type=int, default=None,
                   help="an infogail run: hold its latent code at this value (default: drawn per "
                   "episode)")
    p.add_argument("--best", action="store_true",
                   help="the policy of the run's best periodic evaluation (RUN_DIR/best) instead of its "
                   "final one")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.add_argument("--no-progress", action="store_true",
                   help="no effect: eval shows no progress bar (taken, as train and demos collect take it)")
    add_video_options(p, "the evaluated episodes")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from rlgen.agents import evaluate

    # without --seed, evaluate() picks the run's own evaluation seed: passing none is what reproduces eval.csv
    seed: dict[str, Any] = {} if args.seed is None else {"seed": args.seed}
    returns = evaluate(args.run_dir, episodes=args.episodes, deterministic=not args.stochastic,
                       code=args.code, best=args.best, video=args.video, video_steps=args.video_steps,
                       video_size=args.video_size, **seed)
    summary = {"run_dir": args.run_dir, "model": "best" if args.best else "final", "episodes": len(returns),
               "mean_return": float(returns.mean()), "std_return": float(returns.std()),
               "returns": [float(r) for r in returns]}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['mean_return']:.2f} ± {summary['std_return']:.2f} over {len(returns)} episodes")
    if args.video:
        print(f"video: {args.video}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _add_envs(sub: Subparsers) -> None:
    p = sub.add_parser("envs", help="list the sparse-reward tasks (rlgen's own and third-party) and their rewards",
                       description="List the sparse-reward tasks rlgen registers (ids rlgen/<Name>-v<N>) and the "
                       "third-party ones it makes through their own packages (the suites extra: pip install "
                       "'rlgen[suites]'): id, episode length, what earns the reward, and for a third-party "
                       "task its package (installed or not) and the defaults rlgen sets under your env_kwargs.")
    p.set_defaults(func=_cmd_envs)


def _cmd_envs(args: argparse.Namespace) -> int:
    from rlgen.envs import TASKS
    from rlgen.envs.coverage import measures_for
    from rlgen.envs.suites import EXTRA_HINT, SUITE_TASKS

    width = max(len(task_id) for task_id in [*(task.id for task in TASKS), *(task.id for task in SUITE_TASKS)])

    def measures(task_id: str) -> None:  # what a training run records of the task (rlgen.envs.coverage)
        known = measures_for(task_id)
        if known is not None:
            print(f"{'':<{width}}  progress: {known.progress_text}; coverage cells: {known.position_text()}")

    for task in TASKS:
        print(f"{task.id:<{width}}  {task.episode_steps:>5} steps  {task.reward}")
        if task.follows:
            print(f"{'':<{width}}  {'':>11}  ({task.follows})")
        measures(task.id)
    print(f"\nThird-party tasks, made through their own packages ({EXTRA_HINT}); any other dm_control/*, "
          f"PointMaze_* or AntMaze_* id works too. rlgen's defaults go under env_kwargs, which override them "
          f"(-p env_kwargs.continuing_task=true):")
    for suite_task in SUITE_TASKS:
        source = suite_task.source
        status = "installed" if source.installed() else "not installed"
        defaults = ", ".join(f"{key}={value}" for key, value in suite_task.default_kwargs.items())
        print(f"{suite_task.id:<{width}}  {suite_task.episode_steps:>5} steps  {suite_task.reward}")
        print(f"{'':<{width}}  from {source.name} ({status}); rlgen's defaults: {defaults or 'none'}")
        measures(suite_task.id)
    return 0

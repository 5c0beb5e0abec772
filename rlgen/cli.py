"""The ``rlgen`` command line. It only parses arguments and calls rlgen's Python API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rlgen.agents.config import ALGOS, BONUSES, ConfigError

if TYPE_CHECKING:
    from rlgen.agents import RunResult


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has one; no "(default: None)" after options whose help says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or default in ([], ""):
            return action.help or ""
        return super()._get_help_string(action) or ""


def positive_int(text: str) -> int:
    """argparse type for counts written as 1000, 1e6 or 2.5e5."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1 or not value.is_integer():
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return int(value)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an agent (PPO, TRPO, A2C or SAC) and write a run directory",
        description="Train an SB3 agent on a Gymnasium env. Settings resolve as: built-in defaults < preset "
        "for (algo, env) < --config FILE < flags < -p key=value. The run directory receives the "
        "model, VecNormalize statistics, config.yaml, eval.csv, learning_curve.png, TensorBoard logs "
        "(tb/) and a resumable checkpoint.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--algo", choices=ALGOS, default=None, help="algorithm (default: ppo, or the config file's)")
    p.add_argument("--env", dest="env_id", default=None,
                   help="Gymnasium env id, e.g. Ant-v5 or rlgen/SparseHalfCheetah-v0 (see `rlgen envs`)")
    p.add_argument("--steps", dest="total_steps", type=positive_int, default=None, help="total env steps, e.g. 1e6")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--n-envs", dest="n_envs", type=int, default=None, help="envs stepped together")
    p.add_argument("--bonus", choices=[b for b in BONUSES if b], default=None,
                   help="exploration bonus wrapper; its settings via -p bonus_kwargs.NAME=VALUE (e.g. eta)")
    p.add_argument("--bonus-model", default=None, metavar="MODEL",
                   help="with --bonus density: its density model, pixelcnn (default), pixelrnn, vae, made or bnn "
                   "(the same as -p bonus_kwargs.model=MODEL)")
    p.add_argument("--config", dest="config_file", default=None, help="YAML file of RunConfig keys")
    p.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key or SB3 hyperparameter (repeatable), e.g. -p learning_rate=1e-4 "
                   "-p policy_kwargs.net_arch=[32,32] -p env_kwargs.goal_x=3")
    p.add_argument("--out", dest="out_dir", default=None, help="parent folder of run directories (default runs)")
    p.add_argument("--run-name", default=None, help="run directory name (default <algo>[-<bonus>]_<env>_s<seed>)")
    p.add_argument("--no-preset", action="store_true", help="ignore the preset for (algo, env)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its checkpoint (--steps raises its budget)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from rlgen.agents import train
    from rlgen.agents.config import build_config, resume_config

    # a flag ranks below -p overrides, so it goes first among them
    overrides = [f"bonus_kwargs.model={args.bonus_model}", *args.overrides] if args.bonus_model else args.overrides
    if args.resume:
        config = resume_config(args.resume, args.total_steps, overrides)
    else:
        config = build_config(
            algo=args.algo, env_id=args.env_id, config_file=args.config_file, overrides=overrides,
            use_preset=not args.no_preset, total_steps=args.total_steps, seed=args.seed,
            n_envs=args.n_envs, out_dir=args.out_dir, run_name=args.run_name, bonus=args.bonus,
        )
    if args.bonus_model and config.bonus != "density":
        raise ConfigError(f"--bonus-model chooses the density bonus's model; add --bonus density (bonus is "
                          f"{config.bonus})")
    if args.no_progress:
        config.progress_bar = False
    print(f"run directory: {config.run_dir}")
    print_result(train(config, resume=bool(args.resume)))
    return 0


def print_result(result: RunResult, note: str = "") -> None:
    """The end of a training command: the final evaluation and where to look next."""
    print(f"final evaluation: {result.eval_mean_return:.2f} ± {result.eval_std_return:.2f} "
          f"after {result.timesteps} steps ({result.wall_time:.0f} s{note})")
    print(f"learning curve:   {result.run_dir / 'learning_curve.png'}")
    print(f"TensorBoard:      tensorboard --logdir {result.run_dir / 'tb'}")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run's policy on the true env return",
                       description="Roll out a trained run's policy (its VecNormalize statistics applied) and "
                       "print the mean and standard deviation of the env's own episode return.",
                       formatter_class=HelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--episodes", type=int, default=10, help="episodes to roll out")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy's mean")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation env")
    p.add_argument("--code", type=int, default=None,
                   help="an infogail run: hold its latent code at this value (default: drawn per episode)")
    p.add_argument("--best", action="store_true",
                   help="the policy of the run's best periodic evaluation (RUN_DIR/best) instead of its final one")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from rlgen.agents import evaluate

    returns = evaluate(args.run_dir, episodes=args.episodes, deterministic=not args.stochastic, seed=args.seed,
                       code=args.code, best=args.best)
    summary = {"run_dir": args.run_dir, "model": "best" if args.best else "final", "episodes": len(returns),
               "mean_return": float(returns.mean()), "std_return": float(returns.std()),
               "returns": [float(r) for r in returns]}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['mean_return']:.2f} ± {summary['std_return']:.2f} over {len(returns)} episodes")
    return 0


def _add_envs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("envs", help="list rlgen's tasks and their reward definitions",
                       description="List the sparse-reward tasks rlgen registers (ids rlgen/<Name>-v0).")
    p.set_defaults(func=_cmd_envs)


def _cmd_envs(args: argparse.Namespace) -> int:
    from rlgen.envs import TASKS

    width = max(len(task.id) for task in TASKS)
    for task in TASKS:
        print(f"{task.id:<{width}}  {task.episode_steps:>5} steps  {task.reward}")
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from rlgen.bench.runner import BACKENDS
    from rlgen.bench.suite import available_suites

    p = sub.add_parser(
        "bench", help="run a multi-seed benchmark suite and write its report",
        description="Run every run of a suite (env x algo x settings x seed) through the same train() as "
        "`rlgen train`, then aggregate: final returns with bootstrap intervals, normalised scores "
        "(IQM and mean), learning curves and a performance profile. Re-running skips finished runs and "
        "resumes unfinished ones; a failed run is recorded and the suite goes on.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("suite", metavar="SUITE",
                   help=f"a built-in suite ({', '.join(available_suites())}) or a suite YAML file")
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local: a process pool on this machine; ray: Ray Tune (pip install 'rlgen[ray]')")
    p.add_argument("--address", default=None, help="with --backend ray: join this Ray cluster (e.g. auto)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 instead of the suite's")
    p.add_argument("--steps", type=positive_int, default=None, help="budget per run instead of the suite's")
    p.add_argument("--workers", type=int, default=None, help="runs at once (default: the number of cores)")
    p.add_argument("--out", default=None, help="output folder (default runs/bench/<suite>)")
    p.add_argument("--report-dir", default=None, help="where <suite>.md and its plots go (default: --out)")
    p.add_argument("--match", default=None, metavar="REGEX",
                   help="only the runs whose name (<label>_<env>_s<seed>) matches, e.g. '^trpo.*CartPole'")
    p.add_argument("--report-only", action="store_true", help="aggregate the runs already there; train nothing")
    p.add_argument("--report-name", default=None, metavar="NAME", type=report_name,
                   help="write NAME.md and NAME_*.png instead of <suite>.md (with --report-only --match: a "
                   "report of that part alone)")
    p.add_argument("--archive", default=None, metavar="DIR",
                   help="a run archive (e.g. one committed with the results): finished runs found there, trained "
                   "with the suite's settings, are copied into --out and skipped; each run finished here is copied "
                   "in (its small files only); with --report-only, both ways, then the report")
    p.set_defaults(func=_cmd_bench)


def report_name(text: str) -> str:
    if not text or "/" in text or text.endswith(".md"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a report name: a plain name without '/' or '.md'")
    return text


def _cmd_bench(args: argparse.Namespace) -> int:
    import shlex

    from rlgen.bench import load_suite, run_suite, write_report

    suite = load_suite(args.suite)
    out = args.out or f"runs/bench/{suite.name}"
    command = "rlgen " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else ""
    command = command or f"rlgen bench {args.suite}"
    if args.report_only:
        runs = suite.runs(out, seeds=args.seeds, total_steps=args.steps, match=args.match)
        if args.archive is not None:
            from rlgen.bench import archive

            for run in runs:  # both ways: archived runs missing here come in, runs finished here go in
                archive.restore_run(run.config.run_dir, args.archive, run.config.total_steps, run.config)
                archive.archive_run(run.config.run_dir, args.archive, min_timesteps=run.config.total_steps)
        report = write_report(suite, runs, out, command, args.report_dir, name=args.report_name)
        failed = 0
    else:
        statuses, report = run_suite(suite, out, backend=args.backend, seeds=args.seeds, total_steps=args.steps,
                                     workers=args.workers, address=args.address, report_dir=args.report_dir,
                                     command=command, match=args.match, archive_dir=args.archive,
                                     report_name=args.report_name)
        failed = sum(s.status == "failed" for s in statuses)
    print(f"report: {report}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlgen",
        description="rlgen: reinforcement learning on Gymnasium where generative models do real work "
        "(VIME exploration, GAIL imitation, the 2016 generative models).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_eval(sub)
    _add_envs(sub)
    _add_bench(sub)
    from rlgen.gen_cli import add_gen_parser
    from rlgen.imitation_cli import add_imitation_parsers

    add_imitation_parsers(sub)
    add_gen_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"rlgen: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # a learned reward or model diverged: say which, in one line
        print(f"rlgen: error: {exc} (the run's last checkpoint is kept)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rlgen: interrupted (the last checkpoint is kept; resume with --resume RUN_DIR)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

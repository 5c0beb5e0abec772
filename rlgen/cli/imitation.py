"""``rlgen demos`` (collect, info, mix) and ``rlgen imitate``: demonstrations and the runs that learn from
them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rlgen.agents.config import ON_POLICY, ConfigError, RunConfig, build_config, read_yaml_mapping
from rlgen.cli.common import (
    HelpFormatter,
    Subparsers,
    add_deprecated_option,
    add_training_options,
    add_video_options,
    nonnegative_int,
    positive_int,
    print_result,
    start_run,
    train_run,
)

METHODS = ("gail", "infogail", "bc")


def register(sub: Subparsers) -> None:
    demos = sub.add_parser(
        "demos", help="collect and inspect expert demonstrations",
        description="Demonstrations are .npz files of whole episodes (raw observations, T + 1 per episode; "
        "actions; rewards; whether each episode terminated) with their env id and spaces.",
    )
    demos_sub = demos.add_subparsers(dest="demos_command", required=True, metavar="SUBCOMMAND")
    _add_collect(demos_sub)
    _add_info(demos_sub)
    _add_mix(demos_sub)
    _add_imitate(sub)


def _add_collect(sub: Subparsers) -> None:
    p = sub.add_parser(
        "collect", help="roll out a trained run's policy and save its episodes as demonstrations",
        description="Roll out RUN_DIR's policy (its VecNormalize statistics applied to what the policy sees) "
        "and save the episodes with raw observations.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `rlgen train` (the expert)")
    p.add_argument("-n", "--episodes", type=positive_int, default=25, metavar="N", help="episodes to record")
    # a file, not a run directory: collect writes no run
    p.add_argument("--out", default=None, metavar="FILE",
                   help="the output file, a .npz (default RUN_DIR/demos.npz)")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy's mean")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="episode i starts from reset seed SEED + i")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--code", type=int, default=None,
                   help="an infogail run: the latent code (0..K-1) its policy acts under")
    p.add_argument("--best", action="store_true",
                   help="roll out the policy of the run's best periodic evaluation (RUN_DIR/best), not its "
                   "final one")
    p.add_argument("--min-return", type=float, default=None, metavar="RETURN",
                   help="keep only episodes whose return reaches this (the expert's failures are left out); "
                        "rolls on with the next seeds until N are kept, at most 4N episodes")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_video_options(p, "the episodes rolled out (those --min-return leaves out too)")
    p.set_defaults(func=_cmd_collect)


def _add_info(sub: Subparsers) -> None:
    p = sub.add_parser("info", help="print a demonstration file's env, spaces, episodes and returns",
                       description="Print the env id, observation and action spaces, episode count, lengths "
                       "and returns of a demonstration file.")
    p.add_argument("file", metavar="FILE", help="a demonstrations .npz")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.set_defaults(func=_cmd_info)


def _add_mix(sub: Subparsers) -> None:
    p = sub.add_parser("mix", help="mix several demonstration files of one env into one unlabelled file",
                       description="Concatenate the episodes of several demonstration files recorded on the "
                       "same env (e.g. experts with different behaviours, for --method infogail) in a seeded "
                       "random order; nothing records which file an episode came from.",
                       formatter_class=HelpFormatter)
    p.add_argument("files", metavar="FILE", nargs="+", help="demonstrations .npz files of the same env")
    p.add_argument("--out", required=True, metavar="FILE", help="the output file, a .npz")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the episode order")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=_cmd_mix)


def _add_imitate(sub: Subparsers) -> None:
    p = sub.add_parser(
        "imitate", help="learn from demonstrations: GAIL or InfoGAIL with PPO/TRPO/A2C, or behaviour cloning",
        description="Train an agent on the discriminator reward of GAIL (the env reward is only reported: "
        "eval.csv and rollout/ep_rew_mean are true env returns), or behaviour-clone the demonstrations "
        "(--method bc, no env steps). Settings resolve as in `rlgen train`; GAIL's settings via "
        "-p imitation_kwargs.NAME=VALUE (disc_steps per disc_transitions policy transitions, batch_size, absorbing, "
        "learning_rate, entropy_bonus, label_smoothing, gradient_penalty, spectral_norm, use_next_obs, hidden), behaviour cloning's via "
        "-p bc_kwargs.NAME=VALUE (gradient_steps, batch_size, learning_rate, loss). The discriminator is saved "
        "with the run (gail.pt); `rlgen eval RUN_DIR` scores the policy on the true env return. --method infogail "
        "--n-modes K adds a latent code of K values to the policy's observation and rewards behaviour from "
        "which the code can be read back (InfoGAIL; its settings: -p imitation_kwargs.lambda_info=..., "
        "q_learning_rate, q_updates, q_hidden; saved as infogail.pt; `rlgen eval RUN_DIR --code C` holds the code).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--demos", default=None, metavar="FILE",
                   help="demonstrations .npz (from `rlgen demos collect`)")
    p.add_argument("--env", dest="env_id", default=None, metavar="ENV",
                   help="Gymnasium env id (default: the demos' env)")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="gail (default, or the config file's imitation); infogail (GAIL with a latent code of "
                   "--n-modes values); bc (behaviour cloning alone)")
    p.add_argument("--n-modes", type=positive_int, default=None, metavar="K",
                   help="infogail: the number K of behaviours (latent code values) to tell apart "
                   "(the same as -p imitation_kwargs.n_modes=K)")
    add_deprecated_option(p, "--modes", "--n-modes")
    p.add_argument("--algo", choices=ON_POLICY, default=None,
                   help="agent (default: ppo, or the config file's)")
    p.add_argument("--bc-pretrain", action="store_true", help="behaviour-clone the policy before GAIL")
    p.add_argument("--reward", choices=("gail", "log_d", "airl"), default=None,
                   help="discriminator reward: gail -log(1-D) (tasks that end on failure), log_d log D "
                   "(tasks that end on success), airl the logit (default gail)")
    p.add_argument("--episodes", dest="demo_episodes", type=positive_int, default=None, metavar="N",
                   help="use only the first N demo episodes (default: all)")
    p.add_argument("--subsample", dest="demo_subsample", type=positive_int, default=None, metavar="K",
                   help="keep every k-th (s, a) pair of each episode (the GAIL paper: 20; default 1)")
    add_training_options(p, run_name="<algo>-<method>_<env>_s<seed>",
                         overrides_example="-p imitation_kwargs.disc_steps=2 -p learning_rate=1e-4",
                         resume_help="continue the GAIL run in RUN_DIR from its checkpoint (--steps raises "
                         "its budget)", progress_help="hide the progress bars")
    p.set_defaults(func=_cmd_imitate)


# -- commands ------------------------------------------------------------------------------------
def _demo_summary(path: str | Path) -> dict[str, Any]:
    from rlgen.imitation import DemoError, load_demos

    try:
        trajs = load_demos(path)
    except DemoError as exc:
        raise ConfigError(str(exc)) from None
    returns, lengths = trajs.returns, trajs.lengths
    return {
        "file": str(path), "env_id": trajs.env_id,
        "observation_shape": list(trajs.obs_shape), "observation_dtype": str(trajs.obs_dtype),
        "action_shape": list(trajs.act_shape), "action_dtype": str(trajs.act_dtype),
        "episodes": len(trajs), "transitions": trajs.n_transitions,
        "terminated_episodes": int(sum(traj.terminated for traj in trajs)),
        "mean_length": float(lengths.mean()), "mean_return": float(returns.mean()),
        "std_return": float(returns.std()), "min_return": float(returns.min()),
        "max_return": float(returns.max()),
    }


def _print_summary(summary: dict[str, Any]) -> None:
    print(f"file:          {summary['file']}")
    print(f"env:           {summary['env_id'] or '(unknown)'}")
    print(f"observations:  shape {tuple(summary['observation_shape'])}, {summary['observation_dtype']}")
    print(f"actions:       shape {tuple(summary['action_shape'])}, {summary['action_dtype']}")
    print(f"episodes:      {summary['episodes']} ({summary['terminated_episodes']} terminated), "
          f"{summary['transitions']} transitions, mean length {summary['mean_length']:.1f}")
    print(f"return:        {summary['mean_return']:.2f} ± {summary['std_return']:.2f} "
          f"(min {summary['min_return']:.2f}, max {summary['max_return']:.2f})")


def _output_file(out: Path, force: bool) -> Path:
    """A demonstrations file to write: a .npz, not overwritten without --force."""
    if out.suffix != ".npz":
        raise ConfigError(f"--out must end in .npz, got {out.name}")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; choose another --out or pass --force to overwrite it")
    return out


def _cmd_collect(args: argparse.Namespace) -> int:
    from rlgen.agents import collect_demos
    from rlgen.imitation import save_demos

    out = _output_file(Path(args.out) if args.out else Path(args.run_dir) / "demos.npz", args.force)
    trajs = collect_demos(args.run_dir, args.episodes, deterministic=not args.stochastic, seed=args.seed,
                          progress_bar=not args.no_progress, code=args.code, best=args.best,
                          min_return=args.min_return, video=args.video, video_steps=args.video_steps,
                          video_size=args.video_size)
    save_demos(out, trajs)
    _print_summary(_demo_summary(out))
    if args.video:
        print(f"video: {args.video}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    summary = _demo_summary(args.file)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 0


def _cmd_mix(args: argparse.Namespace) -> int:
    from rlgen.imitation import DemoError, load_demos, mix_demos, save_demos

    out = _output_file(Path(args.out), args.force)
    try:
        mixed = mix_demos(*(load_demos(path) for path in args.files), seed=args.seed)
    except DemoError as exc:
        raise ConfigError(str(exc)) from None
    save_demos(out, mixed)
    _print_summary(_demo_summary(out))
    return 0


def _cmd_imitate(args: argparse.Namespace) -> int:
    config = start_run(args, args.overrides, lambda: _imitation_config(args))
    if config.algo not in ON_POLICY:
        raise ConfigError(f"imitate trains on-policy agents ({', '.join(ON_POLICY)}), not {config.algo}")
    result = train_run(args, config)
    if config.imitation == "bc":
        print(f"behaviour cloning: {result.eval_mean_return:.2f} ± {result.eval_std_return:.2f} "
              f"({result.wall_time:.0f} s)")
    else:
        print_result(result, note="; true env return")
    return 0


def _imitation_config(args: argparse.Namespace) -> RunConfig:
    """A new imitation run's config from the flags (the env id from the demos unless --env names it)."""
    if not args.demos:
        raise ConfigError("imitate needs --demos FILE (make one with `rlgen demos collect RUN_DIR`)")
    demos = Path(args.demos).expanduser().resolve()  # absolute: a resumed run may start elsewhere
    env_id = args.env_id or _demo_summary(demos)["env_id"]
    if not env_id:
        raise ConfigError(f"{demos} does not record its env id; pass --env")
    method = args.method  # the flag, else the config file's, else gail
    if method is None and args.config_file:
        method = read_yaml_mapping(args.config_file, "config file").get("imitation")
    method = method or "gail"
    if args.total_steps is not None and method == "bc":
        raise ConfigError("--steps would be ignored: --method bc takes no env steps (its updates: "
                          "-p bc_kwargs.gradient_steps=N)")
    if args.reward and method == "bc":
        raise ConfigError("--reward sets the discriminator's reward, which --method bc has not (gail or infogail)")
    imitation_kwargs = {"reward": args.reward} if args.reward else {}
    if args.n_modes is not None:
        if method != "infogail":
            raise ConfigError("--n-modes is for --method infogail")
        imitation_kwargs["n_modes"] = args.n_modes
    return build_config(
        algo=args.algo, env_id=env_id, config_file=args.config_file, overrides=args.overrides,
        use_preset=not args.no_preset, total_steps=args.total_steps, seed=args.seed, n_envs=args.n_envs,
        out_dir=args.out_dir, run_name=args.run_name, imitation=method, demos=str(demos),
        demo_episodes=args.demo_episodes, demo_subsample=args.demo_subsample,
        bc_pretrain=True if args.bc_pretrain else None, imitation_kwargs=imitation_kwargs or None,
    )

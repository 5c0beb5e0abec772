"""One GAIL run of the HumanCompatibleAI ``imitation`` library (1.0.1), for benchmarks/imitation_library.py.

This file runs in that benchmark's scratch venv (gymnasium 0.29, stable-baselines3 2.2, imitation 1.0.1), never
under rlgen's: it imports numpy, gymnasium, stable_baselines3, torch and imitation only, and no rlgen.

    python imitation_library_runner.py --demos demos.npz --env-id Hopper-v4 --episodes 4 --seed 0
                                       --settings settings.json --total-steps 1000000 --out result.json
    python imitation_library_runner.py --demos demos.npz --env-id Hopper-v4 --episodes 4 --convert-only out.npz

The demos file (written by benchmarks/imitation_library.py, read with ``np.load(allow_pickle=False)``) holds
``env_id``, ``obs`` (every episode's T + 1 observations, one episode after another), ``acts`` and ``lengths``
(T per episode); its first ``--episodes`` episodes become the library's ``Trajectory`` objects (complete
episodes, so ``terminal=True``, as the library records the episodes it rolls out itself).

``--settings`` is a JSON file of the library's GAIL settings (the benchmark writes it from its table of the
documented tuned settings): ``demo_batch_size``, ``gen_replay_buffer_capacity``, ``n_disc_updates_per_round``,
``n_envs``, ``rollout`` (PPO's rollout over all envs: n_steps = rollout / n_envs), ``ppo`` (PPO's keywords),
``policy`` (``MlpPolicy`` or ``FeedForward32Policy``), ``net_arch`` and ``activation`` (MlpPolicy's). Both the
reward net's input and output and the policy's features are normalised by RunningNorm, as in those settings.

Evaluation: every ``--eval-every`` env steps (at the first round boundary past each multiple) ``--eval-episodes``
episodes, and at the end ``--final-eval-episodes``, of the deterministic policy on a separate env reset with
``--eval-seed``, true env reward. The result (a JSON file written atomically: a temporary file renamed) has the
evaluations, the final returns, the steps trained the seconds spent training (periodic evaluations left out) and evaluating.
A problem a user can fix (a demos file for another env, too few episodes, a bad settings file) ends the run
with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# Python puts this script's folder first on the path, and benchmarks/imitation.py (rlgen's imitation benchmark)
# would then shadow the library's `imitation` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

SETTINGS_KEYS = ("demo_batch_size", "gen_replay_buffer_capacity", "n_disc_updates_per_round", "n_envs", "rollout",
                 "ppo", "policy")
DEMO_KEYS = ("env_id", "obs", "acts", "lengths")


class Problem(Exception):
    """A problem a user can fix; one line."""


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- demos ---------------------------------------------------------------------------------------------------
def load_trajectories(path: Path, env_id: str, episodes: int) -> list:
    """The first ``episodes`` episodes of the demos file as the library's Trajectory objects."""
    from imitation.data.types import Trajectory

    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in DEMO_KEYS if key not in data.files]
            if missing:
                raise Problem(f"{path} is no demos file of this benchmark: it lacks {missing[0]!r}")
            recorded, obs, acts, lengths = str(data["env_id"]), data["obs"], data["acts"], data["lengths"]
    except (OSError, ValueError) as exc:
        raise Problem(f"cannot read demos {path}: {exc}".splitlines()[0]) from None
    if recorded != env_id:
        raise Problem(f"{path} holds demos of {recorded}, not of {env_id}")
    if not 1 <= episodes <= len(lengths):
        raise Problem(f"{path} holds {len(lengths)} episodes; asked for {episodes}")
    if len(acts) != int(lengths.sum()) or len(obs) != int(lengths.sum()) + len(lengths):
        raise Problem(f"{path}: {len(obs)} observations and {len(acts)} actions do not fit episode lengths "
                      f"summing to {int(lengths.sum())}")
    trajs, o, a = [], 0, 0
    for length in lengths[:episodes].astype(int):
        trajs.append(Trajectory(obs=obs[o:o + length + 1], acts=acts[a:a + length], infos=None, terminal=True))
        o, a = o + length + 1, a + length
    return trajs


def save_converted(trajs: list, path: Path) -> None:
    """The Trajectory objects' observations and actions, for a test that they equal rlgen's demos."""
    np.savez(path, obs=np.concatenate([t.obs for t in trajs]), acts=np.concatenate([t.acts for t in trajs]),
             lengths=np.array([len(t.acts) for t in trajs]), terminal=np.array([t.terminal for t in trajs]))


# -- the library's GAIL --------------------------------------------------------------------------------------
def read_settings(path: Path) -> dict[str, Any]:
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Problem(f"cannot read settings {path}: {exc}".splitlines()[0]) from None
    missing = [key for key in SETTINGS_KEYS if key not in settings]
    if missing:
        raise Problem(f"settings {path} lack {missing[0]!r}")
    if settings["rollout"] % settings["n_envs"]:
        raise Problem(f"settings {path}: rollout {settings['rollout']} is no multiple of n_envs {settings['n_envs']}")
    return dict(settings)


def build(settings: dict[str, Any], env_id: str, trajs: list, seed: int, log_dir: Path) -> tuple[Any, dict]:
    """The library's GAIL trainer with ``settings``; returns it and the settings as used (the demo batch
    capped at the demos' transitions: the library refuses a batch larger than the demos)."""
    import torch
    from imitation.algorithms.adversarial.gail import GAIL
    from imitation.data.wrappers import RolloutInfoWrapper
    from imitation.policies.base import FeedForward32Policy, NormalizeFeaturesExtractor
    from imitation.rewards.reward_nets import BasicRewardNet, NormalizedRewardNet
    from imitation.util import logger as imit_logger
    from imitation.util.networks import RunningNorm
    from imitation.util.util import make_vec_env
    from stable_baselines3 import PPO

    torch.manual_seed(seed)
    venv = make_vec_env(env_id, rng=np.random.default_rng(seed), n_envs=settings["n_envs"], parallel=False,
                        post_wrappers=[lambda env, _: RolloutInfoWrapper(env)])
    policy_kwargs: dict[str, Any] = {"features_extractor_class": NormalizeFeaturesExtractor,
                                     "features_extractor_kwargs": {"normalize_class": RunningNorm}}
    if settings["policy"] == "MlpPolicy":
        policy: Any = "MlpPolicy"
        policy_kwargs["net_arch"] = settings["net_arch"]
        policy_kwargs["activation_fn"] = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[settings["activation"]]
    elif settings["policy"] == "FeedForward32Policy":
        policy = FeedForward32Policy
    else:
        raise Problem(f"unknown policy {settings['policy']!r}; MlpPolicy or FeedForward32Policy")
    gen_algo = PPO(policy, venv, n_steps=settings["rollout"] // settings["n_envs"], policy_kwargs=policy_kwargs,
                   seed=seed, device="cpu", verbose=0, **settings["ppo"])
    reward_net = NormalizedRewardNet(
        BasicRewardNet(venv.observation_space, venv.action_space, normalize_input_layer=RunningNorm),
        normalize_output_layer=RunningNorm)
    transitions = sum(len(t.acts) for t in trajs)
    used = {**settings, "demo_batch_size": min(settings["demo_batch_size"], transitions)}
    trainer = GAIL(demonstrations=trajs, demo_batch_size=used["demo_batch_size"], venv=venv, gen_algo=gen_algo,
                   reward_net=reward_net, n_disc_updates_per_round=settings["n_disc_updates_per_round"],
                   gen_replay_buffer_capacity=settings["gen_replay_buffer_capacity"],
                   allow_variable_horizon=True,  # gymnasium's MuJoCo tasks end early when the body falls
                   log_dir=str(log_dir), custom_logger=imit_logger.configure(str(log_dir), ["csv"]))
    return trainer, used


def evaluate(policy: Any, env_id: str, episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` episodes of the deterministic policy, the first reset with ``seed``."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed if i == 0 else None)
            done, total = False, 0.0
            while not done:
                action, _ = policy.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    trajs = load_trajectories(Path(args.demos), args.env_id, args.episodes)
    if args.convert_only:
        save_converted(trajs, Path(args.convert_only))
        return {}
    settings = read_settings(Path(args.settings))
    log_dir = Path(args.out).with_suffix("")
    trainer, used = build(settings, args.env_id, trajs, args.seed, log_dir)
    round_steps = trainer.gen_train_timesteps
    if args.total_steps < round_steps:
        raise Problem(f"--total-steps {args.total_steps} is less than one round of {round_steps} env steps")
    evaluations: list[dict[str, Any]] = []
    timing = {"eval": 0.0, "next": args.eval_every}

    def callback(round_num: int) -> None:
        steps = (round_num + 1) * round_steps
        if steps < timing["next"]:
            return
        start = time.perf_counter()
        returns = evaluate(trainer.policy, args.env_id, args.eval_episodes, args.eval_seed)
        evaluations.append({"timesteps": steps, "mean_return": float(np.mean(returns)),
                            "std_return": float(np.std(returns))})
        while timing["next"] <= steps:
            timing["next"] += args.eval_every
        timing["eval"] += time.perf_counter() - start

    start = time.perf_counter()
    trainer.train(args.total_steps, callback=callback)
    train_seconds = time.perf_counter() - start - timing["eval"]
    steps = (args.total_steps // round_steps) * round_steps
    final = evaluate(trainer.policy, args.env_id, args.final_eval_episodes, args.eval_seed)
    return {"env_id": args.env_id, "demo_episodes": args.episodes, "seed": args.seed, "timesteps": steps,
            "total_steps": args.total_steps, "train_seconds": train_seconds, "eval_seconds": timing["eval"],
            "steps_per_second": steps / (train_seconds + timing["eval"]),
            "settings": used, "evaluations": evaluations, "final_returns": final,
            "eval_seed": args.eval_seed, "versions": versions()}


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("imitation", "gymnasium", "stable_baselines3", "torch", "mujoco",
                                             "numpy")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", required=True, help="the benchmark's demos file (.npz)")
    parser.add_argument("--env-id", required=True, help="the Gymnasium id to train on (the demos' own)")
    parser.add_argument("--episodes", type=int, required=True, help="use the first N demo episodes")
    parser.add_argument("--convert-only", metavar="NPZ", help="write the Trajectory objects' obs/acts there, stop")
    parser.add_argument("--settings", help="JSON file of the library's GAIL settings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--total-steps", type=int, default=1_000_000)
    parser.add_argument("--eval-every", type=int, default=25_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--final-eval-episodes", type=int, default=20)
    parser.add_argument("--eval-seed", type=int, default=12_345)
    parser.add_argument("--out", help="the result's JSON file")
    args = parser.parse_args(argv)
    if not args.convert_only and not (args.settings and args.out):
        parser.error("--settings and --out are needed to train")
    try:
        result = run(args)
    except Problem as exc:
        print(f"imitation_library_runner.py: {exc}", file=sys.stderr)
        return 2
    if result:
        write_json_atomic(Path(args.out), result)
        print(f"{args.env_id} {args.episodes} demos seed {args.seed}: {np.mean(result['final_returns']):.1f} "
              f"after {result['timesteps']:,} steps ({result['steps_per_second']:.0f} steps/s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Steps/s of rlgen's run loop beside plain SB3 with the same hyperparameters, measured in one run.

    python benchmarks/throughput.py [--env Ant-v5] [--steps 20000] [--repeats 3]

Rows alternate (plain, rlgen, ..., plain, rlgen, ...) so all see the same machine load; the table
reports the median over repeats and the ratio to plain SB3. rlgen's loop is timed without periodic
evaluation (evaluation steps are extra env steps, reported in a row of their own) and with its
default checkpointing; the VIME row adds the VIME wrapper with its default settings (information
gain for every transition, 500 BNN minibatch steps per rollout). Writes benchmarks/results/throughput.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from stable_baselines3.common.utils import set_random_seed  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

from rlgen.agents import train  # noqa: E402
from rlgen.agents.config import algo_class, build_config  # noqa: E402
from rlgen.agents.run import make_vec_env, resolve_hyperparams  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "throughput.md"


def plain_sb3(config) -> float:
    """The same algorithm, hyperparameters and env stack built by hand with SB3 alone."""
    torch.set_num_threads(1)
    set_random_seed(config.seed)
    venv = VecNormalize(make_vec_env(config), gamma=config.hyperparams.get("gamma", 0.99))
    model = algo_class(config.algo)("MlpPolicy", venv, seed=config.seed, device="cpu", verbose=0,
                                    **resolve_hyperparams(config))
    start = time.perf_counter()
    model.learn(config.total_steps)
    elapsed = time.perf_counter() - start
    venv.close()
    return model.num_timesteps / elapsed


def rlgen_loop(config, out: Path, name: str) -> float:
    config.out_dir, config.run_name = str(out), name
    result = train(config)
    return result.timesteps / result.learn_time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Ant-v5")
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/ alone")
    args = parser.parse_args(argv)

    def config(**fields):
        return build_config(args.algo, args.env, total_steps=args.steps, progress_bar=False, **fields)

    rows: dict[str, list[float]] = {"plain SB3": [], "rlgen train (no eval)": [], "rlgen train (preset eval)": [],
                                    "rlgen train + VIME (no eval)": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            rows["plain SB3"].append(plain_sb3(config()))
            rows["rlgen train (no eval)"].append(rlgen_loop(config(eval_freq=0), Path(tmp), f"noeval{i}"))
            rows["rlgen train (preset eval)"].append(rlgen_loop(config(), Path(tmp), f"eval{i}"))
            rows["rlgen train + VIME (no eval)"].append(
                rlgen_loop(config(eval_freq=0, bonus="vime"), Path(tmp), f"vime{i}"))
            print(f"repeat {i + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rows.items()),
                  flush=True)
    base = statistics.median(rows["plain SB3"])
    command = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Throughput of rlgen's run loop",
        "",
        f"`{command.strip()}` — {args.algo.upper()} on {args.env}, {args.steps} steps per run, "
        f"median of {args.repeats} interleaved repeats, 1 torch thread, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}.",
        "",
        "| loop | steps/s (median) | runs | ratio to plain SB3 |",
        "|---|---|---|---|",
    ]
    for name, values in rows.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med:.0f} | {', '.join(f'{v:.0f}' for v in values)} | {med / base:.3f} |")
    lines += [
        "",
        "steps/s = training steps / seconds inside SB3's `learn()`. For rlgen that includes its callbacks",
        "(checkpoints, learning-curve plots and, in the 'preset eval' row, the periodic evaluation episodes of",
        "the preset's eval_freq/eval_episodes when the budget reaches eval_freq); the final evaluation after",
        "`learn()` is not counted.",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

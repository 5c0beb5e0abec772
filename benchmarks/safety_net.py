"""Seeded reference runs that a refactoring must leave unchanged.

Runs a handful of small, seeded jobs through the command line (PPO+VIME and the density bonus on sparse
MountainCar, TRPO on Hopper, GAIL, InfoGAIL and behaviour cloning from demos of that TRPO run, one
generative model) and fingerprints what they leave behind: the evaluation history (eval.csv without its wall
times), a sha256 of every tensor of the saved policy, of each reward wrapper's state and of the generative
model's checkpoint, and the returns of `rlgen eval`.

    python benchmarks/safety_net.py record --out /tmp/net_before --json before.json
    python benchmarks/safety_net.py record --out /tmp/net_after --json after.json
    python benchmarks/safety_net.py compare before.json after.json

``compare`` prints every entry that differs and exits 1 if any does. The runs take ~2 minutes on one core.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

RLGEN = [sys.executable, "-c", "import sys; from rlgen.cli import main; sys.exit(main())"]

# name -> (arguments after `rlgen`, the run directory they leave, relative to --out)
CASES: list[tuple[str, list[str], str]] = [
    ("ppo-vime", ["train", "--algo", "ppo", "--env", "rlgen/SparseMountainCar-v0", "--bonus", "vime",
                  "--steps", "8192", "--seed", "3", "--run-name", "ppo-vime", "-p", "eval_freq=4096",
                  "-p", "bonus_kwargs.model_steps=50"], "ppo-vime"),
    ("ppo-density", ["train", "--algo", "ppo", "--env", "rlgen/SparseMountainCar-v0", "--bonus", "density",
                     "--steps", "8192", "--seed", "4", "--run-name", "ppo-density", "-p", "eval_freq=4096"],
     "ppo-density"),
    ("trpo-hopper", ["train", "--algo", "trpo", "--env", "Hopper-v5", "--steps", "8192", "--seed", "5",
                     "--run-name", "trpo-hopper", "-p", "eval_freq=4096", "-p", "eval_episodes=2"], "trpo-hopper"),
    ("gail", ["imitate", "--demos", "{out}/demos.npz", "--algo", "ppo", "--steps", "8192", "--seed", "6",
              "--run-name", "gail", "-p", "eval_freq=4096", "-p", "eval_episodes=2", "-p", "n_steps=1024"], "gail"),
    ("infogail", ["imitate", "--demos", "{out}/demos.npz", "--method", "infogail", "--n-modes", "2", "--algo", "ppo",
                  "--steps", "4096", "--seed", "7", "--run-name", "infogail", "-p", "eval_freq=4096",
                  "-p", "eval_episodes=2", "-p", "n_steps=1024"], "infogail"),
    ("bc", ["imitate", "--demos", "{out}/demos.npz", "--method", "bc", "--algo", "ppo", "--seed", "8",
            "--run-name", "bc", "-p", "eval_episodes=2", "-p", "bc_kwargs.gradient_steps=300"], "bc"),
]
DEMOS = ["demos", "collect", "{out}/trpo-hopper", "-n", "2", "--out", "{out}/demos.npz", "--no-progress"]
GEN = ["gen", "train", "vae", "--steps", "60", "--seed", "2", "--out", "{out}", "--run-name", "gen-vae", "--no-progress",
       "--checkpoint-every", "60", "--sample-every", "1000", "--log-every", "20"]
EVALS = [("eval-ppo-vime", ["eval", "{out}/ppo-vime", "--episodes", "3", "--seed", "0", "--json"]),
         ("eval-gail", ["eval", "{out}/gail", "--episodes", "2", "--seed", "1", "--json"])]


def tensor_digest(value: Any) -> Any:
    """sha256 of every tensor (and array) in a nested state, other values as they are."""
    if isinstance(value, torch.Tensor):
        return hashlib.sha256(value.detach().contiguous().cpu().numpy().tobytes()).hexdigest()[:16]
    if isinstance(value, dict):
        return {str(k): tensor_digest(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [tensor_digest(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    return value if isinstance(value, (int, str, bool, type(None))) else repr(value)


def run_fingerprint(run_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    eval_csv = run_dir / "eval.csv"
    if eval_csv.is_file():
        with eval_csv.open() as handle:
            out["eval"] = [[row["timesteps"], row["mean_return"], row["std_return"]] for row in csv.DictReader(handle)]
    model = run_dir / "model.zip"
    if model.is_file():
        with zipfile.ZipFile(model) as archive:
            policy = torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)
        out["policy"] = tensor_digest(policy)
    for state in sorted(run_dir.glob("*.pt")):
        out[state.name] = tensor_digest(torch.load(state, weights_only=True))
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.is_file():
        out["checkpoint.pt"] = tensor_digest(torch.load(checkpoint, weights_only=True)["model"])
    return out


def rlgen(args: list[str], out: Path) -> str:
    args = [a.replace("{out}", str(out)) for a in args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*RLGEN, *args], cwd=out, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"rlgen {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def record(out: Path) -> dict[str, Any]:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    fingerprints: dict[str, Any] = {}
    for name, args, run_dir in CASES:
        if name == "gail":  # the imitation cases learn from demos of the TRPO run
            rlgen(DEMOS, out)
        rlgen([*args, "--out", str(out), "--no-progress"], out)
        fingerprints[name] = run_fingerprint(out / run_dir)
        print(f"{name}: done", flush=True)
    rlgen(GEN, out)
    fingerprints["gen-vae"] = run_fingerprint(out / "gen-vae")
    for name, args in EVALS:
        fingerprints[name] = {k: v for k, v in json.loads(rlgen(args, out)).items() if k != "run_dir"}
    return fingerprints


def differences(before: Any, after: Any, where: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted((set(before) | set(after)) - {"run_dir"}):  # where the runs were made
            if key not in before or key not in after:
                found.append(f"{where}/{key}: only in {'after' if key not in before else 'before'}")
            else:
                found += differences(before[key], after[key], f"{where}/{key}")
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for i, (b, a) in enumerate(zip(before, after, strict=True)) for d in differences(b, a, f"{where}[{i}]")]
    return [] if before == after else [f"{where}: {before!r} -> {after!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run the reference jobs and write their fingerprints")
    rec.add_argument("--out", required=True, help="scratch folder for the runs (emptied first)")
    rec.add_argument("--json", required=True, help="where the fingerprints go")
    cmp = sub.add_parser("compare", help="list what differs between two fingerprint files")
    cmp.add_argument("before")
    cmp.add_argument("after")
    args = parser.parse_args(argv)
    if args.command == "record":
        fingerprints = record(Path(args.out).absolute())
        Path(args.json).write_text(json.dumps(fingerprints, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
        return 0
    found = differences(json.loads(Path(args.before).read_text()), json.loads(Path(args.after).read_text()))
    for line in found:
        print(line)
    print(f"{len(found)} difference(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

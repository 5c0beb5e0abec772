"""Running the benchmark scripts as a user runs them, for the tests of their run archives."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run(script, *args):
    """``python benchmarks/<script>.py ARGS`` with this checkout's rlgen; returns the finished process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)


def ok(script, *args):
    """Run a script that must succeed; returns its standard output's lines."""
    done = run(script, *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout.splitlines()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tables(report):
    """The report's table rows: its numbers (the command and the date around them differ)."""
    return [line for line in report.read_text().splitlines() if line.startswith("|")]


def run_dirs(folder):
    return [path for path in folder.iterdir() if path.is_dir()]  # not the run locks beside them

"""The package versions a run's numbers depend on, recorded with results (result.json, demo records)."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

VERSIONED_PACKAGES = ("numpy", "torch", "mujoco", "gymnasium", "stable-baselines3", "sb3-contrib")


def package_versions() -> dict[str, str]:
    """The versions of Python and of the packages a rollout's numbers depend on, for a record."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str | bool]:
    """rlgen's version and, when it runs from a git checkout, the commit and whether ``rlgen/`` differs from
    it (``dirty``): a result's figures belong to the code that made them, and a fix after a run changes what
    the same settings would give. Taken once per process (a training session takes it as it starts: the code
    it imported, not a commit made while it trains)."""
    from importlib import metadata

    try:
        info: dict[str, str | bool] = {"rlgen": metadata.version("rlgen")}
    except metadata.PackageNotFoundError:
        info = {}
    package = Path(__file__).resolve().parent
    try:
        # this very file tracked by the checkout's git: not an installed copy inside some other repository
        subprocess.run(["git", "-C", str(package), "ls-files", "--error-unmatch", "--", Path(__file__).name],
                       capture_output=True, timeout=10, check=True)
        commit = subprocess.run(["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(package), "status", "--porcelain", "--", "."],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout (an installed wheel)
        return info
    info["commit"] = commit
    info["dirty"] = bool(status.strip())
    return info

"""The package versions a run's numbers depend on, recorded with results (result.json, demo records)."""

from __future__ import annotations

import platform

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

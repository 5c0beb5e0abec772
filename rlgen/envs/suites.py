"""Third-party sparse-reward tasks, made through their own packages: the DeepMind Control Suite (through
shimmy) and Gymnasium-Robotics' mazes. rlgen re-implements none of them.

The packages are an optional extra (``pip install 'rlgen[suites]'``) and are imported only when an id of
theirs is used: :func:`ensure_registered` imports the package that registers an id (shimmy registers every
``dm_control/<domain>-<task>-v0`` on import, Gymnasium-Robotics every ``PointMaze_*``/``AntMaze_*``), so
``import rlgen`` stays as fast as before and works without them. A missing package is
:class:`SuiteNotInstalled`, which names the extra.

rlgen sets one default of its own, under whatever the caller passes (:func:`make_kwargs`): the mazes get
``continuing_task=False``, so an episode ends when the agent reaches the goal. Gymnasium-Robotics' default
keeps the episode running (the agent can collect the reward on every later step of the 300 or 700); a
sparse-reward task that ends at its goal is the shape of rlgen's own (SparseMountainCar) and of the success
rates its benchmark reports. ``env_kwargs.continuing_task=true`` restores the package's behaviour.

Their observations are dicts of float64 arrays; the run's env stack flattens them
(:func:`rlgen.agents.envstack.make_env_fn`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import gymnasium

__all__ = ["EXTRA_HINT", "SOURCES", "SUITE_TASKS", "Source", "SuiteNotInstalled", "SuiteTask",
           "ensure_registered", "make_kwargs", "source_for"]

EXTRA_HINT = "pip install 'rlgen[suites]'"


class SuiteNotInstalled(ImportError):
    """An env id of a third-party suite whose package cannot be imported (the suites extra is missing)."""


@dataclass(frozen=True)
class Source:
    """A package that registers a family of env ids with Gymnasium when imported."""

    name: str
    """What `rlgen envs` shows as the source."""
    modules: tuple[str, ...]
    """Imported in this order to register the ids; all must import."""
    ids: re.Pattern[str]
    """The env ids it registers that rlgen makes available (matched from the start of the id)."""
    default_kwargs: Mapping[str, Any]
    """rlgen's defaults for these ids, under the caller's env kwargs."""

    def installed(self) -> bool:
        """Whether every module can be found, without importing any (dm_control takes a second)."""
        return all(_findable(module) for module in self.modules)


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


DM_CONTROL = Source(
    "dm-control via shimmy",
    # dm_control first: shimmy registers the dm_control/* ids only if it can import dm_control, and
    # silently skips them otherwise, which would leave a missing dm_control looking like an unknown id
    ("dm_control", "shimmy"),
    re.compile(r"dm_control/"),
    MappingProxyType({}),
)
ROBOTICS_MAZES = Source(
    "gymnasium-robotics",
    ("gymnasium_robotics",),
    re.compile(r"(PointMaze|AntMaze)_"),
    MappingProxyType({"continuing_task": False}),
)
SOURCES: tuple[Source, ...] = (DM_CONTROL, ROBOTICS_MAZES)


@dataclass(frozen=True)
class SuiteTask:
    """One third-party task rlgen lists and tests: its id, reward rule, horizon and source package."""

    id: str
    reward: str
    episode_steps: int
    source: Source

    @property
    def default_kwargs(self) -> Mapping[str, Any]:
        return self.source.default_kwargs


# Reward rules as the packages define them (dm_control/suite/*.py, gymnasium_robotics/envs/maze/maze_v4.py);
# tests/test_suites.py checks the cartpole and PointMaze ones on hand-set states.
SUITE_TASKS: tuple[SuiteTask, ...] = (
    SuiteTask("dm_control/cartpole-swingup_sparse-v0",
              "1 while |cart x| <= 0.25 and cos(pole angle) >= 0.995, else 0; never ends early", 1000, DM_CONTROL),
    SuiteTask("dm_control/acrobot-swingup_sparse-v0",
              "1 while the arm's tip is within 0.2 of the target straight above, else 0; never ends early",
              1000, DM_CONTROL),
    SuiteTask("dm_control/pendulum-swingup-v0",
              "1 while the pole is within 8 degrees of upright, else 0; never ends early", 1000, DM_CONTROL),
    SuiteTask("PointMaze_UMaze-v3",
              "1 within 0.45 of the goal (x, y), else 0; ends at the goal (rlgen's continuing_task=False)",
              300, ROBOTICS_MAZES),
    SuiteTask("AntMaze_UMaze-v5",
              "1 when the Ant's torso (x, y) is within 0.45 of the goal, else 0; ends at the goal "
              "(rlgen's continuing_task=False)", 700, ROBOTICS_MAZES),
)


def source_for(env_id: str) -> Source | None:
    """The package that registers ``env_id``, or None for ids rlgen does not import anything for."""
    for source in SOURCES:
        if source.ids.match(env_id):
            return source
    return None


# Packages that register Gymnasium ids when imported (Gymnasium 1.x no longer imports them itself): an id no
# source claims and nothing has registered yet is looked for in those installed, e.g. FetchReach-v4
# (gymnasium-robotics), ALE/Pong-v5 (ale-py), MiniGrid-Empty-5x5-v0 (minigrid).
REGISTRARS = ("gymnasium_robotics", "ale_py", "minigrid")


def ensure_registered(env_id: str) -> None:
    """Import the package that registers ``env_id`` if it is a suite id not registered yet; an id no suite
    claims that is not registered either is looked for in the installed :data:`REGISTRARS`. Raises
    :class:`SuiteNotInstalled` when a suite's package cannot be imported."""
    if env_id in gymnasium.registry:
        return
    source = source_for(env_id)
    if source is None:
        for module in REGISTRARS:
            if env_id in gymnasium.registry:
                return
            if not _findable(module):
                continue
            try:
                _import_quietly(module)
                if module == "ale_py":  # ale-py registers its ids only when asked
                    gymnasium.register_envs(sys.modules[module])
            except Exception:  # a broken install of a package unrelated to the id: the id stays unknown
                continue
        return
    for module in source.modules:
        try:
            _import_quietly(module)
        except ImportError as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise SuiteNotInstalled(f"{env_id} needs the suites extra: {EXTRA_HINT} "
                                    f"(cannot import {module}: {reason})") from None


# Gymnasium-Robotics 1.4.2 prints a notice about its AdroitHand tasks' rewards to stderr on import, in every
# process that imports it (each benchmark worker): it concerns tasks rlgen does not offer, so it is dropped.
_DROPPED_NOTICE = "AdroitHand"
# dm_control imports glfw, which warns on a machine without a display: rlgen never renders through glfw (videos
# use MUJOCO_GL=egl or osmesa), so the warning says nothing about a run and is dropped too.
_DROPPED_WARNING = r".*The DISPLAY environment variable is missing"


def _import_quietly(module: str) -> None:
    if module in sys.modules and sys.modules[module] is not None:
        return
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_DROPPED_WARNING)
            importlib.import_module(module)
    finally:  # whatever else the import said (a warning, the start of a failure) still reaches the user
        for line in captured.getvalue().splitlines(keepends=True):
            if _DROPPED_NOTICE not in line:
                sys.stderr.write(line)


def make_kwargs(env_id: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``gym.make`` keywords for ``env_id``: rlgen's defaults for a suite id, with ``kwargs`` over them."""
    source = source_for(env_id)
    defaults = source.default_kwargs if source is not None else {}
    return {**defaults, **kwargs}

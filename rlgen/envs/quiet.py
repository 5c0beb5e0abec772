"""Gymnasium's MuJoCo models compiled without MuJoCo's deprecation warning for ``settotalmass``.

Gymnasium's half_cheetah.xml sets the compiler attribute ``settotalmass``, which MuJoCo >= 4 reports as
deprecated on stderr (and in MUJOCO_LOG.TXT in the working directory) on every model compile, each time
an env is made: thousands of lines in a benchmark's log. The filter drops that one message and passes
every other warning on (to a handler installed before it, or as a Python RuntimeWarning); MuJoCo's
warning hook is global, so it is restored as soon as the model is built.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import gymnasium as gym

DROPPED = "settotalmass"


@contextlib.contextmanager
def quiet_settotalmass() -> Iterator[None]:
    """Drop MuJoCo's 'settotalmass is deprecated' warning while models compile inside the block."""
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def handler(message: str) -> None:
        if DROPPED in message:
            return
        if previous is not None:
            previous(message)
        else:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` with :func:`quiet_settotalmass` around it. rlgen's -v0 tasks are not out of date where
    a -v1 exists (v0 is the easy variant, v1 follows VIME's code), so Gymnasium's "out of date" notice about them
    is dropped too."""
    with quiet_settotalmass(), warnings.catch_warnings():
        if env_id.startswith("rlgen/"):
            warnings.filterwarnings("ignore", message=r".*is out of date\. You should consider upgrading",
                                    category=DeprecationWarning)
        return gym.make(env_id, **kwargs)

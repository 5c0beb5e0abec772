"""What a reward wrapper sees of one VecEnv step: (s, a, s') with the true s' at episode ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def observations_and_next(obs: np.ndarray, dones: np.ndarray, infos: Sequence[dict[str, Any]]
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(the observations flattened per env, the true next observations).

    At an episode end SB3's VecEnv has already reset that env, so ``obs`` holds the reset observation;
    the observation the transition really ended in is ``info["terminal_observation"]``.
    """
    flat = np.asarray(obs, dtype=np.float32).reshape(len(dones), -1)
    next_obs = flat.copy()
    for i, done in enumerate(dones):
        if done and infos[i].get("terminal_observation") is not None:
            next_obs[i] = np.asarray(infos[i]["terminal_observation"], dtype=np.float32).reshape(-1)
    return flat, next_obs

"""Rewards learned from demonstrations: GAIL as an SB3 VecEnv wrapper, behaviour cloning, demo storage.

>>> from rlgen.imitation import GAIL, load_demos   # doctest: +SKIP
>>> PPO("MlpPolicy", VecNormalize(GAIL(venv, load_demos("demos.npz", subsample=20)))).learn(200_000)   # doctest: +SKIP
"""

from rlgen.imitation.bc import behaviour_cloning
from rlgen.imitation.demos import (
    DemoError,
    Trajectories,
    Trajectory,
    collect_demos,
    from_minari_episodes,
    load_demos,
    save_demos,
    to_minari_episodes,
)
from rlgen.imitation.discriminator import REWARD_KINDS, Discriminator
from rlgen.imitation.gail import GAIL, GAILCallback

__all__ = [
    "GAIL", "REWARD_KINDS", "DemoError", "Discriminator", "GAILCallback", "Trajectories", "Trajectory",
    "behaviour_cloning", "collect_demos", "from_minari_episodes", "load_demos", "save_demos",
    "to_minari_episodes",
]

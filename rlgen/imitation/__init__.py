"""Rewards learned from demonstrations: GAIL and InfoGAIL as SB3 VecEnv wrappers, behaviour cloning, demo storage.

>>> from rlgen.imitation import GAIL, load_demos   # doctest: +SKIP
>>> PPO("MlpPolicy", VecNormalize(GAIL(venv, load_demos("demos.npz", subsample=20)))).learn(200_000)   # doctest: +SKIP
"""

from rlgen.imitation.bc import behaviour_cloning, clone_demos
from rlgen.imitation.demos import (
    DemoError,
    Trajectories,
    Trajectory,
    collect_demos,
    from_minari_episodes,
    load_demos,
    mix_demos,
    save_demos,
    to_minari_episodes,
)
from rlgen.imitation.discriminator import REWARD_KINDS, Discriminator
from rlgen.imitation.gail import GAIL, GAILCallback
from rlgen.imitation.infogail import AppendCode, InfoGAIL, InfoGAILCallback

__all__ = [
    "GAIL", "REWARD_KINDS", "AppendCode", "DemoError", "Discriminator", "GAILCallback", "InfoGAIL",
    "InfoGAILCallback", "Trajectories", "Trajectory", "behaviour_cloning", "clone_demos", "collect_demos",
    "from_minari_episodes", "load_demos", "mix_demos", "save_demos", "to_minari_episodes",
]

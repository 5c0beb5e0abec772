"""Reward bonuses for exploration, as SB3 VecEnv wrappers: VIME, the density-model (pseudo-count) bonus and RND."""

from rlgen.exploration.density import DensityBonus
from rlgen.exploration.rnd import RND
from rlgen.exploration.rollout_bonus import ModelBonus, RolloutBonus, RolloutBonusCallback
from rlgen.exploration.vime import VIME, VIMECallback

BONUS_WRAPPERS: dict[str, type[RolloutBonus]] = {"vime": VIME, "density": DensityBonus, "rnd": RND}
"""The wrapper class of each ``RunConfig.bonus`` name."""

__all__ = ["BONUS_WRAPPERS", "RND", "VIME", "DensityBonus", "ModelBonus", "RolloutBonus", "RolloutBonusCallback",
           "VIMECallback"]

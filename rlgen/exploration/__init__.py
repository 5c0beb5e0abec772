"""Reward bonuses for exploration, as SB3 VecEnv wrappers: VIME and the density-model (pseudo-count) bonus."""

from rlgen.exploration.density import DensityBonus
from rlgen.exploration.rollout_bonus import RolloutBonus, RolloutBonusCallback
from rlgen.exploration.vime import VIME, VIMECallback

BONUS_WRAPPERS: dict[str, type[RolloutBonus]] = {"vime": VIME, "density": DensityBonus}
"""The wrapper class of each ``RunConfig.bonus`` name."""

__all__ = ["BONUS_WRAPPERS", "VIME", "DensityBonus", "RolloutBonus", "RolloutBonusCallback", "VIMECallback"]

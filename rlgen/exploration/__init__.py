"""Reward bonuses for exploration, as SB3 VecEnv wrappers (VIME first; density-model bonuses next)."""

from rlgen.exploration.vime import VIME, VIMECallback

__all__ = ["VIME", "VIMECallback"]

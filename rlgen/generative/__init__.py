"""Generative models; each an nn.Module with loss(); sample()/log_prob() where defined.

One :class:`Trainer` serves them all (the contract is in :mod:`rlgen.generative.base`).
"""

from rlgen.generative.bnn import BNN
from rlgen.generative.trainer import Trainer, TrainingDiverged, evaluate

__all__ = ["BNN", "Trainer", "TrainingDiverged", "evaluate"]

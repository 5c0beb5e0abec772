"""Generative models; each an nn.Module with loss(); sample()/log_prob() where defined.

One :class:`Trainer` serves them all (the contract is in :mod:`rlgen.generative.base`).
"""

from rlgen.generative.bnn import BNN
from rlgen.generative.dcgan import DCGAN
from rlgen.generative.infogan import InfoGAN
from rlgen.generative.made import MADE
from rlgen.generative.pixelcnn import PixelCNN
from rlgen.generative.pixelrnn import PixelRNN
from rlgen.generative.ssgan import SemiSupervisedGAN
from rlgen.generative.trainer import Trainer, TrainingDiverged, evaluate
from rlgen.generative.vae import VAE

__all__ = [
    "BNN", "DCGAN", "MADE", "VAE", "InfoGAN", "PixelCNN", "PixelRNN", "SemiSupervisedGAN",
    "Trainer", "TrainingDiverged", "evaluate",
]

"""Generative models; each an nn.Module with loss(); sample()/log_prob() where defined."""

from rlgen.generative.bnn import BNN

__all__ = ["BNN"]

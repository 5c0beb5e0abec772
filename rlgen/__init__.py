"""rlgen: reinforcement learning on Gymnasium in which generative models do real work for the agent."""

__version__ = "0.1.0"

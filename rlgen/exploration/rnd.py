"""Random Network Distillation (Burda et al. 2018) as an SB3 VecEnv wrapper: the baseline rlgen's
generative-model bonuses are measured against.

A fixed, randomly initialised *target* network embeds each next observation ``s'``; a *predictor* network of
the same shape is trained to match it on the states seen so far. Its error is small on states like those it
trained on and large on new ones, so the error is a novelty bonus that falls as a state is visited.

As in the paper:

* observations are standardised by the statistics of the states seen (here: the replay pool's, after each
  rollout; the first rollout by its own) and clipped to ``[-obs_clip, obs_clip]`` (5);
* the intrinsic reward is the squared prediction error (mean over the embedding), divided by a running
  standard deviation of the *intrinsic returns*: per env, ``R <- gamma_int * R + error``, never reset at an
  episode's end (the paper treats the intrinsic reward as non-episodic), and the running variance of those
  returns scales the errors, so the bonus keeps one scale while the errors shrink as the predictor learns;
* the predictor trains on minibatches of recent states (the replay pool), the target never does.

The paper also trains a second value head for the intrinsic reward with its own discount. rlgen's bonuses all
go into the rollout buffer's reward, beside the env reward, through the shared callback, so that VIME, the
density bonus and RND are compared under one and the same agent; a separate head would change the agent, not
the bonus. ``beta`` scales the normalised bonus (its size relative to the env reward is the knob to tune).

>>> rnd = RND(make_vec_env("MountainCarContinuous-v0", n_envs=4), beta=0.1)   # doctest: +SKIP
>>> PPO("MlpPolicy", rnd).learn(50_000, callback=rnd.callback)                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from rlgen.exploration.rollout_bonus import ModelBonus, model_steps_renamed, standardisation


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [nn.Linear(width, size), nn.LeakyReLU()]
        width = size
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class RND(ModelBonus):
    """Records (s, a, s') of every step; its :attr:`callback` adds ``beta`` x the normalised prediction error of
    a random target network's embedding of s' to each rollout's rewards (env rewards reported by SB3 stay the
    true ones).

    :param venv: a VecEnv with a Box observation space and Box, Discrete (one-hot), MultiDiscrete or MultiBinary
        actions.
    :param beta: weight of the normalised bonus.
    :param hidden: hidden layer widths of the target and the predictor.
    :param embedding: width of the target's embedding.
    :param obs_clip: standardised observations are clipped to ``[-obs_clip, obs_clip]`` (the paper: 5).
    :param gamma_int: discount of the intrinsic returns whose running std scales the errors (the paper: 0.99).
    :param replay_size: recent states kept for training the predictor.
    :param min_replay: the predictor trains once the pool holds this many states.
    :param model_steps: Adam minibatch steps on the predictor per ``update_every`` transitions (it learns once per
        window of that many; see :mod:`rlgen.exploration.rollout_bonus`). ``updates_per_rollout`` is its old name
        (deprecated).
    :param batch_size: predictor minibatch size.
    :param learning_rate: the predictor's Adam step size.
    :param mode: ``rollout`` (default) or ``step`` (off-policy agents; see :mod:`rlgen.exploration.rollout_bonus`).
    :param update_every: transitions per window: the model learns once per window, in either mode.
    :param seed: decides both networks' initial weights and the minibatches.
    """

    state_file = "rnd.pt"
    state_name = "RND"
    log_prefix = "rnd"

    def __init__(
        self,
        venv: VecEnv,
        *,
        beta: float = 0.1,
        hidden: tuple[int, ...] | list[int] = (64, 64),
        embedding: int = 32,
        obs_clip: float = 5.0,
        gamma_int: float = 0.99,
        replay_size: int = 100_000,
        min_replay: int = 256,
        model_steps: int = 100,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        mode: str = "rollout",
        update_every: int = 2048,
        seed: int = 0,
        updates_per_rollout: int | None = None,
    ):
        model_steps = model_steps_renamed(RND, model_steps, updates_per_rollout)
        super().__init__(venv, replay_size=replay_size, min_replay=min_replay,
                         model_steps=model_steps, batch_size=batch_size, seed=seed, clip=obs_clip,
                         mode=mode, update_every=update_every)
        if not beta >= 0:
            raise ValueError(f"RND beta must be >= 0, got {beta}")
        if not 0 <= gamma_int < 1:
            raise ValueError(f"RND gamma_int must be in [0, 1), got {gamma_int}")
        if int(embedding) < 1 or any(int(h) < 1 for h in hidden):
            raise ValueError(f"RND widths must be positive integers, got hidden {list(hidden)}, embedding {embedding}")
        self.beta, self.gamma_int = float(beta), float(gamma_int)
        with self.seeded():  # the seed decides both networks
            self.target = _mlp(self.obs_dim, tuple(int(h) for h in hidden), int(embedding))
            self.predictor = _mlp(self.obs_dim, tuple(int(h) for h in hidden), int(embedding))
        self.target.requires_grad_(False)
        self.set_model(self.predictor, learning_rate)
        self.return_rms = RunningMeanStd(shape=())
        self.intrinsic_returns = np.zeros(self.num_envs)

    # -- the bonus -------------------------------------------------------------------------------
    def prediction_error(self, next_obs: np.ndarray) -> np.ndarray:
        """The predictor's squared error (mean over the embedding) on each row of standardised, clipped ``s'``."""
        if self.stats is None:  # before any training: the first rollout's own statistics
            self.stats = standardisation(next_obs, next_obs)
        x = self.standardise_targets(next_obs)
        with torch.no_grad():
            error = (self.predictor(x) - self.target(x)).square().mean(dim=1)
        return error.numpy().astype(np.float64)

    def compute_bonus(self, inputs: np.ndarray, targets: np.ndarray,
                      record: bool = True) -> tuple[np.ndarray, dict[str, float]]:
        """``beta`` x each transition's prediction error over the running std of the intrinsic returns; with
        ``record`` (a whole rollout, rows ordered step by step over the envs) the returns and their statistics
        move on first."""
        error = self.prediction_error(targets)
        if record and len(error) % self.num_envs == 0:
            returns = np.empty((len(error) // self.num_envs, self.num_envs))
            for t, row in enumerate(error.reshape(-1, self.num_envs)):
                self.intrinsic_returns = self.gamma_int * self.intrinsic_returns + row
                returns[t] = self.intrinsic_returns
            self.return_rms.update(returns.reshape(-1))
        scale = float(np.sqrt(self.return_rms.var + 1e-8)) if self.return_rms.count > 1 else 1.0
        bonus = self.beta * error / scale
        return bonus, {"rnd/prediction_error_mean": float(error.mean()), "rnd/bonus_mean": float(bonus.mean()),
                       "rnd/intrinsic_return_std": scale}

    def update_model(self, inputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Add the rollout's states to the pool, refresh the statistics from it and train the predictor."""
        self.pool.add_inputs(inputs, targets)
        self.stats = self.pool_statistics()
        if not self.ready_to_train():
            return {}

        def objective(inputs: np.ndarray, next_obs: np.ndarray) -> torch.Tensor:
            x = self.standardise_targets(next_obs)
            return (self.predictor(x) - self.target(x)).square().mean()

        return {"rnd/predictor_loss": self.fit(objective, self.steps_for(len(inputs)))}

    # -- saving ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target.state_dict(), "predictor": self.predictor.state_dict(),
                "return_rms": {"mean": float(self.return_rms.mean), "var": float(self.return_rms.var),
                               "count": float(self.return_rms.count)},
                "running_returns": torch.from_numpy(self.intrinsic_returns.copy()),
                **self.pool_state(), **self.recording_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.target.load_state_dict(state["target"])
            self.predictor.load_state_dict(state["predictor"])
        except RuntimeError as exc:
            raise ValueError(f"RND state does not fit these networks: {exc}".splitlines()[0]) from None
        self.return_rms.mean = float(state["return_rms"]["mean"])
        self.return_rms.var = float(state["return_rms"]["var"])
        self.return_rms.count = float(state["return_rms"]["count"])
        returns = state["running_returns"].numpy()
        if returns.shape != self.intrinsic_returns.shape:
            raise ValueError(f"RND state holds intrinsic returns of {returns.shape[0]} envs; this env has "
                             f"{self.num_envs}")
        self.intrinsic_returns = returns.astype(np.float64)
        self.load_pool_state(state)
        self.load_recording_state(state)

"""VIME: variational information maximising exploration (Houthooft et al. 2016) as an SB3 VecEnv wrapper.

The agent is rewarded for transitions that teach it most about the environment's dynamics: the bonus
of (s, a, s') is the information gain KL(q_new || q_old) of a Bayesian dynamics model
(:class:`rlgen.generative.BNN`) updated on that transition.

Information gain is only cheap in a batch (one transition alone costs about as much as a rollout of them:
benchmarks/results/throughput.md, "Information gain per transition"), so the wrapper records every transition and its :attr:`VIME.callback` adds the
bonus for the whole rollout at its end, then recomputes returns and advantages and trains the BNN on
its replay pool. All bonuses of one rollout therefore come from one fixed model, as in the original.
The bonus goes into the rollout buffer, i.e. on top of the rewards the agent learns from: behind
VecNormalize those are the normalised env rewards, so ``eta`` is relative to that scale. The recording, the
callback and the replay pool are shared with the density-model bonus (:mod:`rlgen.exploration.rollout_bonus`).

>>> from stable_baselines3 import PPO                       # doctest: +SKIP
>>> from stable_baselines3.common.env_util import make_vec_env   # doctest: +SKIP
>>> vime = VIME(make_vec_env("MountainCarContinuous-v0", n_envs=4), eta=0.1)   # doctest: +SKIP
>>> PPO("MlpPolicy", vime).learn(50_000, callback=vime.callback)   # doctest: +SKIP
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv

from rlgen.exploration.rollout_bonus import ModelBonus, RolloutBonusCallback, model_steps_renamed
from rlgen.generative import BNN

METHODS = ("second_order", "exact")


class VIME(ModelBonus):
    """Records (s, a, s') of every step; its :attr:`callback` adds ``eta`` x normalised information gain
    to each rollout's rewards (env rewards reported by SB3 stay the true ones).

    :param venv: a VecEnv with a Box observation space and Box, Discrete (one-hot), MultiDiscrete or MultiBinary
        actions.
    :param eta: weight of the normalised information gain in the reward.
    :param eta_final: with ``eta_decay_steps``, the weight falls linearly from ``eta`` to this over the first
        ``eta_decay_steps`` env transitions (all envs counted), then stays there: explore early, then let the
        env reward dominate. ``None`` (default): ``eta`` throughout.
    :param eta_decay_steps: length of that decay, in env transitions.
    :param hidden: hidden layer sizes of the BNN (the original: one layer of 32).
    :param replay_size: transitions kept for training the BNN.
    :param min_replay: the BNN trains once the pool holds this many transitions.
    :param model_steps: Adam minibatch steps on the BNN per ``update_every`` transitions (500 per 2,048: the BNN
        learns once per window of ``update_every`` transitions, a rollout of the PPO and TRPO presets; see
        :mod:`rlgen.exploration.rollout_bonus`). ``updates_per_rollout`` is its old name (deprecated).
    :param batch_size: BNN minibatch size (the original: 10).
    :param method: ``second_order`` (batched, default) or ``exact`` (a few optimiser steps per transition,
        the original's default; slow, kept as the reference).
    :param median_window: the information gains of a rollout are divided by the mean of the medians of the
        last ``median_window`` windows (the current one, so far, included). A window is what the BNN learns from at
        once: one rollout of ``update_every`` transitions or more, or shorter rollouts gathered until they hold
        that many (a rollout of 16,384 transitions is one window with one median).
    :param max_kl: information gains are clipped to [0, max_kl].
    :param clip: the BNN's standardised inputs [s, a] and targets s' are clipped to ``[-clip, clip]`` (5, RND's
        observation clip); ``None``: no clip (the original).
    :param std_floor: the replay pool's standard deviations that standardise them are at least this (the
        original: none). This is where the scale of the gains is made. On SparseAnt-v0 (PPO, 60k steps, seed 100)
        the top 1% of transitions held 73% of the total gain under the original's standardisation, and in every
        one of them an input column farthest out was a contact force (heavy-tailed impacts, up to 9 standard
        deviations out); dividing by the median gain then paid a rollout's largest bonus ~970 x ``eta``.
        Clipped at 5 (floor 0.01) the top 1% held 53% and the largest bonus was ~95 x ``eta``, the mean
        1.3 x ``eta`` (benchmarks/results/vime_gain_tail.md). ``clip=None, std_floor=0``: the original's.
    :param freeze_scale_at: after this many env transitions (all envs counted) the normaliser's scale stays what
        it is then, so the bonus falls as the BNN's gains do, as the density and RND bonuses fall with visits.
        ``None`` (default, the original): never; the bonus then keeps its size however much the BNN has learnt (its
        mean per step stays about ``eta`` x the gains' mean over their median, benchmarks/results/bonus_scale.md).
        Freeze after the BNN's first training, not at it: its first windows' gains, of an untrained BNN, are
        hundreds of times its later ones.
    :param max_normalised: normalised information gains are clipped to [0, max_normalised]; ``None``
        (default, the original): no clip. A cap on the symptom (a few huge bonuses) rather than on its cause.
    :param mode: ``rollout`` (default; on-policy agents) or ``step`` (off-policy agents such as SAC: the bonus
        is added at step time, normalised by the mean median of the last ``median_window`` update windows,
        and the BNN trains every ``update_every`` transitions; see :mod:`rlgen.exploration.rollout_bonus`).
    :param update_every: transitions per window: the BNN learns once per window, in either mode.
    """

    def __init__(
        self,
        venv: VecEnv,
        *,
        eta: float = 0.1,
        eta_final: float | None = None,
        eta_decay_steps: int = 0,
        hidden: tuple[int, ...] | list[int] = (32,),
        prior_sd: float = 0.5,
        likelihood_sd: float = 5.0,
        n_samples: int = 10,
        replay_size: int = 100_000,
        min_replay: int = 500,
        model_steps: int = 500,
        batch_size: int = 10,
        learning_rate: float = 1e-3,
        method: str = "second_order",
        step_size: float = 0.01,
        median_window: int = 10,
        max_kl: float = 1000.0,
        max_normalised: float | None = None,
        freeze_scale_at: int | None = None,
        clip: float | None = 5.0,
        std_floor: float = 0.01,
        mode: str = "rollout",
        update_every: int = 2048,
        seed: int = 0,
        updates_per_rollout: int | None = None,
    ):
        model_steps = model_steps_renamed(VIME, model_steps, updates_per_rollout)
        super().__init__(venv, replay_size=replay_size, min_replay=min_replay,
                         model_steps=model_steps, batch_size=batch_size, seed=seed, clip=clip,
                         mode=mode, update_every=update_every, std_floor=std_floor)
        if method not in METHODS:
            raise ValueError(f"unknown VIME method {method!r}; choose one of: {', '.join(METHODS)}")
        for name, value in (("eta", eta), ("max_kl", max_kl), ("eta_final", 0 if eta_final is None else eta_final),
                            ("eta_decay_steps", eta_decay_steps)):
            if not value >= 0:
                raise ValueError(f"VIME {name} must be >= 0, got {value}")
        if (eta_final is None) != (int(eta_decay_steps) == 0):
            raise ValueError("VIME eta_final and eta_decay_steps go together: give both (a decay) or neither")
        self.eta_final, self.eta_decay_steps = eta_final, int(eta_decay_steps)
        for name, value in (("median_window", median_window), ("n_samples", n_samples)):
            if int(value) < 1:
                raise ValueError(f"VIME {name} must be a positive integer, got {value}")
        self.eta, self.method, self.step_size, self.max_kl = float(eta), method, float(step_size), float(max_kl)
        if freeze_scale_at is not None and (isinstance(freeze_scale_at, bool) or not isinstance(freeze_scale_at, int)
                                            or freeze_scale_at < 1):
            raise ValueError(f"VIME freeze_scale_at must be a positive number of transitions or None, got "
                             f"{freeze_scale_at!r}")
        self.freeze_scale_at = freeze_scale_at
        if max_normalised is not None and not max_normalised > 0:
            raise ValueError(f"VIME max_normalised must be > 0 (or None), got {max_normalised}")
        self.max_normalised = None if max_normalised is None else float(max_normalised)
        with self.seeded():  # the seed decides the BNN's initial weights, not the caller's torch RNG
            self.bnn = BNN(self.obs_dim + self.act_dim, self.obs_dim, hidden=tuple(hidden), prior_sd=prior_sd,
                           likelihood_sd=likelihood_sd, n_samples=n_samples)
        self.set_model(self.bnn, learning_rate, fused=True)
        self.medians: deque[float] = deque(maxlen=median_window)
        """The medians of the last ``median_window`` closed windows' information gains."""
        self._open_gains: list[np.ndarray] = []  # the gains of the window not closed yet
        self.callback = VIMECallback(self)

    # -- the model -------------------------------------------------------------------------------
    def _standardise(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stats is None:  # the BNN has not trained yet: its gains are not paid as they are (see normalise)
            return torch.from_numpy(inputs), torch.from_numpy(targets)
        return self.standardise_inputs(inputs), self.standardise_targets(targets)

    def information_gain(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Clipped information gain of each transition (rows of ``inputs`` = [s, a], ``targets`` = s')."""
        x, y = self._standardise(inputs, targets)
        with self.own_noise():
            gain = self.bnn.information_gain(x, y, method=self.method, step_size=self.step_size)
        return np.clip(gain.detach().numpy().astype(np.float64), 0.0, self.max_kl)

    def compute_bonus(self, inputs: np.ndarray, targets: np.ndarray,
                      record: bool = True) -> tuple[np.ndarray, dict[str, float]]:
        """``eta`` x the normalised information gain of each transition, and the gains' statistics to log."""
        trained = self.stats is not None  # set by the BNN's first training (before it: raw inputs, see _standardise)
        gains = self.information_gain(inputs, targets)
        eta = self.current_eta()
        bonus = eta * self.normalise(gains, record=record, kept=trained)
        return bonus, {"vime/info_gain_mean": float(gains.mean()), "vime/info_gain_median": float(np.median(gains)),
                       "vime/bonus_mean": float(bonus.mean()), "vime/eta": eta}

    def current_eta(self) -> float:
        """``eta``, or along its decay: the weight at the env transitions seen so far."""
        if self.eta_final is None:
            return self.eta
        progress = min(1.0, self.num_steps * self.num_envs / self.eta_decay_steps)
        return self.eta + (self.eta_final - self.eta) * progress

    def update_model(self, inputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        elbo = self.train_model(inputs, targets)
        return {} if elbo is None else {"vime/bnn_elbo": elbo}

    def normalise(self, gains: np.ndarray, record: bool = True, kept: bool = True) -> np.ndarray:
        """Divide by the mean of the medians of the last ``median_window`` windows: the closed ones and, with
        ``record``, the current one with these gains added (a window closes once it holds ``update_every``
        gains, so a rollout of 2,048 is a window by itself: the mean of the last rollouts' medians). Without
        ``record`` (step mode's per-step calls) by the closed windows' alone. From ``freeze_scale_at`` transitions
        on, by the closed windows' alone, for good (nothing more is recorded).

        ``kept=False`` (gains of a BNN that has not trained yet, on unstandardised inputs): the window's median
        scales its own gains but is not kept for later windows. Kept, it was hundreds of times the trained BNN's
        and set the scale of the next ``median_window - 1`` windows, paying them a few percent of the bonus
        (VIME's original pays no bonus for its first iteration and keeps none of its gains)."""
        if self.scale_frozen:
            scale = float(np.mean(self.medians))
        elif record:
            self._open_gains.append(np.asarray(gains))
            current = float(np.median(np.concatenate(self._open_gains) if len(self._open_gains) > 1 else gains))
            keep = (self.medians.maxlen or 1) - 1  # the closed windows that count beside the open one
            closed = list(self.medians)[max(0, len(self.medians) - keep):] if keep > 0 else []
            scale = float(np.mean([*closed, current]))
            if sum(len(part) for part in self._open_gains) >= self.update_every:
                if kept:
                    self.medians.append(current)
                self._open_gains.clear()
        else:
            if not self.medians:  # nothing closed yet: these gains start it
                self.medians.append(float(np.median(gains)))
            scale = float(np.mean(self.medians))
        normalised = gains / scale if scale > 0 else gains
        return normalised if self.max_normalised is None else np.minimum(normalised, self.max_normalised)

    @property
    def scale_frozen(self) -> bool:
        """Whether the normaliser's scale is fixed now: ``freeze_scale_at`` transitions seen, a window closed."""
        return (self.freeze_scale_at is not None and bool(self.medians)
                and self.num_steps * self.num_envs >= self.freeze_scale_at)

    def train_model(self, inputs: np.ndarray, targets: np.ndarray) -> float | None:
        """Add the rollout to the replay pool and take Adam steps on the ELBO (the BNN's noise from the wrapper's
        own generator); returns the last ELBO."""
        self.pool.add_inputs(inputs, targets)
        if not self.ready_to_train():
            return None
        self.stats = self.pool_statistics()
        n_batches = max(1, self.pool.size // self.batch_size)
        # Every minibatch and Monte-Carlo draw of this training up front: one gather and standardisation of the
        # rows, one draw of noise per layer, then the steps owed on slices of them.
        steps, batch = self.steps_for(len(inputs)), self.batch_size
        if steps == 0:
            return None
        x, y = self._standardise(*self.pool.rows(self.rng.integers(0, self.pool.size, steps * batch)))
        generator = self.noise_generator()
        noise = [torch.randn((steps, self.bnn.n_samples, batch, width), generator=generator)
                 for width in self.bnn.layer_widths]
        assert self.optimizer is not None
        negative_log_likelihood = self.bnn.elbo_steps(x.view(steps, batch, -1), y.view(steps, batch, -1), noise,
                                                      self.optimizer, n_batches=n_batches)
        with torch.no_grad():
            elbo = -float(negative_log_likelihood + self.bnn.kl_to_prior() / n_batches)
        self.check_finite_loss(elbo)
        return elbo

    # -- saving ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        open_gains = np.concatenate(self._open_gains) if self._open_gains else np.zeros(0)
        return {"bnn": self.bnn.state_dict(), "medians": list(self.medians),
                "open_gains": torch.from_numpy(open_gains.astype(np.float64)), **self.pool_state(),
                **self.recording_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bnn.load_state_dict(state["bnn"])
        self.load_pool_state(state)
        self.medians.clear()
        self.medians.extend(float(m) for m in state["medians"])
        open_gains = state.get("open_gains")
        self._open_gains = [open_gains.numpy()] if open_gains is not None and len(open_gains) else []
        self.load_recording_state(state)

    state_file = "vime.pt"
    state_name = "VIME"
    log_prefix = "vime"


class VIMECallback(RolloutBonusCallback):
    """At each rollout's end: bonus into the rollout buffer, returns/advantages recomputed, BNN trained
    (the callback every rollout-end bonus shares, under the name VIME has always exported)."""

    @property
    def vime(self) -> VIME:
        assert isinstance(self.wrapper, VIME)
        return self.wrapper

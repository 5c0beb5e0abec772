"""Count-based exploration with a density model (Bellemare et al. 2016; Ostrovski et al. 2017) as an SB3 VecEnv wrapper.

A density model that has seen a state often gives it a high probability, and one more update on it changes
that probability little. The *prediction gain* ``PG = log p'(x) - log p(x)``, where ``p'`` is the model after
one update on ``x``, measures this; the *pseudo-count* ``N = 1 / (exp(PG) - 1)`` turns it into "how often has
this been seen" (exact for a count-based empirical distribution), and the bonus is ``beta / sqrt(N + 0.01)``.
A PG <= 0 (the update did not make ``x`` likelier) means an unbounded count and no bonus.

What ``x`` is (``target``):

* ``"state"``: the next observation ``s'``; the bonus rewards visiting rarely seen states.
* ``"transition"``: ``s'`` under a conditional model ``p(s' | s, a)`` whose context is the standardised
  ``[s, a]``; the prediction gain of a dynamics model is a surprise bonus, larger where the dynamics are
  poorly known or have changed. With the BNN as the model this is VIME's mechanism with a different measure of
  the update (the rise of the likelihood instead of the KL of the posterior).

The models are rlgen's density models (``model`` a name or an instance): the autoregressive ones
(:class:`~rlgen.generative.PixelCNN`, a MADE for vector observations; :class:`~rlgen.generative.PixelRNN`, an LSTM
over the dimensions), exact discrete likelihoods; the :class:`~rlgen.generative.VAE`, whose ``log_prob`` is its
one-sample ELBO, a stochastic lower bound (its gains are noisier); and, for ``"transition"``, the
:class:`~rlgen.generative.BNN` (its Monte-Carlo Gaussian log-likelihood of the standardised ``s'``).

Discretisation: the discrete models score ``n_levels`` levels per dimension. With ``bounds="data"`` (the default
for vector observations) dimension d maps ``[low_d, high_d]`` onto the levels, where low/high are the
``bounds_quantile`` and ``1 - bounds_quantile`` quantiles of the replay pool's next observations, widened by
``bounds_margin`` of their range on each side (so states somewhat beyond everything seen still get levels of
their own, and rare outliers such as a terminal observation do not squash everything else into one level);
values outside are clipped to the edge levels. The bounds are recomputed from the pool after every rollout,
before the model trains, so every rollout is scored with the bounds the model was trained under (the first
rollout, before any training, with its own). ``bounds="space"`` uses the observation space's finite
low/high instead (the default for image observations, C x H x W).

The update of the prediction gain is one step on the example alone, from the model that was trained on the
replay pool after the previous rollout, computed for the whole rollout at once with ``torch.func``
(:func:`rlgen.generative.updates.batched_prediction_gains`; the loop of real optimiser steps it replaces is the
primitive VIME's exact information gain uses). ``prediction_step="adam"`` (default) scales the gradient per
parameter as the model's Adam optimiser does (:func:`rlgen.generative.updates.adam_step`), ``"sgd"`` takes a
plain SGD step. The difference matters: for a softmax output the gradient of ``log p(x)`` hardly depends on how
likely ``x`` is, so after plain SGD a rare state gains barely more than a common one, while the scaled step
moves the parameters only rare inputs use much further. On the tests' toy task (states of log-likelihood
about -2 and -6 nats under well-trained models) the median bonus of the rare states came out 1.9 to 3.8
times the common ones' with the scaled step and 1.2 to 1.7 times with SGD. Pseudo-counts scale as one over
``prediction_lr``, and counts far below 0.01 all get about the ``10 beta`` ceiling, which no longer tells states
apart: choose it so that most counts stay above that (``density/pseudo_count_mean`` shows them).

The model itself trains with Adam on minibatches of the pool, once per window of ``update_every`` transitions, as
VIME's BNN does (:mod:`rlgen.exploration.rollout_bonus`); the bonus
goes into the rollout buffer through :attr:`DensityBonus.callback` (shared with VIME), so behind VecNormalize
``beta`` is relative to the normalised reward scale. Logged: ``density/bonus_mean``,
``density/pseudo_count_mean`` (over the transitions with PG > 0), ``density/prediction_gain_mean``,
``density/uncounted_fraction`` (PG <= 0), ``density/model_nll`` (the rollout's mean ``-log p(x)`` before training
on it, in nats; a bound for the VAE), ``density/train_loss`` and ``rollout/ep_intrinsic_mean``.

Cost: benchmarks/results/throughput.md ("Density-model bonus cost") measures the bonus of each default model
beside plain PPO.

>>> from stable_baselines3 import PPO                       # doctest: +SKIP
>>> from stable_baselines3.common.env_util import make_vec_env   # doctest: +SKIP
>>> bonus = DensityBonus(make_vec_env("MountainCarContinuous-v0", n_envs=4), "pixelcnn", beta=0.05)  # doctest: +SKIP
>>> PPO("MlpPolicy", bonus).learn(50_000, callback=bonus.callback)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from torch import Tensor, nn

from rlgen.exploration.rollout_bonus import ModelBonus, model_steps_renamed, standardisation
from rlgen.generative import BNN, VAE, PixelCNN, PixelRNN
from rlgen.generative.updates import adam_step, auto_chunk, batched_prediction_gains

MODELS = ("pixelcnn", "pixelrnn", "vae", "made", "bnn")
TARGETS = ("state", "transition")
BOUNDS = ("data", "space")
PREDICTION_STEPS = ("adam", "sgd")
# Pseudo-counts scale as one over the step size; with these, the median counts of the default models on
# HalfCheetah-v5 after five rollouts of random actions were between 0.4 and 15, well above the 0.01 where the
# bonus saturates.
DEFAULT_PREDICTION_LR = {"adam": 1e-5, "sgd": 1e-3}

# The 0.01 of Bellemare et al.'s bonus beta / sqrt(N + 0.01): it caps the bonus of a never-seen x at 10 beta.
_COUNT_FLOOR = 0.01


def pseudo_count(gain: np.ndarray) -> np.ndarray:
    """``1 / (exp(PG) - 1)`` per prediction gain; ``inf`` where ``PG <= 0`` (the update did not make x likelier)."""
    gain = np.asarray(gain, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(gain > 0, 1.0 / np.expm1(np.maximum(gain, 0.0)), np.inf)


def count_bonus(count: np.ndarray, beta: float) -> np.ndarray:
    """``beta / sqrt(N + 0.01)``: 10 beta for an unseen x, falling as one over the square root of its count."""
    return beta / np.sqrt(np.asarray(count, dtype=np.float64) + _COUNT_FLOOR)


def _density_log_prob(model: nn.Module, x: Tensor, context: Tensor | None) -> Tensor:
    return model.log_prob_unchecked(x, context)  # type: ignore[operator]


def _bnn_log_prob(model: nn.Module, x: Tensor, context: Tensor | None) -> Tensor:
    """A BNN as a conditional density: ``log p(s' = x | [s, a] = context)``."""
    return model.log_likelihood(context, x)  # type: ignore[operator]


# Standardised inputs are clipped as VecNormalize clips observations (rlgen.reward_wrapper.standardise says why).
_CLIP = 10.0


def default_model(name: str, input_shape: tuple[int, ...], n_levels: int, context_dim: int, obs_dim: int,
                  act_dim: int, **overrides: Any) -> nn.Module:
    """The small model ``name`` builds for an observation of ``input_shape`` (``overrides`` replace its settings).

    Sized so that training and the per-rollout prediction gains stay cheap next to MuJoCo-sized env steps:
    vectors get a MADE with one hidden layer of 64 units (``pixelcnn``, ``made``), a 32-unit LSTM
    (``pixelrnn``), a VAE with one hidden layer of 64 and an 8-dimensional latent (``vae``), or VIME's BNN with
    one hidden layer of 32 and a likelihood sd of 0.5 (``bnn``); images (C, H, W) get two small masked-convolution
    or Row LSTM layers.
    """
    if name not in MODELS:
        raise ValueError(f"unknown density model {name!r}; choose one of: {', '.join(MODELS)}")
    if name == "bnn":
        # A tighter likelihood than VIME's (sd 5 on standardised s'): VIME measures the posterior's KL, which a
        # flat likelihood keeps well-behaved, but a prediction gain needs log p(s') to respond to the error.
        return BNN(obs_dim + act_dim, obs_dim, **{"hidden": (32,), "likelihood_sd": 0.5, **overrides})
    image = len(input_shape) == 3
    if name == "made":
        input_shape, image = (int(np.prod(input_shape)),), False
    if image:
        channels = input_shape[0] * max(1, 16 // input_shape[0])
        if name == "pixelcnn":
            settings: dict[str, Any] = {"channels": channels, "n_layers": 2, "first_kernel": 3}
            return PixelCNN(input_shape, n_levels, **{**settings, "context_dim": context_dim, **overrides})
        if name == "pixelrnn":
            settings = {"hidden": channels, "n_layers": 1, "first_kernel": 3}
            return PixelRNN(input_shape, n_levels, **{**settings, "context_dim": context_dim, **overrides})
        settings = {"latent_dim": 16, "hidden": (128,)}
    else:
        if name in ("pixelcnn", "made"):
            return PixelCNN(input_shape, n_levels, **{"channels": 64, "n_layers": 2, "context_dim": context_dim,
                                                       **overrides})
        if name == "pixelrnn":
            return PixelRNN(input_shape, n_levels, **{"hidden": 32, "n_layers": 1, "context_dim": context_dim,
                                                       **overrides})
        settings = {"latent_dim": max(2, min(8, input_shape[0])), "hidden": (64,)}
    return VAE(input_shape, **{**settings, "likelihood": "categorical", "n_levels": n_levels,
                               "context_dim": context_dim, **overrides})


class DensityBonus(ModelBonus):
    """Records (s, a, s') of every step; its :attr:`callback` adds ``beta / sqrt(N + 0.01)`` to each rollout's
    rewards, N the pseudo-count of a density model's prediction gain (env rewards reported by SB3 stay the
    true ones).

    :param venv: a VecEnv with a Box observation space and Box, Discrete (one-hot), MultiDiscrete or MultiBinary
        actions.
    :param model: ``"pixelcnn"`` (default), ``"pixelrnn"``, ``"vae"``, ``"made"`` or ``"bnn"`` (a small model
        sized for the observation, see :func:`default_model`), or an instance of one of these classes built for
        it: input shape ``(obs_dim,)`` (or the image shape) and ``context_dim`` 0 for ``"state"``,
        ``obs_dim + act_dim`` for ``"transition"``; a BNN maps ``obs_dim + act_dim`` to ``obs_dim``.
    :param target: ``"state"`` (x = s') or ``"transition"`` (x = s' given [s, a]).
    :param beta: bonus scale; the bonus lies in [0, 10 beta].
    :param n_levels: levels per dimension for a model built from a name (an instance brings its own).
    :param prediction_step: the one-example step of the prediction gain: ``"adam"`` (SGD scaled per parameter by
        the model's Adam statistics) or ``"sgd"``.
    :param prediction_lr: its step size (default 1e-5 for ``"adam"``, 1e-3 for ``"sgd"``). Gains grow with it,
        pseudo-counts shrink as one over it: it sets the count scale.
    :param bounds: ``"data"`` (replay-pool quantiles) or ``"space"`` (the observation space's low/high);
        default ``"space"`` for image observations, ``"data"`` otherwise.
    :param bounds_quantile: with ``bounds="data"``, the lower/upper quantile taken as a dimension's range.
    :param bounds_margin: with ``bounds="data"``, that range is widened by this fraction on each side.
    :param model_kwargs: settings replacing :func:`default_model`'s for a model built from a name.
    :param replay_size: transitions kept for training the model (s and s' in the observation space's dtype when it
        is an integer one, e.g. uint8 frames; float32 otherwise).
    :param min_replay: the model trains once the pool holds this many transitions.
    :param model_steps: Adam minibatch steps on the model per ``update_every`` transitions (it learns once per
        window of that many; see :mod:`rlgen.exploration.rollout_bonus`). ``updates_per_rollout`` is its old name
        (deprecated).
    :param batch_size: minibatch size of those steps.
    :param learning_rate: Adam's step size.
    :param chunk: rows per vectorised prediction-gain pass (bounds its memory); default: as many as keep the
        per-example gradients near 24 MB, at most 256 (:func:`rlgen.generative.updates.auto_chunk`).
    :param mode: ``rollout`` (default; on-policy agents) or ``step`` (off-policy agents such as SAC: the bonus
        is added at step time and the model trains every ``update_every`` transitions; see
        :mod:`rlgen.exploration.rollout_bonus`).
    :param update_every: transitions per window: the model learns once per window, in either mode.
    :param seed: fixes the model's initialisation, its minibatches and the noise of stochastic models.
    """

    state_file = "density.pt"
    state_name = "DensityBonus"
    log_prefix = "density"

    def __init__(
        self,
        venv: VecEnv,
        model: str | nn.Module = "pixelcnn",
        *,
        target: str = "state",
        beta: float = 0.05,
        n_levels: int = 16,
        prediction_step: str = "adam",
        prediction_lr: float | None = None,
        bounds: str | None = None,
        bounds_quantile: float = 0.001,
        bounds_margin: float = 0.1,
        model_kwargs: dict[str, Any] | None = None,
        replay_size: int = 100_000,
        min_replay: int = 256,
        model_steps: int = 200,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        chunk: int | None = None,
        mode: str = "rollout",
        update_every: int = 2048,
        seed: int = 0,
        updates_per_rollout: int | None = None,
    ):
        model_steps = model_steps_renamed(DensityBonus, model_steps, updates_per_rollout)
        super().__init__(venv, replay_size=replay_size, min_replay=min_replay,
                         model_steps=model_steps, batch_size=batch_size, seed=seed, clip=_CLIP,
                         mode=mode, update_every=update_every)
        if target not in TARGETS:
            raise ValueError(f"unknown DensityBonus target {target!r}; choose one of: {', '.join(TARGETS)}")
        if prediction_step not in PREDICTION_STEPS:
            raise ValueError(f"unknown DensityBonus prediction_step {prediction_step!r}; choose one of: "
                             f"{', '.join(PREDICTION_STEPS)}")
        prediction_lr = DEFAULT_PREDICTION_LR[prediction_step] if prediction_lr is None else prediction_lr
        image = len(self.obs_shape) == 3
        bounds = bounds if bounds is not None else ("space" if image else "data")
        if bounds not in BOUNDS:
            raise ValueError(f"unknown DensityBonus bounds {bounds!r}; choose one of: {', '.join(BOUNDS)}")
        for name, value in (("beta", beta), ("prediction_lr", prediction_lr), ("bounds_margin", bounds_margin)):
            if not value >= 0:
                raise ValueError(f"DensityBonus {name} must be >= 0, got {value}")
        if not 0 <= bounds_quantile < 0.5:
            raise ValueError(f"DensityBonus bounds_quantile must be in [0, 0.5), got {bounds_quantile}")
        if chunk is not None and int(chunk) < 1:
            raise ValueError(f"DensityBonus chunk must be a positive integer, got {chunk}")
        if int(n_levels) < 2:
            raise ValueError(f"DensityBonus n_levels must be at least 2, got {n_levels}")
        self.target, self.beta = target, float(beta)
        self.prediction_step, self.prediction_lr = prediction_step, float(prediction_lr)
        self.bounds, self.bounds_quantile, self.bounds_margin = bounds, float(bounds_quantile), float(bounds_margin)
        context_dim = self.obs_dim + self.act_dim if target == "transition" else 0
        if isinstance(model, str):
            input_shape = self.obs_shape if image else (self.obs_dim,)
            with self.seeded():
                model = default_model(model, input_shape, n_levels, context_dim, self.obs_dim, self.act_dim,
                                      **(model_kwargs or {}))
        elif model_kwargs:
            raise ValueError("DensityBonus model_kwargs are for a model built from a name, not an instance")
        self.model = self._checked_model(model, context_dim)
        self.chunk = auto_chunk(self.model) if chunk is None else int(chunk)
        self.is_bnn = isinstance(self.model, BNN)
        self._log_prob = _bnn_log_prob if self.is_bnn else _density_log_prob
        self.set_model(self.model, learning_rate)
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None
        if bounds == "space":
            space = venv.observation_space
            assert isinstance(space, spaces.Box)  # checked by RolloutBonus
            low, high = np.asarray(space.low, np.float64).ravel(), np.asarray(space.high, np.float64).ravel()
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
                raise ValueError("DensityBonus bounds='space' needs finite observation-space bounds with high > low; "
                                 "use bounds='data'")
            self.low, self.high = low, high

    def _checked_model(self, model: nn.Module, context_dim: int) -> nn.Module:
        """The model, if it can score this env's ``x`` (and context) with the chosen target; else a one-line error."""
        if isinstance(model, BNN):
            if self.target != "transition":
                raise ValueError("the BNN is a dynamics model p(s' | s, a): use it with target='transition' "
                                 "(rlgen train: -p bonus_kwargs.target=transition)")
            if (model.in_dim, model.out_dim) != (self.obs_dim + self.act_dim, self.obs_dim):
                raise ValueError(f"the BNN maps {model.in_dim} -> {model.out_dim}, this env needs "
                                 f"{self.obs_dim + self.act_dim} ([s, a]) -> {self.obs_dim} (s')")
            return model
        if not (isinstance(model, nn.Module) and hasattr(model, "log_prob_unchecked") and hasattr(model, "loss")):
            raise TypeError(f"DensityBonus needs an rlgen density model (PixelCNN, PixelRNN, VAE, BNN) or one of "
                            f"{', '.join(MODELS)}; got {type(model).__name__}")
        shapes = {(self.obs_dim,), self.obs_shape}
        if tuple(model.input_shape) not in shapes:  # type: ignore[arg-type]
            raise ValueError(f"the {type(model).__name__} models inputs of shape {tuple(model.input_shape)}, "  # type: ignore[arg-type]
                             f"this env's observations need {' or '.join(str(s) for s in sorted(shapes))}")
        if model.context_dim != context_dim:
            raise ValueError(f"the {type(model).__name__} has context_dim={model.context_dim}; target "
                             f"{self.target!r} needs {context_dim}")
        return model

    # -- encoding observations for the model -----------------------------------------------------
    def refresh_statistics(self, stats: dict[str, np.ndarray], targets: np.ndarray) -> None:
        """Take ``stats`` (the standardisation of [s, a], and of s' for the BNN) and, with ``bounds="data"``, set
        the discretisation bounds of s' from ``targets`` (the replay pool's, or the first rollout's before any
        training)."""
        self.stats = stats
        if self.bounds != "data" or self.is_bnn:
            return
        low, high = np.quantile(targets, [self.bounds_quantile, 1.0 - self.bounds_quantile], axis=0)
        width = high - low
        # A dimension that never changed gets a range of 1 around its value, so it sits on a middle level.
        width_or_one = np.where(width > 0, width, 1.0)
        self.low = np.where(width > 0, low - self.bounds_margin * width, low - 0.5 * width_or_one)
        self.high = np.where(width > 0, high + self.bounds_margin * width, high + 0.5 * width_or_one)

    def encode(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[Tensor, Tensor | None]:
        """(x, context) for the model: s' as floats in [0, 1] (the BNN: standardised s'), and the standardised
        [s, a] for ``target="transition"`` (else None); standardised values are clipped to [-10, 10]."""
        if self.stats is None:
            raise RuntimeError("DensityBonus.encode before any statistics: call refresh_statistics first")
        context = self.standardise_inputs(inputs) if self.target == "transition" else None
        if self.is_bnn:
            return self.standardise_targets(targets), context
        assert self.low is not None and self.high is not None
        unit = np.clip((targets - self.low) / (self.high - self.low), 0.0, 1.0)
        shape = tuple(self.model.input_shape)  # type: ignore[arg-type]
        return torch.from_numpy(unit.astype(np.float32)).reshape(len(unit), *shape), context

    # -- the bonus -------------------------------------------------------------------------------
    def prediction_gain(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(PG, log p before the step) of each transition (rows of ``inputs`` = [s, a], ``targets`` = s')."""
        if self.stats is None:
            self.refresh_statistics(standardisation(inputs, targets), targets)
        x, context = self.encode(inputs, targets)
        seed = int(torch.randint(0, 2**31, (), generator=self.generator))
        was_training = self.model.training
        self.model.eval()
        try:
            step = adam_step(self.model, self.optimizer, self.prediction_lr) if self.prediction_step == "adam" else None
            gain, log_prob = batched_prediction_gains(self.model, self._log_prob, x, context, lr=self.prediction_lr,
                                                      chunk=self.chunk, seed=seed, step=step)
        finally:
            self.model.train(was_training)
        return gain.numpy().astype(np.float64), log_prob.numpy().astype(np.float64)

    def compute_bonus(self, inputs: np.ndarray, targets: np.ndarray,
                      record: bool = True) -> tuple[np.ndarray, dict[str, float]]:
        """``beta / sqrt(N + 0.01)`` of each transition, and what to log about it (``record`` changes nothing:
        the bonus keeps no running statistic)."""
        gain, log_prob = self.prediction_gain(inputs, targets)
        count = pseudo_count(gain)
        bonus = count_bonus(count, self.beta)
        finite = count[np.isfinite(count)]
        logged = {"density/prediction_gain_mean": float(gain.mean()), "density/bonus_mean": float(bonus.mean()),
                  "density/model_nll": float(-log_prob.mean()),
                  "density/uncounted_fraction": float(1.0 - finite.size / count.size)}
        if finite.size:
            logged["density/pseudo_count_mean"] = float(finite.mean())
        return bonus, logged

    def update_model(self, inputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Add the rollout to the replay pool, refresh the statistics from it, take Adam steps on the model."""
        self.pool.add_inputs(inputs, targets)
        # statistics in blocks, quantiles on the stored s' (no float copy of a pool of frames each rollout)
        self.refresh_statistics(self.pool_statistics(), self.pool.next_obs[:self.pool.size])
        if not self.ready_to_train():
            return {}
        self.model.train()
        n_batches = max(1, self.pool.size // self.batch_size)

        def objective(inputs: np.ndarray, targets: np.ndarray) -> Tensor:
            x, context = self.encode(inputs, targets)
            if self.is_bnn:
                return self.model.loss((context, x), n_batches=n_batches)["loss"]  # type: ignore[operator]
            return self.model.loss(x, context=context)["loss"]  # type: ignore[operator]

        # a VAE's or BNN's noise from the wrapper's seed
        return {"density/train_loss": self.fit(objective, self.steps_for(len(inputs)))}

    # -- saving ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        bounds = {} if self.low is None or self.high is None else {
            "low": torch.from_numpy(np.asarray(self.low, np.float64)),
            "high": torch.from_numpy(np.asarray(self.high, np.float64))}
        return {"model_class": type(self.model).__name__, "target": self.target, "model": self.model.state_dict(),
                "bounds": bounds, **self.pool_state(), **self.recording_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = (state["model_class"], state["target"])
        if saved != (type(self.model).__name__, self.target):
            raise ValueError(f"DensityBonus state is for a {saved[0]} with target {saved[1]!r}, this wrapper has a "
                             f"{type(self.model).__name__} with target {self.target!r}")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:  # parameter names or shapes differ: another model size
            raise ValueError(f"DensityBonus state does not fit this model: {exc}".splitlines()[0]) from None
        self.load_pool_state(state)
        if state["bounds"]:
            self.low, self.high = state["bounds"]["low"].numpy(), state["bounds"]["high"].numpy()
        self.load_recording_state(state)

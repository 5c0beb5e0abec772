"""Discretisation, exact discrete likelihoods, and the parameter snapshot shared by rlgen's density models.

Every density model here sees data as floats in [0, 1] but scores them as ``n_levels`` integer levels, with
``x = level / (n_levels - 1)``; :func:`to_levels` and :func:`from_levels` convert both ways and round-trip
exactly on data made that way (17-level digits, 256-level images, binarised MNIST with 2 levels, discretised RL
observations).

Three output distributions over one value, each parameterised by the ``n_params`` numbers a network emits per
dimension:

* :class:`Categorical`: an ``n_levels``-way softmax (PixelRNN/PixelCNN's default);
* :class:`DiscretizedLogistic`: a mixture of logistics integrated over the bins of each level (PixelCNN++,
  IAF-VAE), fewer parameters than the softmax and smooth across neighbouring levels;
* :class:`Bernoulli`: one logit, for binary data (2 levels) or as a cross-entropy on grey values.

The first two are exact probabilities that sum to one over the levels, so a model's ``log_prob`` is an exact
discrete log-likelihood in nats and bits/dim follow without a dequantisation correction.

:class:`SnapshotMixin` gives every model ``snapshot()``/``restore()`` and ``prediction_gain()``: the
primitive of count-based exploration (Bellemare et al. 2016), where a pseudo-count comes from how much
``log p(x)`` rises after one gradient step on ``x``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.generative import updates

__all__ = [
    "Bernoulli",
    "Categorical",
    "DiscretizedLogistic",
    "Likelihood",
    "SnapshotMixin",
    "from_levels",
    "make_likelihood",
    "to_levels",
]

# Scales below exp(-7) of a bin-width-sized range make the logistic a point mass; clamping keeps the
# log-probability finite (PixelCNN++ uses the same floor).
_MIN_LOG_SCALE = -7.0


def to_levels(x: Tensor, n_levels: int) -> Tensor:
    """Integer levels (int64) of floats in [0, 1]: ``round(x * (n_levels - 1))``, clamped into range."""
    if n_levels < 2:
        raise ValueError(f"n_levels must be at least 2, got {n_levels}")
    return torch.round(x * (n_levels - 1)).clamp(0, n_levels - 1).long()


def from_levels(levels: Tensor, n_levels: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Floats in [0, 1] of integer levels: ``level / (n_levels - 1)``; inverse of :func:`to_levels`."""
    if n_levels < 2:
        raise ValueError(f"n_levels must be at least 2, got {n_levels}")
    return levels.to(dtype) / (n_levels - 1)


class Likelihood(Protocol):
    """An output distribution over one value in [0, 1] with ``n_params`` network outputs per dimension."""

    n_levels: int
    n_params: int

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """Element-wise log-probability (nats) of ``x`` (shape S) under ``params`` (shape S + (n_params,))."""
        ...

    def sample(self, params: Tensor) -> Tensor:
        """One draw per element as floats in [0, 1], shape ``params.shape[:-1]``."""
        ...


class Categorical:
    """An ``n_levels``-way softmax over the levels of one value; ``params`` are the logits."""

    def __init__(self, n_levels: int) -> None:
        if n_levels < 2:
            raise ValueError(f"n_levels must be at least 2, got {n_levels}")
        self.n_levels = n_levels
        self.n_params = n_levels

    def all_log_probs(self, params: Tensor) -> Tensor:
        """Log-probabilities of every level, shape ``params.shape[:-1] + (n_levels,)``."""
        return F.log_softmax(params, dim=-1)

    def log_prob_levels(self, params: Tensor, levels: Tensor) -> Tensor:
        """Log-probability of integer ``levels`` (shape S) under logits ``params`` (S + (n_levels,))."""
        return self.all_log_probs(params).gather(-1, levels.unsqueeze(-1)).squeeze(-1)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self.log_prob_levels(params, to_levels(x, self.n_levels))

    def sample(self, params: Tensor) -> Tensor:
        levels = torch.distributions.Categorical(logits=params).sample()
        return from_levels(levels, self.n_levels, params.dtype)


def _log_sigmoid_difference(upper: Tensor, lower: Tensor) -> Tensor:
    """``log(sigmoid(upper) - sigmoid(lower))`` for ``upper > lower``, without cancellation.

    ``sigmoid(a) - sigmoid(b) = (e^a - e^b) / ((1 + e^a)(1 + e^b))``, whose log is
    ``a + log(1 - e^(b - a)) - softplus(a) - softplus(b)``: every term stays finite when both arguments are far
    out in a tail, where subtracting the two sigmoids would round to zero.
    """
    gap = (upper - lower).clamp_min(1e-12)
    return upper + torch.log(-torch.expm1(-gap)) - F.softplus(upper) - F.softplus(lower)


class DiscretizedLogistic:
    """A mixture of ``n_mix`` logistics, each integrated over the bin of a level (Salimans et al. 2017).

    Levels are placed at ``2 * level / (n_levels - 1) - 1`` in [-1, 1] with bins of half-width
    ``1 / (n_levels - 1)``; the first and last bins extend to -inf and +inf, so the probabilities of all
    levels telescope to exactly one. ``params`` hold ``n_mix`` mixture logits, then ``n_mix`` means, then
    ``n_mix`` log-scales.
    """

    def __init__(self, n_levels: int, n_mix: int = 1) -> None:
        if n_levels < 2:
            raise ValueError(f"n_levels must be at least 2, got {n_levels}")
        if n_mix < 1:
            raise ValueError(f"n_mix must be at least 1, got {n_mix}")
        self.n_levels = n_levels
        self.n_mix = n_mix
        self.n_params = 3 * n_mix

    def log_prob_levels(self, params: Tensor, levels: Tensor) -> Tensor:
        """Log-probability of integer ``levels`` (shape S) under ``params`` (S + (3 * n_mix,))."""
        logit_weights, means, log_scales = params.split(self.n_mix, dim=-1)
        inv_scales = torch.exp(-log_scales.clamp_min(_MIN_LOG_SCALE))
        levels = levels.unsqueeze(-1)
        half_bin = 1.0 / (self.n_levels - 1)
        centres = 2.0 * levels.to(params.dtype) * half_bin - 1.0
        upper = (centres + half_bin - means) * inv_scales
        lower = (centres - half_bin - means) * inv_scales
        inner = _log_sigmoid_difference(upper, lower)
        # The edge bins take the whole tail: log CDF(upper) for the first, log(1 - CDF(lower)) for the last.
        per_component = torch.where(
            levels == 0, F.logsigmoid(upper), torch.where(levels == self.n_levels - 1, F.logsigmoid(-lower), inner)
        )
        return torch.logsumexp(F.log_softmax(logit_weights, dim=-1) + per_component, dim=-1)

    def all_log_probs(self, params: Tensor) -> Tensor:
        """Log-probabilities of every level, shape ``params.shape[:-1] + (n_levels,)``."""
        levels = torch.arange(self.n_levels, device=params.device)
        levels = levels.expand(*params.shape[:-1], self.n_levels)
        return self.log_prob_levels(params.unsqueeze(-2).expand(*levels.shape, self.n_params), levels)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self.log_prob_levels(params, to_levels(x, self.n_levels))

    def sample(self, params: Tensor) -> Tensor:
        # Drawing from the discrete distribution itself (not a continuous logistic rounded) keeps samples
        # consistent with log_prob exactly.
        levels = torch.distributions.Categorical(logits=self.all_log_probs(params)).sample()
        return from_levels(levels, self.n_levels, params.dtype)


class Bernoulli:
    """One logit per value; exact for binary data (levels 0 and 1).

    On grey values in (0, 1) ``log_prob`` is the negative binary cross-entropy, which is not a normalised
    density over [0, 1]; use :class:`Categorical` or :class:`DiscretizedLogistic` for a likelihood there.
    """

    n_levels = 2
    n_params = 1

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return -F.binary_cross_entropy_with_logits(params.squeeze(-1), x, reduction="none")

    def sample(self, params: Tensor) -> Tensor:
        return torch.bernoulli(torch.sigmoid(params.squeeze(-1)))


def make_likelihood(name: str, n_levels: int, n_mix: int = 1) -> Categorical | DiscretizedLogistic | Bernoulli:
    """The likelihood called ``name``: ``"categorical"``, ``"logistic"`` (``n_mix`` components) or ``"bernoulli"``."""
    if name == "categorical":
        return Categorical(n_levels)
    if name == "logistic":
        return DiscretizedLogistic(n_levels, n_mix)
    if name == "bernoulli":
        if n_levels != 2:
            raise ValueError(f"the bernoulli likelihood is for 2 levels, got n_levels={n_levels}")
        return Bernoulli()
    raise ValueError(f"unknown likelihood {name!r}; expected 'categorical', 'logistic' or 'bernoulli'")


class SnapshotMixin:
    """Parameter snapshot/restore and the prediction gain of count-based exploration, for any density model.

    Mixed into an ``nn.Module`` that has ``log_prob(x, context=None) -> (B,)`` and ``log_prob_unchecked(x,
    context)``: the same values without input validation, written with operations ``torch.func.vmap`` can
    batch. Both the loop and the batched gain come from :mod:`rlgen.generative.updates`, the primitive VIME's
    exact information gain uses too.
    """

    def snapshot(self) -> dict[str, Tensor]:
        """A detached copy of every parameter and buffer, for :meth:`restore`."""
        assert isinstance(self, nn.Module)
        return updates.snapshot(self)

    def restore(self, snapshot: dict[str, Tensor]) -> None:
        """Put back the values of a :meth:`snapshot`, in place (optimisers keep pointing at the same tensors)."""
        assert isinstance(self, nn.Module)
        updates.restore(self, snapshot)

    def prediction_gain(self, x: Tensor, *, lr: float = 1e-3, context: Tensor | None = None,
                        method: str = "batched") -> Tensor:
        """``log p'(x_i) - log p(x_i)`` per example, where ``p'`` is the model after one SGD step on ``x_i`` alone.

        Each example is scored against the same starting parameters, which are left unchanged; a pseudo-count
        is then ``1 / (exp(gain) - 1)`` (Bellemare et al. 2016). Plain SGD keeps the step free of optimiser
        state. ``method="batched"`` (default) does all examples at once with ``torch.func``; ``"loop"`` takes
        real optimiser steps one example at a time (the reference). For a VAE ``log_prob`` is a stochastic bound:
        the batched method scores before and after the step with the same noise, the loop does not.
        """
        assert isinstance(self, nn.Module)
        if method not in PREDICTION_GAIN_METHODS:
            raise ValueError(f"unknown prediction-gain method {method!r}; choose one of: "
                             f"{', '.join(PREDICTION_GAIN_METHODS)}")
        model: Any = self  # a density model: log_prob and _check_input come with the class this is mixed into
        model._check_input(x, context)
        was_training = self.training
        self.eval()
        try:
            if method == "batched":
                gains, _ = updates.batched_prediction_gains(self, _unchecked_log_prob, x, context, lr=lr)
                return gains
            with torch.no_grad():
                before = model.log_prob(x, context=context)

            def rows(i: int) -> tuple[Tensor, Tensor | None]:
                return x[i : i + 1], None if context is None else context[i : i + 1]

            after = updates.per_example_updates(
                self, x.shape[0],
                objective=lambda i: -model.log_prob(*rows(i)).sum(),
                measure=lambda i: model.log_prob(*rows(i)).sum(),
                make_optimizer=lambda parameters: torch.optim.SGD(parameters, lr=lr),
            )
            return (after.to(before.dtype) - before).detach()
        finally:
            self.train(was_training)


PREDICTION_GAIN_METHODS = ("batched", "loop")


def _unchecked_log_prob(model: Any, x: Tensor, context: Tensor | None) -> Tensor:
    return model.log_prob_unchecked(x, context)

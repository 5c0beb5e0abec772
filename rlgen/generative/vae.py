"""Variational autoencoder with a diagonal Gaussian or an inverse-autoregressive-flow posterior.

Kingma & Welling (2014) for the model, Kingma et al. (2016, "Improved Variational Inference with Inverse
Autoregressive Flow") for the posterior. The encoder maps ``x`` to the mean and scale of a Gaussian ``z_0``
and, for IAF, to a context vector ``h``. Each IAF step is a :class:`~rlgen.generative.made.MADE` over ``z``
(conditioned on ``h``) producing ``m_t`` and a gate ``sigma_t = sigmoid(s_t)``, and updates

    z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t,     log q(z_t | x) = log q(z_{t-1} | x) - sum log sigma_t,

the numerically stable LSTM-like form of the paper. The Jacobian of each step is triangular because ``m_t``
and ``s_t`` at dimension d depend only on dimensions before d, and the order is reversed between steps.

The prior is ``N(0, I)``; the decoder gives a Bernoulli, categorical or discretised-logistic likelihood per
value (:mod:`rlgen.generative.likelihoods`). With a categorical or logistic likelihood the VAE is a model of
the *discrete* levels, so its negative log-likelihood is directly comparable to PixelCNN's in bits/dim.

``log_prob(x)`` is the ELBO, a stochastic **lower bound** on ``log p(x)``;
:meth:`VAE.importance_weighted_nll` is the k-sample importance-weighted bound of Burda et al. (2016), tighter
as k grows, used to report likelihoods. A conditioning vector (``context_dim > 0``) is concatenated to the
encoder's and the decoder's inputs, making it a conditional VAE ``p(x | c)`` with the prior unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.generative.base import Batch
from rlgen.generative.likelihoods import Bernoulli, SnapshotMixin, from_levels, make_likelihood, to_levels
from rlgen.generative.made import MADE
from rlgen.generative.pixelcnn import check_context, check_input, split_batch

__all__ = ["VAE"]

_LOG_2PI = math.log(2.0 * math.pi)

# Gate pre-activations start near +1.5 so that each IAF step starts close to the identity (sigma ~ 0.8),
# as the paper recommends for stable early training.
_IAF_GATE_BIAS = 1.5


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with ELUs between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


def _standard_normal_log_prob(z: Tensor) -> Tensor:
    return -0.5 * (z.square() + _LOG_2PI).sum(-1)


class VAE(SnapshotMixin, nn.Module):
    """A VAE over (C, H, W) images or (D,) vectors of values in [0, 1], with MLP encoder and decoder.

    Args:
        input_shape: (C, H, W) or (D,).
        latent_dim: size of ``z``.
        hidden: hidden widths of the encoder (the decoder uses them reversed).
        posterior: ``"diagonal"`` Gaussian or ``"iaf"`` (a diagonal Gaussian followed by ``iaf_steps`` IAF steps).
        iaf_steps: number of IAF steps.
        iaf_hidden: hidden widths of each IAF step's MADE; ``context_size`` is the size of the encoder's ``h``.
        likelihood: ``"bernoulli"`` (binary data), ``"categorical"`` or ``"logistic"`` over ``n_levels`` levels.
        n_levels: number of levels (2 for ``"bernoulli"``).
        n_mix: logistic mixture components.
        context_dim: size of an optional conditioning vector.
    """

    def __init__(self, input_shape: Sequence[int], *, latent_dim: int = 32, hidden: Sequence[int] = (256, 256),
                 posterior: str = "diagonal", iaf_steps: int = 2, iaf_hidden: Sequence[int] = (128, 128),
                 context_size: int = 64, likelihood: str = "bernoulli", n_levels: int = 2, n_mix: int = 1,
                 context_dim: int = 0) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) not in (1, 3) or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be (D,) or (C, H, W) with positive sizes, got {self.input_shape}")
        if posterior not in ("diagonal", "iaf"):
            raise ValueError(f"unknown posterior {posterior!r}; expected 'diagonal' or 'iaf'")
        if not hidden:
            raise ValueError("hidden must name at least one layer width")
        self.likelihood = make_likelihood(likelihood, n_levels, n_mix)
        self.n_levels = n_levels
        self.n_dims = math.prod(self.input_shape)
        self.latent_dim = latent_dim
        self.posterior = posterior
        self.context_dim = context_dim
        self.h_dim = context_size if posterior == "iaf" else 0

        self.encoder = _mlp([self.n_dims + context_dim, *hidden])
        self.encoder_head = nn.Linear(hidden[-1], 2 * latent_dim + self.h_dim)
        self.decoder = _mlp([latent_dim + context_dim, *reversed(hidden), self.n_dims * self.likelihood.n_params])
        self.iaf = nn.ModuleList()
        if posterior == "iaf":
            for t in range(iaf_steps):
                # Alternate the order so that every dimension is conditioned on every other one over the steps.
                order = range(latent_dim) if t % 2 == 0 else reversed(range(latent_dim))
                made = MADE(latent_dim, iaf_hidden, out_mult=2, context_dim=self.h_dim, order=list(order))
                with torch.no_grad():
                    made.output_layer.bias.view(latent_dim, 2)[:, 1] += _IAF_GATE_BIAS
                self.iaf.append(made)

    # ----------------------------------------------------------------------------------------------- checks
    def _check_input(self, x: Tensor, context: Tensor | None) -> None:
        check_input(x, self.input_shape, context, self.context_dim)

    def _prepare(self, x: Tensor) -> Tensor:
        """Flattened inputs, snapped to the levels the likelihood scores (unchanged for Bernoulli)."""
        x = x.flatten(1)
        if not isinstance(self.likelihood, Bernoulli):
            x = from_levels(to_levels(x, self.n_levels), self.n_levels, x.dtype)
        return x

    # ------------------------------------------------------------------------------------------ posterior
    def encode(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """Mean, standard deviation of ``q(z_0 | x)`` and the IAF context ``h`` (None for a diagonal posterior)."""
        inputs = 2.0 * x.flatten(1) - 1.0
        if context is not None:
            inputs = torch.cat([inputs, context], dim=1)
        out = self.encoder_head(F.elu(self.encoder(inputs)))
        mean, pre_std = out[:, : self.latent_dim], out[:, self.latent_dim : 2 * self.latent_dim]
        h = out[:, 2 * self.latent_dim :] if self.h_dim else None
        return mean, F.softplus(pre_std) + 1e-4, h

    def flow(self, eps: Tensor, mean: Tensor, std: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        """Map noise ``eps`` to a posterior sample ``z``; returns ``(z, log |det dz/deps|)``, the latter (B,)."""
        z = mean + std * eps
        log_det = std.log().sum(-1)
        for made in self.iaf:
            shift, gate_logit = made(z, h).unbind(-1)
            sigma = torch.sigmoid(gate_logit)
            z = sigma * z + (1.0 - sigma) * shift
            log_det = log_det + F.logsigmoid(gate_logit).sum(-1)
        return z, log_det

    def sample_posterior(self, x: Tensor, context: Tensor | None = None, n_samples: int = 1
                         ) -> tuple[Tensor, Tensor]:
        """``n_samples`` draws of ``z ~ q(z | x)`` per example, shape (n_samples, B, latent), and ``log q(z | x)``."""
        mean, std, h = self.encode(x, context)
        eps = torch.randn(n_samples, *mean.shape, dtype=mean.dtype, device=mean.device)

        def flat(t: Tensor) -> Tensor:
            return t.expand(n_samples, *t.shape).reshape(-1, t.shape[-1])

        z, log_det = self.flow(eps.reshape(-1, self.latent_dim), flat(mean), flat(std),
                               None if h is None else flat(h))
        log_q = _standard_normal_log_prob(eps.reshape(-1, self.latent_dim)) - log_det
        return z.view(n_samples, *mean.shape), log_q.view(n_samples, -1)

    # ------------------------------------------------------------------------------------------- decoder
    def decode(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Likelihood parameters of every value, shape (B, n_dims, n_params)."""
        inputs = z if context is None else torch.cat([z, context], dim=-1)
        return self.decoder(inputs).view(z.shape[0], self.n_dims, self.likelihood.n_params)

    def _log_weights(self, x: Tensor, context: Tensor | None, n_samples: int) -> tuple[Tensor, Tensor, Tensor]:
        """``log p(x | z)``, ``log p(z)`` and ``log q(z | x)`` for ``n_samples`` posterior draws, each (S, B)."""
        flat_x = self._prepare(x)
        z, log_q = self.sample_posterior(x, context, n_samples)
        b = x.shape[0]
        z_flat = z.reshape(n_samples * b, self.latent_dim)
        c_flat = None if context is None else context.repeat(n_samples, 1)
        params = self.decode(z_flat, c_flat)
        log_px = self.likelihood.log_prob(params, flat_x.repeat(n_samples, 1)).sum(-1).view(n_samples, b)
        return log_px, _standard_normal_log_prob(z), log_q

    # ---------------------------------------------------------------------------------------- public API
    def elbo(self, x: Tensor, context: Tensor | None = None, n_samples: int = 1) -> Tensor:
        """The evidence lower bound per example (nats), averaged over ``n_samples`` draws, shape (B,)."""
        self._check_input(x, context)
        log_px, log_pz, log_q = self._log_weights(x, context, n_samples)
        return (log_px + log_pz - log_q).mean(0)

    def log_prob(self, x: Tensor, context: Tensor | None = None, n_samples: int = 1) -> Tensor:
        """The ELBO (a stochastic lower bound on ``log p(x)``, not an exact log-likelihood), shape (B,)."""
        return self.elbo(x, context, n_samples)

    def log_prob_unchecked(self, x: Tensor, context: Tensor | None = None, n_samples: int = 1) -> Tensor:
        """:meth:`log_prob` without input validation, for inputs known to be valid, in a form ``torch.func.vmap``
        can batch (the per-example prediction gains of :mod:`rlgen.generative.updates` use it)."""
        log_px, log_pz, log_q = self._log_weights(x, context, n_samples)
        return (log_px + log_pz - log_q).mean(0)

    @torch.no_grad()
    def importance_weighted_nll(self, x: Tensor, k: int = 100, context: Tensor | None = None,
                                chunk: int = 256) -> Tensor:
        """``-log (1/k) sum_i p(x, z_i) / q(z_i | x)`` per example (nats), shape (B,); an upper bound on the NLL
        in expectation, which decreases towards it as ``k`` grows. Draws are taken ``chunk`` at a time."""
        self._check_input(x, context)
        log_weights = []
        for start in range(0, k, chunk):
            log_px, log_pz, log_q = self._log_weights(x, context, min(chunk, k - start))
            log_weights.append(log_px + log_pz - log_q)
        return -(torch.logsumexp(torch.cat(log_weights, 0), dim=0) - math.log(k))

    def loss(self, batch: Batch | tuple[Tensor, ...], context: Tensor | None = None) -> dict[str, Tensor]:
        """Negative ELBO per example (``"loss"``), with its reconstruction and KL terms (one-sample estimates)."""
        x, context = split_batch(batch, context)
        self._check_input(x, context)
        log_px, log_pz, log_q = self._log_weights(x, context, 1)
        reconstruction = -log_px.mean()
        kl = (log_q - log_pz).mean()
        return {"loss": reconstruction + kl, "reconstruction": reconstruction.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        """``n`` draws of ``x`` from ``z ~ N(0, I)`` and the decoder, shape (n, *input_shape), values in [0, 1]."""
        check_context(context, self.context_dim, n)
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, device=device)
        return self.likelihood.sample(self.decode(z, context)).view(n, *self.input_shape)

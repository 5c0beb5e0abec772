"""Building blocks shared by rlgen's GANs and by GAIL's discriminator.

Everything here works on images ``(B, C, H, W)`` and on vectors ``(B, D)`` (GAIL's discriminator is an MLP on
``(s, a)`` pairs), so the stabilising tricks of Salimans et al. (2016, "Improved techniques for training GANs")
can be switched on for either:

* :class:`MinibatchDiscrimination`: lets the discriminator see how close an example is to the rest of its batch,
  so a generator that collapses to one mode is easy to spot;
* :class:`VirtualBatchNorm`: batch norm whose statistics come from a fixed reference batch (plus the example
  itself), so one example's output does not depend on the other examples of its batch;
* :class:`GaussianNoise`: additive noise, active only in training (the improved-GAN MNIST discriminator);
* :func:`linear` / :func:`conv2d`: layers with an optional weight or spectral normalisation;
* :class:`HistoricalAveraging`: the penalty ``||theta - mean of past theta||^2``;
* loss helpers: :func:`discriminator_bce` (one-sided label smoothing, GAIL's entropy bonus),
  :func:`generator_loss`, :func:`feature_matching_loss`, :func:`gradient_penalty`.

:class:`AdversarialModel` holds the alternating discriminator/generator update of the model contract in
:mod:`rlgen.generative.base`, so that DCGAN, the semi-supervised GAN and InfoGAN only say what their losses are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations

__all__ = [
    "AdversarialModel",
    "GaussianNoise",
    "HistoricalAveraging",
    "MinibatchDiscrimination",
    "Norm",
    "VirtualBatchNorm",
    "bernoulli_entropy",
    "conv2d",
    "discriminator_accuracy",
    "discriminator_bce",
    "feature_matching_loss",
    "generator_loss",
    "gradient_penalty",
    "linear",
    "normalized",
    "virtual_batch_norm_reference",
]

Norm = Literal["none", "weight", "spectral"]
_NORMS = ("none", "weight", "spectral")
_GENERATOR_LOSSES = ("non_saturating", "saturating", "wasserstein")
_GRADIENT_PENALTIES = ("wgan_gp", "r1")


# ----------------------------------------------------------------------------------------------------------
# Layers


def normalized(module: nn.Module, norm: Norm) -> nn.Module:
    """``module`` with its ``weight`` reparametrised by weight norm or spectral norm (or left alone).

    Weight norm (Salimans & Kingma 2016) is what the improved-GAN code uses in its discriminators; spectral norm
    (Miyato et al. 2018) bounds each layer's Lipschitz constant, a later and often steadier alternative.
    """
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    if norm == "weight":
        return parametrizations.weight_norm(module)
    if norm == "spectral":
        return parametrizations.spectral_norm(module)
    return module


def linear(in_features: int, out_features: int, norm: Norm = "none", bias: bool = True) -> nn.Module:
    """An ``nn.Linear`` with optional ``"weight"`` or ``"spectral"`` normalisation."""
    return normalized(nn.Linear(in_features, out_features, bias=bias), norm)


def conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
           norm: Norm = "none", bias: bool = True) -> nn.Module:
    """An ``nn.Conv2d`` with optional ``"weight"`` or ``"spectral"`` normalisation."""
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
    return normalized(layer, norm)


class GaussianNoise(nn.Module):
    """Adds ``N(0, sd^2)`` noise in training mode; the identity in eval mode or when ``sd`` is 0. The noise is
    drawn from :attr:`generator` when one is set (an owner that seeds all its randomness itself), else from
    torch's global RNG."""

    def __init__(self, sd: float) -> None:
        super().__init__()
        if sd < 0:
            raise ValueError(f"GaussianNoise sd must be >= 0, got {sd}")
        self.sd = float(sd)
        self.generator: torch.Generator | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.sd == 0.0:
            return x
        if self.generator is None:
            return x + self.sd * torch.randn_like(x)
        return x + self.sd * torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=x.device)

    def extra_repr(self) -> str:
        return f"sd={self.sd}"


class MinibatchDiscrimination(nn.Module):
    """Appends to each example's features how similar it is to the other examples of its batch.

    Features ``f`` (B, in_features) are projected by a learned tensor to ``M`` of shape (B, n_kernels,
    kernel_dim); for kernel ``k`` the similarity of examples i and j is ``exp(-||M_ik - M_jk||_1)`` and the
    output for i is its sum over the other examples j != i (as in the improved-GAN code; counting j = i would
    only add the constant 1). The result is ``cat([f, o], dim=1)`` of width ``in_features + n_kernels``.
    A batch of identical examples gives every kernel its maximum value B - 1; a diverse batch gives less, so
    the discriminator can penalise a collapsed generator. Inputs with more than two dimensions are flattened.
    The released code's layer also has a learned per-kernel scale and bias set by data-dependent
    initialisation; here the next (linear) layer provides the affine part.
    """

    def __init__(self, in_features: int, n_kernels: int = 100, kernel_dim: int = 5) -> None:
        super().__init__()
        if min(in_features, n_kernels, kernel_dim) < 1:
            raise ValueError("MinibatchDiscrimination sizes must be positive, got "
                             f"in_features={in_features}, n_kernels={n_kernels}, kernel_dim={kernel_dim}")
        self.in_features = in_features
        self.n_kernels = n_kernels
        self.kernel_dim = kernel_dim
        self.out_features = in_features + n_kernels
        # Small initial projections (sd 0.05, as in the improved-GAN code) keep the initial distances small
        # so the exp() does not start saturated at 0 for every pair.
        self.projection = nn.Parameter(0.05 * torch.randn(in_features, n_kernels * kernel_dim))

    def forward(self, x: Tensor) -> Tensor:
        features = x.flatten(1)
        if features.shape[1] != self.in_features:
            raise ValueError(f"MinibatchDiscrimination expects {self.in_features} features per example, "
                             f"got {features.shape[1]}")
        # (n_kernels, B, kernel_dim): cdist then gives each kernel's (B, B) L1 distances, ~2x faster than
        # broadcasting a (B, B, n_kernels, kernel_dim) difference.
        m = (features @ self.projection).view(-1, self.n_kernels, self.kernel_dim).transpose(0, 1)
        l1 = torch.cdist(m, m, p=1.0)
        similarity = torch.exp(-l1).sum(dim=2).transpose(0, 1) - 1.0  # minus exp(0), the example's own
        return torch.cat([features, similarity], dim=1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_kernels={self.n_kernels}, kernel_dim={self.kernel_dim}"


class VirtualBatchNorm(nn.Module):
    """Batch norm that normalises each example with the statistics of a fixed reference batch plus itself.

    As in the improved-GAN code: the reference batch (size R) is normalised with its own statistics; any
    other example x uses ``mean = (1/(R+1)) * mean(x) + (R/(R+1)) * mean(reference)`` (and likewise for the
    mean square), where ``mean(x)`` is over x's own spatial positions (a single number per feature for
    vectors). So an example's output depends on itself and the reference batch only, never on the rest of
    its batch.

    Usage: pass the reference batch through the whole network inside :func:`virtual_batch_norm_reference`
    before the real forward pass, at every step, so the reference statistics follow the current parameters
    (and carry their gradients). The last reference statistics are kept as buffers, so a network can also
    be run later without a fresh reference pass (e.g. after loading a state dict).
    """

    reference_mean: Tensor
    reference_mean_square: Tensor
    reference_size: Tensor

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("reference_mean", torch.zeros(num_features))
        self.register_buffer("reference_mean_square", torch.ones(num_features))
        self.register_buffer("reference_size", torch.zeros((), dtype=torch.long))
        self.collecting_reference = False
        self._reference: tuple[Tensor, Tensor] | None = None

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        """Shape that broadcasts a per-feature vector against ``x`` (features on dimension 1)."""
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"VirtualBatchNorm expects (B, {self.num_features}, ...) input, got {tuple(x.shape)}")
        return (1, self.num_features) + (1,) * (x.dim() - 2)

    def forward(self, x: Tensor) -> Tensor:
        shape = self._shape(x)
        spatial = tuple(range(2, x.dim()))
        if self.collecting_reference:
            mean, mean_square = x.mean(dim=(0,) + spatial), x.square().mean(dim=(0,) + spatial)
            self._reference = (mean, mean_square)
            with torch.no_grad():
                self.reference_mean.copy_(mean)
                self.reference_mean_square.copy_(mean_square)
                self.reference_size.fill_(x.shape[0])
            mean, mean_square = mean.view(shape), mean_square.view(shape)
        else:
            reference_mean, reference_mean_square = self._reference_statistics()
            new_weight = 1.0 / (int(self.reference_size) + 1.0)
            # torch's mean over an empty tuple of dims reduces everything, hence the branch for vectors.
            own_mean = x.mean(dim=spatial, keepdim=True) if spatial else x
            own_mean_square = x.square().mean(dim=spatial, keepdim=True) if spatial else x.square()
            mean = new_weight * own_mean + (1.0 - new_weight) * reference_mean.view(shape)
            mean_square = new_weight * own_mean_square + (1.0 - new_weight) * reference_mean_square.view(shape)
        variance = (mean_square - mean.square()).clamp_min(0.0)
        out = (x - mean) * torch.rsqrt(variance + self.eps)
        if self.weight is None or self.bias is None:
            return out
        return out * self.weight.view(shape) + self.bias.view(shape)

    def _reference_statistics(self) -> tuple[Tensor, Tensor]:
        """The latest reference pass's statistics (with their graph) or, failing that, the saved ones."""
        if self._reference is not None:
            return self._reference
        if int(self.reference_size) > 0:
            return self.reference_mean, self.reference_mean_square
        raise RuntimeError("VirtualBatchNorm has no reference statistics yet: run a reference batch through "
                           "the network inside virtual_batch_norm_reference() first")

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}"


@contextmanager
def virtual_batch_norm_reference(module: nn.Module) -> Iterator[None]:
    """Within this block, every :class:`VirtualBatchNorm` in ``module`` records its input's statistics."""
    layers = [layer for layer in module.modules() if isinstance(layer, VirtualBatchNorm)]
    for layer in layers:
        layer.collecting_reference = True
    try:
        yield
    finally:
        for layer in layers:
            layer.collecting_reference = False


class HistoricalAveraging(nn.Module):
    """The penalty ``coefficient * sum_i ||theta_i - mean of theta_i over past steps||^2`` (Salimans et al.).

    The average is the plain mean over every value seen so far (the paper's ``1/t sum theta[i]``), updated by
    :meth:`update` after each optimiser step. The averages are buffers (saved in the owner's state dict); the
    tracked parameters are referenced, not registered, so they are not duplicated in ``parameters()``.
    """

    steps: Tensor

    def __init__(self, parameters: Iterable[nn.Parameter], coefficient: float) -> None:
        super().__init__()
        if coefficient < 0:
            raise ValueError(f"historical averaging coefficient must be >= 0, got {coefficient}")
        self.coefficient = float(coefficient)
        self._tracked = list(parameters)
        for index, parameter in enumerate(self._tracked):
            self.register_buffer(f"average_{index}", parameter.detach().clone())
        self.register_buffer("steps", torch.ones((), dtype=torch.long))

    def _averages(self) -> list[Tensor]:
        return [getattr(self, f"average_{index}") for index in range(len(self._tracked))]

    def penalty(self) -> Tensor:
        """The current penalty, differentiable in the tracked parameters."""
        if self.coefficient == 0.0 or not self._tracked:
            return torch.zeros(())
        total = sum((p - a).square().sum() for p, a in zip(self._tracked, self._averages(), strict=True))
        return self.coefficient * total  # type: ignore[return-value]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the parameters' current values into the running mean."""
        self.steps += 1
        for parameter, average in zip(self._tracked, self._averages(), strict=True):
            average += (parameter - average) / self.steps

    def extra_repr(self) -> str:
        return f"coefficient={self.coefficient}, tensors={len(self._tracked)}"


# ----------------------------------------------------------------------------------------------------------
# Losses


def bernoulli_entropy(logits: Tensor) -> Tensor:
    """Entropy in nats of Bernoulli(sigmoid(logits)), elementwise and stable for large |logits|."""
    p = torch.sigmoid(logits)
    # -p log p - (1-p) log(1-p) with log p = -softplus(-l) and log(1-p) = -softplus(l).
    return p * F.softplus(-logits) + (1.0 - p) * F.softplus(logits)


def discriminator_bce(logits_real: Tensor, logits_fake: Tensor, real_label: float = 1.0,
                      entropy_bonus: float = 0.0) -> Tensor:
    """Binary cross-entropy of a discriminator that outputs logits of "real".

    ``mean BCE(real, real_label) + mean BCE(fake, 0)``: the two classes count equally whatever their batch
    sizes (GAIL's original code weighs each class 1/2, i.e. half this loss; with Adam only the entropy
    bonus's relative weight depends on that factor). ``real_label < 1`` is one-sided label smoothing (Salimans et al.: 0.9, or 0.75 in the ImageNet
    code); fake targets stay at 0, since smoothing them would reward the generator for samples where the data
    has no mass. ``entropy_bonus`` subtracts that multiple of the mean Bernoulli entropy of all the logits, as
    GAIL's original discriminator does (0.001), which keeps it from becoming overconfident.
    """
    if not 0.0 < real_label <= 1.0:
        raise ValueError(f"real_label must be in (0, 1], got {real_label}")
    logits_real, logits_fake = logits_real.reshape(-1), logits_fake.reshape(-1)
    loss = (F.binary_cross_entropy_with_logits(logits_real, torch.full_like(logits_real, real_label))
            + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))
    if entropy_bonus:
        loss = loss - entropy_bonus * bernoulli_entropy(torch.cat([logits_real, logits_fake])).mean()
    return loss


def generator_loss(logits_fake: Tensor, kind: str = "non_saturating") -> Tensor:
    """The generator's loss on the discriminator's logits of its samples.

    ``"non_saturating"``: ``-log D(G(z))`` (Goodfellow et al.'s practical choice: strong gradients while D
    wins); ``"saturating"``: ``log(1 - D(G(z)))`` (the minimax game as written); ``"wasserstein"``: ``-mean
    logit`` (for a critic trained with :func:`gradient_penalty`).
    """
    if kind == "non_saturating":
        return F.softplus(-logits_fake).mean()
    if kind == "saturating":
        return -F.softplus(logits_fake).mean()
    if kind == "wasserstein":
        return -logits_fake.mean()
    raise ValueError(f"generator loss kind must be one of {_GENERATOR_LOSSES}, got {kind!r}")


def feature_matching_loss(features_real: Tensor, features_fake: Tensor) -> Tensor:
    """Mean over features of the squared difference of the batch means (the improved-GAN code's form).

    The real features are detached: this loss trains the generator only.
    """
    if features_real.shape[1:] != features_fake.shape[1:]:
        raise ValueError(f"feature shapes differ: real {tuple(features_real.shape)}, "
                         f"fake {tuple(features_fake.shape)}")
    return (features_real.detach().mean(dim=0) - features_fake.mean(dim=0)).square().mean()


def gradient_penalty(discriminator: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor | None = None,
                     kind: str = "wgan_gp", generator: torch.Generator | None = None) -> Tensor:
    """A penalty on the discriminator's input gradient, differentiable in its parameters.

    ``"wgan_gp"`` (Gulrajani et al. 2017): ``mean (||grad D(x_hat)||_2 - 1)^2`` at random interpolates
    ``x_hat`` between real and fake examples; needs ``fake``. ``"r1"`` (Mescheder et al. 2018):
    ``mean ||grad D(x)||^2`` at the real examples only; the usual weight is gamma / 2. Multiply by your
    coefficient (10 for WGAN-GP) and add to the discriminator's loss. ``generator``: where the interpolation
    weights are drawn from (default: torch's global RNG).
    """
    if kind not in _GRADIENT_PENALTIES:
        raise ValueError(f"gradient penalty kind must be one of {_GRADIENT_PENALTIES}, got {kind!r}")
    if kind == "wgan_gp":
        if fake is None or fake.shape != real.shape:
            raise ValueError("the WGAN-GP penalty needs fake examples of the real examples' shape")
        mix = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device,
                         dtype=real.dtype)
        points = (mix * real.detach() + (1.0 - mix) * fake.detach()).requires_grad_(True)
    else:
        points = real.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(discriminator(points).sum(), points, create_graph=True)
    squared_norm = gradient.flatten(1).square().sum(dim=1)
    if kind == "r1":
        return squared_norm.mean()
    return (torch.sqrt(squared_norm + 1e-12) - 1.0).square().mean()


# ----------------------------------------------------------------------------------------------------------
# The alternating update


@contextmanager
def _frozen(parameters: Iterable[nn.Parameter]) -> Iterator[None]:
    """Stop gradients into ``parameters`` for the duration (they are restored to trainable afterwards)."""
    changed = [p for p in parameters if p.requires_grad]
    for parameter in changed:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in changed:
            parameter.requires_grad_(True)


class AdversarialModel(nn.Module):
    """The two-player part of the model contract; subclasses supply the players and their losses.

    A subclass defines

    * ``discriminator_parameters()`` / ``generator_parameters()``: what each optimiser steps (a head that is
      trained with the generator, like InfoGAN's Q, belongs to the generator's list);
    * ``draw_latent(n)`` -> anything, and ``generate(latent)`` -> images or vectors, differentiable;
    * ``discriminator_terms(x, y, fake, latent)`` -> dict with ``"loss_d"``; ``fake`` arrives detached;
    * ``generator_terms(x, y, fake, latent)`` -> dict with ``"loss_g"``;

    and may override ``after_discriminator_step()`` / ``after_generator_step()`` (e.g. historical averages).
    """

    default_lr: float = 2e-4
    default_betas: tuple[float, float] = (0.5, 0.999)

    def discriminator_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def generator_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def draw_latent(self, n: int) -> Any:
        raise NotImplementedError

    def generate(self, latent: Any) -> Tensor:
        raise NotImplementedError

    def discriminator_terms(self, x: Tensor, y: Tensor, fake: Tensor, latent: Any) -> dict[str, Tensor]:
        raise NotImplementedError

    def generator_terms(self, x: Tensor, y: Tensor, fake: Tensor, latent: Any) -> dict[str, Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``n`` images (n, C, H, W) in [0, 1], generated in eval mode (batch norm uses running statistics)."""
        was_training = self.training
        self.eval()
        try:
            return self.generate(self.draw_latent(n)).clamp(0.0, 1.0)
        finally:
            self.train(was_training)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live (latents are drawn there)."""
        return next(self.parameters()).device

    def after_discriminator_step(self) -> None:
        """Hook run after each discriminator optimiser step."""

    def after_generator_step(self) -> None:
        """Hook run after each generator optimiser step."""

    @staticmethod
    def _check_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError("a batch is a tuple (x, y); pass y = -1 for unlabelled examples")
        x, y = batch
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"batch x has {x.shape[0]} examples but y has {y.shape[0]}")
        return x, y

    def loss(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Both players' losses on one batch, from one set of generated samples (for tests and logging).

        ``"loss_d"`` is computed on detached samples, so it has no gradient into the generator.
        """
        x, y = self._check_batch(batch)
        latent = self.draw_latent(x.shape[0])
        fake = self.generate(latent)
        terms = self.discriminator_terms(x, y, fake.detach(), latent)
        terms.update(self.generator_terms(x, y, fake, latent))
        return terms

    def configure_optimizers(self, lr: float | None = None, betas: tuple[float, float] | None = None
                             ) -> dict[str, torch.optim.Optimizer]:
        """One Adam per player: ``{"d": ..., "g": ...}``; defaults are the model's published settings."""
        lr = self.default_lr if lr is None else lr
        betas = self.default_betas if betas is None else betas
        return {"d": torch.optim.Adam(self.discriminator_parameters(), lr=lr, betas=betas),
                "g": torch.optim.Adam(self.generator_parameters(), lr=lr, betas=betas)}

    def train_step(self, batch: tuple[Tensor, Tensor], optimizers: dict[str, torch.optim.Optimizer]
                   ) -> dict[str, float]:
        """One discriminator step on fresh (detached) samples, then one generator step on new samples."""
        x, y = self._check_batch(batch)
        if "d" not in optimizers or "g" not in optimizers:
            raise KeyError(f"a GAN needs optimizers 'd' and 'g', got {sorted(optimizers)}")
        n = x.shape[0]
        latent = self.draw_latent(n)
        with torch.no_grad():
            fake = self.generate(latent)
        d_terms = self.discriminator_terms(x, y, fake, latent)
        optimizers["d"].zero_grad(set_to_none=True)
        d_terms["loss_d"].backward()
        optimizers["d"].step()
        self.after_discriminator_step()

        generator_ids = {id(p) for p in self.generator_parameters()}
        discriminator_only = [p for p in self.discriminator_parameters() if id(p) not in generator_ids]
        latent = self.draw_latent(n)
        # The discriminator is frozen so the generator's backward pass does not compute its gradients.
        with _frozen(discriminator_only):
            g_terms = self.generator_terms(x, y, self.generate(latent), latent)
            optimizers["g"].zero_grad(set_to_none=True)
            g_terms["loss_g"].backward()
        optimizers["g"].step()
        self.after_generator_step()
        return {name: float(value.detach()) for name, value in {**d_terms, **g_terms}.items()}


def discriminator_accuracy(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Balanced accuracy of the rule "logit > 0 means real", detached (a diagnostic to log)."""
    real = (logits_real.detach() > 0).float().mean()
    fake = (logits_fake.detach() <= 0).float().mean()
    return 0.5 * (real + fake)

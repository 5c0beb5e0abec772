"""The semi-supervised GAN of Salimans et al. (2016): a K-class classifier that is also the discriminator.

The discriminator outputs K class logits ``l``; the (K+1)-th "fake" class has its logit fixed at 0, so it
has no parameters and the probability that x is real is ``D(x) = Z / (Z + 1)`` with ``Z = sum_k exp(l_k)``,
i.e. ``sigmoid(logsumexp(l))``. Its loss is

* supervised cross-entropy over the K classes on the labelled examples of the batch (``y >= 0``), plus
* ``unlabelled_weight`` times the unsupervised real/fake loss on real and generated examples,
  ``0.5 * E_real[-log D(x)] + 0.5 * E_fake[-log(1 - D(G(z)))]`` (the 0.5 factors as in the released code).

Which real examples enter the unsupervised loss and the generator's feature matching:
``unsupervised_examples="unlabelled"`` (default) uses the batch's examples marked -1, or all of them if
none is; ``"all"`` uses every example of the batch. The released code feeds the supervised loss a batch
of labelled examples (cycling over the 100) and the unsupervised loss a separate batch drawn from the whole
training set, labelled or not; to reproduce that, build each batch as a labelled batch plus a batch drawn
from all the data with its labels set to -1 (as ``benchmarks/gan.py`` does). With "all", the 100 labelled
images, oversampled in every batch, would make up half of what "real" means to D and to feature matching.

The generator is trained by feature matching on the discriminator's last hidden layer. Both networks follow
the paper's MNIST code, an MLP for any image size (8x8 digits, 28x28 MNIST): G is 100-d uniform noise ->
500 softplus + BN -> 500 softplus + BN -> pixels, sigmoid, weight-normalised; D is input noise sd 0.3 ->
weight-normalised dense 1000-500-250-250-250 (ReLU), each followed by noise sd 0.5 -> K logits.
``width_scale`` scales every hidden width, for speed. Adam with beta1 0.5 and lr 0.003 as in the paper.

Two details of the released code matter because of the fixed noise levels: the discriminator's layers get a
data-dependent initialisation (on the first training batch, each layer's scale and bias are set so its
pre-activations have zero mean and unit variance: :meth:`SemiSupervisedGAN.initialize`), and the scales of
the hidden layers then stay fixed (only the output layer's is trained). Without both, the activations are
a few times smaller than the noise sd 0.5 added to them, and the classifier learns much less.
The released code also evaluates with an exponential moving average of the discriminator's parameters
(rate 1e-4 over 180k steps); rlgen evaluates the current parameters.

The paper draws, at every step, a batch of labelled examples (cycling over the 100 labels) and a separate
batch of unlabelled ones; with batches of mixed ``(x, y)`` give each batch enough labelled examples (e.g.
concatenate a labelled batch and an unlabelled one), or the supervised term sees only a handful.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.generative.gan_parts import AdversarialModel, GaussianNoise, feature_matching_loss, linear

__all__ = ["SemiSupervisedGAN"]

_DISCRIMINATOR_WIDTHS = (1000, 500, 250, 250, 250)
_GENERATOR_WIDTHS = (500, 500)


def _weight_norm_scale(layer: nn.Module) -> nn.Parameter:
    """The magnitude g of a layer under ``torch.nn.utils.parametrizations.weight_norm``, shape (out, 1)."""
    return layer.parametrizations.weight.original0  # type: ignore[union-attr, return-value]


class SemiSupervisedGAN(AdversarialModel):
    """K+1-class semi-supervised GAN (feature-matching generator, MLP networks of the paper's MNIST code).

    Example:
        >>> gan = SemiSupervisedGAN((1, 8, 8), n_classes=10, width_scale=0.05)
        >>> x, y = torch.rand(6, 1, 8, 8), torch.tensor([3, 1, -1, -1, -1, -1])
        >>> logs = gan.train_step((x, y), gan.configure_optimizers())
        >>> gan.classify(x).shape
        torch.Size([6, 10])
    """

    default_lr = 3e-3
    default_betas = (0.5, 0.999)
    initialized: Tensor

    def __init__(self, image_shape: tuple[int, ...], n_classes: int = 10, *, z_dim: int = 100,
                 width_scale: float = 1.0, input_noise: float = 0.3, hidden_noise: float = 0.5,
                 unlabelled_weight: float = 1.0, unsupervised_examples: str = "unlabelled",
                 data_dependent_init: bool = True) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        if width_scale <= 0:
            raise ValueError(f"width_scale must be > 0, got {width_scale}")
        self.image_shape = tuple(image_shape)
        self.n_classes = n_classes
        self.z_dim = z_dim
        if unsupervised_examples not in ("unlabelled", "all"):
            raise ValueError(f"unsupervised_examples must be 'unlabelled' or 'all', got {unsupervised_examples!r}")
        self.unlabelled_weight = unlabelled_weight
        self.unsupervised_examples = unsupervised_examples
        n_pixels = math.prod(self.image_shape)

        def scaled(width: int) -> int:
            return max(1, round(width * width_scale))

        g_widths = [scaled(w) for w in _GENERATOR_WIDTHS]
        generator: list[nn.Module] = []
        in_features = z_dim
        for width in g_widths:
            # Lasagne's batch_norm wrapper moves the nonlinearity after the normalisation, and drops the bias.
            generator += [nn.Linear(in_features, width, bias=False), nn.BatchNorm1d(width), nn.Softplus()]
            in_features = width
        generator += [linear(in_features, n_pixels, norm="weight"), nn.Sigmoid()]
        self.generator = nn.Sequential(*generator)

        d_widths = [scaled(w) for w in _DISCRIMINATOR_WIDTHS]
        trunk: list[nn.Module] = [nn.Flatten(), GaussianNoise(input_noise)]
        in_features = n_pixels
        for index, width in enumerate(d_widths):
            if index > 0:
                trunk.append(GaussianNoise(hidden_noise))
            trunk += [linear(in_features, width, norm="weight"), nn.ReLU()]
            in_features = width
        self.trunk = nn.Sequential(*trunk)
        self.feature_noise = GaussianNoise(hidden_noise)
        # K outputs only: the fake class's logit is the constant 0, not a parameter.
        self.classifier = linear(in_features, n_classes, norm="weight")
        for layer in self._weight_normalised_layers()[:-1]:
            # The released code trains the weight-norm scale of the output layer only (train_scale=False).
            _weight_norm_scale(layer).requires_grad_(False)
        self.data_dependent_init = data_dependent_init
        self.register_buffer("initialized", torch.tensor(not data_dependent_init))

    # --- the players --------------------------------------------------------------------------------------

    def _weight_normalised_layers(self) -> list[nn.Linear]:
        """The discriminator's dense layers, input to output."""
        return [m for m in [*self.trunk, self.classifier] if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Data-dependent initialisation of the discriminator (Salimans & Kingma 2016) on images ``x``.

        Layer by layer, in training mode (with the noise, as the released code does), each layer's scale g
        and bias b are set so that its pre-activations on ``x`` have zero mean and unit variance.
        """
        h = self._check_images(x).flatten(1)
        modules = list(self.trunk)[1:] + [self.feature_noise, self.classifier]  # the trunk starts by flattening
        for module in modules:
            if isinstance(module, nn.Linear):
                pre_activation = F.linear(h, module.weight)
                mean = pre_activation.mean(dim=0)
                sd = (pre_activation - mean).square().mean(dim=0).sqrt().clamp_min(1e-6)
                _weight_norm_scale(module).div_(sd.unsqueeze(1))
                module.bias.copy_(-mean / sd)
                h = module(h)
            elif isinstance(module, GaussianNoise):
                h = h + module.sd * torch.randn_like(h)
            else:
                h = module(h)
        self.initialized.fill_(True)

    def train_step(self, batch: tuple[Tensor, Tensor], optimizers: dict[str, torch.optim.Optimizer]
                   ) -> dict[str, float]:
        """The alternating update; the very first call also runs the data-dependent initialisation."""
        if not bool(self.initialized):
            self.initialize(self._check_batch(batch)[0])
        return super().train_step(batch, optimizers)

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters()) + list(self.classifier.parameters())

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.generator.parameters())

    def _check_images(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"expected images of shape {self.image_shape}, got {tuple(x.shape[1:])}")
        return x

    def discriminator_features(self, x: Tensor) -> Tensor:
        """The last hidden layer (B, 250 * width_scale): what feature matching compares."""
        return self.trunk(self._check_images(x))

    def class_logits(self, x: Tensor) -> Tensor:
        """The K real-class logits (B, K), differentiable; the fake class's logit is 0."""
        return self.classifier(self.feature_noise(self.discriminator_features(x)))

    def real_probability(self, x: Tensor) -> Tensor:
        """``D(x) = Z / (Z + 1)`` with ``Z = sum_k exp(logit_k)``, shape (B,)."""
        return torch.sigmoid(torch.logsumexp(self.class_logits(x), dim=1))

    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        """Class logits (B, K) for prediction: eval mode (no noise), no gradient."""
        was_training = self.training
        self.eval()
        try:
            return self.class_logits(x)
        finally:
            self.train(was_training)

    def draw_latent(self, n: int) -> Tensor:
        return torch.rand(n, self.z_dim, device=self.device)

    def generate(self, latent: Tensor) -> Tensor:
        return self.generator(latent).view(latent.shape[0], *self.image_shape)

    # --- the losses ---------------------------------------------------------------------------------------

    def _unsupervised_mask(self, y: Tensor) -> Tensor:
        """Which real examples of the batch the unsupervised loss and feature matching use."""
        unlabelled = y < 0
        if self.unsupervised_examples == "all" or not bool(unlabelled.any()):
            return torch.ones_like(unlabelled)
        return unlabelled

    def discriminator_terms(self, x: Tensor, y: Tensor, fake: Tensor, latent: Any) -> dict[str, Tensor]:
        if y.dtype not in (torch.int64, torch.int32) or bool((y >= self.n_classes).any() | (y < -1).any()):
            raise ValueError(f"labels must be integers in [0, {self.n_classes}) or -1 for unlabelled")
        logits_real = self.class_logits(x)
        logits_fake = self.class_logits(fake)
        lse_real = torch.logsumexp(logits_real[self._unsupervised_mask(y)], dim=1)
        lse_fake = torch.logsumexp(logits_fake, dim=1)
        # -log D(x) = softplus(lse) - lse and -log(1 - D(x)) = softplus(lse), with D = sigmoid(lse).
        unsupervised = 0.5 * (F.softplus(lse_real) - lse_real).mean() + 0.5 * F.softplus(lse_fake).mean()
        labelled = y >= 0
        terms: dict[str, Tensor] = {}
        if bool(labelled.any()):
            supervised = F.cross_entropy(logits_real[labelled], y[labelled])
            terms["error"] = (logits_real.detach()[labelled].argmax(dim=1) != y[labelled]).float().mean()
        else:
            supervised = logits_real.new_zeros(())
        terms["loss_d"] = supervised + self.unlabelled_weight * unsupervised
        terms["d_supervised"] = supervised.detach()
        terms["d_unsupervised"] = unsupervised.detach()
        terms["d_real"] = torch.sigmoid(lse_real.detach()).mean()
        terms["d_fake"] = torch.sigmoid(lse_fake.detach()).mean()
        return terms

    def generator_terms(self, x: Tensor, y: Tensor, fake: Tensor, latent: Any) -> dict[str, Tensor]:
        with torch.no_grad():
            features_real = self.discriminator_features(x[self._unsupervised_mask(y)])
        loss = feature_matching_loss(features_real, self.discriminator_features(fake))
        return {"loss_g": loss, "g_feature_matching": loss.detach()}

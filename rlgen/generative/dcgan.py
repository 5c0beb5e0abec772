"""DCGAN (Radford et al. 2016) with the stabilising techniques of Salimans et al. (2016) as options.

The generator maps ``z ~ N(0, I)`` through a dense layer to a small ``s0 x s0`` feature map and doubles it with
stride-2 transposed convolutions up to the image size; the discriminator mirrors it with stride-2
convolutions. The number of doublings is chosen from the image side: 8x8 (scikit-learn digits) uses one
(4 -> 8), 28x28 (MNIST) two (7 -> 14 -> 28), 32x32 (CIFAR) three (4 -> 8 -> 16 -> 32). The generator ends in
a sigmoid so samples are in [0, 1] like the data (the DCGAN paper used tanh on [-1, 1] data).

Options (all combine):

* ``feature_matching``: the generator matches the batch mean of the discriminator's last hidden features
  instead of maximising ``log D(G(z))``;
* ``minibatch_discrimination``: the discriminator's head also sees each example's similarity to its batch;
* ``label_smoothing``: one-sided; real targets become ``1 - label_smoothing``;
* ``virtual_batch_norm``: the generator's batch norms use a fixed reference batch of latents (as in the
  paper, only in the generator: it doubles the generator's forward cost);
* ``historical_averaging``: coefficient of ``||theta - mean past theta||^2`` for both players;
* ``weight_norm``: weight-normalised discriminator layers (replacing its batch norms, as in the improved-GAN
  discriminators) and generator output layer;
* ``input_noise`` / ``hidden_noise``: Gaussian noise sd on the discriminator's input / after each hidden
  layer, in training only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rlgen.generative.gan_parts import (
    AdversarialModel,
    GaussianNoise,
    HistoricalAveraging,
    MinibatchDiscrimination,
    Norm,
    VirtualBatchNorm,
    conv2d,
    discriminator_accuracy,
    discriminator_bce,
    feature_matching_loss,
    generator_loss,
    linear,
    normalized,
    virtual_batch_norm_reference,
)

__all__ = ["DCGAN", "ConvDiscriminatorTrunk", "ConvGenerator", "image_levels"]

# Leak of the discriminator's LeakyReLUs, as in DCGAN.
_LEAK = 0.2


def image_levels(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(channels, n_doublings, s0)`` for a square image: the side is ``s0 * 2**n_doublings``, s0 >= 4.

    Halving stops when the side is odd or would fall below 4: 8 -> (1, 4), 28 -> (2, 7), 32 -> (3, 4).
    """
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
    channels, height, width = image_shape
    if height != width:
        raise ValueError(f"the convolutional GANs need square images, got {height}x{width}")
    side, doublings = height, 0
    while side % 2 == 0 and side // 2 >= 4:
        side //= 2
        doublings += 1
    if doublings == 0:
        raise ValueError(f"image side {height} cannot be halved down to >= 4 pixels; use at least 8x8")
    return channels, doublings, side


class ConvGenerator(nn.Module):
    """``z -> [dense hidden ->] dense s0 x s0 map -> stride-2 transposed convs -> sigmoid image``.

    Channels halve at each doubling, from ``width * 2**(n-1)`` at ``s0`` down to ``width`` before the output
    layer. ``norm`` is ``"batch"`` or ``"virtual"`` (virtual batch norm); ``output_norm`` applies weight or
    spectral normalisation to the output layer. ``hidden > 0`` adds a dense layer first (InfoGAN's 1024).
    """

    def __init__(self, z_dim: int, image_shape: tuple[int, ...], width: int = 64, norm: str = "batch",
                 output_norm: Norm = "none", hidden: int = 0) -> None:
        super().__init__()
        if norm not in ("batch", "virtual"):
            raise ValueError(f"generator norm must be 'batch' or 'virtual', got {norm!r}")
        channels, doublings, s0 = image_levels(image_shape)
        self.image_shape = tuple(image_shape)
        self.z_dim = z_dim
        widths = [width * 2 ** (doublings - 1 - level) for level in range(doublings)]
        self.start_shape = (widths[0], s0, s0)

        def norm1d(features: int) -> nn.Module:
            return VirtualBatchNorm(features) if norm == "virtual" else nn.BatchNorm1d(features)

        def norm2d(features: int) -> nn.Module:
            return VirtualBatchNorm(features) if norm == "virtual" else nn.BatchNorm2d(features)

        dense: list[nn.Module] = []
        in_features = z_dim
        if hidden > 0:
            dense += [nn.Linear(z_dim, hidden, bias=False), norm1d(hidden), nn.ReLU()]
            in_features = hidden
        dense += [nn.Linear(in_features, widths[0] * s0 * s0, bias=False), norm1d(widths[0] * s0 * s0), nn.ReLU()]
        self.dense = nn.Sequential(*dense)
        ups: list[nn.Module] = []
        for level in range(1, doublings):
            ups += [nn.ConvTranspose2d(widths[level - 1], widths[level], 4, stride=2, padding=1, bias=False),
                    norm2d(widths[level]), nn.ReLU()]
        ups.append(normalized(nn.ConvTranspose2d(widths[-1], channels, 4, stride=2, padding=1), output_norm))
        self.ups = nn.Sequential(*ups)

    def forward(self, z: Tensor) -> Tensor:
        h = self.dense(z).view(z.shape[0], *self.start_shape)
        return torch.sigmoid(self.ups(h))


class ConvDiscriminatorTrunk(nn.Module):
    """``image -> stride-2 convs (LeakyReLU) -> flat features [-> dense hidden]``.

    The first conv has ``width`` channels and each further one doubles them. With ``norm="none"`` the later
    layers use batch norm (DCGAN); with ``"weight"``/``"spectral"`` they use that normalisation instead and no
    batch norm (the improved-GAN discriminators). Noise of sd ``input_noise`` is added to the input and of sd
    ``hidden_noise`` after every hidden layer, in training only. ``hidden > 0`` adds a dense layer at the
    end (InfoGAN's 1024). :attr:`out_features` is the feature width.
    """

    def __init__(self, image_shape: tuple[int, ...], width: int = 64, norm: Norm = "none",
                 input_noise: float = 0.0, hidden_noise: float = 0.0, hidden: int = 0) -> None:
        super().__init__()
        channels, doublings, s0 = image_levels(image_shape)
        use_batch_norm = norm == "none"
        layers: list[nn.Module] = [GaussianNoise(input_noise)]
        in_channels, out_channels = channels, width
        for level in range(doublings):
            # DCGAN leaves batch norm out of the first layer, so the data's own statistics reach D.
            batch_norm = use_batch_norm and level > 0
            layers.append(conv2d(in_channels, out_channels, 4, stride=2, padding=1, norm=norm,
                                 bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers += [nn.LeakyReLU(_LEAK), GaussianNoise(hidden_noise)]
            in_channels, out_channels = out_channels, out_channels * 2
        layers.append(nn.Flatten())
        self.out_features = in_channels * s0 * s0
        if hidden > 0:
            layers.append(linear(self.out_features, hidden, norm=norm, bias=not use_batch_norm))
            if use_batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers += [nn.LeakyReLU(_LEAK), GaussianNoise(hidden_noise)]
            self.out_features = hidden
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class DCGAN(AdversarialModel):
    """A convolutional GAN for square images (8x8, 28x28, 32x32, ...) with the improved-GAN options.

    Example:
        >>> gan = DCGAN((1, 8, 8), z_dim=16, width=8, feature_matching=True)
        >>> optimizers = gan.configure_optimizers()
        >>> logs = gan.train_step((torch.rand(4, 1, 8, 8), torch.full((4,), -1)), optimizers)
        >>> gan.sample(3).shape
        torch.Size([3, 1, 8, 8])
    """

    default_lr = 2e-4
    default_betas = (0.5, 0.999)

    def __init__(self, image_shape: tuple[int, ...], *, z_dim: int = 100, width: int = 64,
                 feature_matching: bool = False, minibatch_discrimination: bool = False,
                 label_smoothing: float = 0.0, virtual_batch_norm: bool = False,
                 historical_averaging: float = 0.0, weight_norm: bool = False, input_noise: float = 0.0,
                 hidden_noise: float = 0.0, vbn_reference_size: int = 64) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if z_dim < 1 or width < 1:
            raise ValueError(f"z_dim and width must be positive, got z_dim={z_dim}, width={width}")
        self.image_shape = tuple(image_shape)
        self.z_dim = z_dim
        self.feature_matching = feature_matching
        self.label_smoothing = label_smoothing
        norm: Norm = "weight" if weight_norm else "none"
        self.generator = ConvGenerator(z_dim, self.image_shape, width,
                                       norm="virtual" if virtual_batch_norm else "batch", output_norm=norm)
        self.trunk = ConvDiscriminatorTrunk(self.image_shape, width, norm=norm,
                                            input_noise=input_noise, hidden_noise=hidden_noise)
        features = self.trunk.out_features
        self.minibatch = MinibatchDiscrimination(features) if minibatch_discrimination else None
        self.head = linear(self.minibatch.out_features if self.minibatch else features, 1, norm=norm)
        if virtual_batch_norm:
            # A fixed reference batch of latents, drawn once (and saved with the model).
            self.register_buffer("vbn_reference_z", torch.randn(vbn_reference_size, z_dim))
        else:
            self.vbn_reference_z = None
        self.history_d = self.history_g = None
        if historical_averaging > 0:
            self.history_d = HistoricalAveraging(self.discriminator_parameters(), historical_averaging)
            self.history_g = HistoricalAveraging(self.generator_parameters(), historical_averaging)

    # --- the players --------------------------------------------------------------------------------------

    def discriminator_parameters(self) -> list[nn.Parameter]:
        modules = [self.trunk, self.head] + ([self.minibatch] if self.minibatch is not None else [])
        return [p for module in modules for p in module.parameters()]

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.generator.parameters())

    def discriminator_features(self, x: Tensor) -> Tensor:
        """The discriminator's last hidden features (B, F): what feature matching compares."""
        return self.trunk(x)

    def discriminator_logits(self, x: Tensor) -> Tensor:
        """Logits (B,) of "x is real"."""
        return self._head(self.discriminator_features(x))

    def _head(self, features: Tensor) -> Tensor:
        if self.minibatch is not None:
            features = self.minibatch(features)
        return self.head(features).squeeze(1)

    def draw_latent(self, n: int) -> Tensor:
        return torch.randn(n, self.z_dim, device=self.device)

    def generate(self, latent: Tensor) -> Tensor:
        """Images from latents, differentiable; runs the virtual-batch-norm reference pass first if needed."""
        if self.vbn_reference_z is not None:
            with virtual_batch_norm_reference(self.generator):
                self.generator(self.vbn_reference_z)
        return self.generator(latent)

    # --- the losses ---------------------------------------------------------------------------------------

    def discriminator_terms(self, x: Tensor, y: Tensor, fake: Tensor, latent: Any) -> dict[str, Tensor]:
        logits_real = self.discriminator_logits(x)
        logits_fake = self.discriminator_logits(fake)
        bce = discriminator_bce(logits_real, logits_fake, real_label=1.0 - self.label_smoothing)
        terms = {"d_bce": bce}
        loss = bce
        if self.history_d is not None:
            terms["d_historical"] = self.history_d.penalty()
            loss = loss + terms["d_historical"]
        terms = {name: value.detach() for name, value in terms.items()}
        terms["loss_d"] = loss
        terms["d_real"] = torch.sigmoid(logits_real.detach()).mean()
        terms["d_fake"] = torch.sigmoid(logits_fake.detach()).mean()
        terms["d_accuracy"] = discriminator_accuracy(logits_real, logits_fake)
        return terms

    def generator_terms(self, x: Tensor, y: Tensor, fake: Tensor, latent: Any) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        features_fake = self.discriminator_features(fake)
        if self.feature_matching:
            with torch.no_grad():
                features_real = self.discriminator_features(x)
            loss = terms["g_feature_matching"] = feature_matching_loss(features_real, features_fake)
        else:
            loss = terms["g_adversarial"] = generator_loss(self._head(features_fake))
        if self.history_g is not None:
            terms["g_historical"] = self.history_g.penalty()
            loss = loss + terms["g_historical"]
        terms = {name: value.detach() for name, value in terms.items()}
        terms["loss_g"] = loss
        return terms

    def after_discriminator_step(self) -> None:
        if self.history_d is not None:
            self.history_d.update()

    def after_generator_step(self) -> None:
        if self.history_g is not None:
            self.history_g.update()


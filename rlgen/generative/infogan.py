"""InfoGAN (Chen et al. 2016): a GAN whose latent codes are made to carry information about its samples.

The generator's input is ``[z, one_hot(c_cat), c_cont]``: noise ``z ~ U(-1, 1)^noise_dim``, a uniform
categorical code ``c_cat`` with K values and continuous codes ``c_cont ~ U(-1, 1)``. A head Q on the
discriminator's trunk predicts the codes back from the sample: a categorical distribution for ``c_cat`` and
Gaussians with fixed sd 1 (means predicted) for ``c_cont``. The variational lower bound on the mutual
information between the categorical code and the sample,

    L_I = E[log Q(c_cat | G(z, c))] + H(c_cat),    H(c_cat) = ln K,

is reported as ``"mi_lower_bound"`` (at most ln K ~= 2.30 for K = 10); the continuous codes' bound
``E[log N(c_cont; mu, 1)] + n_continuous * ln 2`` as ``"mi_continuous"`` (loose: the fixed sd 1 caps it below
the codes' entropy). Both players maximise ``lambda_info * (log Q(c_cat) + log Q(c_cont))`` besides their
adversarial losses; the constant entropies do not matter for training.

Who trains what (the paper gives lr 2e-4 for D and 1e-3 for G): the optimiser ``"g"`` (lr x
``generator_lr_ratio``, 1e-3 by default) steps the generator and the Q head; ``"d"`` (2e-4) steps the
shared trunk and the real/fake head. The information term is in both losses, as in the released code, so
the trunk also learns features that make the codes recoverable (through the discriminator's step), while
the Q head itself moves at the generator's pace.

Networks (the paper's MNIST ones at ``width=64``): G dense 1024 -> dense 128 x 7 x 7 -> transposed convs
64 -> 1, batch norm and ReLU; D convs 64 -> 128 (batch norm from the second), LeakyReLU, dense 1024; Q dense
128 (batch norm, LeakyReLU) -> code parameters. Other image sizes get more or fewer stride-2 layers (see
:func:`rlgen.generative.dcgan.image_levels`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.generative.dcgan import ConvDiscriminatorTrunk, ConvGenerator
from rlgen.generative.gan_parts import (
    AdversarialModel,
    discriminator_accuracy,
    discriminator_bce,
    generator_loss,
)

__all__ = ["InfoGAN", "Latent", "categorical_information", "categorical_log_posterior", "posterior_head"]

# Leak of the Q head's LeakyReLU, as in the discriminator.
_LEAK = 0.2
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

# (noise (B, noise_dim), categorical code (B,) int64, continuous codes (B, n_continuous))
Latent = tuple[Tensor, Tensor, Tensor]


# --- the posterior Q, shared with InfoGAIL (rlgen.imitation.infogail) ---------------------------------------

def posterior_head(in_features: int, hidden: int, n_outputs: int, *, batch_norm: bool = True) -> nn.Sequential:
    """InfoGAN's Q head: dense ``hidden`` (batch norm, LeakyReLU 0.2) -> ``n_outputs`` code parameters.

    The first K outputs are a categorical code's logits (see :func:`categorical_information`).
    ``batch_norm=False`` gives the first layer a bias instead: a posterior queried on a few rows at a
    time, as InfoGAIL's reward is at every env step, has no batch whose statistics it could use, and in
    eval mode its running statistics would make the reward differ from what Q was trained on.
    """
    if batch_norm:
        return nn.Sequential(nn.Linear(in_features, hidden, bias=False), nn.BatchNorm1d(hidden),
                             nn.LeakyReLU(_LEAK), nn.Linear(hidden, n_outputs))
    return nn.Sequential(nn.Linear(in_features, hidden), nn.LeakyReLU(_LEAK), nn.Linear(hidden, n_outputs))


def categorical_log_posterior(logits: Tensor, codes: Tensor) -> Tensor:
    """log Q(c | x) per row (B,), from Q's logits (B, K) and the codes (B,) int64 that made the rows."""
    return -F.cross_entropy(logits, codes, reduction="none")


def categorical_information(logits: Tensor, codes: Tensor) -> dict[str, Tensor]:
    """The categorical code's information terms on a batch.

    ``log_q``: mean log Q(c | x), differentiable (maximised by Q, and by whoever makes x);
    ``mi_lower_bound``: ``log_q + ln K``, the variational lower bound on I(c; x) for a uniform code
    (at most ln K); ``q_accuracy``: how often Q's most probable code is the true one. The last two are
    detached.
    """
    log_q = categorical_log_posterior(logits, codes).mean()
    return {
        "log_q": log_q,
        "mi_lower_bound": log_q.detach() + math.log(logits.shape[1]),
        "q_accuracy": (logits.detach().argmax(dim=1) == codes).float().mean(),
    }


class InfoGAN(AdversarialModel):
    """InfoGAN with one categorical and ``n_continuous`` uniform codes.

    Example:
        >>> gan = InfoGAN((1, 8, 8), n_categories=3, noise_dim=4, width=8)
        >>> logs = gan.train_step((torch.rand(6, 1, 8, 8), torch.full((6,), -1)), gan.configure_optimizers())
        >>> gan.sample(4, category=2).shape
        torch.Size([4, 1, 8, 8])
    """

    default_lr = 2e-4
    default_betas = (0.5, 0.999)

    def __init__(self, image_shape: tuple[int, ...], n_categories: int = 10, n_continuous: int = 2,
                 noise_dim: int = 62, lambda_info: float = 1.0, *, lambda_continuous: float | None = None,
                 width: int = 64, hidden: int | None = None, q_hidden: int | None = None,
                 generator_lr_ratio: float = 5.0) -> None:
        super().__init__()
        if n_categories < 2:
            raise ValueError(f"n_categories must be >= 2, got {n_categories}")
        if n_continuous < 0 or noise_dim < 0:
            raise ValueError(f"n_continuous and noise_dim must be >= 0, got {n_continuous}, {noise_dim}")
        if lambda_info < 0 or (lambda_continuous is not None and lambda_continuous < 0):
            raise ValueError("the information weights must be >= 0")
        self.image_shape = tuple(image_shape)
        self.n_categories = n_categories
        self.n_continuous = n_continuous
        self.noise_dim = noise_dim
        self.lambda_info = lambda_info
        self.lambda_continuous = lambda_info if lambda_continuous is None else lambda_continuous
        self.generator_lr_ratio = generator_lr_ratio
        hidden = 16 * width if hidden is None else hidden
        q_hidden = 2 * width if q_hidden is None else q_hidden
        self.generator = ConvGenerator(noise_dim + n_categories + n_continuous, self.image_shape,
                                       width, hidden=hidden)
        self.trunk = ConvDiscriminatorTrunk(self.image_shape, width, hidden=hidden)
        self.head = nn.Linear(self.trunk.out_features, 1)
        self.q_head = posterior_head(self.trunk.out_features, q_hidden, n_categories + n_continuous)

    # --- the players --------------------------------------------------------------------------------------

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters()) + list(self.head.parameters())

    def generator_parameters(self) -> list[nn.Parameter]:
        """The generator's and the Q head's parameters: Q is stepped with G (see the module docstring)."""
        return list(self.generator.parameters()) + list(self.q_head.parameters())

    def configure_optimizers(self, lr: float | None = None, betas: tuple[float, float] | None = None
                             ) -> dict[str, torch.optim.Optimizer]:
        """``"d"`` at ``lr`` (2e-4), ``"g"`` (generator + Q) at ``lr * generator_lr_ratio`` (1e-3)."""
        lr = self.default_lr if lr is None else lr
        betas = self.default_betas if betas is None else betas
        return {"d": torch.optim.Adam(self.discriminator_parameters(), lr=lr, betas=betas),
                "g": torch.optim.Adam(self.generator_parameters(), lr=lr * self.generator_lr_ratio, betas=betas)}

    def discriminator_logits(self, x: Tensor) -> Tensor:
        """Logits (B,) of "x is real"."""
        return self.head(self.trunk(x)).squeeze(1)

    def _code_parameters(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Q's categorical logits (B, K) and continuous means (B, n_continuous) from trunk features."""
        out = self.q_head(features)
        return out[:, :self.n_categories], out[:, self.n_categories:]

    def draw_latent(self, n: int, category: int | Tensor | None = None, continuous: Tensor | None = None
                    ) -> Latent:
        """Noise and codes for ``n`` samples; ``category`` / ``continuous`` fix the codes if given."""
        device = self.device
        noise = torch.rand(n, self.noise_dim, device=device) * 2.0 - 1.0
        if category is None:
            codes = torch.randint(self.n_categories, (n,), device=device)
        else:
            codes = torch.as_tensor(category, dtype=torch.long, device=device).expand(n).clone()
            if bool(((codes < 0) | (codes >= self.n_categories)).any()):
                raise ValueError(f"category must be in [0, {self.n_categories}), got {category}")
        if continuous is None:
            values = torch.rand(n, self.n_continuous, device=device) * 2.0 - 1.0
        else:
            values = torch.as_tensor(continuous, dtype=torch.float32, device=device).expand(n, self.n_continuous)
        return noise, codes, values

    def generate(self, latent: Latent) -> Tensor:
        noise, codes, values = latent
        return self.generator(torch.cat([noise, F.one_hot(codes, self.n_categories).float(), values], dim=1))

    @torch.no_grad()
    def sample(self, n: int, category: int | Tensor | None = None, continuous: Tensor | None = None) -> Tensor:
        """``n`` images (n, C, H, W) in [0, 1] in eval mode; ``category`` (an int or (n,) tensor) and
        ``continuous`` ((n_continuous,) or (n, n_continuous)) fix the codes, else they are drawn."""
        was_training = self.training
        self.eval()
        try:
            return self.generate(self.draw_latent(n, category, continuous)).clamp(0.0, 1.0)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def infer_codes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Q's category probabilities (B, K) and continuous-code means (B, n_continuous), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            logits, means = self._code_parameters(self.trunk(x))
            return logits.softmax(dim=1), means
        finally:
            self.train(was_training)

    # --- the losses ---------------------------------------------------------------------------------------

    def _information(self, features_fake: Tensor, latent: Latent) -> dict[str, Tensor]:
        """log Q of the codes that made the samples, and the weighted information loss."""
        _, codes, values = latent
        logits, means = self._code_parameters(features_fake)
        categorical = categorical_information(logits, codes)
        log_q_continuous = (-0.5 * (values - means).square() - _HALF_LOG_2PI).sum(dim=1).mean()
        return {
            "info_loss": -(self.lambda_info * categorical["log_q"] + self.lambda_continuous * log_q_continuous),
            "mi_lower_bound": categorical["mi_lower_bound"],
            "mi_continuous": log_q_continuous.detach() + self.n_continuous * math.log(2.0),
            "q_accuracy": categorical["q_accuracy"],
        }

    def discriminator_terms(self, x: Tensor, y: Tensor, fake: Tensor, latent: Latent) -> dict[str, Tensor]:
        logits_real = self.discriminator_logits(x)
        features_fake = self.trunk(fake)
        logits_fake = self.head(features_fake).squeeze(1)
        bce = discriminator_bce(logits_real, logits_fake)
        information = self._information(features_fake, latent)
        return {
            "loss_d": bce + information["info_loss"],
            "d_bce": bce.detach(),
            "d_real": torch.sigmoid(logits_real.detach()).mean(),
            "d_fake": torch.sigmoid(logits_fake.detach()).mean(),
            "d_accuracy": discriminator_accuracy(logits_real, logits_fake),
        }

    def generator_terms(self, x: Tensor, y: Tensor, fake: Tensor, latent: Latent) -> dict[str, Tensor]:
        features_fake = self.trunk(fake)
        adversarial = generator_loss(self.head(features_fake).squeeze(1))
        information = self._information(features_fake, latent)
        terms = {"loss_g": adversarial + information["info_loss"], "g_adversarial": adversarial.detach()}
        terms.update({name: value.detach() for name, value in information.items()})
        return terms

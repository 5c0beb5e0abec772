"""PixelCNN (van den Oord et al. 2016): an exact autoregressive density over discretised images or vectors.

``p(x) = prod_i p(x_i | x_<i)`` in raster order (rows top to bottom, pixels left to right, and within a pixel
channel 0, 1, ...). Each conditional is a :class:`~rlgen.generative.likelihoods.Categorical` over the
``n_levels`` levels or a :class:`~rlgen.generative.likelihoods.DiscretizedLogistic`, so ``log_prob`` is an exact
discrete log-likelihood.

Images, ``gated=True`` (default): the Gated PixelCNN of van den Oord et al. (2016b, "Conditional Image
Generation with PixelCNN Decoders"). A *vertical stack* convolves the rows above and the current row and is
handed to the *horizontal stack* shifted down by one row, so it only brings in rows strictly above; the
horizontal stack convolves the pixels to the left of the current one in its row. Together they cover every
earlier pixel: no blind spot. Units are ``tanh(a) * sigmoid(b)`` gates, and the horizontal stack has residual
connections. A conditioning vector adds a learned bias to every gate (the paper's conditional PixelCNN).
Channels (C > 1) are handled as in the PixelRNN paper: the feature maps are split into C groups, and at the
current pixel group c may only see input channels < c (mask A, first layer) or feature groups <= c (mask B).

Images, ``gated=False``: the original PixelCNN (7x7 mask-A convolution, then residual ReLU blocks of 3x3
mask-B convolutions). Simpler, but it has the known blind spot (pixels up and to the right are never seen).

Vectors (B, D) are treated as a sequence of D values. A stack of 1-D masked convolutions would only see a
few earlier dimensions, which is poor for RL observations where the relevant dimension can be anywhere, so
they are modelled with a :class:`~rlgen.generative.made.MADE` instead: every dimension sees all earlier ones.

:class:`AutoregressiveDensity` holds what PixelCNN and :class:`~rlgen.generative.PixelRNN` share: input
checks, ``log_prob``, ``loss``, ancestral ``sample`` and snapshot/restore.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.generative.base import Batch
from rlgen.generative.likelihoods import (
    Categorical,
    DiscretizedLogistic,
    SnapshotMixin,
    from_levels,
    to_levels,
)
from rlgen.generative.made import MADE

__all__ = ["AutoregressiveDensity", "MaskedConv2d", "PixelCNN", "causal_conv_mask", "channel_groups"]


def channel_groups(n_channels: int, n_groups: int) -> Tensor:
    """Which of ``n_groups`` contiguous blocks each of ``n_channels`` feature channels belongs to."""
    return torch.arange(n_channels) * n_groups // n_channels


def causal_conv_mask(out_groups: Tensor, in_groups: Tensor, kernel_size: tuple[int, int], centre: tuple[int, int],
                     strict: bool) -> Tensor:
    """A (out, in, kh, kw) 0/1 mask for a convolution whose tap ``centre`` lands on the current pixel.

    Taps on earlier rows, or on the current row left of ``centre``, are open; taps after it are closed. At the
    current pixel an output of group g sees input groups < g (``strict``, mask A) or <= g (mask B).
    """
    kh, kw = kernel_size
    ci, cj = centre
    spatial = torch.zeros(kh, kw)
    spatial[:ci] = 1.0
    spatial[ci, :cj] = 1.0
    mask = spatial.expand(len(out_groups), len(in_groups), kh, kw).clone()
    if strict:
        current = out_groups[:, None] > in_groups[None, :]
    else:
        current = out_groups[:, None] >= in_groups[None, :]
    mask[:, :, ci, cj] = current.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 2-D convolution with a fixed weight mask and explicit (left, right, top, bottom) zero padding."""

    mask: Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], mask: Tensor,
                 padding: tuple[int, int, int, int] = (0, 0, 0, 0)) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=0)
        if mask.shape != self.weight.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
        self.register_buffer("mask", mask.float())
        self.pad = padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, self.pad), self.weight * self.mask, self.bias)


def causal_conv(in_channels: int, out_channels: int, in_groups: Tensor, out_groups: Tensor,
                kernel_size: tuple[int, int], strict: bool) -> MaskedConv2d:
    """A masked convolution centred on the current pixel (same output size), kernel centre ``(kh//2, kw//2)``."""
    kh, kw = kernel_size
    mask = causal_conv_mask(out_groups, in_groups, kernel_size, (kh // 2, kw // 2), strict)
    return MaskedConv2d(in_channels, out_channels, kernel_size, mask, (kw // 2, kw // 2, kh // 2, kh // 2))


def left_conv(in_channels: int, out_channels: int, in_groups: Tensor, out_groups: Tensor, width: int,
              strict: bool) -> MaskedConv2d:
    """A 1 x ``width`` convolution over the current pixel and the ``width - 1`` pixels left of it in its row."""
    mask = causal_conv_mask(out_groups, in_groups, (1, width), (0, width - 1), strict)
    return MaskedConv2d(in_channels, out_channels, (1, width), mask, (width - 1, 0, 0, 0))


def down_shift(x: Tensor) -> Tensor:
    """Move every row of (B, C, H, W) maps down by one (top row zero), so row i only holds rows < i."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def check_input(x: Tensor, input_shape: tuple[int, ...], context: Tensor | None, context_dim: int) -> None:
    """One-line ValueErrors for inputs a density model cannot score: wrong shape, outside [0, 1], bad context."""
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(f"expected inputs of shape (B, {', '.join(map(str, input_shape))}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("inputs must be finite floats in [0, 1]")
    check_context(context, context_dim, x.shape[0])


def check_context(context: Tensor | None, context_dim: int, batch_size: int) -> None:
    """One-line errors for a missing, unexpected or mis-shaped conditioning vector."""
    if context_dim == 0:
        if context is not None:
            raise ValueError("context given, but the model was built with context_dim=0")
        return
    if context is None:
        raise ValueError(f"the model was built with context_dim={context_dim}; pass context of shape (B, "
                         f"{context_dim})")
    if context.shape != (batch_size, context_dim):
        raise ValueError(f"context must have shape ({batch_size}, {context_dim}), got {tuple(context.shape)}")


def split_batch(batch: Batch | tuple[Tensor, ...] | Tensor, context: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """``x`` and the context of a batch ``(x, y)`` or ``(x, y, context)`` (or a bare tensor ``x``)."""
    if isinstance(batch, Tensor):
        return batch, context
    if len(batch) == 3 and context is None:
        return batch[0], batch[2]
    return batch[0], context


class AutoregressiveDensity(SnapshotMixin, nn.Module):
    """Shared part of PixelCNN and PixelRNN: ``forward(x, context)`` gives the likelihood parameters of every value.

    Subclasses implement ``forward(x, context) -> (B, *input_shape, n_params)``, where the parameters at a
    position may depend only on the values before it in raster order (channels innermost) and on ``context``.
    """

    def __init__(self, input_shape: Sequence[int], n_levels: int, likelihood: str, n_mix: int,
                 context_dim: int) -> None:
        super().__init__()
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) not in (1, 3) or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (D,) or (C, H, W) with positive sizes, got {input_shape}")
        if likelihood == "categorical":
            self.likelihood: Categorical | DiscretizedLogistic = Categorical(n_levels)
        elif likelihood == "logistic":
            self.likelihood = DiscretizedLogistic(n_levels, n_mix)
        else:
            raise ValueError(f"unknown likelihood {likelihood!r}; expected 'categorical' or 'logistic'")
        if context_dim < 0:
            raise ValueError(f"context_dim must be >= 0, got {context_dim}")
        self.input_shape = input_shape
        self.n_levels = n_levels
        self.context_dim = context_dim
        self.n_params = self.likelihood.n_params

    @property
    def n_dims(self) -> int:
        """Number of discrete values per example (C * H * W or D)."""
        return math.prod(self.input_shape)

    def _check_input(self, x: Tensor, context: Tensor | None) -> None:
        check_input(x, self.input_shape, context, self.context_dim)

    def quantise(self, x: Tensor) -> Tensor:
        """``x`` snapped to the nearest of the ``n_levels`` levels, so the network sees what is scored."""
        return from_levels(to_levels(x, self.n_levels), self.n_levels, x.dtype)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Exact log-probability in nats of each example's levels, shape (B,)."""
        self._check_input(x, context)
        x = self.quantise(x)
        params = self(x, context)
        return self.likelihood.log_prob(params, x).flatten(1).sum(1)

    def log_prob_unchecked(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """:meth:`log_prob` without input validation, for inputs known to be valid, in a form ``torch.func.vmap``
        can batch (validation branches on values, which vmap cannot): the per-example prediction gains of
        :mod:`rlgen.generative.updates` use it."""
        x = self.quantise(x)
        return self.likelihood.log_prob(self.batchable_forward(x, context), x).flatten(1).sum(1)

    def batchable_forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``forward`` computed with operations ``torch.func.vmap`` can batch; the same values."""
        return self(x, context)

    def loss(self, batch: Batch | tuple[Tensor, ...], context: Tensor | None = None) -> dict[str, Tensor]:
        """Mean negative log-likelihood per example in nats (``"loss"``) and the same in bits/dim."""
        x, context = split_batch(batch, context)
        nll = -self.log_prob(x, context).mean()
        return {"loss": nll, "bits_per_dim": nll.detach() / (self.n_dims * math.log(2.0))}

    def sample_positions(self) -> list[tuple[int, ...]]:
        """Indices (without the batch axis) of the values in generation order."""
        if len(self.input_shape) == 1:
            return [(d,) for d in range(self.input_shape[0])]
        c, h, w = self.input_shape
        return [(k, i, j) for i in range(h) for j in range(w) for k in range(c)]

    @torch.no_grad()
    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        """``n`` draws by ancestral sampling, floats on the levels in [0, 1], shape (n, *input_shape).

        Runs the whole network once per value (C * H * W passes); exact, not fast.
        """
        check_context(context, self.context_dim, n)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        x = torch.zeros(n, *self.input_shape, device=device)
        for position in self.sample_positions():
            index = (slice(None), *position)
            x[index] = self.likelihood.sample(self(x, context)[index])
        self.train(was_training)
        return x


class _GatedLayer(nn.Module):
    """One layer of the Gated PixelCNN: a vertical and a horizontal stack, both with tanh * sigmoid units."""

    def __init__(self, in_channels: int, channels: int, kernel: int, n_groups: int, first: bool,
                 context_dim: int, last: bool = False) -> None:
        super().__init__()
        in_groups = torch.arange(n_groups) if first else channel_groups(channels, n_groups)
        gate_groups = channel_groups(channels, n_groups).repeat(2)  # a and b halves pair up channel by channel
        half = kernel // 2
        self.first = first
        self.vertical_pad = (half, half, half, 0)  # rows i - half .. i, columns j - half .. j + half
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (half + 1, kernel))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal = left_conv(in_channels, 2 * channels, in_groups, gate_groups, half + 1, strict=first)
        groups = channel_groups(channels, n_groups)
        self.horizontal_out = causal_conv(channels, channels, groups, groups, (1, 1), strict=False)
        # The last layer's vertical output feeds nothing, so it gets no context weights that would never train.
        self.last = last
        self.context_vertical = nn.Linear(context_dim, 2 * channels) if context_dim and not last else None
        self.context_horizontal = nn.Linear(context_dim, 2 * channels) if context_dim else None

    @staticmethod
    def _gate(x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, vertical: Tensor, horizontal: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        v = self.vertical(F.pad(vertical, self.vertical_pad))
        # Row i of v has seen row i of the input; shifting it down keeps the horizontal stack causal.
        h = self.horizontal(horizontal) + self.vertical_to_horizontal(down_shift(v))
        if context is not None:
            assert self.context_horizontal is not None
            h = h + self.context_horizontal(context)[:, :, None, None]
        h = self.horizontal_out(self._gate(h))
        if not self.first:
            h = h + horizontal
        if self.last:
            return v, h
        if context is not None:
            assert self.context_vertical is not None
            v = v + self.context_vertical(context)[:, :, None, None]
        return self._gate(v), h


class _PlainLayer(nn.Module):
    """One residual block of the original PixelCNN: ReLU, k x k mask-B convolution."""

    def __init__(self, channels: int, kernel: int, n_groups: int, context_dim: int) -> None:
        super().__init__()
        groups = channel_groups(channels, n_groups)
        self.conv = causal_conv(channels, channels, groups, groups, (kernel, kernel), strict=False)
        self.context = nn.Linear(context_dim, channels) if context_dim else None

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        h = self.conv(F.relu(x))
        if context is not None:
            assert self.context is not None
            h = h + self.context(context)[:, :, None, None]
        return x + h


class PixelCNN(AutoregressiveDensity):
    """Gated PixelCNN over (C, H, W) images, or a MADE over (D,) vectors; exact ``log_prob``.

    Args:
        input_shape: (C, H, W) or (D,).
        n_levels: number of discrete levels per value (x = level / (n_levels - 1)).
        channels: feature maps per layer (divisible by C); for vectors, the MADE's hidden width is
            ``max(channels, D)``.
        n_layers: gated (or plain) layers after the first; for vectors, the MADE has ``max(1, n_layers // 2)``
            hidden layers.
        kernel: kernel size of the layers after the first (odd).
        first_kernel: kernel size of the first layer (odd; 7 in the papers).
        gated: Gated PixelCNN without blind spot (default) or the original masked design.
        likelihood: ``"categorical"`` (softmax over levels) or ``"logistic"`` (``n_mix`` discretised logistics).
        context_dim: size of an optional conditioning vector (a learned bias on every layer).

    ``forward(x, context)`` returns the likelihood parameters, shape (B, *input_shape, n_params).
    """

    def __init__(self, input_shape: Sequence[int], n_levels: int = 256, *, channels: int = 64, n_layers: int = 5,
                 kernel: int = 3, first_kernel: int = 7, gated: bool = True, likelihood: str = "categorical",
                 n_mix: int = 1, context_dim: int = 0) -> None:
        super().__init__(input_shape, n_levels, likelihood, n_mix, context_dim)
        if kernel % 2 == 0 or first_kernel % 2 == 0:
            raise ValueError(f"kernel sizes must be odd, got kernel={kernel}, first_kernel={first_kernel}")
        self.gated = gated
        if len(self.input_shape) == 1:
            dim = self.input_shape[0]
            self.made: MADE | None = MADE(dim, [max(channels, dim)] * max(1, n_layers // 2), self.n_params,
                                          context_dim)
            return
        self.made = None
        n_channels = self.input_shape[0]
        if channels % n_channels:
            raise ValueError(f"channels ({channels}) must be divisible by the image channels ({n_channels})")
        self.layers = nn.ModuleList()
        if gated:
            self.layers.append(_GatedLayer(n_channels, channels, first_kernel, n_channels, True, context_dim,
                                           last=n_layers == 0))
            for k in range(n_layers):
                self.layers.append(_GatedLayer(channels, channels, kernel, n_channels, False, context_dim,
                                               last=k == n_layers - 1))
        else:
            self.input_conv = causal_conv(n_channels, channels, torch.arange(n_channels),
                                          channel_groups(channels, n_channels), (first_kernel, first_kernel), True)
            for _ in range(n_layers):
                self.layers.append(_PlainLayer(channels, kernel, n_channels, context_dim))
        groups = channel_groups(channels, n_channels)
        out_groups = channel_groups(n_channels * self.n_params, n_channels)  # laid out as (C, n_params)
        self.head = nn.ModuleList([
            causal_conv(channels, channels, groups, groups, (1, 1), strict=False),
            causal_conv(channels, n_channels * self.n_params, groups, out_groups, (1, 1), strict=False),
        ])

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        check_context(context, self.context_dim, x.shape[0])
        centred = 2.0 * x - 1.0
        if self.made is not None:
            return self.made(centred, context)
        if self.gated:
            v = h = centred
            for layer in self.layers:
                v, h = layer(v, h, context)
        else:
            h = self.input_conv(centred)
            for layer in self.layers:
                h = layer(h, context)
        out = self.head[1](F.relu(self.head[0](F.relu(h))))
        b, _, height, width = out.shape
        return out.view(b, self.input_shape[0], self.n_params, height, width).permute(0, 1, 3, 4, 2)

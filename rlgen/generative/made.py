"""MADE: masked autoencoder for distribution estimation (Germain et al. 2015).

An MLP whose weight matrices are multiplied by fixed binary masks so that output ``d`` depends only on the
inputs that come before ``d`` in an ordering. rlgen uses it in three places: the autoregressive transform of
the IAF posterior (``vae.py``), the density model for vectors behind :class:`~rlgen.generative.PixelCNN`, and
directly as a conditional density model ``p(s' | s, a)`` through ``context``.

A ``context`` vector (e.g. the encoder's ``h`` in IAF, or ``[s, a]`` for a dynamics model) enters every hidden
layer and the output through unmasked weights: it is known before any dimension is generated, so it may reach
all of them without breaking the autoregressive property.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MADE", "MaskedLinear"]


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied element-wise by a fixed (out_features, in_features) 0/1 mask."""

    mask: Tensor

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))

    def set_mask(self, mask: Tensor) -> None:
        """Replace the mask; its shape must be (out_features, in_features)."""
        if mask.shape != self.weight.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
        self.mask.copy_(mask.to(self.mask.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """An autoregressive MLP: ``out[:, d, :]`` depends only on ``x[:, order[:k]]`` where ``order[k] == d``.

    Args:
        in_dim: number of input dimensions D.
        hidden: widths of the hidden layers; each should be at least ``in_dim - 1`` so that every dimension
            can reach every later one.
        out_mult: outputs per input dimension (e.g. the logits of a categorical, or IAF's mean and gate).
        context_dim: size of an optional conditioning vector that reaches every layer unmasked.
        order: a permutation of ``range(in_dim)`` giving the autoregressive order; default the natural one.

    ``forward(x, context)`` returns shape (B, in_dim, out_mult).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int] = (256,), out_mult: int = 1, context_dim: int = 0,
                 order: Sequence[int] | None = None) -> None:
        super().__init__()
        if in_dim < 1 or out_mult < 1 or context_dim < 0:
            raise ValueError(f"need in_dim >= 1, out_mult >= 1, context_dim >= 0; got {in_dim}, {out_mult}, "
                             f"{context_dim}")
        if not hidden:
            raise ValueError("MADE needs at least one hidden layer")
        self.in_dim = in_dim
        self.out_mult = out_mult
        self.context_dim = context_dim
        order_t = torch.arange(in_dim) if order is None else torch.as_tensor(list(order))
        if sorted(order_t.tolist()) != list(range(in_dim)):
            raise ValueError(f"order must be a permutation of range({in_dim}), got {list(order_t.tolist())}")
        self.register_buffer("order", order_t)

        widths = [in_dim, *hidden]
        self.hidden_layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.output_layer = MaskedLinear(widths[-1], in_dim * out_mult)
        self.context_layers = nn.ModuleList(nn.Linear(context_dim, b) for b in [*hidden, in_dim * out_mult]) \
            if context_dim > 0 else nn.ModuleList()
        self._set_masks()

    def _set_masks(self) -> None:
        # Degrees: input d has degree rank(d) + 1 in 1..D; a hidden unit of degree k may see inputs of degree
        # <= k; an output of degree k may see hidden units of degree < k. Hidden degrees cycle through
        # 1..D-1 deterministically (not at random) so that every degree is present in every layer.
        degree_in = torch.empty(self.in_dim, dtype=torch.long)
        degree_in[self.order] = torch.arange(1, self.in_dim + 1)
        previous = degree_in
        for layer in self.hidden_layers:
            n_units = layer.out_features
            if self.in_dim > 1:
                degree = torch.arange(n_units) % (self.in_dim - 1) + 1
            else:
                degree = torch.zeros(n_units, dtype=torch.long)  # a lone dimension depends on nothing
            layer.set_mask(degree[:, None] >= previous[None, :])
            previous = degree
        degree_out = degree_in.repeat_interleave(self.out_mult)  # output row d * out_mult + m has x_d's degree
        self.output_layer.set_mask(degree_out[:, None] > previous[None, :])

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"MADE expects inputs of shape (B, {self.in_dim}), got {tuple(x.shape)}")
        if (context is None) != (self.context_dim == 0):
            raise ValueError(f"this MADE has context_dim={self.context_dim}; context given: {context is not None}")
        h = x
        for i, layer in enumerate(self.hidden_layers):
            h = layer(h)
            if context is not None:
                h = h + self.context_layers[i](context)
            h = F.elu(h)
        out = self.output_layer(h)
        if context is not None:
            out = out + self.context_layers[-1](context)
        return out.view(x.shape[0], self.in_dim, self.out_mult)

"""PixelRNN (van den Oord, Kalchbrenner, Kavukcuoglu 2016): LSTM layers over an image, exact ``log_prob``.

Same factorisation and likelihoods as :class:`~rlgen.generative.PixelCNN` (raster order, channels innermost,
softmax over ``n_levels`` levels or discretised logistics), but the layers are recurrent:

* first a k x k convolution with mask A (the current pixel's channel c sees only channels < c);
* ``kind="row_lstm"``: the image is processed row by row. The input-to-state part is a masked 1 x k
  convolution over the current row (the pixel and the pixels left of it, computed for all rows at once);
  the state-to-state part is a 1 x k convolution over the previous row's hidden states. Its context is a
  triangle above the pixel (the paper's Row LSTM, which does not see every earlier pixel);
* ``kind="diagonal_bilstm"``: each row of the input is shifted right by its index ("skewed"), so that one
  column of the skewed map is one diagonal of the image, and an LSTM runs over these columns with a 2 x 1
  state-to-state convolution (the state of the pixel to the left and the one above). A second LSTM does the
  same on the mirrored image; its output is shifted down one row so that it only brings in rows above. The
  sum of the two sees every earlier pixel (with one addition to the paper's recipe, see ``_DiagonalBiLSTM``);
* residual connections around each LSTM layer, then two masked 1 x 1 convolutions to the output parameters.

With C > 1 channels every feature map is split into C groups as in the paper, and masks at the current pixel
keep group c from seeing channels >= c (mask A) or groups > c (mask B). A conditioning vector adds a learned
bias to every LSTM gate.

Vectors (B, D) are a sequence of D values: an ``nn.LSTM`` reads the previous value (and the context) at each
step and emits the parameters of the next one; sampling then carries the LSTM state instead of rerunning it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.generative.pixelcnn import (
    AutoregressiveDensity,
    causal_conv,
    channel_groups,
    check_context,
    down_shift,
    left_conv,
)

__all__ = ["PixelRNN"]

_KINDS = ("row_lstm", "diagonal_bilstm")


def _lstm_update(gates: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step from the pre-activations (o, f, i, g stacked on dim 1); returns (hidden, cell)."""
    o, f, i, g = gates.chunk(4, dim=1)
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(cell), cell


def _unrolled_lstm(lstm: nn.LSTM, inputs: Tensor) -> Tensor:
    """The outputs of a batch-first ``nn.LSTM`` (zero initial state) computed step by step from its weights."""
    sequence = inputs
    for k in range(lstm.num_layers):
        weight_hh = getattr(lstm, f"weight_hh_l{k}")
        bias = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
        input_gates = sequence @ getattr(lstm, f"weight_ih_l{k}").T + bias
        hidden = cell = inputs.new_zeros(inputs.shape[0], lstm.hidden_size)
        outputs = []
        for t in range(inputs.shape[1]):
            i, f, g, o = (input_gates[:, t] + hidden @ weight_hh.T).chunk(4, dim=-1)  # PyTorch's gate order
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            hidden = torch.sigmoid(o) * torch.tanh(cell)
            outputs.append(hidden)
        sequence = torch.stack(outputs, dim=1)
    return sequence


def skew(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, H, W + H - 1) with row i moved right by i; column t then holds diagonal t."""
    b, c, h, w = x.shape
    out = x.new_zeros(b, c, h, w + h - 1)
    for i in range(h):
        out[:, :, i, i : i + w] = x[:, :, i]
    return out


def unskew(x: Tensor, width: int) -> Tensor:
    """Inverse of :func:`skew`."""
    return torch.stack([x[:, :, i, i : i + width] for i in range(x.shape[2])], dim=2)


class _RowLSTM(nn.Module):
    def __init__(self, hidden: int, n_groups: int, kernel: int, context_dim: int) -> None:
        super().__init__()
        groups = channel_groups(hidden, n_groups)
        gate_groups = groups.repeat(4)
        self.input_to_state = left_conv(hidden, 4 * hidden, groups, gate_groups, kernel // 2 + 1, strict=False)
        # The previous row is entirely known, so the state-to-state convolution needs no mask.
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2)
        self.output = causal_conv(hidden, hidden, groups, groups, (1, 1), strict=False)
        self.context = nn.Linear(context_dim, 4 * hidden) if context_dim else None

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        b, hidden, height, width = x.shape
        gates = self.input_to_state(x)
        if context is not None:
            assert self.context is not None
            gates = gates + self.context(context)[:, :, None, None]
        state = cell = x.new_zeros(b, hidden, width)
        rows = []
        for i in range(height):
            state, cell = _lstm_update(gates[:, :, i] + self.state_to_state(state), cell)
            rows.append(state)
        return x + self.output(torch.stack(rows, dim=2))


class _DiagonalLSTM(nn.Module):
    """One direction of the Diagonal BiLSTM (left to right over the skewed image)."""

    def __init__(self, hidden: int, n_groups: int, context_dim: int) -> None:
        super().__init__()
        groups = channel_groups(hidden, n_groups)
        self.input_to_state = causal_conv(hidden, 4 * hidden, groups, groups.repeat(4), (1, 1), strict=False)
        # Over the rows of the previous skewed column: output row i reads states i - 1 (above) and i (left).
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 2)
        self.context = nn.Linear(context_dim, 4 * hidden) if context_dim else None

    def forward(self, x: Tensor, context: Tensor | None, extra_gates: Tensor | None = None) -> Tensor:
        b, hidden, height, width = x.shape
        gates = self.input_to_state(x)
        if extra_gates is not None:
            gates = gates + extra_gates
        if context is not None:
            assert self.context is not None
            gates = gates + self.context(context)[:, :, None, None]
        gates = skew(gates)
        state = cell = x.new_zeros(b, hidden, height)
        columns = []
        for t in range(gates.shape[-1]):
            recurrent = self.state_to_state(F.pad(state, (1, 0)))
            state, cell = _lstm_update(gates[:, :, :, t] + recurrent, cell)
            columns.append(state)
        return unskew(torch.stack(columns, dim=3), width)


class _DiagonalBiLSTM(nn.Module):
    """Both directions of a Diagonal BiLSTM layer, with a residual connection.

    The mask-A features at (i, j) never hold the pixel (i, j) itself, so the last pixel of a row would only
    reach the next row's outputs through features of that next row, which the mirrored pass may not use and the
    forward pass only sees from its own column on. The first layer therefore also feeds the raw pixels,
    unmasked, into the mirrored pass: its states then cover whole rows to the right, which is safe because
    they are only used one row further down. This closes the gap; every earlier pixel is seen.
    """

    def __init__(self, hidden: int, n_groups: int, context_dim: int, raw_channels: int = 0) -> None:
        super().__init__()
        groups = channel_groups(hidden, n_groups)
        self.left_to_right = _DiagonalLSTM(hidden, n_groups, context_dim)
        self.right_to_left = _DiagonalLSTM(hidden, n_groups, context_dim)
        self.raw_to_state = nn.Conv2d(raw_channels, 4 * hidden, 1) if raw_channels else None
        self.output = causal_conv(hidden, hidden, groups, groups, (1, 1), strict=False)

    def forward(self, x: Tensor, context: Tensor | None, raw: Tensor | None = None) -> Tensor:
        forward_states = self.left_to_right(x, context)
        extra = None
        if self.raw_to_state is not None:
            assert raw is not None
            extra = self.raw_to_state(raw).flip(3)
        # The mirrored pass at (i, j) has seen pixels right of j in row i: only its row above may be used.
        backward_states = self.right_to_left(x.flip(3), context, extra).flip(3)
        return x + self.output(forward_states + down_shift(backward_states))


class PixelRNN(AutoregressiveDensity):
    """Row LSTM or Diagonal BiLSTM PixelRNN over (C, H, W) images; an LSTM over the dimensions of (D,) vectors.

    Args:
        input_shape: (C, H, W) or (D,).
        n_levels: number of discrete levels per value (x = level / (n_levels - 1)).
        hidden: feature maps (images, divisible by C) or LSTM units (vectors).
        n_layers: number of LSTM layers.
        kind: ``"row_lstm"`` or ``"diagonal_bilstm"`` (images only; vectors always use a plain LSTM).
        first_kernel: size of the first, mask-A convolution (odd; 7 in the paper).
        kernel: width of the Row LSTM's input-to-state and state-to-state convolutions (odd; 3 in the paper).
        likelihood: ``"categorical"`` or ``"logistic"`` (``n_mix`` discretised logistics).
        context_dim: size of an optional conditioning vector (a learned bias on every LSTM gate).

    ``forward(x, context)`` returns the likelihood parameters, shape (B, *input_shape, n_params).
    """

    def __init__(self, input_shape: Sequence[int], n_levels: int = 256, *, hidden: int = 32, n_layers: int = 2,
                 kind: str = "row_lstm", first_kernel: int = 7, kernel: int = 3, likelihood: str = "categorical",
                 n_mix: int = 1, context_dim: int = 0) -> None:
        super().__init__(input_shape, n_levels, likelihood, n_mix, context_dim)
        if kind not in _KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {_KINDS}")
        if first_kernel % 2 == 0 or kernel % 2 == 0:
            raise ValueError(f"kernel sizes must be odd, got first_kernel={first_kernel}, kernel={kernel}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        self.kind = kind
        if len(self.input_shape) == 1:
            # Inputs per step: the previous value, a first-step flag (the previous value is then a dummy 0,
            # which is also a real value), and the context.
            self.lstm: nn.LSTM | None = nn.LSTM(2 + context_dim, hidden, n_layers, batch_first=True)
            self.sequence_head = nn.Linear(hidden, self.n_params)
            return
        self.lstm = None
        n_channels = self.input_shape[0]
        if hidden % n_channels:
            raise ValueError(f"hidden ({hidden}) must be divisible by the image channels ({n_channels})")
        groups = channel_groups(hidden, n_channels)
        self.input_conv = causal_conv(n_channels, hidden, torch.arange(n_channels), groups,
                                      (first_kernel, first_kernel), strict=True)
        self.layers = nn.ModuleList(
            _RowLSTM(hidden, n_channels, kernel, context_dim) if kind == "row_lstm"
            else _DiagonalBiLSTM(hidden, n_channels, context_dim, raw_channels=n_channels if k == 0 else 0)
            for k in range(n_layers)
        )
        out_groups = channel_groups(n_channels * self.n_params, n_channels)  # laid out as (C, n_params)
        self.head = nn.ModuleList([
            causal_conv(hidden, hidden, groups, groups, (1, 1), strict=False),
            causal_conv(hidden, n_channels * self.n_params, groups, out_groups, (1, 1), strict=False),
        ])

    def _sequence_inputs(self, previous: Tensor, first: Tensor, context: Tensor | None) -> Tensor:
        parts = [previous.unsqueeze(-1), first.unsqueeze(-1)]
        if context is not None:
            parts.append(context.unsqueeze(1).expand(-1, previous.shape[1], -1))
        return torch.cat(parts, dim=-1)

    def _vector_sequence(self, x: Tensor, context: Tensor | None) -> Tensor:
        """The LSTM's input sequence for vectors: at step d the value d - 1 (centred), a first-step flag, the context."""
        previous = F.pad(2.0 * x[:, :-1] - 1.0, (1, 0))
        first = F.pad(torch.ones_like(previous[:, :1]), (0, previous.shape[1] - 1))
        return self._sequence_inputs(previous, first, context)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        check_context(context, self.context_dim, x.shape[0])
        centred = 2.0 * x - 1.0
        if self.lstm is not None:
            out, _ = self.lstm(self._vector_sequence(x, context))
            return self.sequence_head(out)
        h = self.input_conv(centred)
        for k, layer in enumerate(self.layers):
            h = layer(h, context, centred) if k == 0 and self.kind == "diagonal_bilstm" else layer(h, context)
        out = self.head[1](F.relu(self.head[0](F.relu(h))))
        b, _, height, width = out.shape
        return out.view(b, self.input_shape[0], self.n_params, height, width).permute(0, 1, 3, 4, 2)

    def batchable_forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``forward`` in a form ``torch.func.vmap`` can batch: for vectors the LSTM is unrolled by hand over the
        same weights, because vmap has no batching rule for ``nn.LSTM``'s fused kernel. Same values (up to float
        rounding); about 3x slower than the fused kernel, so training keeps using :meth:`forward`."""
        if self.lstm is None:
            return self(x, context)
        check_context(context, self.context_dim, x.shape[0])
        return self.sequence_head(_unrolled_lstm(self.lstm, self._vector_sequence(x, context)))

    @torch.no_grad()
    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        """``n`` draws by ancestral sampling, floats on the levels in [0, 1], shape (n, *input_shape)."""
        if self.lstm is None:
            return super().sample(n, context)
        check_context(context, self.context_dim, n)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        x = torch.zeros(n, self.input_shape[0], device=device)
        previous = torch.zeros(n, 1, device=device)
        first = torch.ones(n, 1, device=device)
        state = None
        for d in range(self.input_shape[0]):
            out, state = self.lstm(self._sequence_inputs(previous, first, context), state)
            x[:, d] = self.likelihood.sample(self.sequence_head(out[:, 0]))
            previous = 2.0 * x[:, d : d + 1] - 1.0
            first = torch.zeros_like(first)
        self.train(was_training)
        return x

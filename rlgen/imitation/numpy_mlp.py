"""A torch MLP's forward pass in numpy, for the few rows an env step asks about.

GAIL's discriminator reward and InfoGAIL's posterior reward are computed at every env step on one row per
env. At that size torch spends most of its time in per-operation overhead (a 2 x 100 tanh MLP took ~115 us
here, the same product in numpy a fraction of that), which is what cost GAIL a sixth of PPO's speed.
:class:`NumpyMLP` runs the same layers on numpy views of the module's own parameter memory: nothing is
copied, so an optimiser step or ``load_state_dict`` (both write in place) is seen by the next call, and a
parameter whose storage was replaced (``.to(...)``, ``param.data = ...``) is looked up again.

Only plain ``nn.Linear`` layers (no weight or spectral norm parametrisation) and elementwise activations
whose behaviour does not depend on train/eval mode are supported; :meth:`NumpyMLP.of` returns None for
anything else, and the caller keeps its torch path.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from torch import Tensor, nn

_Op = tuple[str, float, "nn.Linear | None"]


def _flatten(modules: Iterable[nn.Module]) -> list[nn.Module]:
    flat: list[nn.Module] = []
    for module in modules:
        flat += _flatten(module) if type(module) is nn.Sequential else [module]
    return flat


def _op(module: nn.Module) -> _Op | None:
    if module._forward_pre_hooks or module._forward_hooks:  # e.g. the old hook-based nn.utils.weight_norm
        return None
    kind = type(module)  # exact types: a parametrised layer (weight or spectral norm) is a subclass
    if kind is nn.Linear and isinstance(module, nn.Linear) and "weight" in module._parameters:
        return ("linear", 0.0, module)
    if kind is nn.Tanh:
        return ("tanh", 0.0, None)
    if kind is nn.ReLU:
        return ("relu", 0.0, None)
    if kind is nn.LeakyReLU and isinstance(module, nn.LeakyReLU):
        return ("leaky_relu", float(module.negative_slope), None)
    if kind is nn.ELU and isinstance(module, nn.ELU):
        return ("elu", float(module.alpha), None)
    if kind is nn.Identity:
        return ("identity", 0.0, None)
    return None


class NumpyMLP:
    """The forward pass of a stack of layers in numpy (see the module docstring). Build it with :meth:`of`."""

    def __init__(self, ops: list[_Op]) -> None:
        self._ops = ops
        self._linears = [module for _, _, module in ops if module is not None]
        self._key: tuple[int, ...] | None = None  # None: no views made yet (a stack without linear layers too)
        self._weights: list[np.ndarray | None] = []  # per op: the weight's transpose (linear) or None
        self._biases: list[np.ndarray | None] = []
        self._standardise_key: tuple[int, int] = (0, 0)
        self._standardise_arrays: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def of(cls, modules: nn.Module | Iterable[nn.Module]) -> NumpyMLP | None:
        """The numpy forward of ``modules`` (one module or a sequence, nested ``nn.Sequential`` unrolled),
        or None if one of them is not supported or a parameter is not a float tensor on the CPU."""
        layers = _flatten([modules] if isinstance(modules, nn.Module) else modules)
        ops = [_op(layer) for layer in layers]
        if not ops or any(op is None for op in ops):
            return None
        for layer in layers:
            for param in layer.parameters():
                if param.device.type != "cpu" or not param.dtype.is_floating_point:
                    return None
        return cls([op for op in ops if op is not None])

    def _parameters(self) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
        """Numpy views of every linear layer's weight (transposed) and bias, made again only when a parameter
        is another tensor than at the last call (replaced, or its ``.data`` swapped): an in-place change (an
        optimiser step, ``load_state_dict``) is seen through the views themselves."""
        tensors = []
        for module in self._linears:  # read from the module: a parameter replaced by another one is seen
            params = module._parameters
            tensors.append(params["weight"])
            tensors.append(params["bias"])
        key = tuple(0 if t is None else t.data_ptr() for t in tensors)
        if key != self._key:
            weights: list[np.ndarray | None] = []
            biases: list[np.ndarray | None] = []
            linear = iter(range(0, len(tensors), 2))
            for _, _, module in self._ops:
                if module is None:
                    weights.append(None)
                    biases.append(None)
                    continue
                i = next(linear)
                weights.append(tensors[i].detach().numpy().T)  # type: ignore[union-attr]
                bias = tensors[i + 1]
                biases.append(None if bias is None else bias.detach().numpy())
            self._weights, self._biases, self._key = weights, biases, key
        return self._weights, self._biases

    def __call__(self, x: np.ndarray, standardise: tuple[Tensor, Tensor, float] | None = None) -> np.ndarray:
        """The layers' output on rows ``x``; with ``standardise=(mean, std, clip)`` (tensors read at each
        call, like the parameters) the rows are first standardised and clipped to [-clip, clip].

        This runs at every env step on a row or a few, where each numpy call's fixed cost is most of the
        time: the intermediate arrays are written in place once this call owns them (never ``x`` itself).
        """
        weights, biases = self._parameters()
        owned = False
        if standardise is not None:
            mean, std, clip = standardise
            key = (mean.data_ptr(), std.data_ptr())
            if key != self._standardise_key or self._standardise_arrays is None:
                self._standardise_arrays = (mean.detach().numpy(), std.detach().numpy())
                self._standardise_key = key
            mean_np, std_np = self._standardise_arrays
            x = np.subtract(x, mean_np)
            np.divide(x, std_np, out=x)
            np.minimum(x, clip, out=x)  # two ufuncs: np.clip's own overhead is twice theirs
            np.maximum(x, -clip, out=x)
            owned = True
        for (kind, arg, _), weight, bias in zip(self._ops, weights, biases, strict=True):
            if weight is not None:  # linear
                x = x.astype(weight.dtype, copy=False) @ weight  # the operator: np.matmul's call costs more
                if bias is not None:
                    np.add(x, bias, out=x)
                owned = True
            elif kind == "tanh":
                x = np.tanh(x, out=x) if owned else np.tanh(x)
                owned = True
            elif kind == "relu":
                x = np.maximum(x, 0, out=x) if owned else np.maximum(x, 0)
                owned = True
            elif kind == "leaky_relu":
                x = np.where(x >= 0, x, x * arg)
                owned = True
            elif kind == "elu":
                x = np.where(x > 0, x, arg * np.expm1(np.minimum(x, 0)))
                owned = True
        return x

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


def numpy_view(tensor: Tensor, cache: dict[int, tuple[int, np.ndarray]], key: int) -> np.ndarray:
    """A numpy view of a CPU tensor's memory, kept in ``cache[key]`` and made again when the tensor's
    storage changed since (a new tensor, or ``.data`` replaced)."""
    ptr = tensor.data_ptr()
    hit = cache.get(key)
    if hit is None or hit[0] != ptr:
        hit = cache[key] = (ptr, tensor.detach().numpy())
    return hit[1]


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
        self._views: dict[int, tuple[int, np.ndarray]] = {}

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

    def __call__(self, x: np.ndarray, standardise: tuple[Tensor, Tensor, float] | None = None) -> np.ndarray:
        """The layers' output on rows ``x``; with ``standardise=(mean, std, clip)`` (tensors read at each
        call, like the parameters) the rows are first standardised and clipped to [-clip, clip].

        This runs at every env step on a row or a few, where each numpy call's fixed cost is most of the
        time: the intermediate arrays are written in place once this call owns them (never ``x`` itself).
        """
        views = self._views
        owned = False
        if standardise is not None:
            mean, std, clip = standardise
            x = np.subtract(x, numpy_view(mean, views, -1))
            np.divide(x, numpy_view(std, views, -2), out=x)
            np.minimum(x, clip, out=x)
            np.maximum(x, -clip, out=x)
            owned = True
        for i, (kind, arg, module) in enumerate(self._ops):
            if module is not None:  # linear
                # read from the module each time: a parameter replaced by another one is seen (an exact
                # nn.Linear without hooks and with its weight in ``_parameters`` is checked when built)
                params = module._parameters
                w = numpy_view(params["weight"], views, 2 * i)  # type: ignore[arg-type]
                x = np.matmul(x.astype(w.dtype, copy=False), w.T)
                bias = params["bias"]
                if bias is not None:
                    x += numpy_view(bias, views, 2 * i + 1)
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

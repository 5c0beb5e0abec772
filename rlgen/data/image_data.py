"""The one record every rlgen data loader returns, and the transforms the generative models need."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor


class DataError(ValueError):
    """A data set that cannot be used as given (malformed, truncated, wrong shape); one-line message."""


class MissingDataError(DataError, FileNotFoundError):
    """A data file or folder that does not exist."""


class NoTestSplitError(DataError):
    """The data given has no held-out test split (one IDX file with no t10k- file beside it)."""


@dataclass(frozen=True, eq=False)
class ImageData:
    """Images (or vectors) with their labels.

    x: float32 in [0, 1], shape (N, C, H, W) for images or (N, D) for vectors; made from integer
       pixel levels as ``level / (n_levels - 1)``, so ``to_levels`` recovers them exactly.
    y: int64, shape (N,); -1 marks an unlabelled example.
    name: where the data came from (``"digits:train"``, a path, ...).
    n_levels: number of distinct intensity levels of the raw data (17 for digits, 256 for MNIST/CIFAR,
       2 for binary data); what a discrete density model over pixels needs to know.
    """

    x: Tensor
    y: Tensor
    name: str
    n_levels: int

    def __post_init__(self) -> None:
        if not isinstance(self.x, Tensor) or self.x.dtype != torch.float32:
            raise DataError(f"{self.name}: x must be a float32 tensor, got {_describe(self.x)}")
        if self.x.dim() not in (2, 4):
            raise DataError(f"{self.name}: x must have shape (N, C, H, W) or (N, D), got {tuple(self.x.shape)}")
        if not isinstance(self.y, Tensor) or self.y.dtype != torch.int64 or self.y.shape != self.x.shape[:1]:
            raise DataError(f"{self.name}: y must be an int64 tensor of shape ({len(self.x)},), "
                            f"got {_describe(self.y)}")
        if self.n_levels < 2:
            raise DataError(f"{self.name}: n_levels must be at least 2, got {self.n_levels}")
        if self.x.numel() and not (bool(torch.isfinite(self.x).all()) and float(self.x.min()) >= 0.0
                                   and float(self.x.max()) <= 1.0):
            raise DataError(f"{self.name}: x must hold finite values in [0, 1]")
        if len(self.y) and int(self.y.min()) < -1:
            raise DataError(f"{self.name}: labels must be >= 0, or -1 for unlabelled, got {int(self.y.min())}")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example: (C, H, W) or (D,)."""
        return tuple(self.x.shape[1:])

    @property
    def n_dims(self) -> int:
        """Numbers per example (C * H * W or D): the denominator of bits per dimension."""
        return math.prod(self.shape)

    @property
    def n_classes(self) -> int:
        """1 + the largest label (0 when nothing is labelled)."""
        return int(self.y.max()) + 1 if len(self.y) and int(self.y.max()) >= 0 else 0

    def to_levels(self) -> Tensor:
        """Integer pixel levels in [0, n_levels - 1], int64, same shape as x: the inverse of how x was made.

        Rounding (not truncation) because ``level / (n_levels - 1)`` is not exact in float32.
        """
        return torch.round(self.x * (self.n_levels - 1)).to(torch.int64)

    def binarised(self, threshold: float = 0.5) -> ImageData:
        """A copy with x = 1 where x > threshold, else 0, and n_levels = 2.

        With 256 levels the default 0.5 keeps raw values > 127, the usual binarisation of MNIST.
        """
        if not 0.0 <= threshold < 1.0:
            raise DataError(f"binarisation threshold must be in [0, 1), got {threshold}")
        return replace(self, x=(self.x > threshold).to(torch.float32), name=f"{self.name}:binarised", n_levels=2)

    def subset(self, index: Tensor | np.ndarray | slice) -> ImageData:
        """The examples at ``index`` (indices, a boolean mask or a slice)."""
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        return replace(self, x=self.x[index], y=self.y[index])


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def from_levels(levels: np.ndarray, labels: np.ndarray | None, n_levels: int, name: str) -> ImageData:
    """Build ImageData from integer levels in [0, n_levels - 1] (any integer dtype)."""
    levels = np.asarray(levels)
    if levels.size and (levels.min() < 0 or levels.max() > n_levels - 1):
        raise DataError(f"{name}: pixel values must be in [0, {n_levels - 1}], found {levels.min()}..{levels.max()}")
    x = torch.from_numpy(levels.astype(np.float32) / np.float32(n_levels - 1))
    if labels is None:
        y = torch.full((len(levels),), -1, dtype=torch.int64)
    else:
        y = torch.from_numpy(np.asarray(labels).astype(np.int64))
    return ImageData(x=x, y=y, name=name, n_levels=n_levels)


def vector_dataset(array: np.ndarray | Tensor, labels: np.ndarray | Tensor | None = None, *,
                   n_levels: int | None = None, name: str = "vectors") -> ImageData:
    """Wrap (N, D) vectors in [0, 1] for the density models on vectors.

    ``n_levels`` defaults to the smallest count of evenly spaced levels in [2, 256] that represents the
    values exactly (2 for binary vectors); data matching none is taken as 256 levels, which
    ``to_levels`` then quantises.
    """
    x = torch.as_tensor(np.asarray(array) if not isinstance(array, Tensor) else array).to(torch.float32)
    if x.dim() != 2:
        raise DataError(f"{name}: vectors must have shape (N, D), got {tuple(x.shape)}")
    if labels is None:
        y = torch.full((len(x),), -1, dtype=torch.int64)
    else:
        y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels).to(torch.int64)
    if n_levels is None:
        n_levels = _infer_levels(x)
    return ImageData(x=x, y=y, name=name, n_levels=n_levels)


def _infer_levels(x: Tensor) -> int:
    sample = x.flatten()[:100_000].double()
    for n in range(2, 257):
        scaled = sample * (n - 1)
        if bool(((scaled - scaled.round()).abs() < 1e-4).all()):
            return n
    return 256


def semi_supervised_split(data: ImageData, n_labels: int = 100, seed: int = 0) -> ImageData:
    """A copy of ``data`` with every label set to -1 except ``n_labels`` balanced ones.

    Each class keeps ``n_labels / n_classes`` labels, drawn with ``np.random.RandomState(seed)``
    (the improved-GAN setting is 100 labels, 10 per digit).
    """
    labels = data.y.numpy()
    classes = np.unique(labels[labels >= 0])
    if len(classes) == 0:
        raise DataError(f"{data.name}: semi-supervised split needs labelled data, found none")
    if n_labels < len(classes) or n_labels % len(classes):
        raise DataError(f"n_labels={n_labels} must be a positive multiple of the {len(classes)} classes")
    per_class = n_labels // len(classes)
    rng = np.random.RandomState(seed)
    kept = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise DataError(f"{data.name}: class {c} has {len(members)} examples, fewer than {per_class} labels")
        kept.append(rng.choice(members, size=per_class, replace=False))
    y = torch.full_like(data.y, -1)
    index = torch.from_numpy(np.sort(np.concatenate(kept)))
    y[index] = data.y[index]
    return replace(data, y=y, name=f"{data.name}:{n_labels}labels")

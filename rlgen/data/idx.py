"""MNIST's IDX format (also used by Fashion-MNIST, KMNIST, EMNIST): read, write, and load image/label pairs.

An IDX file is: two zero bytes, a type code, the number of dimensions n, n big-endian uint32 sizes,
then the values in C order, big-endian. Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from rlgen.atomic import atomic_write_bytes
from rlgen.data.image_data import DataError, ImageData, MissingDataError, from_levels

# IDX type code -> numpy dtype (big-endian)
_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _TYPES.items()}


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """The array stored in an IDX file; DataError if it is malformed or truncated, or (with ``ndim``) if its
    magic number gives another number of dimensions (3 for an images file, 1 for a labels file)."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"IDX file not found: {path}")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, n_dims = _TYPES[raw[2]], raw[3]
    if ndim is not None and n_dims != ndim:
        # checked before the sizes: a wrong dimension count reads data bytes as sizes, and looks truncated
        raise DataError(f"{path}: not an IDX file of {ndim} dimension{'s' if ndim > 1 else ''} (magic number "
                        f"{raw[:4].hex()} gives {n_dims})")
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = struct.unpack(f">{n_dims}I", raw[4:header])
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        problem = "truncated" if len(raw) - header < expected else "has trailing bytes"
        raise DataError(f"{path}: IDX data {problem}: shape {shape} needs {expected} bytes, "
                        f"found {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed if ``path`` ends in .gz), atomically."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    buffer = io.BytesIO()
    buffer.write(bytes([0, 0, code, array.ndim]))
    buffer.write(struct.pack(f">{array.ndim}I", *array.shape))
    buffer.write(np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes())
    data = buffer.getvalue()
    # mtime=0 so the same array always gives the same bytes
    atomic_write_bytes(path, gzip.compress(data, mtime=0) if str(path).endswith(".gz") else data)


def find_idx_images(folder: Path, split: str) -> Path | None:
    """The images file of ``split`` in an MNIST-style folder (``train-images-idx3-ubyte[.gz]`` or
    ``t10k-images-idx3-ubyte[.gz]``, also with a ``.`` before ``idx3`` as some mirrors name them)."""
    prefix = "train" if split == "train" else "t10k"
    for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def labels_path(images: Path) -> Path:
    """Where the labels of an IDX images file live: the same name with images -> labels, idx3 -> idx1."""
    return images.with_name(images.name.replace("images", "labels").replace("idx3", "idx1"))


def load_mnist_idx(images_file: str | Path, name: str | None = None) -> ImageData:
    """An MNIST-format images file (N, H, W) uint8 and its labels file alongside, as 256-level ImageData."""
    images_file = Path(images_file)
    labels_file = labels_path(images_file)
    if labels_file == images_file:
        raise DataError(f"{images_file}: cannot tell the labels file from the name (expected 'images' in it)")
    images, labels = read_idx(images_file, ndim=3), read_idx(labels_file, ndim=1)
    if images.dtype != np.uint8:
        raise DataError(f"{images_file}: expected uint8 images of shape (N, H, W), got {images.dtype} "
                        f"of shape {images.shape}")
    if len(labels) != len(images):
        raise DataError(f"{labels_file}: expected {len(images)} labels to match the images, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{labels_file}: expected integer labels, got {labels.dtype}")
    return from_levels(images[:, None], labels, 256, name or str(images_file))

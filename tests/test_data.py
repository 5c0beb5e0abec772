"""rlgen.data: bundled sets, fixed splits, IDX/CIFAR files and their errors, semi-supervised labels."""

import gzip
import pickle
from collections import Counter

import numpy as np
import pytest
import torch

from rlgen.data import (
    DataError,
    MissingDataError,
    NoTestSplitError,
    from_levels,
    load_dataset,
    read_idx,
    semi_supervised_split,
    vector_dataset,
    write_idx,
)


@pytest.mark.parametrize("name, shape, levels, sizes", [
    ("digits", (1, 8, 8), 17, (1400, 397)),
    ("mnist5k", (1, 28, 28), 256, (4000, 1000)),
    ("mixture", (1, 8, 8), 2, (1000, 250)),
])
def test_bundled_shapes_ranges_levels(name, shape, levels, sizes):
    for split, size in zip(("train", "test"), sizes, strict=True):
        data = load_dataset(name, split)
        assert data.shape == shape and len(data) == size and data.n_levels == levels
        assert data.x.dtype == torch.float32 and data.y.dtype == torch.int64
        assert float(data.x.min()) == 0.0 and float(data.x.max()) == 1.0
        as_levels = data.to_levels()
        assert as_levels.dtype == torch.int64 and int(as_levels.max()) == levels - 1
        # to_levels is the exact inverse of level / (n_levels - 1)
        assert torch.equal(as_levels.float() / (levels - 1), data.x)
    assert load_dataset(name).n_classes == (4 if name == "mixture" else 10)


def _rows(data):
    return Counter((row.tobytes(), int(label)) for row, label in zip(data.to_levels().numpy(), data.y.numpy(), strict=True))


@pytest.mark.parametrize("name", ["digits", "mixture"])
def test_split_is_deterministic_and_partitions_the_data(name):
    train, again, test = load_dataset(name), load_dataset(name), load_dataset(name, "test")
    assert torch.equal(train.x, again.x) and torch.equal(train.y, again.y)
    if name == "digits":  # train + test is exactly the whole set, each example once
        assert _rows(train) + _rows(test) == _rows(load_dataset(name, "all"))
    else:  # independent draws; the two splits use different seeds
        assert not torch.equal(train.x[:250], test.x)


def test_digits_split_reproduces_reference_baseline():
    # benchmarks/results/density_digits.md: independent per-pixel categorical with Laplace smoothing, 2.433 bits/dim on this split
    train = load_dataset("digits").to_levels().reshape(1400, 64).numpy()
    test = load_dataset("digits", "test").to_levels().reshape(397, 64).numpy()
    counts = np.stack([np.bincount(train[:, j], minlength=17) for j in range(64)]) + 1
    probs = counts / counts.sum(1, keepdims=True)
    bits = -np.log2(probs[np.arange(64), test]).sum(1).mean() / 64
    assert bits == pytest.approx(2.433, abs=0.001)


def test_binarised_and_subset():
    data = load_dataset("digits")
    binary = data.binarised(0.5)
    assert binary.n_levels == 2 and set(binary.x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(binary.x, (data.to_levels() > 8).float())
    assert len(data.subset(slice(0, 10))) == 10
    with pytest.raises(DataError, match="threshold"):
        data.binarised(1.5)


def test_idx_round_trip_folder_and_file(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 5, 6), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:3])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:3])
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte"), images[:3])

    train = load_dataset(str(tmp_path), "train")
    assert train.shape == (1, 5, 6) and train.n_levels == 256
    assert np.array_equal(train.to_levels().numpy()[:, 0], images)
    assert np.array_equal(train.y.numpy(), labels)
    assert len(load_dataset(str(tmp_path), "test")) == 3
    assert len(load_dataset(str(tmp_path / "t10k-images-idx3-ubyte"))) == 3
    # one train- file: its test split is the t10k- file beside it, never the training file itself
    one_file = str(tmp_path / "train-images-idx3-ubyte.gz")
    assert len(load_dataset(one_file, "train")) == 7
    assert np.array_equal(load_dataset(one_file, "test").to_levels().numpy()[:, 0], images[:3])
    # a file with no t10k- partner (or that is itself one) has no test split: refused, not reused
    with pytest.raises(NoTestSplitError) as exc_info:
        load_dataset(str(tmp_path / "t10k-images-idx3-ubyte"), "test")
    _one_line_error(exc_info, "t10k-images-idx3-ubyte", "no test split", "folder")
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(NoTestSplitError):
        load_dataset(one_file, "test")

    write_idx(tmp_path / "values.idx", np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(read_idx(tmp_path / "values.idx"), np.arange(6, dtype=np.float32).reshape(2, 3))


def _one_line_error(exc_info, *words):
    message = str(exc_info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_corrupt_idx_files_raise_one_line_errors(tmp_path):
    images = np.zeros((4, 3, 3), np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    raw = path.read_bytes()

    path.write_bytes(raw[:-5])
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(tmp_path))
    _one_line_error(exc_info, "truncated", "36 bytes")

    path.write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(path))
    _one_line_error(exc_info, "magic number")

    path.write_bytes(raw)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(tmp_path))
    _one_line_error(exc_info, "4 labels")

    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(MissingDataError) as exc_info:
        load_dataset(str(tmp_path))
    _one_line_error(exc_info, "train-labels-idx1-ubyte")

    (tmp_path / "bad-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(tmp_path / "bad-images-idx3-ubyte.gz"))
    _one_line_error(exc_info, "gzip")


def test_unknown_name_and_missing_folders(tmp_path):
    with pytest.raises(MissingDataError) as exc_info:
        load_dataset("cifar100")
    _one_line_error(exc_info, "digits", "mnist5k", "mixture")
    assert isinstance(exc_info.value, FileNotFoundError)
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(tmp_path))
    _one_line_error(exc_info, "CIFAR-10", "idx3")
    with pytest.raises(DataError, match="split"):
        load_dataset("digits", "validation")


def _write_cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
             b"labels": rng.integers(0, 10, size=n).tolist(), b"batch_label": b"fake"}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return batch


def test_cifar_folder_loads_and_validates(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [_write_cifar_batch(folder / f"data_batch_{i}", 3, i) for i in range(1, 6)]
    _write_cifar_batch(folder / "test_batch", 2, 9)
    train = load_dataset(str(tmp_path))  # the parent folder works too
    assert train.shape == (3, 32, 32) and len(train) == 15 and train.n_levels == 256
    assert np.array_equal(train.to_levels().numpy()[0].reshape(-1), batches[0][b"data"][0])
    assert len(load_dataset(str(folder), "test")) == 2

    (folder / "data_batch_3").unlink()
    with pytest.raises(MissingDataError) as exc_info:
        load_dataset(str(folder))
    _one_line_error(exc_info, "data_batch_3")

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(folder))
    _one_line_error(exc_info, "3072")


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_reader_refuses_code_in_pickles(tmp_path, capsys):
    folder = tmp_path / "cifar"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": []}))
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(folder), "test")
    _one_line_error(exc_info, "refusing", "builtins.print")
    assert "pwned" not in capsys.readouterr().out


def test_semi_supervised_split_is_balanced():
    data = load_dataset("digits")
    split = semi_supervised_split(data, n_labels=100, seed=0)
    labelled = split.y[split.y >= 0]
    assert len(labelled) == 100 and torch.bincount(labelled).tolist() == [10] * 10
    kept = split.y >= 0
    assert torch.equal(split.y[kept], data.y[kept]) and torch.equal(split.x, data.x)
    assert torch.equal(semi_supervised_split(data, 100, seed=0).y, split.y)
    assert not torch.equal(semi_supervised_split(data, 100, seed=1).y, split.y)
    with pytest.raises(DataError, match="multiple"):
        semi_supervised_split(data, n_labels=15)


def test_vector_dataset_and_validation():
    binary = vector_dataset(np.array([[0, 1, 1], [1, 0, 0]]), labels=[0, 1])
    assert binary.shape == (3,) and binary.n_levels == 2 and binary.y.tolist() == [0, 1]
    assert vector_dataset(np.array([[0.0, 0.25, 1.0]])).n_levels == 5
    assert vector_dataset(np.array([[0.123]])).n_levels == 256
    with pytest.raises(DataError, match=r"\(N, D\)"):
        vector_dataset(np.zeros(3))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        vector_dataset(np.array([[2.0]]))
    with pytest.raises(DataError, match="pixel values"):
        from_levels(np.array([[3]]), None, 3, "levels")


def test_gzip_idx_is_reproducible(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(4, dtype=np.uint8))
    write_idx(tmp_path / "b.gz", np.arange(4, dtype=np.uint8))
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.gz").read_bytes())[:4] == bytes([0, 0, 8, 1])


def test_cifar_reader_accepts_numpy1_pickles(tmp_path):
    # the real batches were pickled by Python 2 and numpy 1, naming numpy.core.multiarray
    folder = tmp_path / "cifar"
    folder.mkdir()
    data = np.arange(3072, dtype=np.int64).astype(np.uint8).reshape(1, 3072)
    raw = pickle.dumps({b"data": data, b"labels": [7]}, protocol=2)
    (folder / "test_batch").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    loaded = load_dataset(str(folder), "test")
    assert loaded.y.tolist() == [7] and np.array_equal(loaded.to_levels().numpy().reshape(1, -1), data)


def test_files_holding_no_images_are_one_line_errors(tmp_path):
    """Empty IDX files and an empty CIFAR batch loaded as a data set of 0 images (ZeroDivisionError in training)."""
    idx = tmp_path / "idx"
    idx.mkdir()
    write_idx(idx / "train-images-idx3-ubyte", np.zeros((0, 8, 8), np.uint8))
    write_idx(idx / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(idx))
    _one_line_error(exc_info, "holds no images", str(idx))
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(idx / "train-images-idx3-ubyte"))
    _one_line_error(exc_info, "holds no images")

    cifar = tmp_path / "cifar"
    cifar.mkdir()
    (cifar / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}))
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(cifar), "test")
    _one_line_error(exc_info, "holds no images")


def test_cifar_batch_with_ragged_labels_is_a_one_line_error(tmp_path):
    """numpy's ValueError for a ragged label list escaped read_batch as a traceback."""
    folder = tmp_path / "cifar"
    folder.mkdir()
    batch = {b"data": np.zeros((3, 3072), np.uint8), b"labels": [[1, 2], [3], 4]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(folder), "test")
    _one_line_error(exc_info, "test_batch", "b'labels' must be 3 integers")


def test_idx_folder_with_train_files_only_has_no_test_split(tmp_path):
    """It said it found no MNIST IDX files at all (the train- files are there), and so gen train refused the
    folder that it trains on as one file."""
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 8, 8), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    assert len(load_dataset(str(tmp_path))) == 4
    with pytest.raises(NoTestSplitError) as exc_info:
        load_dataset(str(tmp_path), "test")
    _one_line_error(exc_info, "no test split", "t10k")


def test_cifar_folder_with_train_batches_only_has_no_test_split(tmp_path):
    """As an IDX folder of train- files: trained on without held-out data (it was a MissingDataError, which gen
    train refuses), while a folder missing a train batch still names it."""
    for i in range(1, 6):
        _write_cifar_batch(tmp_path / f"data_batch_{i}", 2, i)
    assert len(load_dataset(str(tmp_path))) == 10
    with pytest.raises(NoTestSplitError) as exc_info:
        load_dataset(str(tmp_path), "test")
    _one_line_error(exc_info, "no test split", "test_batch")
    (tmp_path / "data_batch_5").unlink()
    with pytest.raises(MissingDataError) as exc_info:
        load_dataset(str(tmp_path), "test")
    _one_line_error(exc_info, "test_batch")


def test_idx_file_of_the_wrong_dimensions_or_label_type_is_named_so(tmp_path):
    """A magic number giving 7 dimensions read image bytes as sizes and was reported as a truncated file of
    shape (4, 3, 3, 0, ...); float labels were silently truncated to integers."""
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 3, 3), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    raw = path.read_bytes()
    path.write_bytes(raw[:3] + b"\x07" + raw[4:])
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(tmp_path))
    _one_line_error(exc_info, "not an IDX file of 3 dimensions", "00000807", "gives 7")
    assert "truncated" not in str(exc_info.value)
    path.write_bytes(raw)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((4, 1), np.uint8))
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(tmp_path))
    _one_line_error(exc_info, "train-labels-idx1-ubyte", "not an IDX file of 1 dimension ")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(4, 2.5, np.float32))
    with pytest.raises(DataError) as exc_info:
        load_dataset(str(tmp_path))
    _one_line_error(exc_info, "expected integer labels", "float32")

"""Image data sets for the generative models: bundled small sets and the user's files.

>>> from rlgen.data import load_dataset
>>> data = load_dataset("digits")
>>> data.shape, data.n_levels, len(data)
((1, 8, 8), 17, 1400)
"""

from rlgen.data.bundled import make_mixture, mixture_prototypes
from rlgen.data.cifar import load_cifar10
from rlgen.data.idx import load_mnist_idx, read_idx, write_idx
from rlgen.data.image_data import (
    DataError,
    ImageData,
    MissingDataError,
    NoTestSplitError,
    from_levels,
    semi_supervised_split,
    vector_dataset,
)
from rlgen.data.load import DATASETS, load_dataset

__all__ = [
    "DATASETS", "DataError", "ImageData", "MissingDataError", "NoTestSplitError", "from_levels", "load_cifar10",
    "load_dataset", "load_mnist_idx", "make_mixture", "mixture_prototypes", "read_idx", "semi_supervised_split",
    "vector_dataset", "write_idx",
]

"""Models by name, for the CLI and for rebuilding a run directory from its ``model.json``.

Each constructor takes ``(input_shape, n_levels, n_classes, **kwargs)``: the three facts a data set
tells every model, of which each model family takes the ones it needs. Model modules are imported
only when their model is built, so a missing or broken one affects only itself.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from rlgen.atomic import atomic_write_text

MODEL_FILE = "model.json"
SPEC_FORMAT = "rlgen-generative-model"
SPEC_VERSION = 1


def _dcgan(input_shape: tuple[int, ...], n_levels: int, n_classes: int, **kwargs: Any) -> nn.Module:
    from rlgen.generative.dcgan import DCGAN

    return DCGAN(input_shape, **kwargs)


def _ssgan(input_shape: tuple[int, ...], n_levels: int, n_classes: int, **kwargs: Any) -> nn.Module:
    from rlgen.generative.ssgan import SemiSupervisedGAN

    return SemiSupervisedGAN(input_shape, **{"n_classes": n_classes, **kwargs})


def _infogan(input_shape: tuple[int, ...], n_levels: int, n_classes: int, **kwargs: Any) -> nn.Module:
    from rlgen.generative.infogan import InfoGAN

    # one category per class by default, so the code can be matched to the labels
    return InfoGAN(input_shape, **{"n_categories": n_classes, **kwargs})


def _vae_likelihood(n_levels: int) -> dict[str, Any]:
    # Bernoulli for binary data; else the discretised logistic of the IAF paper's CIFAR-10 model
    return {"likelihood": "bernoulli" if n_levels == 2 else "logistic", "n_levels": n_levels}


def _vae(input_shape: tuple[int, ...], n_levels: int, n_classes: int, **kwargs: Any) -> nn.Module:
    from rlgen.generative.vae import VAE

    return VAE(input_shape, **{"posterior": "diagonal", **_vae_likelihood(n_levels), **kwargs})


def _iaf_vae(input_shape: tuple[int, ...], n_levels: int, n_classes: int, **kwargs: Any) -> nn.Module:
    from rlgen.generative.vae import VAE

    return VAE(input_shape, **{"posterior": "iaf", **_vae_likelihood(n_levels), **kwargs})


def _width_for_channels(model: type, width: str, input_shape: tuple[int, ...], kwargs: dict[str, Any]
                        ) -> dict[str, Any]:
    """The model's default ``width`` rounded up to a multiple of an image's channels, where the user gives
    none: the masked convolutions split their feature maps into one group per colour channel (64 feature maps
    for RGB images become 66). A width the user gives is left for the model to check."""
    if width in kwargs or len(input_shape) != 3:
        return kwargs
    default = inspect.signature(model).parameters[width].default
    n_channels = input_shape[0]
    return {**kwargs, width: -(-default // n_channels) * n_channels}


def _pixelcnn(input_shape: tuple[int, ...], n_levels: int, n_classes: int, **kwargs: Any) -> nn.Module:
    from rlgen.generative.pixelcnn import PixelCNN

    return PixelCNN(input_shape, **{"n_levels": n_levels,
                                    **_width_for_channels(PixelCNN, "channels", input_shape, kwargs)})


def _pixelrnn(input_shape: tuple[int, ...], n_levels: int, n_classes: int, **kwargs: Any) -> nn.Module:
    from rlgen.generative.pixelrnn import PixelRNN

    return PixelRNN(input_shape, **{"n_levels": n_levels,
                                    **_width_for_channels(PixelRNN, "hidden", input_shape, kwargs)})


MODELS: dict[str, Callable[..., nn.Module]] = {
    "dcgan": _dcgan,
    "ssgan": _ssgan,
    "infogan": _infogan,
    "vae": _vae,
    "iaf-vae": _iaf_vae,
    "pixelcnn": _pixelcnn,
    "pixelrnn": _pixelrnn,
}


@dataclass(frozen=True)
class TrainingDefaults:
    """Per-model settings the CLI uses when the user gives none (the papers' settings where they give them)."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 64
    n_labels: int | None = None  # keep only this many labels (balanced) in the training data
    labelled_batch: int = 0  # labelled examples added to every batch (Trainer's labelled_batch_size)


TRAINING_DEFAULTS: dict[str, TrainingDefaults] = {
    "dcgan": TrainingDefaults(lr=2e-4, betas=(0.5, 0.999)),
    # improved-GAN's MNIST semi-supervised setting: Adam(0.003, beta1 0.5), batches of 100 labelled examples
    # (cycling over the 100 labels) and 100 of all the data, labels hidden
    "ssgan": TrainingDefaults(lr=3e-3, betas=(0.5, 0.999), batch_size=100, n_labels=100, labelled_batch=100),
    # InfoGAN: lr 2e-4 for D (the model may set its own G rate), beta1 0.5, batch 128
    "infogan": TrainingDefaults(lr=2e-4, betas=(0.5, 0.999), batch_size=128),
}


def training_defaults(name: str) -> TrainingDefaults:
    return TRAINING_DEFAULTS.get(name, TrainingDefaults())


class UnknownModelError(ValueError):
    """A model name the registry does not know."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a trained model: its registry name, what the data told it, its kwargs.

    ``data`` (a data set name or path), ``binarise`` (threshold or None) and ``n_labels`` (labels kept
    for training, or None for all) record how the training data was made, so evaluation can load the
    matching test split.
    """

    name: str
    input_shape: tuple[int, ...]
    n_levels: int
    n_classes: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    data: str | None = None
    binarise: float | None = None
    n_labels: int | None = None

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise UnknownModelError(f"unknown model {self.name!r}; choose one of: {', '.join(MODELS)}")
        try:
            json.dumps(self.kwargs)
        except TypeError as exc:
            raise ValueError(f"model kwargs must be JSON values (numbers, strings, lists, dicts): {exc}") from None
        if "n_levels" in self.kwargs:  # a likelihood over other levels than the data's scores other data
            raise ValueError(f"n_levels comes from the data ({self.n_levels} levels), not a model keyword; "
                             "binarise the data instead (rlgen gen train --binarise)")

    def build(self) -> nn.Module:
        """A freshly initialised model (seed torch first for a reproducible initialisation)."""
        return MODELS[self.name](tuple(self.input_shape), self.n_levels, self.n_classes, **self.kwargs)

    def to_json(self) -> str:
        return json.dumps({"format": SPEC_FORMAT, "version": SPEC_VERSION, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "model.json") -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != SPEC_FORMAT:
            raise ValueError(f"{source}: not an rlgen model description (format {SPEC_FORMAT!r} missing)")
        if data.get("version") != SPEC_VERSION:
            raise ValueError(f"{source}: version {data.get('version')} is not supported (this rlgen reads "
                             f"{SPEC_VERSION})")
        fields = {k: v for k, v in data.items() if k not in ("format", "version")}
        try:
            fields["input_shape"] = tuple(fields["input_shape"])
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: malformed model description ({exc})") from None

    def save(self, run_dir: str | Path) -> None:
        atomic_write_text(Path(run_dir) / MODEL_FILE, self.to_json())

    @classmethod
    def load(cls, run_dir: str | Path) -> ModelSpec:
        path = Path(run_dir) / MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{run_dir} is not a generative-model run directory (no {MODEL_FILE})")
        return cls.from_json(path.read_text(), str(path))


def build_model(name: str, input_shape: tuple[int, ...], n_levels: int, n_classes: int,
                **kwargs: Any) -> nn.Module:
    """``MODELS[name](...)`` with a one-line error for an unknown name."""
    if name not in MODELS:
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name](tuple(input_shape), n_levels, n_classes, **kwargs)

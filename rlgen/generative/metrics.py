"""Numbers to judge generative models by: likelihoods, classification errors, and sample scores.

The sample scores follow the Inception Score and FID of the GAN literature, but the network behind
them is a small CNN trained here on the data set itself (``SampleScorer.fit``): no download, and the
scores are comparable within one data set and scorer, not with published Inception-network figures.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from rlgen.atomic import atomic_write_bytes
from rlgen.data import ImageData

LN2 = math.log(2.0)


def nll_nats(log_prob: Tensor) -> float:
    """Mean negative log-likelihood in nats of per-example log-probabilities (B,)."""
    return float(-log_prob.detach().double().mean())


def bits_per_dim(nll: Tensor | float, n_dims: int) -> float:
    """Negative log-likelihood of one example in nats -> bits per dimension (pixel and channel).

    Meaningful for discrete models (log-probabilities of integer levels), as in the PixelRNN/PixelCNN
    and IAF papers' CIFAR-10 figures.
    """
    if n_dims < 1:
        raise ValueError(f"n_dims must be positive, got {n_dims}")
    value = float(nll.detach().double().mean()) if isinstance(nll, Tensor) else float(nll)
    return value / (n_dims * LN2)


def semi_supervised_error(logits: Tensor, labels: Tensor) -> float:
    """Classification error (fraction wrong) of ``logits`` (N, K) against ``labels`` (N,), all labelled."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (N, K) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if len(labels) == 0 or int(labels.min()) < 0:
        raise ValueError("semi_supervised_error needs a non-empty set of labelled examples (labels >= 0)")
    return float((logits.argmax(dim=1) != labels).double().mean())


def best_matching_accuracy(pred_clusters: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """Accuracy after matching each cluster to one label, one-to-one, the best way (Hungarian method).

    How InfoGAN's categorical code and k-means are scored against digit classes: the cluster ids carry
    no names, so any permutation of them is equally good.
    """
    pred = np.asarray(pred_clusters.cpu() if isinstance(pred_clusters, Tensor) else pred_clusters).astype(np.int64)
    true = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels).astype(np.int64)
    if pred.shape != true.shape or pred.ndim != 1 or len(pred) == 0:
        raise ValueError(f"clusters and labels must be non-empty 1-d arrays of one length, got {pred.shape} "
                         f"and {true.shape}")
    if pred.min() < 0 or true.min() < 0:
        raise ValueError("clusters and labels must be non-negative integers")
    size = max(pred.max(), true.max()) + 1
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (pred, true), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(pred))


def frechet_distance_of_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D).

    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)). The trace of the matrix square root is taken
    as the sum of square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2), a symmetric PSD matrix
    with the same spectrum, which avoids the complex round-off of a general ``sqrtm``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.cov(a, rowvar=False) if len(a) > 1 else np.zeros((a.shape[1],) * 2)
    cov_b = np.cov(b, rowvar=False) if len(b) > 1 else np.zeros((b.shape[1],) * 2)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


class SampleScorer(nn.Module):
    """A small CNN classifier of one data set, whose outputs score generated samples.

    ``inception_like_score``: exp E_x[KL(p(y|x) || p(y))], high when each sample is confidently one
    class and the classes are varied (1 for a collapsed generator, at most the number of classes).
    ``frechet_distance``: Fréchet distance of the penultimate features of samples and real images
    (lower is better). Fit once per data set (``fit``), cache with ``save``/``load``.
    """

    def __init__(self, image_shape: tuple[int, int, int], n_classes: int, width: int = 32, n_features: int = 128):
        super().__init__()
        if len(image_shape) != 3:
            raise ValueError(f"SampleScorer needs images (C, H, W), got shape {tuple(image_shape)}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.n_classes, self.width, self.n_features = int(n_classes), int(width), int(n_features)
        channels = self.image_shape[0]
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            # a fixed 4x4 grid whatever the image size (8x8 digits, 28x28 MNIST, 32x32 CIFAR)
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(2 * width * 16, n_features), nn.ReLU(),
        )
        self.head = nn.Linear(n_features, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, n_classes)."""
        return self.head(self.trunk(x))

    def _check(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"the scorer was fitted on images of shape {self.image_shape}, got a batch of "
                             f"shape {tuple(x.shape)}")
        return x.float()

    @torch.no_grad()
    def _batched(self, x: Tensor, fn: str, batch_size: int = 500) -> Tensor:
        x = self._check(x)
        was_training = self.training
        self.eval()
        try:
            parts = [getattr(self, fn)(chunk) for chunk in x.split(batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(parts)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer features (N, n_features)."""
        return self._batched(x, "trunk")

    def probabilities(self, x: Tensor) -> Tensor:
        """p(y | x), (N, n_classes)."""
        return self._batched(x, "forward").softmax(dim=1)

    def accuracy(self, data: ImageData) -> float:
        """Fraction of ``data``'s labelled examples classified correctly."""
        keep = data.y >= 0
        return 1.0 - semi_supervised_error(self._batched(data.x[keep], "forward"), data.y[keep])

    def inception_like_score(self, samples: Tensor) -> float:
        """exp of the mean KL divergence between p(y|x) and the marginal p(y) over the samples."""
        probs = self.probabilities(samples).double().clamp_min(1e-12)
        marginal = probs.mean(dim=0, keepdim=True)
        kl = (probs * (probs.log() - marginal.log())).sum(dim=1)
        return float(kl.mean().exp())

    def mode_coverage(self, samples: Tensor, min_share: float = 0.2, min_confidence: float = 0.5) -> dict[str, float]:
        """How many of the data set's classes the samples cover, and how evenly.

        Each sample counts for the class the scorer gives it, if it gives it with at least
        ``min_confidence``; a class is covered when it holds at least ``min_share`` of a uniform
        share of the samples (``min_share / n_classes`` of them), so a mode the generator visits
        rarely does not count. Returns ``modes`` (covered classes), ``confident`` (fraction of
        samples above the confidence) and ``kl_uniform``, KL(class histogram of the confident
        samples || uniform) in nats: 0 for a perfectly balanced generator, ln(n_classes) for one
        that always draws the same class.
        """
        probs = self.probabilities(samples)
        confidence, label = probs.max(dim=1)
        label = label[confidence >= min_confidence]
        counts = torch.bincount(label, minlength=self.n_classes).double()
        n = max(1, len(samples))
        modes = int((counts >= min_share * n / self.n_classes).sum())
        histogram = counts / counts.sum().clamp_min(1.0)
        nonzero = histogram > 0
        kl = float((histogram[nonzero] * (histogram[nonzero] * self.n_classes).log()).sum())
        return {"modes": float(modes), "confident": float(len(label) / n), "kl_uniform": kl}

    def frechet_distance(self, samples: Tensor, real: Tensor | ImageData) -> float:
        """Fréchet distance between the features of ``samples`` and of ``real`` images."""
        real_x = real.x if isinstance(real, ImageData) else real
        return frechet_distance_of_features(self.features(samples).numpy(), self.features(real_x).numpy())

    @classmethod
    def fit(cls, data: ImageData, *, epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
            cache: str | Path | None = None, progress_bar: bool = False, **kwargs: int) -> SampleScorer:
        """Train a scorer on ``data``'s labelled images (seconds on digits, about a minute on mnist5k).

        With ``cache``, a scorer saved there by a fit with the same settings (seed, epochs, batch size,
        learning rate, network size) on data of the same shape, classes and size is loaded instead; otherwise
        (or where the cached file is unreadable) a scorer is fitted and saved there in its place.
        """
        if len(data.shape) != 3:
            raise ValueError(f"SampleScorer needs image data (N, C, H, W), got examples of shape {data.shape}")
        keep = data.y >= 0
        x, y = data.x[keep], data.y[keep]
        if len(x) == 0:
            raise ValueError(f"{data.name}: SampleScorer needs labelled images, found none")
        n_classes = int(y.max()) + 1
        fit_settings = {"seed": seed, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                        "n_examples": len(x), **kwargs}
        if cache is not None and Path(cache).is_file():
            try:
                cached, cached_settings = cls._load_with_settings(cache)
            except ValueError as exc:
                warnings.warn(f"{exc}; fitting a new scorer in its place", stacklevel=2)
            else:
                if (cached.image_shape == tuple(data.shape) and cached.n_classes == n_classes
                        and cached_settings == fit_settings):
                    return cached
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            scorer = cls(data.shape, n_classes, **kwargs)  # type: ignore[arg-type]
        optimizer = torch.optim.Adam(scorer.parameters(), lr=lr)
        scorer.train()
        n_batches = max(1, math.ceil(len(x) / batch_size))
        with tqdm(total=epochs * n_batches, desc="fitting sample scorer", disable=not progress_bar) as bar:
            for _ in range(epochs):
                order = torch.randperm(len(x), generator=generator)
                for index in order.split(batch_size):
                    loss = F.cross_entropy(scorer(x[index]), y[index])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    bar.update(1)
        scorer.eval()
        if cache is not None:
            scorer.save(cache, fit_settings)
        return scorer

    def save(self, path: str | Path, fit_settings: dict | None = None) -> None:
        """Write the weights and the constructor arguments (a torch file loadable with weights_only), and
        the settings of the fit that made them (what ``fit`` compares before reusing a cached scorer)."""
        buffer = io.BytesIO()
        config = {"image_shape": list(self.image_shape), "n_classes": self.n_classes, "width": self.width,
                  "n_features": self.n_features}
        torch.save({"config": json.dumps(config), "fit": json.dumps(fit_settings),
                    "state_dict": self.state_dict()}, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> SampleScorer:
        """A scorer written by ``save``; ValueError naming the file if it is not one."""
        return cls._load_with_settings(path)[0]

    @classmethod
    def _load_with_settings(cls, path: str | Path) -> tuple[SampleScorer, dict | None]:
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            config = json.loads(saved["config"])
            scorer = cls(tuple(config["image_shape"]), config["n_classes"], config["width"],
                         config["n_features"])
            scorer.load_state_dict(saved["state_dict"])
            fit_settings = json.loads(saved.get("fit", "null"))
        except Exception as exc:  # torn, foreign or from another version: say which file, in one line
            raise ValueError(f"{path}: not a readable sample scorer ({type(exc).__name__})") from None
        return scorer.eval(), fit_settings

"""One trainer for every rlgen generative model (the contract is in rlgen.generative.base).

A run directory holds::

    model.json        registry name + constructor kwargs (written when a ModelSpec is given)
    checkpoint.pt     model and optimiser state_dicts, step, settings; loads with weights_only=True
    metrics.json      the final metrics fit() returns
    samples/          step_<N>.png sample grids, for models with sample()
    tb/               TensorBoard logs: train/<loss name>, eval/<metric>, time/steps_per_sec

Reproducibility without saving random-number-generator states: the minibatch of step s is drawn
from a permutation seeded by (seed, epoch), and the global torch generator is re-seeded from
(seed, s) before step s. The model's own randomness (GAN noise, the VAE's epsilon, dropout) is thus a
function of the step, and a run resumed from a checkpoint ends with the same parameters as one that
was never interrupted.
"""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rlgen.atomic import atomic_write_bytes, atomic_write_text
from rlgen.data import ImageData
from rlgen.generative.base import Batch, default_optimizers, default_train_step
from rlgen.generative.metrics import best_matching_accuracy, bits_per_dim
from rlgen.generative.registry import ModelSpec

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.json"
CHECKPOINT_VERSION = 1
# Settings a checkpoint records since a later release; older checkpoints lack them and are not checked for them.
# The optimisers' state_dicts carry lr and betas, so loading them would silently undo a changed lr: it is refused.
_SETTINGS_ADDED_LATER = ("lr", "betas")

DataLike = ImageData | Tensor | tuple[Tensor, Tensor] | torch.utils.data.TensorDataset


class TrainingDiverged(ValueError):
    """A loss became NaN or infinite; the message names the step and the loss."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or cannot be resumed with these settings or this model."""


def as_tensors(data: DataLike) -> tuple[Tensor, Tensor]:
    """(x, y) from ImageData, a tensor of examples (unlabelled), an (x, y) pair or a TensorDataset."""
    if isinstance(data, ImageData):
        if len(data) == 0:
            raise ValueError(f"{data.name}: the data hold no examples")
        return data.x, data.y
    if isinstance(data, torch.utils.data.TensorDataset):
        data = tuple(data.tensors)  # type: ignore[assignment]
    if isinstance(data, Tensor):
        x, y = data, torch.full((len(data),), -1, dtype=torch.int64)
    elif isinstance(data, tuple) and len(data) in (1, 2) and all(isinstance(t, Tensor) for t in data):
        x = data[0]
        y = data[1] if len(data) == 2 else torch.full((len(x),), -1, dtype=torch.int64)
    else:
        raise TypeError(f"data must be ImageData, a tensor, an (x, y) pair or a TensorDataset, "
                        f"got {type(data).__name__}")
    if len(x) == 0 or y.shape != x.shape[:1]:
        raise ValueError(f"data must hold at least one example and one label per example, got x of shape "
                         f"{tuple(x.shape)} and y of shape {tuple(y.shape)}")
    return x.float(), y.long()


def _scalar(value: Tensor | float) -> float:
    return float(value.detach()) if isinstance(value, Tensor) else float(value)


def step_seed(seed: int, step: int) -> int:
    """The torch seed of update ``step`` of a run seeded ``seed`` (independent streams per pair)."""
    state = np.random.SeedSequence([seed, step]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1  # < 2**63


def save_image_grid(images: Tensor, path: str | Path, nrow: int | None = None, min_size: int = 256) -> None:
    """Write images (N, C, H, W) in [0, 1] as one PNG grid, enlarged so small images stay visible."""
    import matplotlib.image

    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"a sample grid needs images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    n, channels, height, width = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = np.ones((channels, ncol * (height + 1) + 1, nrow * (width + 1) + 1), dtype=np.float32)
    pixels = images.detach().float().clamp(0, 1).cpu().numpy()
    for i in range(n):
        row, col = divmod(i, nrow)
        top, left = 1 + row * (height + 1), 1 + col * (width + 1)
        grid[:, top:top + height, left:left + width] = pixels[i]
    scale = max(1, min_size // max(grid.shape[1:]))
    grid = grid.repeat(scale, axis=1).repeat(scale, axis=2)
    buffer = io.BytesIO()
    if channels == 1:
        matplotlib.image.imsave(buffer, grid[0], cmap="gray", vmin=0.0, vmax=1.0, format="png")
    else:
        matplotlib.image.imsave(buffer, grid.transpose(1, 2, 0), format="png")
    atomic_write_bytes(path, buffer.getvalue())


@torch.no_grad()
def evaluate(model: nn.Module, data: DataLike, *, batch_size: int = 256, seed: int = 0,
             progress_bar: bool = False, iw_samples: int = 0) -> dict[str, float]:
    """The model's loss terms averaged over ``data`` and, for density models, NLL and bits/dim.

    ``nll_nats`` is the mean of -log_prob(x) per example (a bound for the VAE, which its log_prob
    documents) and ``bits_per_dim`` divides it by the number of dimensions and ln 2. With ``iw_samples``
    K > 0, models with ``importance_weighted_nll`` (the VAE) also get ``iw_nll_nats`` and
    ``iw_bits_per_dim``: the K-sample importance-weighted bound, much tighter than the one-sample ELBO and
    the figure to set beside an exact-likelihood model's NLL (K times the cost of the ELBO). Models with a
    ``classify(x) -> logits`` method (the semi-supervised GAN) also get ``error`` on the labelled
    examples; models with ``infer_codes(x) -> (category probabilities, ...)`` (InfoGAN) get
    ``category_accuracy``, the accuracy of the inferred category after the best one-to-one matching of
    categories to labels. Randomness inside
    the losses (GAN noise) is seeded, so the numbers repeat; the global RNG state is left untouched.
    """
    x, y = as_tensors(data)
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    wrong = labelled = 0
    clusters: list[Tensor] = []
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for start in tqdm(range(0, len(x), batch_size), desc="evaluating", disable=not progress_bar):
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                terms = {k: _scalar(v) for k, v in model.loss((xb, yb)).items()}  # type: ignore[operator]
                log_prob = getattr(model, "log_prob", None)
                if log_prob is not None:
                    terms["nll_nats"] = float(-log_prob(xb).double().sum()) / len(xb)
                importance_weighted = getattr(model, "importance_weighted_nll", None)
                if iw_samples > 0 and importance_weighted is not None:
                    # chunk: importance samples decoded at once, each a whole batch: ~4k images at a time
                    chunk = max(1, 4096 // len(xb))
                    terms["iw_nll_nats"] = float(importance_weighted(xb, k=iw_samples, chunk=chunk).double().sum()
                                                 ) / len(xb)
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value * len(xb)
                classify = getattr(model, "classify", None)
                if classify is not None and bool((yb >= 0).any()):
                    keep = yb >= 0
                    wrong += int((classify(xb[keep]).argmax(dim=1) != yb[keep]).sum())
                    labelled += int(keep.sum())
                infer_codes = getattr(model, "infer_codes", None)
                if infer_codes is not None:
                    clusters.append(infer_codes(xb)[0].argmax(dim=1))
    finally:
        model.train(was_training)
    metrics = {key: value / len(x) for key, value in sums.items()}
    if "nll_nats" in metrics:
        metrics["bits_per_dim"] = bits_per_dim(metrics["nll_nats"], math.prod(x.shape[1:]))
    if "iw_nll_nats" in metrics:
        metrics["iw_bits_per_dim"] = bits_per_dim(metrics["iw_nll_nats"], math.prod(x.shape[1:]))
    if labelled:
        metrics["error"] = wrong / labelled
    if clusters and bool((y >= 0).all()):
        metrics["category_accuracy"] = best_matching_accuracy(torch.cat(clusters), y)
    return metrics


def load_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    """The checkpoint of a run directory (weights_only: no code runs while loading)."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT_FILE}; train the model first")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: say which one, in one line
        raise CheckpointError(f"{path}: not a readable rlgen checkpoint ({type(exc).__name__})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: not an rlgen generative checkpoint of version {CHECKPOINT_VERSION}")
    kinds = {"step": int, "model": dict, "optimizers": dict, "settings": dict}
    missing = [key for key, kind in kinds.items() if not isinstance(checkpoint.get(key), kind)]
    if missing:
        raise CheckpointError(f"{path}: a damaged checkpoint (missing or malformed: {', '.join(missing)})")
    return checkpoint


def load_trained_model(run_dir: str | Path) -> tuple[nn.Module, ModelSpec]:
    """Rebuild a run directory's model from model.json and load its checkpoint's weights (in eval mode)."""
    spec = ModelSpec.load(run_dir)
    model = spec.build()
    load_model_state(model, load_checkpoint(run_dir)["model"], run_dir)
    return model.eval(), spec


def load_model_state(model: nn.Module, state: dict[str, Tensor], run_dir: str | Path) -> None:
    """``model.load_state_dict(state)``; CheckpointError (one line, the first parameter that does not fit)."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"the checkpoint in {run_dir} does not fit this model: "
                              f"{state_dict_mismatch(exc)}") from None


def state_dict_mismatch(exc: Exception) -> str:
    """One line of torch's load_state_dict error: its first specific complaint (a size mismatch, a missing
    or unexpected key) rather than its header, which names no parameter."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    specific = [line for line in lines[1:] if line.startswith(("size mismatch", "Missing key", "Unexpected key"))]
    return (specific or lines or [type(exc).__name__])[0]


class Trainer:
    """Fits any rlgen generative model with its own optimisers and update step.

    Give ``steps`` (updates) or ``epochs`` (passes over the data). With ``out_dir`` the trainer writes
    TensorBoard logs, checkpoints, sample grids and metrics there, and a later ``fit()`` on the same
    directory resumes from the checkpoint (``steps``/``epochs`` may grow; ``seed``, ``batch_size`` and
    ``labelled_batch_size`` must stay, since they fix the order of the data, and ``lr`` and ``betas`` too, since
    the optimisers' saved state would override them).

    ``labelled_batch_size`` > 0 (semi-supervised training, as the improved-GAN paper's): every batch is that
    many labelled examples, cycling over the labelled ones in a fresh order each pass, followed by
    ``batch_size`` examples of the whole data with their labels hidden (-1), so the supervised term sees a
    full batch however few labels there are and the unsupervised one sees the data as it is.
    """

    def __init__(self, model: nn.Module, data: DataLike, *, steps: int | None = None, epochs: int | None = None,
                 batch_size: int = 64, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 out_dir: str | Path | None = None, log_every: int = 50, checkpoint_every: int = 1000,
                 sample_every: int = 1000, seed: int = 0, progress_bar: bool = True,
                 eval_data: DataLike | None = None, n_samples: int = 64, spec: ModelSpec | None = None,
                 labelled_batch_size: int = 0):
        if (steps is None) == (epochs is None):
            raise ValueError("give exactly one of steps or epochs")
        for name, value in (("steps", steps), ("epochs", epochs)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        for name, value in (("batch_size", batch_size), ("log_every", log_every),
                            ("checkpoint_every", checkpoint_every), ("sample_every", sample_every)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.model = model
        self.x, self.y = as_tensors(data)
        if labelled_batch_size < 0:
            raise ValueError(f"labelled_batch_size must be 0 or more, got {labelled_batch_size}")
        self.labelled = torch.nonzero(self.y >= 0).flatten()
        if labelled_batch_size and not len(self.labelled):
            raise ValueError("labelled_batch_size needs labelled examples; the data has none")
        self.labelled_batch_size = labelled_batch_size
        self._labelled_orders: dict[int, Tensor] = {}
        self.batch_size = min(batch_size, len(self.x))
        # drop the last partial batch: a batch of one breaks batch norm and makes steps unequal
        self.steps_per_epoch = len(self.x) // self.batch_size
        examples = self.batch_size + labelled_batch_size
        if examples < 2 and any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):
            # torch's BatchNorm1d cannot normalise one example in training mode: say so before step 1 does
            raise ValueError(f"{type(model).__name__} has batch norm layers, which need at least 2 examples per "
                             f"batch; got batches of {examples}"
                             + (" (the data hold only 1 example)" if len(self.x) == 1 else ""))
        self.total_steps = steps if steps is not None else epochs * self.steps_per_epoch  # type: ignore[operator]
        self.lr, self.betas, self.seed = lr, (float(betas[0]), float(betas[1])), seed
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.log_every, self.checkpoint_every, self.sample_every = log_every, checkpoint_every, sample_every
        self.progress_bar, self.eval_data, self.n_samples, self.spec = progress_bar, eval_data, n_samples, spec
        self.optimizers = default_optimizers(model, lr=lr, betas=self.betas)
        self.step = 0
        self.resumed_at = 0
        """The step the last fit() started from (a resumed run's checkpoint step, else 0)."""
        self._last_checkpoint = 0
        self._order: tuple[int, Tensor] | None = None

    # -- data order --------------------------------------------------------------------------------
    def batch_at(self, step: int) -> Batch:
        """The minibatch of update ``step`` (0-based): a function of (seed, step) only."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if self._order is None or self._order[0] != epoch:
            generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
            self._order = (epoch, torch.randperm(len(self.x), generator=generator))
        index = self._order[1][position * self.batch_size:(position + 1) * self.batch_size]
        if not self.labelled_batch_size:
            return self.x[index], self.y[index]
        labelled = self._labelled_at(step)
        return (torch.cat([self.x[labelled], self.x[index]]),
                torch.cat([self.y[labelled], torch.full((len(index),), -1, dtype=self.y.dtype)]))

    def _labelled_at(self, step: int) -> Tensor:
        """The labelled examples of update ``step``: positions step * k .. step * k + k - 1 of an endless
        sequence of passes over the labelled examples, each pass in its own seeded order."""
        n, k = len(self.labelled), self.labelled_batch_size
        positions = torch.arange(step * k, (step + 1) * k)
        passes = positions // n
        needed = passes.unique().tolist()
        for p in needed:
            if p not in self._labelled_orders:
                generator = torch.Generator().manual_seed(_epoch_seed(self.seed, p, stream=2))
                self._labelled_orders[p] = torch.randperm(n, generator=generator)
        self._labelled_orders = {q: o for q, o in self._labelled_orders.items() if q >= needed[0]}
        orders = torch.stack([self._labelled_orders[p] for p in needed])  # the passes are consecutive
        return self.labelled[orders[passes - needed[0], positions % n]]

    # -- checkpoints -------------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.batch_size, "n_examples": len(self.x),
                "labelled_batch_size": self.labelled_batch_size, "lr": self.lr, "betas": list(self.betas)}

    def save_checkpoint(self) -> None:
        assert self.out_dir is not None
        buffer = io.BytesIO()
        torch.save({
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "settings": self._settings(),
        }, buffer)
        atomic_write_bytes(self.out_dir / CHECKPOINT_FILE, buffer.getvalue())

    def _resume(self) -> None:
        if self.out_dir is None or not (self.out_dir / CHECKPOINT_FILE).is_file():
            return
        checkpoint = load_checkpoint(self.out_dir)
        for key, value in self._settings().items():
            if key in _SETTINGS_ADDED_LATER and key not in checkpoint["settings"]:
                continue  # a checkpoint from before the optimiser settings were recorded: its optimiser state has them
            # a checkpoint from before labelled batches drew none
            saved = checkpoint["settings"].get(key, 0 if key == "labelled_batch_size" else None)
            if isinstance(saved, tuple):
                saved = list(saved)
            if saved != value:
                raise CheckpointError(f"cannot resume {self.out_dir}: its checkpoint was made with {key}={saved}, "
                                 f"not {value}; use the same setting or another out_dir")
        load_model_state(self.model, checkpoint["model"], self.out_dir)
        if set(checkpoint["optimizers"]) != set(self.optimizers):
            raise CheckpointError(f"cannot resume {self.out_dir}: its optimisers {sorted(checkpoint['optimizers'])} "
                             f"differ from the model's {sorted(self.optimizers)}")
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(checkpoint["optimizers"][name])
        self.step = int(checkpoint["step"])

    # -- side outputs ------------------------------------------------------------------------------
    def save_samples(self) -> Path | None:
        """Write a grid of samples for this step (images only); returns its path."""
        sample = getattr(self.model, "sample", None)
        if sample is None or self.out_dir is None:
            return None
        was_training = self.model.training
        self.model.eval()
        try:
            # the same noise at every step, so grids show progress, not luck; training RNG untouched
            with torch.no_grad(), torch.random.fork_rng():
                torch.manual_seed(self.seed)
                images = sample(self.n_samples)
        finally:
            self.model.train(was_training)
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            return None
        path = self.out_dir / "samples" / f"step_{self.step:07d}.png"
        save_image_grid(images, path)
        return path

    def _check_finite(self, losses: dict[str, float], step: int) -> None:
        for key, value in losses.items():
            if not math.isfinite(value):
                kept = (f"the checkpoint of step {self._last_checkpoint} is kept" if self._last_checkpoint
                        else "no checkpoint was written")
                raise TrainingDiverged(f"training diverged at step {step}: loss {key!r} is {value} "
                                       f"({kept}; try a lower learning rate)")

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train to ``total_steps`` (resuming from out_dir's checkpoint) and return the final metrics.

        Each step seeds torch from (seed, step), so that a resumed run repeats an uninterrupted one; the
        caller's global torch RNG is restored afterwards."""
        with torch.random.fork_rng():
            return self._fit()

    def _fit(self) -> dict[str, float]:
        self._resume()
        self.resumed_at = self.step
        self._last_checkpoint = self.step if self.out_dir and self.step else 0
        writer = None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if self.spec is not None:
                self.spec.save(self.out_dir)
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a crashed run logged after its last checkpoint
            writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=self.step or None)
        window: dict[str, list[float]] = {}
        last: dict[str, float] = {}
        self.model.train()
        started, first_step = time.perf_counter(), self.step
        bar = tqdm(total=self.total_steps, initial=self.step, desc="training", unit="step",
                   disable=not self.progress_bar, dynamic_ncols=True)
        try:
            for step in range(self.step, self.total_steps):
                torch.manual_seed(step_seed(self.seed, step))
                losses = default_train_step(self.model, self.batch_at(step), self.optimizers)
                losses = {key: _scalar(value) for key, value in losses.items()}
                self._check_finite(losses, step + 1)
                done = step + 1
                for key, value in losses.items():
                    window.setdefault(key, []).append(value)
                bar.update(1)
                if done % self.log_every == 0 or done == self.total_steps:
                    last = {key: float(np.mean(values)) for key, values in window.items()}
                    window.clear()
                    bar.set_postfix({k: f"{v:.4g}" for k, v in list(last.items())[:3]})
                    if writer is not None:
                        for key, value in last.items():
                            writer.add_scalar(f"train/{key}", value, done)
                        rate = (done - first_step) / max(time.perf_counter() - started, 1e-9)
                        writer.add_scalar("time/steps_per_sec", rate, done)
                self.step = done
                if self.out_dir is not None and done % self.checkpoint_every == 0 and done < self.total_steps:
                    self.save_checkpoint()
                    self._last_checkpoint = done
                if self.out_dir is not None and done % self.sample_every == 0 and done < self.total_steps:
                    self.save_samples()
            return self._finish(last, writer)
        finally:
            bar.close()
            if writer is not None:
                writer.close()

    def _finish(self, last: dict[str, float], writer: Any) -> dict[str, float]:
        metrics: dict[str, float] = {"step": float(self.step)}
        metrics.update({f"train/{key}": value for key, value in last.items()})
        if self.eval_data is not None:
            for key, value in evaluate(self.model, self.eval_data, seed=self.seed).items():
                metrics[f"eval/{key}"] = value
                if writer is not None:
                    writer.add_scalar(f"eval/{key}", value, self.step)
        if self.out_dir is not None:
            self.save_checkpoint()
            self.save_samples()
            previous = {}
            if (self.out_dir / METRICS_FILE).is_file():
                # a resumed run that had nothing left to train keeps the train/* numbers of its last fit
                previous = json.loads((self.out_dir / METRICS_FILE).read_text())
            atomic_write_text(self.out_dir / METRICS_FILE, json.dumps({**previous, **metrics}, indent=2) + "\n")
            metrics = {**previous, **metrics}
        return metrics


def _epoch_seed(seed: int, epoch: int, stream: int = 1) -> int:
    # the third word keeps these keys apart from step_seed's two-word ones, and the labelled passes' (2) apart
    # from the data's (1)
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1

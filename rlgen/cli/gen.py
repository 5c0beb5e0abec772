"""``rlgen gen``: train, sample and evaluate the generative models. Only parses arguments, calls the API."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rlgen.agents.config import ConfigError, parse_override
from rlgen.atomic import atomic_write_bytes
from rlgen.cli.common import (
    HelpFormatter,
    Subparsers,
    add_run_dir_options,
    nonnegative_int,
    positive_int,
    warn,
)
from rlgen.data import DATASETS, DataError, ImageData, NoTestSplitError, load_dataset, semi_supervised_split
from rlgen.generative.registry import MODELS, ModelSpec, UnknownModelError, training_defaults

DEFAULT_STEPS = 2000
DEFAULT_PARENT = "runs/gen"


def register(subparsers: Subparsers) -> None:
    """``gen train``, ``gen sample`` and ``gen eval``."""
    gen = subparsers.add_parser(
        "gen", help="train, sample and evaluate generative models (GANs, VAE, PixelCNN/RNN)",
        description="The generative-model submodule on image data: bundled sets (digits, mnist5k, mixture) "
        "or your MNIST IDX / CIFAR-10 files. Each run directory holds model.json, checkpoint.pt, "
        "metrics.json, samples/ and TensorBoard logs (tb/).",
    )
    sub = gen.add_subparsers(dest="gen_command", required=True, metavar="SUBCOMMAND")
    _add_train(sub)
    _add_sample(sub)
    _add_eval(sub)


def _add_train(sub: Subparsers) -> None:
    p = sub.add_parser(
        "train", help="train a generative model and write a run directory",
        description="Train MODEL on a data set into the run directory OUT/RUN_NAME. Running it again into "
        "the same run directory resumes from the checkpoint (raise --steps to train longer; the other settings "
        "must stay as they were). Learning rate, "
        "betas, batch size and the number of labels default to each model's reference settings (GANs: Adam "
        "beta1 0.5; ssgan: lr 3e-3, batches of 100 labelled and 100 unlabelled examples, 100 labels).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help=f"one of: {', '.join(MODELS)}")
    p.add_argument("--data", default="digits",
                   help=f"{', '.join(DATASETS)}, or a path to MNIST IDX files or a CIFAR-10 batches folder")
    p.add_argument("--steps", type=positive_int, default=None, metavar="N",
                   help=f"updates to train (default {DEFAULT_STEPS} when --epochs is not given)")
    p.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                   help="passes over the data, instead of --steps")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help="examples per update (model default)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (model default)")
    p.add_argument("--beta1", type=float, default=None, help="Adam beta1 (model default)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the initialisation, data order and noise")
    add_run_dir_options(p, parent=DEFAULT_PARENT, name="<model>_<data>_s<seed>",
                        out_note="; but without --run-name, DIR is the run directory itself in this release "
                        "(deprecated: it will become the parent folder)")
    p.add_argument("-p", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="model constructor keyword (repeatable; values are YAML), e.g. -p z_dim=64 "
                   "-p feature_matching=true -p hidden=[128,128]")
    p.add_argument("--labels", type=int, default=None,
                   help="keep only this many training labels, balanced over classes (ssgan default 100); "
                   "0 keeps all")
    p.add_argument("--labelled-batch", type=int, default=None, metavar="N",
                   help="add N labelled examples to every batch, cycling over the labelled ones, while the batch's "
                   "--batch-size examples of all the data have their labels hidden (the improved-GAN paper's "
                   "semi-supervised batches; ssgan default 100); 0: batches as drawn")
    p.add_argument("--binarise", type=float, default=None, metavar="THRESHOLD",
                   help="binarise the images at THRESHOLD in [0, 1) (0.5 = MNIST's usual > 127)")
    p.add_argument("--log-every", type=positive_int, default=50, help="updates between TensorBoard points")
    p.add_argument("--checkpoint-every", type=positive_int, default=1000, help="updates between checkpoints")
    p.add_argument("--sample-every", type=positive_int, default=1000, help="updates between sample grids")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_train)


def _add_sample(sub: Subparsers) -> None:
    p = sub.add_parser("sample", help="draw samples from a trained model into a PNG grid (or .npy)",
                       description="Rebuild RUN_DIR's model from model.json and checkpoint.pt and draw "
                       "samples.",
                       formatter_class=HelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `rlgen gen train`")
    p.add_argument("-n", type=positive_int, default=64, help="number of samples")
    # a file, not a run directory: sampling writes no run
    p.add_argument("--out", default=None, metavar="FILE",
                   help="the output file: .png (image grid) or .npy (array) (default RUN_DIR/samples.png)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="sampling seed")
    p.add_argument("--batch-size", type=positive_int, default=16,
                   help="samples drawn at once (the samples depend on --seed and on this)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_sample)


def _add_eval(sub: Subparsers) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a trained model on the test split",
        description="Print RUN_DIR's model metrics on a split of its data: the loss terms; for density "
        "models NLL in nats and bits/dim (for the VAEs the one-sample ELBO's, and the importance-weighted "
        "bound's as iw_nll_nats / iw_bits_per_dim); for ssgan the classification error; for infogan the category "
        "accuracy after best matching. --score adds the classifier-based sample scores (Inception-like score "
        "and Fréchet distance of a small CNN fitted on the training split; no downloads).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `rlgen gen train`")
    p.add_argument("--split", choices=("test", "train"), default="test", help="data split to evaluate on")
    p.add_argument("--batch-size", type=positive_int, default=256, help="examples per evaluation batch")
    p.add_argument("--score", type=nonnegative_int, default=0, metavar="N",
                   help="also score N samples with the classifier (the scorer is cached in "
                   "RUN_DIR/scorer.pt)")
    p.add_argument("--iw-samples", type=nonnegative_int, default=100, metavar="K",
                   help="VAEs: importance samples per example of the importance-weighted NLL bound (Burda et al. "
                   "2016), the VAE's figure to compare with PixelCNN's exact NLL; 0 skips it")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the evaluation noise and sampling")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_eval)


# -- helpers -----------------------------------------------------------------------------------------

def load_run_data(spec: ModelSpec, split: str) -> ImageData:
    """The split of the data a run was trained on, made the same way (binarised if it was)."""
    if spec.data is None:
        raise ConfigError("this run does not record its data set (model.json has no 'data')")
    try:
        data = load_dataset(spec.data, split)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    return data.binarised(spec.binarise) if spec.binarise is not None else data


def _model_kwargs(params: list[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for item in params:
        path, value = parse_override(item)
        if len(path) != 1:
            raise ConfigError(f"model keyword {'.'.join(path)!r} in -p {item} must be a plain name")
        kwargs[path[0]] = value
    return kwargs


def _build(spec: ModelSpec) -> torch.nn.Module:
    try:
        return spec.build()
    except ModuleNotFoundError as exc:
        raise ConfigError(f"model {spec.name!r} is not available in this installation ({exc})") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build {spec.name} with {spec.kwargs or 'its defaults'}: {exc}") from None


def _load(run_dir: str) -> tuple[torch.nn.Module, ModelSpec]:
    from rlgen.generative.trainer import CHECKPOINT_FILE, load_checkpoint, load_model_state

    try:
        spec = ModelSpec.load(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    model = _build(spec)
    if not (Path(run_dir) / CHECKPOINT_FILE).is_file():
        raise ConfigError(f"{run_dir} has no {CHECKPOINT_FILE}; train the model first")
    try:
        load_model_state(model, load_checkpoint(run_dir)["model"], run_dir)
    except ValueError as exc:  # CheckpointError: one line naming the file, or the first parameter that does not fit
        raise ConfigError(str(exc)) from None
    return model.eval(), spec


def draw_samples(model: torch.nn.Module, n: int, *, seed: int = 0, batch_size: int = 16,
                 progress_bar: bool = False) -> torch.Tensor:
    """``n`` samples in chunks (autoregressive models are slow), under a fixed seed."""
    if getattr(model, "sample", None) is None:
        raise ConfigError(f"{type(model).__name__} cannot generate samples (it has no sample method)")
    chunks = []
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        for start in tqdm(range(0, n, batch_size), desc="sampling", disable=not progress_bar):
            chunks.append(model.sample(min(batch_size, n - start)))  # type: ignore[operator]
    return torch.cat(chunks)


# -- commands ----------------------------------------------------------------------------------------

def _run_dir(args: argparse.Namespace) -> Path:
    """OUT/RUN_NAME, as in `rlgen train`; but --out alone still names the run directory itself for this
    release (it did before --run-name existed), so that no one's command silently trains elsewhere."""
    if args.out_dir is not None and args.run_name is None:
        run_dir = Path(args.out_dir)
        warn("gen train --out without --run-name is deprecated: OUT is the run directory in this release but "
             "will become its parent folder, as in `rlgen train`; use --out PARENT --run-name NAME (the same "
             f"run directory: --out {run_dir.parent} --run-name {run_dir.name})")
        return run_dir
    name = args.run_name or f"{args.model}_{Path(args.data).name}_s{args.seed}"
    return Path(args.out_dir or DEFAULT_PARENT) / name


# what each recorded field of a run is set by on the command line
_SPEC_OPTIONS = {"name": "MODEL", "data": "--data", "binarise": "--binarise", "n_labels": "--labels", "kwargs": "-p",
                 "input_shape": "the data's image shape", "n_levels": "the data's levels",
                 "n_classes": "the data's classes"}


def _spec_differences(previous: ModelSpec, spec: ModelSpec) -> str:
    """What differs between a run directory's recorded run and the one asked for, e.g. "--binarise 0.5 there,
    None here"."""
    parts = [f"{option} {getattr(previous, field)} there, {getattr(spec, field)} here"
             for field, option in _SPEC_OPTIONS.items() if getattr(previous, field) != getattr(spec, field)]
    return "; ".join(parts)


def _check_run_dir(run_dir: Path) -> None:
    """A run directory is new, empty or a generative-model run's (it has model.json): training never writes its
    files among another command's (an RL run's config.yaml and tb/, or the parent folder of other runs)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run directory; choose another --out/--run-name")
    if not run_dir.is_dir() or (run_dir / "model.json").is_file():
        return
    held = sorted(path.name for path in run_dir.iterdir())
    if held:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise ConfigError(f"{run_dir} is not a generative-model run directory (no model.json) and holds other "
                          f"files ({shown}); give a new or empty folder with --out PARENT --run-name NAME")


def _cmd_train(args: argparse.Namespace) -> int:
    from rlgen.generative.trainer import CheckpointError, Trainer, TrainingDiverged

    if args.model not in MODELS:
        raise ConfigError(f"unknown model {args.model!r}; choose one of: {', '.join(MODELS)}")
    if args.steps is not None and args.epochs is not None:
        raise ConfigError("give --steps or --epochs, not both")
    if args.binarise is not None and not 0.0 <= args.binarise < 1.0:
        raise ConfigError(f"--binarise must be in [0, 1), got {args.binarise}")
    defaults = training_defaults(args.model)
    n_labels = defaults.n_labels if args.labels is None else (args.labels or None)
    labelled_batch = defaults.labelled_batch if args.labelled_batch is None else args.labelled_batch
    if labelled_batch < 0:
        raise ConfigError(f"--labelled-batch must be 0 or more, got {labelled_batch}")
    try:
        train = load_dataset(args.data, "train")
        try:
            test: ImageData | None = load_dataset(args.data, "test")
        except NoTestSplitError as exc:
            print(f"note: {exc}; training without held-out evaluation")
            test = None
        if args.binarise is not None:
            train = train.binarised(args.binarise)
            test = test.binarised(args.binarise) if test is not None else None
        if n_labels is not None:
            train = semi_supervised_split(train, n_labels=n_labels, seed=args.seed)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    data_key = args.data if args.data in DATASETS else str(Path(args.data).expanduser().resolve())
    try:
        spec = ModelSpec(name=args.model, input_shape=train.shape, n_levels=train.n_levels,
                         n_classes=max(train.n_classes, test.n_classes if test is not None else 0),
                         kwargs=_model_kwargs(args.params),
                         data=data_key, binarise=args.binarise, n_labels=n_labels)
    except UnknownModelError as exc:
        raise ConfigError(str(exc)) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    run_dir = _run_dir(args)
    _check_run_dir(run_dir)
    if (run_dir / "model.json").is_file():
        try:
            previous = ModelSpec.load(run_dir)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if previous != spec:
            raise ConfigError(f"{run_dir} holds a different run ({previous.name} on {previous.data} with "
                              f"{previous.kwargs}; {_spec_differences(previous, spec)}); choose another "
                              "--run-name to start a new one")
    torch.manual_seed(args.seed)  # the initialisation
    model = _build(spec)
    lr = args.lr if args.lr is not None else defaults.lr
    betas = (args.beta1 if args.beta1 is not None else defaults.betas[0], defaults.betas[1])
    steps, epochs = args.steps, args.epochs
    if steps is None and epochs is None:
        steps = DEFAULT_STEPS
    try:
        trainer = Trainer(model, train, steps=steps, epochs=epochs,
                          batch_size=args.batch_size or defaults.batch_size, lr=lr, betas=betas,
                          out_dir=run_dir, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
                          sample_every=args.sample_every, seed=args.seed, progress_bar=not args.no_progress,
                          eval_data=test, spec=spec, labelled_batch_size=labelled_batch)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(f"run directory: {run_dir}")
    try:
        metrics = trainer.fit()
    except (TrainingDiverged, CheckpointError) as exc:
        raise ConfigError(str(exc)) from None
    if trainer.resumed_at >= trainer.total_steps:
        print(f"note: the run had trained {trainer.resumed_at} steps already ({trainer.total_steps} asked for): "
              "nothing trained; raise --steps or --epochs to train longer")
    _print_metrics(metrics)
    print(f"samples:       {run_dir / 'samples'}")
    print(f"TensorBoard:   tensorboard --logdir {run_dir / 'tb'}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from rlgen.generative.trainer import save_image_grid

    model, _ = _load(args.run_dir)
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples.png"
    if out.suffix not in (".png", ".npy"):
        raise ConfigError(f"--out must end in .png or .npy, got {out.name}")
    samples = draw_samples(model, args.n, seed=args.seed, batch_size=args.batch_size,
                           progress_bar=not args.no_progress)
    if out.suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, samples.numpy(), allow_pickle=False)
        atomic_write_bytes(out, buffer.getvalue())
    else:
        if samples.dim() != 4:
            raise ConfigError(f"the model samples vectors of shape {tuple(samples.shape[1:])}, not images; "
                              "use --out FILE.npy")
        save_image_grid(samples, out)
    print(f"{len(samples)} samples -> {out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from rlgen.generative.metrics import SampleScorer
    from rlgen.generative.trainer import evaluate

    model, spec = _load(args.run_dir)
    data = load_run_data(spec, args.split)
    metrics: dict[str, Any] = {"run_dir": args.run_dir, "model": spec.name, "data": spec.data,
                               "split": args.split}
    metrics.update(evaluate(model, data, batch_size=args.batch_size, seed=args.seed,
                            progress_bar=not args.no_progress, iw_samples=args.iw_samples))
    if args.score:
        if len(data.shape) != 3:
            raise ConfigError("--score needs image data; this run models vectors")
        samples = draw_samples(model, args.score, seed=args.seed, progress_bar=not args.no_progress)
        train = load_run_data(spec, "train")
        scorer = SampleScorer.fit(train, seed=args.seed, cache=Path(args.run_dir) / "scorer.pt",
                                  progress_bar=not args.no_progress)
        metrics["sample_score"] = scorer.inception_like_score(samples)
        metrics["sample_score_real"] = scorer.inception_like_score(data.x)
        metrics["frechet_distance"] = scorer.frechet_distance(samples, data)
        metrics["scorer_accuracy"] = scorer.accuracy(data)
    if args.json:
        print(json.dumps(metrics))
    else:
        _print_metrics(metrics)
    return 0


def _print_metrics(metrics: dict[str, Any]) -> None:
    width = max(len(key) for key in metrics)
    for key, value in metrics.items():
        if isinstance(value, float):
            shown = str(int(value)) if value.is_integer() else f"{value:.4f}"
        else:
            shown = str(value)
        print(f"{key:<{width}}  {shown}")

"""GAN benchmarks on the bundled data: semi-supervised MNIST, InfoGAN's categories, DCGAN sample scores.

    python benchmarks/gan.py [--parts ssgan,infogan,dcgan] [--seeds 0] [--ssgan-steps 2000] ...

(a) SemiSupervisedGAN on mnist5k with 100 labels (10 per digit): test error on the 1,000 test images,
    beside logistic regression on the 100 labels and LabelSpreading, both re-measured on the same labels.
(b) InfoGAN on mnist5k (labels unused): accuracy of the categorical code after the best one-to-one
    matching of categories to digits, beside k-means on raw pixels; the MI lower bound beside ln 10.
(c) DCGAN on scikit-learn digits, plain and with improved-GAN options: inception-like score and Fréchet
    distance from rlgen's SampleScorer (a small CNN fitted on digits), beside the real test images.

Every budget is an argument; the defaults are sized for ~15 minutes on one CPU thread, far below the
papers' (e.g. 300 epochs for the semi-supervised MNIST result). Writes benchmarks/results/gan.md and
sample grids benchmarks/results/gan_*.png.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rlgen.data import ImageData, load_dataset, semi_supervised_split  # noqa: E402
from rlgen.generative.dcgan import DCGAN  # noqa: E402
from rlgen.generative.infogan import InfoGAN  # noqa: E402
from rlgen.generative.metrics import SampleScorer, best_matching_accuracy  # noqa: E402
from rlgen.generative.ssgan import SemiSupervisedGAN  # noqa: E402
from rlgen.generative.trainer import save_image_grid  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PARTS = ("ssgan", "infogan", "dcgan")


@dataclass
class Report:
    """Lines of the markdown report, printed as they are added."""

    lines: list[str] = field(default_factory=list)

    def add(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)


def _linear_decay(optimizers: dict[str, torch.optim.Optimizer], base_lrs: dict[str, float], step: int,
                  steps: int, decay_from: float) -> None:
    """Constant learning rate, then a linear decay to 0 over the last (1 - decay_from) of the steps."""
    start = int(decay_from * steps)
    factor = 1.0 if step < start else max(0.0, (steps - step) / max(1, steps - start))
    for name, optimizer in optimizers.items():
        for group in optimizer.param_groups:
            group["lr"] = base_lrs[name] * factor


# ------------------------------------------------------------------------------------------------------
# (a) semi-supervised classification


def semi_supervised_baselines(train: ImageData, test: ImageData) -> dict[str, float]:
    """REFERENCE.md's two baselines on these very labels: test errors of logistic regression on the
    labelled examples alone, and of LabelSpreading (kNN 10, alpha 0.2) on 50 PCA components of all."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import LabelSpreading

    x, y = train.x.flatten(1).numpy(), train.y.numpy()
    x_test, y_test = test.x.flatten(1).numpy(), test.y.numpy()
    labelled = y >= 0
    logistic = LogisticRegression(max_iter=2000).fit(x[labelled], y[labelled])
    pca = PCA(n_components=50, random_state=0).fit(x)
    spreading = LabelSpreading(kernel="knn", n_neighbors=10, alpha=0.2).fit(pca.transform(x), y)
    return {
        "logistic": float((logistic.predict(x_test) != y_test).mean()),
        "label_spreading": float((spreading.predict(pca.transform(x_test)) != y_test).mean()),
    }


def run_ssgan(seed: int, steps: int, width_scale: float, batch_size: int, report: Report, figures: Path
              ) -> dict[str, float]:
    """Train on mnist5k with 100 labels; each step sees ``batch_size`` labelled examples (cycling over the
    100) and ``batch_size`` examples of the whole training set, as in the improved-GAN code."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train = semi_supervised_split(load_dataset("mnist5k", "train"), n_labels=100, seed=seed)
    test = load_dataset("mnist5k", "test")
    labelled = train.y >= 0
    x_lab, y_lab = train.x[labelled], train.y[labelled]
    gan = SemiSupervisedGAN(train.shape, n_classes=10, width_scale=width_scale)
    optimizers = gan.configure_optimizers()
    base_lrs = {name: opt.param_groups[0]["lr"] for name, opt in optimizers.items()}
    unlabelled_marks = torch.full((batch_size,), -1)
    curve: list[tuple[int, float]] = []
    start = time.perf_counter()
    for step in range(steps):
        _linear_decay(optimizers, base_lrs, step, steps, decay_from=2 / 3)
        pick = torch.randint(len(x_lab), (batch_size,), generator=generator)
        rest = torch.randint(len(train.x), (batch_size,), generator=generator)
        batch = (torch.cat([x_lab[pick], train.x[rest]]), torch.cat([y_lab[pick], unlabelled_marks]))
        logs = gan.train_step(batch, optimizers)
        if (step + 1) % max(1, steps // 8) == 0 or step + 1 == steps:
            error = float((gan.classify(test.x).argmax(dim=1) != test.y).float().mean())
            curve.append((step + 1, error))
            report.add(f"    ssgan seed {seed} step {step + 1}: test error {error:.3f}, "
                       f"train-batch error {logs.get('error', float('nan')):.3f}, "
                       f"D(real) {logs['d_real']:.2f}, D(fake) {logs['d_fake']:.2f}")
    seconds = time.perf_counter() - start
    save_image_grid(gan.sample(100), figures / f"gan_ssgan_samples_seed{seed}.png", nrow=10)
    result = {"error": curve[-1][1], "best_error": min(e for _, e in curve), "seconds": seconds}
    result["supervised_only"] = supervised_only_error(seed, steps, width_scale, batch_size, x_lab, y_lab, test)
    report.add(f"    same classifier, labelled examples only, seed {seed}: test error {result['supervised_only']:.3f}")
    result.update(semi_supervised_baselines(train, test))
    return result


def supervised_only_error(seed: int, steps: int, width_scale: float, batch_size: int, x_lab: torch.Tensor,
                          y_lab: torch.Tensor, test: ImageData) -> float:
    """The ablation: the same discriminator network, initialisation, noise, optimiser and schedule, trained by
    cross-entropy on the labelled batches alone (no generator, no unsupervised term)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = SemiSupervisedGAN(test.shape, n_classes=10, width_scale=width_scale)
    optimizers = {"d": model.configure_optimizers()["d"]}
    base_lrs = {"d": optimizers["d"].param_groups[0]["lr"]}
    model.initialize(x_lab)
    for step in range(steps):
        _linear_decay(optimizers, base_lrs, step, steps, decay_from=2 / 3)
        pick = torch.randint(len(x_lab), (batch_size,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model.class_logits(x_lab[pick]), y_lab[pick])
        optimizers["d"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["d"].step()
    return float((model.classify(test.x).argmax(dim=1) != test.y).float().mean())


# ------------------------------------------------------------------------------------------------------
# (b) unsupervised categories


def kmeans_accuracy(train: ImageData, test: ImageData, seed: int) -> dict[str, float]:
    """k-means (10 clusters, raw pixels) fitted on the training images; best-matching accuracy on both."""
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=10, n_init=10, random_state=seed).fit(train.x.flatten(1).numpy())
    return {
        "kmeans_train": best_matching_accuracy(kmeans.labels_, train.y.numpy()),
        "kmeans_test": best_matching_accuracy(kmeans.predict(test.x.flatten(1).numpy()), test.y.numpy()),
    }


def code_accuracy(gan: InfoGAN, data: ImageData) -> float:
    """Best-matching accuracy of the most probable category that Q infers."""
    categories = torch.cat([gan.infer_codes(chunk)[0].argmax(dim=1) for chunk in data.x.split(500)])
    return best_matching_accuracy(categories, data.y)


def run_infogan(seed: int, steps: int, width: int, batch_size: int, report: Report, figures: Path
                ) -> dict[str, float]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train, test = load_dataset("mnist5k", "train"), load_dataset("mnist5k", "test")
    gan = InfoGAN(train.shape, n_categories=10, n_continuous=2, noise_dim=62, width=width)
    optimizers = gan.configure_optimizers()
    unlabelled = torch.full((batch_size,), -1)
    bounds: list[float] = []
    start = time.perf_counter()
    for step in range(steps):
        batch = train.x[torch.randint(len(train.x), (batch_size,), generator=generator)]
        logs = gan.train_step((batch, unlabelled), optimizers)
        bounds.append(logs["mi_lower_bound"])
        if (step + 1) % max(1, steps // 8) == 0 or step + 1 == steps:
            report.add(f"    infogan seed {seed} step {step + 1}: MI bound (last 100 steps) "
                       f"{np.mean(bounds[-100:]):.3f}, test code accuracy {code_accuracy(gan, test):.3f}, "
                       f"D(real) {logs['d_real']:.2f}, D(fake) {logs['d_fake']:.2f}")
    seconds = time.perf_counter() - start
    # Rows: one category each; columns: different noise and continuous codes.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        rows = [gan.sample(10, category=k) for k in range(10)]
        traversal = [gan.sample(1, category=k, continuous=torch.tensor([c, 0.0])) for k in range(10)
                     for c in np.linspace(-1.0, 1.0, 10)]
    save_image_grid(torch.cat(rows), figures / f"gan_infogan_categories_seed{seed}.png", nrow=10)
    save_image_grid(torch.cat(traversal), figures / f"gan_infogan_continuous1_seed{seed}.png", nrow=10)
    result = {
        "train_accuracy": code_accuracy(gan, train), "test_accuracy": code_accuracy(gan, test),
        "mi_bound": float(np.mean(bounds[-100:])), "seconds": seconds,
    }
    result.update(kmeans_accuracy(train, test, seed))
    return result


# ------------------------------------------------------------------------------------------------------
# (c) sample quality


DCGAN_VARIANTS: dict[str, dict[str, object]] = {
    "plain": {},
    "mbd+smooth": {"minibatch_discrimination": True, "label_smoothing": 0.1},
    "feature matching": {"feature_matching": True},
    "vbn+hist+noise": {"virtual_batch_norm": True, "historical_averaging": 1e-3, "input_noise": 0.1},
}


def run_dcgan(seed: int, steps: int, width: int, batch_size: int, scorer: SampleScorer,
              report: Report, figures: Path) -> dict[str, dict[str, float]]:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    results: dict[str, dict[str, float]] = {}
    for name, options in DCGAN_VARIANTS.items():
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        gan = DCGAN(train.shape, z_dim=32, width=width, **options)  # type: ignore[arg-type]
        optimizers = gan.configure_optimizers()
        unlabelled = torch.full((batch_size,), -1)
        start = time.perf_counter()
        for _ in range(steps):
            batch = train.x[torch.randint(len(train.x), (batch_size,), generator=generator)]
            gan.train_step((batch, unlabelled), optimizers)
        seconds = time.perf_counter() - start
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            samples = gan.sample(1000)
        coverage = scorer.mode_coverage(samples)
        results[name] = {"score": scorer.inception_like_score(samples),
                         "frechet": scorer.frechet_distance(samples, test), "seconds": seconds,
                         "modes": coverage["modes"], "kl_uniform": coverage["kl_uniform"]}
        slug = name.replace(" ", "_").replace("+", "_")
        save_image_grid(samples[:100], figures / f"gan_dcgan_{slug}_seed{seed}.png", nrow=10)
        report.add(f"    dcgan {name} seed {seed}: inception-like {results[name]['score']:.2f}, "
                   f"Fréchet {results[name]['frechet']:.1f}, modes {results[name]['modes']:.0f}/10, "
                   f"KL to uniform {results[name]['kl_uniform']:.3f} ({seconds:.0f} s)")
    return results


# ------------------------------------------------------------------------------------------------------


def _mean_sd(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    scaled = [v * scale for v in values]
    if len(scaled) == 1:
        return f"{scaled[0]:.{digits}f}"
    return f"{np.mean(scaled):.{digits}f} ± {np.std(scaled, ddof=1):.{digits}f}"


def run(argv: list[str] | None = None, command: str | None = None) -> dict[str, dict]:
    """Run the parts, write the report; returns each part's per-seed results (benchmarks/generative.py uses them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of ssgan,infogan,dcgan")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--ssgan-steps", type=int, default=4000)
    parser.add_argument("--ssgan-width-scale", type=float, default=0.5, help="1.0 is the paper's network")
    parser.add_argument("--ssgan-batch", type=int, default=100, help="labelled and unlabelled examples per step")
    parser.add_argument("--infogan-steps", type=int, default=2500)
    parser.add_argument("--infogan-width", type=int, default=32, help="64 is the paper's network")
    parser.add_argument("--infogan-batch", type=int, default=64)
    parser.add_argument("--dcgan-steps", type=int, default=1000)
    parser.add_argument("--dcgan-width", type=int, default=32)
    parser.add_argument("--dcgan-batch", type=int, default=64)
    parser.add_argument("--out", default=str(RESULTS / "gan.md"))
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    figures = Path(args.out).parent  # sample grids go beside the report
    figures.mkdir(parents=True, exist_ok=True)
    report = Report()
    started = time.perf_counter()
    report.add("# GAN benchmarks")
    report.add()
    if command is None:
        command = shlex.join(["python", "benchmarks/gan.py", *(sys.argv[1:] if argv is None else argv)])
    report.add(f"Command: `{command}`")
    results: dict[str, dict] = {}
    report.add(f"Machine: {platform.machine()}, torch {torch.__version__}, 1 thread; seeds {seeds}.")
    report.add()

    if "ssgan" in parts:
        report.add("## (a) Semi-supervised GAN, mnist5k, 100 labels (10 per digit)")
        report.add()
        report.add(f"Budget: {args.ssgan_steps} steps of {args.ssgan_batch} labelled + {args.ssgan_batch} "
                   f"unlabelled images (~{args.ssgan_steps * args.ssgan_batch / 4000:.0f} epochs of the 4,000; "
                   f"the paper trains 300 epochs of 60,000), width_scale {args.ssgan_width_scale} (1.0 is the "
                   "paper's MLP), Adam lr 0.003 beta1 0.5, then a linear decay to 0 over the last third (ours: "
                   "the released MNIST script keeps 0.003). The unlabelled half of each batch is drawn from all "
                   "4,000 training images with labels hidden, as in the released code; data-dependent init on "
                   "the first batch. Test set: the 1,000 mnist5k test images; current parameters (the released "
                   "code tests a moving average of them).")
        report.add()
        runs = {seed: run_ssgan(seed, args.ssgan_steps, args.ssgan_width_scale, args.ssgan_batch, report, figures)
                for seed in seeds}
        results["ssgan"] = runs
        report.add()
        report.add("| method | test error % (same labels) | REFERENCE.md |")
        report.add("|---|---|---|")
        report.add(f"| SemiSupervisedGAN (final) | {_mean_sd([r['error'] for r in runs.values()], 100)} | "
                   "0.93 (paper: full MNIST, 300 epochs) |")
        report.add(f"| SemiSupervisedGAN (best of the {len(runs)}x8 checkpoints, optimistic) | "
                   f"{_mean_sd([r['best_error'] for r in runs.values()], 100)} | |")
        report.add(f"| the same classifier trained on the 100 labels only (ablation) | "
                   f"{_mean_sd([r['supervised_only'] for r in runs.values()], 100)} | |")
        report.add(f"| logistic regression, 100 labels | {_mean_sd([r['logistic'] for r in runs.values()], 100)}"
                   " | 23.5 |")
        report.add(f"| LabelSpreading, kNN 10, 50 PCA | "
                   f"{_mean_sd([r['label_spreading'] for r in runs.values()], 100)} | 13.1 |")
        report.add()
        report.add(f"Training time per seed: {_mean_sd([r['seconds'] for r in runs.values()], 1, 0)} s. "
                   f"Samples: {', '.join(f'gan_ssgan_samples_seed{s}.png' for s in seeds)}.")
        report.add()

    if "infogan" in parts:
        report.add("## (b) InfoGAN, mnist5k, categorical code vs digits (labels unused in training)")
        report.add()
        report.add(f"Budget: {args.infogan_steps} steps of batch {args.infogan_batch} "
                   f"(~{args.infogan_steps * args.infogan_batch / 4000:.0f} epochs of the 4,000 training images), "
                   f"width {args.infogan_width} (the paper's network is width 64, batch 128), lr 2e-4 (D) / "
                   "1e-3 (G and Q), 62 noise dims, one 10-way and two continuous codes, lambda 1.")
        report.add()
        runs = {seed: run_infogan(seed, args.infogan_steps, args.infogan_width, args.infogan_batch, report, figures)
                for seed in seeds}
        results["infogan"] = runs
        report.add()
        report.add("| method | accuracy % train (4,000) | accuracy % test (1,000) | REFERENCE.md |")
        report.add("|---|---|---|---|")
        report.add(f"| InfoGAN categorical code | {_mean_sd([r['train_accuracy'] for r in runs.values()], 100)} | "
                   f"{_mean_sd([r['test_accuracy'] for r in runs.values()], 100)} | ~95 (paper, full MNIST) |")
        report.add(f"| k-means, 10 clusters, raw pixels | {_mean_sd([r['kmeans_train'] for r in runs.values()], 100)}"
                   f" | {_mean_sd([r['kmeans_test'] for r in runs.values()], 100)} | 51.9 |")
        report.add()
        report.add(f"MI lower bound (mean of the last 100 steps): "
                   f"{_mean_sd([r['mi_bound'] for r in runs.values()], 1, 3)} nats; H(c) = ln 10 = "
                   f"{math.log(10):.3f}. Training time per seed: {_mean_sd([r['seconds'] for r in runs.values()], 1, 0)}"
                   " s. Grids: gan_infogan_categories_seed*.png (one row per category), "
                   "gan_infogan_continuous1_seed*.png (rows: categories; columns: the first continuous code from "
                   "-1 to 1).")
        report.add()

    if "dcgan" in parts:
        report.add("## (c) DCGAN on scikit-learn digits: sample scores")
        report.add()
        train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
        scorer = SampleScorer.fit(train, epochs=10, seed=0)
        report.add(f"Budget: {args.dcgan_steps} steps of batch {args.dcgan_batch} (~"
                   f"{args.dcgan_steps * args.dcgan_batch / 1400:.0f} epochs of the 1,400 training digits), width "
                   f"{args.dcgan_width}, z_dim 32, Adam 2e-4 beta1 0.5; scores of 1,000 samples. The scorer is "
                   f"rlgen's SampleScorer fitted on the training digits (10 epochs; test accuracy "
                   f"{scorer.accuracy(test):.3f}); its numbers compare models on digits only, not with published "
                   "Inception figures.")
        report.add()
        runs = {seed: run_dcgan(seed, args.dcgan_steps, args.dcgan_width, args.dcgan_batch, scorer, report, figures)
                for seed in seeds}
        results["dcgan"] = runs
        report.add()
        real_coverage = scorer.mode_coverage(test.x)
        results["dcgan_real"] = {"score": scorer.inception_like_score(test.x),
                                 "frechet": scorer.frechet_distance(train.x, test), **real_coverage}
        report.add("| samples | inception-like score (higher better, max 10) | Fréchet distance to test digits "
                   "(lower better) | modes covered (of 10) | KL(class histogram ‖ uniform), nats | train s |")
        report.add("|---|---|---|---|---|---|")
        report.add(f"| real test digits | {scorer.inception_like_score(test.x):.2f} | "
                   f"{scorer.frechet_distance(train.x, test):.1f} (train vs test) | {real_coverage['modes']:.0f} | "
                   f"{real_coverage['kl_uniform']:.3f} | |")
        for name in DCGAN_VARIANTS:
            rows = [runs[seed][name] for seed in seeds]
            options = ", ".join(f"{k}={v}" for k, v in DCGAN_VARIANTS[name].items()) or "no options"
            report.add(f"| DCGAN {name} ({options}) | {_mean_sd([r['score'] for r in rows], 1, 2)} | "
                       f"{_mean_sd([r['frechet'] for r in rows], 1, 1)} | "
                       f"{_mean_sd([r['modes'] for r in rows], 1, 1)} | "
                       f"{_mean_sd([r['kl_uniform'] for r in rows], 1, 3)} | "
                       f"{_mean_sd([r['seconds'] for r in rows], 1, 0)} |")
        report.add()
        report.add("Modes covered: the scorer's class of each sample (kept when its probability is at least 0.5); a "
                   "digit counts as covered when it holds at least a fifth of a uniform share (20 of the 1,000 "
                   "samples). KL 0 = every digit equally often; ln 10 = 2.303 = one digit only.")
        report.add()
        report.add("Grids: gan_dcgan_<variant>_seed*.png (100 samples each).")
        report.add()

    report.add(f"Total wall time: {time.perf_counter() - started:.0f} s.")
    Path(args.out).write_text("\n".join(report.lines) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

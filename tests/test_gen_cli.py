"""`rlgen gen` train/sample/eval through argparse, the model registry, and run directories."""

import json
import math

import pytest
import torch
from torch import nn

from rlgen.cli import main
from rlgen.data import load_dataset
from rlgen.generative import registry
from rlgen.generative.registry import MODELS, ModelSpec


class ToyPixels(nn.Module):
    """Independent Bernoulli pixels: a density model with loss, log_prob and sample."""

    def __init__(self, input_shape, init=0.0):
        super().__init__()
        self.logits = nn.Parameter(torch.full(tuple(input_shape), float(init)))

    def log_prob(self, x):
        x = (x > 0.5).float()
        logits = self.logits.expand_as(x)
        return -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)

    def loss(self, batch):
        return {"loss": -self.log_prob(batch[0]).mean()}

    def sample(self, n):
        return torch.bernoulli(torch.sigmoid(self.logits).expand(n, *self.logits.shape))


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(MODELS, "toy", lambda shape, n_levels, n_classes, **kw: ToyPixels(shape, **kw))


def _error(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_train_sample_eval_and_resume(toy, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["gen", "train", "toy", "--data", "mixture", "--steps", "40", "--batch-size", "32", "--lr", "0.05",
            "--out", str(tmp_path), "--run-name", "run", "--no-progress", "--log-every", "10",
            "--sample-every", "20", "-p", "init=0.5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "eval/bits_per_dim" in out and "tensorboard --logdir" in out
    spec = json.loads((run / "model.json").read_text())
    assert spec["name"] == "toy" and spec["kwargs"] == {"init": 0.5} and spec["input_shape"] == [1, 8, 8]
    assert spec["n_levels"] == 2 and spec["n_classes"] == 4 and spec["data"] == "mixture"
    assert (run / "checkpoint.pt").is_file() and list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "samples" / "step_0000020.png").is_file() and (run / "samples" / "step_0000040.png").is_file()

    assert main(["gen", "sample", str(run), "-n", "8", "--out", str(tmp_path / "s.png"), "--no-progress"]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["gen", "sample", str(run), "-n", "5", "--out", str(tmp_path / "s.npy"), "--no-progress"]) == 0
    import numpy as np

    assert np.load(tmp_path / "s.npy", allow_pickle=False).shape == (5, 1, 8, 8)
    capsys.readouterr()
    # an --out that cannot be written: one line naming the path, exit 1 (it was a traceback)
    for out, needle in ((tmp_path / "s.png" / "x.png", "not a directory"), (tmp_path / "d.png", "is a directory")):
        (tmp_path / "d.png").mkdir(exist_ok=True)
        assert main(["gen", "sample", str(run), "-n", "2", "--out", str(out), "--no-progress"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"

    assert main(["gen", "eval", str(run), "--json", "--no-progress"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["split"] == "test" and metrics["bits_per_dim"] < 1.0  # uniform would be 1 bit per pixel
    assert metrics["bits_per_dim"] == pytest.approx(metrics["nll_nats"] / (64 * np.log(2)))

    # same command with a larger budget resumes: 10 more steps, not 50
    argv[argv.index("40")] = "50"
    capsys.readouterr()
    assert main(argv) == 0
    assert "nothing trained" not in capsys.readouterr().out
    assert json.loads((run / "metrics.json").read_text())["step"] == 50
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 50
    # a budget the run has reached already trains nothing, and says so (it exited 0 without a word)
    argv[argv.index("50")] = "30"
    assert main(argv) == 0
    assert "note: the run had trained 50 steps already (30 asked for): nothing trained" in capsys.readouterr().out
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 50


def test_eval_with_sample_scores(toy, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["gen", "train", "toy", "--data", "mixture", "--steps", "30", "--lr", "0.05",
                 "--out", str(tmp_path), "--run-name", "run", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["gen", "eval", str(run), "--score", "64", "--json", "--no-progress"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    # independent pixels blur the four prototypes: its samples score below the real test images
    assert 1.0 <= metrics["sample_score"] < metrics["sample_score_real"]
    assert metrics["frechet_distance"] > 0 and (run / "scorer.pt").is_file()


def test_user_mistakes_are_one_line_errors(toy, tmp_path, capsys):
    out = ["--out", str(tmp_path), "--run-name", "a"]
    _error(capsys, ["gen", "train", "dcgn", *out], "unknown model 'dcgn'", "dcgan", "pixelcnn")
    _error(capsys, ["gen", "train", "toy", "--data", "digitz", *out],
           "unknown dataset 'digitz'", "digits", "mnist5k")
    _error(capsys, ["gen", "train", "toy", "--data", "mixture", "-p", "widht=3", *out],
           "cannot build toy", "widht")
    _error(capsys, ["gen", "train", "toy", "--data", "mixture", "-p", "noequals"], "key=value")
    _error(capsys, ["gen", "train", "toy", "--steps", "5", "--epochs", "1"], "not both")
    _error(capsys, ["gen", "eval", str(tmp_path / "missing")], "no model.json")
    _error(capsys, ["gen", "sample", str(tmp_path / "missing")], "no model.json")
    _error(capsys, ["gen", "sample", str(tmp_path), "--out", "x.jpg"], "no model.json")

    run = tmp_path / "run"
    out = ["--out", str(tmp_path), "--run-name", "run"]
    assert main(["gen", "train", "toy", "--data", "mixture", "--steps", "2", *out, "--no-progress"]) == 0
    _error(capsys, ["gen", "train", "toy", "--data", "mixture", "--steps", "4", *out, "-p", "init=1"],
           "holds a different run", "another --run-name")
    _error(capsys, ["gen", "train", "toy", "--data", "mixture", "--steps", "4", *out,
                    "--batch-size", "8", "--no-progress"], "batch_size=64, not 8")
    _error(capsys, ["gen", "sample", str(run), "--out", str(tmp_path / "x.jpg")], ".png or .npy")
    # checkpoints that do not fit, or are damaged: the file and the problem, in one line
    checkpoint = run / "checkpoint.pt"
    saved = torch.load(checkpoint, weights_only=True)
    torch.save({**saved, "model": {"logits": torch.zeros(2, 2)}}, checkpoint)
    _error(capsys, ["gen", "sample", str(run)], "does not fit", "size mismatch for logits")
    torch.save({key: value for key, value in saved.items() if key != "model"}, checkpoint)
    _error(capsys, ["gen", "sample", str(run)], "checkpoint.pt", "damaged", "model")
    _error(capsys, ["gen", "train", "toy", "--data", "mixture", "--steps", "4", *out, "--no-progress"],
           "checkpoint.pt", "damaged", "model")
    checkpoint.write_bytes(b"torn")
    _error(capsys, ["gen", "eval", str(run)], "checkpoint.pt", "not a readable")


def test_one_idx_file_is_trained_on_without_posing_as_its_own_test_set(toy, tmp_path, capsys):
    from rlgen.data import write_idx

    images = (torch.rand(20, 8, 8) > 0.5).to(torch.uint8).numpy() * 255
    write_idx(tmp_path / "mine-images-idx3-ubyte", images)
    write_idx(tmp_path / "mine-labels-idx1-ubyte", torch.zeros(20, dtype=torch.uint8).numpy())
    argv = ["gen", "train", "toy", "--data", str(tmp_path / "mine-images-idx3-ubyte"), "--steps", "2",
            "--out", str(tmp_path), "--run-name", "run", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "no test split" in out and "eval/" not in out
    _error(capsys, ["gen", "eval", str(tmp_path / "run")], "no test split", "folder")
    assert main(["gen", "eval", str(tmp_path / "run"), "--split", "train", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "train"


def test_eval_reports_the_vae_importance_weighted_bound_below_its_elbo(tmp_path, capsys):
    out = ["--out", str(tmp_path), "--run-name", "vae"]
    assert main(["gen", "train", "vae", "--data", "mixture", "--steps", "30", "-p", "hidden=[16]",
                 "-p", "latent_dim=4", *out, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["gen", "eval", str(tmp_path / "vae"), "--iw-samples", "20", "--json", "--no-progress"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    # the 20-sample bound is tighter than the one-sample ELBO; both in nats per example and bits/dim
    assert metrics["iw_nll_nats"] < metrics["nll_nats"]
    assert metrics["iw_bits_per_dim"] == pytest.approx(metrics["iw_nll_nats"] / (64 * math.log(2)))
    assert main(["gen", "eval", str(tmp_path / "vae"), "--iw-samples", "0", "--json", "--no-progress"]) == 0
    assert "iw_nll_nats" not in json.loads(capsys.readouterr().out)
    _error(capsys, ["gen", "train", "vae", "--data", "mixture", "-p", "n_levels=4", "--out", str(tmp_path),
                    "--run-name", "other"], "n_levels comes from the data", "--binarise")


def test_diverging_training_is_one_line_error(monkeypatch, tmp_path, capsys):
    class Exploding(ToyPixels):
        def loss(self, batch):
            return {"loss": super().loss(batch)["loss"] * float("inf")}

    monkeypatch.setitem(MODELS, "boom", lambda shape, n_levels, n_classes, **kw: Exploding(shape, **kw))
    _error(capsys, ["gen", "train", "boom", "--data", "mixture", "--out", str(tmp_path), "--run-name", "b",
                    "--no-progress"], "diverged at step 1", "'loss'")


def test_out_is_the_parent_folder_and_run_name_the_run_directory(toy, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = ["gen", "train", "toy", "--data", "mixture", "--steps", "1", "--no-progress"]
    assert main(train) == 0
    assert (tmp_path / "runs" / "gen" / "toy_mixture_s0" / "model.json").is_file()  # the defaults
    assert main([*train, "--run-name", "named"]) == 0
    assert (tmp_path / "runs" / "gen" / "named" / "model.json").is_file()
    assert main([*train, "--out", "parent", "--run-name", "r"]) == 0
    assert (tmp_path / "parent" / "r" / "model.json").is_file()
    assert capsys.readouterr().err == ""  # the new spelling: no warning


def test_out_without_run_name_is_still_the_run_directory_with_a_warning(toy, tmp_path, capsys):
    """The deprecated meaning, kept for one release so that no one's command silently trains elsewhere."""
    old = tmp_path / "old"
    assert main(["gen", "train", "toy", "--data", "mixture", "--steps", "1", "--out", str(old),
                 "--no-progress"]) == 0
    assert (old / "model.json").is_file() and not (old / "toy_mixture_s0").exists()
    captured = capsys.readouterr()
    assert f"run directory: {old}\n" in captured.out
    assert captured.err == ("rlgen: warning: gen train --out without --run-name is deprecated: OUT is the "
                            "run directory in this release but will become its parent folder, as in "
                            "`rlgen train`; use --out PARENT --run-name NAME (the same run directory: "
                            f"--out {tmp_path} --run-name old)\n")


@pytest.mark.parametrize("command", [["gen"], ["gen", "train"], ["gen", "sample"], ["gen", "eval"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0 and "usage:" in capsys.readouterr().out


_MODULES = {"dcgan": "dcgan", "ssgan": "ssgan", "infogan": "infogan", "vae": "vae", "iaf-vae": "vae",
            "pixelcnn": "pixelcnn", "pixelrnn": "pixelrnn"}
_SMALL = {"dcgan": {"width": 8, "z_dim": 8}, "ssgan": {"width_scale": 0.1, "z_dim": 8},
          "infogan": {"width": 8, "noise_dim": 4}, "vae": {"hidden": [16], "latent_dim": 4},
          "iaf-vae": {"hidden": [16], "latent_dim": 4, "iaf_hidden": [16]},
          "pixelcnn": {"channels": 8, "n_layers": 1}, "pixelrnn": {"hidden": 8, "n_layers": 1}}


def test_registry_names_every_model():
    assert set(MODELS) == set(_MODULES)
    with pytest.raises(registry.UnknownModelError, match="choose one of: dcgan"):
        registry.build_model("gan", (1, 8, 8), 2, 4)


@pytest.mark.parametrize("name, width", [("pixelcnn", "channels"), ("pixelrnn", "hidden")])
def test_pixel_models_build_for_colour_images_with_their_defaults(name, width):
    # their masked convolutions split the feature maps into one group per colour: the default width is
    # rounded up to a multiple of three for RGB images; a width the user gives is checked, not changed
    model = registry.build_model(name, (3, 8, 8), 256, 10)
    with torch.no_grad():
        assert torch.isfinite(model.log_prob(torch.rand(2, 3, 8, 8))).all()
    with pytest.raises(ValueError, match="divisible"):
        registry.build_model(name, (3, 8, 8), 256, 10, **{width: 16})


@pytest.mark.parametrize("name", list(_MODULES))
def test_registry_builds_a_model_that_trains_one_step(name):
    pytest.importorskip(f"rlgen.generative.{_MODULES[name]}")
    from rlgen.generative.trainer import Trainer

    data = load_dataset("mixture").subset(slice(0, 64))
    spec = ModelSpec(name, data.shape, data.n_levels, data.n_classes, kwargs=_SMALL[name], data="mixture")
    assert ModelSpec.from_json(spec.to_json()) == spec
    torch.manual_seed(0)
    model = spec.build()
    metrics = Trainer(model, data, steps=1, batch_size=16, progress_bar=False).fit()
    assert metrics["step"] == 1 and all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert model.sample(2).shape == (2, 1, 8, 8)


def test_model_spec_errors(tmp_path):
    with pytest.raises(ValueError, match="JSON values"):
        ModelSpec("vae", (1, 8, 8), 2, 4, kwargs={"hidden": {1, 2}})
    (tmp_path / "model.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not an rlgen model description"):
        ModelSpec.load(tmp_path)


def test_ssgan_trains_on_the_papers_semi_supervised_batches_by_default(tmp_path, capsys, monkeypatch):
    from rlgen.generative import trainer as trainer_module

    sizes = []
    original = trainer_module.Trainer.batch_at
    monkeypatch.setattr(trainer_module.Trainer, "batch_at",
                        lambda self, step: sizes.append(((b := original(self, step))[1] >= 0).sum().item()) or b)
    out = ["--out", str(tmp_path), "--no-progress", "-p", "width_scale=0.05", "--steps", "2", "--data", "digits"]
    assert main(["gen", "train", "ssgan", "--run-name", "a", *out]) == 0
    assert sizes == [100, 100]  # 100 labelled examples beside the 100 of all the data, labels hidden
    sizes.clear()
    assert main(["gen", "train", "ssgan", "--run-name", "b", "--labelled-batch", "0", *out]) == 0
    assert max(sizes) < 20  # as drawn: ~100 labels among 1,400 digits leave a few per batch
    capsys.readouterr()
    _error(capsys, ["gen", "train", "ssgan", "--labelled-batch", "-1", *out], "--labelled-batch", "-1")


@pytest.mark.parametrize("option, value", [("--score", "-5"), ("--iw-samples", "-1"), ("--score", "2.5")])
def test_eval_counts_must_be_whole_numbers_of_zero_or_more(toy, tmp_path, capsys, option, value):
    """--score -5 drew no samples and crashed in torch.cat with a traceback; argparse now refuses it."""
    assert main(["gen", "train", "toy", "--data", "mixture", "--steps", "1", "--out", str(tmp_path),
                 "--run-name", "run", "--no-progress"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["gen", "eval", str(tmp_path / "run"), option, value, "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be a non-negative whole number, got '{value}'" in err
    assert "Traceback" not in err


def test_resume_refuses_another_learning_rate_or_beta1(toy, tmp_path, capsys):
    """--lr and --beta1 on a resumed run were silently replaced by the checkpoint's optimiser state."""
    train = ["gen", "train", "toy", "--data", "mixture", "--out", str(tmp_path), "--run-name", "run", "--no-progress"]
    assert main([*train, "--steps", "2"]) == 0
    _error(capsys, [*train, "--steps", "4", "--lr", "0.5"], "made with lr=0.001, not 0.5")
    _error(capsys, [*train, "--steps", "4", "--beta1", "0.1"], "made with betas=[0.9, 0.999], not [0.1, 0.999]")
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 2
    assert main([*train, "--steps", "4"]) == 0
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 4


def test_train_refuses_a_folder_that_holds_something_else(toy, tmp_path, capsys):
    """gen train wrote model.json, checkpoint.pt, metrics.json and its tb/ events into an RL run's directory."""
    rl_run = tmp_path / "ppo_run"
    (rl_run / "tb").mkdir(parents=True)
    (rl_run / "config.yaml").write_text("algo: ppo\n")
    train = ["gen", "train", "toy", "--data", "mixture", "--steps", "1", "--no-progress"]
    _error(capsys, [*train, "--out", str(tmp_path), "--run-name", "ppo_run"],
           "not a generative-model run directory", "config.yaml, tb")
    assert main([*train, "--out", str(rl_run)]) == 2  # the deprecated form: a warning, then the error
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"rlgen: error: {rl_run} is not a generative-model")
    assert sorted(p.name for p in rl_run.iterdir()) == ["config.yaml", "tb"] and not any((rl_run / "tb").iterdir())
    (tmp_path / "file").write_text("x")
    _error(capsys, [*train, "--out", str(tmp_path), "--run-name", "file"], "is a file")
    (tmp_path / "empty").mkdir()
    assert main([*train, "--out", str(tmp_path), "--run-name", "empty"]) == 0  # an empty folder is fine
    assert main([*train, "--steps", "2", "--out", str(tmp_path), "--run-name", "empty"]) == 0  # and so is a resume


def test_a_batch_of_one_for_a_batch_norm_model_is_a_one_line_error(tmp_path, capsys):
    """dcgan --batch-size 1 ended in torch's BatchNorm1d ValueError with a traceback at the first step."""
    _error(capsys, ["gen", "train", "dcgan", "--data", "mixture", "--batch-size", "1", "-p", "width=4",
                    "--out", str(tmp_path), "--run-name", "run", "--no-progress"],
           "DCGAN has batch norm layers", "at least 2 examples per batch")


def test_an_idx_folder_without_t10k_files_is_trained_on_without_a_test_split(toy, tmp_path, capsys):
    from rlgen.data import write_idx

    data = tmp_path / "mnist"
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte", (torch.rand(20, 8, 8) > 0.5).to(torch.uint8).numpy() * 255)
    write_idx(data / "train-labels-idx1-ubyte", torch.zeros(20, dtype=torch.uint8).numpy())
    assert main(["gen", "train", "toy", "--data", str(data), "--steps", "2", "--out", str(tmp_path),
                 "--run-name", "run", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "no test split" in out and "eval/" not in out
    _error(capsys, ["gen", "eval", str(tmp_path / "run")], "no test split")


def test_resume_with_other_data_settings_names_what_differs(toy, tmp_path, capsys):
    """It said "holds a different run (toy on digits with {})" when only --binarise or --labels differed."""
    train = ["gen", "train", "toy", "--data", "digits", "--steps", "1", "--out", str(tmp_path), "--run-name", "run",
             "--no-progress"]
    assert main([*train, "--binarise", "0.5"]) == 0
    _error(capsys, train, "holds a different run", "--binarise 0.5 there, None here")
    _error(capsys, [*train, "--binarise", "0.5", "--labels", "10"], "--labels None there, 10 here")
    _error(capsys, [*train, "--binarise", "0.5", "-p", "init=1"], "-p {} there, {'init': 1} here")
    _error(capsys, [*train, "--binarise", "0.25"], "--binarise 0.5 there, 0.25 here")

"""Trainer: learns, stops on NaN naming the step, resumes exactly, writes TensorBoard logs and samples."""

import math

import pytest
import torch
from torch import nn

from rlgen.data import load_dataset
from rlgen.generative.trainer import Trainer, TrainingDiverged, evaluate, load_checkpoint, save_image_grid


class PixelBernoulli(nn.Module):
    """Independent Bernoulli pixels; its loss flips a few input pixels at random, so it uses the global RNG."""

    def __init__(self, shape=(1, 8, 8), flip=0.02):
        super().__init__()
        self.logits = nn.Parameter(torch.randn(shape) * 0.1)
        self.flip = flip

    def log_prob(self, x):
        x = (x > 0.5).float()
        return -nn.functional.binary_cross_entropy_with_logits(
            self.logits.expand_as(x), x, reduction="none").flatten(1).sum(1)

    def loss(self, batch):
        x, _ = batch
        if self.training:
            flips = torch.rand_like(x) < self.flip
            x = torch.where(flips, 1 - x, x)
        nll = -self.log_prob(x).mean()
        return {"loss": nll, "nll": nll.detach()}

    def sample(self, n):
        return torch.bernoulli(torch.sigmoid(self.logits).expand(n, *self.logits.shape))


class TwoPlayer(nn.Module):
    """A fake adversarial model: two optimisers, its own alternating train_step, noise from the global RNG."""

    def __init__(self, dim=64):
        super().__init__()
        self.generator = nn.Linear(4, dim)
        self.discriminator = nn.Linear(dim, 1)
        self.calls = 0

    def configure_optimizers(self, lr, betas):
        return {"discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas),
                "generator": torch.optim.Adam(self.generator.parameters(), lr=lr / 2, betas=betas)}

    def _fake(self, n):
        return torch.sigmoid(self.generator(torch.randn(n, 4)))

    def loss(self, batch):
        x = batch[0].flatten(1)
        real, fake = self.discriminator(x), self.discriminator(self._fake(len(x)))
        bce = nn.functional.binary_cross_entropy_with_logits
        loss_d = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
        loss_g = bce(fake, torch.ones_like(fake))
        return {"loss_d": loss_d, "loss_g": loss_g}

    def train_step(self, batch, optimizers):
        self.calls += 1
        losses = self.loss(batch)
        optimizers["discriminator"].zero_grad()
        losses["loss_d"].backward(inputs=list(self.discriminator.parameters()))
        optimizers["discriminator"].step()
        losses = self.loss(batch)
        optimizers["generator"].zero_grad()
        losses["loss_g"].backward(inputs=list(self.generator.parameters()))
        optimizers["generator"].step()
        return {k: float(v.detach()) for k, v in losses.items()}

    def sample(self, n):
        return self._fake(n).reshape(n, 1, 8, 8)


class CountingPixels(PixelBernoulli):
    def __init__(self, fail_at=None, error=None):
        super().__init__()
        self.calls, self.fail_at, self.error = 0, fail_at, error

    def loss(self, batch):
        self.calls += 1
        losses = super().loss(batch)
        if self.calls == self.fail_at:
            if self.error is not None:
                raise self.error
            losses["loss"] = losses["loss"] * float("nan")
        return losses


@pytest.fixture(scope="module")
def mixture():
    return load_dataset("mixture"), load_dataset("mixture", "test")


def _fresh(cls, **kwargs):
    torch.manual_seed(123)
    return cls(**kwargs)


def test_loss_goes_down_and_evaluate_reports_bits_per_dim(mixture):
    train, test = mixture
    model = _fresh(PixelBernoulli)
    before = evaluate(model, test)
    metrics = Trainer(model, train, steps=150, batch_size=32, lr=0.05, progress_bar=False, eval_data=test).fit()
    after = evaluate(model, test)
    assert after["nll_nats"] < 0.8 * before["nll_nats"]
    assert metrics["eval/nll_nats"] == pytest.approx(after["nll_nats"])
    assert metrics["train/loss"] < before["loss"] and metrics["step"] == 150
    assert after["bits_per_dim"] == pytest.approx(after["nll_nats"] / (64 * math.log(2)))


def test_two_optimiser_model_trains_both_players(mixture):
    model = _fresh(TwoPlayer)
    g0, d0 = model.generator.weight.clone(), model.discriminator.weight.clone()
    metrics = Trainer(model, mixture[0], steps=20, batch_size=16, progress_bar=False).fit()
    assert {"train/loss_d", "train/loss_g"} <= set(metrics)
    assert not torch.equal(model.generator.weight, g0) and not torch.equal(model.discriminator.weight, d0)
    assert model.calls == 20


def test_nan_loss_raises_naming_step_and_key(mixture, tmp_path):
    model = _fresh(CountingPixels, fail_at=7)
    trainer = Trainer(model, mixture[0], steps=20, batch_size=16, out_dir=tmp_path, checkpoint_every=5,
                      progress_bar=False)
    with pytest.raises(TrainingDiverged) as exc_info:
        trainer.fit()
    message = str(exc_info.value)
    assert "step 7" in message and "'loss'" in message and "nan" in message and "\n" not in message
    assert "checkpoint of step 5" in message
    assert load_checkpoint(tmp_path)["step"] == 5  # the good checkpoint is not overwritten


@pytest.mark.parametrize("cls", [PixelBernoulli, TwoPlayer])
def test_resume_continues_from_checkpoint_and_matches_uninterrupted_run(mixture, tmp_path, cls):
    train = mixture[0]
    settings = dict(batch_size=32, lr=0.01, seed=5, checkpoint_every=10, progress_bar=False, log_every=5)
    whole = _fresh(cls)
    Trainer(whole, train, steps=30, out_dir=tmp_path / "whole", **settings).fit()

    first = _fresh(cls)
    Trainer(first, train, steps=20, out_dir=tmp_path / "split", **settings).fit()
    assert load_checkpoint(tmp_path / "split")["step"] == 20
    resumed = _fresh(cls)  # a new process would start from a fresh model too
    trainer = Trainer(resumed, train, steps=30, out_dir=tmp_path / "split", **settings)
    metrics = trainer.fit()
    assert metrics["step"] == 30
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    optim_whole = load_checkpoint(tmp_path / "whole")["optimizers"]
    optim_split = load_checkpoint(tmp_path / "split")["optimizers"]
    assert optim_whole.keys() == optim_split.keys()


def test_resume_after_crash_skips_the_steps_done(mixture, tmp_path):
    train = mixture[0]
    settings = dict(steps=30, batch_size=32, lr=0.01, checkpoint_every=10, progress_bar=False)
    whole = _fresh(CountingPixels)
    Trainer(whole, train, out_dir=tmp_path / "whole", **settings).fit()

    crashing = _fresh(CountingPixels, fail_at=25, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        Trainer(crashing, train, out_dir=tmp_path / "run", **settings).fit()
    resumed = _fresh(CountingPixels)
    Trainer(resumed, train, out_dir=tmp_path / "run", **settings).fit()
    assert resumed.calls == 10  # steps 21..30: it continued from the checkpoint of step 20, not from 0
    assert torch.equal(resumed.logits, whole.logits)


def test_resume_refuses_a_changed_data_order(mixture, tmp_path):
    Trainer(_fresh(PixelBernoulli), mixture[0], steps=5, batch_size=32, out_dir=tmp_path, progress_bar=False).fit()
    with pytest.raises(ValueError, match="batch_size=32, not 16"):
        Trainer(_fresh(PixelBernoulli), mixture[0], steps=10, batch_size=16, out_dir=tmp_path,
                progress_bar=False).fit()


def test_run_directory_has_tensorboard_samples_and_metrics(mixture, tmp_path):
    Trainer(_fresh(PixelBernoulli), mixture[0], steps=12, batch_size=32, out_dir=tmp_path, log_every=4,
            sample_every=6, progress_bar=False).fit()
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    pngs = sorted(p.name for p in (tmp_path / "samples").glob("*.png"))
    assert pngs == ["step_0000006.png", "step_0000012.png"]
    assert (tmp_path / "samples" / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "checkpoint.pt").is_file()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tmp_path / "tb"))
    accumulator.Reload()
    assert {"train/loss", "train/nll", "time/steps_per_sec"} <= set(accumulator.Tags()["scalars"])
    assert [e.step for e in accumulator.Scalars("train/loss")] == [4, 8, 12]


def test_epochs_tensor_data_and_argument_errors(mixture):
    x = mixture[0].x[:100]
    trainer = Trainer(_fresh(PixelBernoulli), x, epochs=2, batch_size=32, progress_bar=False)
    assert trainer.total_steps == 2 * (100 // 32)
    assert trainer.fit()["step"] == 6
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        Trainer(_fresh(PixelBernoulli), x, steps=5, epochs=1)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(_fresh(PixelBernoulli), x, steps=5, batch_size=0)
    with pytest.raises(TypeError, match="ImageData"):
        Trainer(_fresh(PixelBernoulli), [1, 2, 3], steps=5)


def test_evaluate_is_repeatable_and_leaves_the_global_rng(mixture):
    model = _fresh(TwoPlayer)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first, second = evaluate(model, mixture[1]), evaluate(model, mixture[1])
    assert first == second and torch.equal(torch.get_rng_state(), state)



def test_fit_leaves_the_callers_global_rng(mixture):
    trainer = Trainer(_fresh(TwoPlayer), mixture[0], steps=3, batch_size=16, progress_bar=False)
    torch.manual_seed(7)
    state = torch.get_rng_state()
    trainer.fit()
    assert torch.equal(torch.get_rng_state(), state)


def test_save_image_grid_writes_png(tmp_path):
    save_image_grid(torch.rand(10, 3, 5, 5), tmp_path / "rgb.png")
    assert (tmp_path / "rgb.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="shape"):
        save_image_grid(torch.rand(10, 25), tmp_path / "flat.png")


def test_labelled_batches_cycle_over_the_labels_beside_the_data_with_labels_hidden(mixture, tmp_path):
    from rlgen.data import semi_supervised_split

    data = semi_supervised_split(mixture[0], n_labels=8, seed=0)
    labelled = set(torch.nonzero(data.y >= 0).flatten().tolist())
    trainer = Trainer(_fresh(TwoPlayer), data, steps=8, batch_size=32, labelled_batch_size=3, progress_bar=False)
    seen = []
    for step in range(8):
        x, y = trainer.batch_at(step)
        assert len(x) == len(y) == 35 and bool((y[3:] == -1).all()) and bool((y[:3] >= 0).all())
        # the labelled part is labelled examples, with their own labels
        rows = trainer._labelled_at(step).tolist()
        assert torch.equal(x[:3], data.x[rows]) and set(rows) <= labelled and data.y[rows].tolist() == y[:3].tolist()
        seen += rows
    # 24 draws over 8 labelled examples: three full passes, each example once per pass, in fresh orders
    assert all(sorted(seen[i:i + 8]) == sorted(labelled) for i in (0, 8, 16)) and seen[:8] != seen[8:16]
    # a function of (seed, step) alone, whatever was drawn before
    again = Trainer(_fresh(TwoPlayer), data, steps=8, batch_size=32, labelled_batch_size=3, progress_bar=False)
    assert torch.equal(again.batch_at(5)[0], trainer.batch_at(5)[0])
    # the data order is part of what a resumed run must keep
    first = Trainer(_fresh(TwoPlayer), data, steps=2, batch_size=32, labelled_batch_size=3, progress_bar=False,
                    out_dir=tmp_path / "run", checkpoint_every=1)
    first.fit()
    for other in (4, 0):  # another size, or none: another data order
        with pytest.raises(ValueError, match=f"labelled_batch_size=3, not {other}"):
            Trainer(_fresh(TwoPlayer), data, steps=4, batch_size=32, labelled_batch_size=other, progress_bar=False,
                    out_dir=tmp_path / "run").fit()
    # more labelled examples a batch than there are labelled ones: the batch spans several passes
    many = Trainer(_fresh(TwoPlayer), data, steps=3, batch_size=32, labelled_batch_size=30, progress_bar=False)
    for step in range(3):
        rows = many._labelled_at(step).tolist()
        assert len(rows) == 30 and set(rows) <= labelled
    with pytest.raises(ValueError, match="needs labelled examples"):
        Trainer(_fresh(TwoPlayer), (data.x, torch.full((len(data.x),), -1)), steps=1, labelled_batch_size=2)


def test_resume_refuses_a_changed_learning_rate_or_betas(mixture, tmp_path):
    """The optimisers' saved state holds lr and betas: a resumed run given others silently trained with the old."""
    settings = dict(batch_size=32, out_dir=tmp_path, progress_bar=False)
    Trainer(_fresh(PixelBernoulli), mixture[0], steps=5, lr=0.01, **settings).fit()
    with pytest.raises(ValueError, match=r"made with lr=0.01, not 0.5"):
        Trainer(_fresh(PixelBernoulli), mixture[0], steps=10, lr=0.5, **settings).fit()
    with pytest.raises(ValueError, match=r"made with betas=\[0.9, 0.999\], not \[0.5, 0.999\]"):
        Trainer(_fresh(PixelBernoulli), mixture[0], steps=10, lr=0.01, betas=(0.5, 0.999), **settings).fit()
    assert load_checkpoint(tmp_path)["step"] == 5
    Trainer(_fresh(PixelBernoulli), mixture[0], steps=10, lr=0.01, **settings).fit()  # the same settings resume
    assert load_checkpoint(tmp_path)["step"] == 10


def test_resume_of_a_checkpoint_without_optimiser_settings(mixture, tmp_path):
    """Checkpoints written before lr and betas were recorded still resume (their optimiser state has them)."""
    settings = dict(batch_size=32, lr=0.01, out_dir=tmp_path, progress_bar=False)
    Trainer(_fresh(PixelBernoulli), mixture[0], steps=5, **settings).fit()
    checkpoint = load_checkpoint(tmp_path)
    for key in ("lr", "betas"):
        del checkpoint["settings"][key]
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    Trainer(_fresh(PixelBernoulli), mixture[0], steps=10, **settings).fit()
    assert load_checkpoint(tmp_path)["step"] == 10


def test_data_without_examples_or_batches_batch_norm_cannot_take_are_refused(mixture):
    """An empty ImageData divided by zero; a batch of one reached torch's BatchNorm1d error at the first step."""
    with pytest.raises(ValueError, match="hold no examples"):
        Trainer(_fresh(PixelBernoulli), mixture[0].subset(slice(0, 0)), steps=1)

    class WithBatchNorm(PixelBernoulli):
        def __init__(self):
            super().__init__()
            self.norm = nn.BatchNorm1d(3)

    with pytest.raises(ValueError, match="at least 2 examples per batch; got batches of 1"):
        Trainer(_fresh(WithBatchNorm), mixture[0], steps=1, batch_size=1)
    with pytest.raises(ValueError, match=r"batches of 1 \(the data hold only 1 example\)"):
        Trainer(_fresh(WithBatchNorm), mixture[0].subset(slice(0, 1)), steps=1)
    Trainer(_fresh(PixelBernoulli), mixture[0], steps=1, batch_size=1, progress_bar=False).fit()  # no batch norm

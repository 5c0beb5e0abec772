"""Tests for the GAN building blocks (rlgen.generative.gan_parts) and the three GANs built on them: each
stabilising trick does what the paper says, each loss trains its own player only, and short trainings on
8x8 data show the mechanisms at work (a discriminator that separates, a classifier that beats chance, a
mutual-information bound that rises toward ln K)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlgen.generative.dcgan import DCGAN, image_levels
from rlgen.generative.gan_parts import (
    GaussianNoise,
    HistoricalAveraging,
    MinibatchDiscrimination,
    VirtualBatchNorm,
    bernoulli_entropy,
    discriminator_bce,
    feature_matching_loss,
    generator_loss,
    gradient_penalty,
    linear,
    virtual_batch_norm_reference,
)
from rlgen.generative.infogan import InfoGAN
from rlgen.generative.ssgan import SemiSupervisedGAN


def _unlabelled(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x, torch.full((x.shape[0],), -1, dtype=torch.long)


def _gradient_norms(loss: torch.Tensor, parameters: list[nn.Parameter]) -> list[float]:
    """Norm of d loss / d p for each trainable parameter, 0.0 where the graph does not reach it."""
    parameters = [p for p in parameters if p.requires_grad]
    grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
    return [0.0 if g is None else float(g.norm()) for g in grads]


def _digits(split: str = "train"):
    from rlgen.data import load_dataset

    return load_dataset("digits", split)


# ------------------------------------------------------------------------------------------------------
# Building blocks


@pytest.mark.parametrize("shape", [(16,), (2, 3, 3)])
def test_minibatch_discrimination_sees_a_collapsed_batch(shape):
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(math.prod(shape), n_kernels=7, kernel_dim=3)
    diverse = torch.randn(8, *shape) * 3.0
    collapsed = diverse[:1].expand(8, *shape)
    out_diverse, out_collapsed = layer(diverse), layer(collapsed)
    assert out_diverse.shape == (8, math.prod(shape) + 7)
    # Identical examples are at distance 0 from the 7 others: every kernel gives exp(0) * 7.
    torch.testing.assert_close(out_collapsed[:, -7:], torch.full((8, 7), 7.0))
    assert float(out_diverse[:, -7:].detach().max()) < 6.0
    # The original features pass through unchanged, and the projection receives gradients.
    torch.testing.assert_close(out_diverse[:, :-7], diverse.flatten(1))
    out_diverse[:, -7:].sum().backward()
    assert float(layer.projection.grad.norm()) > 0


@pytest.mark.parametrize("shape", [(5,), (3, 4, 4)])
def test_virtual_batch_norm_output_depends_on_the_reference_batch_not_the_rest_of_the_batch(shape):
    torch.manual_seed(0)
    layer = VirtualBatchNorm(shape[0])
    with pytest.raises(RuntimeError, match="reference"):
        layer(torch.randn(2, *shape))
    reference = torch.randn(16, *shape) * 2.0 + 1.0
    with virtual_batch_norm_reference(layer):
        normalised_reference = layer(reference)
    # The reference batch itself is normalised with its own statistics, like batch norm in training.
    dims = (0,) + tuple(range(2, len(shape) + 1))
    torch.testing.assert_close(normalised_reference.mean(dim=dims), torch.zeros(shape[0]), atol=1e-5, rtol=0)
    example = torch.randn(1, *shape)
    in_one_batch = layer(torch.cat([example, torch.randn(7, *shape)]))[0]
    in_another = layer(torch.cat([example, 100.0 * torch.randn(3, *shape)]))[0]
    alone = layer(example)[0]
    torch.testing.assert_close(in_one_batch, in_another)
    torch.testing.assert_close(in_one_batch, alone)
    # With R reference examples the example's own statistics weigh 1/(R+1).
    own = example.mean(dim=tuple(range(2, len(shape) + 1))) if len(shape) > 1 else example
    mean = (own / 17 + reference.mean(dim=dims) * 16 / 17).view(1, shape[0], *([1] * (len(shape) - 1)))
    own_sq = example.square().mean(dim=tuple(range(2, len(shape) + 1))) if len(shape) > 1 else example.square()
    mean_sq = (own_sq / 17 + reference.square().mean(dim=dims) * 16 / 17).view_as(mean)
    torch.testing.assert_close(alone, ((example - mean) / torch.sqrt(mean_sq - mean.square() + 1e-5))[0])
    # A different reference batch changes the output.
    with virtual_batch_norm_reference(layer):
        layer(torch.randn(16, *shape))
    assert not torch.allclose(layer(example)[0], alone)


def test_virtual_batch_norm_reference_statistics_carry_gradients_and_are_saved():
    layer = VirtualBatchNorm(3)
    source = nn.Parameter(torch.randn(8, 3))
    with virtual_batch_norm_reference(layer):
        layer(source)
    layer(torch.randn(2, 3)).square().sum().backward()
    assert float(source.grad.norm()) > 0
    restored = VirtualBatchNorm(3)
    restored.load_state_dict(layer.state_dict())
    example = torch.randn(1, 3)
    torch.testing.assert_close(restored(example), layer(example).detach())


def test_gaussian_noise_is_active_in_training_only():
    layer = GaussianNoise(0.5)
    x = torch.zeros(2000)
    assert 0.45 < float(layer(x).std()) < 0.55
    layer.eval()
    assert torch.equal(layer(x), x)
    with pytest.raises(ValueError):
        GaussianNoise(-1.0)


def test_linear_norm_options():
    torch.manual_seed(0)
    plain, weighted, spectral = (linear(6, 4, norm=n) for n in ("none", "weight", "spectral"))
    assert isinstance(plain, nn.Linear)
    names = {name for name, _ in weighted.named_parameters()}
    assert {"parametrizations.weight.original0", "parametrizations.weight.original1"} <= names
    for _ in range(30):  # power iterations run in training-mode forward passes
        spectral(torch.randn(3, 6))
    assert abs(float(torch.linalg.matrix_norm(spectral.weight.detach(), ord=2)) - 1.0) < 1e-3
    with pytest.raises(ValueError, match="norm"):
        linear(2, 2, norm="batch")  # type: ignore[arg-type]


def test_historical_averaging_penalises_distance_from_the_mean_of_past_parameters():
    parameter = nn.Parameter(torch.zeros(3))
    history = HistoricalAveraging([parameter], coefficient=0.5)
    assert float(history.penalty().detach()) == 0.0
    with torch.no_grad():
        parameter.fill_(2.0)
    torch.testing.assert_close(history.penalty(), torch.tensor(0.5 * 3 * 4.0))
    (grad,) = torch.autograd.grad(history.penalty(), parameter)
    torch.testing.assert_close(grad, torch.full((3,), 2.0))  # pulls back toward the average
    history.update()  # the average of the values seen so far, 0 and 2, is 1
    torch.testing.assert_close(history.average_0, torch.ones(3))
    with torch.no_grad():
        parameter.fill_(4.0)
    history.update()  # (0 + 2 + 4) / 3
    torch.testing.assert_close(history.average_0, torch.full((3,), 2.0))
    assert "average_0" in history.state_dict() and "steps" in history.state_dict()


def test_one_sided_label_smoothing_changes_only_the_real_targets():
    logits_real = torch.randn(6, requires_grad=True)
    logits_fake = torch.randn(5, requires_grad=True)

    def gradients(real_label: float) -> tuple[torch.Tensor, torch.Tensor]:
        loss = discriminator_bce(logits_real, logits_fake, real_label=real_label)
        return torch.autograd.grad(loss, [logits_real, logits_fake])

    real_plain, fake_plain = gradients(1.0)
    real_smooth, fake_smooth = gradients(0.9)
    torch.testing.assert_close(fake_smooth, fake_plain)
    # d BCE / d logit = (sigmoid(logit) - target) / n: the real targets moved from 1 to 0.9.
    torch.testing.assert_close(real_smooth - real_plain, torch.full((6,), 0.1 / 6))
    expected = (F.binary_cross_entropy_with_logits(logits_real, torch.full((6,), 0.9))
                + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros(5)))
    torch.testing.assert_close(discriminator_bce(logits_real, logits_fake, 0.9), expected)


def test_entropy_bonus_is_gails_minus_entropy_of_all_logits():
    logits_real, logits_fake = torch.tensor([0.0, 3.0]), torch.tensor([-40.0])
    assert abs(float(bernoulli_entropy(torch.zeros(1))) - math.log(2)) < 1e-6
    assert float(bernoulli_entropy(torch.tensor([-40.0, 40.0])).max()) < 1e-12
    plain = discriminator_bce(logits_real, logits_fake)
    bonus = discriminator_bce(logits_real, logits_fake, entropy_bonus=0.001)
    expected_entropy = bernoulli_entropy(torch.tensor([0.0, 3.0, -40.0])).mean()
    torch.testing.assert_close(plain - bonus, 0.001 * expected_entropy)


def test_generator_losses():
    logits = torch.tensor([-2.0, 0.5])
    torch.testing.assert_close(generator_loss(logits), -F.logsigmoid(logits).mean())
    torch.testing.assert_close(generator_loss(logits, "saturating"), torch.log1p(-torch.sigmoid(logits)).mean())
    torch.testing.assert_close(generator_loss(logits, "wasserstein"), -logits.mean())
    with pytest.raises(ValueError, match="kind"):
        generator_loss(logits, "hinge")


def test_feature_matching_is_zero_for_identical_batches_and_trains_the_fake_side_only():
    real = torch.randn(10, 4, requires_grad=True)
    assert float(feature_matching_loss(real, real.clone()).detach()) == 0.0
    assert float(feature_matching_loss(real, real[torch.randperm(10)]).detach()) < 1e-12  # only the means matter
    fake = (real.detach() + torch.tensor([1.0, 0.0, 0.0, 2.0])).requires_grad_(True)
    loss = feature_matching_loss(real, fake)
    torch.testing.assert_close(loss, torch.tensor((1.0 + 4.0) / 4))
    loss.backward()
    assert real.grad is None and float(fake.grad.norm()) > 0


def test_gradient_penalties():
    critic = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.6, 0.0, 0.8]]))  # unit norm: a 1-Lipschitz critic
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    assert float(gradient_penalty(critic, real, fake).detach()) < 1e-10
    with torch.no_grad():
        critic.weight.mul_(3.0)
    penalty = gradient_penalty(critic, real, fake)
    torch.testing.assert_close(penalty, torch.tensor(4.0))  # (||w|| - 1)^2 = (3 - 1)^2
    penalty.backward()
    assert float(critic.weight.grad.norm()) > 0  # the penalty trains the critic
    torch.testing.assert_close(gradient_penalty(critic, real, kind="r1"), torch.tensor(9.0))
    with pytest.raises(ValueError, match="fake"):
        gradient_penalty(critic, real)


# ------------------------------------------------------------------------------------------------------
# The models: who trains what


def test_image_levels_choose_the_architecture_by_size():
    assert image_levels((1, 8, 8)) == (1, 1, 4)
    assert image_levels((1, 28, 28)) == (1, 2, 7)
    assert image_levels((3, 32, 32)) == (3, 3, 4)
    for bad in [(1, 8, 6), (1, 6, 6), (8, 8)]:
        with pytest.raises(ValueError):
            image_levels(bad)


def _tiny_dcgan(image_shape=(1, 8, 8), **options) -> DCGAN:
    return DCGAN(image_shape, z_dim=4, width=4, vbn_reference_size=8, **options)


@pytest.mark.parametrize("options", [{}, {"feature_matching": True, "minibatch_discrimination": True,
                                          "virtual_batch_norm": True, "historical_averaging": 0.1}])
def test_dcgan_each_loss_trains_its_own_player(options):
    torch.manual_seed(0)
    gan = _tiny_dcgan(**options)
    losses = gan.loss(_unlabelled(torch.rand(6, 1, 8, 8)))
    d_params, g_params = gan.discriminator_parameters(), gan.generator_parameters()
    assert all(g > 0 for g in _gradient_norms(losses["loss_d"], d_params))
    assert all(g == 0 for g in _gradient_norms(losses["loss_d"], g_params))
    assert all(g > 0 for g in _gradient_norms(losses["loss_g"], g_params))
    assert not losses["d_accuracy"].requires_grad


def _snapshot(parameters: list[nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in parameters]


def _changed(before: list[torch.Tensor], parameters: list[nn.Parameter]) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, parameters, strict=True))


@pytest.mark.parametrize("make", [
    lambda: _tiny_dcgan(feature_matching=True, historical_averaging=0.1),
    lambda: SemiSupervisedGAN((1, 8, 8), n_classes=3, width_scale=0.02),
    lambda: InfoGAN((1, 8, 8), n_categories=3, noise_dim=3, width=4),
])
def test_train_step_moves_each_player_with_its_own_optimizer_only(make):
    torch.manual_seed(0)
    gan = make()
    batch = (torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, -1, -1, -1]))
    d_params, g_params = gan.discriminator_parameters(), gan.generator_parameters()
    assert not {id(p) for p in d_params} & {id(p) for p in g_params}
    trainable = [p.requires_grad for p in gan.parameters()]
    if isinstance(gan, SemiSupervisedGAN):
        gan.initialize(batch[0])  # its first train_step would also initialise the discriminator
    for frozen in ("d", "g"):
        optimizers = gan.configure_optimizers()
        for group in optimizers[frozen].param_groups:
            group["lr"] = 0.0
        d_before, g_before = _snapshot(d_params), _snapshot(g_params)
        logs = gan.train_step(batch, optimizers)
        assert {"loss_d", "loss_g"} <= set(logs) and all(isinstance(v, float) for v in logs.values())
        assert _changed(d_before, d_params) == (frozen == "g")
        assert _changed(g_before, g_params) == (frozen == "d")
        # The G step's freezing is undone (the semi-supervised GAN keeps its hidden scales fixed throughout).
        assert [p.requires_grad for p in gan.parameters()] == trainable


_DCGAN_OPTIONS = {
    "feature_matching": True, "minibatch_discrimination": True, "label_smoothing": 0.1,
    "virtual_batch_norm": True, "historical_averaging": 0.01, "weight_norm": True, "input_noise": 0.1,
    "hidden_noise": 0.1,
}


def test_every_dcgan_option_combination_constructs_and_trains():
    batch = _unlabelled(torch.rand(4, 1, 8, 8))
    for mask in itertools.product((False, True), repeat=len(_DCGAN_OPTIONS)):
        options = {name: value for (name, value), on in zip(_DCGAN_OPTIONS.items(), mask, strict=True) if on}
        gan = _tiny_dcgan(**options)
        logs = gan.train_step(batch, gan.configure_optimizers())
        assert math.isfinite(logs["loss_d"]) and math.isfinite(logs["loss_g"]), options


@pytest.mark.parametrize("image_shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_samples_are_images_in_the_unit_interval(image_shape):
    models = [_tiny_dcgan(image_shape, virtual_batch_norm=True),
              SemiSupervisedGAN(image_shape, width_scale=0.02),
              InfoGAN(image_shape, n_categories=3, noise_dim=3, width=4)]
    for model in models:
        model.train_step(_unlabelled(torch.rand(4, *image_shape)), model.configure_optimizers())
        samples = model.sample(5)
        assert samples.shape == (5, *image_shape)
        assert float(samples.min()) >= 0.0 and float(samples.max()) <= 1.0
        assert model.training  # sampling restores the mode


def test_ssgan_fake_class_is_the_constant_zero_logit():
    torch.manual_seed(0)
    gan = SemiSupervisedGAN((1, 8, 8), n_classes=4, width_scale=0.05)
    assert gan.classifier.weight.shape[0] == 4  # K outputs, none for the fake class
    gan.eval()
    x = torch.rand(5, 1, 8, 8)
    logits = gan.class_logits(x)
    z = logits.exp().sum(dim=1)
    torch.testing.assert_close(gan.real_probability(x), z / (z + 1))
    # Softmax over K + 1 classes with the last logit 0: its probability is 1 - D(x).
    with_fake = torch.cat([logits, torch.zeros(5, 1)], dim=1).softmax(dim=1)
    torch.testing.assert_close(with_fake[:, -1], 1 - gan.real_probability(x))


def test_ssgan_data_dependent_init_standardises_every_layer():
    torch.manual_seed(0)
    gan = SemiSupervisedGAN((1, 8, 8), n_classes=3, width_scale=0.05, input_noise=0.0, hidden_noise=0.0)
    x = torch.rand(64, 1, 8, 8)
    batch = (x, torch.full((64,), -1))
    gan.train_step(batch, {"d": torch.optim.SGD(gan.discriminator_parameters(), lr=0.0),
                           "g": torch.optim.SGD(gan.generator_parameters(), lr=0.0)})
    assert bool(gan.initialized)
    h = x.flatten(1)
    for module in list(gan.trunk)[1:] + [gan.classifier]:
        if isinstance(module, nn.Linear):
            pre_activation = module(h)
            torch.testing.assert_close(pre_activation.mean(dim=0), torch.zeros(module.out_features),
                                       atol=1e-4, rtol=0)
            sd = pre_activation.std(dim=0, unbiased=False)
            torch.testing.assert_close(sd, torch.ones(module.out_features), atol=1e-3, rtol=0)
        h = module(h)
    # Hidden layers keep that scale; only the output layer's scale is trained, as in the released code.
    scales = [m.parametrizations.weight.original0 for m in gan._weight_normalised_layers()]
    assert [g.requires_grad for g in scales] == [False] * (len(scales) - 1) + [True]


def test_ssgan_losses():
    torch.manual_seed(0)
    gan = SemiSupervisedGAN((1, 8, 8), n_classes=3, width_scale=0.05)
    x = torch.rand(6, 1, 8, 8)
    losses = gan.loss((x, torch.tensor([0, 1, 2, -1, -1, -1])))
    d_params, g_params = gan.discriminator_parameters(), gan.generator_parameters()
    assert all(g > 0 for g in _gradient_norms(losses["loss_d"], d_params))
    assert all(g == 0 for g in _gradient_norms(losses["loss_d"], g_params))
    assert all(g > 0 for g in _gradient_norms(losses["loss_g"], g_params))
    assert 0.0 <= float(losses["error"]) <= 1.0 and float(losses["d_supervised"]) > 0
    # The supervised gradient comes from the labelled examples only: without labels it is exactly zero.
    unlabelled = gan.loss(_unlabelled(x))
    assert "error" not in unlabelled and float(unlabelled["d_supervised"]) == 0.0
    with pytest.raises(ValueError, match="labels"):
        gan.loss((x, torch.tensor([0, 1, 3, -1, -1, -1])))


def test_ssgan_discriminator_loss_is_the_k_plus_1_class_cross_entropy():
    # improved GAN's discriminator is a K+1-way classifier whose fake class has the constant logit 0:
    # labelled reals are scored on their class (among the K real ones), unlabelled reals on "not fake",
    # generated images on "fake"; checked here against that softmax written out by hand.
    torch.manual_seed(0)
    gan = SemiSupervisedGAN((1, 8, 8), n_classes=3, width_scale=0.05, input_noise=0.0, hidden_noise=0.0)
    x, fake = torch.rand(6, 1, 8, 8), torch.rand(4, 1, 8, 8)
    y = torch.tensor([0, 1, 2, -1, -1, -1])
    terms = gan.discriminator_terms(x, y, fake, None)
    with torch.no_grad():
        p_real = torch.cat([gan.class_logits(x), torch.zeros(6, 1)], dim=1).softmax(dim=1)
        p_fake = torch.cat([gan.class_logits(fake), torch.zeros(4, 1)], dim=1).softmax(dim=1)
    supervised = -(p_real[:3, :3] / p_real[:3, :3].sum(dim=1, keepdim=True))[range(3), y[:3]].log().mean()
    unsupervised = 0.5 * -(1 - p_real[3:, 3]).log().mean() + 0.5 * -p_fake[:, 3].log().mean()
    torch.testing.assert_close(terms["d_supervised"], supervised)
    torch.testing.assert_close(terms["d_unsupervised"], unsupervised)
    torch.testing.assert_close(terms["loss_d"].detach(), supervised + gan.unlabelled_weight * unsupervised)
    torch.testing.assert_close(terms["d_fake"], (1 - p_fake[:, 3]).mean())


def test_infogan_information_term_trains_generator_and_q_and_codes_can_be_fixed():
    torch.manual_seed(0)
    gan = InfoGAN((1, 8, 8), n_categories=3, n_continuous=2, noise_dim=3, width=4)
    losses = gan.loss(_unlabelled(torch.rand(6, 1, 8, 8)))
    trunk_and_head = list(gan.trunk.parameters()) + list(gan.head.parameters())
    q, generator = list(gan.q_head.parameters()), list(gan.generator.parameters())
    assert all(g > 0 for g in _gradient_norms(losses["loss_d"], trunk_and_head))
    assert all(g == 0 for g in _gradient_norms(losses["loss_d"], generator))
    assert all(g > 0 for g in _gradient_norms(losses["loss_g"], generator + q))
    assert float(losses["mi_lower_bound"]) <= math.log(3) + 1e-6
    optimizers = gan.configure_optimizers()
    assert optimizers["d"].param_groups[0]["lr"] == pytest.approx(2e-4)
    assert optimizers["g"].param_groups[0]["lr"] == pytest.approx(1e-3)
    _, codes, values = gan.draw_latent(4, category=2, continuous=torch.tensor([0.5, -0.5]))
    assert codes.tolist() == [2, 2, 2, 2] and values.tolist() == [[0.5, -0.5]] * 4
    probabilities, means = gan.infer_codes(torch.rand(4, 1, 8, 8))
    assert probabilities.shape == (4, 3) and means.shape == (4, 2)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(4))
    with pytest.raises(ValueError, match="category"):
        gan.sample(2, category=3)


def test_infogan_information_loss_is_the_log_likelihood_of_the_codes_under_q():
    # the variational bound's terms written out: Q's categorical log-probability of the category drawn and
    # its unit-variance Gaussian log-density of the continuous codes drawn, each with its weight
    torch.manual_seed(0)
    gan = InfoGAN((1, 8, 8), n_categories=3, n_continuous=2, noise_dim=3, width=4, lambda_continuous=0.5)
    latent = gan.draw_latent(5)
    _, codes, values = latent
    fake = gan.generate(latent).detach()
    terms = gan.discriminator_terms(torch.rand(5, 1, 8, 8), torch.full((5,), -1), fake, latent)
    with torch.no_grad():
        logits, means = gan._code_parameters(gan.trunk(fake))
    log_q_category = logits.log_softmax(dim=1)[range(5), codes].mean()
    log_q_continuous = torch.distributions.Normal(means, 1.0).log_prob(values).sum(dim=1).mean()
    expected = -(gan.lambda_info * log_q_category + 0.5 * log_q_continuous)
    torch.testing.assert_close(terms["loss_d"].detach() - terms["d_bce"], expected)


# ------------------------------------------------------------------------------------------------------
# Short trainings on 8x8 data


def _batches(x: torch.Tensor, batch_size: int, steps: int, generator: torch.Generator):
    for _ in range(steps):
        yield x[torch.randint(len(x), (batch_size,), generator=generator)]


def _distance_to_nearest(samples: torch.Tensor, data: torch.Tensor) -> float:
    """Mean Euclidean distance from each sample to its nearest data image."""
    return float(torch.cdist(samples.flatten(1), data.flatten(1)).min(dim=1).values.mean())


def test_dcgan_discriminator_learns_to_separate_real_digits_from_noise():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    x = _digits().x
    gan = DCGAN((1, 8, 8), z_dim=16, width=16)
    optimizers = gan.configure_optimizers(lr=5e-4)
    start_distance = _distance_to_nearest(gan.sample(256), x)
    for batch in _batches(x, 32, 200, generator):
        gan.train_step(_unlabelled(batch), optimizers)
    gan.eval()
    with torch.no_grad():
        real = gan.discriminator_logits(_digits("test").x)
        noise = gan.discriminator_logits(torch.rand(397, 1, 8, 8))
    accuracy = 0.5 * (float((real > 0).float().mean()) + float((noise <= 0).float().mean()))
    assert accuracy > 0.9
    # ... while the generator moved toward the data (held-out digits are ~1.0 from the nearest training
    # digit, uniform noise ~3.5, the untrained generator's samples ~3.0).
    assert _distance_to_nearest(gan.sample(256), x) < 0.8 * start_distance


def test_ssgan_classifier_beats_chance_with_ten_labels_per_class():
    from rlgen.data import semi_supervised_split

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    train = semi_supervised_split(_digits(), n_labels=100, seed=0)
    labelled = train.y >= 0
    x_lab, y_lab = train.x[labelled], train.y[labelled]
    gan = SemiSupervisedGAN((1, 8, 8), n_classes=10, width_scale=0.25)
    optimizers = gan.configure_optimizers()
    for unlabelled in _batches(train.x, 50, 200, generator):
        pick = torch.randint(len(x_lab), (50,), generator=generator)
        batch = (torch.cat([x_lab[pick], unlabelled]), torch.cat([y_lab[pick], torch.full((50,), -1)]))
        gan.train_step(batch, optimizers)
    test = _digits("test")
    accuracy = float((gan.classify(test.x).argmax(dim=1) == test.y).float().mean())
    assert accuracy > 0.75  # chance is 0.1


def test_infogan_mutual_information_bound_rises_toward_ln_k():
    from rlgen.data import load_dataset

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    x = load_dataset("mixture", "train").x
    gan = InfoGAN((1, 8, 8), n_categories=4, n_continuous=1, noise_dim=4, width=8)
    optimizers = gan.configure_optimizers()
    bounds = [gan.train_step(_unlabelled(batch), optimizers)["mi_lower_bound"]
              for batch in _batches(x, 32, 200, generator)]
    first, last = sum(bounds[:10]) / 10, sum(bounds[-20:]) / 20
    assert first < 0.5 * math.log(4)
    assert last > 0.8 * math.log(4)

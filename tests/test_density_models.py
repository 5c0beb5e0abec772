"""Mechanism tests of the density models: MADE, PixelCNN, PixelRNN, the VAE with IAF, and the likelihoods."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from rlgen.generative.likelihoods import (
    Categorical,
    DiscretizedLogistic,
    from_levels,
    make_likelihood,
    to_levels,
)
from rlgen.generative.made import MADE
from rlgen.generative.pixelcnn import PixelCNN
from rlgen.generative.pixelrnn import PixelRNN
from rlgen.generative.vae import VAE


def raster_order(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Positions (without batch) in generation order: rows, then pixels, then channels."""
    if len(shape) == 1:
        return [(d,) for d in range(shape[0])]
    c, h, w = shape
    return [(k, i, j) for i in range(h) for j in range(w) for k in range(c)]


def dependencies(model: torch.nn.Module, shape: tuple[int, ...], repeats: int = 2) -> set[tuple[tuple, tuple]]:
    """Pairs (output p, input q) where p's output has a nonzero gradient with respect to q.

    Gradients are summed over a few random inputs; use it under ``leaky_relus`` so that a ReLU unit that
    happens to be off does not hide a connection the masks allow.
    """
    order = raster_order(shape)
    found = set()
    for p in order:
        total = torch.zeros(1, *shape)
        for _ in range(repeats):
            x = torch.rand(1, *shape, requires_grad=True)
            (g,) = torch.autograd.grad(model(x)[(0, *p)].sum(), x)
            total += g.abs()
        found |= {(p, q) for q in order if bool(total[(0, *q)] > 0)}
    return found


def dependency_counts(model: torch.nn.Module, shape: tuple[int, ...], repeats: int = 2,
                      ) -> tuple[int, int]:
    """(leaks, gaps): pairs (output i, input j >= i) with a nonzero gradient, and (i, j < i) with none."""
    rank = {p: k for k, p in enumerate(raster_order(shape))}
    found = dependencies(model, shape, repeats)
    leaks = sum(rank[q] >= rank[p] for p, q in found)
    gaps = sum(rank[q] < rank[p] and (p, q) not in found for p in rank for q in rank)
    return leaks, gaps


def causal_neighbourhood(shape: tuple[int, int, int]) -> set[tuple[tuple, tuple]]:
    """What every image model here must see from each output (channel k, row i, column j), at the small sizes
    of these tests (images at most 4 wide, two layers or more after the first): the earlier channels of its
    own pixel, every channel of each pixel to its left in its row (each layer reaches one further left) and of
    the three pixels above it. The blind spots of the plain PixelCNN and the Row LSTM lie further up."""
    c, h, w = shape
    need = set()
    for p in raster_order(shape):
        k, i, j = p
        need |= {(p, (kk, i, j)) for kk in range(k)}
        before = [(i, jj) for jj in range(j)] + [(i - 1, j + dj) for dj in (-1, 0, 1) if i > 0 and 0 <= j + dj < w]
        need |= {(p, (kk, *q)) for q in before for kk in range(c)}
    return need


@pytest.fixture
def leaky_relus(monkeypatch):
    """ReLUs made leaky: a unit that happens to be off at the test inputs no longer hides what it connects."""
    monkeypatch.setattr(F, "relu", lambda x, inplace=False: F.leaky_relu(x, 0.1))


def all_inputs(shape: tuple[int, ...], n_levels: int) -> torch.Tensor:
    """Every possible input of ``shape`` on ``n_levels`` levels, as floats in [0, 1]."""
    n = math.prod(shape)
    levels = torch.tensor(list(itertools.product(range(n_levels), repeat=n)))
    return from_levels(levels, n_levels).view(-1, *shape)


# ------------------------------------------------------------------------------------------- likelihoods
def test_levels_round_trip_exactly() -> None:
    for n_levels in (2, 17, 256):
        levels = torch.arange(n_levels)
        assert torch.equal(to_levels(from_levels(levels, n_levels), n_levels), levels)
    with pytest.raises(ValueError, match="n_levels"):
        to_levels(torch.zeros(3), 1)


@pytest.mark.parametrize("likelihood", [Categorical(5), DiscretizedLogistic(5), DiscretizedLogistic(17, n_mix=3)])
def test_likelihoods_sum_to_one_and_agree(likelihood: Categorical | DiscretizedLogistic) -> None:
    params = 3.0 * torch.randn(4, 6, likelihood.n_params, dtype=torch.float64)
    all_log = likelihood.all_log_probs(params)
    assert torch.allclose(all_log.exp().sum(-1), torch.ones(4, 6, dtype=torch.float64), atol=1e-10)
    levels = torch.randint(0, likelihood.n_levels, (4, 6))
    direct = likelihood.log_prob(params, from_levels(levels, likelihood.n_levels, torch.float64))
    assert torch.allclose(direct, all_log.gather(-1, levels[..., None]).squeeze(-1))


def test_discretized_logistic_is_finite_far_in_the_tails() -> None:
    likelihood = DiscretizedLogistic(256)
    # A sharp component centred at +1 scoring level 0 and a middle level: naive sigmoid differences are 0 here.
    params = torch.tensor([[0.0, 1.0, -7.0], [0.0, -1.0, -7.0]])
    log_p = likelihood.log_prob_levels(params, torch.tensor([0, 128]))
    assert torch.isfinite(log_p).all() and (log_p < -100).all()


def test_make_likelihood_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown likelihood"):
        make_likelihood("gaussian", 17)
    with pytest.raises(ValueError, match="2 levels"):
        make_likelihood("bernoulli", 17)


# ------------------------------------------------------------------------------- autoregressive masks
def test_made_is_autoregressive_in_its_order() -> None:
    torch.manual_seed(0)
    order = [3, 0, 4, 1, 2]
    made = MADE(5, hidden=(16, 16), out_mult=2, context_dim=3, order=order)
    context = torch.randn(1, 3)
    position = {d: k for k, d in enumerate(order)}
    for d in range(5):
        x = torch.randn(1, 5, requires_grad=True)
        (g,) = torch.autograd.grad(made(x, context)[0, d].sum(), x)
        for e in range(5):
            if position[e] >= position[d]:
                assert g[0, e] == 0, f"output {d} depends on input {e}"
            else:
                assert g[0, e] != 0, f"output {d} ignores earlier input {e}"


@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 3, 3)])
def test_pixelcnn_masks_by_gradient(gated: bool, shape: tuple[int, int, int], leaky_relus) -> None:
    torch.manual_seed(0)
    model = PixelCNN(shape, 5, channels=12, n_layers=3, first_kernel=3, gated=gated)
    leaks, gaps = dependency_counts(model, shape)
    assert leaks == 0
    missing = causal_neighbourhood(shape) - dependencies(model, shape)
    assert not missing, f"outputs blind to their causal neighbours, e.g. {sorted(missing)[:3]}"
    if gated:
        assert gaps == 0, "the gated PixelCNN should see every earlier pixel and channel (no blind spot)"


@pytest.mark.parametrize("kind", ["row_lstm", "diagonal_bilstm"])
@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 3, 3)])
def test_pixelrnn_masks_by_gradient(kind: str, shape: tuple[int, int, int], leaky_relus) -> None:
    torch.manual_seed(0)
    model = PixelRNN(shape, 5, hidden=12, n_layers=2, kind=kind, first_kernel=3)
    leaks, gaps = dependency_counts(model, shape)
    assert leaks == 0
    # the Row LSTM's triangle: its left neighbour (input-to-state) and the three pixels above (state-to-state)
    missing = causal_neighbourhood(shape) - dependencies(model, shape)
    assert not missing, f"outputs blind to their causal neighbours, e.g. {sorted(missing)[:3]}"
    if kind == "diagonal_bilstm":
        assert gaps == 0, "the Diagonal BiLSTM should see every earlier pixel and channel"


@pytest.mark.parametrize("model_class", [PixelCNN, PixelRNN])
def test_vector_models_are_autoregressive(model_class: type) -> None:
    torch.manual_seed(0)
    model = model_class((6,), 4, **({"channels": 16} if model_class is PixelCNN else {"hidden": 8}))
    assert dependency_counts(model, (6,)) == (0, 0)


# ------------------------------------------------------------------------------- exact normalisation
@pytest.mark.parametrize("shape, n_levels", [((1, 2, 2), 2), ((3, 1, 1), 3), ((3,), 3)])
@pytest.mark.parametrize("likelihood", ["categorical", "logistic"])
@pytest.mark.parametrize("model_kind", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_density_sums_to_one_over_a_tiny_space(shape: tuple[int, ...], n_levels: int, likelihood: str,
                                                model_kind: str) -> None:
    torch.manual_seed(0)
    if model_kind == "pixelcnn":
        model: PixelCNN | PixelRNN = PixelCNN(shape, n_levels, channels=6, n_layers=2, first_kernel=3,
                                              likelihood=likelihood, n_mix=2)
    else:
        model = PixelRNN(shape, n_levels, hidden=6, kind=model_kind, first_kernel=3, likelihood=likelihood, n_mix=2)
    with torch.no_grad():
        total = model.log_prob(all_inputs(shape, n_levels)).exp().sum()
    assert abs(float(total) - 1.0) < 1e-4


# ------------------------------------------------------------------------------------------------ VAE
def test_iaf_log_det_matches_the_autograd_jacobian() -> None:
    torch.manual_seed(0)
    vae = VAE((6,), latent_dim=4, hidden=(16,), posterior="iaf", iaf_steps=3, iaf_hidden=(12,), context_size=5,
              likelihood="categorical", n_levels=3)
    mean, std, h = vae.encode(torch.rand(1, 6))
    eps = torch.randn(1, 4)
    jacobian = torch.autograd.functional.jacobian(lambda e: vae.flow(e, mean, std, h)[0], eps)[0, :, 0, :]
    sign, log_abs_det = torch.linalg.slogdet(jacobian)
    assert sign > 0
    assert torch.allclose(vae.flow(eps, mean, std, h)[1], log_abs_det, atol=1e-5)
    # Triangular Jacobian in the first step's order: the map is really autoregressive, not just any bijection.
    single = VAE((6,), latent_dim=4, hidden=(16,), posterior="iaf", iaf_steps=1, iaf_hidden=(12,), context_size=5)
    mean, std, h = single.encode(torch.rand(1, 6))
    jacobian = torch.autograd.functional.jacobian(lambda e: single.flow(e, mean, std, h)[0], eps)[0, :, 0, :]
    assert torch.equal(jacobian.triu(1), torch.zeros(4, 4))


@pytest.mark.parametrize("posterior", ["diagonal", "iaf"])
def test_importance_weighted_bound_is_at_least_the_elbo(posterior: str) -> None:
    torch.manual_seed(0)
    vae = VAE((8,), latent_dim=3, hidden=(16,), posterior=posterior, likelihood="categorical", n_levels=4)
    x = from_levels(torch.randint(0, 4, (32, 8)), 4)
    with torch.no_grad():
        elbo = vae.elbo(x, n_samples=64).mean()
        iw_1 = -vae.importance_weighted_nll(x, k=1).mean()
        iw_64 = -vae.importance_weighted_nll(x, k=64).mean()
    assert iw_64 > elbo + 0.1, (float(iw_64), float(elbo))
    assert abs(float(iw_1 - elbo)) < 0.05 * abs(float(elbo))  # k = 1 is the ELBO itself
    assert float(iw_64) < 0  # log p of a discrete value stays below zero


# -------------------------------------------------------------------------------- shared behaviour
def tiny_models(shape: tuple[int, ...], n_levels: int, context_dim: int = 0) -> dict[str, torch.nn.Module]:
    return {
        "pixelcnn": PixelCNN(shape, n_levels, channels=6, n_layers=2, first_kernel=3, context_dim=context_dim),
        "pixelcnn_logistic": PixelCNN(shape, n_levels, channels=6, n_layers=2, first_kernel=3,
                                      likelihood="logistic", context_dim=context_dim),
        "row_lstm": PixelRNN(shape, n_levels, hidden=12, first_kernel=3, context_dim=context_dim),
        "diagonal_bilstm": PixelRNN(shape, n_levels, hidden=12, first_kernel=3, kind="diagonal_bilstm",
                                    context_dim=context_dim),
        "vae_iaf": VAE(shape, latent_dim=3, hidden=(16,), posterior="iaf", iaf_hidden=(8,), context_size=4,
                       likelihood="categorical", n_levels=n_levels, context_dim=context_dim),
        "vae_logistic": VAE(shape, latent_dim=3, hidden=(16,), likelihood="logistic", n_levels=n_levels,
                            n_mix=2, context_dim=context_dim),
    }


@pytest.mark.parametrize("shape", [(3, 3, 3), (5,)])
def test_every_parameter_receives_a_gradient(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = from_levels(torch.randint(0, 4, (8, *shape)), 4)
    context = torch.randn(8, 2)
    for name, model in tiny_models(shape, 4, context_dim=2).items():
        model.loss((x, torch.zeros(8, dtype=torch.long)), context=context)["loss"].backward()
        for param_name, parameter in model.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"{name}: {param_name}"


def test_vae_loss_terms_train_the_parts_they_should() -> None:
    """The KL term trains the encoder and the IAF steps (not the decoder); reconstruction trains the decoder."""
    torch.manual_seed(0)
    vae = VAE((6,), latent_dim=3, hidden=(16,), posterior="iaf", iaf_hidden=(8,), context_size=4,
              likelihood="categorical", n_levels=3)
    x = from_levels(torch.randint(0, 3, (8, 6)), 3)
    log_px, log_pz, log_q = vae._log_weights(x, None, 1)
    kl_grads = torch.autograd.grad((log_q - log_pz).mean(), list(vae.parameters()), retain_graph=True,
                                   allow_unused=True)
    recon_grads = torch.autograd.grad(-log_px.mean(), list(vae.parameters()), allow_unused=True)
    for (name, _), kl_grad, recon_grad in zip(vae.named_parameters(), kl_grads, recon_grads, strict=True):
        if name.startswith("decoder"):
            assert kl_grad is None and recon_grad is not None and recon_grad.abs().sum() > 0, name
        else:
            assert kl_grad is not None and kl_grad.abs().sum() > 0, name
            assert recon_grad is not None and recon_grad.abs().sum() > 0, name  # through the sampled z


@pytest.mark.parametrize("shape", [(1, 2, 3), (4,)])
def test_context_changes_log_prob_and_is_checked(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = from_levels(torch.randint(0, 3, (2, *shape)), 3)
    for name, model in tiny_models(shape, 3, context_dim=2).items():
        torch.manual_seed(1)
        a = model.log_prob(x, context=torch.zeros(2, 2))
        torch.manual_seed(1)  # the VAE's bound is stochastic: same posterior draws for both contexts
        b = model.log_prob(x, context=torch.full((2, 2), 3.0))
        assert not torch.allclose(a, b), name
        with pytest.raises(ValueError, match="context_dim=2"):
            model.log_prob(x)
        with pytest.raises(ValueError, match="context must have shape"):
            model.log_prob(x, context=torch.zeros(2, 3))


@pytest.mark.parametrize("shape", [(2, 3, 3), (4,)])
def test_samples_lie_on_the_levels(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    for name, model in tiny_models(shape, 5, context_dim=1).items():
        samples = model.sample(3, context=torch.zeros(3, 1))
        assert samples.shape == (3, *shape), name
        assert samples.min() >= 0 and samples.max() <= 1, name
        levels = samples * 4
        assert torch.allclose(levels, levels.round(), atol=1e-6), name


def test_bad_inputs_get_one_line_errors() -> None:
    model = PixelCNN((1, 3, 3), 4, channels=4, n_layers=1, first_kernel=3)
    with pytest.raises(ValueError, match="expected inputs of shape"):
        model.log_prob(torch.zeros(2, 1, 3, 4))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        model.log_prob(torch.full((2, 1, 3, 3), 2.0))
    with pytest.raises(ValueError, match="divisible"):
        PixelCNN((3, 4, 4), 4, channels=4)
    with pytest.raises(ValueError, match="unknown kind"):
        PixelRNN((1, 4, 4), 4, kind="gru")
    with pytest.raises(ValueError, match="unknown posterior"):
        VAE((4,), posterior="flow")


def test_snapshot_restore_is_exact_and_prediction_gain_is_positive() -> None:
    torch.manual_seed(0)
    x = from_levels(torch.randint(0, 4, (3, 5)), 4)
    for model in (PixelCNN((5,), 4, channels=8), PixelRNN((5,), 4, hidden=8)):
        before = model.log_prob(x).detach()
        state = model.snapshot()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model.loss((x, torch.zeros(3)))["loss"].backward()
        optimizer.step()
        assert not torch.equal(model.log_prob(x).detach(), before)
        model.restore(state)
        assert torch.equal(model.log_prob(x).detach(), before)
        gains = model.prediction_gain(x, lr=0.01)
        assert gains.shape == (3,) and (gains > 0).all()
        assert torch.equal(model.log_prob(x).detach(), before), "prediction_gain must leave the model unchanged"


# ------------------------------------------------------------------------------------------ learning
def row_images(n: int, generator: torch.Generator) -> torch.Tensor:
    """4x4 binary images whose rows are each all-on or all-off: 4 bits per image, 1 bit/dim per pixel alone."""
    rows = torch.randint(0, 2, (n, 1, 4, 1), generator=generator).float()
    return rows.expand(n, 1, 4, 4).contiguous()


def independent_baseline_bits(train: torch.Tensor, test: torch.Tensor, n_levels: int) -> float:
    """Bits/dim on ``test`` of independent per-value categoricals fitted to ``train`` (Laplace smoothing)."""
    train_levels, test_levels = to_levels(train.flatten(1), n_levels), to_levels(test.flatten(1), n_levels)
    counts = torch.stack([(train_levels == k).sum(0) for k in range(n_levels)], -1).double() + 1.0
    log_p = (counts / counts.sum(-1, keepdim=True)).log()
    per_value = log_p[torch.arange(test_levels.shape[1]), test_levels]  # (N, D)
    return float(-per_value.sum(1).mean()) / (test_levels.shape[1] * math.log(2))


def fit(model: torch.nn.Module, data: torch.Tensor, steps: int, lr: float = 1e-2) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = data[torch.randint(0, len(data), (32,), generator=generator)]
        optimizer.zero_grad()
        model.loss((batch, torch.zeros(len(batch))))["loss"].backward()
        optimizer.step()


@pytest.mark.parametrize("model_kind", ["pixelcnn", "row_lstm", "vae_iaf"])
def test_training_beats_the_independent_pixel_baseline(model_kind: str) -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    train, test = row_images(256, generator), row_images(128, generator)
    baseline = independent_baseline_bits(train, test, 2)
    assert baseline > 0.95
    if model_kind == "pixelcnn":
        model: torch.nn.Module = PixelCNN((1, 4, 4), 2, channels=16, n_layers=2, first_kernel=3)
    elif model_kind == "row_lstm":
        model = PixelRNN((1, 4, 4), 2, hidden=16, n_layers=1, first_kernel=3)
    else:
        model = VAE((1, 4, 4), latent_dim=4, hidden=(32,), posterior="iaf", iaf_hidden=(16,), context_size=8,
                    likelihood="bernoulli")
    fit(model, train, steps=150)
    with torch.no_grad():
        if isinstance(model, VAE):
            nll = model.importance_weighted_nll(test, k=32)
        else:
            nll = -model.log_prob(test)
    bits = float(nll.mean()) / (16 * math.log(2))
    assert bits < 0.45, (model_kind, bits, baseline)  # the data hold 0.25 bits/dim

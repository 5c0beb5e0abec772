"""Bayesian MLP with a fully factorised Gaussian posterior: the dynamics model of VIME (Houthooft et al. 2016).

The network maps a standardised ``[obs, action]`` to the standardised next observation. Every weight and bias
has its own Gaussian ``N(mu, softplus(rho)^2)``; predictions use the local reparameterisation trick (noise on the
pre-activations rather than on the weights), and the likelihood is a Gaussian with a fixed standard deviation.

VIME's intrinsic reward for a transition is the information gain ``KL(q_new || q_old)``, where ``q_new`` is the
posterior after updating on that one transition. :meth:`BNN.information_gain` offers two estimates:

* ``"exact"``: a few Adam steps on ``KL(q_new || q_old) - log p(s'|s, a)``, then the closed-form KL; parameters
  are restored afterwards. Slow (a Python loop over transitions) and meant as the reference.
* ``"second_order"``: one Newton-like step with the diagonal Hessian of the KL, giving the KL in closed form from
  per-sample gradients; computed for the whole batch at once by hand-written backpropagation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlgen.generative import updates

__all__ = ["BNN", "BayesianLinear"]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
    "softplus": F.softplus,
}

_INFORMATION_GAIN_METHODS = ("second_order", "exact")

# Rows of per-sample gradients held at once by the second-order information gain: each row is one value per
# variational parameter, so this bounds the memory (about 20 MB for VIME's 1x32 HalfCheetah model).
_PER_SAMPLE_GRAD_CHUNK = 2048


def _gaussian_kl(mu: Tensor, sigma: Tensor, mu_ref: Tensor, sigma_ref: Tensor) -> Tensor:
    """Sum over elements of ``KL(N(mu, sigma^2) || N(mu_ref, sigma_ref^2))``.

    Written as ``(r - log(1 + r)) / 2`` with ``r = sigma^2 / sigma_ref^2 - 1`` because the textbook form
    ``log(sigma_ref / sigma) + sigma^2 / (2 sigma_ref^2) - 1/2`` cancels catastrophically in float32 when the two
    distributions are close, which is exactly the regime of an information gain.
    """
    relative_variance_change = (sigma - sigma_ref) * (sigma + sigma_ref) / sigma_ref.square()
    variance_term = 0.5 * (relative_variance_change - torch.log1p(relative_variance_change))
    mean_term = (mu - mu_ref).square() / (2.0 * sigma_ref.square())
    return (variance_term + mean_term).sum()


class BayesianLinear(nn.Module):
    """Linear layer whose weights and biases are independent Gaussians ``N(mu, softplus(rho)^2)``.

    The forward pass uses the local reparameterisation trick: the pre-activation of each unit is Gaussian with
    mean ``x @ weight_mu.T + bias_mu`` and variance ``x^2 @ weight_sigma^2.T + bias_sigma^2``, and one draw of it
    is taken per row, which has lower gradient variance than drawing one weight matrix per batch.
    """

    def __init__(self, in_features: int, out_features: int, prior_sd: float) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_rho = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_rho = nn.Parameter(torch.empty(out_features))
        self.reset_parameters(prior_sd)

    def reset_parameters(self, prior_sd: float) -> None:
        """Means as in ``nn.Linear`` (uniform, bound 1/sqrt(fan_in)); every sd equal to the prior's."""
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight_mu, -bound, bound)
        nn.init.uniform_(self.bias_mu, -bound, bound)
        # Inverse of softplus, so that the posterior starts with exactly the prior's spread.
        rho = math.log(math.expm1(prior_sd))
        nn.init.constant_(self.weight_rho, rho)
        nn.init.constant_(self.bias_rho, rho)

    @property
    def weight_sigma(self) -> Tensor:
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self) -> Tensor:
        return F.softplus(self.bias_rho)

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        """One draw of the pre-activations for each row of ``x``; ``noise`` (standard normal, same shape as the
        output) makes the draw reproducible."""
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        variance = F.linear(x.square(), self.weight_sigma.square(), self.bias_sigma.square())
        if noise is None:
            noise = torch.randn_like(mean)
        return mean + variance.sqrt() * noise

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class BNN(nn.Module):
    """Bayesian MLP ``p(y | x, w)`` with a factorised Gaussian posterior ``q(w)`` and prior ``N(0, prior_sd^2)``.

    Args:
        in_dim: input width (VIME: observation + action dimensions, standardised).
        out_dim: output width (VIME: observation dimensions, standardised).
        hidden: widths of the hidden layers.
        prior_sd: standard deviation of the zero-mean Gaussian prior on every weight and bias; the posterior's
            standard deviations start at this value.
        likelihood_sd: fixed standard deviation of the Gaussian likelihood, per output dimension.
        n_samples: Monte-Carlo samples averaged in :meth:`log_likelihood`.
        activation: hidden-layer nonlinearity, one of ``relu``, ``tanh``, ``sigmoid``, ``elu``, ``softplus``.

    The variational parameters are named ``layers.<i>.{weight,bias}_{mu,rho}``; every ``..._mu`` has a
    ``..._rho`` partner with the same shape.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (32,),
        prior_sd: float = 0.5,
        likelihood_sd: float = 5.0,
        n_samples: int = 10,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or any(width < 1 for width in hidden):
            raise ValueError(f"layer widths must be positive, got in_dim={in_dim}, hidden={tuple(hidden)}, "
                             f"out_dim={out_dim}")
        if prior_sd <= 0 or likelihood_sd <= 0:
            raise ValueError(f"prior_sd and likelihood_sd must be positive, got {prior_sd} and {likelihood_sd}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(_ACTIVATIONS)}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.hidden = tuple(hidden)
        self.prior_sd = prior_sd
        self.likelihood_sd = likelihood_sd
        self.n_samples = n_samples
        self.activation = activation
        self._activation = _ACTIVATIONS[activation]
        widths = (in_dim, *self.hidden, out_dim)
        self.layers = nn.ModuleList(
            BayesianLinear(fan_in, fan_out, prior_sd) for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self._layer_widths = widths[1:]
        self._mu_rho_names = tuple(
            (name, name[: -len("_mu")] + "_rho") for name, _ in self.named_parameters() if name.endswith("_mu")
        )

    @property
    def layer_widths(self) -> tuple[int, ...]:
        """Output width of each layer (the last is ``out_dim``): the shapes of :meth:`sample_noise`'s draws."""
        return tuple(self._layer_widths)

    # ------------------------------------------------------------------ prediction and likelihood

    def forward(self, x: Tensor, noise: Sequence[Tensor] | None = None) -> Tensor:
        """One stochastic pass, shape ``(B, out_dim)``.

        ``noise`` optionally fixes the standard-normal draws: one tensor per layer, shaped like that layer's
        output ``(B, width)`` (see :meth:`sample_noise`).
        """
        self._check_x(x)
        if noise is not None and len(noise) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} noise tensors (one per layer), got {len(noise)}")
        hidden = x
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden, None if noise is None else noise[index])
            if index < len(self.layers) - 1:
                hidden = self._activation(hidden)
        return hidden

    def sample_noise(
        self, batch_size: int, n_samples: int | None = None, generator: torch.Generator | None = None
    ) -> list[Tensor]:
        """Standard-normal draws for :meth:`log_likelihood` and :meth:`per_sample_grads`: one ``(S, B, width)``
        tensor per layer, independent across Monte-Carlo samples, rows and units."""
        n_samples = self.n_samples if n_samples is None else n_samples
        reference = next(self.parameters())
        return [
            torch.randn((n_samples, batch_size, width), generator=generator,
                        dtype=reference.dtype, device=reference.device)
            for width in self._layer_widths
        ]

    def log_likelihood(
        self, x: Tensor, y: Tensor, n_samples: int | None = None, noise: Sequence[Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Gaussian ``log p(y | x, w)`` summed over output dimensions and averaged over Monte-Carlo samples of
        ``w``, shape ``(B,)``. ``noise`` (from :meth:`sample_noise`) fixes the draws; it sets the sample count.
        Without it the draws come from ``generator`` (default: torch's global RNG)."""
        x, y = self._check_xy(x, y)
        batch_size = x.shape[0]
        if noise is None:
            noise = self.sample_noise(batch_size, n_samples, generator=generator)
        else:
            self._check_noise(noise, batch_size)
            if n_samples is not None and n_samples != noise[0].shape[0]:
                raise ValueError(f"n_samples={n_samples} disagrees with the noise's {noise[0].shape[0]} samples")
        n_draws = noise[0].shape[0]
        # All Monte-Carlo samples go through the network as one (S * B)-row batch.
        repeated_x = x.expand(n_draws, batch_size, self.in_dim).reshape(n_draws * batch_size, self.in_dim)
        flat_noise = [draws.reshape(n_draws * batch_size, -1) for draws in noise]
        prediction = self(repeated_x, noise=flat_noise).view(n_draws, batch_size, self.out_dim)
        return self._gaussian_log_prob(y, prediction).mean(dim=0)

    def _gaussian_log_prob(self, y: Tensor, prediction: Tensor) -> Tensor:
        standardised_error = (y - prediction) / self.likelihood_sd
        log_normaliser = math.log(self.likelihood_sd) + 0.5 * math.log(2.0 * math.pi)
        return (-0.5 * standardised_error.square() - log_normaliser).sum(dim=-1)

    # ------------------------------------------------------------------ divergences and the ELBO

    def kl_to_prior(self) -> Tensor:
        """Closed-form ``KL(q || p)`` to the prior ``N(0, prior_sd^2)``, a scalar with gradient."""
        parameters = dict(self.named_parameters())
        total = parameters[self._mu_rho_names[0][0]].new_zeros(())
        for mu_name, rho_name in self._mu_rho_names:
            mu, sigma = parameters[mu_name], F.softplus(parameters[rho_name])
            total = total + _gaussian_kl(mu, sigma, torch.zeros_like(mu), torch.full_like(sigma, self.prior_sd))
        return total

    def loss(self, batch: tuple[Tensor, Tensor], n_batches: float = 1,
             generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Negative ELBO of a minibatch: ``KL(q || p) / n_batches - sum_i log p(y_i | x_i)``.

        ``n_batches`` spreads the KL over the minibatches of one pass through the data, so a full pass weighs the
        prior once. ``"kl"`` and ``"log_likelihood"`` (mean per sample) are detached, for logging. The Monte-Carlo
        draws come from ``generator`` (default: torch's global RNG).
        """
        x, y = batch
        log_likelihood = self.log_likelihood(x, y, generator=generator)
        kl = self.kl_to_prior()
        return {
            "loss": kl / n_batches - log_likelihood.sum(),
            "kl": kl.detach(),
            "log_likelihood": log_likelihood.detach().mean(),
        }

    def prior_kl_grad_(self, scale: float = 1.0) -> None:
        """Add ``scale`` x the gradient of :meth:`kl_to_prior` to every parameter's ``.grad``, in closed form.

        The KL to a fixed ``N(0, prior_sd^2)`` has per-element gradients ``mu / prior_sd^2`` and
        ``(sigma / prior_sd^2 - 1 / sigma) * sigmoid(rho)``; adding them directly spares autograd a graph as large
        as the network's own."""
        parameters = dict(self.named_parameters())
        for name, gradient in self._prior_kl_grads(parameters, scale).items():
            if parameters[name].grad is None:
                parameters[name].grad = gradient
            else:
                parameters[name].grad.add_(gradient)

    def _prior_kl_grads(self, parameters: dict[str, Tensor], scale: float) -> dict[str, Tensor]:
        inverse_prior_variance = 1.0 / self.prior_sd**2
        grads: dict[str, Tensor] = {}
        with torch.no_grad():
            for mu_name, rho_name in self._mu_rho_names:
                rho = parameters[rho_name]
                sigma = F.softplus(rho)
                grads[mu_name] = parameters[mu_name] * (scale * inverse_prior_variance)
                grads[rho_name] = (sigma * inverse_prior_variance - sigma.reciprocal()).mul_(torch.sigmoid(rho)).mul_(
                    scale)
        return grads

    def likelihood_grads(self, x: Tensor, y: Tensor, noise: Sequence[Tensor], per_row: bool = False,
                         parameters: dict[str, Tensor] | None = None,
                         prior_scale: float | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """``-sum_i log p(y_i | x_i)`` of a minibatch under the Monte-Carlo draws ``noise`` (from
        :meth:`sample_noise`) and its gradient w.r.t. every parameter, by hand-written backpropagation; with
        ``per_row``, each row's own gradient instead (name -> ``(B, *shape)``, as :meth:`per_sample_grads`).

        The same numbers as ``-log_likelihood(x, y, noise=noise).sum()`` and its autograd gradient, at a fraction
        of the cost for a network this small: autograd's per-operation bookkeeping, not arithmetic, is most of a
        BNN minibatch step of ten rows. ``parameters``: ``dict(named_parameters())`` if the caller has it.
        ``prior_scale``: add that times :meth:`kl_to_prior`'s gradient (not per row; the value stays the
        likelihood's), reusing the sigmas of the forward pass (:meth:`elbo_step`)."""
        if per_row and prior_scale is not None:
            raise ValueError("likelihood_grads: prior_scale adds the prior's gradient to a batch's, not per row")
        x, y = self._check_xy(x, y)
        self._check_noise(noise, x.shape[0])
        parameters = {name: parameter.detach() for name, parameter in
                      (self.named_parameters() if parameters is None else parameters.items())}
        return self._grads(x, y, noise, parameters, per_row, prior_scale)

    def _grads(self, x: Tensor, y: Tensor, noise: Sequence[Tensor], parameters: dict[str, Tensor], per_row: bool,
               prior_scale: float | None) -> tuple[Tensor, dict[str, Tensor]]:
        """:meth:`likelihood_grads` on checked inputs and detached ``parameters``."""
        n_draws, batch_size = noise[0].shape[0], x.shape[0]
        hidden = x.expand(n_draws, batch_size, self.in_dim).reshape(n_draws * batch_size, self.in_dim)
        saved = []  # per layer: its input, the input squared, sigma of weight and bias, sigma^2 of the weights, draw/sd
        for index, draws in enumerate(noise):
            prefix = f"layers.{index}."
            weight_sigma = F.softplus(parameters[prefix + "weight_rho"])
            bias_sigma = F.softplus(parameters[prefix + "bias_rho"])
            weight_variance, hidden_squared = weight_sigma.square(), hidden.square()
            mean = F.linear(hidden, parameters[prefix + "weight_mu"], parameters[prefix + "bias_mu"])
            sd = torch.addmm(bias_sigma.square(), hidden_squared, weight_variance.t()).sqrt_()
            flat_draws = draws.reshape(n_draws * batch_size, -1)
            pre_activation = mean.addcmul_(sd, flat_draws)
            saved.append((hidden, hidden_squared, weight_sigma, bias_sigma, weight_variance, flat_draws.div(sd)))
            hidden = self._activation(pre_activation) if index < len(noise) - 1 else pre_activation
        error = (hidden.view(n_draws, batch_size, self.out_dim) - y) / self.likelihood_sd
        log_normaliser = math.log(self.likelihood_sd) + 0.5 * math.log(2.0 * math.pi)
        value = 0.5 * error.square().sum() / n_draws + batch_size * self.out_dim * log_normaliser
        grad_output = (error / (self.likelihood_sd * n_draws)).reshape(n_draws * batch_size, self.out_dim)

        def outer(grad: Tensor, inputs: Tensor) -> Tensor:  # sum over rows (and draws) of grad_r inputs_r^T
            if not per_row:
                return grad.t() @ inputs
            return torch.einsum("sbo,sbi->boi", grad.view(n_draws, batch_size, -1),
                                inputs.view(n_draws, batch_size, -1))

        def total(grad: Tensor) -> Tensor:
            return grad.view(n_draws, batch_size, -1).sum(dim=0) if per_row else grad.sum(dim=0)

        grads: dict[str, Tensor] = {}
        for index in range(len(noise) - 1, -1, -1):
            prefix = f"layers.{index}."
            layer_input, input_squared, weight_sigma, bias_sigma, weight_variance, draw_over_sd = saved[index]
            # d a / d v = draw / (2 sd) and d sigma^2 / d rho = 2 sigma sigmoid(rho): the twos cancel, so this is
            # twice the gradient w.r.t. the variance, and grad_rho below is exact
            twice_grad_variance = grad_output * draw_over_sd
            for kind, sigma, grad_mean, grad_rho in (
                    ("weight", weight_sigma, outer(grad_output, layer_input),
                     outer(twice_grad_variance, input_squared)),
                    ("bias", bias_sigma, total(grad_output), total(twice_grad_variance))):
                grad_rho.mul_(sigma)
                if prior_scale is not None:  # the KL's: mu / p^2 and (sigma / p^2 - 1 / sigma) sigmoid(rho)
                    grad_mean.add_(parameters[f"{prefix}{kind}_mu"], alpha=prior_scale / self.prior_sd**2)
                    grad_rho.add_(sigma, alpha=prior_scale / self.prior_sd**2).sub_(sigma.reciprocal(),
                                                                                    alpha=prior_scale)
                grads[f"{prefix}{kind}_mu"] = grad_mean
                grads[f"{prefix}{kind}_rho"] = grad_rho.mul_(torch.sigmoid(parameters[f"{prefix}{kind}_rho"]))
            if index > 0:
                grad_input = (grad_output @ parameters[prefix + "weight_mu"]).add_(  # d v / d input = 2 sigma^2 input
                    (twice_grad_variance @ weight_variance).mul_(layer_input))
                grad_output = grad_input.mul_(self._activation_derivative(layer_input))
        return value, grads

    def _activation_derivative(self, output: Tensor) -> Tensor:
        """d activation / d pre-activation, written in terms of the activation's output."""
        if self.activation == "relu":
            return (output > 0).to(output.dtype)
        if self.activation == "tanh":
            return 1.0 - output.square()
        if self.activation == "sigmoid":
            return output * (1.0 - output)
        if self.activation == "elu":
            return torch.where(output > 0, torch.ones_like(output), output + 1.0)
        return -torch.expm1(-output)  # softplus: sigmoid(a) = 1 - exp(-softplus(a))

    def elbo_step(self, x: Tensor, y: Tensor, noise: Sequence[Tensor], optimizer: torch.optim.Optimizer,
                  n_batches: float = 1) -> Tensor:
        """One optimiser step on :meth:`loss` of the minibatch ``(x, y)`` with the Monte-Carlo draws ``noise``
        (from :meth:`sample_noise`); returns the minibatch's ``-sum_i log p(y_i | x_i)``.

        The same gradient as ``loss(...)["loss"].backward()`` with that noise, written by hand
        (:meth:`likelihood_grads` with the prior's part in closed form)."""
        return self.elbo_steps(x[None], y[None], [draws[None] for draws in noise], optimizer, n_batches)

    def elbo_steps(self, x: Tensor, y: Tensor, noise: Sequence[Tensor], optimizer: torch.optim.Optimizer,
                   n_batches: float = 1) -> Tensor:
        """:meth:`elbo_step` on each of ``K`` minibatches in turn: ``x`` ``(K, B, in_dim)``, ``y``
        ``(K, B, out_dim)``, ``noise`` one ``(K, S, B, width)`` tensor per layer; returns the last minibatch's
        ``-sum_i log p(y_i | x_i)``. The inputs are checked once, not per step."""
        if x.dim() != 3 or y.dim() != 3 or x.shape[:2] != y.shape[:2]:
            raise ValueError(f"expected x (K, B, in_dim) and y (K, B, out_dim) of the same K and B, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        flat_x, flat_y = self._check_xy(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]))
        x, y = flat_x.view(x.shape), flat_y.view(y.shape)
        if any(draws.dim() != 4 or draws.shape[0] != x.shape[0] for draws in noise):
            raise ValueError(f"expected one noise tensor (K={x.shape[0]}, S, B, width) per layer, got "
                             f"{[tuple(draws.shape) for draws in noise]}")
        self._check_noise([draws[0] for draws in noise], x.shape[1])
        named = list(self.named_parameters())
        # Detached views share the parameters' storage: the optimiser's in-place updates show through them.
        detached = {name: parameter.detach() for name, parameter in named}
        value = x.new_zeros(())
        for step in range(x.shape[0]):
            value, grads = self._grads(x[step], y[step], [draws[step] for draws in noise], detached, False,
                                       1.0 / n_batches)
            for name, parameter in named:
                parameter.grad = grads[name]
            optimizer.step()
        return value

    def fit(
        self,
        x: Tensor,
        y: Tensor,
        steps: int,
        batch_size: int = 10,
        lr: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> float:
        """Minimise the negative ELBO with ``steps`` Adam minibatch steps; returns the last minibatch loss.

        Minibatches walk through random permutations of the data (``generator`` fixes them; the Monte-Carlo noise
        comes from the global RNG). A fresh Adam is made per call, so callers that train incrementally and want
        Adam's moments to persist should keep their own optimizer over :meth:`parameters`.
        """
        x, y = self._check_xy(x, y)
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        n_rows = x.shape[0]
        batch_size = min(batch_size, n_rows)
        n_batches = n_rows / batch_size
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        order = torch.randperm(n_rows, generator=generator)
        cursor = 0
        last_loss = math.nan
        for _ in range(steps):
            if cursor + batch_size > n_rows:
                order, cursor = torch.randperm(n_rows, generator=generator), 0
            rows = order[cursor:cursor + batch_size].to(x.device)
            cursor += batch_size
            optimizer.zero_grad(set_to_none=True)
            objective = self.loss((x[rows], y[rows]), n_batches=n_batches)["loss"]
            objective.backward()
            optimizer.step()
            last_loss = objective.item()
        return last_loss

    # ------------------------------------------------------------------ snapshots of the posterior

    def snapshot(self) -> dict[str, Tensor]:
        """Detached copies of all variational parameters, keyed by parameter name (the BNN has no buffers)."""
        return updates.snapshot(self)

    def restore(self, snapshot: dict[str, Tensor]) -> None:
        """Copy a :meth:`snapshot` back in place, so optimizers holding these parameters stay valid."""
        self._check_snapshot(snapshot)
        updates.restore(self, snapshot)

    def kl_from(self, snapshot: dict[str, Tensor]) -> Tensor:
        """Closed-form ``KL(q_current || q_snapshot)``, a scalar with gradient w.r.t. the current parameters."""
        self._check_snapshot(snapshot)
        parameters = dict(self.named_parameters())
        total = parameters[self._mu_rho_names[0][0]].new_zeros(())
        for mu_name, rho_name in self._mu_rho_names:
            total = total + _gaussian_kl(
                parameters[mu_name], F.softplus(parameters[rho_name]),
                snapshot[mu_name], F.softplus(snapshot[rho_name]),
            )
        return total

    def kl_hessian_diagonal(self) -> dict[str, Tensor]:
        """Diagonal of the Hessian of ``KL(q || q_old)`` w.r.t. the parameters, at ``q = q_old`` (the current one).

        For a mean it is ``1 / sigma^2``; for a ``rho`` it is ``2 sigmoid(rho)^2 / softplus(rho)^2``, which is
        VIME's ``2 e^(2 rho) / ((1 + e^rho)^2 softplus(rho)^2)`` written without overflowing exponentials. The
        off-diagonal terms are zero: the KL is a sum of one term per (mu, rho) pair, and within a pair the mean
        and the variance parts separate.
        """
        parameters = {name: parameter.detach() for name, parameter in self.named_parameters()}
        hessian: dict[str, Tensor] = {}
        for mu_name, rho_name in self._mu_rho_names:
            rho = parameters[rho_name]
            sigma = F.softplus(rho)
            hessian[mu_name] = sigma.square().reciprocal()
            hessian[rho_name] = 2.0 * (torch.sigmoid(rho) / sigma).square()
        return hessian

    # ------------------------------------------------------------------ information gain

    def per_sample_grads(
        self, x: Tensor, y: Tensor, noise: Sequence[Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Gradients of each transition's own ``-log p(y_i | x_i)`` (Monte-Carlo average): name -> ``(B, *shape)``.

        Computed for the whole batch at once by :meth:`likelihood_grads` (hand-written backpropagation whose
        parameter gradients are summed over draws but not over rows). The Monte-Carlo noise holds independent
        draws per row (``noise``, from :meth:`sample_noise`, fixes it): each transition gets the same estimate,
        in distribution, as when it is handled alone in a loop, as VIME does, and as the ``exact`` method does.
        Noise shared by all rows would correlate their errors, shifting a whole batch's information gains up or
        down together: an error that averaging over the batch, as VIME's reward normalisation does, cannot
        remove. Explicit noise also lets a plain autograd loop be fed the very same draws.
        """
        x, y = self._check_xy(x, y)
        if noise is None:
            noise = self.sample_noise(x.shape[0])
        else:
            self._check_noise(noise, x.shape[0])
        return self.likelihood_grads(x, y, noise, per_row=True)[1]

    def information_gain(
        self,
        x: Tensor,
        y: Tensor,
        method: str = "second_order",
        step_size: float = 0.01,
        n_steps: int = 5,
        lr: float = 1e-2,
    ) -> Tensor:
        """Information gain ``KL(q_new || q_old)`` of each transition ``(x_i, y_i)`` on its own, shape ``(B,)``.

        ``method="second_order"`` (uses ``step_size``): the KL after one preconditioned step
        ``-step_size * H^-1 g`` on the transition's negative log-likelihood ``g`` (the KL term's gradient is zero
        at ``q_old``), estimated as ``sum step_size^2 g^2 H^-1`` with ``H`` from :meth:`kl_hessian_diagonal`.
        ``method="exact"`` (uses ``n_steps``, ``lr``): ``n_steps`` steps of a fresh Adam on
        ``KL(q || q_old) - log p(y_i | x_i)``, then the closed-form KL; the parameters are restored exactly and
        their ``.grad`` left as found. The result carries no autograd graph; clipping is the caller's job.
        """
        if method not in _INFORMATION_GAIN_METHODS:
            raise ValueError(f"unknown information-gain method {method!r}; expected one of "
                             f"{list(_INFORMATION_GAIN_METHODS)}")
        x, y = self._check_xy(x, y)
        if method == "exact":
            return self._exact_information_gain(x, y, n_steps=n_steps, lr=lr)
        return self._second_order_information_gain(x, y, step_size=step_size)

    def _second_order_information_gain(self, x: Tensor, y: Tensor, step_size: float) -> Tensor:
        inverse_hessian = {name: h.reciprocal() for name, h in self.kl_hessian_diagonal().items()}
        gains = x.new_zeros(x.shape[0])
        for start in range(0, x.shape[0], _PER_SAMPLE_GRAD_CHUNK):
            rows = slice(start, start + _PER_SAMPLE_GRAD_CHUNK)
            grads = self.per_sample_grads(x[rows], y[rows])
            curvature_weighted = sum(
                (grads[name].square() * inverse_hessian[name]).flatten(start_dim=1).sum(dim=1)
                for name in inverse_hessian
            )
            # The quadratic model of the KL after the step is (1/2) step_size^2 g^T H^-1 g; VIME's original code
            # drops the 1/2 and we keep its scale, since its reward normalisation and clipping were tuned with it.
            gains[rows] = step_size**2 * curvature_weighted
        return gains.detach()

    def _exact_information_gain(self, x: Tensor, y: Tensor, n_steps: int, lr: float) -> Tensor:
        # The one-example-update primitive shared with the prediction gain of count-based exploration: every
        # transition starts from the old posterior, which is restored exactly, .grad included.
        old_posterior = self.snapshot()
        gains = updates.per_example_updates(
            self, x.shape[0],
            objective=lambda row: self.kl_from(old_posterior) - self.log_likelihood(x[row:row + 1],
                                                                                    y[row:row + 1]).sum(),
            measure=lambda row: self.kl_from(old_posterior),
            make_optimizer=lambda parameters: torch.optim.Adam(parameters, lr=lr),
            n_steps=n_steps,
        )
        return gains.to(x.dtype)

    # ------------------------------------------------------------------ validation

    def _check_x(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected x of shape (B, in_dim={self.in_dim}), got {tuple(x.shape)}")

    def _check_xy(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        self._check_x(x)
        if y.dim() != 2 or y.shape[1] != self.out_dim:
            raise ValueError(f"expected y of shape (B, out_dim={self.out_dim}), got {tuple(y.shape)}")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"x and y must have the same batch size, got {x.shape[0]} and {y.shape[0]}")
        dtype = next(self.parameters()).dtype
        return x.to(dtype), y.to(dtype)

    def _check_noise(self, noise: Sequence[Tensor], batch_size: int) -> None:
        expected = [(batch_size, width) for width in self._layer_widths]
        got = [tuple(draws.shape[1:]) for draws in noise]
        if len(noise) != len(self.layers) or got != expected or len({draws.shape[0] for draws in noise}) != 1:
            raise ValueError(f"expected noise of shapes (S, B, width) with (B, width) = {expected}, "
                             f"got {[tuple(draws.shape) for draws in noise]}")

    def _check_snapshot(self, snapshot: dict[str, Tensor]) -> None:
        names = [name for name, _ in self.named_parameters()]
        if sorted(snapshot) != sorted(names):
            raise ValueError(f"snapshot has parameters {sorted(snapshot)}, the model has {sorted(names)}")
        for name, parameter in self.named_parameters():
            if snapshot[name].shape != parameter.shape:
                raise ValueError(f"snapshot[{name!r}] has shape {tuple(snapshot[name].shape)}, "
                                 f"expected {tuple(parameter.shape)}")

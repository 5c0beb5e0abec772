"""One-example updates with the parameters put back: the primitive shared by VIME and count-based exploration.

Both exploration bonuses ask a model the same question about every example of a batch, each on its own: "how
would you change if this one example were your next update?" VIME's exact information gain takes a few
optimiser steps on a transition and measures ``KL(q_new || q_old)`` (:meth:`rlgen.generative.BNN.information_gain`);
the prediction gain of a density model takes one step on ``-log p(x)`` and measures how much ``log p(x)``
rose (Bellemare et al. 2016), from which a pseudo-count follows. Each example must start from the same
parameters, and the model must be left exactly as it was found.

Two ways to do that:

* :func:`per_example_updates`: a Python loop with :func:`snapshot`/:func:`restore` around real optimiser
  steps. Any optimiser, any number of steps, any model; slow (one backward pass per example and step). The
  reference.
* :func:`batched_prediction_gains`: one step per example, for a whole batch at once with ``torch.func``. The
  gain of a step on ``x`` is ``log p_{theta - step(g)}(x) - log p_theta(x)`` with ``g = grad(-log p(x; theta))``,
  and both the per-example gradients (``vmap(grad)``) and the log-probabilities under per-example parameters
  (``vmap(functional_call)``) vectorise. The step is plain SGD (``lr * g``) or any elementwise rule, such as
  :func:`adam_step` (SGD scaled per parameter by a training optimiser's statistics). The model is never modified.

Stochastic scores (a VAE's one-sample ELBO, a BNN's Monte-Carlo likelihood) would make a gain mostly noise if
the before and after terms drew different noise; the batched version gives both the same draws (common random
numbers), so that with ``lr = 0`` the gain is zero up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

__all__ = ["LogProb", "Step", "adam_step", "batched_prediction_gains", "per_example_updates", "restore",
           "snapshot"]

LogProb = Callable[[nn.Module, Tensor, "Tensor | None"], Tensor]
"""``log_prob(model, x, context) -> (B,)``: how a caller scores examples with a model (e.g. a density model's
``log_prob_unchecked``, or a BNN's ``log_likelihood(context, x)``). It must be written with operations
``torch.func.vmap`` can batch, and must not branch on values (no input validation inside)."""

Step = Callable[[dict[str, Tensor]], dict[str, Tensor]]
"""Per-example gradients (name -> ``(B, *shape)``, names as in ``named_parameters``) -> the parameter change each
example's step subtracts, same keys and shapes."""

# Rows handled per vectorised pass: per-example gradients hold one copy of the parameters per row. By default a
# pass holds about CHUNK_BYTES of them (at most MAX_CHUNK rows): on a CPU, passes much larger than that spend
# their time in page faults (allocations this big go straight to mmap and back each pass), much smaller ones in
# per-pass overhead. `python benchmarks/prediction_gain_chunk.py` measures it; for the MADE of SparseAnt's
# 107-dimensional observation (196k parameters) 256 rows cost 2.7 times as much per row as 30.
CHUNK_BYTES = 24_000_000
MAX_CHUNK = 256


def auto_chunk(module: nn.Module) -> int:
    """Rows per vectorised pass for ``module``: as many as keep its per-example gradients near CHUNK_BYTES."""
    n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return int(max(1, min(MAX_CHUNK, CHUNK_BYTES // (4 * max(1, n_params)))))


def snapshot(module: nn.Module) -> dict[str, Tensor]:
    """Detached copies of every parameter and persistent buffer of ``module``, keyed as in its ``state_dict``."""
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def restore(module: nn.Module, saved: dict[str, Tensor]) -> None:
    """Copy a :func:`snapshot` back in place: the tensors stay the same objects, so optimisers keep working."""
    live = module.state_dict()  # detached views of the live tensors
    if sorted(live) != sorted(saved):
        missing, extra = sorted(set(live) - set(saved)), sorted(set(saved) - set(live))
        raise ValueError(f"snapshot does not fit the model: missing {missing}, unexpected {extra}")
    with torch.no_grad():
        for name, value in live.items():
            if saved[name].shape != value.shape:
                raise ValueError(f"snapshot[{name!r}] has shape {tuple(saved[name].shape)}, "
                                 f"the model's is {tuple(value.shape)}")
            value.copy_(saved[name])


def per_example_updates(
    module: nn.Module,
    n_examples: int,
    objective: Callable[[int], Tensor],
    measure: Callable[[int], Tensor],
    *,
    make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
    n_steps: int = 1,
) -> Tensor:
    """For each example ``i`` alone: ``n_steps`` steps of a fresh optimiser on ``objective(i)``, then ``measure(i)``.

    Every example starts from the parameters ``module`` had on entry, and they are restored exactly on exit,
    as are the parameters' ``.grad`` (an external optimiser may be between ``backward()`` and ``step()``).
    Works under an outer ``torch.no_grad()``. Returns the measures as a 1-D tensor without autograd graph.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    parameters = [parameter for parameter in module.parameters() if parameter.requires_grad]
    start = snapshot(module)
    saved_grads = [parameter.grad for parameter in parameters]
    results: list[Tensor] = []
    try:
        with torch.enable_grad():
            for i in range(n_examples):
                optimizer = make_optimizer(parameters)
                for _ in range(n_steps):
                    optimizer.zero_grad(set_to_none=True)
                    objective(i).backward()
                    optimizer.step()
                with torch.no_grad():
                    results.append(measure(i).detach().reshape(()))
                restore(module, start)
    finally:
        restore(module, start)
        for parameter, saved in zip(parameters, saved_grads, strict=True):
            parameter.grad = saved
    if not results:
        return torch.empty(0)
    return torch.stack(results)


class _Scored(nn.Module):
    """``forward(x, context) = log_prob(model, x, context)``, so ``functional_call`` can swap the model's parameters."""

    def __init__(self, model: nn.Module, log_prob: LogProb) -> None:
        super().__init__()
        self.model = model
        self.log_prob = log_prob

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        return self.log_prob(self.model, x, context)


def batched_prediction_gains(
    module: nn.Module,
    log_prob: LogProb,
    x: Tensor,
    context: Tensor | None = None,
    *,
    lr: float,
    chunk: int | None = None,
    seed: int | None = None,
    step: Step | None = None,
) -> tuple[Tensor, Tensor]:
    """Prediction gains of one step on each row of ``x`` alone, and ``log p(x)`` before it.

    Returns ``(gain, log_prob_before)``, both ``(B,)`` without autograd graph: ``gain[i] = log p'(x_i) - log p(x_i)``
    where ``p'`` has parameters ``theta - step(g_i)``, ``g_i = grad(-log p(x_i; theta))``: plain SGD
    (``lr * g_i``) by default, or any elementwise rule such as :func:`adam_step`. The model's parameters are only
    read. Any randomness inside ``log_prob`` draws independently per row, and the same draws before and after
    the step (``seed`` fixes them; by default it comes from torch's global generator).
    """
    chunk = auto_chunk(module) if chunk is None else chunk
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    if context is not None and context.shape[0] != x.shape[0]:
        raise ValueError(f"x and context must have the same batch size, got {x.shape[0]} and {context.shape[0]}")
    scored = _Scored(module, log_prob)
    parameters = {f"model.{name}": parameter.detach() for name, parameter in module.named_parameters()
                  if parameter.requires_grad}
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()))

    def score(params: dict[str, Tensor], x_row: Tensor, context_row: Tensor | None) -> Tensor:
        context_batch = None if context_row is None else context_row.unsqueeze(0)
        return functional_call(scored, params, (x_row.unsqueeze(0), context_batch)).squeeze(0)

    def negative_score(params: dict[str, Tensor], x_row: Tensor, context_row: Tensor | None) -> Tensor:
        return -score(params, x_row, context_row)

    context_dim = None if context is None else 0
    gradients_and_values = vmap(grad_and_value(negative_score), in_dims=(None, 0, context_dim),
                                randomness="different")
    scores_after = vmap(score, in_dims=(0, 0, context_dim), randomness="different")
    gains, befores = [], []
    for index, start in enumerate(range(0, x.shape[0], chunk)):
        rows = slice(start, start + chunk)
        x_rows = x[rows]
        context_rows = None if context is None else context[rows]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + index)
            gradients, negative_before = gradients_and_values(parameters, x_rows, context_rows)
        by_name = {name[len("model."):]: gradient for name, gradient in gradients.items()}
        changes = step(by_name) if step is not None else {name: lr * g for name, g in by_name.items()}
        updated = {name: value - changes[name[len("model."):]] for name, value in parameters.items()}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + index)  # the same draws as before the step
            after = scores_after(updated, x_rows, context_rows)
        gains.append((after + negative_before).detach())
        befores.append(-negative_before.detach())
    if not gains:
        empty = x.new_zeros(0)
        return empty, empty
    return torch.cat(gains), torch.cat(befores)


def adam_step(module: nn.Module, optimizer: torch.optim.Adam, lr: float | None = None,
              max_scale: float = 1000.0) -> Step:
    """A step scaled per parameter as ``optimizer`` (an Adam over ``module``'s parameters) scales its steps now, as
    a :data:`Step`: ``lr * g / (sqrt(v_hat) + eps)`` with ``v_hat`` Adam's bias-corrected second moment.

    Plain SGD moves every parameter by ``lr * g``, and for a softmax output ``|g|`` hardly depends on how likely
    the example is, so a rare example gains little more than a common one. Dividing by the typical gradient
    size makes the parameters that training rarely moves (those only rare inputs use) move further, so rare
    examples gain much more: ``v`` is a diagonal empirical Fisher estimate, and a Fisher-preconditioned step
    is what makes the gain track a count. Two parts of Adam's own step on the example are left out: the
    momentum carried over from training (the same for every example, it would only shift all gains alike),
    and the example's own share of ``v'`` (``(1 - beta2) g^2``), which would cap the step of every rare
    example at ``lr / sqrt(1 - beta2)`` and make rare examples look alike. Before the optimiser's first
    step ``v_hat = g^2`` is used, so the step is ``lr * sign(g)``, as Adam's first step is. No parameter moves
    more than ``max_scale * lr``: one that training has (almost) never moved, such as the weight of an input
    that was constant so far, has ``v_hat ~ 0`` and would otherwise take a step large enough to overshoot and
    make ``log p(x)`` fall, the opposite of what a never-seen input should do. A gain <= 0 can still occur.
    """
    group = optimizer.param_groups[0]
    beta2, eps = group["betas"][1], group["eps"]
    lr = group["lr"] if lr is None else lr
    second_moments: dict[str, Tensor | None] = {}
    for name, parameter in module.named_parameters():
        state = optimizer.state.get(parameter, {})
        if "exp_avg_sq" in state and float(state["step"]) > 0:
            second_moments[name] = state["exp_avg_sq"].detach() / (1.0 - beta2 ** float(state["step"]))
        else:
            second_moments[name] = None

    def step(gradients: dict[str, Tensor]) -> dict[str, Tensor]:
        changes = {}
        for name, gradient in gradients.items():
            second_moment = second_moments[name]
            scale = gradient.abs() if second_moment is None else second_moment.sqrt()
            changes[name] = (lr * gradient / (scale + eps)).clamp(-max_scale * lr, max_scale * lr)
        return changes

    return step

"""The contract every rlgen generative model follows, so one Trainer serves them all.

A model is an ``nn.Module`` with

* ``loss(batch) -> dict[str, Tensor]``: always; holds ``"loss"`` (a scalar to minimise) for models with one
  optimiser, and any further named terms to log (detached). Adversarial models return one loss per
  player (``"loss_d"``, ``"loss_g"``) and may also return ``"loss"`` (e.g. their sum) for logging;
* ``sample(n) -> Tensor`` where it generates: images as floats in [0, 1] of shape (n, C, H, W), vectors
  as (n, D);
* ``log_prob(x) -> Tensor`` of shape (B,) in nats, where it is a density model (a lower bound for the VAE,
  documented as such);

and optionally

* ``configure_optimizers(lr, betas) -> dict[str, torch.optim.Optimizer]``: default one Adam over all
  parameters under the key ``"model"``;
* ``train_step(batch, optimizers) -> dict[str, float]``: one update; default: zero the gradients,
  backpropagate ``loss(batch)["loss"]``, step. GANs override it with their alternating updates.

A batch is a tuple ``(x, y)``: ``x`` floats in [0, 1], (B, C, H, W) for images or (B, D) for vectors;
``y`` int64 labels of shape (B,), with -1 marking an unlabelled example (semi-supervised training).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, Tensor]


def default_optimizers(model: nn.Module, lr: float, betas: tuple[float, float] = (0.9, 0.999)
                       ) -> dict[str, torch.optim.Optimizer]:
    """What the Trainer uses when a model defines no ``configure_optimizers``."""
    configure = getattr(model, "configure_optimizers", None)
    if configure is not None:
        return configure(lr=lr, betas=betas)
    return {"model": torch.optim.Adam(model.parameters(), lr=lr, betas=betas)}


def default_train_step(model: nn.Module, batch: Batch, optimizers: dict[str, torch.optim.Optimizer]
                       ) -> dict[str, float]:
    """One update of a model; defers to the model's own ``train_step`` when it has one."""
    step = getattr(model, "train_step", None)
    if step is not None:
        return step(batch, optimizers)
    losses = model.loss(batch)  # type: ignore[operator]
    for optimizer in optimizers.values():
        optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    for optimizer in optimizers.values():
        optimizer.step()
    return {name: float(value.detach()) for name, value in losses.items()}

"""Saving a reward wrapper's state (model, optimiser, buffers, statistics) with its run, pickle-free."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from rlgen.atomic import atomic_write_bytes


class WrapperState:
    """Mixin for VecEnv wrappers whose ``state_dict()`` holds tensors and plain values: ``save_state`` and
    ``load_state`` write and read ``<directory>/<state_file>`` (atomically; ``torch.load(weights_only=True)``)."""

    state_file: str
    state_name: str

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save_state(self, directory: str | Path) -> None:
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        atomic_write_bytes(Path(directory) / self.state_file, buffer.getvalue())

    def load_state(self, directory: str | Path) -> None:
        path = Path(directory) / self.state_file
        try:
            state = torch.load(path, weights_only=True)
        except Exception as exc:  # a missing, truncated or foreign file
            raise ValueError(f"cannot load {self.state_name} state {path}: {exc}".splitlines()[0]) from None
        self.load_state_dict(state)

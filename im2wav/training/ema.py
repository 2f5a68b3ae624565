"""Exponential moving average of a model's weights (optional during training, used for sampling)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """Keeps `shadow = decay * shadow + (1 - decay) * weights` for every floating-point parameter.

    The effective decay warms up as `min(decay, (1 + n) / (10 + n))` over the first updates `n`, so
    the average is not dominated by the random initialisation. Buffers (e.g. the VQ-VAE's EMA
    codebooks, which are already averages) are not averaged: `copy_to` leaves them as they are.

    Args:
        model: the model whose parameters are tracked (its current weights start the average).
        decay: the long-run decay, e.g. 0.999.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow = {name: p.detach().float().clone() for name, p in model.named_parameters() if p.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current parameters into the average (call after each optimizer step)."""
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().float(), 1.0 - decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights into `model` (e.g. a copy used for saving or sampling)."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name].to(p.dtype))

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state does not match the model (differing parameters: {sorted(missing)[:5]})")
        self.decay, self.num_updates = state["decay"], state["num_updates"]
        self.shadow = {k: v.float().clone() for k, v in state["shadow"].items()}

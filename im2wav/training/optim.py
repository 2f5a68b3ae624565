"""Optimiser and learning-rate schedule of every training stage: AdamW, linear warmup, optional decay."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["make_optimizer", "warmup_schedule"]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; matrices decay, vectors (biases, norms, null embeddings) do not.

    The fused implementation (one kernel for every parameter) is used: on CPU it makes the step of a
    tiny prior ~3.5x faster than the default per-parameter loop (6.3 -> 1.8 ms for `tiny-low`).

    Args:
        model: the model to optimise.
        lr: peak learning rate.
        weight_decay: decoupled weight decay of parameters with 2 or more dimensions.
        betas, eps: Adam's moment decays and epsilon.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps, fused=True)


LR_DECAYS = ("constant", "linear", "cosine")


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int | None = None,
                    decay: str = "constant") -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to the peak over `warmup_steps`, then constant, linear or cosine decay to 0.

    Kept by hand rather than `diffusers.optimization.get_scheduler`: diffusers' warmup runs its first
    step at lr 0 (`step / warmup`), ours at `1 / warmup` (`(step + 1) / warmup`). That one step shifts
    every trajectory, and the demo recipe, the bundled model and the learning tests were tuned on
    this one (with diffusers' schedule the shapes-world test's guidance-3 accuracy fell from about
    0.95 to 0.67).

    Args:
        optimizer: the optimiser.
        warmup_steps: optimiser steps of linear warmup (the original uses 100).
        total_steps: the run's last step; needed by `linear` and `cosine`.
        decay: `constant` (the original), `linear` or `cosine`.
    """
    if decay not in LR_DECAYS:
        raise ValueError(f"decay must be 'constant', 'linear' or 'cosine', got {decay!r}")
    if decay != "constant" and not total_steps:
        raise ValueError(f"a {decay} learning-rate decay needs total_steps (set --max-steps)")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if decay == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

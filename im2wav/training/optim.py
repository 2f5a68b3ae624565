"""Optimiser and learning-rate schedule of every training stage: AdamW, with diffusers' warmup schedules."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["make_optimizer", "warmup_schedule"]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; matrices decay, vectors (biases, norms, null embeddings) do not.

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
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps)


# --lr-decay -> diffusers scheduler name. Each warms up linearly from 0 over `warmup_steps` (the
# first step runs at lr 0, as the original's `min(1, step / warmup)`), then holds or decays to 0.
LR_SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int | None = None,
                    decay: str = "constant") -> torch.optim.lr_scheduler.LambdaLR:
    """`diffusers.optimization.get_scheduler`: linear warmup, then constant, linear or cosine decay.

    Args:
        optimizer: the optimiser.
        warmup_steps: optimiser steps of linear warmup (the original uses 100).
        total_steps: the run's last step; needed by `linear` and `cosine`.
        decay: `constant` (the original), `linear` or `cosine`.
    """
    from diffusers.optimization import get_scheduler

    if decay not in LR_SCHEDULES:
        raise ValueError(f"decay must be 'constant', 'linear' or 'cosine', got {decay!r}")
    if decay != "constant" and not total_steps:
        raise ValueError(f"a {decay} learning-rate decay needs total_steps (set --max-steps)")
    return get_scheduler(LR_SCHEDULES[decay], optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)

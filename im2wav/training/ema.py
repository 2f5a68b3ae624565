"""Exponential moving average of a model's weights: `diffusers.training_utils.EMAModel`, set up for our runs.

`EMAModel` keeps `shadow = decay * shadow + (1 - decay) * weights` over the parameters with the
warm-up `min(decay, (1 + n) / (10 + n))` (its first update copies the weights), so that the average
is not dominated by the random initialisation. Buffers, e.g. the VQ-VAE's EMA codebooks (already
averages), are not averaged. What this module adds: checks that a decay and a saved state fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from diffusers.training_utils import EMAModel

__all__ = ["load_weight_ema_state", "weight_ema"]


def weight_ema(model: nn.Module, decay: float) -> EMAModel:
    """An `EMAModel` over the model's parameters (their current values start the average).

    Args:
        model: the model whose parameters are tracked.
        decay: the long-run decay, in (0, 1), e.g. 0.999.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"--ema-decay must be in (0, 1), e.g. 0.999, got {decay}")
    # imported here: `diffusers.training_utils` brings in every diffusers UNet (~3.5 s at each stage's start)
    from diffusers.training_utils import EMAModel

    return EMAModel(model.parameters(), decay=float(decay))


def load_weight_ema_state(ema: EMAModel, state: dict, model: nn.Module) -> None:
    """Load a saved EMA state into `ema`, refusing one that does not fit `model`.

    Args:
        ema: the run's EMA (`weight_ema(model, ...)`).
        state: `EMAModel.state_dict()`, or the `{"decay", "num_updates", "shadow": {name: tensor}}` of
            checkpoints written before the EMA was `EMAModel` (their parameter order is the model's).
        model: the model the EMA tracks.
    """
    names = [name for name, _ in model.named_parameters()]
    if "shadow" in state:  # the earlier format, keyed by parameter name
        missing = set(names) ^ set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state does not match the model (differing parameters: {sorted(missing)[:5]})")
        state = {"decay": float(state["decay"]), "optimization_step": int(state["num_updates"]),
                 "shadow_params": [state["shadow"][name] for name in names]}
    shapes = [tuple(p.shape) for p in model.parameters()]
    saved = [tuple(p.shape) for p in state.get("shadow_params", [])]
    if saved != shapes:
        raise ValueError(f"EMA state does not match the model ({len(saved)} saved tensors for {len(shapes)} "
                         "parameters, or other shapes); resume without --ema-decay or start a new run with --init")
    ema.load_state_dict(state)

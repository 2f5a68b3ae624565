"""The prior's training loss: next-token cross-entropy with condition dropout for guidance.

Example:
    >>> import torch
    >>> from im2wav import Im2WavPrior
    >>> from im2wav.losses.tokens import prior_token_loss
    >>> prior = Im2WavPrior.from_preset("tiny-low")
    >>> tokens = torch.randint(0, 64, (2, 128))
    >>> frames = torch.nn.functional.normalize(torch.randn(2, 8, 512), dim=-1)
    >>> timing = torch.tensor([[160000.0, 0.0, 4096.0]] * 2)
    >>> out = prior_token_loss(prior, tokens, frame_embeds=frames, timing=timing, condition_dropout=0.5)
    >>> out.loss.backward()   # out.loss is in bits per token, as the original optimises
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.prior import Im2WavPrior


@dataclass
class TokenLossOutput:
    """Result of `prior_token_loss`.

    Attributes:
        loss: scalar, bits per token (`cross_entropy / ln 2`), the original's training objective.
        cross_entropy: scalar, nats per token.
        unconditional: BoolTensor [B], the items trained with the null condition.
        logits: [B, T, K].
    """

    loss: torch.Tensor
    cross_entropy: torch.Tensor
    unconditional: torch.Tensor
    logits: torch.Tensor


def bits_per_token(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits [B, T, K] against tokens [B, T], in bits."""
    return F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten()) / math.log(2.0)


def prior_token_loss(prior: Im2WavPrior, tokens: torch.Tensor, frame_embeds: torch.Tensor | None = None,
                     lower_tokens: torch.Tensor | None = None, timing: torch.Tensor | None = None,
                     condition_dropout: float = 0.0, generator: torch.Generator | None = None) -> TokenLossOutput:
    """Teacher-forced next-token loss of a prior, dropping the condition of random items.

    Dropped items use the prior's learned null condition, through the same `unconditional` path
    that classifier-free guidance uses at sampling time (the time signal is kept).

    Args:
        prior: the prior (in training mode for training).
        tokens: LongTensor [B, T] of one window.
        frame_embeds, lower_tokens, timing: conditioning, see `Im2WavPrior.forward`.
        condition_dropout: probability of dropping an item's condition (IM2WAV LOW: 0.5; 0 for UP).
        generator: RNG for the dropout mask (default: the global RNG; the mask is its first draw,
            `rand(B) < p`, as in the original).

    Returns:
        `TokenLossOutput`.
    """
    if not 0.0 <= condition_dropout <= 1.0:
        raise ValueError(f"condition_dropout must be in [0, 1], got {condition_dropout}")
    if condition_dropout > 0 and not prior.config.guidance:
        raise ValueError("condition_dropout > 0 needs a prior with null conditions (config.guidance=True)")
    B = tokens.shape[0]
    unconditional = torch.zeros(B, dtype=torch.bool, device=tokens.device)
    if condition_dropout > 0:
        unconditional = torch.rand(B, generator=generator, device=tokens.device) < condition_dropout
    logits = prior(tokens, frame_embeds=frame_embeds, lower_tokens=lower_tokens, timing=timing,
                   unconditional=unconditional)
    bits = bits_per_token(logits, tokens.to(logits.device))
    return TokenLossOutput(loss=bits, cross_entropy=bits * math.log(2.0), unconditional=unconditional, logits=logits)

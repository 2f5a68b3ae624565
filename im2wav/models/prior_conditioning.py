"""Conditioning modules of the IM2WAV prior.

- `ClipMLP`: CLIP embedding -> model width (the start token, and LOW's per-frame condition).
- `TimeSignal`: LOW's embedding of (total length, offset, window length), three `RangeEmbedding`s.
- `LowerTokenConditioner`: UP's embedding of the LOW tokens, upsampled x4 to the UP token rate.
- `token_to_frame`: which frame each LOW token reads (`round(linspace(0, 1, T) * (F - 1))`).

The numerics (bin arithmetic in float32, numpy's round-half-to-even) are those of the original.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from .conv_blocks import Upsampler


class ClipMLP(nn.Module):
    """`Linear(clip_dim, clip_dim) -> ReLU -> Dropout(0.1) -> Linear(clip_dim, width)`.

    Args:
        clip_dim: width of the CLIP embeddings (512 for ViT-B/32).
        width: output width (the prior's width).
        dropout: dropout after the ReLU (active in training only).
    """

    def __init__(self, clip_dim: int, width: int, dropout: float = 0.1):
        super().__init__()
        self.fc = nn.Linear(clip_dim, clip_dim)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(clip_dim, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., clip_dim) -> (..., width)
        return self.proj(self.dropout(torch.relu(self.fc(x))))


class RangeEmbedding(nn.Module):
    """Embeds positions of `[pos_min, pos_max)` by binning them into `bins` equal bins.

    With `n_time > 1` the interval `[start, end]` is interpolated to `n_time` positions
    `start + (end - start) * t / n_time` first.

    Args:
        n_time: positions produced per item (1: embed `start` only).
        bins: number of bins.
        pos_min, pos_max: the embedded range.
        width: embedding width.
        clamp: clamp `end` into the range first (the relative position).

    The table starts at N(0, 0.01**2), as the original's: a unit-variance table (torch's default)
    is ~50x the token embeddings and drowns the image condition at the start of training.
    """

    def __init__(self, n_time: int, bins: int, pos_min: float, pos_max: float, width: int, clamp: bool = False):
        super().__init__()
        self.n_time, self.bins, self.pos_min, self.pos_max, self.clamp = n_time, bins, pos_min, pos_max, clamp
        self.emb = nn.Embedding(bins, width)
        nn.init.normal_(self.emb.weight, std=0.01)

    def forward(self, start: torch.Tensor, end: torch.Tensor | None = None) -> torch.Tensor:
        """start, end: float32 [B, 1] -> [B, n_time, width]."""
        if self.n_time == 1:
            position = start
        else:
            if self.clamp:
                end = end.clamp(self.pos_min, self.pos_max)
            steps = torch.arange(self.n_time, dtype=torch.float32, device=start.device)
            interpolation = steps.view(1, -1) / self.n_time  # (1, n_time)
            position = start + (end - start) * interpolation  # (B, n_time)
        normalised = (position - self.pos_min) / (self.pos_max - self.pos_min)
        return self.emb((self.bins * normalised).floor().long())


class TimeSignal(nn.Module):
    """Sum of the total-length, absolute-position and relative-position embeddings of a window.

    Args:
        n_ctx: tokens per window (the positions are interpolated over them).
        bins: bins of each range embedding.
        sample_rate: audio sample rate; the ranges are in samples.
        min_duration, max_duration: total-length range in seconds.
        width: embedding width.
    """

    def __init__(self, n_ctx: int, bins: int, sample_rate: int, min_duration: float, max_duration: float, width: int):
        super().__init__()
        self.total_range = (min_duration * sample_rate, max_duration * sample_rate)
        self.total_length = RangeEmbedding(1, bins, *self.total_range, width)
        self.absolute_position = RangeEmbedding(n_ctx, bins, 0.0, max_duration * sample_rate, width)
        self.relative_position = RangeEmbedding(n_ctx, bins, 0.0, 1.0, width, clamp=True)

    def check(self, timing: torch.Tensor) -> None:
        """Raise a `ValueError` unless every row of `timing` [B, 3] is inside the trained ranges."""
        total, offset, length = timing.float().unbind(-1)
        lo, hi = self.total_range
        if not ((total >= lo) & (total < hi)).all():
            raise ValueError(f"timing total length must be in [{lo:.0f}, {hi:.0f}) samples, got {total.tolist()}; "
                             "pass the length of the whole clip in samples")
        if not ((offset >= 0) & (offset < total)).all() or not (length > 0).all():
            raise ValueError(f"timing offset must be in [0, total) and window length > 0, got {timing.tolist()}")
        if not (offset + length <= self.absolute_position.pos_max).all():
            raise ValueError(f"timing offset + window length must be <= {self.absolute_position.pos_max:.0f} samples")

    def forward(self, timing: torch.Tensor) -> torch.Tensor:
        """timing [B, 3] = (total length, offset, window length) in samples -> [B, n_ctx, width]."""
        timing = timing.float()
        total, offset = timing[:, 0:1], timing[:, 1:2]
        end = offset + timing[:, 2:3]  # (B, 1)
        return (self.total_length(total) + self.absolute_position(offset, end)
                + self.relative_position(offset / total, end / total))


class LowerTokenConditioner(nn.Module):
    """UP's `x_cond`: embed the LOW tokens, conv-upsample them to the UP rate, LayerNorm.

    Args:
        vocab_size: LOW codebook size.
        width: the prior's width.
        channels: channels inside the upsampler (`cond_width`).
        depth: residual units per upsampling step.
        num_steps, stride: `stride ** num_steps` is the LOW -> UP rate ratio.
        m_conv, dilation_growth_rate, dilation_cycle: see `im2wav.models.conv_blocks.ResidualStack`.
    """

    def __init__(self, vocab_size: int, width: int, channels: int, depth: int, num_steps: int = 2, stride: int = 2,
                 m_conv: float = 1.0, dilation_growth_rate: int = 3, dilation_cycle: int | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width)
        self.upsampler = Upsampler(width, width, num_steps, stride, channels, depth, m_conv=m_conv,
                                   dilation_growth_rate=dilation_growth_rate, dilation_cycle=dilation_cycle)
        self.norm = nn.LayerNorm(width, eps=1e-5)

    def forward(self, lower_tokens: torch.Tensor) -> torch.Tensor:  # (B, T_low) -> (B, T_low * stride**num_steps, D)
        x = self.embedding(lower_tokens).transpose(1, 2)  # (B, T_low, D) -> (B, D, T_low)
        return self.norm(self.upsampler(x).transpose(1, 2))  # (B, D, T) -> (B, T, D)


@lru_cache(maxsize=64)
def _token_to_frame(num_tokens: int, num_frames: int) -> tuple[int, ...]:
    return tuple(np.round(np.linspace(0, 1, num=num_tokens) * (num_frames - 1)).astype(np.int64).tolist())


def token_to_frame(num_tokens: int, num_frames: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Frame index read by each of `num_tokens` tokens: `round(linspace(0, 1, T) * (F - 1))`.

    Computed in float64 with round-half-to-even, exactly as the original, so that ties land on the
    same frame.
    """
    return torch.tensor(_token_to_frame(num_tokens, num_frames), dtype=torch.long, device=device)

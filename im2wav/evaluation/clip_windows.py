"""How a clip of any length becomes the fixed-size inputs a metric model takes.

- `pad_to_length`: a clip shorter than a model's minimum gets zeros at its end.
- `split_into_windows`: a clip longer than a model's window is cut into windows of that length,
  starting every `window` samples; the last one ends at the clip's end (it overlaps the one
  before rather than being zero-padded), so every window is real audio.
- `equal_length_batches`: runs of clips of one length, at most `batch_size` each, so that no clip
  is padded to the length of another (zero padding changes a model's output).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

__all__ = ["equal_length_batches", "pad_to_length", "split_into_windows"]


def pad_to_length(clip: torch.Tensor, min_length: int) -> torch.Tensor:
    """`clip` `[S]` with zeros appended up to `min_length` samples (unchanged when long enough)."""
    if clip.shape[-1] >= min_length:
        return clip
    return F.pad(clip, (0, min_length - clip.shape[-1]))


def split_into_windows(clip: torch.Tensor, window: int) -> list[torch.Tensor]:
    """`clip` `[S]` as windows of `window` samples; a clip no longer than one window is returned whole.

    Args:
        clip: a 1-D waveform.
        window: the model's longest input in samples.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 sample, got {window}")
    length = clip.shape[-1]
    if length <= window:
        return [clip]
    starts = list(range(0, length - window + 1, window))
    if starts[-1] + window < length:
        starts.append(length - window)  # the last window ends at the clip's end
    return [clip[start : start + window] for start in starts]


def equal_length_batches(clips: Sequence[torch.Tensor], batch_size: int) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Consecutive clips of one length stacked `[B, S]`, with their positions in `clips`.

    Args:
        clips: 1-D waveforms.
        batch_size: the most clips per batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    start = 0
    while start < len(clips):
        end = start + 1
        while end < len(clips) and end - start < batch_size and clips[end].shape[-1] == clips[start].shape[-1]:
            end += 1
        yield list(range(start, end)), torch.stack(list(clips[start:end]))  # [B, S]
        start = end

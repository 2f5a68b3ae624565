"""Where the sampler's windows start and what each one reads (frames, timing).

Generation longer than a prior's context runs in windows of `n_ctx` tokens with hop `n_ctx // 2`, as
the original's `models/sample.py`; the overlap primes the cache of the next window.
"""

from __future__ import annotations

import torch

from .models.prior import Im2WavPrior

# models/sample.py of the original gives every window the total length of a 10 s VGGSound video
# (VIDEO_TOTAL_LENGTHS = 160000 samples), whatever is generated; the LOW prior was trained on those.
ORIGINAL_TOTAL_LENGTH = 160_000


def window_starts(num_tokens: int, n_ctx: int, hop: int) -> list[int]:
    """First token of each window: every `hop` tokens, the last one moved back to end at `num_tokens`.

    Args:
        num_tokens: tokens generated in all.
        n_ctx: tokens per window.
        hop: tokens between window starts (`n_ctx // 2` in the sampler).

    Returns:
        The start of every window, ascending; `[0]` when one window holds everything.
    """
    if num_tokens <= n_ctx:
        return [0]
    starts = []
    for start in range(0, num_tokens - n_ctx + hop, hop):
        start = min(start, num_tokens - n_ctx)
        if not starts or start > starts[-1]:
            starts.append(start)
    return starts


def window_frames(frame_embeds: torch.Tensor, start: int, n_ctx: int, num_tokens: int) -> torch.Tensor:
    """The frames of `frame_embeds` [B, F, C] (evenly spanning `num_tokens` tokens) covering a window.

    As the original: frames `start_f .. start_f + window_frames` (inclusive, clipped to the clip), where
    the frame rate is F per clip. A window longer than the clip repeats the last frame so that
    frames keep their time position. One frame (an image) covers every window.

    Args:
        frame_embeds: [B, F, C] CLIP embeddings spanning the whole generation.
        start: first token of the window.
        n_ctx: tokens per window.
        num_tokens: tokens generated in all.

    Returns:
        [B, F_window, C].
    """
    F = frame_embeds.shape[1]
    if num_tokens <= n_ctx:
        count = -(-n_ctx * F // num_tokens)  # frames spanning n_ctx tokens at F frames per clip
        index = torch.arange(count).clamp(max=F - 1)
    else:
        first = start * F // num_tokens
        last = min(first + n_ctx * F // num_tokens, F - 1)
        index = torch.arange(first, last + 1)
    return frame_embeds[:, index.to(frame_embeds.device)]


def low_window_inputs(
    prior: Im2WavPrior, frame_embeds: torch.Tensor, start: int, num_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames and timing the LOW prior reads for the window starting at token `start`.

    Timing is `(total length, offset, window length)` in samples as the original `models/sample.py`
    sets it: the total length is that of a 10 s video (`ORIGINAL_TOTAL_LENGTH`) or the generated
    length if longer, the offset `start * hop`, the window length `n_ctx * hop`.

    Args:
        prior: the LOW prior (its `n_ctx` and `hop_length` are read).
        frame_embeds: [B, F, C] CLIP embeddings spanning the whole generation.
        start: first token of the window.
        num_tokens: tokens generated in all.

    Returns:
        `(frames [B, F_window, C], timing [B, 3])`.
    """
    c = prior.config
    B = frame_embeds.shape[0]
    total_length = max(ORIGINAL_TOTAL_LENGTH, num_tokens * c.hop_length)
    timing = torch.tensor([[total_length, start * c.hop_length, c.n_ctx * c.hop_length]], dtype=torch.float32,
                          device=frame_embeds.device).expand(B, 3)
    return window_frames(frame_embeds, start, c.n_ctx, num_tokens), timing

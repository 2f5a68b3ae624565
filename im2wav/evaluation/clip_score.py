"""CLIP-score between an image (or a video's frames) and audio embedded into CLIP space.

The paper replaces CLIP's text encoder by Wav2CLIP, an audio encoder trained against the frozen CLIP
image encoder, and reports `γ * E[cos(image embedding, audio embedding)]` with γ = 100. For a
video every frame is scored against the whole clip and the frame scores are averaged. There is
no clipping of negative cosines (unlike the CLIPScore of Hessel et al.).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["CLIP_SCORE_SCALE", "clip_score", "clip_scores"]

CLIP_SCORE_SCALE = 100.0  # γ in the paper


def clip_scores(
    image_embeds: torch.Tensor | Sequence[torch.Tensor],
    audio_embeds: torch.Tensor,
    scale: float = CLIP_SCORE_SCALE,
) -> torch.Tensor:
    """CLIP-score of every (image or video, audio) pair.

    Embeddings need not be normalised: cosine similarity normalises them.

    Args:
        image_embeds: `[N, D]` one image per item; `[N, F, D]` F frames per item; or a list of N
            `[F_i, D]` tensors when the items have different frame counts.
        audio_embeds: `[N, D]` CLIP-space embeddings of the N audio clips (e.g. Wav2CLIP).
        scale: γ (100 in the paper).

    Returns:
        `[N]` float32 scores: `scale * cos` for images, the mean over frames of `scale * cos` for videos.
    """
    audio_embeds = torch.as_tensor(audio_embeds).detach().float().cpu()
    if audio_embeds.ndim != 2:
        raise ValueError(f"audio_embeds must be [N, D], got shape {tuple(audio_embeds.shape)}")
    if isinstance(image_embeds, torch.Tensor):
        if image_embeds.ndim == 2:
            image_embeds = image_embeds[:, None]  # [N, 1, D]
        if image_embeds.ndim != 3:
            raise ValueError(f"image_embeds must be [N, D] or [N, F, D], got shape {tuple(image_embeds.shape)}")
        frames = list(image_embeds.detach().float().cpu())  # N x [F, D]
    else:
        frames = [torch.as_tensor(f).detach().float().cpu() for f in image_embeds]
        if any(f.ndim != 2 or f.shape[0] == 0 for f in frames):
            raise ValueError("each item of an image_embeds list must be a non-empty [F, D] tensor of frame embeddings")
    if len(frames) != audio_embeds.shape[0]:
        raise ValueError(f"got {len(frames)} images/videos but {audio_embeds.shape[0]} audio embeddings; pair them one to one")
    if len(frames) == 0:
        raise ValueError("no items to score")
    if any(f.shape[-1] != audio_embeds.shape[-1] for f in frames):
        raise ValueError(
            f"image embeddings of width {frames[0].shape[-1]} and audio embeddings of width {audio_embeds.shape[-1]} "
            "are not in the same space: the audio encoder must embed into the CLIP image space (e.g. Wav2CLIP "
            "with CLIP ViT-B/32, both 512-d)"
        )
    scores = [
        (scale * F.cosine_similarity(f, audio[None].expand_as(f), dim=-1)).mean()  # mean over frames
        for f, audio in zip(frames, audio_embeds)
    ]
    return torch.stack(scores)


def clip_score(
    image_embeds: torch.Tensor | Sequence[torch.Tensor],
    audio_embeds: torch.Tensor,
    scale: float = CLIP_SCORE_SCALE,
) -> float:
    """The paper's CLIP-score: the mean of `clip_scores` over the items (higher is better).

    Args:
        image_embeds: `[N, D]`, `[N, F, D]` or a list of `[F_i, D]`; see `clip_scores`.
        audio_embeds: `[N, D]` CLIP-space audio embeddings.
        scale: γ (100 in the paper).
    """
    return float(clip_scores(image_embeds, audio_embeds, scale).mean())

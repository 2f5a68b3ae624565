"""Wav2CLIP, the paper's CLIP-space audio encoder (CLIP-score), through the `wav2clip` package.

`wav2clip.get_model()` builds `ResNetExtractor(checkpoint, scenario="frozen", transform=True)`
from its release: a ResNet-18 over the raw 16 kHz waveform plus an MLP into the 512-d space of
CLIP ViT-B/32 image embeddings. We build the same module from a local file or the package's URL
and wrap it as a `ClipAudioEncoder` (whole-clip embedding, L2-normalised; audio resampled to 16 kHz).
"""

from __future__ import annotations

import os

import torch

from .audio_models import CallableClipAudioEncoder
from .checkpoints import load_state_dict

__all__ = ["WAV2CLIP_SAMPLE_RATE", "build_wav2clip", "load_wav2clip"]

WAV2CLIP_SAMPLE_RATE = 16000
WAV2CLIP_WEIGHTS_URL = "https://github.com/descriptinc/lyrebird-wav2clip/releases/download/v0.1.0-alpha/Wav2CLIP.pt"


def build_wav2clip(checkpoint: dict | None = None) -> torch.nn.Module:
    """Wav2CLIP's frozen audio encoder: from `checkpoint` (the release's keys `audio_encoder.*`,
    `audio_transform.*`), or with random weights when None. In eval mode.

    Raises:
        ImportError: `wav2clip` is not installed (`pip install "im2wav[eval]"`).
        ValueError: the checkpoint lacks or mismatches the encoder's weights.
    """
    try:
        from wav2clip.model.encoder import MLPLayers, ResNetExtractor
    except ImportError as err:
        raise ImportError('Wav2CLIP needs the wav2clip package: pip install "im2wav[eval]"') from err
    if checkpoint is None:
        model = ResNetExtractor(scenario="supervise")  # random ResNet, no MLP: add it as the release has one
        model.transform = MLPLayers(units=[512, 512, 512], dropout=0.1)
        return model.eval()
    if not any(k.startswith("audio_encoder.") for k in checkpoint) or not any(
        k.startswith("audio_transform.") for k in checkpoint
    ):
        raise ValueError("the Wav2CLIP checkpoint lacks audio_encoder.* / audio_transform.* weights; pass Wav2CLIP.pt")
    try:
        model = ResNetExtractor(checkpoint=checkpoint, scenario="frozen", transform=True)
    except RuntimeError as err:
        raise ValueError(f"the Wav2CLIP checkpoint does not fit its encoder ({str(err).splitlines()[0]})") from err
    return model.eval()


def load_wav2clip(
    weights: str | os.PathLike | dict | None = None,
    device: str | torch.device | None = None,
    random_weights: bool = False,
) -> CallableClipAudioEncoder:
    """The paper's Wav2CLIP as a `ClipAudioEncoder`.

    Args:
        weights: the release's `Wav2CLIP.pt` (or its state dict); None downloads it from `WAV2CLIP_WEIGHTS_URL`.
        device: where to run it (default: CPU).
        random_weights: random initialisation (plumbing checks only).
    """
    checkpoint = None if random_weights else load_state_dict(weights, WAV2CLIP_WEIGHTS_URL, "Wav2CLIP", "--wav2clip-weights")
    model = build_wav2clip(checkpoint).to(device or "cpu")
    return CallableClipAudioEncoder(model, sample_rate=WAV2CLIP_SAMPLE_RATE, device=device)

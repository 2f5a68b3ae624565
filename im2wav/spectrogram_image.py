"""A mel spectrogram as a picture (PNG), for a quick look at generated audio. No matplotlib."""

from __future__ import annotations

import os

import numpy as np
import torch
import torchaudio
from PIL import Image

__all__ = ["save_spectrogram_png", "spectrogram_image"]

# Anchor colours of a dark-to-bright colour map (black, purple, red, orange, pale yellow),
# interpolated to 256 entries.
_ANCHORS = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=np.float64)
_LUT = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, c]) for c in range(3)], axis=1
).astype(np.uint8)  # [256, 3]


def spectrogram_image(
    audio: np.ndarray | torch.Tensor,
    sample_rate: int,
    n_mels: int = 128,
    hop_length: int | None = None,
    top_db: float = 80.0,
    max_width: int = 2048,
) -> Image.Image:
    """Render mono audio as a log-mel spectrogram image: time left to right, low frequencies at the bottom.

    Args:
        audio: `[S]` or `[1, S]` samples.
        sample_rate: in Hz.
        n_mels: mel bands, the image height.
        hop_length: samples per column (default: sample_rate // 100, 10 ms columns).
        top_db: dynamic range shown; quieter bins are black.
        max_width: columns are pooled (max) so the image is at most this wide.

    Returns:
        An RGB image `n_mels` pixels high.
    """
    audio = torch.as_tensor(np.asarray(audio.detach().cpu() if torch.is_tensor(audio) else audio), dtype=torch.float32)
    audio = audio.reshape(-1) if audio.dim() == 2 and audio.shape[0] == 1 else audio
    if audio.dim() != 1 or audio.numel() == 0:
        raise ValueError(f"expected non-empty mono audio [S] or [1, S], got shape {tuple(audio.shape)}")
    hop_length = hop_length or max(1, sample_rate // 100)
    n_fft = 1 << max(8, int(np.ceil(np.log2(4 * hop_length))))
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, power=2.0
    )(audio)  # [n_mels, T]
    db = 10.0 * torch.log10(mel.clamp_min(1e-10))
    db = (db - db.max()).clamp_min(-top_db) / top_db + 1.0  # 0 (quiet) .. 1 (loudest)
    if db.shape[1] > max_width:
        db = torch.nn.functional.adaptive_max_pool1d(db[None], max_width)[0]
    index = (db.flip(0).numpy() * 255).round().astype(np.uint8)  # [n_mels, T], low frequencies at the bottom
    return Image.fromarray(_LUT[index], mode="RGB")


def save_spectrogram_png(
    path: str | os.PathLike, audio: np.ndarray | torch.Tensor, sample_rate: int, overwrite: bool = True
) -> None:
    """Write `spectrogram_image(audio, sample_rate)` to a PNG file, atomically (an existing file is
    replaced only when `overwrite`)."""
    from .atomic_files import atomic_output

    image = spectrogram_image(audio, sample_rate)
    with atomic_output(path, overwrite=overwrite) as tmp:
        image.save(tmp, format="PNG")

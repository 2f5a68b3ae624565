"""A mel spectrogram as a picture (PNG) with time (s), frequency (Hz) and level (dB) axes.

Drawn with Pillow alone: matplotlib would be a large dependency (and a second plotting stack in
ComfyUI installs) for one picture, and torchaudio is not needed either (torch's STFT and a mel
filter bank of a few lines).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from transformers.audio_utils import hertz_to_mel, mel_filter_bank

__all__ = ["mel_filterbank", "save_spectrogram_png", "spectrogram_figure", "spectrogram_image"]

# Anchor colours of a dark-to-bright colour map (black, purple, red, orange, pale yellow),
# interpolated to 256 entries.
_ANCHORS = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=np.float64)
_LUT = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, c]) for c in range(3)], axis=1
).astype(np.uint8)  # [256, 3]
_NICE_HZ = (0, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 24000)
_NICE_SECONDS = (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60)


def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int) -> torch.Tensor:
    """Triangular filters on the HTK mel scale from 0 Hz to `sample_rate / 2`, unnormalised
    (`transformers.audio_utils.mel_filter_bank`, silent about bands too narrow to hold an FFT bin).

    Args:
        n_fft: FFT size (`n_fft // 2 + 1` frequency bins).
        sample_rate: in Hz.
        n_mels: number of mel bands.

    Returns:
        `[n_fft // 2 + 1, n_mels]` float32 weights.
    """
    with warnings.catch_warnings():  # an empty band is a black row of the picture, nothing to warn about
        warnings.simplefilter("ignore", UserWarning)
        weights = mel_filter_bank(n_fft // 2 + 1, n_mels, 0.0, sample_rate / 2, sample_rate, mel_scale="htk")
    return torch.from_numpy(weights.astype(np.float32))


def _levels(audio: np.ndarray | torch.Tensor, sample_rate: int, n_mels: int, hop_length: int | None,
            top_db: float, max_width: int) -> torch.Tensor:
    """`[n_mels, T]` mel levels scaled to 0 (top_db below the loudest bin, or quieter) .. 1 (loudest)."""
    audio = torch.as_tensor(np.asarray(audio.detach().cpu() if torch.is_tensor(audio) else audio), dtype=torch.float32)
    audio = audio.reshape(-1) if audio.dim() == 2 and audio.shape[0] == 1 else audio  # [1, S] -> [S]
    if audio.dim() != 1 or audio.numel() == 0:
        raise ValueError(f"expected non-empty mono audio [S] or [1, S], got shape {tuple(audio.shape)}")
    if not (isinstance(sample_rate, int) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
    hop_length = hop_length or max(1, sample_rate // 100)
    n_fft = 1 << max(8, int(np.ceil(np.log2(4 * hop_length))))
    if audio.numel() <= n_fft // 2:  # reflect padding needs more samples than half a window
        audio = torch.nn.functional.pad(audio, (0, n_fft // 2 + 1 - audio.numel()))
    spec = torch.stft(audio, n_fft, hop_length, window=torch.hann_window(n_fft), return_complex=True)  # [n_freqs, T]
    mel = mel_filterbank(n_fft, sample_rate, n_mels).T @ spec.abs().square()  # [n_mels, T]
    db = 10.0 * torch.log10(mel.clamp_min(1e-10))
    db = (db - db.max()).clamp_min(-top_db) / top_db + 1.0  # 0 (quiet) .. 1 (loudest)
    if db.shape[1] > max_width:
        db = torch.nn.functional.adaptive_max_pool1d(db[None], max_width)[0]
    return db


def spectrogram_image(
    audio: np.ndarray | torch.Tensor,
    sample_rate: int,
    n_mels: int = 128,
    hop_length: int | None = None,
    top_db: float = 80.0,
    max_width: int = 2048,
) -> Image.Image:
    """Render mono audio as a bare log-mel spectrogram: time left to right, low frequencies at the bottom.

    Args:
        audio: `[S]` or `[1, S]` samples.
        sample_rate: in Hz.
        n_mels: mel bands, the image height.
        hop_length: samples per column (default: sample_rate // 100, 10 ms columns).
        top_db: dynamic range shown; quieter bins are black.
        max_width: columns are pooled (max) so the image is at most this wide.

    Returns:
        An RGB image `n_mels` pixels high, without axes (see `spectrogram_figure`).
    """
    db = _levels(audio, sample_rate, n_mels, hop_length, top_db, max_width)
    index = (db.flip(0).numpy() * 255).round().astype(np.uint8)  # [n_mels, T], low frequencies at the bottom
    return Image.fromarray(_LUT[index], mode="RGB")


def _time_step(seconds: float) -> float:
    return next((s for s in _NICE_SECONDS if seconds / s <= 8), _NICE_SECONDS[-1] * math.ceil(seconds / 480))


def spectrogram_figure(
    audio: np.ndarray | torch.Tensor,
    sample_rate: int,
    top_db: float = 80.0,
    plot_height: int = 256,
) -> Image.Image:
    """The spectrogram with axes: time in seconds below, frequency in Hz (mel-spaced) on the left,
    and a colour bar in dB relative to the loudest bin on the right.

    Args:
        audio: `[S]` or `[1, S]` samples.
        sample_rate: in Hz.
        top_db: dynamic range shown (the colour bar runs from `-top_db` to 0 dB).
        plot_height: pixel height of the plot area (the 128 mel bands are stretched to it).

    Returns:
        An RGB image on a white background.
    """
    plot = spectrogram_image(audio, sample_rate, top_db=top_db)
    plot = plot.resize((plot.width, plot_height), Image.NEAREST)
    duration = (audio.shape[-1] if hasattr(audio, "shape") else len(audio)) / sample_rate
    font = ImageFont.load_default()
    left, right, top, bottom = 64, 78, 10, 36
    figure = Image.new("RGB", (left + plot.width + right, top + plot_height + bottom), "white")
    figure.paste(plot, (left, top))
    draw = ImageDraw.Draw(figure)
    ink = (0, 0, 0)
    draw.rectangle([left - 1, top - 1, left + plot.width, top + plot_height], outline=ink)

    # frequency axis: nice values placed on the mel scale
    mel_top = hertz_to_mel(sample_rate / 2, "htk")
    for hz in (h for h in _NICE_HZ if h <= sample_rate / 2):
        y = top + plot_height - round(hertz_to_mel(hz, "htk") / mel_top * plot_height)
        draw.line([left - 5, y, left - 1, y], fill=ink)
        draw.text((left - 7, y), f"{hz:g}", fill=ink, font=font, anchor="rm")
    draw.text((4, top), "Hz", fill=ink, font=font, anchor="la")

    # time axis
    step = _time_step(duration)
    for k in range(int(duration / step + 1e-9) + 1):
        x = left + round(k * step / duration * (plot.width - 1)) if duration > 0 else left
        draw.line([x, top + plot_height, x, top + plot_height + 4], fill=ink)
        draw.text((x, top + plot_height + 6), f"{k * step:g}", fill=ink, font=font, anchor="ma")
    draw.text((left + plot.width // 2, top + plot_height + 20), "time (s)", fill=ink, font=font, anchor="ma")

    # colour bar in dB
    bar_left = left + plot.width + 12
    ramp = _LUT[np.linspace(255, 0, plot_height).round().astype(np.uint8)]  # [H, 3], loud at the top
    figure.paste(Image.fromarray(np.repeat(ramp[:, None], 12, axis=1), mode="RGB"), (bar_left, top))
    for level in range(0, int(top_db) + 1, 20):
        y = top + round(level / top_db * (plot_height - 1))
        draw.line([bar_left + 12, y, bar_left + 15, y], fill=ink)
        draw.text((bar_left + 18, y), f"-{level}" if level else "0", fill=ink, font=font, anchor="lm")
    draw.text((bar_left + 18, top + plot_height + 6), "dB", fill=ink, font=font, anchor="la")
    return figure


def save_spectrogram_png(
    path: str | os.PathLike, audio: np.ndarray | torch.Tensor, sample_rate: int, overwrite: bool = True
) -> None:
    """Write `spectrogram_figure(audio, sample_rate)` (with axes) to a PNG file, atomically.

    Args:
        path: the PNG to write.
        audio: `[S]` or `[1, S]` samples.
        sample_rate: in Hz.
        overwrite: replace an existing file; otherwise an existing file is an error.
    """
    from .atomic_files import atomic_output

    image = spectrogram_figure(audio, sample_rate)
    with atomic_output(path, overwrite=overwrite) as tmp:
        image.save(tmp, format="PNG")

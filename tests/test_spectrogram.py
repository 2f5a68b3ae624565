"""The spectrogram picture: a mel filter bank equal to torchaudio's, and axes that tell the truth
(a tone sits at its frequency's tick, a sound that stops does so at its time's tick)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.audio_utils import hertz_to_mel

from im2wav.spectrogram_image import (
    mel_filterbank,
    save_spectrogram_png,
    spectrogram_figure,
    spectrogram_image,
)

RATE = 16000
LEFT, TOP, HEIGHT = 64, 10, 256  # the figure's layout (spectrogram_figure)


def tone(freq: float, seconds: float, until: float | None = None) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    audio = 0.5 * np.sin(2 * np.pi * freq * t)
    if until is not None:
        audio[t >= until] = 0.0
    return audio.astype(np.float32)


def test_mel_filterbank_matches_torchaudio():
    torchaudio = pytest.importorskip("torchaudio", reason="the reference filter bank is torchaudio's")
    ours = mel_filterbank(1024, RATE, 128)
    theirs = torchaudio.functional.melscale_fbanks(513, 0.0, RATE / 2, 128, RATE, norm=None, mel_scale="htk")
    torch.testing.assert_close(ours, theirs.float(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("freq", [250.0, 1000.0, 4000.0])
def test_a_tone_sits_at_its_frequency_on_the_hz_axis(freq):
    figure = np.asarray(spectrogram_figure(tone(freq, 1.0), RATE)).astype(float)
    plot = figure[TOP:TOP + HEIGHT, LEFT:LEFT + 100].sum(axis=(1, 2))  # [H] brightness per row
    row = int(plot.argmax())
    expected = HEIGHT - hertz_to_mel(freq, "htk") / hertz_to_mel(RATE / 2, "htk") * HEIGHT  # where the axis puts `freq`
    assert abs(row - expected) <= 4, (row, expected)


def test_a_sound_that_stops_does_so_at_its_time_on_the_seconds_axis():
    figure = spectrogram_figure(tone(1000.0, 4.0, until=1.0), RATE)
    pixels = np.asarray(figure).astype(float)
    width = figure.width - LEFT - 78
    columns = pixels[TOP:TOP + HEIGHT, LEFT:LEFT + width].sum(axis=(0, 2))  # [W]
    loud = np.flatnonzero(columns > columns.max() / 2)
    assert abs(loud.max() - width / 4) <= 4  # 1 s of 4 s: a quarter of the time axis


def test_figure_has_axes_around_the_bare_plot_and_is_written_as_png(tmp_path):
    audio = tone(440.0, 2.0)
    bare = spectrogram_image(audio, RATE)
    figure = spectrogram_figure(audio, RATE)
    assert bare.size == (201, 128)  # one 10 ms column per hop, plus the centred last one
    assert figure.width > bare.width + 100 and figure.height > HEIGHT + 20
    corner = np.asarray(figure)[-5:, :5]
    assert (corner == 255).all()  # a white margin with the labels, not plot
    save_spectrogram_png(tmp_path / "s.png", torch.from_numpy(audio)[None], RATE)
    with Image.open(tmp_path / "s.png") as saved:
        assert saved.format == "PNG" and saved.size == figure.size
    with pytest.raises(ValueError, match="sample_rate"):
        spectrogram_figure(audio, 0)

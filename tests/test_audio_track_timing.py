"""The sound read back from a muxed video starts where the generated sound started, on every PyAV.

An AAC track begins with 1024 samples of encoder priming. Matroska stamps them before time 0; the
FFmpeg of PyAV 14 to 17 decodes them there, later ones drop them. `read_audio_track` drops what
lies before time 0 itself, so the result does not depend on the installed PyAV.
"""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
from tiny_components import make_test_video

from im2wav.audio_files import mux_audio_into_video, read_audio_track, samples_before_zero


def chirp(num_samples: int, sample_rate: int) -> np.ndarray:
    """A rising tone: unlike a steady sine, it matches itself at one shift only."""
    t = np.arange(num_samples) / sample_rate
    return (0.4 * np.sin(2 * np.pi * (200 * t + 3000 * t * t))).astype(np.float32)


def best_lag(back: np.ndarray, audio: np.ndarray, max_lag: int = 2048, span: int = 4096) -> int:
    """The shift of `back` against `audio` (positive: `back` starts late) that matches them best."""
    ref = audio[max_lag : max_lag + span]
    scores = [float(np.dot(back[max_lag + lag : max_lag + lag + span], ref)) for lag in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_muxed_sound_reads_back_from_its_first_sample(tmp_path, suffix):
    video = make_test_video(tmp_path / "in.mp4", seconds=1.0, fps=10)
    audio = chirp(12000, 16000)  # 0.75 s
    back = read_audio_track(mux_audio_into_video(video, audio, 16000, tmp_path / f"out{suffix}"), sample_rate=16000)
    assert best_lag(back, audio) == 0
    # the end keeps at most the last AAC frame's padding where the container records no length
    assert 0 <= len(back) - len(audio) < 1024, len(back)


def frame(pts, samples=1024, sample_rate=16000, time_base=Fraction(1, 1000)):
    return SimpleNamespace(pts=pts, samples=samples, sample_rate=sample_rate, time_base=time_base)


def test_samples_before_zero_counts_what_precedes_time_zero():
    stream = SimpleNamespace(time_base=Fraction(1, 1000))
    assert samples_before_zero(frame(-64), stream) == 1024  # the whole priming frame
    assert samples_before_zero(frame(-32), stream) == 512
    assert samples_before_zero(frame(-500), stream) == 1024  # never more than the frame holds
    assert samples_before_zero(frame(0), stream) == 0
    assert samples_before_zero(frame(None), stream) == 0
    assert samples_before_zero(frame(-32, time_base=None), stream) == 512  # the stream's time base then

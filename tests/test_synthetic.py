"""The synthetic audio-visual world: deterministic, distinct classes, real video files."""

from __future__ import annotations

import numpy as np
import pytest

from im2wav.data.synthetic import (
    SOUND_KINDS,
    class_specs,
    make_synthetic_dataset,
    render_frames,
    synthesize_sound,
)
from im2wav.media import load_video_frames, read_audio_track

SR = 16000


def band_centroid(audio: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SR)
    return float((power * freqs).sum() / power.sum())


def test_sounds_and_pictures_are_deterministic_and_distinct():
    specs = class_specs(len(SOUND_KINDS))
    assert len({s.name for s in specs}) == len({s.background for s in specs}) == len(specs)
    for spec in specs:
        a = synthesize_sound(spec.sound, 4096, SR, np.random.default_rng([0, 1]))
        assert np.array_equal(a, synthesize_sound(spec.sound, 4096, SR, np.random.default_rng([0, 1])))
        assert a.dtype == np.float32 and abs(np.abs(a).max() - 0.5) < 1e-6
        f = render_frames(spec, 3, 32, np.random.default_rng(0))
        assert f.shape == (3, 32, 32, 3) and np.array_equal(f, render_frames(spec, 3, 32, np.random.default_rng(0)))
        assert not np.array_equal(f[0], f[2])  # the shape moves
    centroids = sorted(band_centroid(synthesize_sound(k, 8192, SR, np.random.default_rng(0))) for k in SOUND_KINDS)
    assert min(np.diff(np.log(centroids))) > 0.02  # no two sound families share a spectral centre
    with pytest.raises(ValueError, match="different kinds"):
        class_specs(2, ["low_tone", "low_tone"])


def test_written_world_decodes_through_the_media_readers(tmp_path):
    world = make_synthetic_dataset(tmp_path, num_classes=2, clips_per_class=1, heldout_per_class=1,
                                   duration_s=0.5, size=32, seed=3)
    assert len(world.videos) == 2 and world.video_labels == [0, 1] and world.heldout_labels == [0, 1]
    audio = read_audio_track(world.videos[1], SR)
    assert abs(len(audio) - 8000) <= 2048
    expected = synthesize_sound(world.classes[1].sound, 8000, SR, np.random.default_rng([3, 1, 0]))
    assert abs(band_centroid(audio[:8000]) - band_centroid(expected)) < 0.1 * band_centroid(expected)
    frames = load_video_frames(world.videos[0], fps=30).frames
    assert len(frames) == 15
    assert np.abs(np.asarray(frames[0], dtype=float).mean(axis=(0, 1)) - world.classes[0].background).max() < 40
    assert world.csv_path.read_text().splitlines()[0].endswith(",train")

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


def test_patterns_world_pairs_differ_in_pattern_alone_and_sounds_overlap():
    from im2wav.data.synthetic import PATTERNS, pattern_world_specs, world_specs

    specs = pattern_world_specs()
    assert len(specs) >= 6 and len({s.sound for s in specs}) == len(specs)
    assert {s.pattern for s in specs} <= set(PATTERNS) and len({s.pattern for s in specs}) >= 3
    pairs = [(a, b) for a, b in zip(specs[::2], specs[1::2])]
    for a, b in pairs:  # same colours, a different background pattern (and for the last pair, shape)
        assert (a.background, a.shape_colour) == (b.background, b.shape_colour) and a.pattern != b.pattern
    assert sum(a.shape == b.shape for a, b in pairs) == 2  # two pairs differ in pattern alone
    for a, b in pairs:
        rng = [np.random.default_rng(7), np.random.default_rng(7)]
        fa, fb = render_frames(a, 1, 64, rng[0]), render_frames(b, 1, 64, rng[1])
        assert (fa != fb).any(axis=-1).mean() > 0.15  # the pattern covers a good part of the frame
    # overlapping spectra: the sweep's band contains the steady noise band and the bursts' pitch
    chirp, noise, pulses = (synthesize_sound(k, 16000, SR, np.random.default_rng(0), None)
                            for k in ("chirp", "mid_noise", "pulse_train"))
    assert 800 < band_centroid(noise) < 2400 and 800 < band_centroid(pulses) < 2400 and 800 < band_centroid(chirp) < 2400
    # ... and different time structure: short-time energy is steady for the noise, bursty for the pulses
    def envelope_spread(x):
        energy = (x[: len(x) // 160 * 160].reshape(-1, 160) ** 2).mean(axis=1)  # 10 ms frames
        return float(energy.std() / energy.mean())
    assert envelope_spread(pulses) > 3 * envelope_spread(noise)
    with pytest.raises(ValueError, match="exactly 6 classes"):
        world_specs("patterns", num_classes=4)
    with pytest.raises(ValueError, match="unknown world"):
        world_specs("cubes")


def test_noise_floor_is_where_asked():
    clean = synthesize_sound("low_tone", 16000, SR, np.random.default_rng(0))
    floored = synthesize_sound("low_tone", 16000, SR, np.random.default_rng(0), floor_db=-30.0)
    freqs = np.fft.rfftfreq(16000, 1 / SR)
    high = freqs > 4000  # far above the tone's harmonics
    def high_share(x):
        power = np.abs(np.fft.rfft(x)) ** 2
        return power[high].sum() / power.sum()
    assert high_share(clean) < 1e-6
    # white noise 30 dB below the RMS: about 1e-3 of the power, half of it above 4 kHz
    assert 2e-4 < high_share(floored) < 1e-3


def test_patterns_world_holds_out_images_never_trained_on(tmp_path):
    world = make_synthetic_dataset(tmp_path, world="patterns", clips_per_class=1, heldout_per_class=1,
                                   duration_s=0.25, size=32, seed=1, mismatched_per_class=0)
    assert len(world.classes) == 6 and len(world.videos) == 6 and len(world.heldout_images) == 6
    trained = {p.stem for p in world.videos}
    assert not trained & {p.stem for p in world.heldout_images}
    assert '"world": "patterns"' in (tmp_path / "classes.json").read_text()

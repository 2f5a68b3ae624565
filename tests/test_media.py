"""Media I/O: robust image reading, video frames at a fixed rate, audio tracks, writers, muxing."""

from __future__ import annotations

import io
import json
import os

import av
import numpy as np
import pytest
import soundfile
import torch
from conftest import shared_path
from PIL import Image
from tiny_components import make_test_video

from im2wav.clip_encoder import embed_images, load_clip_image_encoder, tiny_clip_vision
from im2wav.media import (
    frame_count,
    is_video_file,
    load_image,
    load_video_frames,
    mux_audio_into_video,
    read_audio_track,
    to_rgb,
    write_audio,
)
from im2wav.spectrogram_image import save_spectrogram_png, spectrogram_image

# ------------------------------------------------------------------------------------------------
# images


def _gradient(width=40, height=30) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None, None]
    return np.concatenate(
        [
            np.broadcast_to(x, (height, width, 1)),
            np.broadcast_to(y, (height, width, 1)),
            np.full((height, width, 1), 128.0),
        ],
        axis=2,
    ).astype(np.uint8)


def test_format_is_sniffed_from_content_not_extension(tmp_path):
    path = tmp_path / "really_a_png.jpg"
    Image.fromarray(_gradient()).save(path, format="PNG")
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (40, 30)
    np.testing.assert_array_equal(np.asarray(image), _gradient())  # lossless: decoded as PNG


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(_gradient(40, 30)).save(path, format="JPEG", exif=exif)
    assert Image.open(path).size == (40, 30)
    assert load_image(path).size == (30, 40)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L", "1", "I;16", "I", "F", "YCbCr"])
def test_every_mode_becomes_rgb(mode):
    image = Image.fromarray(_gradient()).convert(mode) if mode not in ("I;16", "I", "F") else None
    if mode == "I;16":
        image = Image.fromarray((np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16))
        assert image.mode.startswith("I;16")
    elif mode == "I":
        image = Image.fromarray((np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.int32))
    elif mode == "F":
        image = Image.fromarray(np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(30, 40))
    rgb = load_image(image)
    assert rgb.mode == "RGB" and rgb.size == (40, 30)
    pixels = np.asarray(rgb)
    assert pixels.max() > 200 and pixels.min() < 60, f"{mode} lost its dynamic range: {pixels.min()}..{pixels.max()}"


def test_transparent_pixels_go_on_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, fully transparent
    assert np.asarray(to_rgb(Image.fromarray(rgba, mode="RGBA"))).tolist() == [[[255, 255, 255]] * 4] * 4


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(path)
    assert np.asarray(load_image(path))[0, 0].tolist() == [128, 128, 128]


def test_cmyk_jpeg_file(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(_gradient()).convert("CMYK").save(path, format="JPEG")
    assert load_image(path).mode == "RGB"


def test_bad_images_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    with pytest.raises(ValueError, match="not an image"):
        load_image(not_image)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_image(truncated)


def test_all_imagehear_images_load():
    folder = shared_path("data", "imagehear")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    listed = json.loads((folder / "imagehear.json").read_text())
    assert len(files) == 101, len(files)
    formats = set()
    for path in files:
        formats.add(Image.open(path).format)
        image = load_image(path)
        assert image.mode == "RGB" and min(image.size) > 0, path
    assert "WEBP" in formats  # the WEBP named .jpg
    assert listed


# ------------------------------------------------------------------------------------------------
# video


def test_video_frames_at_target_fps(tmp_path):
    video = make_test_video(tmp_path / "v.mp4", seconds=1.0, fps=10)
    frames, duration = load_video_frames(video, fps=30)
    assert duration == pytest.approx(1.0, abs=0.02)
    assert len(frames) == 30
    levels = [np.asarray(f).mean() for f in frames]
    # 10 fps sampled at 30 fps: each source frame three times, brightening with time
    assert all(abs(levels[3 * k] - levels[3 * k + j]) < 1 for k in range(10) for j in (1, 2))
    assert all(levels[3 * (k + 1)] > levels[3 * k] + 5 for k in range(9))
    # a lower rate picks the frame shown at each sample time
    slow, _ = load_video_frames(video, fps=5)
    assert len(slow) == 5
    np.testing.assert_allclose([np.asarray(f).mean() for f in slow], levels[0:30:6], atol=1)


def test_video_max_seconds_and_short_side(tmp_path):
    video = make_test_video(tmp_path / "v.mp4", seconds=1.0, fps=10, size=(128, 96))
    frames, duration = load_video_frames(video, fps=30, max_seconds=0.5, short_side=48)
    assert duration == pytest.approx(0.5) and len(frames) == 15
    assert frames[0].size == (64, 48)


def test_video_is_detected_by_content(tmp_path):
    video = make_test_video(tmp_path / "clip.mp4", seconds=0.5).rename(tmp_path / "clip.jpg")  # misnamed
    assert is_video_file(video)
    assert len(load_video_frames(video, fps=10).frames) == 5
    image = tmp_path / "image.mp4"
    Image.fromarray(_gradient()).save(image, format="PNG")
    assert not is_video_file(image)


def test_bad_videos_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_video_frames(tmp_path / "missing.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01" * 500)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_video_frames(garbage)
    video = make_test_video(tmp_path / "v.mp4", seconds=1.0)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_video_frames(truncated)
    wav = tmp_path / "sound.wav"
    soundfile.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="no video stream"):
        load_video_frames(wav)
    with pytest.raises(ValueError, match="fps"):
        load_video_frames(video, fps=0)


def test_vggsound_examples_decode():
    folder = shared_path("data", "vggsound_examples")
    for mp4 in sorted(folder.glob("*.mp4")):
        frames, duration = load_video_frames(mp4, fps=30, max_seconds=2.0, short_side=64)
        assert len(frames) == 60 and duration == pytest.approx(2.0)
        audio = read_audio_track(mp4)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert len(audio) == 160000  # 10 s at 16 kHz, without the AAC end padding
        assert 0.01 < np.abs(audio).max() <= 1.1


# ------------------------------------------------------------------------------------------------
# audio


def test_read_audio_track_resamples_and_downmixes(tmp_path):
    rate = 22050
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, tone], axis=1).astype(np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, rate)
    audio = read_audio_track(path, sample_rate=16000)
    assert audio.shape == (16000,) and audio.dtype == np.float32
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)  # averaged, not summed
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s -> 1 Hz bins


def test_read_audio_track_from_video(tmp_path):
    video = make_test_video(tmp_path / "v.mp4", seconds=1.0, audio_rate=22050)
    audio = read_audio_track(video)
    assert abs(len(audio) - 16000) < 300
    with pytest.raises(ValueError, match="no audio stream"):
        read_audio_track(make_test_video(tmp_path / "silent.mp4", seconds=0.5, audio_rate=None))


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_audio_round_trip(tmp_path, suffix):
    audio = (0.3 * np.sin(np.linspace(0, 100, 1600))).astype(np.float32)
    path = write_audio(tmp_path / f"out{suffix}", torch.from_numpy(audio)[None], 16000)
    data, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000 and data.shape == (1600,)
    np.testing.assert_allclose(data, audio, atol=1e-4 if suffix == ".flac" else 0)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_writers_reject_bad_audio(tmp_path):
    with pytest.raises(ValueError, match=".wav or .flac"):
        write_audio(tmp_path / "out.mp3", np.zeros(10), 16000)
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "out.wav", np.array([0.0, np.nan]), 16000)
    with pytest.raises(ValueError, match="mono"):
        write_audio(tmp_path / "out.wav", np.zeros((2, 10)), 16000)
    assert list(tmp_path.iterdir()) == []


def _video_packets(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, [bytes(p) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_mux_round_trip_copies_video_and_carries_audio(tmp_path, suffix):
    video = make_test_video(tmp_path / "in.mp4", seconds=1.0, fps=10, audio_rate=22050)
    audio = (0.4 * np.sin(2 * np.pi * 1000 * np.arange(12000) / 16000)).astype(np.float32)  # 0.75 s
    out = mux_audio_into_video(video, audio, 16000, tmp_path / f"out{suffix}")
    codec_in, packets_in = _video_packets(video)
    codec_out, packets_out = _video_packets(out)
    assert codec_out == codec_in and packets_out == packets_in  # stream copied, not re-encoded
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1
        assert container.streams.audio[0].codec_context.name == "aac"
    back = read_audio_track(out, sample_rate=16000)
    # MP4 records the exact length; Matroska keeps the last AAC frame's padding (frames are 1024 samples)
    assert abs(len(back) - len(audio)) <= (16 if suffix == ".mp4" else 1024), len(back)
    n = min(len(back), len(audio)) - 2048
    assert np.corrcoef(back[1024:n], audio[1024:n])[0, 1] > 0.95  # the generated audio, not the input's tone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", f"out{suffix}"]


def test_mux_vggsound_example_keeps_stream():
    mp4 = sorted(shared_path("data", "vggsound_examples").glob("*.mp4"))[-1]
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        out = mux_audio_into_video(mp4, np.zeros(16000, dtype=np.float32), 16000, Path(tmp) / "out.mp4")
        assert _video_packets(out) == _video_packets(mp4)
        assert abs(len(read_audio_track(out)) - 16000) <= 1024


def test_mux_rejects_files_without_video(tmp_path):
    wav = tmp_path / "in.wav"
    soundfile.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="no video stream"):
        mux_audio_into_video(wav, np.zeros(100), 16000, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_mux_never_writes_onto_its_input_video(tmp_path):
    video = make_test_video(tmp_path / "in.mp4", seconds=0.2, fps=10)
    before = video.read_bytes()
    os.link(video, tmp_path / "link.mp4")
    for out in (video, tmp_path / "sub" / ".." / "in.mp4", tmp_path / "link.mp4"):
        with pytest.raises(ValueError, match="the input video itself"):
            mux_audio_into_video(video, np.zeros(1600, dtype=np.float32), 16000, out, overwrite=True)
    assert video.read_bytes() == before


# ------------------------------------------------------------------------------------------------
# CLIP encoder and spectrogram picture


def test_embed_images_normalised_batched_and_size_agnostic():
    model, processor = tiny_clip_vision(seed=0)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (30 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(5)]
    embeds = embed_images(model, processor, images, batch_size=2)
    assert embeds.shape == (5, 512) and embeds.dtype == torch.float32
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(5))
    single = torch.cat([embed_images(model, processor, [image]) for image in images])
    torch.testing.assert_close(embeds, single, atol=1e-5, rtol=1e-5)
    assert (embeds[0] - embeds[1]).abs().max() > 1e-3  # different images, different embeddings
    with pytest.raises(ValueError, match="at least one"):
        embed_images(model, processor, [])


def test_tiny_clip_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, _ = tiny_clip_vision(seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    b, _ = tiny_clip_vision(seed=3)
    c, _ = tiny_clip_vision(seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.visual_projection.weight, c.visual_projection.weight)


def test_clip_encoder_save_load_and_missing(tmp_path):
    model, processor = tiny_clip_vision()
    model.save_pretrained(tmp_path / "clip")
    processor.save_pretrained(tmp_path / "clip")
    loaded, loaded_processor = load_clip_image_encoder(tmp_path / "clip", dtype=torch.float32)
    image = Image.fromarray(_gradient())
    torch.testing.assert_close(embed_images(loaded, loaded_processor, [image]), embed_images(model, processor, [image]))
    with pytest.raises(ValueError, match="cannot load a CLIP image encoder"):
        load_clip_image_encoder(tmp_path / "does_not_exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a saved CLIP model"):
        load_clip_image_encoder(tmp_path / "empty")


def test_spectrogram_png(tmp_path):
    rate = 16000
    t = np.arange(rate) / rate
    low, high = np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 5000 * t)
    image_low, image_high = spectrogram_image(low, rate), spectrogram_image(high, rate)
    assert image_low.mode == "RGB" and image_low.size[1] == 128
    # brightest row: low frequencies at the bottom of the picture
    row = lambda im: int(np.asarray(im).astype(float).sum(axis=(1, 2)).argmax())  # noqa: E731
    assert row(image_low) > row(image_high)
    save_spectrogram_png(tmp_path / "s.png", torch.from_numpy(low.astype(np.float32))[None], rate)
    assert Image.open(tmp_path / "s.png").format == "PNG"
    with pytest.raises(ValueError, match="mono"):
        spectrogram_image(np.zeros((2, 100)), rate)


def test_frame_count_is_exact_for_decimal_durations_despite_float_rounding():
    from fractions import Fraction

    for tenths in range(1, 200):
        for fps in (10, 24, 25, 30):
            exact = int(Fraction(tenths, 10) * fps)  # 4.1 s x 30 fps is 123 frames, though 4.1 * 30 < 123 in floats
            assert frame_count(tenths / 10, fps) == max(1, exact)
    assert frame_count(0.001, 30) == 1  # a sliver of a second still keeps one frame

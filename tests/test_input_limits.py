"""Memory follows the work, not the input: streamed video, frame-by-frame arrays, limits with clear errors.

Peak memory is measured in a fresh subprocess (VmHWM after a reset), where a unit test cannot see it.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_components import TINY_SECONDS, tiny_image, tiny_pipe  # noqa: F401  (pytest fixtures)

from im2wav.audio_files import mux_frames
from im2wav.clip_encoder import embed_images, tiny_clip_vision
from im2wav.convert import read_original_checkpoint
from im2wav.image_processor import MAX_WAVEFORMS, array_to_images, encoder_short_side, prepare_frames
from im2wav.media import (
    MAX_FPS,
    MAX_IMAGE_PIXELS,
    is_video_file,
    load_image,
    load_video_frames,
    read_audio_track,
    write_audio,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20


def _peak_rss_increase(setup: str, work: str) -> int:
    """Bytes by which the peak RSS of a fresh interpreter grows while `work` runs after `setup`."""
    code = textwrap.dedent(
        """
        import json
        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        {setup}
        import gc; gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        before = status("VmRSS")
        {work}
        print(json.dumps(status("VmHWM") - before))
        """
    ).format(setup=setup, work=work)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _needs_proc_peak_reset():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")


def _write_yuv_video(path: Path, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    """A low-bitrate H.264 video made directly from YUV planes (fast even at HD sizes)."""
    import av

    num_frames = int(seconds * fps)
    with av.open(str(path), mode="w") as output:
        stream = output.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 200_000
        planes = np.full((height * 3 // 2, width), 128, dtype=np.uint8)

        def frames():
            for k in range(num_frames):
                planes[:height] = 40 + (200 * k) // max(1, num_frames - 1)
                yield av.VideoFrame.from_ndarray(planes, format="yuv420p")

        mux_frames(output, stream, frames(), fps)
    return path


# ------------------------------------------------------------------------------------------------
# memory, measured in a subprocess


def test_hd_video_frames_cost_memory_of_the_request_not_of_the_file(tmp_path):
    _needs_proc_peak_reset()
    video = _write_yuv_video(tmp_path / "hd.mp4", seconds=4.0, width=1920, height=1080)
    # 1 s at 30 fps: 30 full-size RGB frames would be 187 MB; shrunk to 32 px they are 0.2 MB.
    increase = _peak_rss_increase(
        "from im2wav.image_processor import prepare_frames",
        f"frames = prepare_frames({str(video)!r}, fps=30, max_seconds=1.0, short_side=32)\n"
        "assert len(frames[0]) == 30 and min(frames[0][0].size) == 32",
    )
    assert increase < 120 * MiB, f"decoding 1 s of 1080p took {increase / MiB:.0f} MiB"


def test_checking_an_original_checkpoint_leaves_its_weights_in_the_file(tmp_path):
    _needs_proc_peak_reset()
    # 128 MiB of weights, read memory-mapped: the NaN/inf check touches every page and must give them
    # back (without that the whole file became resident: about 150 MiB).
    path, warm_up = tmp_path / "vqvae.pth.tar", tmp_path / "small.pth.tar"
    torch.save({"hps": {"levels": 2}, "model": {f"encoders.{i}.w": torch.zeros(2 * MiB) for i in range(16)}}, path)
    torch.save({"hps": {"levels": 2}, "model": {"encoders.0.w": torch.zeros(8)}}, warm_up)
    increase = _peak_rss_increase(
        f"from im2wav.convert import read_original_checkpoint\nread_original_checkpoint({str(warm_up)!r})",
        f"checkpoint = read_original_checkpoint({str(path)!r})\nassert checkpoint.mapped",
    )
    assert increase < 80 * MiB, f"reading a 128 MiB checkpoint held {increase / MiB:.0f} MiB"


def test_comfyui_image_tensor_is_converted_frame_by_frame(tmp_path):
    _needs_proc_peak_reset()
    # A ComfyUI IMAGE: [F, H, W, C] float32 in 0..1, 60 frames of 720p = 663 MB. A float64 copy of it
    # (the old conversion) would add 1.3 GB on top.
    increase = _peak_rss_increase(
        "import torch\nfrom im2wav.image_processor import array_to_images\n"
        "images = torch.rand(60, 720, 1280, 3)",
        "frames = array_to_images(images, short_side=32)\nassert len(frames) == 60",
    )
    assert increase < 150 * MiB, f"converting the IMAGE tensor took {increase / MiB:.0f} MiB above it"


# ------------------------------------------------------------------------------------------------
# only the needed frames are touched; shrinking does not change what CLIP sees


def test_frames_past_the_requested_length_are_never_converted():
    frames = np.random.default_rng(0).random((90, 8, 8, 3), dtype=np.float32)
    frames[40] = np.nan  # would be refused if converted
    kept = prepare_frames(video=frames, fps=30, max_seconds=1.0)[0]
    assert len(kept) == 30
    with pytest.raises(ValueError, match="NaN or inf"):
        prepare_frames(video=frames, fps=30, max_seconds=2.0)


def test_shrinking_to_the_encoder_input_leaves_clip_embeddings_unchanged():
    model, processor = tiny_clip_vision(seed=0)
    short = encoder_short_side(processor)
    assert short == 32
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in
              [(640, 360), (333, 777), (1001, 37), (64, 64)]]
    shrunk = [array_to_images(np.asarray(image), short_side=short)[0] for image in images]
    assert [min(image.size) for image in shrunk] == [32, 32, 32, 32]
    torch.testing.assert_close(embed_images(model, processor, shrunk), embed_images(model, processor, images),
                               rtol=0, atol=0)


def test_float_frames_convert_like_uint8():
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    as_float = torch.from_numpy(pixels.astype(np.float32) / 255.0)
    for converted, original in zip(array_to_images(as_float), array_to_images(pixels)):
        np.testing.assert_array_equal(np.asarray(converted), np.asarray(original))


def test_video_frames_can_be_shrunk_as_decoded(tmp_path):
    video = _write_yuv_video(tmp_path / "v.mp4", seconds=1.0, width=320, height=240)
    full = load_video_frames(video, fps=10).frames
    small = load_video_frames(video, fps=10, short_side=24).frames
    assert len(full) == len(small) == 10
    assert full[0].size == (320, 240) and small[0].size == (32, 24)


# ------------------------------------------------------------------------------------------------
# limits with clear errors, before any allocation


def test_fps_is_bounded(tiny_pipe):  # noqa: F811
    for fps in (1e6, 1e300, MAX_FPS * 2):
        with pytest.raises(ValueError, match="frames per second limit"):
            tiny_pipe(tiny_image(0), audio_length_in_s=TINY_SECONDS, fps=fps)
    with pytest.raises(ValueError, match="limit"):
        prepare_frames([tiny_image(0)], fps=1e6)


def test_number_of_waveforms_is_bounded_before_any_work(tiny_pipe):  # noqa: F811
    with pytest.raises(ValueError, match=f"over the limit of {MAX_WAVEFORMS}"):
        tiny_pipe(tiny_image(0), audio_length_in_s=TINY_SECONDS, num_waveforms_per_prompt=1_000_000)
    embeds = torch.nn.functional.normalize(torch.randn(3, 1, 512), dim=-1)
    with pytest.raises(ValueError, match="3 input"):
        tiny_pipe.sample_low(embeds, audio_length_in_s=TINY_SECONDS, num_waveforms_per_prompt=MAX_WAVEFORMS)


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares `width` x `height` (a decompression bomb's header)."""
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("side", [12000, 20000, 100000])  # under, at and far over Pillow's own limits
def test_decompression_bomb_headers_are_refused_before_decoding(tmp_path, side):
    bomb = _png_declaring(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 1000 and side * side > MAX_IMAGE_PIXELS
    with pytest.raises(ValueError, match="MP limit|too large"):
        load_image(bomb)
    assert not is_video_file(bomb)
    with pytest.raises(ValueError, match="MP limit|too large"):
        prepare_frames(str(bomb))


def test_audio_decoding_stops_at_max_seconds(tmp_path):
    tone = (0.3 * np.sin(np.arange(16000 * 6) * 0.05)).astype(np.float32)
    path = write_audio(tmp_path / "long.wav", tone, 16000)
    whole = read_audio_track(path, 16000)
    start = read_audio_track(path, 16000, max_seconds=2.0)
    assert len(start) == 32000
    np.testing.assert_array_equal(start, whole[:32000])
    with pytest.raises(ValueError, match="max_seconds"):
        read_audio_track(path, 16000, max_seconds=-1)


def test_zip_inside_a_checkpoint_is_size_checked_before_inflating(tmp_path):
    path = tmp_path / "bomb.pth.tar"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/data/0", bytes(64 * MiB))  # 64 MiB of zeros deflate to ~64 KB
    assert path.stat().st_size < MiB
    with pytest.raises(ValueError, match="would inflate"):
        read_original_checkpoint(path)

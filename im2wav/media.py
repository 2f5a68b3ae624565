"""Media I/O: images, video frames, audio tracks, and writing generated audio (alone or muxed into video).

Everything that touches a user's files lives here, so the pipeline, the CLI, the dataset scripts and
the ComfyUI nodes read media the same way:

- `load_image(path)`: any Pillow-readable image as 8-bit RGB. The format is sniffed from the content
  (a WEBP named `.jpg` loads), EXIF orientation is applied, and alpha, palette, CMYK, 16-bit and
  float images are converted.
- `load_video_frames(path, fps=30)`: the frames a camera sampling at `fps` would have seen, plus
  the video's duration (PyAV).
- `read_audio_track(path, sample_rate=16000)`: the first audio stream as mono float32.
- `write_audio(path, audio, sample_rate)`: WAV/FLAC, written atomically.
- `mux_audio_into_video(video, audio, sample_rate, out)`: a copy of a video with its picture stream
  copied as is and the generated audio as its only audio stream (AAC).

Every writer goes through `im2wav.atomic_files.atomic_output`: the file appears under its final name
complete or not at all.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic_files import atomic_output

__all__ = [
    "VideoFrames",
    "encode_audio_stream",
    "frame_count",
    "is_video_file",
    "load_frames",
    "load_image",
    "load_video_frames",
    "mux_audio_into_video",
    "read_audio_track",
    "resize_short_side",
    "to_rgb",
    "write_audio",
]

PathLike = str | os.PathLike

AUDIO_EXTENSIONS = {".wav": "WAV", ".flac": "FLAC"}


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Convert any Pillow image to 8-bit RGB.

    Transparency (RGBA, LA, PA, P/L with a transparent colour) is composited over `background`;
    16-bit and 32-bit integer greyscale (I;16*, I) is scaled from 0..65535 to 0..255; float
    greyscale (F) is read as 0..1 when its maximum is at most 1, else as 0..255; CMYK, YCbCr, HSV,
    1-bit, L and P go through Pillow's own conversion. EXIF orientation is NOT applied here (see
    `load_image`).

    Args:
        image: a Pillow image in any mode.
        background: the RGB colour behind transparent pixels.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode == "I":
        # Pillow's own I -> L conversion clips at 255, which turns a 16-bit photo white.
        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if values.max(initial=0) > 255 else 1.0
        grey = np.clip(np.rint(values / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("the float image holds NaN or inf pixels; fix or re-export the image")
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "P" or (mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as err:
        raise ValueError(f"cannot convert a {mode!r} image to RGB ({err}); re-save it as an RGB PNG or JPEG") from err


def load_image(source: PathLike | BinaryIO | Image.Image) -> Image.Image:
    """Read an image as an upright 8-bit RGB Pillow image.

    The format comes from the file's content, not its name. The EXIF orientation tag is applied.
    An animated image (GIF, WEBP, APNG) gives its first frame.

    Args:
        source: a path, a binary file object, or an already opened Pillow image.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not an image Pillow can read, or it is truncated or corrupt.
    """
    name = getattr(source, "filename", None) or getattr(source, "name", None) or str(source)
    if isinstance(source, Image.Image):
        image = source
    else:
        if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
            raise FileNotFoundError(f"image not found: {source}")
        try:
            image = Image.open(source)
            image.load()  # decode now: a truncated file fails here, not later inside CLIP
        except UnidentifiedImageError as err:
            raise ValueError(
                f"{name} is not an image Pillow can read (check the file is a JPEG, PNG, WEBP, ...)"
            ) from err
        except (OSError, SyntaxError, Image.DecompressionBombError) as err:
            raise ValueError(f"cannot decode the image {name}: {err}. The file may be truncated or corrupt") from err
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError):
        pass  # a broken EXIF block is not worth rejecting the picture for
    return to_rgb(image)


# ----------------------------------------------------------------------------------------------
# Video
# ----------------------------------------------------------------------------------------------


class VideoFrames(NamedTuple):
    """Frames sampled from a video at a fixed rate.

    Attributes:
        frames: RGB frames at times 0, 1/fps, 2/fps, ... (each the latest decoded frame shown at that time).
        duration: the length in seconds of the span the frames cover (the video's duration, or
            `max_seconds` when that is shorter).
    """

    frames: list[Image.Image]
    duration: float


def _open_container(path: PathLike):
    import av

    if not Path(path).is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as err:
        raise ValueError(
            f"cannot open {path} as a video or audio file ({err}); it may be truncated or corrupt"
        ) from err


def is_video_file(path: PathLike) -> bool:
    """True when `path` is a file that Pillow cannot read as an image but PyAV finds a video stream in.

    The check reads the content, so names and extensions do not matter. Animated GIF/WEBP count as
    images.
    """
    import av

    try:
        with Image.open(path):
            return False
    except (UnidentifiedImageError, OSError):
        pass
    try:
        with av.open(str(path)) as container:
            return len(container.streams.video) > 0
    except av.error.FFmpegError:
        return False


def _stream_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        import av

        return container.duration / av.time_base
    return None


def resize_short_side(image: Image.Image, short_side: int | None) -> Image.Image:
    """Shrink `image` (bicubic) so that its shorter side has `short_side` pixels; smaller images are kept.

    Args:
        image: a Pillow image.
        short_side: the target length of the shorter side, or None to keep the size.
    """
    if short_side is None or min(image.size) <= short_side:
        return image
    width, height = image.size
    scale = short_side / min(width, height)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def load_video_frames(
    path: PathLike, fps: float = 30.0, max_seconds: float | None = None, short_side: int | None = None
) -> VideoFrames:
    """Decode a video's first stream into RGB frames sampled at `fps`, plus its duration.

    Frame k shows time k / fps: it is the last decoded frame whose presentation time is at most
    k / fps, so a 25 fps video sampled at 30 fps repeats some frames and a 60 fps one drops half.
    `int(duration * fps)` frames are returned (at least one), the count the original IM2WAV
    sampler takes for a clip of that duration.

    Args:
        path: a video file in any container/codec FFmpeg reads.
        fps: the sampling rate in frames per second (the IM2WAV models were trained at 30).
        max_seconds: stop after this many seconds (decoding a long video only for its start is wasteful).
        short_side: when set, frames larger than this are shrunk (bicubic) so their shorter side
            has this many pixels. Saves memory on HD video (CLIP only looks at 224 x 224); None keeps
            the decoded size.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a video, has no video stream, or is truncated/corrupt with no decodable frame.
    """
    import av

    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if max_seconds is not None and not (math.isfinite(max_seconds) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number or None, got {max_seconds!r}")

    container = _open_container(path)
    with container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream; pass an image, a frame list or a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = _stream_duration(container, stream)

        frames: list[Image.Image] = []
        limit = max_seconds if max_seconds is not None else math.inf
        previous: Image.Image | None = None  # the last decoded frame, converted
        last_time = 0.0
        try:
            for frame in container.decode(stream):
                time = float(frame.time) if frame.time is not None else last_time
                last_time = time
                if previous is not None:
                    # Every sample time before this frame's time shows the previous frame.
                    while len(frames) / fps < min(time, limit):
                        frames.append(previous)
                if time >= limit and previous is not None:
                    break
                previous = resize_short_side(to_rgb(frame.to_image()), short_side)
        except av.error.FFmpegError as err:
            if previous is None:
                raise ValueError(
                    f"cannot decode any frame of {path} ({err}); the file may be truncated or corrupt"
                ) from err
        if previous is None:
            raise ValueError(f"{path} has a video stream but no decodable frame; the file may be truncated or corrupt")

        if duration is None or duration <= 0:
            rate = stream.average_rate or stream.guessed_rate or Fraction(fps)
            duration = last_time + 1.0 / float(rate)
        duration = min(duration, limit)
        count = frame_count(duration, fps)
        while len(frames) < count:
            frames.append(previous)
    return VideoFrames(frames[:count], float(duration))


def frame_count(seconds: float, fps: float) -> int:
    """Frames that cover `seconds` at `fps` (at least one): the frames a video or frame sequence keeps.

    Args:
        seconds: a duration (> 0).
        fps: frame rate (> 0).
    """
    return max(1, int(seconds * fps + 1e-6))  # the epsilon keeps e.g. 4.1 s x 30 fps at 123, not 122


def load_frames(path: PathLike, fps: float = 30.0, max_seconds: float | None = None) -> list[Image.Image]:
    """Frames of an image file (one frame) or a video file (sampled at `fps`), decided by content.

    Args:
        path: an image or a video file.
        fps: sampling rate for videos.
        max_seconds: for videos, keep only the first `max_seconds` seconds.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is neither a readable image nor a video with a video stream.
    """
    import av

    if not Path(path).is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        return [load_image(path)]
    except ValueError as image_error:
        if "not an image" not in str(image_error):
            raise  # an image, but a broken one
    try:
        with av.open(str(path)) as container:
            has_video = len(container.streams.video) > 0
            has_audio = len(container.streams.audio) > 0
    except av.error.FFmpegError as err:
        raise ValueError(
            f"{path} is neither an image nor a video that can be read ({err}); it may be truncated or corrupt"
        ) from err
    if not has_video:
        kind = "an audio file" if has_audio else "a media file"
        raise ValueError(f"{path} is {kind} with no video stream; pass an image or a video")
    return load_video_frames(path, fps=fps, max_seconds=max_seconds).frames


# ----------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------


def read_audio_track(path: PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Read the first audio stream of a video or audio file as mono float32 at `sample_rate`.

    The stream is resampled by FFmpeg (PyAV's `AudioResampler`), then its channels are averaged.
    Decoder delay (AAC priming) and end padding are dropped as the container's timestamps and
    declared duration say.

    Args:
        path: any file FFmpeg reads (mp4, mkv, wav, flac, mp3, ...).
        sample_rate: the output rate in Hz.

    Returns:
        `np.ndarray [S]` float32, in -1..1 for ordinary (non-clipping) sources.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file has no audio stream or cannot be decoded.
    """
    import av

    if not (isinstance(sample_rate, int) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    container = _open_container(path)
    with container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        declared = _stream_duration(container, stream)  # excludes the encoder's end padding
        # FFmpeg's own stereo -> mono matrix sums at -3 dB each (peaks up to 1.41), so keep the
        # channels through resampling and average them here instead.
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples itself: broken timestamps are common
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())  # [C, S]
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.error.FFmpegError as err:
            raise ValueError(
                f"cannot decode the audio of {path} ({err}); the file may be truncated or corrupt"
            ) from err
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    audio = np.concatenate(chunks, axis=1).mean(axis=0).astype(np.float32)  # [C, S] -> [S]
    if declared is not None and declared > 0:
        audio = audio[: round(declared * sample_rate)]
    return audio


def _as_mono(audio) -> np.ndarray:
    if hasattr(audio, "detach"):
        audio = audio.detach().to("cpu").float().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[0] == 1:
        audio = audio[0]  # [1, S] -> [S]
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape [S] or [1, S], got shape {tuple(audio.shape)}")
    if not np.isfinite(audio).all():
        raise ValueError("the audio holds NaN or inf samples")
    return audio


def write_audio(path: PathLike, audio, sample_rate: int) -> Path:
    """Write mono audio to a WAV or FLAC file, atomically.

    WAV is written as 32-bit float (no clipping, no quantisation); FLAC as 16-bit PCM (samples
    outside -1..1 are clipped, as the format requires).

    Args:
        path: the output file; its suffix (.wav or .flac) selects the format.
        audio: `[S]` or `[1, S]` numpy array or torch tensor.
        sample_rate: in Hz.

    Returns:
        The path written.
    """
    import soundfile

    path = Path(path)
    fmt = AUDIO_EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write audio to {path.name}: use a .wav or .flac file name")
    audio = _as_mono(audio)
    subtype = "FLOAT" if fmt == "WAV" else "PCM_16"
    if fmt == "FLAC":
        audio = np.clip(audio, -1.0, 1.0)
    with atomic_output(path) as tmp:
        soundfile.write(str(tmp), audio, int(sample_rate), format=fmt, subtype=subtype)
    return path


def encode_audio_stream(output, stream, audio: np.ndarray, sample_rate: int) -> None:
    """Encode mono float audio into an open PyAV output stream (e.g. AAC) and flush it.

    Args:
        output: the PyAV output container `stream` belongs to.
        stream: a mono audio stream of `output`, added at `sample_rate`.
        audio: float [S] in [-1, 1].
        sample_rate: the stream's rate in Hz.
    """
    import av

    frame_size = 1024
    for start in range(0, len(audio), frame_size):
        chunk = np.ascontiguousarray(audio[None, start : start + frame_size], dtype=np.float32)  # (1, S)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            output.mux(packet)
    for packet in stream.encode(None):
        output.mux(packet)


def _copy_video_stream(source: Path, audio: np.ndarray, sample_rate: int, out: Path) -> None:
    import av

    with av.open(str(source)) as inp, av.open(str(out), mode="w") as output:
        in_video = inp.streams.video[0]
        out_video = output.add_stream_from_template(in_video)
        out_audio = output.add_stream("aac", rate=sample_rate, layout="mono")
        for packet in inp.demux(in_video):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.stream = out_video
            output.mux(packet)
        encode_audio_stream(output, out_audio, audio, sample_rate)


def _reencode_video_stream(source: Path, audio: np.ndarray, sample_rate: int, out: Path) -> None:
    import av

    with av.open(str(source)) as inp, av.open(str(out), mode="w") as output:
        in_video = inp.streams.video[0]
        rate = in_video.average_rate or in_video.guessed_rate or Fraction(30)
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        out_video = output.add_stream(codec, rate=rate)
        out_video.width = in_video.codec_context.width - in_video.codec_context.width % 2
        out_video.height = in_video.codec_context.height - in_video.codec_context.height % 2
        out_video.pix_fmt = "yuv420p"
        out_audio = output.add_stream("aac", rate=sample_rate, layout="mono")
        for frame in inp.decode(in_video):
            frame = frame.reformat(width=out_video.width, height=out_video.height, format="yuv420p")
            frame.pts = None
            for packet in out_video.encode(frame):
                output.mux(packet)
        for packet in out_video.encode(None):
            output.mux(packet)
        encode_audio_stream(output, out_audio, audio, sample_rate)


def mux_audio_into_video(video_path: PathLike, audio, sample_rate: int, out_path: PathLike) -> Path:
    """Write a copy of a video whose only audio stream is `audio` (AAC), atomically.

    The first video stream is copied packet for packet (no re-encoding) when the output container
    accepts its codec; otherwise it is re-encoded (H.264 when available, else MPEG-4 Part 2).
    The input's own audio streams, subtitles and other streams are dropped. The audio is not
    trimmed or padded to the video's length.

    Args:
        video_path: the input video.
        audio: `[S]` or `[1, S]` mono audio (numpy or torch), float in -1..1.
        sample_rate: the audio's rate in Hz.
        out_path: the output video; its suffix picks the container (.mp4, .mkv, .mov).

    Returns:
        The path written.
    """
    import av

    video_path, out_path = Path(video_path), Path(out_path)
    audio = _as_mono(audio)
    with _open_container(video_path) as probe:
        if not probe.streams.video:
            raise ValueError(f"cannot mux audio into {video_path}: it has no video stream")
    if len(audio) == 0:
        raise ValueError("cannot mux empty audio into a video")
    with atomic_output(out_path) as tmp:
        try:
            _copy_video_stream(video_path, audio, sample_rate, tmp)
        except (av.error.FFmpegError, ValueError):
            # The output container refused the stream as is (e.g. VP9 into .mov): re-encode.
            _reencode_video_stream(video_path, audio, sample_rate, tmp)
    return out_path

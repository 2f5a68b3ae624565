"""Media I/O: images, video frames, audio tracks, and writing generated audio (alone or muxed into video).

Everything that touches a user's files lives here, so the pipeline, the CLI, the dataset scripts and
the ComfyUI nodes read media the same way:

- `load_image(path)`: any Pillow-readable image as 8-bit RGB. The format is sniffed from the content
  (a WEBP named `.jpg` loads), EXIF orientation is applied, and alpha, palette, CMYK, 16-bit and
  float images are converted. Images over `MAX_IMAGE_PIXELS` are refused from their header, before
  any pixel is decoded (a small PNG can declare a 12000 x 12000 canvas).
- `load_video_frames(path, fps=30)`: the frames a camera sampling at `fps` would have seen, plus
  the video's duration (PyAV). Frames are decoded one at a time, shrunk as they come (`short_side`)
  and decoding stops at `max_seconds`, so memory follows the request, not the file.
- Audio (`read_audio_track`, `write_audio`, `mux_audio_into_video`, `encode_audio_stream`) lives in
  `im2wav.audio_files` and is re-exported here.
"""

from __future__ import annotations

import math
import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic_files import atomic_output  # noqa: F401  (re-exported: code that imports it from here keeps working)
from .audio_files import (
    AUDIO_EXTENSIONS,
    encode_audio_stream,
    mux_audio_into_video,
    open_container,
    read_audio_track,
    stream_duration,
    write_audio,
)

__all__ = [
    "MAX_FPS",
    "MAX_IMAGE_PIXELS",
    "VideoFrames",
    "check_fps",
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

# 120 megapixels: above the largest phone photos (108 MP), below what a decompression bomb declares.
# An RGB image this size is 360 MB; Pillow's own limit only warns up to 179 MP.
MAX_IMAGE_PIXELS = 120_000_000

# Frame rates above this sample no real video more finely (they only repeat frames) and multiply the
# CLIP work: 120 s at 120 fps is already 14400 frames.
MAX_FPS = 120.0


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
        values = np.asarray(image, dtype=np.float32)  # exact for 16-bit values, half the memory of float64
        scale = 257.0 if values.max(initial=0) > 255 else 1.0
        grey = np.clip(np.rint(values / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)  # the image's own 32-bit floats: no float64 copy
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


def _open_image(source: PathLike | BinaryIO) -> Image.Image:
    """`Image.open` (header only) without Pillow's decompression-bomb warning: our own limit is lower."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(source)


def _check_pixel_count(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{name} is {width} x {height} pixels ({width * height / 1e6:.0f} MP), over the "
            f"{MAX_IMAGE_PIXELS // 1_000_000} MP limit (a decompression bomb, or a needlessly large picture: "
            "CLIP sees 224 x 224); shrink it first"
        )


def load_image(source: PathLike | BinaryIO | Image.Image, short_side: int | None = None) -> Image.Image:
    """Read an image as an upright 8-bit RGB Pillow image.

    The format comes from the file's content, not its name. The EXIF orientation tag is applied.
    An animated image (GIF, WEBP, APNG) gives its first frame. The pixel count is checked from the
    header before decoding.

    Args:
        source: a path, a binary file object, or an already opened Pillow image.
        short_side: when set, a larger image is shrunk (bicubic) so that its shorter side has this
            many pixels (see `resize_short_side`); None keeps the decoded size.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not an image Pillow can read, is over `MAX_IMAGE_PIXELS`, or is
            truncated or corrupt.
    """
    name = getattr(source, "filename", None) or getattr(source, "name", None) or str(source)
    if isinstance(source, Image.Image):
        image = source
        _check_pixel_count(image, "the image")
    else:
        if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
            raise FileNotFoundError(f"image not found: {source}")
        try:
            image = _open_image(source)
            _check_pixel_count(image, str(name))
            image.load()  # decode now: a truncated file fails here, not later inside CLIP
        except Image.DecompressionBombError as err:
            raise ValueError(
                f"{name} declares an image over the {MAX_IMAGE_PIXELS // 1_000_000} MP limit, too large to decode "
                f"({err}); shrink it first"
            ) from err
        except UnidentifiedImageError as err:
            raise ValueError(
                f"{name} is not an image Pillow can read (check the file is a JPEG, PNG, WEBP, ...)"
            ) from err
        except (OSError, SyntaxError) as err:
            raise ValueError(f"cannot decode the image {name}: {err}. The file may be truncated or corrupt") from err
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError):
        pass  # a broken EXIF block is not worth rejecting the picture for
    return resize_short_side(to_rgb(image), short_side)


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


def is_video_file(path: PathLike) -> bool:
    """True when `path` is a file that Pillow cannot read as an image but PyAV finds a video stream in.

    The check reads the content, so names and extensions do not matter. Animated GIF/WEBP count as
    images.
    """
    import av

    try:
        with _open_image(path):
            return False
    except Image.DecompressionBombError:
        return False  # an image, refused with its own message by `load_image`
    except (UnidentifiedImageError, OSError):
        pass
    try:
        with av.open(str(path)) as container:
            return len(container.streams.video) > 0
    except av.error.FFmpegError:
        return False


def resize_short_side(image: Image.Image, short_side: int | None) -> Image.Image:
    """Shrink `image` (bicubic) so that its shorter side has `short_side` pixels; smaller images are kept.

    The longer side becomes `int(short_side * long / short)`, the size transformers' CLIP processor
    resizes to, so shrinking first and letting the processor resize again gives the very same
    pixels as letting the processor resize the full image.

    Args:
        image: a Pillow image.
        short_side: the target length of the shorter side, or None to keep the size.
    """
    if short_side is None or min(image.size) <= short_side:
        return image
    width, height = image.size
    if width <= height:
        size = (short_side, int(short_side * height / width))
    else:
        size = (int(short_side * width / height), short_side)
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

    check_fps(fps)
    if max_seconds is not None and not (math.isfinite(max_seconds) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number or None, got {max_seconds!r}")

    container = open_container(path)
    with container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream; pass an image, a frame list or a video file")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > MAX_IMAGE_PIXELS:
            raise ValueError(f"{path} has {width} x {height} frames, over the {MAX_IMAGE_PIXELS // 1_000_000} MP "
                             "limit; scale the video down first")
        stream.thread_type = "AUTO"
        duration = stream_duration(container, stream)

        frames: list[Image.Image] = []
        limit = max_seconds if max_seconds is not None else math.inf
        # The last decoded frame, raw, and its shrunk RGB image once a sample time needs it: frames
        # no sample time shows (a 60 fps video sampled at 30) are never converted.
        previous_raw = None
        previous: Image.Image | None = None
        last_time = 0.0
        try:
            for frame in container.decode(stream):
                time = float(frame.time) if frame.time is not None else last_time
                last_time = time
                # Every sample time before this frame's time shows the previous frame.
                while previous_raw is not None and len(frames) / fps < min(time, limit):
                    if previous is None:
                        previous = resize_short_side(to_rgb(previous_raw.to_image()), short_side)
                    frames.append(previous)
                if time >= limit and previous_raw is not None:
                    break
                previous_raw, previous = frame, None
        except av.error.FFmpegError as err:
            if previous_raw is None:
                raise ValueError(
                    f"cannot decode any frame of {path} ({err}); the file may be truncated or corrupt"
                ) from err
        if previous_raw is None:
            raise ValueError(f"{path} has a video stream but no decodable frame; the file may be truncated or corrupt")
        if previous is None:
            previous = resize_short_side(to_rgb(previous_raw.to_image()), short_side)
        del previous_raw

        if duration is None or duration <= 0:
            rate = stream.average_rate or stream.guessed_rate or Fraction(fps)
            duration = last_time + 1.0 / float(rate)
        duration = min(duration, limit)
        count = frame_count(duration, fps)
        while len(frames) < count:
            frames.append(previous)
    return VideoFrames(frames[:count], float(duration))


def check_fps(fps: float) -> None:
    """Raise a `ValueError` unless `0 < fps <= MAX_FPS`.

    Args:
        fps: a frame rate in frames per second.
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    if fps > MAX_FPS:
        raise ValueError(
            f"fps={fps:g} is above the {MAX_FPS:g} frames per second limit (IM2WAV was trained at 30; higher "
            "rates only repeat frames and multiply the work); use 30"
        )


def frame_count(seconds: float, fps: float) -> int:
    """Frames that cover `seconds` at `fps` (at least one): the frames a video or frame sequence keeps.

    Args:
        seconds: a duration (> 0).
        fps: frame rate (> 0).
    """
    return max(1, int(seconds * fps + 1e-6))  # the epsilon keeps e.g. 4.1 s x 30 fps at 123, not 122


def load_frames(
    path: PathLike, fps: float = 30.0, max_seconds: float | None = None, short_side: int | None = None
) -> list[Image.Image]:
    """Frames of an image file (one frame) or a video file (sampled at `fps`), decided by content.

    Args:
        path: an image or a video file.
        fps: sampling rate for videos.
        max_seconds: for videos, keep only the first `max_seconds` seconds.
        short_side: shrink larger frames so their shorter side has this many pixels (None: keep).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is neither a readable image nor a video with a video stream.
    """
    import av

    if not Path(path).is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        return [load_image(path, short_side=short_side)]
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
    return load_video_frames(path, fps=fps, max_seconds=max_seconds, short_side=short_side).frames



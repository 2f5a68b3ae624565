"""Audio files: reading audio tracks, writing generated audio, and muxing it into a copy of a video.

- `read_audio_track(path, sample_rate=16000, max_seconds=None)`: the first audio stream as mono
  float32; with `max_seconds` only that much is decoded, so memory is set by the request, not by
  the file's length.
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

import numpy as np

from .atomic_files import atomic_output
from .output_paths import same_path

__all__ = [
    "AUDIO_EXTENSIONS",
    "encode_audio_stream",
    "mux_frames",
    "muxed_video_suffix",
    "mux_audio_into_video",
    "open_container",
    "read_audio_track",
    "samples_before_zero",
    "stream_duration",
    "write_audio",
]

PathLike = str | os.PathLike

AUDIO_EXTENSIONS = {".wav": "WAV", ".flac": "FLAC"}


def open_container(path: PathLike):
    """Open a media file with PyAV; a clear `ValueError` when FFmpeg cannot read it."""
    import av

    if not Path(path).is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as err:
        raise ValueError(
            f"cannot open {path} as a video or audio file ({err}); it may be truncated or corrupt"
        ) from err


def stream_duration(container, stream) -> float | None:
    """A stream's duration in seconds (the container's when the stream has none), or None."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        import av

        return container.duration / av.time_base
    return None


def samples_before_zero(frame, stream) -> int:
    """How many of a decoded audio frame's first samples lie before time 0 (0 without a timestamp).

    An AAC track starts with the encoder's priming (1024 samples). MP4 edit lists hide it; Matroska
    stamps it before time 0, where the FFmpeg of PyAV < 18 still decodes it (later ones drop it),
    so its timestamps are what tell it apart from the sound.
    """
    if frame.pts is None or frame.pts >= 0:
        return 0
    time_base = frame.time_base or stream.time_base
    return min(frame.samples, round(-frame.pts * time_base * frame.sample_rate))


def read_audio_track(path: PathLike, sample_rate: int = 16000, max_seconds: float | None = None) -> np.ndarray:
    """Read the first audio stream of a video or audio file as mono float32 at `sample_rate`.

    The stream is resampled by FFmpeg (PyAV's `AudioResampler`), then its channels are averaged.
    Decoder delay (AAC priming) and end padding are dropped as the container's timestamps and
    declared duration say.

    Args:
        path: any file FFmpeg reads (mp4, mkv, wav, flac, mp3, ...).
        sample_rate: the output rate in Hz.
        max_seconds: decode only the first `max_seconds` seconds (None: the whole track). Decoding
            stops there, so a two-hour track costs no more than its first seconds.

    Returns:
        `np.ndarray [S]` float32, in -1..1 for ordinary (non-clipping) sources.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file has no audio stream or cannot be decoded.
    """
    import av

    if not (isinstance(sample_rate, int) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    if max_seconds is not None and not (math.isfinite(max_seconds) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number or None, got {max_seconds!r}")
    limit = round(max_seconds * sample_rate) if max_seconds is not None else None
    container = open_container(path)
    with container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        declared = stream_duration(container, stream)  # excludes the encoder's end padding
        # FFmpeg's own stereo -> mono matrix sums at -3 dB each (peaks up to 1.41), so keep the
        # channels through resampling and average them here instead.
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        chunks: list[np.ndarray] = []
        decoded = lead = 0  # lead: output samples before time 0, dropped below
        try:
            for frame in container.decode(stream):
                lead += round(samples_before_zero(frame, stream) * sample_rate / frame.sample_rate)
                frame.pts = None  # let the resampler count samples itself: broken timestamps are common
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())  # [C, S]
                    decoded += chunks[-1].shape[1]
                if limit is not None and decoded - lead >= limit:
                    break
            else:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray())
        except av.error.FFmpegError as err:
            raise ValueError(
                f"cannot decode the audio of {path} ({err}); the file may be truncated or corrupt"
            ) from err
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    audio = np.concatenate(chunks, axis=1)[:, lead:].mean(axis=0).astype(np.float32)  # [C, S] -> [S]
    if declared is not None and declared > 0:
        audio = audio[: round(declared * sample_rate)]
    return audio[:limit] if limit is not None else audio


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


def write_audio(path: PathLike, audio, sample_rate: int, overwrite: bool = True) -> Path:
    """Write mono audio to a WAV or FLAC file, atomically.

    WAV is written as 32-bit float (no clipping, no quantisation); FLAC as 16-bit PCM (samples
    outside -1..1 are clipped, as the format requires).

    Args:
        path: the output file; its suffix (.wav or .flac) selects the format.
        audio: `[S]` or `[1, S]` numpy array or torch tensor.
        sample_rate: in Hz.
        overwrite: replace an existing file; when False an existing file (even one that appears
            while writing) is a `FileExistsError` and is left as it is.

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
    if len(audio) == 0:
        raise ValueError(f"refusing to write {path.name}: the audio is empty (0 samples)")
    with atomic_output(path, overwrite=overwrite) as tmp:
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

    def frames():
        frame_size = 1024
        for start in range(0, len(audio), frame_size):
            chunk = np.ascontiguousarray(audio[None, start : start + frame_size], dtype=np.float32)  # (1, S)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            yield frame

    mux_frames(output, stream, frames(), sample_rate, step=1024)


def mux_frames(output, stream, frames, rate: float, step: int = 1) -> None:
    """Encode PyAV frames into `stream` of `output`, frame k at time `k * step / rate`, then flush.

    Args:
        output: the open PyAV output container.
        stream: its video or audio stream.
        frames: an iterable of `av.VideoFrame` or `av.AudioFrame`.
        rate: the time base's rate (frames per second; samples per second for audio).
        step: time-base units per frame (1 for video; samples per frame for audio).
    """
    time_base = 1 / Fraction(rate).limit_denominator(1001)  # 29.97 fps -> 100/2997 s, not 1/29
    for k, frame in enumerate(frames):
        frame.pts = k * step
        frame.time_base = time_base
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


MUX_SUFFIXES = (".mp4", ".mkv", ".mov")


def muxed_video_suffix(source: PathLike) -> str:
    """The container of a copy of video `source` with new sound: its own if `mux_audio_into_video`
    writes it (.mp4, .mkv, .mov), else .mp4."""
    suffix = Path(source).suffix.lower()
    return suffix if suffix in MUX_SUFFIXES else ".mp4"


def mux_audio_into_video(
    video_path: PathLike, audio, sample_rate: int, out_path: PathLike, overwrite: bool = True
) -> Path:
    """Write a copy of a video whose only audio stream is `audio` (AAC), atomically.

    The first video stream is copied packet for packet (no re-encoding) when the output container
    accepts its codec; otherwise it is re-encoded (H.264 when available, else MPEG-4 Part 2).
    The input's own audio streams, subtitles and other streams are dropped. The audio is not
    trimmed or padded to the video's length.

    Args:
        video_path: the input video.
        audio: `[S]` or `[1, S]` mono audio (numpy or torch), float in -1..1.
        sample_rate: the audio's rate in Hz.
        out_path: the output video; its suffix picks the container (.mp4, .mkv, .mov). It may never
            be `video_path` itself.
        overwrite: replace an existing `out_path`; when False an existing file (even one that
            appears while writing) is a `FileExistsError` and is left as it is.

    Returns:
        The path written.
    """
    import av

    video_path, out_path = Path(video_path), Path(out_path)
    if same_path(out_path, video_path):
        raise ValueError(f"refusing to mux into {out_path}: it is the input video itself; choose another output name")
    audio = _as_mono(audio)
    with open_container(video_path) as probe:
        if not probe.streams.video:
            raise ValueError(f"cannot mux audio into {video_path}: it has no video stream")
    if len(audio) == 0:
        raise ValueError("cannot mux empty audio into a video")
    with atomic_output(out_path, overwrite=overwrite) as tmp:
        try:
            _copy_video_stream(video_path, audio, sample_rate, tmp)
        except (av.error.FFmpegError, ValueError):
            # The output container refused the stream as is (e.g. VP9 into .mov): re-encode.
            _reencode_video_stream(video_path, audio, sample_rate, tmp)
    return out_path

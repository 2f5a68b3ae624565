"""Synthetic audio-visual worlds: K visual classes paired with K different sound families.

Each class is a coloured shape moving over a background, and its soundtrack is a sound family of its
own (a low tone, a noise band, a chirp, a pulse train, ...). Two worlds:

- `shapes` (`class_specs`): class k has the k-th background colour, shape and sound; colour alone
  tells the classes apart.
- `patterns` (`pattern_world_specs`): six classes in three colour pairs. Within a pair the shape
  and colours are the same and only the background pattern differs (plain, stripes, checker,
  dots); across pairs shape and colour differ too. The six sounds include noise-like and
  time-varying families whose spectra overlap (a sweep through 0.8-2.4 kHz, steady noise in
  1.5-2.2 kHz, 1.2 kHz bursts) and differ in time structure.
 Clips are
written as real video files with an audio track (PyAV, h264 or mpeg4 video + AAC audio), so the
real preparation path (`im2wav.data.preparation`) runs on them. Everything is deterministic from a
seed: clip `i` of class `c` draws from `numpy.random.default_rng([seed, c, i])`.

The world exists to prove that the training scripts learn: a model trained on it must produce, from
a held-out image of class `c`, audio that an independent classifier assigns to class `c`.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SOUND_KINDS",
    "SyntheticClass",
    "SyntheticDataset",
    "WORLDS",
    "class_specs",
    "make_synthetic_dataset",
    "PATTERNS",
    "pattern_world_specs",
    "render_frames",
    "synthesize_sound",
    "world_specs",
    "write_video",
]

# Sound families ordered so that the first few are the most different from each other (spectrally
# far apart): a world with K classes uses the first K. The tones (low_tone 250 Hz, fifth 500 + 750 Hz,
# high_tone 2.5 kHz) repeat every 64 or 32 samples, the hops of the VQ-VAE's top level, so their
# tokens are the easiest to model: the quickest world to learn.
SOUND_KINDS = ("low_tone", "noise_band", "chirp", "pulse_train", "warble", "hum", "mid_noise", "fifth", "high_tone")

WORLDS = ("shapes", "patterns")
PATTERNS = ("plain", "stripes", "checker", "dots")

_SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "bar", "dot", "frame")

# Background / shape colours, far apart in RGB so that even a random image encoder separates them.
_BACKGROUNDS = (
    (200, 30, 30), (30, 160, 40), (30, 60, 210), (230, 200, 20),
    (150, 30, 170), (20, 190, 190), (240, 130, 20), (90, 90, 90), (250, 250, 250),
)
_SHAPE_COLOURS = (
    (250, 250, 250), (10, 10, 10), (250, 220, 0), (200, 0, 200),
    (0, 250, 120), (120, 0, 0), (0, 0, 90), (255, 255, 255), (0, 0, 0),
)


@dataclass(frozen=True)
class SyntheticClass:
    """One class of the synthetic world.

    Args:
        name: class name, also the label written to the CSV and the manifest.
        background: RGB background colour.
        shape: the moving shape (`circle`, `square`, ...).
        shape_colour: RGB colour of the shape.
        sound: the sound family (one of `SOUND_KINDS`).
        pattern: the background's pattern (one of `PATTERNS`): `plain`, or the background colour
            alternating with a darker shade of it in stripes, a checkerboard or dots.
        floor_db: the soundtrack's noise floor below the sound's RMS (see `synthesize_sound`);
            None: clean.
    """

    name: str
    background: tuple[int, int, int]
    shape: str
    shape_colour: tuple[int, int, int]
    sound: str
    pattern: str = "plain"
    floor_db: float | None = None


@dataclass
class SyntheticDataset:
    """What `make_synthetic_dataset` wrote.

    Args:
        root: the output folder.
        classes: the class specs, index = class id.
        videos: training clips (`videos/<class>_<i>.mp4`), with their class ids in `video_labels`.
        heldout_images: still PNG frames of clips never written as training videos.
        heldout_labels: class id of each held-out image.
        csv_path: a VGGSound-style CSV (`youtube_id,start_seconds,label,split`) of the videos.
    """

    root: Path
    classes: list[SyntheticClass]
    videos: list[Path]
    video_labels: list[int]
    heldout_images: list[Path]
    heldout_labels: list[int]
    csv_path: Path


def class_specs(num_classes: int, sounds: tuple[str, ...] | list[str] | None = None) -> list[SyntheticClass]:
    """The classes of a world: class `k` has the k-th picture style and the k-th sound.

    Args:
        num_classes: K (at most `len(SOUND_KINDS)`).
        sounds: the sound family of each class (default: the first K of `SOUND_KINDS`).
    """
    if not 1 <= num_classes <= len(SOUND_KINDS):
        raise ValueError(f"num_classes must be between 1 and {len(SOUND_KINDS)}, got {num_classes}")
    sounds = list(sounds) if sounds is not None else list(SOUND_KINDS[:num_classes])
    if len(sounds) != num_classes or len(set(sounds)) != num_classes or not set(sounds) <= set(SOUND_KINDS):
        raise ValueError(f"sounds must name {num_classes} different kinds of {SOUND_KINDS}, got {sounds}")
    return [
        SyntheticClass(
            name=f"{sounds[k]}_{_SHAPES[k]}",
            background=_BACKGROUNDS[k],
            shape=_SHAPES[k],
            shape_colour=_SHAPE_COLOURS[k],
            sound=sounds[k],
        )
        for k in range(num_classes)
    ]


# The `patterns` world's soundtracks sit on a faint white noise floor, as recordings do: what tells
# its sounds apart is then the audible shape of their spectra and envelopes, not bands 80 dB down.
PATTERN_WORLD_FLOOR_DB = -30.0
# The `patterns` world: (pattern, background, shape, shape colour, sound); rows 2k and 2k + 1 share
# colours and shape and differ in pattern only.
_PATTERN_WORLD = (
    ("plain", (200, 40, 40), "circle", (250, 250, 250), "low_tone"),
    ("stripes", (200, 40, 40), "circle", (250, 250, 250), "chirp"),
    ("checker", (40, 70, 210), "square", (250, 220, 0), "mid_noise"),
    ("dots", (40, 70, 210), "square", (250, 220, 0), "pulse_train"),
    ("stripes", (30, 160, 60), "triangle", (20, 20, 20), "warble"),
    ("checker", (30, 160, 60), "ring", (20, 20, 20), "noise_band"),
)


def pattern_world_specs(floor_db: float | None = PATTERN_WORLD_FLOOR_DB) -> list[SyntheticClass]:
    """The six classes of the `patterns` world (see the module docstring).

    Args:
        floor_db: the soundtracks' noise floor below the sound's RMS (see `synthesize_sound`).
    """
    return [SyntheticClass(name=f"{sound}_{pattern}_{shape}", background=bg, shape=shape, shape_colour=fg,
                           sound=sound, pattern=pattern, floor_db=floor_db)
            for pattern, bg, shape, fg, sound in _PATTERN_WORLD]


def world_specs(world: str, num_classes: int | None = None,
                sounds: tuple[str, ...] | list[str] | None = None) -> list[SyntheticClass]:
    """The classes of a named world (`WORLDS`).

    Args:
        world: `shapes` or `patterns`.
        num_classes: K for `shapes` (default 3); `patterns` has exactly 6 classes.
        sounds: the sound of each class, `shapes` only.
    """
    if world == "shapes":
        return class_specs(3 if num_classes is None else num_classes, sounds)
    if world == "patterns":
        if sounds is not None or num_classes not in (None, len(_PATTERN_WORLD)):
            raise ValueError(f"the patterns world has exactly {len(_PATTERN_WORLD)} classes with fixed sounds; "
                             "drop --num-classes/--sounds or use --world shapes")
        return pattern_world_specs()
    raise ValueError(f"unknown world {world!r}; choose one of {WORLDS}")


# --------------------------------------------------------------------------------------------
# Pictures


def _pattern_mask(pattern: str, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """Pixels of the darker shade in a background pattern (period: an eighth of the frame)."""
    period = max(size // 8, 2)
    half = period // 2
    if pattern == "plain":
        return np.zeros(yy.shape, dtype=bool)
    if pattern == "stripes":  # diagonal stripes
        return ((yy + xx) % period) < half
    if pattern == "checker":
        return ((yy // half + xx // half) % 2) == 1
    if pattern == "dots":
        dy, dx = yy % period - half + 0.5, xx % period - half + 0.5
        return dy**2 + dx**2 <= (0.3 * period) ** 2
    raise ValueError(f"unknown pattern {pattern!r}; expected one of {PATTERNS}")


def _shape_mask(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy**2 + dx**2 <= r**2
    if shape == "square":
        return (np.abs(dy) <= r) & (np.abs(dx) <= r)
    if shape == "triangle":
        return (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)
    if shape == "cross":
        return ((np.abs(dy) <= r / 3) & (np.abs(dx) <= r)) | ((np.abs(dx) <= r / 3) & (np.abs(dy) <= r))
    if shape == "ring":
        d2 = dy**2 + dx**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if shape == "diamond":
        return np.abs(dy) + np.abs(dx) <= r
    if shape == "bar":
        return (np.abs(dy) <= r / 4) & (np.abs(dx) <= 1.2 * r)
    if shape == "dot":
        return dy**2 + dx**2 <= (0.5 * r) ** 2
    if shape == "frame":
        inside = (np.abs(dy) <= r) & (np.abs(dx) <= r)
        return inside & ~((np.abs(dy) <= 0.6 * r) & (np.abs(dx) <= 0.6 * r))
    raise ValueError(f"unknown shape {shape!r}; expected one of {_SHAPES}")


def render_frames(spec: SyntheticClass, num_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Frames of one clip: the class's shape bouncing over its background.

    Args:
        spec: the class.
        num_frames: number of frames F.
        size: frame height and width in pixels (even, for yuv420p video).
        rng: the clip's random generator (start position, velocity, shape size, brightness jitter).

    Returns:
        uint8 array [F, size, size, 3].
    """
    radius = size * rng.uniform(0.14, 0.2)
    pos = rng.uniform(radius, size - radius, size=2)
    vel = rng.uniform(0.8, 2.0, size=2) * rng.choice([-1.0, 1.0], size=2) * size / 64
    jitter = rng.uniform(-12, 12, size=3)
    background = np.clip(np.array(spec.background, dtype=np.float64) + jitter, 0, 255)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    canvas = np.empty((size, size, 3), dtype=np.uint8)  # the background with its pattern
    canvas[:] = background.astype(np.uint8)
    canvas[_pattern_mask(spec.pattern, yy, xx, size)] = (0.45 * background).astype(np.uint8)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for f in range(num_frames):
        frame = frames[f]
        frame[:] = canvas
        frame[_shape_mask(spec.shape, yy, xx, pos[0], pos[1], radius)] = spec.shape_colour
        pos = pos + vel
        for axis in range(2):  # bounce off the borders
            if not radius <= pos[axis] <= size - radius:
                vel[axis] = -vel[axis]
                pos[axis] = np.clip(pos[axis], radius, size - radius)
    return frames


# --------------------------------------------------------------------------------------------
# Sounds


def _bandpass_noise(num_samples: int, sample_rate: int, low_hz: float, high_hz: float,
                    rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    return np.fft.irfft(spectrum, n=num_samples)


def synthesize_sound(kind: str, num_samples: int, sample_rate: int, rng: np.random.Generator,
                     floor_db: float | None = None) -> np.ndarray:
    """One clip of a sound family, with small per-clip jitter (pitch, phase, rate).

    Args:
        kind: one of `SOUND_KINDS`.
        num_samples: length S.
        sample_rate: in Hz.
        rng: the clip's random generator.
        floor_db: when set, white background noise this many dB below the sound's RMS is added (a
            recording's noise floor); None leaves the sound clean (bands outside it ~80 dB down).

    Returns:
        float32 array [S], peak 0.5.
    """
    t = np.arange(num_samples) / sample_rate
    detune = rng.uniform(0.97, 1.03)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "low_tone":  # 250 Hz with two soft harmonics
        f0 = 250 * detune
        x = sum(a * np.sin(2 * np.pi * k * f0 * t + phase) for k, a in ((1, 1.0), (2, 0.3), (3, 0.1)))
    elif kind == "noise_band":  # hiss between 4 and 6 kHz
        x = _bandpass_noise(num_samples, sample_rate, 4000 * detune, 6000 * detune, rng)
    elif kind == "chirp":  # 800 -> 2400 Hz sweeps, 8 per second
        period = 0.125 / detune
        frac = (t % period) / period
        # instantaneous frequency 800 * 3**frac: integrate it for the phase
        inst_phase = 2 * np.pi * 800 * period * (3**frac - 1) / np.log(3)
        x = np.sin(inst_phase + phase)
    elif kind == "pulse_train":  # decaying 1.2 kHz bursts, 20 per second
        period = 0.05 / detune
        local = (t + rng.uniform(0, period)) % period
        x = np.sin(2 * np.pi * 1200 * local) * np.exp(-local / 0.006)
    elif kind == "warble":  # 3 kHz tone, vibrato +-300 Hz at 12 Hz
        fm = 12 * detune
        x = np.sin(2 * np.pi * 3000 * t + (300 / fm) * np.sin(2 * np.pi * fm * t) + phase)
    elif kind == "hum":  # 110 Hz square-ish buzz
        x = np.tanh(4 * np.sin(2 * np.pi * 110 * detune * t + phase))
    elif kind == "mid_noise":  # noise between 1.5 and 2.2 kHz
        x = _bandpass_noise(num_samples, sample_rate, 1500 * detune, 2200 * detune, rng)
    elif kind == "fifth":  # 500 + 750 Hz chord
        x = np.sin(2 * np.pi * 500 * detune * t + phase) + np.sin(2 * np.pi * 750 * detune * t)
    elif kind == "high_tone":  # 2.5 kHz with a soft octave
        x = np.sin(2 * np.pi * 2500 * detune * t + phase) + 0.2 * np.sin(2 * np.pi * 5000 * detune * t)
    else:
        raise ValueError(f"unknown sound kind {kind!r}; expected one of {SOUND_KINDS}")
    x = np.asarray(x, dtype=np.float64)
    if floor_db is not None:
        x = x + rng.standard_normal(num_samples) * np.sqrt(np.mean(x**2)) * 10 ** (floor_db / 20)
    return (0.5 * x / max(np.abs(x).max(), 1e-8)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Files


def write_video(path: str | os.PathLike, frames: np.ndarray, audio: np.ndarray, *, fps: int = 30,
                sample_rate: int = 16000, video_codec: str = "h264") -> None:
    """Write frames and a mono soundtrack as a video file with PyAV (video + AAC audio).

    Args:
        path: output path (`.mp4`, `.mkv`, ...).
        frames: uint8 [F, H, W, 3], H and W even.
        audio: float32 [S] in [-1, 1].
        fps: frame rate.
        sample_rate: audio sample rate in Hz.
        video_codec: `h264` or `mpeg4`.
    """
    import av

    from ..media import encode_audio_stream

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}")
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream(video_codec, rate=fps)
        vstream.width, vstream.height = frames.shape[2], frames.shape[1]
        vstream.pix_fmt = "yuv420p"
        if video_codec in ("h264", "libx264"):
            vstream.options = {"crf": "18", "preset": "veryfast"}
        else:
            vstream.bit_rate = 2_000_000
        astream = container.add_stream("aac", rate=sample_rate)
        astream.layout = "mono"
        for frame in frames:
            for packet in vstream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        encode_audio_stream(container, astream, audio, sample_rate)


def make_synthetic_dataset(
    out_dir: str | os.PathLike,
    *,
    num_classes: int | None = None,
    clips_per_class: int = 8,
    heldout_per_class: int = 2,
    duration_s: float = 2.0,
    fps: int = 30,
    sample_rate: int = 16000,
    size: int = 64,
    seed: int = 0,
    video_codec: str = "h264",
    sounds: tuple[str, ...] | list[str] | None = None,
    mismatched_per_class: int = 0,
    world: str = "shapes",
) -> SyntheticDataset:
    """Write the synthetic world: training videos, held-out still images, a class file and a CSV.

    Layout: `videos/<class>_<i>.mp4`, `heldout/<class>_<j>.png` (+ the matching `.wav` for reference),
    `classes.json`, and `vggsound.csv` (`youtube_id,start_seconds,label,split`, all rows `train`).

    Args:
        out_dir: output folder (created).
        num_classes: K (`shapes` world, default 3; the `patterns` world has 6).
        clips_per_class: training videos per class.
        heldout_per_class: held-out images per class (clip indices after the training ones).
        duration_s: clip length in seconds.
        fps: video frame rate.
        sample_rate: audio sample rate in Hz.
        size: frame height and width (even).
        seed: world seed.
        video_codec: `h264` or `mpeg4`.
        sounds: the sound family of each class (default: the first K of `SOUND_KINDS`).
        mismatched_per_class: the first this many training clips of class `c` carry the sound of
            class `(c + 1) % K` instead (label noise, as in real videos whose soundtrack is not
            what is seen). The image -> sound mapping then has a second mode that classifier-free
            guidance is expected to suppress. Held-out files always match.
        world: `shapes` (colour tells the classes apart) or `patterns` (see the module docstring).

    Returns:
        A `SyntheticDataset` listing what was written.
    """
    import soundfile as sf
    from PIL import Image

    if size % 2:
        raise ValueError(f"size must be even (yuv420p video), got {size}")
    if clips_per_class < 1 or heldout_per_class < 0:
        raise ValueError("clips_per_class must be >= 1 and heldout_per_class >= 0")
    if not 0 <= mismatched_per_class < clips_per_class:
        raise ValueError(f"mismatched_per_class must be in [0, clips_per_class), got {mismatched_per_class}")
    root = Path(out_dir)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "heldout").mkdir(parents=True, exist_ok=True)
    specs = world_specs(world, num_classes, sounds)
    num_frames = round(duration_s * fps)
    num_samples = round(duration_s * sample_rate)
    videos, video_labels, images, image_labels, rows = [], [], [], [], []
    for c, spec in enumerate(specs):
        for i in range(clips_per_class + heldout_per_class):
            rng = np.random.default_rng([seed, c, i])
            frames = render_frames(spec, num_frames, size, rng)
            heard = specs[(c + 1) % len(specs)] if i < mismatched_per_class else spec
            audio = synthesize_sound(heard.sound, num_samples, sample_rate, rng, heard.floor_db)
            stem = f"{spec.name}_{i:03d}"
            if i < clips_per_class:
                path = root / "videos" / f"{stem}.mp4"
                write_video(path, frames, audio, fps=fps, sample_rate=sample_rate, video_codec=video_codec)
                videos.append(path)
                video_labels.append(c)
                rows.append((stem, 0, spec.name, "train"))
            else:
                path = root / "heldout" / f"{stem}.png"
                Image.fromarray(frames[num_frames // 2]).save(path)
                sf.write(root / "heldout" / f"{stem}.wav", audio, sample_rate)
                images.append(path)
                image_labels.append(c)
    csv_path = root / "vggsound.csv"
    with open(csv_path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    meta = {
        "classes": [asdict(s) for s in specs], "seed": seed, "clips_per_class": clips_per_class,
        "heldout_per_class": heldout_per_class, "duration_s": duration_s, "fps": fps,
        "sample_rate": sample_rate, "size": size, "video_codec": video_codec, "sounds": [c.sound for c in specs],
        "mismatched_per_class": mismatched_per_class, "world": world,
    }
    (root / "classes.json").write_text(json.dumps(meta, indent=2))
    return SyntheticDataset(root, specs, videos, video_labels, images, image_labels, csv_path)

"""Finding the inputs of a dataset preparation and decoding them (the worker side; no torch import).

Inputs, found recursively under the input folder:

- videos with an audio track: `.mp4 .mkv .webm .avi .mov`;
- an image and a sound sharing a folder and a stem (`dog.jpg` + `dog.wav`): the picture is the
  condition of the whole sound (one frame);
- with a VGGSound-style CSV (`youtube_id,start_seconds,label,split`): the rows pick the files, whose
  stem is `<id>_<start ms>_<end ms>` (the authors' naming), `<id>_<start, 6 digits>`, `<id>_<start>`
  or `<id>`; the label and split go to the manifest.

This module stays free of torch so that decoding worker processes start fast.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "SourceItem",
    "decode_source",
    "find_sources",
]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus")

# CLIP only looks at 224 x 224 crops: frames are shrunk in the workers so HD video does not travel
# between processes (or sit in memory) at full size.
FRAME_SHORT_SIDE = 224


@dataclass(frozen=True)
class SourceItem:
    """One input: a video, or an image + audio pair.

    Args:
        id: the manifest id (path relative to the input folder, without extension).
        video: video file (audio and frames), or None.
        image: still image (with `audio`), or None.
        audio: sound file paired with `image`, or None.
        label: class label (from a CSV), or None.
        split: split name (from a CSV), or None.
    """

    id: str
    video: str | None = None
    image: str | None = None
    audio: str | None = None
    label: str | None = None
    split: str | None = None


# --------------------------------------------------------------------------------------------
# Discovery


def _item_id(path: Path, root: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def _csv_rows(csv_path: Path) -> list[tuple[str, float, str | None, str | None]]:
    rows = []
    with open(csv_path, newline="") as handle:
        for n, row in enumerate(csv.reader(handle)):
            if not row or not row[0].strip():
                continue
            try:
                start = float(row[1])
            except (IndexError, ValueError):
                if n == 0:
                    continue  # a header line
                raise ValueError(f"{csv_path} line {n + 1}: expected `youtube_id,start_seconds,label,split`, got {row}")
            label = row[2].strip() if len(row) > 2 else None
            split = row[3].strip() if len(row) > 3 else None
            rows.append((row[0].strip(), start, label or None, split or None))
    return rows


def find_sources(root: str | os.PathLike, csv_path: str | os.PathLike | None = None) -> tuple[list[SourceItem], list[dict]]:
    """Find the inputs under `root`.

    Args:
        root: the input folder (searched recursively).
        csv_path: optional VGGSound-style CSV selecting and labelling the files.

    Returns:
        `(items, skipped)`: the inputs, sorted by id, and `{"id", "source", "reason"}` for files that
        cannot be used as found (an image without a sound, a CSV row without a file).

    Raises:
        FileNotFoundError: `root` (or `csv_path`) does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"input folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    by_stem: dict[Path, dict[str, Path]] = {}
    for path in files:
        by_stem.setdefault(path.with_suffix(""), {})[path.suffix.lower()] = path
    items: dict[str, SourceItem] = {}
    skipped: list[dict] = []
    for stem, group in by_stem.items():
        video = next((group[e] for e in VIDEO_EXTENSIONS if e in group), None)
        image = next((group[e] for e in IMAGE_EXTENSIONS if e in group), None)
        audio = next((group[e] for e in AUDIO_EXTENSIONS if e in group), None)
        item_id = stem.relative_to(root).as_posix()
        if video is not None:
            items[item_id] = SourceItem(item_id, video=str(video))
        elif image is not None and audio is not None:
            items[item_id] = SourceItem(item_id, image=str(image), audio=str(audio))
        elif image is not None:
            skipped.append({"id": item_id, "source": str(image), "reason": "image without a sound of the same stem"})
        elif audio is not None:
            skipped.append({"id": item_id, "source": str(audio), "reason": "sound without an image of the same stem"})
    if csv_path is None:
        return [items[k] for k in sorted(items)], skipped

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"CSV not found: {csv_path}")
    by_name = {Path(k).name: v for k, v in items.items()}
    selected: dict[str, SourceItem] = {}
    for youtube_id, start, label, split in _csv_rows(csv_path):
        start_ms = round(start * 1000)
        candidates = (f"{youtube_id}_{start_ms}_{start_ms + 10000}", f"{youtube_id}_{int(start):06d}",
                      f"{youtube_id}_{int(start)}", youtube_id)
        match = next((by_name[c] for c in candidates if c in by_name), None)
        if match is None:
            skipped.append({"id": youtube_id, "source": str(csv_path),
                            "reason": f"no file for CSV row ({youtube_id}, {start:g}); looked for stems {candidates}"})
            continue
        selected[match.id] = SourceItem(match.id, match.video, match.image, match.audio, label, split)
    return [selected[k] for k in sorted(selected)], skipped


# --------------------------------------------------------------------------------------------
# Decoding (runs in the worker processes)


def exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Worker initializer: end this worker as soon as the process that started it is gone.

    A parent killed with SIGKILL cannot stop its pool, and workers blocked on their task queue would
    live on as orphans; a daemon thread watches the parent id instead (Linux and macOS alike).

    Args:
        parent_pid: the id of the preparing process.
        interval: seconds between checks.
    """
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def decode_source(item: SourceItem, sample_rate: int, fps: float, max_seconds: float,
                  min_seconds: float) -> dict:
    """Decode one input. Never raises: a failure comes back as `{"error": reason}`.

    Returns:
        `{"audio": float32 [S], "frames": list of RGB images (F of them; 1 for a still image)}` with
        audio cut at `max_seconds`, or `{"error": str}`.
    """
    from ..media import (
        load_image,
        load_video_frames,
        read_audio_track,
        resize_short_side,
    )

    try:
        audio_path = item.video or item.audio
        # Decoding stops at max_seconds: a two-hour track costs no more than its first minute.
        audio = read_audio_track(audio_path, sample_rate=sample_rate, max_seconds=max_seconds)
        if audio.size == 0:
            return {"error": "the audio track is empty"}
        audio = audio[: int(max_seconds * sample_rate)]
        if audio.size < min_seconds * sample_rate:
            return {"error": f"too short: {audio.size / sample_rate:.3f} s of audio < min {min_seconds} s"}
        if not np.isfinite(audio).all():
            return {"error": "the audio holds NaN or inf samples"}
        if item.video is not None:
            frames = load_video_frames(item.video, fps=fps, max_seconds=max_seconds,
                                       short_side=FRAME_SHORT_SIDE).frames
        else:
            frames = [resize_short_side(load_image(item.image), FRAME_SHORT_SIDE)]
        return {"audio": audio, "frames": frames}
    except Exception as err:  # noqa: BLE001 - any failure of one file is reported, never fatal
        return {"error": f"{type(err).__name__}: {err}"}

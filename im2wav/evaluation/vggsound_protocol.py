"""The paper's VGGSound protocol: every test-split video, its first 4 seconds only.

- Videos: VGGSound's CSV (`youtube_id,start_seconds,label,split`, no header) names the test
  videos; a video file in the folder matches a row when its stem is `ID_START000_END000` (the
  milliseconds naming, e.g. `0nYltlo90Zc_147000_157000.mp4`), `ID_START` zero-padded to 6 digits,
  or `ID_START`. Listed videos absent from the folder are counted and reported.
- Condition: the video's frames of its first `seconds` at 30 fps, CLIP-embedded.
- Reference audio: `STEM.wav`/`STEM.flac` beside the video when present, else the video's own
  audio track decoded at 32 kHz; its first `seconds`.
- Metrics: FAD (VGGish) between the reference and generated sets; KL(reference || generated)
  between PaSST distributions, pair by pair; CLIP-score of generated (and of reference) audio
  against the frames, averaged over frames; accuracy on the videos whose label belongs to an
  IMAGEHEAR class (`imagehear.json`'s `to_vggsound`), judged with that class's AudioSet labels.
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..media import read_audio_track
from .audio_folders import AUDIO_SUFFIXES, read_mono
from .audio_models import AudioEmbedder, AudioTagger, ClipAudioEncoder
from .classifier_metrics import imagehear_accuracy, kl_divergence, top_labels
from .clip_score import clip_scores
from .frechet import fad
from .generation import ClipCache, GenerationJob, cached_chunks
from .imagehear import ImageHear

__all__ = ["VggSoundVideo", "list_test_videos", "reference_audio", "score_vggsound", "vggsound_jobs"]

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi")
REFERENCE_RATE = 32000  # the highest rate a metric model takes (PaSST)


@dataclass(frozen=True)
class VggSoundVideo:
    """One test video: its file, its VGGSound label, and where its reference audio is read from."""

    path: Path
    label: str
    reference: Path


def _candidate_stems(youtube_id: str, start: int) -> list[str]:
    return [f"{youtube_id}_{start * 1000}_{(start + 10) * 1000}", f"{youtube_id}_{start:06d}", f"{youtube_id}_{start}"]


def list_test_videos(folder: str | Path, csv_path: str | Path, split: str = "test") -> tuple[list[VggSoundVideo], int]:
    """The `split` videos of the CSV found in `folder`, in the CSV's order, and how many are missing.

    Raises:
        FileNotFoundError: the folder or the CSV does not exist.
        UserError: the CSV has no rows of `split`, or none of its videos is in the folder.
    """
    folder, csv_path = Path(folder), Path(csv_path)
    if not folder.is_dir():
        raise FileNotFoundError(f"VGGSound video folder {folder} not found")
    if not csv_path.is_file():
        raise FileNotFoundError(f"VGGSound CSV {csv_path} not found: pass vggsound.csv (youtube_id,start,label,split)")
    by_stem = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES}
    videos, listed = [], 0
    with open(csv_path, newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if len(row) < 4 or row[3].strip() != split:
                continue
            try:
                start = int(float(row[1]))
            except ValueError:
                continue  # a header line
            listed += 1
            match = next((by_stem[s] for s in _candidate_stems(row[0].strip(), start) if s in by_stem), None)
            if match is None:
                continue
            sidecar = next((match.with_suffix(s) for s in AUDIO_SUFFIXES if match.with_suffix(s).is_file()), match)
            videos.append(VggSoundVideo(path=match, label=row[2].strip(), reference=sidecar))
    if listed == 0:
        raise UserError(f"{csv_path} has no rows of split {split!r} (columns: youtube_id,start_seconds,label,split)")
    if not videos:
        raise UserError(
            f"none of the {listed} {split} videos of {csv_path} is in {folder}; name them ID_STARTms_ENDms.mp4 "
            "(e.g. 0nYltlo90Zc_147000_157000.mp4)"
        )
    return videos, listed - len(videos)


def vggsound_jobs(videos: Sequence[VggSoundVideo], seed: int = 0) -> list[GenerationJob]:
    """One clip per video, named after it, with seed `seed + k` for the k-th video."""
    return [GenerationJob(name=v.path.stem, group=v.label, source=v.path, seed=seed + k) for k, v in enumerate(videos)]


def reference_audio(video: VggSoundVideo, seconds: float) -> tuple[np.ndarray, int]:
    """The first `seconds` of the video's reference audio as mono float32, and its rate."""
    if video.reference.suffix.lower() in AUDIO_SUFFIXES:
        audio, rate = read_mono(video.reference)
        return audio[: round(seconds * rate)], rate
    audio = read_audio_track(video.reference, REFERENCE_RATE, max_seconds=seconds)  # decodes only that much
    if audio.shape[0] == 0:
        raise UserError(f"{video.reference} holds no audio")
    return audio, REFERENCE_RATE


def _accuracy(probs: torch.Tensor, labels: Sequence[str], tagger: AudioTagger, imagehear: ImageHear) -> dict | None:
    to_class = {vgg: name for name, vggs in imagehear.to_vggsound.items() for vgg in vggs}
    rows = [k for k, label in enumerate(labels) if label in to_class]
    if not rows:
        return None
    result = imagehear_accuracy(probs[rows], [to_class[labels[k]] for k in rows], tagger.label_names,
                                imagehear.to_audioset, imagehear.ignored_labels)
    return {**result.to_dict(), "num_clips": len(rows)}


def score_vggsound(
    cache: ClipCache,
    jobs: Sequence[GenerationJob],
    videos: Sequence[VggSoundVideo],
    seconds: float,
    tagger: AudioTagger,
    embedder: AudioEmbedder,
    clip_audio_encoder: ClipAudioEncoder | None = None,
    imagehear: ImageHear | None = None,
) -> dict:
    """FAD, KL, CLIP-score and accuracy of the cached clips of `jobs` against their videos' audio.

    Returns:
        A JSON-ready dict with `fad`, `kl`, `clip_score`, `accuracy` (None without `imagehear` or
        when no label maps to an IMAGEHEAR class), the same relevance metrics of the reference audio
        under `reference`, `class_distribution` (top AudioSet label -> count, generated and reference)
        and one record per clip.
    """
    gen_embeds, ref_embeds, gen_probs, ref_probs, gen_scores, ref_audio_embeds, all_frames = [], [], [], [], [], [], []
    by_name = {v.path.stem: v for v in videos}
    for part, audios, rate, frames in cached_chunks(cache, jobs):
        gen_embeds.append(embedder.embed(audios, rate))
        gen_probs.append(tagger.class_probabilities(audios, rate))
        if clip_audio_encoder is not None:
            gen_scores.append(clip_scores(frames, clip_audio_encoder.embed(audios, rate)))
            all_frames.extend(frames)
        references = [reference_audio(by_name[job.name], seconds) for job in part]
        for ref_rate, run in itertools.groupby(references, key=lambda clip: clip[1]):  # models take one rate a call
            ref_audios = [torch.from_numpy(audio) for audio, _ in run]
            ref_embeds.append(embedder.embed(ref_audios, ref_rate))
            ref_probs.append(tagger.class_probabilities(ref_audios, ref_rate))
            if clip_audio_encoder is not None:
                ref_audio_embeds.append(clip_audio_encoder.embed(ref_audios, ref_rate))
    gen_p, ref_p = torch.cat(gen_probs), torch.cat(ref_probs)
    per_kl = kl_divergence(ref_p, gen_p, multi_label=tagger.multi_label)  # [N]
    gen_cs = torch.cat(gen_scores) if gen_scores else None
    ref_cs = clip_scores(all_frames, torch.cat(ref_audio_embeds)) if ref_audio_embeds else None
    labels = [job.group for job in jobs]
    ignored = imagehear.ignored_labels if imagehear is not None else []
    gen_top, ref_top = top_labels(gen_p, tagger.label_names, ignored), top_labels(ref_p, tagger.label_names, ignored)
    return {
        "fad": fad(torch.cat(ref_embeds), torch.cat(gen_embeds)),
        "kl": float(per_kl.mean()),
        "clip_score": float(gen_cs.mean()) if gen_cs is not None else None,
        "accuracy": _accuracy(gen_p, labels, tagger, imagehear) if imagehear is not None else None,
        "num_clips": len(jobs),
        "reference": {
            "clip_score": float(ref_cs.mean()) if ref_cs is not None else None,
            "accuracy": _accuracy(ref_p, labels, tagger, imagehear) if imagehear is not None else None,
        },
        "class_distribution": {"generated": dict(Counter(gen_top)), "reference": dict(Counter(ref_top))},
        "clips": [
            {"name": job.name, "label": job.group, "seed": job.seed, "kl": float(kl),
             "prediction": g, "reference_prediction": r,
             "clip_score": float(gen_cs[k]) if gen_cs is not None else None}
            for k, (job, kl, g, r) in enumerate(zip(jobs, per_kl, gen_top, ref_top))
        ],
    }

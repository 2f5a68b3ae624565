"""The paper's IMAGEHEAR protocol: `per_class` clips per class (120 in the paper), each image of a
class used for an equal share of them, then accuracy (PaSST top label, general classes ignored)
and CLIP-score (Wav2CLIP audio vs CLIP ViT-B/32 image), overall and per class.

Clip j of a class (j = 0 .. per_class-1) is conditioned on the class's image `j % n_images`, in
the order `imagehear.json` lists them, and generated with seed `seed + k`, k being the clip's
position in the whole job list (class by class, in the JSON's order). When `per_class` is not a
multiple of a class's image count the first images get one clip more; the report lists the
counts per image.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import torch

from .audio_models import AudioTagger, ClipAudioEncoder
from .classifier_metrics import imagehear_accuracy
from .clip_score import clip_scores
from .generation import ClipCache, GenerationJob, cached_chunks
from .imagehear import ImageHear

__all__ = ["imagehear_jobs", "score_imagehear"]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") or "class"


def imagehear_jobs(benchmark: ImageHear, per_class: int = 120, seed: int = 0) -> list[GenerationJob]:
    """Every clip the protocol generates, class by class.

    Args:
        benchmark: from `load_imagehear`.
        per_class: clips per class (the paper: 120).
        seed: the seed of the first clip; clip k of the list uses `seed + k`.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    jobs = []
    for class_name, files in benchmark.classes.items():
        for j in range(per_class):
            jobs.append(GenerationJob(
                name=f"{_slug(class_name)}_{j:04d}",
                group=class_name,
                source=benchmark.root / files[j % len(files)],
                seed=seed + len(jobs),
            ))
    return jobs


def score_imagehear(
    cache: ClipCache,
    jobs: Sequence[GenerationJob],
    benchmark: ImageHear,
    tagger: AudioTagger,
    clip_audio_encoder: ClipAudioEncoder | None = None,
) -> dict:
    """Accuracy and CLIP-score of the cached clips of `jobs`.

    Returns:
        A JSON-ready dict: `accuracy`, `mean_class_accuracy`, `clip_score`, `num_clips`, `per_class`
        (class -> accuracy, CLIP-score, clips), `images_used` (image -> clips) and `clips` (one
        record per clip: name, class, image, seed, prediction, correct, CLIP-score).
    """
    probabilities, scores = [], []
    for _, audios, rate, embeds in cached_chunks(cache, jobs):
        probabilities.append(tagger.class_probabilities(audios, rate))  # [B, K]
        if clip_audio_encoder is not None:
            scores.append(clip_scores(embeds, clip_audio_encoder.embed(audios, rate)))  # [B]
    classes = [job.group for job in jobs]
    accuracy = imagehear_accuracy(
        torch.cat(probabilities), classes, tagger.label_names, benchmark.to_audioset, benchmark.ignored_labels
    )
    per_clip = torch.cat(scores).tolist() if scores else [None] * len(jobs)
    per_class = {}
    for name in dict.fromkeys(classes):
        class_scores = [s for s, c in zip(per_clip, classes) if c == name and s is not None]
        per_class[name] = {
            "accuracy": accuracy.per_class[name],
            "clip_score": sum(class_scores) / len(class_scores) if class_scores else None,
            "clips": classes.count(name),
        }
    return {
        "accuracy": accuracy.accuracy,
        "mean_class_accuracy": accuracy.mean_class_accuracy,
        "clip_score": sum(per_clip) / len(per_clip) if scores else None,
        "num_clips": len(jobs),
        "per_class": per_class,
        "images_used": dict(Counter(job.source.name for job in jobs)),
        "clips": [
            {"name": job.name, "class": job.group, "image": job.source.name, "seed": job.seed,
             "prediction": prediction, "correct": correct, "clip_score": score}
            for job, prediction, correct, score in zip(jobs, accuracy.predictions, accuracy.correct, per_clip)
        ],
    }

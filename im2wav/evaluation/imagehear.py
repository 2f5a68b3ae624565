"""The IMAGEHEAR benchmark (Sheffer & Adi, 2023): its definition and the evaluation loop over it.

A benchmark folder holds the images and `imagehear.json`:

- `classes`: class -> image file names (30 classes, 100 images);
- `to_audioset`: class -> the AudioSet labels that count as a correct prediction;
- `to_vggsound`: class -> VGGSound labels (kept for reference, unused by the metrics);
- `audioset_general_classes_ignored_for_acc`: AudioSet labels never taken as the prediction.

Only the images listed under `classes` are benchmark items: the published folder also holds
`people4.jpg`, which the class list leaves out, so it is not evaluated. Images are read with
`im2wav.media.load_image`, which sniffs the format (`saxophone3.jpg` is a WEBP).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch

from ..media import load_image
from .audio_models import AudioTagger, ClipAudioEncoder
from .classifier_metrics import AccuracyResult, check_tagger_labels, imagehear_accuracy
from .clip_score import clip_scores

if TYPE_CHECKING:
    from ..pipelines import Im2WavPipeline

__all__ = ["ImageHear", "ImageHearItem", "ImageHearResult", "evaluate_imagehear", "load_imagehear"]

DEFINITION_FILE = "imagehear.json"
_REQUIRED_KEYS = ("classes", "to_audioset", "audioset_general_classes_ignored_for_acc")


class ImageHearItem(NamedTuple):
    """One benchmark image: its class and its path."""

    class_name: str
    image_path: Path


@dataclass
class ImageHear:
    """The benchmark definition.

    Attributes:
        root: the benchmark folder.
        classes: class -> image file names, in the JSON's order.
        to_audioset: class -> AudioSet labels counted as correct.
        to_vggsound: class -> VGGSound labels.
        ignored_labels: AudioSet labels excluded from the arg-max.
    """

    root: Path
    classes: dict[str, list[str]]
    to_audioset: dict[str, list[str]]
    to_vggsound: dict[str, list[str]]
    ignored_labels: list[str]

    def items(self) -> list[ImageHearItem]:
        """Every (class, image path) pair, class by class in the JSON's order."""
        return [ImageHearItem(name, self.root / file) for name, files in self.classes.items() for file in files]


def load_imagehear(root: str | os.PathLike) -> ImageHear:
    """Read `imagehear.json` from a benchmark folder and check that its images are there.

    Args:
        root: the folder holding `imagehear.json` and the images.

    Raises:
        ValueError: the definition file is missing or malformed, a class has no AudioSet labels,
            or listed images are missing.
    """
    root = Path(root)
    definition = root / DEFINITION_FILE
    if not definition.is_file():
        raise ValueError(f"{definition} not found: pass the IMAGEHEAR folder that holds {DEFINITION_FILE} and the images")
    try:
        data = json.loads(definition.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{definition} is not valid JSON: {err}") from err
    missing_keys = [key for key in _REQUIRED_KEYS if key not in data]
    if missing_keys:
        raise ValueError(f"{definition} lacks the keys {missing_keys}; is it the IMAGEHEAR definition file?")
    benchmark = ImageHear(
        root=root,
        classes={name: list(files) for name, files in data["classes"].items()},
        to_audioset={name: list(labels) for name, labels in data["to_audioset"].items()},
        to_vggsound={name: list(labels) for name, labels in data.get("to_vggsound", {}).items()},
        ignored_labels=list(data["audioset_general_classes_ignored_for_acc"]),
    )
    unlabelled = sorted(set(benchmark.classes) - set(benchmark.to_audioset))
    if unlabelled:
        raise ValueError(f"{definition}: classes {unlabelled} have no entry in to_audioset")
    absent = [str(item.image_path.name) for item in benchmark.items() if not item.image_path.is_file()]
    if absent:
        raise ValueError(f"{len(absent)} image(s) listed in {definition} are missing from {root}: {absent[:5]}")
    return benchmark


@dataclass
class ImageHearResult:
    """The outcome of `evaluate_imagehear`.

    Attributes:
        accuracy: the classifier accuracy of all generated clips.
        clip_score: the mean CLIP-score, or None without a CLIP audio encoder.
        num_clips: how many clips were generated and scored.
        sample_rate: the rate of the generated audio.
        clips: one record per clip (image, class, clip index, top prediction, correct, CLIP-score),
            to see which images fail.
    """

    accuracy: AccuracyResult
    clip_score: float | None
    num_clips: int
    sample_rate: int
    clips: list[dict]

    def to_dict(self) -> dict:
        return {
            "num_clips": self.num_clips,
            "sample_rate": self.sample_rate,
            **self.accuracy.to_dict(),
            "clip_score": self.clip_score,
            "clips": list(self.clips),
        }


def evaluate_imagehear(
    pipe: Im2WavPipeline,
    benchmark: ImageHear,
    tagger: AudioTagger,
    clip_audio_encoder: ClipAudioEncoder | None = None,
    per_image: int = 1,
    audio_length_in_s: float = 4.0,
    guidance_scale: float = 3.0,
    seed: int = 0,
    on_clips: Callable[[ImageHearItem, torch.Tensor], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImageHearResult:
    """Generate `per_image` clips for every benchmark image and score them.

    Accuracy uses `tagger` against `benchmark.to_audioset`; the CLIP-score compares the
    pipeline's own CLIP embedding of each image (the CLIP Wav2CLIP was trained against, ViT-B/32)
    with `clip_audio_encoder`'s embedding of each clip.

    Args:
        pipe: an `Im2WavPipeline`.
        benchmark: from `load_imagehear`.
        tagger: an AudioSet tagger (`load_audio_classifier`).
        clip_audio_encoder: a CLIP-space audio encoder (`load_clip_audio_encoder`), or None to skip the CLIP-score.
        per_image: clips generated per image.
        audio_length_in_s: length of every clip.
        guidance_scale: the LOW prior's classifier-free guidance scale.
        seed: clip k of item i is generated with seed `seed + i * per_image + k`, so every clip is
            reproducible on its own.
        on_clips: called with each item and its `[per_image, 1, S]` clips (e.g. to save them).
        progress: called with 1 after each item (e.g. a tqdm bar's `update`).
    """
    # 1. Check everything that would otherwise only fail after hours of generation
    if per_image < 1:
        raise ValueError(f"per_image must be >= 1, got {per_image}")
    pipe.check_audio_length(audio_length_in_s)
    check_tagger_labels(tagger.label_names, benchmark.to_audioset, benchmark.ignored_labels)

    # 2. Generate and score, image by image
    device = pipe.device
    item_classes: list[str] = []
    image_names: list[str] = []
    probabilities, scores = [], []
    for index, item in enumerate(benchmark.items()):
        image_embeds = pipe.encode_images(load_image(item.image_path))  # [1, F=1, D]
        generators = [
            torch.Generator(device=device).manual_seed(seed + index * per_image + k) for k in range(per_image)
        ]
        audios = pipe(
            image_embeds=image_embeds,
            audio_length_in_s=audio_length_in_s,
            guidance_scale=guidance_scale,
            num_waveforms_per_prompt=per_image,
            generator=generators,
            output_type="pt",
        ).audios.float().cpu()  # [N, 1, S]
        probabilities.append(tagger.class_probabilities(audios, pipe.sample_rate))  # [N, K]
        if clip_audio_encoder is not None:
            audio_embeds = clip_audio_encoder.embed(audios, pipe.sample_rate)  # [N, D]
            scores.append(clip_scores(image_embeds.expand(per_image, -1, -1), audio_embeds))
        item_classes.extend([item.class_name] * per_image)
        image_names.extend([item.image_path.name] * per_image)
        if on_clips is not None:
            on_clips(item, audios)
        if progress is not None:
            progress(1)
    # 3. Aggregate
    accuracy = imagehear_accuracy(
        torch.cat(probabilities), item_classes, tagger.label_names, benchmark.to_audioset, benchmark.ignored_labels
    )
    per_clip_scores = torch.cat(scores).tolist() if scores else [None] * len(item_classes)
    clips = [
        {"image": image, "class": name, "index": n % per_image, "prediction": prediction, "correct": correct,
         "clip_score": score}
        for n, (image, name, prediction, correct, score) in enumerate(
            zip(image_names, item_classes, accuracy.predictions, accuracy.correct, per_clip_scores)
        )
    ]
    return ImageHearResult(
        accuracy=accuracy,
        clip_score=float(torch.cat(scores).mean()) if scores else None,
        num_clips=len(item_classes),
        sample_rate=pipe.sample_rate,
        clips=clips,
    )

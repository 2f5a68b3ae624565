"""Choosing and loading the metric models of an evaluation run.

Each role takes the paper's model by name (`passt`, `vggish`, `wav2clip`) or another model:
a `transformers` audio classifier (folder or hub id) as tagger/embedder, a `.pt2`/TorchScript
file as CLIP-space audio encoder (see `audio_models.py`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from .audio_models import AudioEmbedder, AudioTagger, ClipAudioEncoder, load_audio_classifier, load_clip_audio_encoder
from .checkpoints import AUDIOSET_NUM_CLASSES, load_audioset_labels

__all__ = ["MetricModels", "load_metric_models", "placeholder_audioset_labels"]


@dataclass
class MetricModels:
    """The models an evaluation scores with, and a description of each for the report."""

    tagger: AudioTagger
    embedder: AudioEmbedder | None = None
    clip_audio_encoder: ClipAudioEncoder | None = None
    description: dict = field(default_factory=dict)


def placeholder_audioset_labels(named: Iterable[str]) -> list[str]:
    """527 label names for random-weight plumbing checks without AudioSet's label file: the labels
    a benchmark names (in sorted order), then `unnamed class k`. Never use them for real numbers."""
    names = sorted(set(named))
    if len(names) > AUDIOSET_NUM_CLASSES:
        raise ValueError(f"{len(names)} named labels do not fit in {AUDIOSET_NUM_CLASSES} classes")
    return names + [f"unnamed class {k}" for k in range(len(names), AUDIOSET_NUM_CLASSES)]


def _describe(model, name: str, weights: str | os.PathLike | None, random_weights: bool) -> dict:
    settings = model.settings() if hasattr(model, "settings") else {"sample_rate": getattr(model, "sample_rate", None)}
    source = "random (plumbing check)" if random_weights else (str(weights) if weights else "package default URL")
    return {"model": name, "weights": source, **settings}


def load_metric_models(
    tagger: str = "passt",
    embedder: str | None = "vggish",
    clip_audio_encoder: str | None = "wav2clip",
    passt_weights: str | None = None,
    vggish_weights: str | None = None,
    wav2clip_weights: str | None = None,
    audioset_labels: str | None = None,
    placeholder_labels: Iterable[str] = (),
    random_weights: bool = False,
    multi_label: bool = False,
    batch_size: int = 16,
    device: str | torch.device | None = None,
) -> MetricModels:
    """Load the tagger, the FAD embedder (None: skip FAD) and the CLIP audio encoder (None: skip the CLIP-score).

    Args:
        tagger: `passt`, or a transformers audio classifier.
        embedder: `vggish`, a transformers audio classifier, or None.
        clip_audio_encoder: `wav2clip`, a `.pt2`/TorchScript file, or None.
        passt_weights, vggish_weights, wav2clip_weights: local checkpoints (None: the package's URL).
        audioset_labels: AudioSet's `class_labels_indices.csv` (None: download it; with
            `random_weights`, use `placeholder_audioset_labels(placeholder_labels)` instead).
        placeholder_labels: the labels a random-weight run must be able to predict.
        random_weights: build the paper's models with random weights (plumbing checks only).
        multi_label: sigmoid instead of softmax class probabilities.
        batch_size: clips or windows per forward pass.
        device: where the models run.
    """
    # Random weights come from a fixed seed (the global RNG is left as it was): two plumbing
    # checks give the same numbers.
    with torch.random.fork_rng(devices=[]) if random_weights else contextlib.nullcontext():
        if random_weights:
            torch.manual_seed(0)
        description = {}
        if tagger == "passt":
            from .passt_tagger import load_passt

            if random_weights and audioset_labels is None:
                labels = placeholder_audioset_labels(placeholder_labels)
                label_source = "placeholders (random-weight plumbing check)"
            else:
                labels = load_audioset_labels(audioset_labels)
                label_source = audioset_labels or "AudioSet class_labels_indices.csv (downloaded)"
            tagger_model = load_passt(labels, passt_weights, multi_label=multi_label, batch_size=batch_size,
                                      device=device, random_weights=random_weights)
            description["tagger"] = {**_describe(tagger_model, "PaSST passt_s_swa_p16_128_ap476 (hear21passt)",
                                                 passt_weights, random_weights), "labels": label_source}
        else:
            tagger_model = load_audio_classifier(tagger, device=device, multi_label=multi_label, batch_size=batch_size)
            description["tagger"] = {"model": tagger, "sample_rate": tagger_model.sample_rate,
                                     "probabilities": "sigmoid" if multi_label else "softmax"}
        embedder_model = None
        if embedder == "vggish":
            from .vggish_embedder import load_vggish

            embedder_model = load_vggish(vggish_weights, device=device, random_weights=random_weights)
            description["embedder"] = _describe(embedder_model, "VGGish (torchvggish)", vggish_weights, random_weights)
        elif embedder is not None:
            embedder_model = tagger_model if embedder == tagger else load_audio_classifier(embedder, device=device,
                                                                                            batch_size=batch_size)
            description["embedder"] = {"model": embedder, "sample_rate": embedder_model.sample_rate,
                                       "rows": "one pooled embedding per clip"}
        encoder_model = None
        if clip_audio_encoder == "wav2clip":
            from .wav2clip_encoder import load_wav2clip

            encoder_model = load_wav2clip(wav2clip_weights, device=device, random_weights=random_weights)
            description["clip_audio_encoder"] = _describe(encoder_model, "Wav2CLIP (wav2clip)", wav2clip_weights,
                                                          random_weights)
        elif clip_audio_encoder is not None:
            encoder_model = load_clip_audio_encoder(clip_audio_encoder, device=device)
            description["clip_audio_encoder"] = {"model": clip_audio_encoder, "sample_rate": encoder_model.sample_rate}
        return MetricModels(tagger_model, embedder_model, encoder_model, description)

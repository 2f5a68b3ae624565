"""Tiny metric models and a tiny IMAGEHEAR benchmark for the evaluation tests (built in code, seconds on a CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny_components import tiny_image
from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

LABELS = ["Music", "Dog", "Bark", "Cat", "Meow", "Animal"]
CLASS_TO_LABELS = {"Dog": ["Dog", "Bark"], "Cat": ["Cat", "Meow"]}
IGNORED = ["Music", "Animal"]


def audioset_like_labels(extra: list[str]) -> list[str]:
    return extra + [f"class {k}" for k in range(527 - len(extra))]


def save_tiny_ast(folder: Path, labels: list[str], sample_rate: int = 16000, seed: int = 0) -> Path:
    """A randomly initialised 1-layer AST with an AudioSet-sized head, saved with its feature extractor."""
    config = ASTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        patch_size=16, frequency_stride=16, time_stride=16, max_length=64, num_mel_bins=32,
        id2label=dict(enumerate(labels)), label2id={name: k for k, name in enumerate(labels)},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ASTForAudioClassification(config).save_pretrained(folder)
    ASTFeatureExtractor(sampling_rate=sample_rate, num_mel_bins=32, max_length=64).save_pretrained(folder)
    return folder


class TinyClipAudioEncoder(torch.nn.Module):
    """Waveform statistics projected to 512-d: a stand-in for Wav2CLIP that accepts any length."""

    def __init__(self, dim: int = 512):
        super().__init__()
        self.proj = torch.nn.Linear(4, dim)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:  # [B, S] -> [B, D]
        stats = torch.stack([audio.mean(-1), audio.std(-1), audio.abs().mean(-1), audio.amax(-1)], dim=-1)
        return self.proj(stats)


def save_tiny_clip_audio_encoder(path: Path, seed: int = 0) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.jit.save(torch.jit.script(TinyClipAudioEncoder()), str(path))
    return path


def make_tiny_benchmark(folder: Path) -> Path:
    """Two classes, three images; `cat1.jpg` is a WEBP under a .jpg name, as in the real benchmark."""
    folder.mkdir(parents=True, exist_ok=True)
    tiny_image(0).save(folder / "dog1.jpg", format="JPEG")
    tiny_image(1).save(folder / "dog2.jpg", format="JPEG")
    tiny_image(2).save(folder / "cat1.jpg", format="WEBP")
    tiny_image(3).save(folder / "unlisted.jpg", format="JPEG")
    definition = {
        "classes": {"Dog": ["dog1.jpg", "dog2.jpg"], "Cat": ["cat1.jpg"]},
        "to_vggsound": {"Dog": ["dog barking"], "Cat": ["cat meowing"]},
        "to_audioset": CLASS_TO_LABELS,
        "audioset_general_classes_ignored_for_acc": IGNORED,
    }
    (folder / "imagehear.json").write_text(json.dumps(definition))
    return folder

"""FAD and KL between a folder of generated clips and a folder of reference clips.

FAD compares the two sets as distributions (the folders may hold different files). KL compares
pairs: `generated/x.wav` with `reference/x.wav`, as the paper pairs each VGGSound test clip with
the clip generated from its video. Files are read with soundfile; multi-channel files are
averaged to mono, and each model resamples to its own rate.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .audio_models import AudioEmbedder, AudioTagger
from .classifier_metrics import kl_divergence
from .frechet import fad

__all__ = ["AudioFolderResult", "evaluate_audio_folders", "list_audio_files", "read_mono"]

AUDIO_SUFFIXES = (".wav", ".flac")


def list_audio_files(folder: str | os.PathLike) -> list[Path]:
    """The `.wav`/`.flac` files directly inside `folder`, sorted by name.

    Args:
        folder: a folder of audio clips.

    Raises:
        ValueError: the folder does not exist or holds no audio files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; pass a folder of .wav/.flac clips")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"{folder} holds no .wav or .flac files")
    return files


def read_mono(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 `[S]` and its sample rate.

    Args:
        path: a file soundfile can read (WAV, FLAC, ...).

    Raises:
        ValueError: the file cannot be decoded or is empty.
    """
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)  # [S, C]
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    if audio.shape[0] == 0:
        raise ValueError(f"{path} holds no samples")
    return audio.mean(axis=1), int(rate)


def _score_files(files: list[Path], score: Callable[[list[np.ndarray], int], torch.Tensor], batch_size: int,
                 progress: Callable[[int], None] | None) -> torch.Tensor:
    """Apply `score(clips, rate)` to the files in batches of consecutive files with one rate."""
    rows: list[torch.Tensor] = []
    batch: list[np.ndarray] = []
    batch_rate: int | None = None
    for path in files:
        audio, rate = read_mono(path)
        if batch and (rate != batch_rate or len(batch) == batch_size):
            rows.append(score(batch, batch_rate))
            batch = []
        batch.append(audio)
        batch_rate = rate
        if progress is not None:
            progress(1)
    rows.append(score(batch, batch_rate))
    return torch.cat(rows)


@dataclass
class AudioFolderResult:
    """The outcome of `evaluate_audio_folders`.

    Attributes:
        fad: Fréchet Audio Distance between the two folders.
        kl: mean paired KL divergence, or None without a tagger.
        num_generated: files in the generated folder.
        num_reference: files in the reference folder.
        num_pairs: files present in both (by name), the pairs the KL averages over.
        per_file_kl: file name -> KL, for the pairs.
    """

    fad: float
    kl: float | None
    num_generated: int
    num_reference: int
    num_pairs: int
    per_file_kl: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "fad": self.fad,
            "kl": self.kl,
            "num_generated": self.num_generated,
            "num_reference": self.num_reference,
            "num_pairs": self.num_pairs,
            "per_file_kl": dict(self.per_file_kl),
        }


def evaluate_audio_folders(
    generated: str | os.PathLike,
    reference: str | os.PathLike,
    embedder: AudioEmbedder,
    tagger: AudioTagger | None = None,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> AudioFolderResult:
    """FAD between two folders of clips and, with a tagger, the paired KL.

    Args:
        generated: folder of generated clips.
        reference: folder of real clips; for KL, `reference/NAME` is the original of `generated/NAME`.
        embedder: the FAD embedding model.
        tagger: the classifier for KL, or None to skip it.
        batch_size: clips read and scored at a time.
        progress: called with 1 per file read (e.g. a tqdm bar's `update`).

    Raises:
        ValueError: a folder is missing or empty, or (with a tagger) no file name appears in both.
    """
    # 1. List and pair the files
    generated_files, reference_files = list_audio_files(generated), list_audio_files(reference)
    reference_by_name = {p.name: p for p in reference_files}
    pairs = [(p, reference_by_name[p.name]) for p in generated_files if p.name in reference_by_name]
    if tagger is not None and not pairs:
        raise ValueError(
            f"no file name appears in both {generated} and {reference}: KL pairs generated/NAME.wav with "
            "reference/NAME.wav; name each generated clip after its reference clip"
        )

    # 2. FAD over all files of each folder
    fad_value = fad(
        _score_files(reference_files, embedder.embed, batch_size, progress),
        _score_files(generated_files, embedder.embed, batch_size, progress),
    )

    # 3. KL over the pairs
    kl_value, per_file = None, {}
    if tagger is not None:
        reference_probs = _score_files([r for _, r in pairs], tagger.class_probabilities, batch_size, progress)
        generated_probs = _score_files([g for g, _ in pairs], tagger.class_probabilities, batch_size, progress)
        per_pair = kl_divergence(reference_probs, generated_probs, multi_label=tagger.multi_label)  # [P]
        per_file = {g.name: float(v) for (g, _), v in zip(pairs, per_pair)}
        kl_value = float(per_pair.mean())
    return AudioFolderResult(
        fad=fad_value,
        kl=kl_value,
        num_generated=len(generated_files),
        num_reference=len(reference_files),
        num_pairs=len(pairs),
        per_file_kl=per_file,
    )

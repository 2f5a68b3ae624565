"""The models behind the metrics: an AudioSet tagger/embedder and a CLIP-space audio encoder.

- `AudioEmbedder`: audio -> `[B, D]` embeddings, for FAD.
- `AudioTagger`: audio -> `[B, K]` AudioSet class probabilities, for KL and accuracy.
- `ClipAudioEncoder`: audio -> `[B, D]` embeddings in CLIP image space, for the CLIP-score.

`load_audio_classifier` gives one object that is both an `AudioEmbedder` and an `AudioTagger`,
from any Hugging Face `transformers` audio-classification checkpoint (a local folder or a hub id),
e.g. `MIT/ast-finetuned-audioset-10-10-0.4593`: its logits give the class probabilities, and the
pooled hidden state that feeds its classification head is the FAD embedding.

Wav2CLIP, the paper's CLIP-space audio encoder, is not a `transformers` model: `load_clip_audio_encoder`
takes any callable mapping `[B, S]` audio to `[B, D]`, or the path of one saved with `torch.export`
(`.pt2`) or TorchScript.

Every model resamples its input (torchaudio) to its own rate, so callers pass audio at any rate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

__all__ = [
    "AudioEmbedder",
    "AudioInput",
    "AudioTagger",
    "CallableClipAudioEncoder",
    "ClipAudioEncoder",
    "LogitsTagger",
    "TransformersAudioClassifier",
    "load_audio_classifier",
    "load_clip_audio_encoder",
    "prepare_waveforms",
]

# A batch of mono clips: `[B, S]`, `[B, 1, S]`, a single `[S]`, or a list of 1-D arrays/tensors of any lengths.
AudioInput = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]


@runtime_checkable
class AudioEmbedder(Protocol):
    """Embeds audio for FAD."""

    sample_rate: int

    def embed(self, audios: AudioInput, sample_rate: int) -> torch.Tensor:
        """`[B, D]` float32 embeddings on the CPU."""
        ...


@runtime_checkable
class AudioTagger(Protocol):
    """Scores audio against a fixed label set (AudioSet's 527 classes for the paper's metrics)."""

    sample_rate: int
    label_names: list[str]
    multi_label: bool

    def class_probabilities(self, audios: AudioInput, sample_rate: int) -> torch.Tensor:
        """`[B, K]` float32 probabilities on the CPU: rows sum to 1 unless `multi_label`."""
        ...


@runtime_checkable
class ClipAudioEncoder(Protocol):
    """Embeds audio into the CLIP image-embedding space (Wav2CLIP)."""

    sample_rate: int

    def embed(self, audios: AudioInput, sample_rate: int) -> torch.Tensor:
        """`[B, D]` float32 L2-normalised embeddings on the CPU."""
        ...


def prepare_waveforms(audios: AudioInput, sample_rate: int, target_rate: int) -> list[torch.Tensor]:
    """Mono float32 waveforms resampled to `target_rate`, one 1-D tensor per clip.

    Args:
        audios: `[B, S]`, `[B, 1, S]`, one clip `[S]`, or a list of 1-D clips of any lengths.
        sample_rate: the rate of `audios` in Hz.
        target_rate: the rate the model expects.

    Raises:
        ValueError: multi-channel audio, empty clips, or a non-positive rate.
    """
    if not (isinstance(sample_rate, int) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
    if isinstance(audios, (torch.Tensor, np.ndarray)):
        batch = torch.as_tensor(audios)
        if batch.ndim == 1:
            batch = batch[None]  # [1, S]
        if batch.ndim == 3:
            if batch.shape[1] != 1:
                raise ValueError(
                    f"audio of shape {tuple(batch.shape)} has {batch.shape[1]} channels; the metric models take mono "
                    "[B, 1, S] or [B, S] audio: average the channels first"
                )
            batch = batch[:, 0]  # [B, S]
        if batch.ndim != 2:
            raise ValueError(f"expected audio [B, S], [B, 1, S] or [S], got shape {tuple(batch.shape)}")
        clips = list(batch)
    else:
        clips = [torch.as_tensor(clip) for clip in audios]
        if any(clip.ndim != 1 for clip in clips):
            raise ValueError("a list of clips must hold 1-D mono waveforms [S]; average the channels of stereo audio first")
    if len(clips) == 0:
        raise ValueError("no audio clips given")
    if any(clip.numel() == 0 for clip in clips):
        raise ValueError("an audio clip is empty")
    clips = [clip.detach().to("cpu", torch.float32) for clip in clips]
    if sample_rate != target_rate:
        clips = [AF.resample(clip, sample_rate, target_rate) for clip in clips]
    return clips


def _looks_like_local_path(source: str) -> bool:
    # A hub id is "name" or "owner/name"; anything else that names a path must exist locally.
    return os.path.isabs(source) or source.startswith((".", "~")) or source.count("/") > 1 or (os.sep != "/" and os.sep in source)


class LogitsTagger:
    """An `AudioTagger` whose `class_probabilities` come from its `logits(audios, sample_rate)` `[B, K]`."""

    multi_label: bool

    def class_probabilities(self, audios: AudioInput, sample_rate: int) -> torch.Tensor:
        """Class probabilities `[B, K]`: softmax of the logits, or sigmoid when `multi_label`.

        `audios`: mono clips (see `prepare_waveforms`) at `sample_rate` Hz.
        """
        logits = self.logits(audios, sample_rate)
        return logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)


class TransformersAudioClassifier(LogitsTagger):
    """An `AudioEmbedder` and `AudioTagger` from a `transformers` audio-classification model.

    Args:
        model: e.g. an AudioSet-finetuned `ASTForAudioClassification`, in eval mode.
        feature_extractor: its feature extractor (e.g. `ASTFeatureExtractor`), whose `sampling_rate`
            is the rate audio is resampled to.
        multi_label: how logits become probabilities: False: softmax (one distribution over the
            classes, as the KL metric compares); True: sigmoid (independent per-class probabilities).
        batch_size: clips per forward pass.
    """

    def __init__(self, model, feature_extractor, multi_label: bool = False, batch_size: int = 16):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.multi_label = multi_label
        self.batch_size = batch_size
        id2label = model.config.id2label
        self.label_names = [id2label[k] for k in range(model.config.num_labels)]

    def _inputs(self, clips: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        param = next(self.model.parameters())
        features = self.feature_extractor(
            [clip.numpy() for clip in clips], sampling_rate=self.sample_rate, return_tensors="pt"
        )
        return {k: v.to(param.device, param.dtype if v.is_floating_point() else v.dtype) for k, v in features.items()}

    def _batches(self, audios: AudioInput, sample_rate: int):
        clips = prepare_waveforms(audios, sample_rate, self.sample_rate)
        for start in range(0, len(clips), self.batch_size):
            yield self._inputs(clips[start : start + self.batch_size])

    @torch.no_grad()
    def logits(self, audios: AudioInput, sample_rate: int) -> torch.Tensor:
        """Classifier logits `[B, K]` (float32, CPU).

        `audios`: mono clips (see `prepare_waveforms`) at `sample_rate` Hz.
        """
        return torch.cat([self.model(**inputs).logits.float().cpu() for inputs in self._batches(audios, sample_rate)])

    @torch.no_grad()
    def embed(self, audios: AudioInput, sample_rate: int) -> torch.Tensor:
        """Embeddings `[B, D]` (float32, CPU): the base model's pooled output, the vector the
        classification head reads (for AST, the mean of the CLS and distillation tokens); the mean
        of the last hidden states over time for models without a pooler.

        `audios`: mono clips (see `prepare_waveforms`) at `sample_rate` Hz.
        """
        chunks = []
        for inputs in self._batches(audios, sample_rate):
            outputs = self.model.base_model(**inputs)
            pooled = getattr(outputs, "pooler_output", None)
            if pooled is None:
                pooled = outputs.last_hidden_state.mean(dim=1)  # [B, T, D] -> [B, D]
            chunks.append(pooled.float().cpu())
        return torch.cat(chunks)


def load_audio_classifier(
    path_or_id: str | os.PathLike,
    device: str | torch.device | None = None,
    multi_label: bool = False,
    batch_size: int = 16,
) -> TransformersAudioClassifier:
    """Load a `transformers` audio-classification checkpoint as an embedder and tagger.

    For the paper's metrics use an AudioSet-finetuned model whose `config.id2label` holds the 527
    AudioSet display names, e.g. `MIT/ast-finetuned-audioset-10-10-0.4593`.

    Args:
        path_or_id: a local folder (config.json, weights, preprocessor_config.json) or a hub id.
        device: where to run the model (default: CPU).
        multi_label: sigmoid instead of softmax probabilities; see `TransformersAudioClassifier`.
        batch_size: clips per forward pass.

    Raises:
        ValueError: the folder does not exist or holds no loadable audio classifier.
    """
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    source = os.path.expanduser(str(path_or_id))
    if _looks_like_local_path(source) and not Path(source).is_dir():
        raise ValueError(
            f"audio classifier checkpoint {source!r} not found: pass a folder saved with save_pretrained "
            "(config.json, model.safetensors, preprocessor_config.json) or a hub id such as "
            "'MIT/ast-finetuned-audioset-10-10-0.4593'"
        )
    try:
        model = AutoModelForAudioClassification.from_pretrained(source)
        feature_extractor = AutoFeatureExtractor.from_pretrained(source)
    except (OSError, ValueError) as err:
        hint = (
            "the folder exists but does not hold a saved audio-classification model with its feature extractor"
            if Path(source).is_dir()
            else "no such local folder, and it could not be fetched from the Hugging Face Hub"
        )
        detail = str(err).splitlines()[0] if str(err) else ""
        raise ValueError(
            f"cannot load an audio classifier from {source!r}: {hint}. Save one with model.save_pretrained(dir) and "
            f"feature_extractor.save_pretrained(dir). ({type(err).__name__}: {detail})"
        ) from err
    if device is not None:
        model.to(device)
    return TransformersAudioClassifier(model, feature_extractor, multi_label=multi_label, batch_size=batch_size)


class CallableClipAudioEncoder:
    """A `ClipAudioEncoder` around any callable (a Python function, an `nn.Module`, a TorchScript module).

    Args:
        encoder: maps mono audio `[B, S]` (float32, at `sample_rate`, on `device`) to `[B, D]`
            embeddings in CLIP image space.
        sample_rate: the rate the encoder expects (Wav2CLIP: 16000).
        device: where to put the audio before calling the encoder (default: CPU).
    """

    def __init__(self, encoder: Callable[[torch.Tensor], torch.Tensor], sample_rate: int = 16000,
                 device: str | torch.device | None = None):
        if not callable(encoder):
            raise TypeError(f"the CLIP audio encoder must be callable ([B, S] -> [B, D]), got {type(encoder).__name__}")
        self.encoder = encoder
        self.sample_rate = sample_rate
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    @torch.no_grad()
    def embed(self, audios: AudioInput, sample_rate: int) -> torch.Tensor:
        """L2-normalised CLIP-space embeddings `[B, D]` (float32, CPU).

        Clips of different lengths are encoded one at a time (no padding that would change them).

        `audios`: mono clips (see `prepare_waveforms`) at `sample_rate` Hz.
        """
        clips = prepare_waveforms(audios, sample_rate, self.sample_rate)
        if len({clip.shape[0] for clip in clips}) == 1:
            groups = [torch.stack(clips)]  # [B, S]
        else:
            groups = [clip[None] for clip in clips]  # B x [1, S]
        chunks = []
        for group in groups:
            out = self.encoder(group.to(self.device))
            out = torch.as_tensor(out)
            if out.ndim != 2 or out.shape[0] != group.shape[0]:
                raise ValueError(
                    f"the CLIP audio encoder returned shape {tuple(out.shape)} for audio {tuple(group.shape)}; "
                    "it must map [B, S] audio to [B, D] embeddings"
                )
            chunks.append(F.normalize(out.detach().float().cpu(), dim=-1))
        return torch.cat(chunks)


def load_clip_audio_encoder(
    source: str | os.PathLike | Callable[[torch.Tensor], torch.Tensor],
    sample_rate: int = 16000,
    device: str | torch.device | None = None,
) -> CallableClipAudioEncoder:
    """A CLIP-space audio encoder from a callable, a TorchScript file or a `torch.export` program.

    Wav2CLIP is distributed as a pip package, not a `transformers` checkpoint; export it once
    (see docs/evaluation.md) or pass the Python callable directly.

    Args:
        source: a callable `[B, S] -> [B, D]`; the path of a `.pt2` file saved with
            `torch.export.save` (export it with dynamic batch and sample dimensions); or the path of a
            TorchScript file saved with `torch.jit.save`.
        sample_rate: the rate the encoder expects (Wav2CLIP: 16000).
        device: where to load and run it (default: CPU).

    Raises:
        ValueError: the file does not exist or cannot be loaded as such a module.
    """
    if callable(source):
        return CallableClipAudioEncoder(source, sample_rate, device)
    path = Path(os.path.expanduser(str(source)))
    if not path.is_file():
        raise ValueError(
            f"CLIP audio encoder {str(path)!r} not found: pass a .pt2 file (torch.export.save) or a TorchScript file "
            "(torch.jit.save) of a module mapping [B, S] audio to [B, D] CLIP-space embeddings (e.g. Wav2CLIP), "
            "or, from Python, a callable"
        )
    if path.suffix == ".pt2":
        try:
            module = torch.export.load(str(path)).module()  # traced in eval mode at export time
        except (RuntimeError, ValueError, KeyError) as err:
            raise ValueError(f"{str(path)!r} is not a torch.export program ({str(err).splitlines()[0]})") from err
        return CallableClipAudioEncoder(module.to(device or "cpu"), sample_rate, device)
    try:
        module = torch.jit.load(str(path), map_location=device or "cpu")
    except RuntimeError as err:
        raise ValueError(
            f"{str(path)!r} is not a TorchScript file ({str(err).splitlines()[0]}); save the encoder with "
            "torch.jit.save(torch.jit.trace(model, example_audio), path), or as a .pt2 with torch.export.save"
        ) from err
    module.eval()
    return CallableClipAudioEncoder(module, sample_rate, device)

"""Assembling trained stages into an `Im2WavPipeline` folder."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from ..atomic_files import atomic_folder
from ..output_paths import check_output_folder
from .stages import load_stage_model

__all__ = ["assemble_pipeline", "check_stages_fit"]

# An existing --out is replaced (with overwrite) only when it is a pipeline folder.
PIPELINE_MARKERS = ("model_index.json",)


def check_stages_fit(vqvae: nn.Module, low: nn.Module, up: nn.Module, clip_dim: int) -> None:
    """Raise a `ValueError` unless the VQ-VAE, the two priors and CLIP belong together.

    Args:
        vqvae: the `HierarchicalVQVAE`.
        low, up: the LOW and UP `Im2WavPrior`.
        clip_dim: the CLIP image encoder's embedding width.
    """
    codes, hops = int(vqvae.config.l_bins), list(vqvae.hop_lengths)
    problems = []
    if low.config.vocab_size != codes or up.config.vocab_size != codes:
        problems.append(f"the priors model {low.config.vocab_size} (LOW) / {up.config.vocab_size} (UP) codes, "
                        f"the VQ-VAE has {codes}")
    if up.config.lower_vocab_size != codes:
        problems.append(f"UP is conditioned on {up.config.lower_vocab_size} LOW codes, the VQ-VAE has {codes}")
    if len(hops) < 2 or low.config.hop_length != hops[1] or up.config.hop_length != hops[0]:
        problems.append(f"hops: LOW {low.config.hop_length}, UP {up.config.hop_length}, VQ-VAE levels {hops}")
    if low.config.clip_dim != clip_dim or up.config.clip_dim != clip_dim:
        problems.append(f"the priors expect {low.config.clip_dim}-d CLIP embeddings, the CLIP model gives {clip_dim}")
    if problems:
        raise ValueError("these stages do not fit together: " + "; ".join(problems))


def assemble_pipeline(vqvae: str | os.PathLike, low: str | os.PathLike, up: str | os.PathLike,
                      out: str | os.PathLike, *, clip: str | None = None, dataset: str | os.PathLike | None = None,
                      use_ema: bool = False, overwrite: bool = False) -> Path:
    """Write a pipeline folder (`Im2WavPipeline.save_pretrained`) from the three stages and CLIP.

    Args:
        vqvae, low, up: stage sources (see `im2wav.training.stages.load_stage_model`).
        out: the folder to write. An existing one is an error unless `overwrite`, and even then
            only a pipeline folder (with `model_index.json`) is replaced, atomically; a folder
            holding one of the inputs never is.
        clip: CLIP checkpoint (local folder or hub id); default: the one `dataset` was prepared with.
        dataset: a prepared dataset folder (read only for its CLIP checkpoint).
        use_ema: take the EMA weights of training checkpoints when they were saved.
        overwrite: replace an existing pipeline folder at `out`.

    Returns:
        The pipeline folder.
    """
    from ..clip_encoder import load_clip_image_encoder
    from ..data.shards import DatasetInfo
    from ..pipelines import Im2WavPipeline

    out = Path(out)
    inputs = [Path(p) for p in (vqvae, low, up, dataset, clip) if p is not None and Path(p).exists()]
    check_output_folder(out, overwrite=overwrite, inputs=inputs, marker_files=PIPELINE_MARKERS)  # before loading
    if clip is None:
        if dataset is None:
            raise ValueError("name the CLIP checkpoint with --clip, or pass --dataset to use the one it was prepared with")
        clip = DatasetInfo.load(dataset).clip_model
    image_encoder, feature_extractor = load_clip_image_encoder(clip)
    models = [load_stage_model(src, stage, use_ema=use_ema).eval() for src, stage in
              ((vqvae, "vqvae"), (low, "low"), (up, "up"))]
    check_stages_fit(*models, clip_dim=int(image_encoder.config.projection_dim))
    pipe = Im2WavPipeline(image_encoder=image_encoder, feature_extractor=feature_extractor,
                          vqvae=models[0], low_prior=models[1], up_prior=models[2])
    with atomic_folder(out, overwrite=overwrite, inputs=inputs, marker_files=PIPELINE_MARKERS) as tmp:
        pipe.save_pretrained(tmp)
    return out

"""Assemble an `Im2WavPipeline` from the authors' three original checkpoints and a CLIP image encoder."""

from __future__ import annotations

import os

from transformers import CLIPVisionModelWithProjection

from im2wav.clip_encoder import CLIPImageProcessor

from . import load_original_checkpoint

__all__ = ["build_pipeline_from_original"]

ClipSource = str | os.PathLike | tuple[CLIPVisionModelWithProjection, CLIPImageProcessor]


def build_pipeline_from_original(
    vqvae: str | os.PathLike,
    low: str | os.PathLike,
    up: str | os.PathLike,
    clip: ClipSource,
):
    """Load the original VQ-VAE, LOW and UP checkpoints, check they belong together, add CLIP.

    Args:
        vqvae: the VQ-VAE `.pth.tar`.
        low: the LOW prior `.pth.tar` (top level, hop 32, CLIP + guidance).
        up: the UP prior `.pth.tar` (bottom level, hop 8, conditioned on LOW tokens).
        clip: a CLIP ViT-B/32 folder or hub id (`load_clip_image_encoder`), or a ready
            `(model, processor)` pair.

    Returns:
        An `Im2WavPipeline` (float32, CPU, eval mode); `save_pretrained` it to get a model folder.

    Raises:
        ValueError: a file holds the wrong kind of model (e.g. --low and --up swapped), or the models
            do not fit together (codebook sizes, hop lengths, CLIP width).
    """
    from im2wav.pipelines import Im2WavPipeline

    from im2wav.clip_encoder import load_clip_image_encoder
    from im2wav.models.prior import Im2WavPrior
    from im2wav.models.vqvae import HierarchicalVQVAE

    vqvae_model = load_original_checkpoint(vqvae)
    low_prior = load_original_checkpoint(low)
    up_prior = load_original_checkpoint(up)

    if not isinstance(vqvae_model, HierarchicalVQVAE):
        raise ValueError(f"--vqvae {vqvae} holds a {type(vqvae_model).__name__}, not the VQ-VAE")
    for name, path, model, is_up in (("low", low, low_prior, False), ("up", up, up_prior, True)):
        if not isinstance(model, Im2WavPrior):
            raise ValueError(f"--{name} {path} holds a {type(model).__name__}, not a prior")
        if (model.config.lower_vocab_size is not None) != is_up:
            other = "an UP" if not is_up else "a LOW"
            raise ValueError(f"--{name} {path} holds {other} prior; check the --low and --up arguments are not swapped")

    hops = vqvae_model.hop_lengths  # level 0 first
    bins = vqvae_model.config.l_bins
    problems = []
    if low_prior.config.hop_length != hops[-1]:
        problems.append(f"LOW prior hop {low_prior.config.hop_length} != VQ-VAE top-level hop {hops[-1]}")
    if up_prior.config.hop_length != hops[0]:
        problems.append(f"UP prior hop {up_prior.config.hop_length} != VQ-VAE level-0 hop {hops[0]}")
    for name, size in (
        ("LOW vocab", low_prior.config.vocab_size),
        ("UP vocab", up_prior.config.vocab_size),
        ("UP lower_vocab", up_prior.config.lower_vocab_size),
    ):
        if size != bins:
            problems.append(f"{name} {size} != VQ-VAE codebook size {bins}")
    if up_prior.upsample_factor * up_prior.config.hop_length != low_prior.config.hop_length:
        problems.append("the UP prior's LOW-token upsampling does not match the two hop lengths")
    if problems:
        raise ValueError("the three checkpoints do not belong together: " + "; ".join(problems))

    if isinstance(clip, tuple):
        image_encoder, feature_extractor = clip
    else:
        image_encoder, feature_extractor = load_clip_image_encoder(clip)
    if image_encoder.config.projection_dim != low_prior.config.clip_dim:
        raise ValueError(
            f"the CLIP encoder gives {image_encoder.config.projection_dim}-d embeddings, the priors expect "
            f"{low_prior.config.clip_dim}-d (CLIP ViT-B/32)"
        )
    return Im2WavPipeline(
        image_encoder=image_encoder.eval(),
        feature_extractor=feature_extractor,
        vqvae=vqvae_model,
        low_prior=low_prior,
        up_prior=up_prior,
    )

"""Tiny real components for pipeline, CLI and node tests, built in code (no downloads, seconds on a CPU).

Use the fixtures by importing them into a test module::

    from tiny_components import tiny_pipe, tiny_pipe_dir  # noqa: F401  (pytest fixtures)

or call `build_tiny_pipeline()` / `make_test_video()` directly.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from im2wav.clip_encoder import tiny_clip_vision
from im2wav.media import encode_audio_stream
from im2wav.models.prior import Im2WavPrior
from im2wav.models.vqvae import HierarchicalVQVAE

# 0.064 s = 1024 samples = 32 LOW tokens = 128 UP tokens: a full pipeline run in about a second.
# Model config overrides far below the "tiny" presets, so that each training stage of a test runs in
# a second or two (the VQ-VAE's also shrink its loss's STFT); LOW still needs its `min_duration`.
TINY_TRAINING = {
    "vqvae": ("tiny", {"width": 8, "depth": 1, "emb_width": 8, "l_bins": 16, "multispec_n_fft": [256],
                       "multispec_hop_length": [64], "multispec_window_size": [256]}),
    "low": ("tiny-low", {"width": 32, "depth": 3, "vocab_size": 16, "blocks": 8}),
    "up": ("tiny-up", {"width": 32, "depth": 3, "vocab_size": 16, "lower_vocab_size": 16, "lower_channels": 8,
                       "lower_depth": 1, "blocks": 16}),
}


def tiny_stage_args(stage: str, **overrides) -> list[str]:
    """`--preset` and `--config-overrides` of a tiny training stage (`TINY_TRAINING`), plus `overrides`."""
    preset, config = TINY_TRAINING[stage]
    return ["--preset", preset, "--config-overrides", json.dumps({**config, **overrides})]


TINY_SECONDS = 0.064


def build_tiny_pipeline(seed: int = 0):
    """An `Im2WavPipeline` of tiny random components: CLIP (2 layers, 32 px), VQ-VAE "tiny",
    priors "tiny-low" / "tiny-up" (n_ctx 128 / 512). Deterministic in `seed`; the global RNG is untouched.

    The VQ-VAE codebooks get random vectors (untrained ones are all zeros); the token embeddings,
    the CLIP MLPs and the null (guidance) embeddings are re-drawn larger than the default init, so
    that the image, the seed and guidance all visibly change the sampled tokens (with the default
    init every image gives the same tokens).
    """
    from im2wav.pipelines import Im2WavPipeline

    image_encoder, feature_extractor = tiny_clip_vision(seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vqvae = HierarchicalVQVAE.from_preset("tiny").eval()
        low_prior = Im2WavPrior.from_preset("tiny-low").eval()
        up_prior = Im2WavPrior.from_preset("tiny-up").eval()
        with torch.no_grad():
            for quantizer in vqvae.quantizers:  # untrained codebooks are all zeros: every code decodes alike
                quantizer.codebook.normal_(0.0, 1.0)
                quantizer.initialized.fill_(True)
            for prior in (low_prior, up_prior):
                prior.token_embedding.weight.normal_(0.0, 0.1)
                for mlp in (prior.start_mlp, prior.frame_mlp):
                    if mlp is not None:
                        mlp.fc.weight.normal_(0.0, 0.2)
                        mlp.proj.weight.normal_(0.0, 0.3)
                for null in (prior.null_start, prior.null_frame):
                    if null is not None:
                        null.normal_(0.0, 1.0)
    return Im2WavPipeline(
        image_encoder=image_encoder,
        feature_extractor=feature_extractor,
        vqvae=vqvae,
        low_prior=low_prior,
        up_prior=up_prior,
    )


def make_test_video(
    path: str | Path,
    seconds: float = 1.0,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    codec: str = "mpeg4",
    audio_rate: int | None = 22050,
) -> Path:
    """Write a small synthetic video with PyAV: frame k is a flat colour that brightens with k (so
    frames are told apart by their mean), plus optionally a 440 Hz mono tone track."""
    import av

    path = Path(path)
    width, height = size
    num_frames = int(round(seconds * fps))
    with av.open(str(path), mode="w") as output:
        video = output.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = output.add_stream("aac", rate=audio_rate, layout="mono") if audio_rate else None
        for k in range(num_frames):
            level = int(20 + 200 * k / max(1, num_frames - 1))
            pixels = np.full((height, width, 3), level, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = k
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                output.mux(packet)
        for packet in video.encode(None):
            output.mux(packet)
        if audio is not None:
            t = np.arange(int(seconds * audio_rate)) / audio_rate
            tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
            encode_audio_stream(output, audio, tone, audio_rate)
    return path


def tiny_image(seed: int = 0, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A flat random colour with mild noise: the tiny CLIP tells such images apart (pure noise
    images all embed alike)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, 3) + rng.normal(0, 20, (size[1], size[0], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def tiny_pipe():
    """A shared tiny `Im2WavPipeline` on the CPU (do not modify it in a test; build your own instead)."""
    return build_tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def tiny_pipe_dir(tiny_pipe, tmp_path_factory) -> Path:
    """`tiny_pipe` saved with `save_pretrained` (a read-only model folder for loading tests)."""
    folder = tmp_path_factory.mktemp("tiny_pipe")
    tiny_pipe.save_pretrained(folder)
    return folder

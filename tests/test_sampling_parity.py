"""Parity of the cached sampler with the original's cached sampler (tokens forced, logits compared)
and of the forced-token end-to-end run LOW -> UP -> VQ-VAE decode (`models/sample.py`)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from conftest import shared_path
from im2wav.convert import load_original_checkpoint
from im2wav.models.prior_conditioning import token_to_frame
from im2wav.sampling import filter_logits, forced_decode_logits, low_window_inputs

ATOL = 1e-4


@pytest.fixture(scope="module")
def low_io() -> dict[str, torch.Tensor]:
    return load_file(shared_path("parity", "low_tiny_io.safetensors"))


@pytest.fixture(scope="module")
def pipe_io() -> dict[str, torch.Tensor]:
    return load_file(shared_path("parity", "sample_pipeline_tiny_io.safetensors"))


@pytest.fixture(scope="module")
def low():
    return load_original_checkpoint(shared_path("parity", "low_tiny.pth.tar"))


@pytest.fixture(scope="module")
def up():
    return load_original_checkpoint(shared_path("parity", "up_tiny.pth.tar"))


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def test_cached_low_sampler_logits_with_guidance(low_io, low):
    y = low_io["in.y_video"]
    out = forced_decode_logits(low, low_io["in.z"], frame_embeds=y[:, :, 3:], timing=y[:, 0, :3], guidance_scale=3.0)
    assert _max_err(out["cond"], low_io["out.sample_forced.cond"]) < ATOL
    assert _max_err(out["null"], low_io["out.sample_forced.uncond"]) < ATOL
    assert _max_err(out["guided"], low_io["out.sample_forced.cfg_logits"]) < ATOL


@pytest.mark.parametrize("kind,kwargs", [("topk8", dict(top_k=8)), ("topp0.9", dict(top_p=0.9))])
def test_filter_logits_matches_original(low_io, kind, kwargs):
    logits = low_io["out.sample_forced.cfg_logits"][:, [0, 1, 64, 127]]
    expected = low_io[f"out.sample_forced.filter_{kind}.steps_0_1_64_127"]
    ours = filter_logits(logits, **kwargs)
    assert torch.equal(torch.isinf(ours), torch.isinf(expected))
    assert torch.equal(ours[~torch.isinf(ours)], expected[~torch.isinf(expected)])


@pytest.mark.parametrize("source", ["video", "image"])
def test_low_window_inputs_match_sample_py(pipe_io, low, source):
    """One 4096-sample window: all frames, timing (160000, 0, 4096), the original's frame mapping."""
    y_eff = pipe_io[f"{source}_forced.low.y_effective"]
    frames, timing = low_window_inputs(low, pipe_io[f"{source}.in.y_video"][:, :, 3:], start=0, num_tokens=128)
    assert torch.equal(frames, y_eff[:, :, 3:])
    assert torch.equal(timing, y_eff[:, 0, :3])
    assert torch.equal(token_to_frame(128, frames.shape[1]), pipe_io[f"{source}.low_token2frame"])


@pytest.mark.parametrize("source", ["video", "image"])
def test_forced_end_to_end_low_up_decode(pipe_io, low, up, source):
    """models/sample.py with forced tokens: LOW logits (both branches, guided), UP logits, audio."""
    frames, timing = low_window_inputs(low, pipe_io[f"{source}.in.y_video"][:, :, 3:], start=0, num_tokens=128)
    z_low, z_up = pipe_io["forced.low_tokens"], pipe_io["forced.up_tokens"]
    out = forced_decode_logits(low, z_low, frame_embeds=frames, timing=timing, guidance_scale=3.0)
    run = f"{source}_forced"
    assert _max_err(out["cond"], pipe_io[f"{run}.low.cond"]) < ATOL
    assert _max_err(out["null"], pipe_io[f"{run}.low.uncond"]) < ATOL
    assert _max_err(out["guided"], pipe_io[f"{run}.low.cat_logits"]) < ATOL

    up_frames = pipe_io[f"{source}.in.y"][:, None, 3:]  # UP: the clip's mean CLIP
    up_out = forced_decode_logits(up, z_up, frame_embeds=up_frames, lower_tokens=z_low)
    assert _max_err(up_out["cond"], pipe_io[f"{run}.up.logits"]) < ATOL

    vqvae = load_original_checkpoint(shared_path("parity", "vqvae_tiny.pth.tar"))
    with torch.no_grad():
        audio_low = vqvae.decode(z_low, level=1)  # (B, 1, S)
        audio_up = vqvae.decode(z_up, level=0)
    assert _max_err(audio_low[:, 0], pipe_io[f"{run}.low.decoded_audio"][..., 0]) < 1e-4
    assert _max_err(audio_up[:, 0], pipe_io[f"{run}.up.decoded_audio"][..., 0]) < 1e-4


def test_seeded_original_run_teacher_forced(pipe_io, low, up):
    """The original's own seeded samples, fed back: our cached logits equal its per-step logits."""
    frames, timing = low_window_inputs(low, pipe_io["video.in.y_video"][:, :, 3:], start=0, num_tokens=128)
    z_low, z_up = pipe_io["video_seed1234.low.tokens"], pipe_io["video_seed1234.up.tokens"]
    out = forced_decode_logits(low, z_low, frame_embeds=frames, timing=timing, guidance_scale=3.0)
    assert _max_err(out["guided"], pipe_io["video_seed1234.low.cat_logits"]) < ATOL
    up_out = forced_decode_logits(up, z_up, frame_embeds=pipe_io["video.in.y"][:, None, 3:], lower_tokens=z_low)
    assert _max_err(up_out["cond"], pipe_io["video_seed1234.up.logits"]) < ATOL

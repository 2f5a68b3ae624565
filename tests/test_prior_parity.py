"""Parity of the converted LOW/UP priors with the original implementation's golden fixtures.

`../shared/parity/{low,up}_tiny*`: teacher-forced logits of the original for video and image
conditioning, label and null (guidance) branches, float32 and float16-weight checkpoints.
"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from conftest import shared_path
from im2wav.convert import load_original_checkpoint, read_original_checkpoint
from im2wav.convert.prior import prior_from_original
from im2wav.losses.tokens import bits_per_token, prior_token_loss
from im2wav.models.prior import Im2WavPrior
from im2wav.models.prior_conditioning import token_to_frame

ATOL = 1e-4  # original vs original cross-path noise is 1.7e-5 with logit std ~9


@pytest.fixture(scope="module")
def low_io() -> dict[str, torch.Tensor]:
    return load_file(shared_path("parity", "low_tiny_io.safetensors"))


@pytest.fixture(scope="module")
def up_io() -> dict[str, torch.Tensor]:
    return load_file(shared_path("parity", "up_tiny_io.safetensors"))


@pytest.fixture(scope="module")
def low_priors() -> dict[str, Im2WavPrior]:
    return {
        "fp32": load_original_checkpoint(shared_path("parity", "low_tiny.pth.tar")),
        "fp16": load_original_checkpoint(shared_path("parity", "low_tiny_fp16params.pth.tar")),
    }


@pytest.fixture(scope="module")
def up_prior() -> Im2WavPrior:
    return load_original_checkpoint(shared_path("parity", "up_tiny.pth.tar"))


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def test_converted_priors_are_float32_eval_with_expected_config(low_priors, up_prior):
    low = low_priors["fp32"]
    assert isinstance(low, Im2WavPrior) and not low.training
    assert all(p.dtype == torch.float32 for p in low_priors["fp16"].parameters())
    assert low.config.n_ctx == 128 and low.config.hop_length == 32 and low.config.guidance
    assert up_prior.config.n_ctx == 512 and up_prior.config.hop_length == 8 and not up_prior.config.guidance
    assert up_prior.upsample_factor == 4
    # the tiny presets describe exactly the fixture checkpoints
    for name, prior in (("tiny-low", low), ("tiny-up", up_prior)):
        preset = Im2WavPrior.from_preset(name)
        assert {k: v for k, v in preset.config.items() if not k.startswith("_")} == \
            {k: v for k, v in prior.config.items() if not k.startswith("_")}


@pytest.mark.parametrize("weights", ["fp32", "fp16"])
@pytest.mark.parametrize("branch", ["label", "null"])
@pytest.mark.parametrize("source", ["video", "image"])
def test_low_teacher_forced_logits(low_io, low_priors, weights, branch, source):
    y = low_io[f"in.y_{source}"]  # (N, F, 515) = [total, offset, length, clip_512] per frame
    prefix = "out." if weights == "fp32" else "out.fp16params."
    with torch.no_grad():
        logits = low_priors[weights](low_io["in.z"], frame_embeds=y[:, :, 3:], timing=y[:, 0, :3],
                                     unconditional=branch == "null")
    assert _max_err(logits, low_io[f"{prefix}{source}.{branch}.logits"]) < ATOL


def test_low_random_tokens_logits(low_io, low_priors):
    y = low_io["in.y_video"]
    with torch.no_grad():
        logits = low_priors["fp32"](low_io["in.z_rand"], frame_embeds=y[:, :, 3:], timing=y[:, 0, :3])
    assert _max_err(logits, low_io["out.rand.video.label.logits"]) < ATOL


@pytest.mark.parametrize("branch", ["label", "null"])
@pytest.mark.parametrize("source", ["video", "image"])
def test_low_conditioning_pieces(low_io, low_priors, branch, source):
    prior = low_priors["fp32"]
    y = low_io[f"in.y_{source}"]
    dbg = f"out.{source}.{branch}"
    with torch.no_grad():
        cond = prior.condition(2, 128, y[:, :, 3:], timing=y[:, 0, :3], unconditional=branch == "null")
        time_signal = prior.time_embedding(y[:, 0, :3])
    assert torch.equal(time_signal, low_io[f"{dbg}.dbg.time_signal"])  # same bins, same rows
    assert _max_err(cond.start, low_io[f"{dbg}.y_cond"][:, 0]) < 1e-5
    assert _max_err(cond.x_cond, low_io[f"{dbg}.x_cond"]) < 1e-5
    if branch == "label":
        with torch.no_grad():
            frames = prior.frame_mlp(y[:, :, 3:])
        assert _max_err(frames, low_io[f"{dbg}.dbg.video_emb"]) < 1e-5


@pytest.mark.parametrize("source", ["video", "image"])
def test_token_to_frame_mapping(low_io, source):
    frames = low_io[f"in.y_{source}"].shape[1]
    assert torch.equal(token_to_frame(128, frames), low_io[f"out.{source}.token2frame"])


def test_token_to_frame_rounds_half_to_even():
    # linspace(0, 1, 3) * 1 = [0, 0.5, 1]: numpy rounds 0.5 to 0, not 1
    assert token_to_frame(3, 2).tolist() == [0, 0, 1]


def test_low_layer_outputs(low_io, low_priors):
    """Every transformer layer's residual stream matches, so a failure names the first bad layer."""
    prior, y = low_priors["fp32"], low_io["in.y_video"]
    outputs = []
    hooks = [layer.register_forward_hook(lambda m, i, o: outputs.append(o)) for layer in prior.layers]
    try:
        with torch.no_grad():
            prior(low_io["in.z"], frame_embeds=y[:, :, 3:], timing=y[:, 0, :3])
    finally:
        for h in hooks:
            h.remove()
    for i, out in enumerate(outputs):
        expected = low_io["out.video.label.dbg.layer_out"][i]
        assert _max_err(out, expected) < ATOL, f"layer {i} ({prior.layers[i].attn.kind})"


def test_low_bits_per_token_matches_original_bpd(low_io, low_priors):
    y = low_io["in.y_video"]
    with torch.no_grad():
        logits = low_priors["fp32"](low_io["in.z"], frame_embeds=y[:, :, 3:], timing=y[:, 0, :3])
    assert abs(bits_per_token(logits, low_io["in.z"]).item() - low_io["out.video.label.bpd"].item()) < 1e-5


def test_training_loss_with_condition_dropout_matches_original_z_forward(low_io, low_priors):
    """Seeded dropout draws the original's mask and routes dropped rows through the null condition."""
    y = low_io["in.y_video"]
    torch.manual_seed(0)  # the fixture's zforward_seed; the mask is the first draw
    with torch.no_grad():
        out = prior_token_loss(low_priors["fp32"], low_io["in.z"], frame_embeds=y[:, :, 3:], timing=y[:, 0, :3],
                               condition_dropout=0.5)
    assert torch.equal(out.unconditional, low_io["out.zforward.mask_null"])
    assert _max_err(out.logits, low_io["out.zforward.logits"]) < ATOL
    assert abs(out.loss.item() - low_io["out.zforward.loss"].item()) < 1e-5
    assert abs(out.cross_entropy.item() - out.loss.item() * math.log(2)) < 1e-6


def test_up_logits_given_low_tokens(up_io, up_prior):
    frames = up_io["in.y"][:, None, 3:]  # (N, 1, 512): UP reads the clip's mean CLIP
    with torch.no_grad():
        cond = up_prior.condition(2, 512, frames, lower_tokens=up_io["in.z_cond_low"])
        logits = up_prior(up_io["in.z"], frame_embeds=frames, lower_tokens=up_io["in.z_cond_low"])
        rand = up_prior(up_io["in.z_rand"], frame_embeds=frames, lower_tokens=up_io["in.z_cond_low"])
    assert _max_err(cond.x_cond, up_io["out.label.x_cond"]) < 1e-5
    assert _max_err(cond.start, up_io["out.label.y_cond"][:, 0]) < 1e-5
    assert _max_err(logits, up_io["out.label.logits"]) < ATOL
    assert _max_err(rand, up_io["out.rand.label.logits"]) < ATOL
    assert abs(bits_per_token(logits, up_io["in.z"]).item() - up_io["out.label.bpd"].item()) < 1e-5


def test_converter_fails_loudly_on_unknown_and_missing_keys():
    checkpoint = read_original_checkpoint(shared_path("parity", "low_tiny.pth.tar"))
    extra = dict(checkpoint.state_dict, **{"prior.surprise": torch.zeros(1)})
    with pytest.raises(ValueError, match="unknown keys.*prior.surprise"):
        prior_from_original(type(checkpoint)(**{**vars(checkpoint), "state_dict": extra}))
    fewer = {k: v for k, v in checkpoint.state_dict.items() if k != "y_emb.null_CLIP"}
    with pytest.raises(ValueError, match="missing keys.*null_CLIP"):
        prior_from_original(type(checkpoint)(**{**vars(checkpoint), "state_dict": fewer}))
    wrong = dict(checkpoint.hps, attn_order=0)
    with pytest.raises(ValueError, match="attn_order"):
        prior_from_original(type(checkpoint)(**{**vars(checkpoint), "hps": wrong}))

"""Parity of `HierarchicalVQVAE` (converted from the original checkpoint) with the original's outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import shared_path
from im2wav.convert import load_original_checkpoint, read_original_checkpoint
from im2wav.convert.vqvae import vqvae_loss_config_from_hps
from im2wav.losses.vqvae import vqvae_loss

# The loss terms the original forward reports and we reproduce (`out.forward.metric.*`).
METRICS = [
    "recons_loss_l1", "recons_loss_l2", "spectral_loss_l1", "spectral_loss_l2", "multispectral_loss_l1",
    "multispectral_loss_l2", "recons_loss", "spectral_loss", "multispectral_loss", "commit_loss",
    "spectral_convergence", "l2_loss", "l1_loss", "linf_loss",
]


@pytest.fixture(scope="module")
def golden():
    parity = shared_path("parity")
    model = load_original_checkpoint(parity / "vqvae_tiny.pth.tar")
    io = load_file(parity / "vqvae_tiny_io.safetensors")
    spec = json.loads((parity / "vqvae_tiny_io.json").read_text())
    audio = io["in.x"].permute(0, 2, 1)  # (B, S, 1) -> (B, 1, S)
    loss_config = vqvae_loss_config_from_hps(read_original_checkpoint(parity / "vqvae_tiny.pth.tar").hps)
    with torch.no_grad():
        output = vqvae_loss(model, audio, loss_config)
    return model, io, spec, audio, output


def test_codes_equal_on_both_levels(golden):
    model, io, _, audio, _ = golden
    codes = model.encode(audio)
    assert torch.equal(codes[0], io["out.z.level0_up"])
    assert torch.equal(codes[1], io["out.z.level1_low"])


@pytest.mark.parametrize("level", [0, 1])
def test_encoder_outputs_before_quantisation(golden, level):
    model, io, _, audio, _ = golden
    with torch.no_grad():
        pre = model.encoders[level](audio)
    torch.testing.assert_close(pre, io[f"out.enc_prequant.level{level}"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("level", [0, 1])
def test_decode_each_level(golden, level):
    model, io, _, _, _ = golden
    codes = [io["out.z.level0_up"], io["out.z.level1_low"]]
    expected = io[f"out.decode.start_level{level}"].permute(0, 2, 1)  # (B, S, 1) -> (B, 1, S)
    assert (model.decode(codes[level], level=level) - expected).abs().max() < 1e-5
    # The list form selects the same level.
    assert torch.equal(model.decode(codes, level=level), model.decode(codes[level], level=level))


def test_forward_reconstruction(golden):
    _, io, _, _, output = golden
    assert (output.sample - io["out.forward.x_out"].permute(0, 2, 1)).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["loss", *METRICS])
def test_forward_loss_terms(golden, name):
    _, io, spec, _, output = golden
    ours = output.loss if name == "loss" else output.metrics[name]
    key = "out.forward." + ("loss" if name == "loss" else f"metric.{name}")
    reference = io[key].reshape(())
    assert torch.isclose(ours, reference, rtol=1e-4, atol=0), f"{name}: {ours.item()} vs {reference.item()}"
    assert abs(spec["scalars"][key.removeprefix("out.")] - ours.item()) <= 1e-4 * abs(ours.item())


def test_stereo_fixture_mixes_to_the_mono_fixture(golden):
    """The documented stereo route (`mean` over channels) gives the original's mono input and codes."""
    model, io, _, _, _ = golden
    stereo = io["in.x_stereo"].permute(0, 2, 1)  # (B, S, 2) -> (B, 2, S)
    with pytest.raises(ValueError, match="mean"):
        model.encode(stereo)
    codes = model.encode(stereo.mean(dim=1, keepdim=True))
    assert torch.equal(codes[0], io["out.z.level0_up"]) and torch.equal(codes[1], io["out.z.level1_low"])

"""Properties of `HierarchicalVQVAE` on tiny random configs: shapes, gradients, round trips, bad input."""

from __future__ import annotations

import copy
import json
import tempfile

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from im2wav import HierarchicalVQVAE
from im2wav.losses.vqvae import VQVAELossConfig, vqvae_loss
from im2wav.models.vqvae import PRESETS, TRAINING_KEYS

# Small STFTs so that the loss runs on 256-sample clips in milliseconds.
SMALL_LOSS = dict(linf_k=16, spec_n_fft=64, spec_hop_length=16, spec_window_size=48,
                  multispec_n_fft=[64, 32], multispec_hop_length=[8, 4], multispec_window_size=[32, 16])


def small_model(seed: int = 0, **overrides) -> HierarchicalVQVAE:
    """A 2-level model with hops 4 and 8, random codebooks."""
    config = dict(levels=2, downs_t=[2, 1], strides_t=[2, 2], emb_width=4, l_bins=8, width=4, depth=2)
    torch.manual_seed(seed)
    model = HierarchicalVQVAE(**{**config, **overrides})
    for quantizer in model.quantizers:
        quantizer.set_codebook(torch.randn(quantizer.num_codes, quantizer.dim))
    return model.eval()


def plain_config(model: HierarchicalVQVAE) -> dict:
    """The constructor arguments as JSON would store them (tuples become lists)."""
    return {k: v for k, v in json.loads(model.to_json_string()).items() if not k.startswith("_")}


@st.composite
def configs(draw):
    levels = draw(st.integers(1, 2))
    return dict(
        levels=levels,
        downs_t=draw(st.lists(st.integers(1, 2), min_size=levels, max_size=levels)),
        strides_t=draw(st.lists(st.sampled_from([2, 4]), min_size=levels, max_size=levels)),
        emb_width=draw(st.integers(2, 6)),
        l_bins=draw(st.integers(2, 12)),
        width=draw(st.integers(2, 6)),
        depth=draw(st.integers(1, 3)),
        m_conv=draw(st.sampled_from([0.5, 1.0, 2.0])),
        dilation_growth_rate=draw(st.integers(1, 3)),
        dilation_cycle=draw(st.sampled_from([None, 1, 2])),
        reverse_decoder_dilation=draw(st.booleans()),
        res_scale=draw(st.booleans()),
        hvqvae_multipliers=draw(st.sampled_from([None, [1, 2][:levels]])),
    )


@settings(max_examples=10, deadline=None)
@given(config=configs(), seed=st.integers(0, 2**16), hops=st.integers(1, 3))
def test_save_load_round_trip_keeps_codes(config, seed, hops):
    model = small_model(seed, **config)
    audio = torch.randn(2, hops * model.hop_lengths[-1]) * 0.3
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        loaded = HierarchicalVQVAE.from_pretrained(tmp).eval()
    assert plain_config(loaded) == plain_config(model)
    for (name, ours), (_, theirs) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(ours, theirs), name  # codebooks and EMA state are buffers and round trip
    codes, loaded_codes = model.encode(audio), loaded.encode(audio)
    for level, (a, b) in enumerate(zip(codes, loaded_codes)):
        assert torch.equal(a, b)
        assert torch.equal(model.decode(a, level=level), loaded.decode(b, level=level))


def test_output_lengths_for_every_valid_length():
    model = small_model()  # hops 4 and 8
    for length in range(8, 8 * 8 + 1, 8):
        codes = model.encode(torch.randn(1, length))
        assert [c.shape for c in codes] == [(1, length // 4), (1, length // 8)]
        assert [c.dtype for c in codes] == [torch.long, torch.long]
        for level in range(2):
            assert model.decode(codes, level=level).shape == (1, 1, length)
            assert model.codes_length(length, level) == codes[level].shape[1]


def test_lengths_not_divisible_by_the_largest_hop_are_refused():
    model = small_model()
    for length in range(1, 40):
        if length % 8:
            with pytest.raises(ValueError, match="multiple of the largest hop"):
                model.encode(torch.randn(1, length))


def test_batched_and_channel_layouts_agree():
    model = small_model()
    audio = torch.randn(3, 64)
    flat, channel = model.encode(audio), model.encode(audio[:, None])
    single = model.encode(audio[1:2])
    for level in range(2):
        assert torch.equal(flat[level], channel[level])
        assert torch.equal(flat[level][1:2], single[level])


@pytest.mark.parametrize(
    "audio, error, match",
    [
        (torch.randn(64), ValueError, r"\[B, S\]"),
        (torch.randn(1, 1, 1, 64), ValueError, r"\[B, S\]"),
        (torch.randint(-100, 100, (1, 64)), TypeError, "float"),
        (torch.randn(1, 2, 64), ValueError, "mono"),
        (torch.randn(1, 64, 1), ValueError, "transpose"),
        (torch.full((1, 64), float("nan")), ValueError, "NaN"),
        (torch.tensor([[0.0] * 63 + [float("inf")]]), ValueError, "infinite"),
        (torch.randn(1, 0), ValueError, "positive multiple"),
        ([[0.0] * 64], TypeError, "torch.Tensor"),
    ],
)
def test_bad_audio_is_refused_with_a_clear_error(audio, error, match):
    model = small_model()
    with pytest.raises(error, match=match):
        model.encode(audio)
    with pytest.raises(error, match=match):
        model(audio)


def test_bad_codes_are_refused_with_a_clear_error():
    model = small_model()
    with pytest.raises(ValueError, match="level"):
        model.decode(torch.zeros(1, 4, dtype=torch.long), level=2)
    with pytest.raises(TypeError, match="integer"):
        model.decode(torch.zeros(1, 4), level=0)
    with pytest.raises(ValueError, match=r"\[0, 7\]"):
        model.decode(torch.full((1, 4), 8), level=0)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        model.decode(torch.zeros(4, dtype=torch.long), level=0)
    with pytest.raises(ValueError, match="one tensor per level"):
        model.decode([torch.zeros(1, 4, dtype=torch.long)], level=0)


def test_training_forward_gradients_reach_every_encoder_and_decoder():
    model = small_model().train()
    audio = torch.randn(2, 1, 256) * 0.1
    output = vqvae_loss(model, audio, VQVAELossConfig(**SMALL_LOSS))
    assert output.sample.shape == audio.shape and len(output.reconstructions) == 2
    assert output.sample is output.reconstructions[0]
    output.loss.backward()
    for name in ("encoders.0.", "encoders.1.", "decoders.0.", "decoders.1."):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name)]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, name


def test_training_updates_codebooks_and_eval_does_not():
    model = small_model()
    audio = torch.randn(2, 1, 256) * 0.1
    before = [q.codebook.clone() for q in model.quantizers]
    with torch.no_grad():
        model.eval()(audio)
    assert all(torch.equal(b, q.codebook) for b, q in zip(before, model.quantizers))
    codes_before = model.encode(audio)
    # the update is exactly one EMA step of each level's codebook on that level's encoder output
    expected = []
    with torch.no_grad(), torch.random.fork_rng(devices=[]):  # revival draws from the RNG: replay the same stream
        for encoder, quantizer in zip(model.encoders, model.quantizers):
            book = copy.deepcopy(quantizer).train()
            book(encoder(audio))
            expected.append(book.codebook)
    with torch.no_grad():
        output = model.train()(audio)
    for level, quantizer in enumerate(model.quantizers):
        torch.testing.assert_close(quantizer.codebook, expected[level], rtol=0, atol=0)
        assert torch.equal(output.codes[level], codes_before[level])  # quantised with the codebook before the step
    assert {"usage", "dk", "perplexity", "fit"} <= set(output.codebook_usage)


def test_forward_encodes_quantises_and_decodes():
    model = small_model()
    audio = torch.randn(2, 256) * 0.1
    with torch.no_grad():
        output = model(audio)
    codes = model.encode(audio)
    for level in range(2):
        assert torch.equal(output.codes[level], codes[level])
        torch.testing.assert_close(output.reconstructions[level], model.decode(codes, level=level))
        quantized = model.quantizers[level].decode(codes[level])  # (B, D, T)
        pre = model.encoders[level](audio[:, None])
        torch.testing.assert_close(output.commit_losses[level], (quantized - pre).pow(2).mean())


def test_loss_is_the_weighted_sum_of_its_terms():
    model = small_model()
    with torch.no_grad():
        output = vqvae_loss(model, torch.randn(2, 256) * 0.1,
                            VQVAELossConfig(**SMALL_LOSS, spectral=0.5, multispectral=2.0, commit=0.3))
    m = output.metrics
    expected = m["recons_loss"] + 0.5 * m["spectral_loss"] + 2.0 * m["multispectral_loss"] + 0.3 * m["commit_loss"]
    torch.testing.assert_close(output.loss, expected)
    torch.testing.assert_close(m["recons_loss"], m["recons_loss_l1"] + m["recons_loss_l2"])


@pytest.mark.parametrize("spectral, nonrelative", [(0.0, True), (0.5, True), (0.5, False)])
def test_loss_and_gradients_are_those_of_the_audio_losses(spectral, nonrelative):
    """`vqvae_loss` shares the target's spectrograms and leaves a zero-weight spectral term out of the
    backward pass: the loss, its metrics and every gradient stay those of the plain audio losses."""
    from im2wav.losses import audio as A

    config = VQVAELossConfig(**SMALL_LOSS, spectral=spectral, use_nonrelative_specloss=nonrelative,
                             bandwidth_spec=0.7)
    audio = torch.randn(2, 256) * 0.1
    model, reference = small_model().train(), small_model().train()
    torch.manual_seed(1)
    output = vqvae_loss(model, audio, config)
    output.loss.backward()

    torch.manual_seed(1)
    out = reference(audio)
    x = audio[:, None]
    total, metrics = 0.0, {}
    for level, x_out in enumerate(out.reconstructions):
        if nonrelative:
            spec = A.spectral_distance(x, x_out, *config.stft).mean() / config.bandwidth_spec
        else:
            spec = A.spectral_convergence(x, x_out, *config.stft).mean()
        multispec = A.multi_resolution_spectral_distance(x, x_out, config.resolutions).mean() / config.bandwidth_spec
        recons = A.lmix(x, x_out, config.lmix_l1, config.lmix_l2, config.lmix_linf, config.linf_k)
        total = total + recons + spectral * spec + config.multispectral * multispec
        metrics[f"spectral_loss_l{level + 1}"], metrics[f"multispectral_loss_l{level + 1}"] = spec, multispec
    (total + config.commit * sum(out.commit_losses)).backward()

    torch.testing.assert_close(output.loss, total.detach() + config.commit * sum(out.commit_losses).detach())
    for name, value in metrics.items():
        torch.testing.assert_close(output.metrics[name], value.detach())
    torch.testing.assert_close(output.metrics["spectral_convergence"],
                               A.spectral_convergence(x, out.sample, *config.stft).mean().detach())
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_presets_match_the_original_configs():
    """Parameter counts equal the originals' (from the parity map), so the structure is the same."""
    parity = shared_path("parity")
    tiny = json.loads((parity / "architecture_map.json").read_text())["vqvae_tiny"]["summary"]
    paper = json.loads((parity / "real_configs.json").read_text())["vqvae"]["derived"]
    for name, reference in (("tiny", tiny), ("paper", paper)):
        model = HierarchicalVQVAE.from_preset(name)
        assert sum(p.numel() for p in model.parameters()) == reference["n_params"]
        assert model.hop_lengths == reference["hop_lengths"]
        assert model.config.emb_width == reference["emb_width"] and model.config.l_bins == reference["l_bins"]
    with pytest.raises(ValueError, match="unknown preset"):
        HierarchicalVQVAE.from_preset("huge")
    assert set(PRESETS) >= {"tiny", "paper"}
    assert HierarchicalVQVAE.from_preset("tiny", width=8).config.width == 8


def test_hop_lengths_are_products_of_strides():
    model = small_model(downs_t=[1, 2], strides_t=[4, 2])
    assert model.hop_lengths == [4, 4 * 2**2]
    codes = model.encode(torch.randn(1, 3 * 16))
    assert [c.shape[1] for c in codes] == [12, 3]
    with pytest.raises(ValueError, match="even"):
        small_model(strides_t=[3, 2])


# The training fields a VQ-VAE config.json held before the loss split (those of the bundled model's
# VQ-VAE as saved then, with its data statistics)
OLD_TRAINING_FIELDS = {
    "bandwidth_l1": 0.17351589563431702, "bandwidth_l2": 0.052572031235296475, "bandwidth_spec": 650.0887376117937,
    "commit": 0.02, "linf_k": 2048, "lmix_l1": 0.0, "lmix_l2": 1.0, "lmix_linf": 0.02, "loss_fn": "lmix",
    "multispec_hop_length": [240, 120, 50], "multispec_n_fft": [2048, 1024, 512],
    "multispec_window_size": [1200, 600, 240], "multispectral": 1.0, "spec_hop_length": 256, "spec_n_fft": 2048,
    "spec_window_size": 1536, "spectral": 0.0, "use_nonrelative_specloss": True,
}


def test_configs_saved_before_the_loss_split_load_silently_and_keep_their_weights(tmp_path, capfd):
    """A VQ-VAE folder whose config.json still holds the loss weights and data statistics."""
    from safetensors.torch import load_file

    folder = tmp_path / "old"
    small_model().save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**json.loads((folder / "config.json").read_text()),
                                                    **OLD_TRAINING_FIELDS}))
    saved = json.loads((folder / "config.json").read_text())
    assert TRAINING_KEYS <= set(saved)  # the fixture really is an old-style config
    capfd.readouterr()
    model = HierarchicalVQVAE.from_pretrained(folder)
    assert "not expected" not in capfd.readouterr().err  # no "config attributes ... ignored" warning
    assert not TRAINING_KEYS & set(model.config)
    weights = load_file(folder / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items()) and len(weights) > 0
    # the training fields move to the loss config unchanged
    assert VQVAELossConfig.from_dict(saved).bandwidth_spec == saved["bandwidth_spec"]
    # re-saved by the current code: no training fields, same model
    model.save_pretrained(tmp_path / "new")
    assert not TRAINING_KEYS & set(json.loads((tmp_path / "new" / "config.json").read_text()))
    again = HierarchicalVQVAE.from_pretrained(tmp_path / "new")
    assert plain_config(again) == plain_config(model)
    audio = torch.randn(1, 1024) * 0.1
    assert all(torch.equal(a, b) for a, b in zip(again.encode(audio), model.encode(audio)))


def test_loss_config_refuses_bad_values():
    with pytest.raises(ValueError, match="loss_fn must be"):
        VQVAELossConfig(loss_fn="l3")
    with pytest.raises(ValueError, match="one entry per resolution"):
        VQVAELossConfig(multispec_n_fft=[64, 32], multispec_hop_length=[8], multispec_window_size=[32, 16])
    assert VQVAELossConfig.from_dict({"multispec_n_fft": [64], "multispec_hop_length": [8],
                                      "multispec_window_size": [32], "width": 4}).resolutions == ((64, 8, 32),)


def test_the_model_drops_exactly_the_loss_config_fields():
    # models/ cannot import losses/ to derive TRAINING_KEYS: a field added to one list must reach the other
    assert TRAINING_KEYS == VQVAELossConfig.field_names()

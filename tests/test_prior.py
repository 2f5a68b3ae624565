"""Properties of `Im2WavPrior` on tiny random models: sparse causality, padding, round trips, errors."""

from __future__ import annotations

import pytest
import torch

from im2wav.models.prior import PRESETS, Im2WavPrior
from im2wav.models.sparse_attention import FactorizedAttention

N_CTX, BLOCKS, CLIP = 32, 4, 16  # block_ctx 8
BC = N_CTX // BLOCKS


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial weights everywhere (biases, null embeddings, LayerNorms), deterministic in `seed`."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.2 if p.ndim > 1 else 0.1))
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    return model.eval()


def tiny_low(**kw) -> Im2WavPrior:
    cfg = dict(vocab_size=16, n_ctx=N_CTX, width=32, depth=3, heads=2, blocks=BLOCKS, clip_dim=CLIP, hop_length=32,
               time_signal=True, frame_conditioning=True, guidance=True, time_bins=8)
    return randomize(Im2WavPrior(**{**cfg, **kw}))


def tiny_up(**kw) -> Im2WavPrior:
    cfg = dict(vocab_size=16, n_ctx=N_CTX, width=32, depth=3, heads=1, blocks=BLOCKS, clip_dim=CLIP, hop_length=8,
               time_signal=False, frame_conditioning=False, guidance=False, lower_vocab_size=16, lower_channels=8,
               lower_depth=2, lower_dilation_cycle=2)
    return randomize(Im2WavPrior(**{**cfg, **kw}), seed=1)


def low_inputs(batch: int = 2, frames: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 16, (batch, N_CTX), generator=g)
    embeds = torch.nn.functional.normalize(torch.randn(batch, frames, CLIP, generator=g), dim=-1)
    timing = torch.tensor([[160000.0, 0.0, N_CTX * 32.0]]).expand(batch, 3)
    return tokens, embeds, timing


def allowed(kind: str, t: int, s: int) -> bool:
    """Whether query position t reads key position s, by the definition of each kind."""
    if kind == "block":
        return s // BC == t // BC and s <= t
    if kind == "transpose":
        return s % BC == t % BC and s <= t
    return s // BC == t // BC - 1


@pytest.mark.parametrize("kind", ["block", "transpose", "previous"])
def test_attention_reads_exactly_its_sparse_pattern(kind):
    """d out[t] / d x[s] is non-zero exactly where the kind allows (so in particular never for s > t)."""
    torch.manual_seed(0)
    attn = FactorizedAttention(width=16, attn_width=8, heads=2, n_ctx=N_CTX, blocks=BLOCKS, kind=kind)
    x = torch.randn(1, N_CTX, 16, requires_grad=True)
    out = attn(x)
    for t in range(N_CTX):
        (grad,) = torch.autograd.grad(out[0, t].sum(), x, retain_graph=True)
        reads = grad[0].abs().sum(-1) > 0
        expected = torch.tensor([allowed(kind, t, s) for s in range(N_CTX)])
        if kind != "previous" or t >= BC:  # the query itself counts (through q), except where the
            expected[t] = True             # previous-block kind sees zero keys/values (block 0)
        assert torch.equal(reads, expected), f"{kind}: position {t} reads {reads.nonzero().flatten().tolist()}"


def test_model_logits_are_causal_in_tokens():
    prior = tiny_low()
    tokens, embeds, timing = low_inputs()
    with torch.no_grad():
        base = prior(tokens, frame_embeds=embeds, timing=timing)
        for t in (0, 7, 8, 20, 30):
            changed = tokens.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] + 1) % 16
            changed_t = tokens.clone()
            changed_t[:, t] = (changed_t[:, t] + 1) % 16
            assert torch.equal(prior(changed, frame_embeds=embeds, timing=timing)[:, : t + 1], base[:, : t + 1])
            # ...and token t does reach position t + 1
            assert not torch.allclose(prior(changed_t, frame_embeds=embeds, timing=timing)[:, t + 1], base[:, t + 1])


def test_short_sequences_equal_the_prefix_of_a_full_window():
    prior = tiny_low()
    tokens, embeds, timing = low_inputs()
    with torch.no_grad():
        full = prior(tokens, frame_embeds=embeds, timing=timing)
        for T in (1, 5, 8, 13):
            part = prior(tokens[:, :T], frame_embeds=embeds, timing=timing)
            torch.testing.assert_close(part, full[:, :T], atol=1e-5, rtol=0)


def test_unconditional_rows_use_the_null_condition_only():
    prior = tiny_low()
    tokens, embeds, timing = low_inputs()
    other = torch.nn.functional.normalize(torch.randn_like(embeds), dim=-1)
    with torch.no_grad():
        null = prior(tokens, frame_embeds=embeds, timing=timing, unconditional=True)
        null_other = prior(tokens, frame_embeds=other, timing=timing, unconditional=True)
        no_frames = prior(tokens, timing=timing, unconditional=True)
        cond = prior(tokens, frame_embeds=embeds, timing=timing)
        mixed = prior(tokens, frame_embeds=embeds, timing=timing, unconditional=torch.tensor([True, False]))
    torch.testing.assert_close(null, null_other, atol=0, rtol=0)  # the image is not read
    torch.testing.assert_close(null, no_frames, atol=1e-6, rtol=0)
    assert not torch.allclose(null, cond, atol=1e-3)
    torch.testing.assert_close(mixed[0], null[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(mixed[1], cond[1], atol=1e-6, rtol=0)


def test_up_depends_on_lower_tokens_and_accepts_a_window_of_them():
    prior = tiny_up()
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 16, (2, N_CTX), generator=g)
    lower = torch.randint(0, 16, (2, N_CTX // 4), generator=g)
    embeds = torch.randn(2, 1, CLIP, generator=g)
    with torch.no_grad():
        a = prior(tokens, frame_embeds=embeds, lower_tokens=lower)
        b = prior(tokens, frame_embeds=embeds, lower_tokens=(lower + 1) % 16)
    assert a.shape == (2, N_CTX, 16)
    assert not torch.allclose(a, b)


def test_output_projection_is_the_token_embedding():
    prior = tiny_low()
    names = [n for n, _ in prior.named_parameters()]
    assert "token_embedding.weight" in names and not any("lm_head" in n or "x_out" in n for n in names)
    tokens, embeds, timing = low_inputs()
    with torch.no_grad():
        before = prior(tokens, frame_embeds=embeds, timing=timing)
        prior.token_embedding.weight[3] += 1.0  # changes inputs AND the logit of token 3
        after = prior(tokens, frame_embeds=embeds, timing=timing)
    assert not torch.allclose(before[..., 3], after[..., 3])


@pytest.mark.parametrize("make", [tiny_low, tiny_up])
def test_save_load_round_trip(tmp_path, make):
    prior = make()
    prior.save_pretrained(tmp_path)  # safetensors: must not trip over tied weights
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = Im2WavPrior.from_pretrained(tmp_path).eval()
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.config) == public(prior.config)
    for (name, a), (_, b) in zip(prior.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_presets_build_and_paper_sizes_match_the_released_checkpoints():
    assert set(PRESETS) == {"paper-low", "paper-up", "tiny-low", "tiny-up"}
    with torch.device("meta"):
        low = Im2WavPrior.from_preset("paper-low")
        up = Im2WavPrior.from_preset("paper-up")
    # unique parameter counts of the original models (real_configs.json "n_params(unique)")
    assert sum(p.numel() for p in low.parameters()) == 157_344_768
    assert sum(p.numel() for p in up.parameters()) == 203_056_640
    assert [layer.attn.kind for layer in low.layers[:6]] == ["block", "transpose", "previous"] * 2
    assert low.block_ctx == 32 and up.block_ctx == 128 and up.upsample_factor == 4
    with pytest.raises(ValueError, match="unknown preset"):
        Im2WavPrior.from_preset("paper")


def test_clear_errors_for_bad_inputs():
    prior = tiny_low()
    tokens, embeds, timing = low_inputs()
    with pytest.raises(ValueError, match=r"ids must be in \[0, 16\)"):
        prior(tokens + 16, frame_embeds=embeds, timing=timing)
    with pytest.raises(ValueError, match="n_ctx=32"):
        prior(torch.cat([tokens, tokens], 1), frame_embeds=embeds, timing=timing)
    with pytest.raises(ValueError, match="timing"):
        prior(tokens, frame_embeds=embeds)
    with pytest.raises(ValueError, match="frame_embeds .* required"):
        prior(tokens, timing=timing)
    with pytest.raises(ValueError, match="width 15"):
        prior(tokens, frame_embeds=embeds[..., :15], timing=timing)
    with pytest.raises(ValueError, match="NaN"):
        prior(tokens, frame_embeds=embeds * float("nan"), timing=timing)
    with pytest.raises(ValueError, match="total length"):
        prior(tokens, frame_embeds=embeds, timing=timing * torch.tensor([0.0, 1.0, 1.0]))
    up = tiny_up()
    with pytest.raises(ValueError, match="lower_tokens"):
        up(tokens, frame_embeds=embeds)
    with pytest.raises(ValueError, match="no null condition"):
        up(tokens, frame_embeds=embeds, lower_tokens=tokens[:, :8], unconditional=True)
    with pytest.raises(TypeError, match="tokens must be a torch.Tensor"):
        prior(tokens.tolist(), frame_embeds=embeds, timing=timing)
    with pytest.raises(TypeError, match="frame_embeds must be a torch.Tensor"):
        prior(tokens, frame_embeds=embeds.numpy(), timing=timing)
    with pytest.raises(TypeError, match="timing must be a torch.Tensor"):
        prior(tokens, frame_embeds=embeds, timing=timing.tolist())

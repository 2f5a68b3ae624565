"""Properties of the cached sampler on tiny random priors: cache == full pass, one-pass guidance,
per-sample generators, windowed lengths for images and frame sequences, input errors."""

from __future__ import annotations

import math

import pytest
import torch

from im2wav.sampling import (
    apply_guidance,
    decode_one_token,
    draw_tokens,
    filter_logits,
    forced_decode_logits,
    prefill,
    sample_low_tokens,
    sample_next_token,
    sample_up_tokens,
    window_frames,
    window_starts,
)
from test_prior import BC, CLIP, N_CTX, low_inputs, tiny_low, tiny_up


@pytest.fixture(scope="module")
def low():
    return tiny_low()


@pytest.fixture(scope="module")
def up():
    return tiny_up()


def frames(batch: int, count: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(batch, count, CLIP, generator=g), dim=-1)


def test_kv_cache_keeps_only_what_each_kind_reads(low):
    cache = low.new_kv_cache(batch_size=3)
    slots = {layer.kind: layer.kv.shape[0] for layer in cache.layers}
    assert slots == {"block": BC, "transpose": N_CTX, "previous": 2 * BC}
    assert cache.layers[0].kv.shape[1:3] == (2, 3)  # keys and values, batch 3


def test_cached_decoding_equals_full_forward_with_guidance(low):
    """Every step, across all block boundaries, for both branches of the one-pass guidance batch."""
    tokens, embeds, timing = low_inputs()
    out = forced_decode_logits(low, tokens, frame_embeds=embeds, timing=timing, guidance_scale=2.5)
    with torch.no_grad():
        cond = low(tokens, frame_embeds=embeds, timing=timing)
        null = low(tokens, frame_embeds=embeds, timing=timing, unconditional=True)
    torch.testing.assert_close(out["cond"], cond, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["null"], null, atol=1e-5, rtol=0)
    # the batched [cond; null] mix equals the two separate passes mixed as the original does
    torch.testing.assert_close(out["guided"], 2.5 * cond + (1 - 2.5) * null, atol=1e-4, rtol=0)


def test_cached_decoding_equals_full_forward_up(up):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 16, (2, N_CTX), generator=g)
    lower = torch.randint(0, 16, (2, N_CTX // 4), generator=g)
    embeds = frames(2, 3)
    out = forced_decode_logits(up, tokens, frame_embeds=embeds, lower_tokens=lower)
    with torch.no_grad():
        full = up(tokens, frame_embeds=embeds, lower_tokens=lower)
    torch.testing.assert_close(out["cond"], full, atol=1e-5, rtol=0)
    assert "null" not in out


@pytest.mark.parametrize("prompt_len", [0, 5, 8, 13, 24])
def test_prefill_then_decode_equals_full_forward(low, prompt_len):
    tokens, embeds, timing = low_inputs()
    with torch.no_grad():
        full = low(tokens, frame_embeds=embeds, timing=timing)
        cache = low.new_kv_cache(2)
        cache.set_condition(*vars(low.condition(2, N_CTX, embeds, timing=timing)).values())
        logits = [prefill(low, tokens[:, :prompt_len], cache)]
        for pos in range(prompt_len + 1, N_CTX):
            logits.append(decode_one_token(low, tokens[:, pos - 1], torch.tensor([pos]), cache))
    torch.testing.assert_close(torch.stack(logits, 1), full[:, prompt_len:], atol=1e-5, rtol=0)


def test_apply_guidance_formula():
    cond, null = torch.randn(3, 7), torch.randn(3, 7)
    torch.testing.assert_close(apply_guidance(torch.cat([cond, null]), 3.0), 3 * cond - 2 * null)
    torch.testing.assert_close(apply_guidance(torch.cat([cond, null]), 1.0), cond)


def test_batch_element_equals_single_run_with_its_generator(low, up):
    embeds = frames(3, 4)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (11, 12, 13)]  # noqa: E731
    batch = sample_low_tokens(low, embeds, 40, guidance_scale=3.0, generator=gens())
    for i in (0, 2):
        single = sample_low_tokens(low, embeds[i : i + 1], 40, guidance_scale=3.0, generator=[gens()[i]])
        assert torch.equal(batch[i : i + 1], single)
    up_batch = sample_up_tokens(up, batch[:, :8], embeds, generator=gens())
    up_single = sample_up_tokens(up, batch[:1, :8], embeds[:1], generator=gens()[:1])
    assert torch.equal(up_batch[:1], up_single)
    assert not torch.equal(batch[0], batch[1])  # different generators, different samples


def test_same_generator_seed_is_reproducible(low):
    embeds = frames(2, 1)
    a = sample_low_tokens(low, embeds, 20, generator=torch.Generator().manual_seed(0))
    b = sample_low_tokens(low, embeds, 20, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


@pytest.mark.parametrize("num_frames", [1, 6])
@pytest.mark.parametrize("num_tokens", [7, N_CTX, 50, 3 * N_CTX + 4])
def test_windowed_sampling_returns_the_requested_length(low, up, num_frames, num_tokens):
    """Images (one frame) and frame sequences, shorter than, equal to and longer than a window."""
    embeds = frames(2, num_frames)
    calls = []
    z_low = sample_low_tokens(low, embeds, num_tokens, generator=torch.Generator().manual_seed(0),
                              callback=lambda step, total: calls.append((step, total)))
    assert z_low.shape == (2, num_tokens) and z_low.dtype == torch.long
    assert 0 <= z_low.min() and z_low.max() < 16
    assert calls[-1] == (num_tokens, num_tokens) and len(calls) == num_tokens
    if num_tokens <= N_CTX:  # UP: 4x as many tokens, also windowed
        z_up = sample_up_tokens(up, z_low, embeds, generator=torch.Generator().manual_seed(0))
        assert z_up.shape == (2, 4 * num_tokens)


def test_windowed_up_sampling_over_several_windows(up):
    """Each UP window reads the LOW tokens of its own span: the first window is the one-window run,
    and LOW tokens past its span change only what comes after it."""
    low_tokens = torch.randint(0, 16, (1, 20), generator=torch.Generator().manual_seed(0))  # 80 UP tokens
    embeds = frames(1, 2)

    def run(low_tokens: torch.Tensor) -> torch.Tensor:
        return sample_up_tokens(up, low_tokens, embeds, top_k=4, generator=torch.Generator().manual_seed(0))

    z_up = run(low_tokens)
    assert z_up.shape == (1, 80)
    first = N_CTX // 4  # LOW tokens of the first window
    assert torch.equal(z_up[:, :N_CTX], run(low_tokens[:, :first]))
    changed = low_tokens.clone()
    changed[:, first:] = (changed[:, first:] + 7) % 16
    z_changed = run(changed)
    assert torch.equal(z_changed[:, :N_CTX], z_up[:, :N_CTX])
    assert not torch.equal(z_changed[:, N_CTX:], z_up[:, N_CTX:])


def test_long_low_sampling_starts_with_the_one_window_run(low):
    """For an image, the first window of a long generation is conditioned exactly as a one-window run."""
    image = frames(2, 1)
    long = sample_low_tokens(low, image, 3 * N_CTX + 4, generator=torch.Generator().manual_seed(3))
    short = sample_low_tokens(low, image, N_CTX, generator=torch.Generator().manual_seed(3))
    assert torch.equal(long[:, :N_CTX], short)


def test_window_starts_and_frames():
    assert window_starts(20, 32, 16) == [0]
    assert window_starts(32, 32, 16) == [0]
    assert window_starts(50, 32, 16) == [0, 16, 18]
    assert window_starts(96, 32, 16) == [0, 16, 32, 48, 64]
    image = frames(1, 1)
    for start in window_starts(100, 32, 16):
        assert torch.equal(window_frames(image, start, 32, 100), image)  # the original breaks here
    video = torch.arange(10.0).view(1, 10, 1)
    assert window_frames(video, 0, 32, 32).flatten().tolist() == list(range(10))  # one window: every frame
    assert window_frames(video, 50, 32, 100).flatten().tolist() == [5, 6, 7, 8]
    assert window_frames(video, 0, 32, 16).flatten().tolist() == list(range(10)) + [9] * 10  # clip < window


def test_callback_can_interrupt(low):
    def stop(step: int, total: int) -> None:
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample_low_tokens(low, frames(1, 1), 20, callback=stop)


def test_filtering_keeps_top_k_and_nucleus():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True, True]]
    probs = torch.softmax(logits, -1)[0]  # 0.64, 0.24, ...: the nucleus of 0.8 needs two tokens
    assert probs[0] < 0.8 < probs[:2].sum()
    assert torch.isinf(filter_logits(logits, top_p=0.8)).tolist() == [[False, False, True, True, True]]
    token = sample_next_token(logits.expand(50, 5), top_k=1)
    assert (token == 0).all()


def test_sampled_tokens_follow_the_distribution():
    # inverse transform sampling: the frequencies of 40,000 draws match the probabilities, and a token
    # of probability 0 (filtered by top-k, or underflowing the softmax) is never drawn
    logits = torch.tensor([2.0, 0.0, -math.inf, 1.0, -200.0, 0.5]).log_softmax(-1)
    probs = torch.softmax(logits, -1)
    draws = sample_next_token(logits.expand(40_000, 6), generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=6).double() / draws.numel()
    assert draws.min() >= 0 and draws.max() <= 5
    assert freq[2] == 0 and freq[4] == 0
    assert torch.allclose(freq, probs.double(), atol=0.01), (freq, probs)
    top2 = sample_next_token(logits.expand(2000, 6), top_k=2, generator=torch.Generator().manual_seed(1))
    assert set(top2.tolist()) == {0, 3}
    # a float32 distribution (MPS has no float64) draws the same way and never past the last token
    cdf32 = torch.softmax(logits, -1).cumsum(-1).expand(40_000, 6).contiguous()
    draws32 = draw_tokens(cdf32, generator=torch.Generator().manual_seed(0))
    assert draws32.max() <= 5 and (draws32 == 2).sum() == 0 and (draws32 == 4).sum() == 0
    assert torch.allclose(torch.bincount(draws32, minlength=6).double() / 40_000, probs.double(), atol=0.01)
    # one generator per row: row i equals a batch of one drawn with generator i
    rows = sample_next_token(logits.expand(3, 6), generator=[torch.Generator().manual_seed(s) for s in (5, 6, 7)])
    alone = [sample_next_token(logits[None], generator=torch.Generator().manual_seed(s)).item() for s in (5, 6, 7)]
    assert rows.tolist() == alone


def test_clear_errors(low, up):
    embeds = frames(2, 1)
    with pytest.raises(ValueError, match="temperature"):
        sample_low_tokens(low, embeds, 4, temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        sample_low_tokens(low, embeds, 4, top_p=0.0)
    with pytest.raises(ValueError, match="top_p"):
        sample_low_tokens(low, embeds, 4, top_p=1.5)
    with pytest.raises(ValueError, match="guidance_scale"):
        sample_low_tokens(low, embeds, 4, guidance_scale=-1.0)
    with pytest.raises(ValueError, match="generators"):
        sample_low_tokens(low, embeds, 4, generator=[torch.Generator()])
    with pytest.raises(ValueError, match="width"):
        sample_low_tokens(low, embeds[..., :8], 4)
    with pytest.raises(ValueError, match="NaN"):
        sample_low_tokens(low, embeds * float("nan"), 4)
    with pytest.raises(ValueError, match="sample_up_tokens"):
        sample_low_tokens(up, embeds, 4)
    with pytest.raises(ValueError, match="sample_low_tokens"):
        sample_up_tokens(low, torch.zeros(2, 4, dtype=torch.long), embeds)
    with pytest.raises(ValueError, match="ids must be"):
        sample_up_tokens(up, torch.full((2, 4), 99), embeds)
    with pytest.raises(ValueError, match="guidance_scale"):
        sample_low_tokens(low, embeds, 4, guidance_scale=float("inf"))
    with pytest.raises(ValueError, match="top_k"):
        sample_low_tokens(low, embeds, 4, top_k=1.5)
    with pytest.raises(ValueError, match="num_tokens"):
        sample_low_tokens(low, embeds, 4.0)
    with pytest.raises(TypeError, match="torch.Generator"):
        sample_low_tokens(low, embeds, 4, generator=0)
    with pytest.raises(ValueError, match="low_tokens must be"):
        sample_up_tokens(up, [[0, 1], [2, 3]], embeds)
    low.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            sample_low_tokens(low, embeds, 4)
    finally:
        low.eval()

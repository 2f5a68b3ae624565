"""The fixed-shape decoding path: exact against the uncached forward for every attention kind and for
windows after the first, one graph for every position (`fullgraph=True`, no recompiles), the
compiled step equal to the eager one, and the thread choice by work per step.

`IM2WAV_TEST_DEVICE=cuda` runs the exactness tests on a GPU (benchmarks/gpu_check.sh does)."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from im2wav.decoding import choose_threads, compile_step, decode_threads, step_work, torch_threads
from im2wav.kv_cache import SparseKVCache
from im2wav.models.sparse_attention import FactorizedAttention
from im2wav.sampling import (
    decode_next_token_cdf,
    decode_one_token,
    forced_decode_logits,
    next_token_cdf,
    prefill,
    sample_low_tokens,
)
from test_prior import BC, BLOCKS, N_CTX, low_inputs, tiny_low, tiny_up
from test_sampling import frames

DEVICE = torch.device(os.environ.get("IM2WAV_TEST_DEVICE", "cpu"))
ATOL = 1e-5 if DEVICE.type == "cpu" else 1e-4  # other kernels, other summation orders


def on_device(*tensors: torch.Tensor):
    return tuple(t.to(DEVICE) for t in tensors)


@pytest.mark.parametrize("kind", ["block", "transpose", "previous"])
@pytest.mark.parametrize("heads", [1, 2])
def test_each_attention_kind_step_by_step_equals_the_full_pass(kind, heads):
    """Every position of a window, decoded one by one from a cache that still holds another window
    (stale slots must be masked), equals the attention of the whole window at once."""
    torch.manual_seed(0)
    attn = FactorizedAttention(width=16, attn_width=8, heads=heads, n_ctx=N_CTX, blocks=BLOCKS, kind=kind)
    attn = attn.to(DEVICE).eval()
    cache = SparseKVCache(kind, 2, heads, 8 // heads, N_CTX, BC, device=DEVICE)
    with torch.no_grad():
        attn(torch.randn(2, N_CTX, 16, device=DEVICE), torch.arange(N_CTX, device=DEVICE), cache)  # stale slots
        x = torch.randn(2, N_CTX, 16, device=DEVICE)
        full = attn(x)
        steps = [attn(x[:, :1], torch.arange(1, device=DEVICE), cache)]  # prefill of position 0
        for pos in range(1, N_CTX):
            input_pos = torch.tensor([pos], device=DEVICE)
            steps.append(attn(x[:, pos : pos + 1], input_pos, cache, cache.plan(input_pos)))
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=ATOL / 10, rtol=0)


def _window_logits(prior, cache, tokens, prompt_len, step=decode_one_token):
    logits = [prefill(prior, tokens[:, :prompt_len], cache)]
    for pos in range(prompt_len + 1, tokens.shape[1]):
        logits.append(step(prior, tokens[:, pos - 1], torch.tensor([pos], device=tokens.device), cache))
    return torch.stack(logits, 1)


def test_a_window_after_the_first_equals_the_full_forward_of_that_window():
    """The windowed continuation: the cache keeps the previous window's slots, the new window's
    conditioning replaces the old, the shared half is the prompt."""
    low = tiny_low().to(DEVICE)
    tokens, embeds, timing = on_device(*low_inputs(seed=1))
    later = timing.clone()
    later[:, 1] = N_CTX // 2 * 32  # offset of the second window
    with torch.no_grad():
        cache = low.new_kv_cache(2)
        cache.set_condition(*vars(low.condition(2, N_CTX, embeds, timing=timing)).values())
        _window_logits(low, cache, torch.randint(0, 16, (2, N_CTX), device=DEVICE), 0)  # window 1
        cache.set_condition(*vars(low.condition(2, N_CTX, embeds.flip(1), timing=later)).values())
        cached = _window_logits(low, cache, tokens, N_CTX // 2)  # window 2
        full = low(tokens, frame_embeds=embeds.flip(1), timing=later)
    torch.testing.assert_close(cached, full[:, N_CTX // 2 :], atol=ATOL, rtol=0)


def _compiled_step():
    # the "eager" backend runs dynamo's tracing (so fullgraph=True proves there is no graph break)
    # without generating code: fast, and no compiler needed
    torch._dynamo.reset()
    return torch.compile(decode_one_token, fullgraph=True, dynamic=False, backend="eager")


@pytest.mark.parametrize("make", [tiny_low, tiny_up])
def test_one_decoding_step_is_one_graph_for_every_position(make):
    prior = make().to(DEVICE)
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, 16, (2, N_CTX), generator=g).to(DEVICE)
    kwargs = dict(frame_embeds=frames(2, 3).to(DEVICE))
    if prior.config.time_signal:
        kwargs["timing"] = low_inputs()[2].to(DEVICE)
    else:
        kwargs["lower_tokens"] = torch.randint(0, 16, (2, N_CTX // 4), generator=g).to(DEVICE)
    step = _compiled_step()
    with torch.no_grad(), torch._dynamo.config.patch(error_on_recompile=True):
        cond = prior.condition(2, N_CTX, **kwargs)
        cache = prior.new_kv_cache(2)
        cache.set_condition(cond.start, cond.x_cond)
        compiled = _window_logits(prior, cache, tokens, 3, step)  # positions 4 .. n_ctx-1: one graph
        full = prior(tokens, **kwargs)
    torch.testing.assert_close(compiled, full[:, 3:], atol=ATOL, rtol=0)


def test_guided_sampling_with_the_compiled_step_equals_eager():
    low = tiny_low().to(DEVICE)
    tokens, embeds, timing = on_device(*low_inputs())
    eager = forced_decode_logits(low, tokens, frame_embeds=embeds, timing=timing, guidance_scale=3.0)
    step = _compiled_step()
    with torch.no_grad():
        cond = low.condition(4, N_CTX, torch.cat([embeds, embeds]), timing=torch.cat([timing, timing]),
                             unconditional=torch.tensor([False, False, True, True]))
        cache = low.new_kv_cache(4)
        cache.set_condition(cond.start, cond.x_cond)
        both = _window_logits(low, cache, torch.cat([tokens, tokens]), 0, step)
    torch.testing.assert_close(both[:2], eager["cond"], atol=ATOL, rtol=0)
    torch.testing.assert_close(both[2:], eager["null"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("mix", [(3.0, 1.0, 0, 1.0), (2.0, 0.7, 5, 0.9)])
def test_a_sampling_step_is_one_graph_that_mixes_like_eager(mix):
    # decode_next_token_cdf: the step, the guidance, temperature, top-k/top-p and the cumulative sum
    # traced as one graph, for every position, equal to the eager mix of the full forward's logits
    low = tiny_low().to(DEVICE)
    tokens, embeds, timing = on_device(*low_inputs())
    torch._dynamo.reset()
    step = torch.compile(decode_next_token_cdf, fullgraph=True, dynamic=False, backend="eager")
    pair = lambda t: torch.cat([t, t])  # noqa: E731
    with torch.no_grad(), torch._dynamo.config.patch(error_on_recompile=True):
        cond = low.condition(4, N_CTX, pair(embeds), timing=pair(timing),
                             unconditional=torch.tensor([False, False, True, True], device=DEVICE))
        cache = low.new_kv_cache(4)
        cache.set_condition(cond.start, cond.x_cond)
        prefill(low, pair(tokens[:, :0]), cache)
        got = torch.stack([step(low, pair(tokens[:, pos - 1]), torch.tensor([pos], device=DEVICE), cache, *mix)
                           for pos in range(1, N_CTX)], dim=1)
        full = low(pair(tokens), pair(embeds), timing=pair(timing),
                   unconditional=torch.tensor([False, False, True, True], device=DEVICE))[:, 1:]
        want = torch.stack([next_token_cdf(full[:, i], *mix) for i in range(N_CTX - 1)], dim=1)
    assert got.dtype == torch.float64 and got.shape == (2, N_CTX - 1, low.config.vocab_size)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_batch_rows_decode_as_their_single_runs_through_the_compiled_step():
    up = tiny_up().to(DEVICE)
    g = torch.Generator().manual_seed(4)
    tokens = torch.randint(0, 16, (3, N_CTX), generator=g).to(DEVICE)
    lower = torch.randint(0, 16, (3, N_CTX // 4), generator=g).to(DEVICE)
    embeds = frames(3, 2).to(DEVICE)
    step = _compiled_step()
    out = []
    with torch.no_grad():
        for rows in (slice(0, 3), slice(1, 2)):
            n = rows.stop - rows.start
            cond = up.condition(n, N_CTX, embeds[rows], lower_tokens=lower[rows])
            cache = up.new_kv_cache(n)
            cache.set_condition(cond.start, cond.x_cond)
            out.append(_window_logits(up, cache, tokens[rows], 0, step))
    torch.testing.assert_close(out[0][1:2], out[1], atol=ATOL, rtol=0)


@pytest.mark.slow
def test_inductor_compiled_sampling_equals_eager(caplog):
    """The real `compile=True` path (inductor: C++ on a CPU, CUDA graphs on a GPU): the same tokens as
    eager for one seed, and no fallback where a compiler exists."""
    low = tiny_low().to(DEVICE)
    embeds = frames(1, 2).to(DEVICE)
    gen = lambda: torch.Generator(DEVICE).manual_seed(5)  # noqa: E731
    eager = sample_low_tokens(low, embeds, N_CTX + 8, generator=gen())
    torch._dynamo.reset()
    with caplog.at_level("WARNING", logger="im2wav.decoding"):
        compiled = sample_low_tokens(low, embeds, N_CTX + 8, generator=gen(), compile=True)
    assert torch.equal(compiled, eager)
    if DEVICE.type == "cuda" or shutil.which(os.environ.get("CXX", "g++")):
        fallbacks = [r.message for r in caplog.records if r.name == "im2wav.decoding"]
        assert not fallbacks, f"compilation fell back to eager although a compiler is present: {fallbacks}"


def test_compile_step_falls_back_to_eager_when_compilation_fails(monkeypatch, caplog):
    """A failed compilation warns once and the process decodes eagerly from then on, also in later calls."""
    import im2wav.decoding as decoding

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(decoding.torch, "compile", lambda fn, **kwargs: broken)
    decoding._compiled_step.cache_clear()

    def step(x):
        return x + 1

    try:
        with caplog.at_level("WARNING"):
            assert compile_step(step, torch.device("cpu"))(1) == 2
            assert compile_step(step, torch.device("cpu"))(2) == 3  # a later generation: no second attempt
        assert sum("no C++ compiler" in r.message for r in caplog.records) == 1
    finally:
        decoding._compiled_step.cache_clear()


def test_small_models_decode_on_one_thread_and_the_count_is_restored(monkeypatch):
    monkeypatch.delenv("IM2WAV_DECODE_THREADS", raising=False)
    assert choose_threads(10_000, available=8) == 1
    assert choose_threads(157_000_000 * 2, available=8) == 8
    monkeypatch.setenv("IM2WAV_DECODE_THREADS", "3")
    assert choose_threads(10, available=8) == 3
    monkeypatch.setenv("IM2WAV_DECODE_THREADS", "zero")
    with pytest.raises(ValueError, match="IM2WAV_DECODE_THREADS"):
        choose_threads(10, available=8)
    monkeypatch.delenv("IM2WAV_DECODE_THREADS")
    low = tiny_low()
    assert step_work(low, 2) == 2 * sum(p.numel() for p in low.layers.parameters())
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with decode_threads(low, 2) as threads:
            assert threads == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)



def test_torch_threads_restores_the_count_after_an_error():
    before = torch.get_num_threads()
    target = 2 if before != 2 else 1
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(target) as threads:
            assert threads == target and torch.get_num_threads() == target
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before

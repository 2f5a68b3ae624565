"""Sampling tokens from the IM2WAV priors with a KV cache, classifier-free guidance and windows.

Small free functions (gpt-fast style); the model computes, these only drive it:

- `prefill`: the start token and a prompt through the prior, filling the cache;
- `decode_one_token`: one new position; fixed shapes, so it compiles once (`compile=True`);
- `decode_next_token_cdf`: a sampling step: `decode_one_token`, then the guided, filtered distribution
  of the next token (compiled as one graph, so the mixing fuses with the network's last kernels);
- `apply_guidance`: `null + s * (cond - null)` on a `[cond; null]` batch (one forward for both);
- `filter_logits` / `next_token_cdf` / `draw_tokens` / `sample_next_token`: temperature, top-k, top-p,
  and one uniform number per token from per-sample generators;
- `sample_low_tokens` / `sample_up_tokens`: the public entry points, any length (windows of `n_ctx`
  with hop `n_ctx // 2`; the overlap primes the cache of the next window);
- `forced_decode_logits`: the cached decoder fed given tokens, returning its per-step logits (parity).

The argument checks live in `im2wav.sampling_checks`, the windowing rules in `im2wav.sampling_windows`,
threads and compilation of a step in `im2wav.decoding`, the weights' memory pages in `im2wav.huge_pages`.

Example:
    >>> import torch
    >>> from im2wav import Im2WavPrior
    >>> from im2wav.sampling import sample_low_tokens, sample_up_tokens
    >>> low = Im2WavPrior.from_preset("tiny-low").eval()
    >>> up = Im2WavPrior.from_preset("tiny-up").eval()
    >>> frames = torch.nn.functional.normalize(torch.randn(1, 1, 512), dim=-1)   # one image
    >>> g = torch.Generator().manual_seed(0)
    >>> z_low = sample_low_tokens(low, frames, 128, guidance_scale=3.0, generator=g)
    >>> z_up = sample_up_tokens(up, z_low, frames, generator=g)
    >>> z_low.shape, z_up.shape
    (torch.Size([1, 128]), torch.Size([1, 512]))
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, NamedTuple

import torch

from .decoding import compile_step, decode_threads
from .huge_pages import use_huge_pages
from .kv_cache import PriorKVCache
from .models.prior import Im2WavPrior, PriorConditioning
from .sampling_checks import Generator, check_generator, check_sampling_args
from .sampling_windows import ORIGINAL_TOTAL_LENGTH, low_window_inputs, window_frames, window_starts

__all__ = [
    "ORIGINAL_TOTAL_LENGTH", "apply_guidance", "check_generator", "check_sampling_args", "decode_next_token_cdf",
    "decode_one_token", "draw_tokens", "filter_logits", "forced_decode_logits", "low_window_inputs",
    "next_token_cdf", "prefill", "sample_low_tokens", "sample_next_token", "sample_up_tokens", "window_frames",
    "window_starts",
]

Callback = Callable[[int, int], None]
Step = Callable[..., torch.Tensor]  # (prior, token [B], input_pos [1], cache, *mix) -> logits or distribution


class Mix(NamedTuple):
    """How a step's logits become the next token's distribution (`next_token_cdf`'s arguments)."""

    guidance_scale: float | None  # None: no guidance pair (UP, or guidance_scale == 1)
    temperature: float
    top_k: int
    top_p: float


# --------------------------------------------------------------------------------------------
# the cached network
def prefill(prior: Im2WavPrior, prompt: torch.Tensor, cache: PriorKVCache) -> torch.Tensor:
    """Run positions `0 .. P` (the start token, then the P prompt tokens), filling `cache`.

    Args:
        prior: the prior.
        prompt: LongTensor [B, P] of tokens already known at positions `0 .. P-1` (P may be 0).
        cache: caches for batch B, holding the window's conditioning (`cache.set_condition`).

    Returns:
        Logits [B, K] at position P (the distribution of the first new token).
    """
    B, P = prompt.shape
    prev = torch.cat([prompt.new_zeros(B, 1), prompt], dim=1)  # input of positions 0..P (0: the start token)
    return prior(prev, input_pos=torch.arange(P + 1, device=prompt.device), kv_cache=cache)[:, -1]


def decode_one_token(prior: Im2WavPrior, token: torch.Tensor, input_pos: torch.Tensor,
                     cache: PriorKVCache) -> torch.Tensor:
    """One cached decoding step, of fixed shapes (compiles once; a CUDA graph on CUDA).

    Args:
        prior: the prior.
        token: LongTensor [B], the token at position `input_pos - 1`.
        input_pos: LongTensor [1], the position whose logits are computed (>= 1).
        cache: caches for batch B, holding positions `0 .. input_pos - 1` and the window's conditioning.

    Returns:
        Logits [B, K] at position `input_pos`.
    """
    return prior(token[:, None], input_pos=input_pos, kv_cache=cache)[:, 0]


def decode_next_token_cdf(prior: Im2WavPrior, token: torch.Tensor, input_pos: torch.Tensor, cache: PriorKVCache,
                          guidance_scale: float | None, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """One sampling step: `decode_one_token`, then `next_token_cdf` of its logits.

    What `compile=True` compiles: the guidance mix, the filters, the softmax and the cumulative sum
    then run in the graph instead of as separate eager operations (about a tenth of a small prior's
    step at batch 8). The arguments after `cache` are Python constants of the graph.

    Returns:
        FloatTensor [B, K] (float64), the cumulative distribution of the token at `input_pos`.
    """
    return next_token_cdf(decode_one_token(prior, token, input_pos, cache), guidance_scale, temperature, top_k, top_p)


def apply_guidance(logits: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance on a `[cond; null]` batch: `null + s * (cond - null)`.

    This equals the original's `s * cond + (1 - s) * null`.

    Args:
        logits: [2B, K], the conditional rows first, then the null rows.
        guidance_scale: `s` (1: the conditional logits, 0: the null ones).

    Returns:
        [B, K] guided logits.
    """
    cond, null = logits.chunk(2)
    return null + guidance_scale * (cond - null)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k and/or the top-p nucleus to -inf; the input is not modified.

    Matches the original's `filter_logits` (its `top_p=0.0` "off" is our `top_p=1.0`): the nucleus
    keeps the smallest prefix of the sorted tokens whose probability mass exceeds `top_p`.

    Args:
        logits: [B, K].
        top_k: keep the k largest logits of each row (0: all).
        top_p: keep the nucleus of mass `top_p` of each row (1.0: all).

    Returns:
        [B, K], `logits` itself when neither filter is active.
    """
    # masked_fill rather than `logits[mask] = -inf`: a boolean-index write may sync with the GPU
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        mass = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        remove = mass > top_p
        remove[..., 1:] = remove[..., :-1].clone()  # keep the token that crosses the threshold
        remove[..., 0] = False
        logits = logits.masked_fill(remove.scatter(-1, order, remove), -math.inf)
    return logits


def next_token_cdf(
    logits: torch.Tensor, guidance_scale: float | None = None, temperature: float = 1.0, top_k: int = 0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """The next token's distribution, as cumulative probabilities (for `draw_tokens`).

    Args:
        logits: [B, K] unnormalised log-probabilities, or the `[cond; null]` pair [2B, K] with `guidance_scale`.
        guidance_scale: classifier-free guidance `s` (`apply_guidance`), or None for logits already mixed.
        temperature: > 0; logits are divided by it.
        top_k: keep the k most likely tokens (0: all).
        top_p: keep the nucleus of mass top_p (1.0: all).

    Returns:
        FloatTensor [B, K], float64 (float32 on MPS, which has no float64): in float64 the draw's cut
        (`u * total`, u < 1 in float32) stays below the last cumulative sum, and a token of
        probability 0 adds nothing to it, so it is never drawn.
    """
    if guidance_scale is not None:
        logits = apply_guidance(logits, guidance_scale)
    logits = logits.float() if temperature == 1.0 else logits.float() / temperature
    probs = torch.softmax(filter_logits(logits, top_k, top_p), dim=-1)
    return probs.to(torch.float32 if probs.device.type == "mps" else torch.float64).cumsum(dim=-1)


def draw_tokens(cdf: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """Draw one token per row from cumulative probabilities [B, K] (`next_token_cdf`) -> LongTensor [B].

    Inverse transform sampling: one uniform number per row (`torch.multinomial` draws an exponential
    per vocabulary entry, about 40 us a row on a CPU, a quarter of a small prior's step at batch 8).

    Args:
        cdf: FloatTensor [B, K], non-decreasing along K.
        generator: None (global RNG), one generator for the batch, or one per row (row i then
            equals a batch-of-one draw with generator i).
    """
    if isinstance(generator, (list, tuple)):
        u = torch.cat([torch.rand((1, 1), generator=g, device=cdf.device) for g in generator])
    else:
        u = torch.rand((cdf.shape[0], 1), generator=generator, device=cdf.device)
    token = torch.searchsorted(cdf, u.to(cdf.dtype) * cdf[:, -1:], right=True)[:, 0]
    return token.clamp_(max=cdf.shape[-1] - 1)  # in float32 (MPS) `u * total` can round up to the total


def sample_next_token(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, generator: Generator = None
) -> torch.Tensor:
    """Draw one token per row from logits [B, K] -> LongTensor [B].

    Args:
        logits: unnormalised log-probabilities (already guided).
        temperature: > 0; logits are divided by it.
        top_k: keep the k most likely tokens (0: all).
        top_p: keep the nucleus of mass top_p (1.0: all).
        generator: None (global RNG), one generator for the batch, or one per row (row i then
            equals a batch-of-one run with generator i).
    """
    return draw_tokens(next_token_cdf(logits, None, temperature, top_k, top_p), generator)


# --------------------------------------------------------------------------------------------
# one window
def _decode_window(
    prior: Im2WavPrior,
    cache: PriorKVCache,
    prompt: torch.Tensor,
    num_new: int,
    pick: Callable[[torch.Tensor, int], torch.Tensor],
    doubled: bool,
    step: Step = decode_one_token,
    mix: Mix | None = None,
) -> torch.Tensor:
    """Decode `num_new` tokens after `prompt` [B, P]; `pick(out [B or 2B, K], n)` chooses token n.

    `doubled`: `cache` holds the guidance pair `[cond; null]` (2B rows), each new token is fed to both.
    Without `mix`, `step` is `decode_one_token` and `pick` gets the raw logits of every step. With
    `mix`, `step` is `decode_next_token_cdf` and `pick` gets the next token's cumulative
    distribution [B, K] (`next_token_cdf`).
    """
    double = (lambda t: torch.cat([t, t])) if doubled else (lambda t: t)
    P = prompt.shape[1]
    new = []
    out = prefill(prior, double(prompt), cache)
    if mix is not None:
        out = next_token_cdf(out, *mix)
    input_pos = torch.tensor([P], device=prompt.device)
    for n in range(num_new):
        token = pick(out, n)
        new.append(token)
        if n + 1 < num_new:
            input_pos += 1  # in place: the position lives on the device, no host round trip per step
            out = step(prior, double(token), input_pos, cache, *(mix or ()))
    return torch.stack(new, dim=1)


def _check_prior(prior: Im2WavPrior, up: bool) -> None:
    if not isinstance(prior, Im2WavPrior):
        raise TypeError(f"prior must be an Im2WavPrior, got {type(prior).__name__}")
    if prior.training:
        raise ValueError("the prior is in training mode (dropout active); call prior.eval() before sampling")
    if up and prior.config.lower_vocab_size is None:
        raise ValueError("this prior is not conditioned on LOW tokens (it is a LOW prior); use sample_low_tokens")
    if not up and prior.config.lower_vocab_size is not None:
        raise ValueError("this prior is an UP prior (conditioned on LOW tokens); use sample_up_tokens")


def _check_frames(prior: Im2WavPrior, frame_embeds: torch.Tensor) -> None:
    if not isinstance(frame_embeds, torch.Tensor) or frame_embeds.ndim != 3:
        shape = tuple(frame_embeds.shape) if isinstance(frame_embeds, torch.Tensor) else type(frame_embeds).__name__
        raise ValueError(f"frame_embeds must be [B, F, {prior.config.clip_dim}] (an image: F=1), got {shape}")
    prior.check_values(frame_embeds=frame_embeds)


def _token_picker(
    generator: Generator, callback: Callback | None, total: int
) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """`pick(cdf, n)` for `_decode_window`: draw a token, then report progress over all windows."""
    done = 0

    def pick(cdf: torch.Tensor, n: int) -> torch.Tensor:
        nonlocal done
        token = draw_tokens(cdf, generator)
        done += 1
        if callback is not None:
            callback(done, total)
        return token

    return pick


def _sample_windows(
    prior: Im2WavPrior,
    batch_size: int,
    num_tokens: int,
    device: torch.device,
    window_cond: Callable[[int, int], PriorConditioning],
    pick: Callable[[torch.Tensor, int], torch.Tensor],
    mix: Mix,
    compile: bool,
) -> torch.LongTensor:
    """Sample `num_tokens` tokens in windows of `n_ctx` with hop `n_ctx // 2`.

    `window_cond(start, length)` gives the conditioning of the window of `length` tokens from `start`
    (the `[cond; null]` batch when `mix` has a guidance scale). Each window is primed with the tokens
    it shares with the previous one and decodes the rest; one cache serves every window.
    """
    n_ctx = prior.config.n_ctx
    length = min(n_ctx, num_tokens)
    guided = mix.guidance_scale is not None
    rows = 2 * batch_size if guided else batch_size
    cache = prior.new_kv_cache(rows, device=device)
    use_huge_pages(prior)  # a CPU step streams every weight: 2 MiB pages stream faster (im2wav.huge_pages)
    step = compile_step(decode_next_token_cdf, device) if compile else decode_next_token_cdf
    tokens = torch.zeros(batch_size, num_tokens, dtype=torch.long, device=device)
    done = 0
    with decode_threads(prior, rows):
        for start in window_starts(num_tokens, n_ctx, n_ctx // 2):
            cache.set_condition(**vars(window_cond(start, length)))
            new = _decode_window(prior, cache, tokens[:, start:done], start + length - done, pick, guided, step, mix)
            tokens[:, done : start + length] = new  # (B, T_new)
            done = start + length
    return tokens


def _check_num_tokens(num_tokens: object) -> None:
    if not isinstance(num_tokens, numbers.Integral) or isinstance(num_tokens, bool) or num_tokens < 1:
        raise ValueError(f"num_tokens must be an int >= 1, got {num_tokens!r}")


@torch.inference_mode()
def sample_low_tokens(
    prior: Im2WavPrior,
    frame_embeds: torch.Tensor,
    num_tokens: int,
    *,
    guidance_scale: float = 3.0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: Generator = None,
    callback: Callback | None = None,
    compile: bool = False,
) -> torch.LongTensor:
    """Sample LOW tokens for the CLIP embeddings of an image or a frame sequence.

    Args:
        prior: the LOW prior (eval mode).
        frame_embeds: [B, F, 512] CLIP embeddings of F frames evenly spanning the clip (image: F=1),
            on the device where decoding runs.
        num_tokens: tokens to generate (hop 32: 2048 tokens = 4.096 s at 16 kHz); any length, in
            windows of n_ctx with hop n_ctx // 2.
        guidance_scale: classifier-free guidance `s` (1: no guidance, 0: unconditional).
        temperature, top_k, top_p: see `sample_next_token`.
        generator: None, a generator, or one per batch element.
        callback: `callback(step, total)` after every token; it may raise to interrupt.
        compile: compile the decoding step (`torch.compile(fullgraph=True)`, a CUDA graph on CUDA);
            pays on long generations, falls back to eager where compilation is unavailable.

    Returns:
        LongTensor [B, num_tokens].
    """
    _check_prior(prior, up=False)
    _check_frames(prior, frame_embeds)
    B = frame_embeds.shape[0]
    check_sampling_args(temperature, top_k, top_p, guidance_scale)
    check_generator(generator, B)
    guided = guidance_scale != 1.0
    if guided and prior.config.guidance is False:
        raise ValueError("this prior has no null condition for classifier-free guidance; pass guidance_scale=1.0")
    _check_num_tokens(num_tokens)
    num_tokens = int(num_tokens)
    last = window_starts(num_tokens, prior.config.n_ctx, prior.config.n_ctx // 2)[-1]
    prior.check_values(timing=low_window_inputs(prior, frame_embeds, last, num_tokens)[1])  # the furthest window
    unconditional = torch.arange(2 * B if guided else B, device=frame_embeds.device) >= B  # [cond; null] rows

    def window_cond(start: int, length: int) -> PriorConditioning:
        frames, timing = low_window_inputs(prior, frame_embeds, start, num_tokens)
        if not guided:
            return prior.condition(B, length, frames, timing=timing)
        return prior.condition(2 * B, length, frames.repeat(2, 1, 1), timing=timing.repeat(2, 1),
                               unconditional=unconditional)

    pick = _token_picker(generator, callback, num_tokens)
    mix = Mix(guidance_scale if guided else None, temperature, top_k, top_p)
    return _sample_windows(prior, B, num_tokens, frame_embeds.device, window_cond, pick, mix, compile)


@torch.inference_mode()
def sample_up_tokens(
    prior: Im2WavPrior,
    low_tokens: torch.Tensor,
    frame_embeds: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: Generator = None,
    callback: Callback | None = None,
    compile: bool = False,
) -> torch.LongTensor:
    """Sample UP tokens conditioned on LOW tokens and the clip's CLIP embeddings (no guidance).

    Args:
        prior: the UP prior (eval mode).
        low_tokens: LongTensor [B, T_low] from `sample_low_tokens`.
        frame_embeds: [B, F, 512]; UP reads their mean over all frames (as the original).
        temperature, top_k, top_p, generator, callback, compile: see `sample_low_tokens`.

    Returns:
        LongTensor [B, T_low * 4].
    """
    _check_prior(prior, up=True)
    _check_frames(prior, frame_embeds)
    B = frame_embeds.shape[0]
    check_sampling_args(temperature, top_k, top_p)
    check_generator(generator, B)
    if not isinstance(low_tokens, torch.Tensor) or low_tokens.ndim != 2 or low_tokens.shape[0] != B \
            or low_tokens.shape[1] < 1:
        shape = tuple(low_tokens.shape) if isinstance(low_tokens, torch.Tensor) else type(low_tokens).__name__
        raise ValueError(f"low_tokens must be a LongTensor [B={B}, T_low >= 1] (the batch of frame_embeds), "
                         f"got {shape}")
    prior.check_values(lower_tokens=low_tokens)
    factor = prior.upsample_factor
    num_tokens = low_tokens.shape[1] * factor
    low_tokens = low_tokens.to(frame_embeds.device)

    def window_cond(start: int, length: int) -> PriorConditioning:
        # the LOW tokens of the same time span (start is a multiple of 4: hop and n_ctx are)
        lower = low_tokens[:, start // factor : (start + length) // factor]
        return prior.condition(B, length, frame_embeds, lower_tokens=lower)

    pick = _token_picker(generator, callback, num_tokens)
    return _sample_windows(prior, B, num_tokens, frame_embeds.device, window_cond, pick,
                           Mix(None, temperature, top_k, top_p), compile)


@torch.inference_mode()
def forced_decode_logits(
    prior: Im2WavPrior,
    tokens: torch.Tensor,
    *,
    frame_embeds: torch.Tensor | None = None,
    lower_tokens: torch.Tensor | None = None,
    timing: torch.Tensor | None = None,
    guidance_scale: float | None = None,
    compile: bool = False,
) -> dict[str, torch.Tensor]:
    """Run the cached decoder of one window, feeding `tokens` instead of sampling (teacher forcing).

    Used to compare the sampler's per-step logits with the original's and with the full forward.

    Args:
        prior: the prior.
        tokens: LongTensor [B, T], T <= n_ctx, fed one by one.
        frame_embeds, lower_tokens, timing: the conditioning, as in `Im2WavPrior.forward`.
        guidance_scale: when set, the `[cond; null]` batch is decoded in one pass and mixed.
        compile: decode with the compiled step (see `sample_low_tokens`).

    Returns:
        `{"cond": [B, T, K], "guided": [B, T, K]}`, plus `"null": [B, T, K]` with guidance.
    """
    B, T = tokens.shape
    prior.check_values(tokens=tokens, frame_embeds=frame_embeds, lower_tokens=lower_tokens, timing=timing)
    if guidance_scale is None:
        cond = prior.condition(B, T, frame_embeds, lower_tokens, timing)
    else:
        double = lambda t: None if t is None else torch.cat([t, t])  # noqa: E731
        cond = prior.condition(2 * B, T, double(frame_embeds), double(lower_tokens), double(timing),
                               unconditional=torch.arange(2 * B) >= B)
    cache = prior.new_kv_cache(cond.start.shape[0], device=tokens.device)
    cache.set_condition(cond.start, cond.x_cond)
    raw, guided = [], []

    def pick(logits: torch.Tensor, n: int) -> torch.Tensor:
        raw.append(logits)
        guided.append(logits if guidance_scale is None else apply_guidance(logits, guidance_scale))
        return tokens[:, n]

    step = compile_step(decode_one_token, tokens.device) if compile else decode_one_token
    _decode_window(prior, cache, tokens[:, :0], T, pick, guidance_scale is not None, step)
    raw = torch.stack(raw, dim=1)  # (B or 2B, T, K)
    out = {"guided": torch.stack(guided, dim=1)}
    if guidance_scale is not None:
        out["cond"], out["null"] = raw.chunk(2)
    else:
        out["cond"] = raw
    return out

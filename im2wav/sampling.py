"""Sampling tokens from the IM2WAV priors with a KV cache, classifier-free guidance and windows.

Small free functions (gpt-fast style):

- `prefill`: run the start token and a prompt through the prior, filling the cache;
- `decode_one_token`: one new position, reading the cache;
- `apply_guidance`: `null + s * (cond - null)` on a `[cond; null]` batch (one forward for both);
- `filter_logits` / `sample_next_token`: temperature, top-k, top-p, per-sample generators;
- `sample_low_tokens` / `sample_up_tokens`: the public entry points, any length (windows of `n_ctx`
  with hop `n_ctx // 2`; the overlap primes the cache of the next window);
- `forced_decode_logits`: the cached decoder fed given tokens, returning its per-step logits (parity).

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
from typing import Callable

import torch

from .kv_cache import PriorKVCache
from .models.prior import Im2WavPrior, PriorConditioning

# models/sample.py of the original gives every window the total length of a 10 s VGGSound video
# (VIDEO_TOTAL_LENGTHS = 160000 samples), whatever is generated; the LOW prior was trained on those.
ORIGINAL_TOTAL_LENGTH = 160_000

Generator = torch.Generator | list[torch.Generator] | None
Callback = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# the cached network
def prefill(prior: Im2WavPrior, prompt: torch.Tensor, cond: PriorConditioning, cache: PriorKVCache) -> torch.Tensor:
    """Run positions `0 .. P` (the start token, then the P prompt tokens), filling `cache`.

    Args:
        prior: the prior.
        prompt: LongTensor [B, P] of tokens already known at positions `0 .. P-1` (P may be 0).
        cond: the window's conditioning, batch B.
        cache: caches for batch B.

    Returns:
        Logits [B, K] at position P (the distribution of the first new token).
    """
    B, P = prompt.shape
    prev = torch.cat([prompt.new_zeros(B, 1), prompt], dim=1)  # position 0's entry is replaced by the start token
    h = prior.embed(prev, 0, cond)  # (B, P + 1, D)
    for i, layer in enumerate(prior.layers):
        h = layer(h, cache[i])
    return prior.head(h[:, -1:], cond.x_cond[:, P : P + 1])[:, 0]


def decode_one_token(
    prior: Im2WavPrior, token: torch.Tensor, pos: int, cond: PriorConditioning, cache: PriorKVCache
) -> torch.Tensor:
    """Logits [B, K] at position `pos` >= 1, given the token at `pos - 1` ([B]) and the cache."""
    h = prior.embed(token[:, None], pos, cond)  # (B, 1, D)
    for i, layer in enumerate(prior.layers):
        h = layer.decode(h, pos, cache[i])
    return prior.head(h, cond.x_cond[:, pos : pos + 1])[:, 0]


def apply_guidance(logits: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance on a `[cond; null]` batch [2B, K] -> [B, K].

    `null + s * (cond - null)`, which equals the original's `s * cond + (1 - s) * null`.
    """
    cond, null = logits.chunk(2)
    return null + guidance_scale * (cond - null)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k and/or the top-p nucleus to -inf (0 / 1.0 disable them).

    Matches the original's `filter_logits` (its `top_p=0.0` "off" is our `top_p=1.0`): the nucleus
    keeps the smallest prefix of the sorted tokens whose probability mass exceeds `top_p`.
    """
    logits = logits.clone()
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits[logits < kth] = -math.inf
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        mass = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        remove = mass > top_p
        remove[..., 1:] = remove[..., :-1].clone()  # keep the token that crosses the threshold
        remove[..., 0] = False
        logits[remove.scatter(-1, order, remove)] = -math.inf
    return logits


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
    probs = torch.softmax(filter_logits(logits.float() / temperature, top_k, top_p), dim=-1)
    if isinstance(generator, (list, tuple)):
        return torch.cat([torch.multinomial(probs[i : i + 1], 1, generator=g) for i, g in enumerate(generator)])[:, 0]
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


# --------------------------------------------------------------------------------------------
# one window
def _decode_window(
    prior: Im2WavPrior,
    cond: PriorConditioning,
    cache: PriorKVCache,
    prompt: torch.Tensor,
    num_new: int,
    pick: Callable[[torch.Tensor, int], torch.Tensor],
    guidance_scale: float | None,
    record: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Decode `num_new` tokens after `prompt` [B, P]; `pick(logits [B, K], n)` chooses token n.

    With `guidance_scale` set, `cond` and `cache` hold the batch `[cond; null]` (2B rows) and the
    logits given to `pick` are the guided ones. `record` collects the unguided logits of each step.
    """
    guided = guidance_scale is not None
    double = (lambda t: torch.cat([t, t])) if guided else (lambda t: t)
    P = prompt.shape[1]
    new = []
    logits = prefill(prior, double(prompt), cond, cache)
    for n in range(num_new):
        if record is not None:
            record.append(logits)
        token = pick(apply_guidance(logits, guidance_scale) if guided else logits, n)
        new.append(token)
        if n + 1 < num_new:
            logits = decode_one_token(prior, double(token), P + n + 1, cond, cache)
    return torch.stack(new, dim=1)


def window_starts(num_tokens: int, n_ctx: int, hop: int) -> list[int]:
    """First token of each window: every `hop` tokens, the last one moved back to end at `num_tokens`."""
    if num_tokens <= n_ctx:
        return [0]
    starts = []
    for start in range(0, num_tokens - n_ctx + hop, hop):
        start = min(start, num_tokens - n_ctx)
        if not starts or start > starts[-1]:
            starts.append(start)
    return starts


def window_frames(frame_embeds: torch.Tensor, start: int, n_ctx: int, num_tokens: int) -> torch.Tensor:
    """The frames of `frame_embeds` [B, F, C] (evenly spanning `num_tokens` tokens) covering a window.

    As the original: frames `start_f .. start_f + window_frames` (inclusive, clipped to the clip), where
    the frame rate is F per clip. A window longer than the clip repeats the last frame so that
    frames keep their time position. One frame (an image) covers every window.
    """
    F = frame_embeds.shape[1]
    if num_tokens <= n_ctx:
        count = -(-n_ctx * F // num_tokens)  # frames spanning n_ctx tokens at F frames per clip
        index = torch.arange(count).clamp(max=F - 1)
    else:
        first = start * F // num_tokens
        last = min(first + n_ctx * F // num_tokens, F - 1)
        index = torch.arange(first, last + 1)
    return frame_embeds[:, index.to(frame_embeds.device)]


def low_window_inputs(
    prior: Im2WavPrior, frame_embeds: torch.Tensor, start: int, num_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames and timing the LOW prior reads for the window starting at token `start`.

    Timing is `(total length, offset, window length)` in samples as the original `models/sample.py`
    sets it: the total length is that of a 10 s video (`ORIGINAL_TOTAL_LENGTH`) or the generated
    length if longer, the offset `start * hop`, the window length `n_ctx * hop`.

    Returns:
        `(frames [B, F_window, C], timing [B, 3])`.
    """
    c = prior.config
    B = frame_embeds.shape[0]
    total_length = max(ORIGINAL_TOTAL_LENGTH, num_tokens * c.hop_length)
    timing = torch.tensor([[total_length, start * c.hop_length, c.n_ctx * c.hop_length]], dtype=torch.float32,
                          device=frame_embeds.device).expand(B, 3)
    return window_frames(frame_embeds, start, c.n_ctx, num_tokens), timing


# --------------------------------------------------------------------------------------------
# public entry points
def _check_sampling_args(prior: Im2WavPrior, temperature: float, top_k: int, top_p: float, generator: Generator,
                         batch_size: int) -> None:
    if not isinstance(prior, Im2WavPrior):
        raise TypeError(f"prior must be an Im2WavPrior, got {type(prior).__name__}")
    if prior.training:
        raise ValueError("the prior is in training mode (dropout active); call prior.eval() before sampling")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1.0 disables nucleus filtering), got {top_p}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 disables top-k filtering), got {top_k}")
    if isinstance(generator, (list, tuple)) and len(generator) != batch_size:
        raise ValueError(f"got {len(generator)} generators for a batch of {batch_size}; pass one per sample")


def _check_frames(prior: Im2WavPrior, frame_embeds: torch.Tensor) -> None:
    if not isinstance(frame_embeds, torch.Tensor) or frame_embeds.ndim != 3:
        shape = tuple(frame_embeds.shape) if isinstance(frame_embeds, torch.Tensor) else type(frame_embeds).__name__
        raise ValueError(f"frame_embeds must be [B, F, {prior.config.clip_dim}] (an image: F=1), got {shape}")


def _progress(callback: Callback | None, total: int) -> Callable[[torch.Tensor, int], None]:
    done = [0]

    def step() -> None:
        done[0] += 1
        if callback is not None:
            callback(done[0], total)

    return step


@torch.no_grad()
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
) -> torch.LongTensor:
    """Sample LOW tokens for the CLIP embeddings of an image or a frame sequence.

    Args:
        prior: the LOW prior (eval mode).
        frame_embeds: [B, F, 512] CLIP embeddings of F frames evenly spanning the clip (image: F=1).
        num_tokens: tokens to generate (hop 32: 2048 tokens = 4.096 s at 16 kHz); any length, in
            windows of n_ctx with hop n_ctx // 2.
        guidance_scale: classifier-free guidance `s` (1: no guidance, 0: unconditional).
        temperature, top_k, top_p: see `sample_next_token`.
        generator: None, a generator, or one per batch element.
        callback: `callback(step, total)` after every token; it may raise to interrupt.

    Returns:
        LongTensor [B, num_tokens].
    """
    _check_frames(prior, frame_embeds)
    B = frame_embeds.shape[0]
    _check_sampling_args(prior, temperature, top_k, top_p, generator, B)
    c = prior.config
    if c.lower_vocab_size is not None:
        raise ValueError("this prior is an UP prior (conditioned on LOW tokens); use sample_up_tokens")
    if not guidance_scale >= 0:
        raise ValueError(f"guidance_scale must be >= 0 (1.0 disables guidance), got {guidance_scale}")
    guided = guidance_scale != 1.0
    if guided and c.guidance is False:
        raise ValueError("this prior has no null condition for classifier-free guidance; pass guidance_scale=1.0")
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")

    frame_embeds = frame_embeds.to(prior.device)
    step = _progress(callback, num_tokens)
    cache = prior.new_kv_cache(2 * B if guided else B)
    tokens = torch.zeros(B, num_tokens, dtype=torch.long, device=prior.device)
    done = 0
    for start in window_starts(num_tokens, c.n_ctx, c.n_ctx // 2):
        length = min(c.n_ctx, num_tokens)
        frames, timing = low_window_inputs(prior, frame_embeds, start, num_tokens)
        cond = prior.condition(B, length, frames, timing=timing)
        if guided:
            cond = cond.cat(prior.condition(B, length, frames, timing=timing, unconditional=True))

        def pick(logits: torch.Tensor, n: int) -> torch.Tensor:
            token = sample_next_token(logits, temperature, top_k, top_p, generator)
            step()
            return token

        prompt = tokens[:, start:done]
        new = _decode_window(prior, cond, cache, prompt, start + length - done, pick,
                             guidance_scale if guided else None)
        tokens[:, done : start + length] = new
        done = start + length
    return tokens


@torch.no_grad()
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
) -> torch.LongTensor:
    """Sample UP tokens conditioned on LOW tokens and the clip's CLIP embeddings (no guidance).

    Args:
        prior: the UP prior (eval mode).
        low_tokens: LongTensor [B, T_low] from `sample_low_tokens`.
        frame_embeds: [B, F, 512]; UP reads their mean over all frames (as the original).
        temperature, top_k, top_p, generator, callback: see `sample_low_tokens`.

    Returns:
        LongTensor [B, T_low * 4].
    """
    _check_frames(prior, frame_embeds)
    B = frame_embeds.shape[0]
    _check_sampling_args(prior, temperature, top_k, top_p, generator, B)
    c = prior.config
    if c.lower_vocab_size is None:
        raise ValueError("this prior is not conditioned on LOW tokens (it is a LOW prior); use sample_low_tokens")
    if low_tokens.ndim != 2 or low_tokens.shape[0] != B or low_tokens.shape[1] < 1:
        raise ValueError(f"low_tokens must be [B={B}, T_low >= 1] (the batch of frame_embeds), "
                         f"got {tuple(low_tokens.shape)}")
    factor = prior.upsample_factor
    num_tokens = low_tokens.shape[1] * factor
    low_tokens = low_tokens.to(prior.device)
    frame_embeds = frame_embeds.to(prior.device)
    step = _progress(callback, num_tokens)
    cache = prior.new_kv_cache(B)
    tokens = torch.zeros(B, num_tokens, dtype=torch.long, device=prior.device)
    done = 0
    for start in window_starts(num_tokens, c.n_ctx, c.n_ctx // 2):
        length = min(c.n_ctx, num_tokens)
        # the LOW tokens of the same time span (start is a multiple of 4: hop and n_ctx are)
        lower = low_tokens[:, start // factor : (start + length) // factor]
        cond = prior.condition(B, length, frame_embeds, lower_tokens=lower)

        def pick(logits: torch.Tensor, n: int) -> torch.Tensor:
            token = sample_next_token(logits, temperature, top_k, top_p, generator)
            step()
            return token

        new = _decode_window(prior, cond, cache, tokens[:, start:done], start + length - done, pick, None)
        tokens[:, done : start + length] = new
        done = start + length
    return tokens


@torch.no_grad()
def forced_decode_logits(
    prior: Im2WavPrior,
    tokens: torch.Tensor,
    *,
    frame_embeds: torch.Tensor | None = None,
    lower_tokens: torch.Tensor | None = None,
    timing: torch.Tensor | None = None,
    guidance_scale: float | None = None,
) -> dict[str, torch.Tensor]:
    """Run the cached decoder of one window, feeding `tokens` instead of sampling (teacher forcing).

    Used to compare the sampler's per-step logits with the original's. Arguments as
    `Im2WavPrior.forward`; with `guidance_scale` the `[cond; null]` batch is decoded in one pass.

    Returns:
        `{"cond": [B, T, K], "guided": [B, T, K]}`, plus `"null": [B, T, K]` with guidance.
    """
    B, T = tokens.shape
    cond = prior.condition(B, T, frame_embeds, lower_tokens, timing)
    if guidance_scale is not None:
        cond = cond.cat(prior.condition(B, T, frame_embeds, lower_tokens, timing, unconditional=True))
    cache = prior.new_kv_cache(cond.start.shape[0])
    raw, guided = [], []

    def pick(logits: torch.Tensor, n: int) -> torch.Tensor:
        guided.append(logits)
        return tokens[:, n]

    _decode_window(prior, cond, cache, tokens[:, :0], T, pick, guidance_scale, record=raw)
    raw = torch.stack(raw, dim=1)  # (B or 2B, T, K)
    out = {"guided": torch.stack(guided, dim=1)}
    if guidance_scale is not None:
        out["cond"], out["null"] = raw.chunk(2)
    else:
        out["cond"] = raw
    return out

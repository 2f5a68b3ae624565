"""Sampling tokens from the IM2WAV priors with a KV cache, classifier-free guidance and windows.

Small free functions (gpt-fast style):

- `prefill`: run the start token and a prompt through the prior, filling the cache;
- `decode_one_token`: one new position, reading the cache;
- `apply_guidance`: `null + s * (cond - null)` on a `[cond; null]` batch (one forward for both);
- `filter_logits` / `sample_next_token`: temperature, top-k, top-p, per-sample generators;
- `sample_low_tokens` / `sample_up_tokens`: the public entry points, any length (windows of `n_ctx`
  with hop `n_ctx // 2`; the overlap primes the cache of the next window);
- `forced_decode_logits`: the cached decoder fed given tokens, returning its per-step logits (parity);
- `check_sampling_args` / `check_generator`: the argument checks the pipeline shares.

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
    """One cached decoding step.

    Args:
        prior: the prior.
        token: LongTensor [B], the token at position `pos - 1`.
        pos: the position whose logits are computed (>= 1).
        cond: the window's conditioning, batch B.
        cache: caches for batch B, holding positions `0 .. pos - 1`.

    Returns:
        Logits [B, K] at position `pos`.
    """
    h = prior.embed(token[:, None], pos, cond)  # (B, 1, D)
    for i, layer in enumerate(prior.layers):
        h = layer.decode(h, pos, cache[i])
    return prior.head(h, cond.x_cond[:, pos : pos + 1])[:, 0]


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
    """First token of each window: every `hop` tokens, the last one moved back to end at `num_tokens`.

    Args:
        num_tokens: tokens generated in all.
        n_ctx: tokens per window.
        hop: tokens between window starts (`n_ctx // 2` in the sampler).

    Returns:
        The start of every window, ascending; `[0]` when one window holds everything.
    """
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

    Args:
        frame_embeds: [B, F, C] CLIP embeddings spanning the whole generation.
        start: first token of the window.
        n_ctx: tokens per window.
        num_tokens: tokens generated in all.

    Returns:
        [B, F_window, C].
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

    Args:
        prior: the LOW prior (its `n_ctx` and `hop_length` are read).
        frame_embeds: [B, F, C] CLIP embeddings spanning the whole generation.
        start: first token of the window.
        num_tokens: tokens generated in all.

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
MIN_TEMPERATURE = 1e-3
MAX_GUIDANCE_SCALE = 100.0


def check_sampling_args(
    temperature: float, top_k: int, top_p: float, guidance_scale: float | None = None
) -> None:
    """Raise a `ValueError` naming the first sampling argument out of range.

    Shared by the sampler and `Im2WavPipeline`, so both reject the same values with the same words.

    Args:
        temperature: must be a finite number > 0.
        top_k: must be an int >= 0 (0 disables top-k).
        top_p: must be in (0, 1] (1.0 disables nucleus filtering).
        guidance_scale: when given, must be a finite number >= 0 (1 disables guidance).
    """
    def real(x) -> bool:
        return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)

    if not (real(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    # Past these bounds the guided / scaled logits overflow (float16 models first) and the token
    # probabilities become NaN; no real use needs them (top_k=1 is greedy decoding).
    if temperature < MIN_TEMPERATURE:
        raise ValueError(f"temperature must be at least {MIN_TEMPERATURE:g} (use top_k=1 for greedy), got {temperature}")
    if not (isinstance(top_k, numbers.Integral) and not isinstance(top_k, bool) and top_k >= 0):
        raise ValueError(f"top_k must be an int >= 0 (0 disables it), got {top_k}")
    if not (real(top_p) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] (1.0 disables nucleus filtering), got {top_p}")
    if guidance_scale is not None and not (real(guidance_scale) and guidance_scale >= 0):
        raise ValueError(f"guidance_scale must be a finite number >= 0 (1 disables guidance), got {guidance_scale}")
    if guidance_scale is not None and guidance_scale > MAX_GUIDANCE_SCALE:
        raise ValueError(f"guidance_scale must be at most {MAX_GUIDANCE_SCALE:g} (the paper uses 3), got {guidance_scale}")


def check_generator(generator: Generator, batch_size: int) -> None:
    """Raise unless `generator` is None, one `torch.Generator`, or a list of exactly `batch_size` of them.

    Args:
        generator: the `generator` argument of a sampling call.
        batch_size: rows sampled together (in the pipeline: batch size x num_waveforms_per_prompt).
    """
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch_size:
            raise ValueError(f"got a list of {len(generator)} generators for {batch_size} waveforms (batch size x "
                             "num_waveforms_per_prompt); pass one generator or exactly one per waveform")
        bad = [type(g).__name__ for g in generator if not isinstance(g, torch.Generator)]
    else:
        bad = [] if generator is None or isinstance(generator, torch.Generator) else [type(generator).__name__]
    if bad:
        raise TypeError(f"generator must be a torch.Generator, a list of them or None, got {bad[0]}; "
                        "seed one with torch.Generator().manual_seed(seed)")


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


def _token_picker(
    temperature: float, top_k: int, top_p: float, generator: Generator, callback: Callback | None, total: int
) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """`pick(logits, n)` for `_decode_window`: sample a token, then report progress over all windows."""
    done = 0

    def pick(logits: torch.Tensor, n: int) -> torch.Tensor:
        nonlocal done
        token = sample_next_token(logits, temperature, top_k, top_p, generator)
        done += 1
        if callback is not None:
            callback(done, total)
        return token

    return pick


def _sample_windows(
    prior: Im2WavPrior,
    batch_size: int,
    num_tokens: int,
    window_cond: Callable[[int, int], PriorConditioning],
    pick: Callable[[torch.Tensor, int], torch.Tensor],
    guidance_scale: float | None,
) -> torch.LongTensor:
    """Sample `num_tokens` tokens in windows of `n_ctx` with hop `n_ctx // 2`.

    `window_cond(start, length)` gives the conditioning of the window of `length` tokens from `start`
    (the `[cond; null]` batch when `guidance_scale` is set). Each window is primed with the tokens it
    shares with the previous one and decodes the rest; one cache serves every window.
    """
    n_ctx = prior.config.n_ctx
    length = min(n_ctx, num_tokens)
    cache = prior.new_kv_cache(batch_size if guidance_scale is None else 2 * batch_size)
    tokens = torch.zeros(batch_size, num_tokens, dtype=torch.long, device=prior.device)
    done = 0
    for start in window_starts(num_tokens, n_ctx, n_ctx // 2):
        cond = window_cond(start, length)
        new = _decode_window(prior, cond, cache, tokens[:, start:done], start + length - done, pick, guidance_scale)
        tokens[:, done : start + length] = new  # (B, T_new)
        done = start + length
    return tokens


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
    _check_prior(prior, up=False)
    _check_frames(prior, frame_embeds)
    B = frame_embeds.shape[0]
    check_sampling_args(temperature, top_k, top_p, guidance_scale)
    check_generator(generator, B)
    guided = guidance_scale != 1.0
    if guided and prior.config.guidance is False:
        raise ValueError("this prior has no null condition for classifier-free guidance; pass guidance_scale=1.0")
    if not isinstance(num_tokens, numbers.Integral) or isinstance(num_tokens, bool) or num_tokens < 1:
        raise ValueError(f"num_tokens must be an int >= 1, got {num_tokens!r}")

    frame_embeds = frame_embeds.to(prior.device)

    def window_cond(start: int, length: int) -> PriorConditioning:
        frames, timing = low_window_inputs(prior, frame_embeds, start, num_tokens)
        cond = prior.condition(B, length, frames, timing=timing)
        if guided:
            cond = cond.cat(prior.condition(B, length, frames, timing=timing, unconditional=True))
        return cond

    pick = _token_picker(temperature, top_k, top_p, generator, callback, num_tokens)
    return _sample_windows(prior, B, int(num_tokens), window_cond, pick, guidance_scale if guided else None)


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
    factor = prior.upsample_factor
    num_tokens = low_tokens.shape[1] * factor
    low_tokens = low_tokens.to(prior.device)
    frame_embeds = frame_embeds.to(prior.device)

    def window_cond(start: int, length: int) -> PriorConditioning:
        # the LOW tokens of the same time span (start is a multiple of 4: hop and n_ctx are)
        lower = low_tokens[:, start // factor : (start + length) // factor]
        return prior.condition(B, length, frame_embeds, lower_tokens=lower)

    pick = _token_picker(temperature, top_k, top_p, generator, callback, num_tokens)
    return _sample_windows(prior, B, num_tokens, window_cond, pick, None)


@torch.inference_mode()
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

    Used to compare the sampler's per-step logits with the original's.

    Args:
        prior: the prior.
        tokens: LongTensor [B, T], T <= n_ctx, fed one by one.
        frame_embeds, lower_tokens, timing: the conditioning, as in `Im2WavPrior.forward`.
        guidance_scale: when set, the `[cond; null]` batch is decoded in one pass and mixed.

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

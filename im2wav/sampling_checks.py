"""Checks of the sampling arguments, shared by the sampler, the pipeline, the CLI and the nodes, so all
of them reject the same values with the same words."""

from __future__ import annotations

import math
import numbers

import torch

Generator = torch.Generator | list[torch.Generator] | None

# Past these bounds the guided / scaled logits overflow (float16 models first) and the token
# probabilities become NaN; no real use needs them (top_k=1 is greedy decoding).
MIN_TEMPERATURE = 1e-3
MAX_GUIDANCE_SCALE = 100.0


def check_sampling_args(
    temperature: float, top_k: int, top_p: float, guidance_scale: float | None = None
) -> None:
    """Raise a `ValueError` naming the first sampling argument out of range.

    Shared by the sampler and `Im2WavPipeline`, so both reject the same values with the same words.

    Args:
        temperature: must be a finite number >= `MIN_TEMPERATURE`.
        top_k: must be an int >= 0 (0 disables top-k).
        top_p: must be in (0, 1] (1.0 disables nucleus filtering).
        guidance_scale: when given, must be a finite number from 0 to `MAX_GUIDANCE_SCALE` (1 disables guidance).
    """
    def real(x) -> bool:
        return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)

    if not (real(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
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

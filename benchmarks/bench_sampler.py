"""Tokens/s of the KV-cached sampler against full recomputation of the prefix at every step.

Default (CPU): a random LOW-style prior of width 256, depth 12, n_ctx 1024 (32 blocks), vocab 2048,
classifier-free guidance on (the `[cond; null]` batch is doubled), 1024 tokens, batch 1 and 8.
Full recomputation costs grow with the prefix, so by default its time is integrated from forward
passes timed at a few prefix lengths (`--exact-reference` runs every step instead: minutes).

`--paper` (CUDA): the paper-size LOW (2048 tokens, guidance) then UP (8192 tokens) priors with
random weights, for one 4.096 s clip in bfloat16.

    python benchmarks/bench_sampler.py                       # CPU, writes benchmarks/results/sampler.json
    python benchmarks/bench_sampler.py --device cuda --batch-sizes 1 8
    python benchmarks/bench_sampler.py --paper --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from im2wav.models.prior import Im2WavPrior
from im2wav.sampling import apply_guidance, sample_low_tokens, sample_next_token, sample_up_tokens


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--n-ctx", type=int, default=1024)
    p.add_argument("--blocks", type=int, default=32)
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--tokens", type=int, default=1024, help="tokens generated per run")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--guidance-scale", type=float, default=3.0, help="1.0 disables guidance")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--reference-points", type=int, default=6,
                   help="prefix lengths at which the full-recompute step is timed and then integrated")
    p.add_argument("--exact-reference", action="store_true", help="time full recomputation at every step")
    p.add_argument("--skip-reference", action="store_true", help="only time the cached sampler")
    p.add_argument("--paper", action="store_true", help="paper-size LOW + UP for one 4.096 s clip (CUDA, bf16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/sampler.json")
    return p.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def clip_inputs(batch: int, device: torch.device, frames: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.nn.functional.normalize(torch.randn(batch, frames, 512, generator=g), dim=-1).to(device)


@torch.no_grad()
def full_recompute_step_time(prior: Im2WavPrior, embeds: torch.Tensor, timing: torch.Tensor, length: int,
                             guidance_scale: float, repeats: int = 2) -> float:
    """Seconds of one reference step at prefix length `length`: a full forward of `[cond; null]`."""
    B = embeds.shape[0]
    guided = guidance_scale != 1.0
    tokens = torch.randint(0, prior.config.vocab_size, (B, length), device=embeds.device)
    both = lambda t: torch.cat([t, t]) if guided else t  # noqa: E731
    uncond = torch.arange(2 * B if guided else B, device=embeds.device) >= B
    best = float("inf")
    for _ in range(repeats):
        sync(embeds.device)
        start = time.perf_counter()
        logits = prior(both(tokens), frame_embeds=both(embeds), timing=both(timing), unconditional=uncond)[:, -1]
        sample_next_token(apply_guidance(logits, guidance_scale) if guided else logits)
        sync(embeds.device)
        best = min(best, time.perf_counter() - start)
    return best


def reference_seconds(prior, embeds, timing, args) -> tuple[float, str]:
    n = args.tokens
    if args.exact_reference:
        return sum(full_recompute_step_time(prior, embeds, timing, t, args.guidance_scale, 1)
                   for t in range(1, n + 1)), "exact: every step timed"
    points = np.unique(np.linspace(1, n, args.reference_points).round().astype(int))
    times = [full_recompute_step_time(prior, embeds, timing, int(t), args.guidance_scale) for t in points]
    total = float(np.interp(np.arange(1, n + 1), points, times).sum())
    return total, f"integrated (linear interpolation) from steps timed at prefix lengths {points.tolist()}"


def bench_small(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict:
    config = dict(vocab_size=args.vocab_size, n_ctx=args.n_ctx, width=args.width, depth=args.depth, heads=1,
                  blocks=args.blocks, hop_length=32, time_signal=True, frame_conditioning=True, guidance=True)
    torch.manual_seed(args.seed)
    prior = Im2WavPrior(**config).to(device).eval()
    if dtype != torch.float32:
        prior = prior.to(dtype)
    results = []
    for batch in args.batch_sizes:
        embeds = clip_inputs(batch, device).to(dtype)
        timing = torch.tensor([[160000.0, 0.0, args.n_ctx * 32.0]], device=device).expand(batch, 3)
        sample_low_tokens(prior, embeds, 8, guidance_scale=args.guidance_scale)  # warm-up
        sync(device)
        start = time.perf_counter()
        sample_low_tokens(prior, embeds, args.tokens, guidance_scale=args.guidance_scale,
                          generator=torch.Generator(device).manual_seed(0))
        sync(device)
        cached = time.perf_counter() - start
        row = {"batch_size": batch, "cached_seconds": cached, "cached_tokens_per_s": batch * args.tokens / cached}
        if not args.skip_reference:
            ref, how = reference_seconds(prior, embeds, timing, args)
            row.update(reference_seconds=ref, reference_tokens_per_s=batch * args.tokens / ref,
                       reference_method=how, speedup=ref / cached)
        print(json.dumps(row))
        results.append(row)
    return {"mode": "small", "config": config, "tokens": args.tokens, "guidance_scale": args.guidance_scale,
            "dtype": str(dtype), "results": results}


def bench_paper(args: argparse.Namespace, device: torch.device) -> dict:
    if device.type != "cuda":
        raise SystemExit("--paper needs --device cuda (a 157 M + 203 M parameter model, 10240 steps)")
    dtype = torch.bfloat16
    torch.manual_seed(args.seed)
    low = Im2WavPrior.from_preset("paper-low").to(device=device, dtype=dtype).eval()
    up = Im2WavPrior.from_preset("paper-up").to(device=device, dtype=dtype).eval()
    results = []
    for batch in args.batch_sizes:
        embeds = clip_inputs(batch, device, frames=int(4.096 * 30)).to(dtype)
        sample_low_tokens(low, embeds, 16)  # warm-up
        sample_up_tokens(up, torch.zeros(batch, 4, dtype=torch.long, device=device), embeds)
        gen = torch.Generator(device).manual_seed(0)
        sync(device)
        t0 = time.perf_counter()
        z_low = sample_low_tokens(low, embeds, 2048, guidance_scale=3.0, generator=gen)
        sync(device)
        t1 = time.perf_counter()
        z_up = sample_up_tokens(up, z_low, embeds, generator=gen)
        sync(device)
        t2 = time.perf_counter()
        row = {"batch_size": batch, "low_tokens": z_low.shape[1], "up_tokens": z_up.shape[1],
               "low_seconds": t1 - t0, "up_seconds": t2 - t1, "total_seconds": t2 - t0,
               "low_tokens_per_s": batch * 2048 / (t1 - t0), "up_tokens_per_s": batch * 8192 / (t2 - t1),
               "realtime_factor": 4.096 / (t2 - t0), "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30}
        print(json.dumps(row))
        results.append(row)
    return {"mode": "paper", "dtype": str(dtype), "clip_seconds": 4.096, "guidance_scale_low": 3.0,
            "results": results}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    report = bench_paper(args, device) if args.paper else bench_small(args, device, dtype)
    report["environment"] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

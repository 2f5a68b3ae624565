"""Decoding speed against the hardware limit, in one run: prints and saves JSON.

A decoding step reads every transformer weight once, so on a CPU its floor is
`bytes of weights / memory read bandwidth`. This measures, in the same process and load:

- `bandwidth`: a 1 GiB float32 sum (numpy, one thread), the read bandwidth one core gets;
- `low` / `up`: ms per decoding step of a LOW prior (the guided `[cond; null]` pair, 2 rows) and
  an UP prior (1 row), eager and, with `--compile`, compiled; the ratio to the floor;
- `small`: tokens/s of `sample_low_tokens` for the small LOW config (width 256, depth 12, n_ctx 1024,
  vocab 2048, guidance 3) at batch 1 and 8 (CPU) or 1 and 64 (CUDA);
- `load`: peak RSS above the import baseline while converting an original-format checkpoint and
  while loading a saved folder, each in a fresh subprocess, as a multiple of the weights' size;
- `bf16`: ms/step in bfloat16 and the deviation of its logits from float32;
- `clip` (CUDA): one 4.096 s clip, LOW (2048 guided steps) + UP (8192 steps), at batch 1 and 64.

    python benchmarks/bench_decode.py                         # small sizes, CPU, one thread
    python benchmarks/bench_decode.py --paper                 # paper-size LOW/UP (612 / 800 MB of weights)
    python benchmarks/bench_decode.py --paper --compile       # + compiled steps (minutes of compilation)
    python benchmarks/bench_decode.py --paper --device cuda --dtype bfloat16 --compile --clip
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from im2wav.huge_pages import use_huge_pages
from im2wav.models.prior import PRESETS, Im2WavPrior
from im2wav.sampling import decode_one_token, prefill, sample_low_tokens, sample_up_tokens

SMALL = dict(vocab_size=2048, n_ctx=1024, width=256, depth=12, blocks=32)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="CPU intra-op threads for the step timings")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--paper", action="store_true", help="paper-size LOW and UP priors (else width 512, depth 12)")
    p.add_argument("--compile", action="store_true", help="also time the compiled step (torch.compile)")
    p.add_argument("--steps", type=int, default=40, help="decoding steps timed per measurement")
    p.add_argument("--skip-load", action="store_true", help="skip the peak-RSS loading measurement")
    p.add_argument("--skip-small", action="store_true", help="skip the small-config tokens/s")
    p.add_argument("--bf16", action="store_true", help="also time bfloat16 steps and their deviation (CPU)")
    p.add_argument("--clip", action="store_true", help="CUDA: time one 4.096 s clip, LOW + UP, batch 1 and 64")
    p.add_argument("--out", default="benchmarks/results/decode.json")
    return p.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def read_bandwidth() -> float:
    """GB/s of a 1 GiB float32 sum on one thread (best of 5)."""
    a = np.ones(256 * 1024 * 1024, dtype=np.float32)
    a.sum()
    best = min(_timed(a.sum) for _ in range(5))
    return a.nbytes / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def weight_bytes(prior: Im2WavPrior) -> int:
    """Bytes a decoding step reads: every transformer weight and the tied output projection."""
    params = list(prior.layers.parameters()) + [prior.token_embedding.weight]
    return sum(p.numel() * p.element_size() for p in params)


def prior_config(kind: str, paper: bool) -> dict:
    if paper:
        return PRESETS[f"paper-{kind}"]
    small = dict(width=512, depth=12, n_ctx=1024 if kind == "low" else 4096, blocks=32)
    return {**PRESETS[f"paper-{kind}"], **small}


def build(kind: str, paper: bool, device: torch.device, dtype: torch.dtype) -> Im2WavPrior:
    prior = Im2WavPrior(**prior_config(kind, paper)).to(device=device, dtype=dtype).eval()
    use_huge_pages(prior)  # as the samplers do before decoding
    return prior


def inputs(prior: Im2WavPrior, rows: int, device: torch.device) -> dict:
    frames = torch.nn.functional.normalize(torch.randn(rows, 8, 512, device=device), dim=-1)
    if prior.config.lower_vocab_size is None:
        timing = torch.tensor([[160000.0, 0.0, prior.config.n_ctx * 32.0]], device=device).expand(rows, 3)
        return dict(frame_embeds=frames, timing=timing)
    lower = torch.randint(0, prior.config.lower_vocab_size, (rows, prior.config.n_ctx // 4), device=device)
    return dict(frame_embeds=frames, lower_tokens=lower)


@torch.inference_mode()
def step_ms(prior: Im2WavPrior, rows: int, steps: int, step=decode_one_token) -> float:
    """Median ms of one decoding step for `rows` sequences, positions spread over several blocks."""
    device = prior.device
    cond = prior.condition(rows, prior.config.n_ctx, **inputs(prior, rows, device))
    cache = prior.new_kv_cache(rows)
    cache.set_condition(cond.start, cond.x_cond)
    logits = prefill(prior, torch.zeros(rows, 0, dtype=torch.long, device=device), cache)
    token = logits.argmax(-1)
    stride = max(1, (prior.config.n_ctx - 2) // (steps + 5))
    times = []
    for i in range(steps + 5):
        pos = torch.tensor([1 + i * stride], device=device)
        sync(device)
        t = time.perf_counter()
        token = step(prior, token, pos, cache).argmax(-1)
        sync(device)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times[5:])  # the first steps warm up (and compile)


def bench_steps(args, device, dtype, bandwidth: float | None) -> dict:
    from im2wav.decoding import compile_step

    out = {}
    for kind, rows in (("low", 2), ("up", 1)):
        prior = build(kind, args.paper, device, dtype)
        entry = {"rows": rows, "params_m": round(sum(p.numel() for p in prior.parameters()) / 1e6, 1),
                 "weight_mb": round(weight_bytes(prior) / 1e6, 1), "eager_ms": round(step_ms(prior, rows, args.steps), 2)}
        if bandwidth:
            entry["floor_ms"] = round(weight_bytes(prior) / bandwidth * 1e3, 3)
            entry["eager_floor_ratio"] = round(entry["eager_ms"] / entry["floor_ms"], 3)
        if args.compile:
            torch._dynamo.reset()
            t = time.perf_counter()
            entry["compiled_ms"] = round(step_ms(prior, rows, args.steps, compile_step(decode_one_token, device)), 2)
            entry["compile_and_run_s"] = round(time.perf_counter() - t, 1)
            if bandwidth:
                entry["compiled_floor_ratio"] = round(entry["compiled_ms"] / entry["floor_ms"], 3)
        print(kind, entry, flush=True)
        out[kind] = entry
        del prior
    return out


@torch.inference_mode()
def bench_bf16(args, device) -> dict:
    prior = build("low", args.paper, device, torch.float32)
    tokens = torch.randint(0, prior.config.vocab_size, (2, prior.config.n_ctx), device=device)
    kw = inputs(prior, 2, device)
    ref = prior(tokens, **kw)
    prior_bf16 = prior.to(torch.bfloat16)
    use_huge_pages(prior_bf16)
    got = prior_bf16(tokens, **kw).float()
    same_top = (got.argmax(-1) == ref.argmax(-1)).float().mean().item()
    return {"bf16_ms": round(step_ms(prior_bf16, 2, args.steps), 2),
            "logit_max_abs_diff": round((got - ref).abs().max().item(), 4),
            "logit_mean_abs_diff": round((got - ref).abs().mean().item(), 5),
            "logit_std": round(ref.std().item(), 4), "same_argmax_fraction": round(same_top, 4)}


def bench_small(args, device) -> dict:
    prior = Im2WavPrior(**{**PRESETS["paper-low"], **SMALL}).to(device).eval()
    out = {"config": SMALL, "tokens": 1024}
    batches = (1, 8) if device.type == "cpu" else (1, 64)
    modes = [False, True] if args.compile else [False]
    for compiled in modes:
        for batch in batches:
            frames = torch.nn.functional.normalize(torch.randn(batch, 8, 512, device=device), dim=-1)
            sample_low_tokens(prior, frames, 64, compile=compiled)  # warm up (and compile)
            sync(device)
            t = time.perf_counter()
            sample_low_tokens(prior, frames, 1024, guidance_scale=3.0, compile=compiled,
                              generator=torch.Generator(device).manual_seed(0))
            sync(device)
            key = f"{'compiled' if compiled else 'eager'}_batch{batch}_tok_s"
            out[key] = round(batch * 1024 / (time.perf_counter() - t), 1)
            print("small", key, out[key], flush=True)
    return out


_LOAD_CHILD = r"""
import json, resource, sys
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
import torch, im2wav
from im2wav.convert import load_original_checkpoint
from im2wav.models.prior import Im2WavPrior
base = peak_mb()
if sys.argv[1] == "convert":
    model = load_original_checkpoint(sys.argv[2])
else:
    model = Im2WavPrior.from_pretrained(sys.argv[2])
weights = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
print(json.dumps({"baseline_mb": round(base), "peak_mb": round(peak_mb()), "weights_mb": round(weights)}))
"""

_WRITE_CHILD = r"""
import sys, torch
from im2wav.models.prior import PRESETS, Im2WavPrior
from im2wav.convert.prior import _key_map, prior_config_from_hps
hps = dict(l_bins=2048, n_ctx=2048, prior_width=1024, prior_depth=48, heads=1, blocks=64, m_attn=0.25, m_mlp=1.0,
           levels=2, level=1, strides_t=[2, 2], downs_t=[3, 2], class_free_guidance_prob=0.5, video_clip_emb=True,
           sr=16000, min_duration=2.05, max_duration=600.0, t_bins=64, attn_order=2, clip_emb=True, labels=True)
if sys.argv[2] == "small":
    hps.update(prior_width=512, prior_depth=12, n_ctx=1024, blocks=32)
config = prior_config_from_hps(hps)
prior = Im2WavPrior(**config)
ours = prior.state_dict()
sd = {}
for theirs, (key, conv1d) in _key_map(config).items():
    v = ours[key]
    sd[theirs] = v.t().contiguous().half() if conv1d else v.clone()  # the released files: fp16 Conv1D [in, out]
sd["prior.x_out.weight"] = sd["prior.x_emb.weight"]
torch.save({"hps": hps, "model": sd, "opt": None, "step": 1}, sys.argv[1])
prior.save_pretrained(sys.argv[1] + ".folder")
"""


def bench_load(args) -> dict:
    """Peak RSS of converting / loading a prior in fresh processes, as a multiple of its weights."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "low.pth.tar")
        subprocess.run([sys.executable, "-c", _WRITE_CHILD, path, "paper" if args.paper else "small"], check=True)
        for mode, target in (("convert", path), ("from_pretrained", path + ".folder")):
            done = subprocess.run([sys.executable, "-c", _LOAD_CHILD, mode, target], check=True,
                                  capture_output=True, text=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            r["ratio_to_weights"] = round((r["peak_mb"] - r["baseline_mb"]) / r["weights_mb"], 3)
            print("load", mode, r, flush=True)
            out[mode] = r
    return out


@torch.inference_mode()
def bench_clip(args, device, dtype) -> dict:
    """CUDA: seconds for one 4.096 s clip (LOW 2048 guided tokens + UP 8192 tokens) at batch 1 and 64."""
    low, up = build("low", True, device, dtype), build("up", True, device, dtype)
    out = {}
    for batch in (1, 64):
        frames = torch.nn.functional.normalize(torch.randn(batch, 8, 512, device=device), dim=-1).to(dtype)
        sample_up_tokens(up, sample_low_tokens(low, frames, 64, compile=args.compile), frames, compile=args.compile)
        sync(device)
        t = time.perf_counter()
        z_low = sample_low_tokens(low, frames, 2048, compile=args.compile)
        sync(device)
        t_low = time.perf_counter() - t
        sample_up_tokens(up, z_low, frames, compile=args.compile)
        sync(device)
        total = time.perf_counter() - t
        out[f"batch{batch}"] = {"low_s": round(t_low, 2), "up_s": round(total - t_low, 2), "total_s": round(total, 2),
                                "realtime_factor": round(batch * 4.096 / total, 1)}
        print("clip", batch, out[f"batch{batch}"], flush=True)
    out["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def main() -> None:
    args = parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    report = {"machine": {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                          else platform.processor() or platform.machine(),
                          "cpu_count": __import__("os").cpu_count(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "load_average": list(__import__("os").getloadavg())},
              "settings": vars(args)}
    bandwidth = None
    if device.type == "cpu":
        bandwidth = read_bandwidth() * 1e9
        report["bandwidth_gb_s"] = round(bandwidth / 1e9, 2)
        print("bandwidth GB/s", report["bandwidth_gb_s"], flush=True)
    report["steps"] = bench_steps(args, device, dtype, bandwidth)
    if device.type == "cpu" and bandwidth:  # the floor measured again after the steps, for the load drift
        report["bandwidth_after_gb_s"] = round(read_bandwidth(), 2)
    if args.bf16 and device.type == "cpu":
        report["bf16"] = bench_bf16(args, device)
        print("bf16", report["bf16"], flush=True)
    if not args.skip_small:
        report["small"] = bench_small(args, device)
    if not args.skip_load and device.type == "cpu":
        report["load"] = bench_load(args)
    if args.clip and device.type == "cuda":
        report["clip"] = bench_clip(args, device, dtype)
    report["machine"]["load_average_end"] = list(__import__("os").getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Training throughput of each stage: optimizer steps/s, windows (samples)/s and tokens/s.

Random inputs of the right shapes (audio windows for the VQ-VAE, token windows with CLIP frames
and timing for the priors), the stages' own losses, AdamW and gradient clipping, as the training
scripts run them; data loading is not included.

    python benchmarks/bench_training.py                       # tiny presets on the CPU
    python benchmarks/bench_training.py --scale paper --device cuda --mixed-precision bf16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from pathlib import Path

import torch

SCALES = {
    # preset names and per-step batch sizes of each stage
    "tiny": {"vqvae": ("tiny", 8, 4096), "low": ("tiny-low", 8), "up": ("tiny-up", 4)},
    "paper": {"vqvae": ("paper", 4, 65536), "low": ("paper-low", 2), "up": ("paper-up", 1)},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="tiny", help="model presets and batch sizes")
    parser.add_argument("--stages", default="vqvae,low,up", help="comma-separated stages to measure")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="device")
    parser.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no", help="autocast dtype")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default="benchmarks/results/training.json", help="JSON output file")
    return parser.parse_args(argv)


def make_stage(stage: str, scale: str):
    """`(model, batch, loss_fn, samples per step, tokens per step, config)` of one stage."""
    from im2wav.data.windows import frames_for_window
    from im2wav.losses.tokens import prior_token_loss
    from im2wav.losses.vqvae import VQVAELossConfig, vqvae_loss
    from im2wav.models.prior import Im2WavPrior
    from im2wav.models.vqvae import HierarchicalVQVAE

    if stage == "vqvae":
        preset, batch_size, window = SCALES[scale]["vqvae"]
        model = HierarchicalVQVAE.from_preset(preset)
        batch = {"audio": 0.3 * torch.randn(batch_size, window)}
        loss_config = VQVAELossConfig()

        def loss_fn(m, b):
            return vqvae_loss(m, b["audio"], loss_config).loss

        return model, batch, loss_fn, batch_size, batch_size * window, {"preset": preset, "batch_size": batch_size,
                                                                         "window_samples": window}
    preset, batch_size = SCALES[scale][stage]
    model = Im2WavPrior.from_preset(preset)
    c = model.config
    _, frames = frames_for_window(0, c.n_ctx * c.hop_length, c.sample_rate)  # frames per window, as the dataset gives
    batch = {
        "tokens": torch.randint(0, c.vocab_size, (batch_size, c.n_ctx)),
        "frame_embeds": torch.nn.functional.normalize(torch.randn(batch_size, frames, c.clip_dim), dim=-1),
    }
    if stage == "low":
        batch["timing"] = torch.tensor([[160000.0, 0.0, c.n_ctx * c.hop_length]] * batch_size)
    else:
        batch["lower_tokens"] = torch.randint(0, c.lower_vocab_size, (batch_size, c.n_ctx // model.upsample_factor))
    dropout = 0.5 if stage == "low" else 0.0

    def loss_fn(m, b):
        return prior_token_loss(m, b["tokens"], frame_embeds=b["frame_embeds"], lower_tokens=b.get("lower_tokens"),
                                timing=b.get("timing"), condition_dropout=dropout).loss

    return model, batch, loss_fn, batch_size, batch_size * c.n_ctx, {"preset": preset, "batch_size": batch_size,
                                                                      "n_ctx": c.n_ctx}


def bench_stage(stage: str, args: argparse.Namespace) -> dict:
    from im2wav.training.optim import make_optimizer

    device = torch.device(args.device)
    torch.manual_seed(0)
    model, batch, loss_fn, samples, tokens, config = make_stage(stage, args.scale)
    model.to(device).train()
    batch = {k: v.to(device) for k, v in batch.items()}
    optimizer = make_optimizer(model, 1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.mixed_precision)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
            loss = loss_fn(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    result = {
        **config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps_per_s": args.steps / seconds,
        "samples_per_s": args.steps * samples / seconds,
        "tokens_per_s": args.steps * tokens / seconds,
        "tokens_unit": "audio samples" if stage == "vqvae" else "prior tokens",
        "seconds_per_step": seconds / args.steps,
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {
        "benchmark": "training throughput (forward + backward + clip + AdamW step, random inputs)",
        "scale": args.scale, "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu",
        "mixed_precision": args.mixed_precision, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "warmup_steps": args.warmup, "timed_steps": args.steps, "stages": {},
    }
    for stage in [s.strip() for s in args.stages.split(",") if s.strip()]:
        if stage not in ("vqvae", "low", "up"):
            raise ValueError(f"unknown stage {stage!r}; choose from vqvae, low, up")
        report["stages"][stage] = bench_stage(stage, args)
        print(stage, json.dumps(report["stages"][stage]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

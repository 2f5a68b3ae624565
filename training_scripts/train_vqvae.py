"""Train (or fine-tune) the hierarchical VQ-VAE on a prepared dataset.

    python training_scripts/train_vqvae.py --dataset data/prepared --run-dir runs/vqvae --preset paper
    accelerate launch training_scripts/train_vqvae.py --dataset ... --run-dir ... --mixed-precision bf16
    python training_scripts/train_vqvae.py ... --resume            # continue the run exactly

The data statistics the losses are normalised by (`bandwidth_*`) are measured on the training
windows of a fresh run and stored in the model config.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    from im2wav.training.arguments import add_training_arguments

    parser.add_argument("--dataset", required=True, help="prepared dataset folder (prepare_dataset.py)")
    parser.add_argument("--window-length", type=int, default=65536, help="audio samples per training window (random crops)")
    parser.add_argument("--bandwidth-windows", type=int, default=64, help="windows measured for the loss normalisation")
    add_training_arguments(parser, preset="paper", batch_size=4, lr=3e-4, max_steps=10000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from im2wav.data.windows import AudioWindows
    from im2wav.losses.audio import bandwidth_stats
    from im2wav.models.vqvae import PRESETS, HierarchicalVQVAE
    from im2wav.training.arguments import setup_model, training_config, write_run_config
    from im2wav.training.loop import train

    train_data = AudioWindows(args.dataset, args.window_length, "train", args.val_fraction)
    try:
        val_data = AudioWindows(args.dataset, args.window_length, "val", args.val_fraction)
    except ValueError:
        val_data = None  # no validation items

    def fresh(config: dict) -> HierarchicalVQVAE:
        hop = 1
        for down, stride in zip(config["downs_t"], config["strides_t"]):
            hop *= stride**down
        if args.window_length % hop:
            raise ValueError(f"--window-length {args.window_length} must be a multiple of the VQ-VAE's largest hop ({hop})")
        rng = np.random.default_rng([args.seed, 1_000_003])
        clips = train_data.batch(train_data.draw(rng, args.bandwidth_windows))["audio"]  # (N, S)
        stats = bandwidth_stats(clips)
        return HierarchicalVQVAE(**config, bandwidth_l1=stats["l1"], bandwidth_l2=stats["l2"], bandwidth_spec=stats["spec"])

    model, resume = setup_model(args, "vqvae", PRESETS, fresh, data_keys=("bandwidth_l1", "bandwidth_l2", "bandwidth_spec"))
    hop = model.hop_lengths[-1]
    if args.window_length % hop:
        raise ValueError(f"--window-length {args.window_length} must be a multiple of the VQ-VAE's largest hop ({hop})")
    cfg = training_config(args, "vqvae", tokens_per_sample=args.window_length)
    write_run_config(args.run_dir, args, cfg, model, {"train_items": len(train_data),
                                                       "val_items": 0 if val_data is None else len(val_data)})

    def loss_fn(model: torch.nn.Module, batch: dict, training: bool):
        out = model(batch["audio"])  # (B, S) -> reconstructions + loss terms
        return out.loss, out.metrics

    result = train(model, loss_fn, train_data, cfg, val_data=val_data, resume=resume, progress=not args.no_progress)
    print(json.dumps({"step": result.step, "stopped": result.stopped, "checkpoint": str(result.checkpoint),
                      "last_loss": result.losses[-1] if result.losses else None, "val_loss": result.val_loss}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Encode a prepared dataset with a trained VQ-VAE once, for prior training (resumable).

    python training_scripts/encode_tokens.py --dataset data/prepared --vqvae runs/vqvae --out data/tokens

`--vqvae` takes a VQ-VAE run folder (its latest checkpoint), a checkpoint, a model folder, a pipeline
folder or an original `.pth.tar`.
"""

from __future__ import annotations

import argparse
import json
import sys

from im2wav.errors import run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", required=True, help="prepared dataset folder")
    parser.add_argument("--vqvae", required=True, help="VQ-VAE: run folder, checkpoint, model folder, pipeline folder or .pth.tar")
    parser.add_argument("--out", required=True, help="token folder (resumed when it exists)")
    parser.add_argument("--use-ema", action="store_true", help="take the EMA weights of a training checkpoint")
    parser.add_argument("--batch-size", type=int, default=8, help="clips of equal length encoded together")
    parser.add_argument("--chunk-seconds", type=float, default=30.0, help="longer clips are encoded in chunks")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu", help="device for the VQ-VAE")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from im2wav.data.token_cache import encode_dataset_tokens
    from im2wav.training.stages import load_stage_model

    vqvae = load_stage_model(args.vqvae, "vqvae", use_ema=args.use_ema)
    count = encode_dataset_tokens(args.dataset, vqvae, args.out, vqvae_source=str(args.vqvae),
                                  batch_size=args.batch_size, chunk_seconds=args.chunk_seconds,
                                  device=args.device, progress=not args.no_progress)
    print(json.dumps({"encoded": count, "out": args.out}))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

"""Encode a prepared dataset with a trained VQ-VAE once, for prior training (resumable).

`--vqvae` takes a VQ-VAE run folder (its latest checkpoint), a checkpoint, a model folder, a pipeline
folder or an original `.pth.tar`.

examples:
  im2wav encode-tokens --dataset data/prepared --vqvae runs/vqvae --out data/tokens
"""

from __future__ import annotations

import argparse
import json

from .parsing import command_parser

NAME = "encode-tokens"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The `im2wav encode-tokens` parser; `prog` names the program in its usage line."""
    parser = command_parser(NAME, __doc__, prog)
    parser.add_argument("--dataset", required=True, help="prepared dataset folder")
    parser.add_argument("--vqvae", required=True,
                        help="VQ-VAE: run folder, checkpoint, model folder, pipeline folder or .pth.tar")
    parser.add_argument("--out", required=True, help="token folder (resumed when it exists)")
    parser.add_argument("--use-ema", action="store_true", help="take the EMA weights of a training checkpoint")
    parser.add_argument("--batch-size", type=int, default=8, help="clips of equal length encoded together")
    parser.add_argument("--chunk-seconds", type=float, default=30.0, help="longer clips are encoded in chunks")
    parser.add_argument("--device", default="auto", help="device for the VQ-VAE (auto: cuda when available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Encode; prints `{"encoded": count, "out": folder}` as JSON.

    `argv`: the arguments after the subcommand (default: `sys.argv[1:]`); `prog`: as in `build_parser`.
    """
    args = build_parser(prog).parse_args(argv)
    import torch

    from ..data.token_cache import encode_dataset_tokens
    from ..training.stages import load_stage_model

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    from ..quiet_loading import quiet_loading

    with quiet_loading():
        vqvae = load_stage_model(args.vqvae, "vqvae", use_ema=args.use_ema)
    count = encode_dataset_tokens(args.dataset, vqvae, args.out, vqvae_source=str(args.vqvae),
                                  batch_size=args.batch_size, chunk_seconds=args.chunk_seconds,
                                  device=device, progress=not args.no_progress)
    print(json.dumps({"encoded": count, "out": args.out}))
    return 0

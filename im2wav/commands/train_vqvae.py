"""Train (or fine-tune) the hierarchical VQ-VAE on a prepared dataset.

The data statistics the losses are normalised by (`bandwidth_*`) are measured on the training
windows of every new run and stored in the run's config and checkpoints (not in the model).

examples:
  im2wav train-vqvae --dataset data/prepared --run-dir runs/vqvae --preset paper
  im2wav train-vqvae --dataset data/prepared --run-dir runs/vqvae --resume      # continue exactly
  accelerate launch -m im2wav train-vqvae --dataset ... --run-dir ... --mixed-precision bf16
"""

from __future__ import annotations

import argparse
import json

from .parsing import command_parser

NAME = "train-vqvae"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The `im2wav train-vqvae` parser; `prog` names the program in its usage line."""
    from ..training.arguments import add_training_arguments

    parser = command_parser(NAME, __doc__, prog)
    parser.add_argument("--dataset", required=True, help="prepared dataset folder (im2wav prepare)")
    parser.add_argument("--window-length", type=int, default=65536,
                        help="audio samples per training window (random crops)")
    parser.add_argument("--bandwidth-windows", type=int, default=64, help="windows measured for the loss normalisation")
    add_training_arguments(parser, preset="paper", batch_size=4, lr=3e-4, max_steps=10000)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Train; prints `{"step", "stopped", "checkpoint", "last_loss", "val_loss"}` as JSON.

    `argv`: the arguments after the subcommand (default: `sys.argv[1:]`); `prog`: as in `build_parser`.
    """
    args = build_parser(prog).parse_args(argv)
    from ..training.arguments import vqvae_run_config
    from ..training.runs import train_vqvae_run

    print(json.dumps(train_vqvae_run(vqvae_run_config(args))))
    return 0

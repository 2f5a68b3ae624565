"""Train (or fine-tune) the LOW or UP prior on precomputed VQ-VAE tokens.

LOW drops the image condition of each window with probability `--condition-dropout` (0.5, as the
paper) so that it learns the null condition classifier-free guidance needs; UP is never dropped.

examples:
  im2wav encode-tokens --dataset data/prepared --vqvae runs/vqvae --out data/tokens
  im2wav train-prior --level low --dataset data/prepared --tokens data/tokens --run-dir runs/low
  im2wav train-prior --level up  --dataset data/prepared --tokens data/tokens --run-dir runs/up
  accelerate launch -m im2wav train-prior ...   # several GPUs
"""

from __future__ import annotations

import argparse
import json

from .parsing import command_parser

NAME = "train-prior"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The `im2wav train-prior` parser; `prog` names the program in its usage line."""
    from ..training.arguments import add_training_arguments

    parser = command_parser(NAME, __doc__, prog)
    parser.add_argument("--level", choices=("low", "up"), required=True, help="which prior")
    parser.add_argument("--dataset", required=True, help="prepared dataset folder (CLIP frames, lengths)")
    parser.add_argument("--tokens", required=True, help="token folder written by im2wav encode-tokens")
    parser.add_argument("--condition-dropout", type=float, default=None,
                        help="probability of training a window with the null condition (default: 0.5 LOW, 0 UP)")
    parser.add_argument("--time-signal-init-std", type=float, default=None,
                        help="LOW, fresh runs: redraw the time-signal embeddings with this std "
                             "(default: the model's init, std 0.01 as in the original)")
    add_training_arguments(parser, preset="", batch_size=4, lr=3e-4, max_steps=100000)
    return parser


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    """Parse and resolve the level-dependent defaults (`--preset paper-LEVEL`, `--condition-dropout`).

    `argv`: the arguments after the subcommand (default: `sys.argv[1:]`); `prog`: as in `build_parser`.
    """
    args = build_parser(prog).parse_args(argv)
    if not args.preset:
        args.preset = f"paper-{args.level}"
    if args.condition_dropout is None:
        args.condition_dropout = 0.5 if args.level == "low" else 0.0
    return args


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Train; prints `{"step", "stopped", "checkpoint", "last_loss", "val_loss"}` as JSON.

    `argv`: the arguments after the subcommand (default: `sys.argv[1:]`); `prog`: as in `build_parser`.
    """
    args = parse_args(argv, prog)
    from ..training.arguments import prior_run_config
    from ..training.runs import train_prior_run

    print(json.dumps(train_prior_run(prior_run_config(args))))
    return 0

"""Train (or fine-tune) the LOW or UP prior on precomputed VQ-VAE tokens.

    python training_scripts/encode_tokens.py --dataset data/prepared --vqvae runs/vqvae --out data/tokens
    python training_scripts/train_prior.py --level low --dataset data/prepared --tokens data/tokens --run-dir runs/low
    python training_scripts/train_prior.py --level up  --dataset data/prepared --tokens data/tokens --run-dir runs/up
    accelerate launch training_scripts/train_prior.py ...   # several GPUs

LOW drops the image condition of each window with probability `--condition-dropout` (0.5, as the
paper) so that it learns the null condition classifier-free guidance needs; UP is never dropped.
"""

from __future__ import annotations

import argparse
import json
import sys

from im2wav.errors import run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    from im2wav.training.arguments import add_training_arguments

    parser.add_argument("--level", choices=("low", "up"), required=True, help="which prior")
    parser.add_argument("--dataset", required=True, help="prepared dataset folder (CLIP frames, lengths)")
    parser.add_argument("--tokens", required=True, help="token folder written by encode_tokens.py")
    parser.add_argument("--condition-dropout", type=float, default=None,
                        help="probability of training a window with the null condition (default: 0.5 LOW, 0 UP)")
    add_training_arguments(parser, preset="", batch_size=4, lr=3e-4, max_steps=100000)
    args = parser.parse_args(argv)
    if not args.preset:
        args.preset = f"paper-{args.level}"
    if args.condition_dropout is None:
        args.condition_dropout = 0.5 if args.level == "low" else 0.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from im2wav.training.runs import train_prior_run

    print(json.dumps(train_prior_run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

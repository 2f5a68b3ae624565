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

from im2wav.errors import run_main


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
    from im2wav.training.runs import train_vqvae_run

    print(json.dumps(train_vqvae_run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

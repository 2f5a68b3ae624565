"""Train (or fine-tune) the VQ-VAE: `im2wav train-vqvae` as a script, with the same options.

    python training_scripts/train_vqvae.py --help      # the same as: im2wav train-vqvae --help

The logic lives in `im2wav.commands.train_vqvae`; this file keeps the repository's one-script-per-stage layout.
"""

import sys

from im2wav.cli import run_command
from im2wav.commands.train_vqvae import main  # noqa: F401  (callers run `main(argv)` directly)

if __name__ == "__main__":
    sys.exit(run_command("train-vqvae", prog="train_vqvae.py"))

"""Train (or fine-tune) the LOW or UP prior: `im2wav train-prior` as a script, with the same options.

    python training_scripts/train_prior.py --help      # the same as: im2wav train-prior --help

The logic lives in `im2wav.commands.train_prior`; this file keeps the repository's one-script-per-stage layout.
"""

import sys

from im2wav.cli import run_command
from im2wav.commands.train_prior import main  # noqa: F401  (callers run `main(argv)` directly)

if __name__ == "__main__":
    sys.exit(run_command("train-prior", prog="train_prior.py"))

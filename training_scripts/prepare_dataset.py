"""Prepare a video folder for training: `im2wav prepare` as a script, with the same options.

    python training_scripts/prepare_dataset.py --help      # the same as: im2wav prepare --help

The logic lives in `im2wav.commands.prepare`; this file keeps the repository's one-script-per-stage layout.
"""

import sys

from im2wav.cli import run_command
from im2wav.commands.prepare import main  # noqa: F401  (callers run `main(argv)` directly)

if __name__ == "__main__":
    sys.exit(run_command("prepare", prog="prepare_dataset.py"))

"""Evaluate generated audio with the paper's metrics: `im2wav evaluate` as a script, with the same options.

    python training_scripts/evaluate.py --help      # the same as: im2wav evaluate --help

The logic lives in `im2wav.evaluation.command`; this file keeps the repository's one-script-per-stage layout.
"""

import sys

from im2wav.cli import run_command
from im2wav.evaluation.command import main, parse_args  # noqa: F401  (callers run `main(argv)` directly)

if __name__ == "__main__":
    sys.exit(run_command("evaluate", prog="evaluate.py"))

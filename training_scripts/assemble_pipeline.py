"""Assemble trained stages into a pipeline folder: `im2wav assemble` as a script, with the same options.

    python training_scripts/assemble_pipeline.py --help      # the same as: im2wav assemble --help

The logic lives in `im2wav.commands.assemble`; this file keeps the repository's one-script-per-stage layout.
"""

import sys

from im2wav.cli import run_command
from im2wav.commands.assemble import main  # noqa: F401  (callers run `main(argv)` directly)

if __name__ == "__main__":
    sys.exit(run_command("assemble", prog="assemble_pipeline.py"))

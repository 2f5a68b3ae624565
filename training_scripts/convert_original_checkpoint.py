"""Convert the authors' .pth.tar checkpoints: `im2wav convert` as a script, with the same options.

    python training_scripts/convert_original_checkpoint.py --help      # the same as: im2wav convert --help

The logic lives in `im2wav.commands.convert`; this file keeps the repository's one-script-per-stage layout.
"""

import sys

from im2wav.cli import run_command
from im2wav.commands.convert import build_parser, main, save_atomically  # noqa: F401  (callers run `main(argv)` directly)

if __name__ == "__main__":
    sys.exit(run_command("convert", prog="convert_original_checkpoint.py"))

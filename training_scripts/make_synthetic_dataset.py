"""Write the synthetic picture/sound world: `im2wav make-synthetic` as a script, with the same options.

    python training_scripts/make_synthetic_dataset.py --help      # the same as: im2wav make-synthetic --help

The logic lives in `im2wav.commands.synthetic`; this file keeps the repository's one-script-per-stage layout.
"""

import sys

from im2wav.cli import run_command
from im2wav.commands.synthetic import main  # noqa: F401  (callers run `main(argv)` directly)

if __name__ == "__main__":
    sys.exit(run_command("make-synthetic", prog="make_synthetic_dataset.py"))

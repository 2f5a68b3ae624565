"""Encode a prepared dataset into VQ-VAE tokens: `im2wav encode-tokens` as a script, with the same options.

    python training_scripts/encode_tokens.py --help      # the same as: im2wav encode-tokens --help

The logic lives in `im2wav.commands.encode_tokens`; this file keeps the repository's one-script-per-stage layout.
"""

import sys

from im2wav.cli import run_command
from im2wav.commands.encode_tokens import main  # noqa: F401  (callers run `main(argv)` directly)

if __name__ == "__main__":
    sys.exit(run_command("encode-tokens", prog="encode_tokens.py"))

"""Rebuild the bundled default model (`assets/default_model/`, `assets/examples/`) on a CPU in about 15 minutes.

    python training_scripts/build_default_model.py            # the same as:
    im2wav build-demo --out assets/default_model --examples assets/examples --work-dir runs/default_model --overwrite

Any option of `im2wav build-demo` may follow (`--help` lists them); given options win over these defaults.
"""

import sys
from pathlib import Path

from im2wav.cli import run_command
from im2wav.commands.build_demo import main  # noqa: F401  (callers run `main(argv)` directly)

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = ["--out", str(REPO / "assets" / "default_model"), "--examples", str(REPO / "assets" / "examples"),
            "--work-dir", str(REPO / "runs" / "default_model"), "--overwrite"]

if __name__ == "__main__":
    sys.exit(run_command("build-demo", DEFAULTS + sys.argv[1:], prog="build_default_model.py"))

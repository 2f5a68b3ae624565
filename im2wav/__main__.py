"""`python -m im2wav ...` is the `im2wav` command."""

import sys

from im2wav.cli import main

sys.exit(main())

r"""Evaluate an image-to-audio model with the IM2WAV paper's protocol and metric models.

    python training_scripts/evaluate.py imagehear ../shared/data/imagehear --model my_im2wav --out eval/imagehear
    python training_scripts/evaluate.py vggsound videos/ --csv vggsound.csv --model my_im2wav --out eval/vggsound

A thin wrapper over `im2wav.evaluation.command` (also `im2wav evaluate ...`); `--help` lists every
option, docs/evaluation.md explains the protocol.
"""

import sys

from im2wav.evaluation.command import main

if __name__ == "__main__":
    sys.exit(main())

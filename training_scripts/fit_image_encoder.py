"""Fit the tiny offline CLIP image encoder to a folder of training videos (see `im2wav.training.image_encoder_fit`).

    python training_scripts/fit_image_encoder.py --videos world/videos --out runs/clip --steps 400
"""

import sys

from im2wav.training.image_encoder_fit import main

if __name__ == "__main__":
    sys.exit(main())

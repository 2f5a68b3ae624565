"""The demo-size recipe: the settings of every stage of a model that trains on a CPU in minutes.

`training_scripts/build_default_model.py` (the bundled `assets/default_model`) and the learning test
(`tests/test_learning_e2e.py`) train with these values; only the number of steps and clips differ.
Each entry is the stage script's arguments, so a stage can be re-run by hand with them.
"""

from __future__ import annotations

import json

__all__ = ["CLIP_FIT", "RECIPE", "STEPS"]

# fit the tiny offline CLIP image encoder to the training videos (`im2wav.training.image_encoder_fit`)
CLIP_FIT = ["--batch-size", 32, "--lr", 3e-3, "--frames-per-video", 8]

RECIPE = {
    "vqvae": ["--preset", "tiny", "--window-length", 4096, "--batch-size", 8, "--lr", 2e-3, "--warmup-steps", 20,
              "--lr-decay", "cosine"],
    "low": ["--preset", "tiny-low", "--config-overrides", json.dumps({"min_duration": 1.0}), "--batch-size", 8,
            "--lr", 2e-3, "--warmup-steps", 50, "--lr-decay", "cosine"],
    "up": ["--preset", "tiny-up", "--batch-size", 4, "--lr", 1e-3, "--warmup-steps", 50, "--lr-decay", "cosine"],
}

# optimizer steps of the bundled default model
STEPS = {"clip": 600, "vqvae": 500, "low": 1200, "up": 1200}

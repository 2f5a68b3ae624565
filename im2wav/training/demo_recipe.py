"""The demo-size recipe: the settings of every stage of a model that trains on one CPU core in minutes.

`training_scripts/build_default_model.py` (the bundled `assets/default_model`) and the learning test
(`tests/test_learning_e2e.py`) train with these values; only the numbers of steps and clips differ.
Each entry is the stage script's arguments, so a stage can be re-run by hand with them.

Why these values (measured on the `patterns` world of `im2wav.data.synthetic`, judged by the
learning test's nearest-centroid judge):

- Image encoder: the seeded tiny random CLIP put two classes that differ in pattern at centroid
  cosine 0.98; after the contrastive fit (`im2wav.training.image_encoder_fit`, 400 steps, ~20 s)
  the closest pair of held-out class centroids is at ~0.5. More steps start to separate single
  videos rather than kinds of picture (the loss falls below the class level) and generalise worse.
  The fit's target is the clip, so without colour jitter it learnt which red-circle clips carry
  the next class's sound from their background shade (their centroid at cosine 0.74 and 0.60 to
  their own class's, 1.00 for the other classes) and embedded a held-out plain red picture nearer
  the striped class than its own; with `--colour-jitter 24` (the world's clips vary by +-12 levels)
  every class's clips embed together and every held-out picture is nearest its own class.
- VQ-VAE: the `tiny` preset on 4096-sample windows; level 0 reconstructions of real sounds are
  judged right from ~750 steps, level 1 needs more (the bundled model trains 1500).
- LOW: `tiny-low` at width 128 (the preset's 64, doubled) for 4000 steps, about the time 8000 steps
  of width 64 take (~64 ms a step on one core beside another job, against ~33 ms). Its time-signal
  embeddings start at N(0, 0.01**2) as the original's (torch's default N(0, 1), ~50x the token
  embeddings, drowned the image condition: training loss after 1500 steps 3.35 instead of 1.94). The
  image condition is dropped for a quarter of the windows (`--condition-dropout 0.25`; the paper's
  0.5 is the default): at this scale half the windows left too few conditional examples, and LOW
  mixed up classes whose sounds share tokens (noise band images -> pulse train tokens 7 times of 8
  on one world seed; guidance-3 accuracy 0.90 / 0.71 on two world seeds with 0.5, 0.96 / 0.94 with
  0.25). Scored on 384 clips (16 never-trained pictures per class, 4 clips each; on the 48 clips of
  earlier runs one training's score spread by +-0.04), LOW retrained on the same tokens, two world
  seeds, 8 of 32 clips mismatched: width 64 for 5000 / 8000 / 12000 steps 0.89 / 0.89 / 0.88 and
  0.87 / 0.88 / 0.89; condition dropout 0.1 0.89 / 0.84; a weight EMA (0.999) 0.89 (seed 1); lr 4e-3
  0.76 (seed 1); width 192 for 2800 steps 0.86 (seed 0); width 128 for 4000 steps 0.935 / 0.90, and
  0.91 / 0.85 for two whole trainings of the test's world (seed 0; their image-encoder fits differ
  in float rounding): a small gain on average, within one training's spread. The clips left wrong
  carry the label-noise partner class's sound (24 of 25 and 25 of 38 errors with width 128).
  Guidance 3 suppresses that mode but does not remove it; on width 64, guidance 5 left fewer partner
  clips but more of other classes (0.90 / 0.90) and guidance 8 over-sharpened (0.79 / 0.77). With 4
  of 32 clips mismatched, LOW retrained for 3000 steps on the tokens of three whole trainings scored
  0.982 / 0.982 / 0.922 against 0.977 / 0.99 / 0.930 at 4000: the learning test trains 3000.
- Clips: the learning test trains on 32 two-second clips per class, 4 of them with the next
  class's sound: guidance 3 0.977 / 0.99 on 384 never-trained clips (guidance 1 0.78), two whole
  trainings of world seeds 0 / 1. With 8 of 32 the clips left wrong are the partner's sound that
  guidance 3 leaves (22-54 of 384 clips): eight whole trainings at a quarter mismatched (32, 64 or
  96 clips a class) scored 0.84-0.94, mean 0.89; with 6 of 32, LOW of width 128 reached 0.95 / 0.95
  on the tokens above but a whole fresh training 0.885. More clips did not help: 64 a class 0.94 /
  0.91, 96 0.84 / 0.91. With 16 (4 mismatched) whole held-out pictures got the wrong sound (seed 0:
  0.85 without colour jitter, 0.77 with; 32 clips with jitter: 0.92, same steps): fewer clips,
  fewer pictures per kind for the LOW prior to average over.
- UP: `tiny-up` at lr 2e-3 for 2400 steps. At lr 1e-3 for 800 steps it turned the LOW tokens of
  real steady 1.5-2.2 kHz noise into the 0.8-2.4 kHz sweep 4 times out of 4 (agreeing with the
  real level-0 codes on 24% of tokens); trained as here it keeps them (51% agreement) and every
  class whose level-0 reconstruction is right. It relies on the LOW tokens: shuffling them raises
  its loss from ~1.8 to ~8.
"""

from __future__ import annotations

import json

__all__ = ["CLIP_FIT", "RECIPE", "STEPS"]

# fit the tiny offline CLIP image encoder to the training videos (`im2wav.training.image_encoder_fit`)
CLIP_FIT = ["--batch-size", 32, "--lr", 3e-3, "--frames-per-video", 8, "--colour-jitter", 24]

RECIPE = {
    "vqvae": ["--preset", "tiny", "--window-length", 4096, "--batch-size", 8, "--lr", 2e-3, "--warmup-steps", 20,
              "--lr-decay", "cosine"],
    "low": ["--preset", "tiny-low", "--config-overrides", json.dumps({"min_duration": 1.0, "width": 128}),
            "--batch-size", 8, "--lr", 2e-3, "--warmup-steps", 50, "--lr-decay", "cosine",
            "--time-signal-init-std", 0.01, "--condition-dropout", 0.25],
    "up": ["--preset", "tiny-up", "--batch-size", 4, "--lr", 2e-3, "--warmup-steps", 50, "--lr-decay", "cosine"],
}

# optimizer steps of the bundled default model
STEPS = {"clip": 400, "vqvae": 1500, "low": 4000, "up": 2400}

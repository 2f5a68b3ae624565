"""The contrastive fit of the tiny offline image encoder separates pictures whose sounds differ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from im2wav.clip_encoder import embed_images, tiny_clip_vision
from im2wav.data.synthetic import make_synthetic_dataset, synthesize_sound
from im2wav.training.image_encoder_fit import audio_features, fit_image_encoder, main

SR = 16000


def centroid_cosine(model, processor, world) -> float:
    embeds = embed_images(model, processor, [Image.open(p).convert("RGB") for p in world.heldout_images])
    labels = np.array(world.heldout_labels)
    a, b = (torch.nn.functional.normalize(embeds[labels == k].mean(0), dim=0) for k in (0, 1))
    return float(a @ b)


def test_fit_separates_classes_that_differ_in_pattern_alone(tmp_path):
    # classes 0 and 1 of the patterns world: the same red background and white circle, plain vs striped
    world = make_synthetic_dataset(tmp_path, world="patterns", clips_per_class=4, heldout_per_class=2,
                                   duration_s=0.5, size=64, seed=0)
    keep = [i for i, k in enumerate(world.video_labels) if k < 2]
    world.heldout_images, world.heldout_labels = (
        [p for p, k in zip(world.heldout_images, world.heldout_labels) if k < 2],
        [k for k in world.heldout_labels if k < 2])
    model, processor = tiny_clip_vision(seed=0)
    before = centroid_cosine(model, processor, world)
    result = fit_image_encoder(model, processor, [world.videos[i] for i in keep], steps=60, batch_size=8,
                               frames_per_video=4, log_every=0)
    after = centroid_cosine(model, processor, world)
    assert before > 0.9  # the random encoder barely tells them apart
    assert after < before - 0.3, (before, after)  # held-out pictures: never seen by the fit
    assert result["last_loss"] < result["first_loss"]
    assert not model.training


def test_colour_jitter_keeps_clips_with_another_kinds_sound_with_their_kind(tmp_path):
    """Clips 0 and 1 of each class carry the next class's sound. Without jitter the fit learns what
    sets those clips' pictures apart (their slightly other background colour) and embeds them away
    from their own kind; with jitter that colour carries no information."""
    from im2wav.media import load_video_frames

    world = make_synthetic_dataset(tmp_path, world="patterns", clips_per_class=6, heldout_per_class=0,
                                   duration_s=0.5, size=64, seed=0, mismatched_per_class=2)
    keep = [i for i, k in enumerate(world.video_labels) if k < 2]
    mismatched = np.array([world.videos[i].stem.endswith(("_000", "_001")) for i in keep])
    labels = np.array([world.video_labels[i] for i in keep])

    def kind_cosine(colour_jitter: float) -> float:
        """Mean over the two classes of cos(centroid of the mismatched clips, centroid of the others)."""
        model, processor = tiny_clip_vision(seed=0)
        fit_image_encoder(model, processor, [world.videos[i] for i in keep], steps=150, batch_size=8,
                          frames_per_video=4, colour_jitter=colour_jitter, log_every=0)
        clips = torch.stack([torch.nn.functional.normalize(embed_images(
            model, processor, load_video_frames(world.videos[i], fps=30.0).frames[::5]), dim=-1).mean(0) for i in keep])
        cosines = []
        for k in (0, 1):
            a, b = (torch.nn.functional.normalize(clips[torch.from_numpy((labels == k) & m)].mean(0), dim=0)
                    for m in (mismatched, ~mismatched))
            cosines.append(float(a @ b))
        return float(np.mean(cosines))

    plain, jittered = kind_cosine(0.0), kind_cosine(24.0)
    assert jittered > plain + 0.05, (plain, jittered)  # seed 0: 0.48 -> 0.60
    with pytest.raises(ValueError, match="colour_jitter"):
        kind_cosine(300.0)


def test_audio_features_see_time_structure():
    rng = np.random.default_rng(0)
    steady = audio_features(synthesize_sound("mid_noise", 16000, SR, rng), SR)
    bursts = audio_features(synthesize_sound("pulse_train", 16000, SR, rng), SR)
    half = len(steady) // 2
    assert steady.shape == (64,) and steady.dtype == np.float32
    assert bursts[half:].mean() > 2 * steady[half:].mean()  # spread over time: bursts vary, noise is steady


def test_command_line_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="--videos"):
        main(["--videos", str(tmp_path / "missing"), "--out", str(tmp_path / "clip")])
    (tmp_path / "one").mkdir()
    with pytest.raises(ValueError, match="at least 2 training videos"):
        main(["--videos", str(tmp_path / "one"), "--out", str(tmp_path / "clip")])

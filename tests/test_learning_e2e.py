"""End-to-end learning test: the training scripts, run on the synthetic world, must learn image -> sound.

A small synthetic world (K visual classes, each paired with a clearly different sound) is written as
real mp4 files, prepared, and a tiny VQ-VAE, LOW and UP prior are trained on it for a fixed small
budget, all through the training scripts. The assembled pipeline then generates audio from held-out
images of each class. An independent classifier, the nearest class centroid of log band energies
measured on the real class sounds, must assign the generated audio to the image's class well above
chance, and classifier-free guidance 3 must match the classes better than guidance 1.

Some of each class's training clips carry another class's sound (as real videos whose soundtrack
is not what is seen): a quarter in the shapes world, an eighth in the patterns world. Sampling the
conditional model (guidance 1) reproduces that mix; guidance 3 sharpens p(sound | image) / p(sound)
and must suppress the wrong mode. Without that noise a well-trained conditional model is already
right every time and guidance has nothing to show.

Two worlds: `shapes` (three colour-coded tones, the seeded random tiny CLIP) must be learnt; the
`patterns` world (six classes, two pairs told apart by background pattern alone, noise-like and
time-varying sounds whose spectra overlap) is issue 13's acceptance test, trained with the demo
recipe (`im2wav.training.demo_recipe`) and judged stage by stage: the VQ-VAE's reconstructions at
both levels, LOW-only audio (LOW tokens through the level-1 decoder) and LOW+UP audio.

Run directly (`python tests/test_learning_e2e.py /tmp/e2e ['{"low": 3000}']`) to train the patterns
world and print the timings and every stage's scores.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
# Three tonal classes far apart in frequency, periodic over the VQ-VAE's top hop (the shapes world).
SOUNDS = ("low_tone", "fifth", "high_tone")
# Optimizer steps of each stage of the patterns-world test (the bundled model trains longer:
# demo_recipe.STEPS). LOW's 3000 take about as long as UP's 2400 beside it; retrained for 3000 on the
# tokens of three whole trainings it scored about as at 4000 (guidance 3 on 384 never-trained clips:
# 0.982, 0.982 and 0.922, against 0.977, 0.990 and 0.930).
TEST_STEPS = {"clip": 400, "vqvae": 1200, "low": 3000, "up": 2400}


def run_script(name: str, *argv: str) -> int:
    """Run `training_scripts/<name>.py`'s `main(argv)` in this process (no interpreter start-up)."""
    spec = importlib.util.spec_from_file_location(f"_script_{name}", REPO / "training_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(a) for a in argv])


# ------------------------------------------------------------------------------------------------
# The independent judge: nearest class centroid of log band energies


def band_features(audio: np.ndarray, num_bands: int = 24) -> np.ndarray:
    """Level-independent spectral shape of a clip: mean log energy in log-spaced bands, mean removed."""
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    n_fft, hop = 512, 128
    window = np.hanning(n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * window  # (frames, n_fft)
    power = (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).mean(axis=0)  # (n_fft // 2 + 1,)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)
    edges = np.geomspace(100.0, 7900.0, num_bands + 1)
    bands = np.array([power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in itertools.pairwise(edges)])
    logs = np.log10(bands + 1e-8 * (power.sum() + 1e-12))
    return logs - logs.mean()


class CentroidClassifier:
    """Nearest centroid over `band_features` of real examples of each class."""

    def __init__(self, examples: dict[int, list[np.ndarray]]):
        self.centroids = np.stack([np.mean([band_features(x) for x in examples[k]], axis=0) for k in sorted(examples)])

    def distances(self, audio: np.ndarray) -> np.ndarray:
        return np.linalg.norm(self.centroids - band_features(audio), axis=1)

    def predict(self, audio: np.ndarray) -> int:
        return int(np.argmin(self.distances(audio)))

    def margin(self, audio: np.ndarray, label: int) -> float:
        """Distance to the nearest wrong centroid minus distance to the right one (> 0: correct)."""
        d = self.distances(audio)
        return float(np.delete(d, label).min() - d[label])


def real_class_windows(specs, window: int, per_class: int = 8, seed: int = 12345) -> dict[int, list[np.ndarray]]:
    from im2wav.data.synthetic import synthesize_sound

    out = {}
    for k, spec in enumerate(specs):
        rng = np.random.default_rng([seed, k])
        out[k] = [synthesize_sound(spec.sound, window, SAMPLE_RATE, rng, spec.floor_db) for _ in range(per_class)]
    return out


def pipeline_calls(pictures: int, num_waveforms: int) -> list[tuple[slice, slice]]:
    """(pictures, waveform rows) of each pipeline call, so that no call exceeds its `MAX_WAVEFORMS`."""
    from im2wav.image_processor import MAX_WAVEFORMS

    per_call = MAX_WAVEFORMS // num_waveforms
    return [(slice(start, start + per_call), slice(start * num_waveforms, (start + per_call) * num_waveforms))
            for start in range(0, pictures, per_call)]


# ------------------------------------------------------------------------------------------------
# The world, trained with the demo recipe


def train_shapes_world(root: Path, *, clips_per_class: int = 8, mismatched_per_class: int = 2,
                       heldout_per_class: int = 8, vq_steps: int = 150, low_steps: int = 400, up_steps: int = 400,
                       seed: int = 0, log=print) -> dict:
    """The colour-coded three-tone world, trained with the seeded random tiny CLIP; returns paths and timings.

    Eight held-out pictures per class (192 draws at 8 clips each): with two (48 draws) the guidance-1
    to guidance-3 gain of one training read anywhere from 0.0 to 0.25; over 192 or 384 draws, eighteen
    trainings (world seeds 0-5, and the test's seed 0 six more times) gained 0.10-0.23 (mean 0.17).
    Training does not change with it (held-out clips come after the training ones).
    """
    from im2wav.clip_encoder import tiny_clip_vision
    from im2wav.data.synthetic import make_synthetic_dataset

    timings = {}
    t = time.monotonic()
    world = make_synthetic_dataset(root / "world", num_classes=len(SOUNDS), clips_per_class=clips_per_class,
                                   heldout_per_class=heldout_per_class, duration_s=2.0, seed=seed, sounds=SOUNDS,
                                   mismatched_per_class=mismatched_per_class)
    clip_dir = root / "clip"
    model, processor = tiny_clip_vision(seed=0)
    model.save_pretrained(clip_dir)
    processor.save_pretrained(clip_dir)
    timings["world"] = time.monotonic() - t

    common = ["--seed", seed, "--no-progress", "--log-every", 25, "--save-every", 100000]
    t = time.monotonic()
    run_script("prepare_dataset", "--input", root / "world" / "videos", "--out", root / "data",
               "--clip-model", clip_dir, "--num-workers", 0, "--no-progress")
    timings["prepare"] = time.monotonic() - t
    t = time.monotonic()
    run_script("train_vqvae", "--dataset", root / "data", "--run-dir", root / "vqvae", "--preset", "tiny",
               "--window-length", 2048, "--batch-size", 8, "--max-steps", vq_steps, "--lr", 2e-3,
               "--warmup-steps", 10, *common)
    timings["vqvae"] = time.monotonic() - t
    t = time.monotonic()
    run_script("encode_tokens", "--dataset", root / "data", "--vqvae", root / "vqvae", "--out", root / "tokens",
               "--device", "cpu", "--no-progress")
    timings["encode"] = time.monotonic() - t
    t = time.monotonic()
    run_script("train_prior", "--level", "low", "--preset", "tiny-low", "--config-overrides", '{"min_duration": 1.0}',
               "--dataset", root / "data", "--tokens", root / "tokens", "--run-dir", root / "low",
               "--batch-size", 8, "--max-steps", low_steps, "--lr", 2e-3, "--warmup-steps", 20, *common)
    timings["low"] = time.monotonic() - t
    t = time.monotonic()
    run_script("train_prior", "--level", "up", "--preset", "tiny-up", "--dataset", root / "data",
               "--tokens", root / "tokens", "--run-dir", root / "up", "--batch-size", 4, "--max-steps", up_steps,
               "--lr", 1e-3, "--warmup-steps", 20, *common)
    timings["up"] = time.monotonic() - t
    run_script("assemble_pipeline", "--vqvae", root / "vqvae", "--low", root / "low", "--up", root / "up",
               "--dataset", root / "data", "--out", root / "pipeline")
    log(json.dumps({k: round(v, 1) for k, v in timings.items()}))
    return {"world": world, "pipeline": root / "pipeline", "timings": timings}


def train_patterns_world(root: Path, *, clips_per_class: int = 32, mismatched_per_class: int = 4,
                         heldout_per_class: int = 8, steps: dict | None = None, recipe: dict | None = None,
                         seed: int = 0, log=print) -> dict:
    """The patterns world (six classes, pairs told apart by pattern alone), trained with the demo recipe.

    4 of each class's 32 clips carry the next class's sound. With a quarter mismatched (as the
    shapes world), eight whole trainings (world seeds 0 and 1, 32 to 96 clips per class) scored
    0.84-0.94 at guidance 3 (mean 0.89) on 384 never-trained clips, the errors almost all that
    partner's sound: guidance 3 leaves a share of the mode it suppresses, and the share varies
    from training to training (see `im2wav.training.demo_recipe`).
    """
    from im2wav.commands.build_demo import run_stages_side_by_side
    from im2wav.data.synthetic import make_synthetic_dataset
    from im2wav.decoding import torch_threads
    from im2wav.training import demo_recipe
    from im2wav.training.image_encoder_fit import main as fit_image_encoder_main

    steps = {**TEST_STEPS, **(steps or {})}
    recipe = {**demo_recipe.RECIPE, **(recipe or {})}
    timings = {}
    t = time.monotonic()
    world = make_synthetic_dataset(root / "world", world="patterns", clips_per_class=clips_per_class,
                                   heldout_per_class=heldout_per_class, duration_s=2.0, seed=seed,
                                   mismatched_per_class=mismatched_per_class)
    timings["world"] = time.monotonic() - t
    common = ["--seed", seed, "--no-progress", "--log-every", 50, "--save-every", 100000]
    # The stages up to the tokens run one at a time, each on two cores as build-demo runs them (its
    # stage processes keep torch's default threads; this suite runs on one, see conftest): the VQ-VAE
    # step then takes ~0.8x the time.
    with torch_threads(min(2, os.cpu_count() or 1)):
        t = time.monotonic()
        fit_image_encoder_main([str(a) for a in ["--videos", root / "world" / "videos", "--out", root / "clip",
                                                 "--steps", steps["clip"], *demo_recipe.CLIP_FIT, "--seed", seed]])
        timings["clip"] = time.monotonic() - t
        t = time.monotonic()
        run_script("prepare_dataset", "--input", root / "world" / "videos", "--out", root / "data",
                   "--clip-model", root / "clip", "--num-workers", 0, "--no-progress")
        timings["prepare"] = time.monotonic() - t
        t = time.monotonic()
        run_script("train_vqvae", "--dataset", root / "data", "--run-dir", root / "vqvae", *recipe["vqvae"],
                   "--max-steps", steps["vqvae"], *common)
        timings["vqvae"] = time.monotonic() - t
        t = time.monotonic()
        run_script("encode_tokens", "--dataset", root / "data", "--vqvae", root / "vqvae", "--out", root / "tokens",
                   "--device", "cpu", "--no-progress")
        timings["encode"] = time.monotonic() - t
    # LOW and UP are independent (UP learns from the real LOW tokens): side by side, as build-demo trains them
    t = time.monotonic()
    run_stages_side_by_side(*[("train-prior", ["--level", level, "--dataset", root / "data", "--tokens", root / "tokens",
                                               "--run-dir", root / level, *recipe[level], "--max-steps", steps[level],
                                               *common]) for level in ("low", "up")])
    timings["low_and_up"] = time.monotonic() - t
    run_script("assemble_pipeline", "--vqvae", root / "vqvae", "--low", root / "low", "--up", root / "up",
               "--dataset", root / "data", "--out", root / "pipeline")
    log(json.dumps({k: round(v, 1) for k, v in timings.items()}))
    return {"world": world, "pipeline": root / "pipeline", "timings": timings}


def evaluate(pipeline_dir: Path, world, num_waveforms: int = 8, seed: int = 0) -> dict:
    """Accuracy and mean margin of generated audio, per guidance scale, plus diagnostics."""
    from PIL import Image

    from im2wav import Im2WavPipeline

    pipe = Im2WavPipeline.from_pretrained(pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    window = pipe.low_prior.config.n_ctx * pipe.low_prior.config.hop_length
    judge = CentroidClassifier(real_class_windows(world.classes, window))
    images = [Image.open(p).convert("RGB") for p in world.heldout_images]  # a batch of single pictures
    labels = np.repeat(world.heldout_labels, num_waveforms)
    results = {"chance": 1.0 / len(world.classes)}
    # diagnostic: real sounds through the VQ-VAE (level 0) must still be recognisable
    real = real_class_windows(world.classes, window, per_class=2, seed=999)
    audio = torch.from_numpy(np.stack([x for k in sorted(real) for x in real[k]]))
    recon = pipe.vqvae.decode(pipe.vqvae.encode(audio), level=0)[:, 0].numpy()
    truth = [k for k in sorted(real) for _ in real[k]]
    results["vqvae_accuracy"] = float(np.mean([judge.predict(x) == k for x, k in zip(recon, truth)]))
    for scale in (1.0, 3.0):
        generator = [torch.Generator().manual_seed(seed + i) for i in range(len(images) * num_waveforms)]
        out = np.concatenate([
            pipe(images[pictures], audio_length_in_s=window / SAMPLE_RATE, guidance_scale=scale,
                 num_waveforms_per_prompt=num_waveforms, generator=generator[rows]).audios[:, 0]
            for pictures, rows in pipeline_calls(len(images), num_waveforms)])
        results[f"accuracy_g{scale:g}"] = float(np.mean([judge.predict(x) == k for x, k in zip(out, labels)]))
        results[f"margin_g{scale:g}"] = float(np.mean([judge.margin(x, k) for x, k in zip(out, labels)]))
    return results


def evaluate_stages(pipeline_dir: Path, world, num_waveforms: int = 4, seed: int = 0) -> dict:
    """Stage-by-stage scores of the judge: VQ-VAE reconstructions at both levels, LOW-only, LOW+UP.

    LOW-only audio is the LOW tokens decoded by the VQ-VAE's level-1 decoder; LOW+UP audio is the
    same LOW tokens continued by the UP prior and decoded at level 0 (what the pipeline returns).
    `up_closer` is the share of clips whose LOW+UP audio is nearer the right class centroid than
    their LOW-only audio; `up_from_real_low_accuracy` feeds UP the LOW tokens of real class sounds.
    """
    from PIL import Image

    from im2wav import Im2WavPipeline

    pipe = Im2WavPipeline.from_pretrained(pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    window = pipe.low_prior.config.n_ctx * pipe.low_prior.config.hop_length
    seconds = window / SAMPLE_RATE
    judge = CentroidClassifier(real_class_windows(world.classes, window))
    results = {"chance": 1.0 / len(world.classes)}

    def score(name: str, audio, truth) -> list[float]:
        results[f"{name}_accuracy"] = float(np.mean([judge.predict(x) == k for x, k in zip(audio, truth)]))
        distances = [float(judge.distances(x)[k]) for x, k in zip(audio, truth)]
        results[f"{name}_distance"] = float(np.mean(distances))
        return distances

    # 1. Real sounds through the VQ-VAE, judged at both levels
    real = real_class_windows(world.classes, window, per_class=4, seed=999)
    audio = torch.from_numpy(np.stack([x for k in sorted(real) for x in real[k]]))  # (B, S)
    truth = [k for k in sorted(real) for _ in real[k]]
    codes = pipe.vqvae.encode(audio)
    for level in (0, 1):
        score(f"vqvae_level{level}", pipe.vqvae.decode(codes[level], level=level)[:, 0].numpy(), truth)
    generator = [torch.Generator().manual_seed(seed + i) for i in range(len(truth))]
    pictures = [Image.open(world.heldout_images[world.heldout_labels.index(k)]).convert("RGB") for k in truth]
    up = pipe.sample_up(codes[1], pipe.encode_images(pictures), generator=generator)
    score("up_from_real_low", pipe.decode(up)[:, 0].numpy(), truth)
    # 2. Generated audio from held-out images: LOW-only and LOW+UP, per guidance scale
    embeds = pipe.encode_images([Image.open(p).convert("RGB") for p in world.heldout_images])  # (B, 1, D) pictures
    labels = np.repeat(world.heldout_labels, num_waveforms)
    for scale in (1.0, 3.0):
        generator = [torch.Generator().manual_seed(seed + i) for i in range(len(labels))]
        low, up = [], []
        for pictures, rows in pipeline_calls(len(embeds), num_waveforms):
            low.append(pipe.sample_low(embeds[pictures], audio_length_in_s=seconds, guidance_scale=scale,
                                       generator=generator[rows], num_waveforms_per_prompt=num_waveforms))
            up.append(pipe.sample_up(low[-1], embeds[pictures], generator=generator[rows]))
        low, up = torch.cat(low), torch.cat(up)
        low_only = score(f"low_g{scale:g}", pipe.vqvae.decode(low, level=1)[:, 0].numpy(), labels)
        out = pipe.decode(up)[:, 0].numpy()
        with_up = score(f"low_up_g{scale:g}", out, labels)
        results[f"accuracy_g{scale:g}"] = results[f"low_up_g{scale:g}_accuracy"]
        results[f"margin_g{scale:g}"] = float(np.mean([judge.margin(x, k) for x, k in zip(out, labels)]))
        results[f"up_closer_g{scale:g}"] = float(np.mean(np.array(with_up) < np.array(low_only)))
    return results


def test_pipeline_calls_cover_every_waveform_once_within_the_limit():
    from im2wav.image_processor import MAX_WAVEFORMS

    for pictures, waves in [(24, 8), (48, 4), (5, 8), (1, 64), (17, 3)]:
        calls = pipeline_calls(pictures, waves)
        assert [i for p, _ in calls for i in range(pictures)[p]] == list(range(pictures))
        assert [r for _, rows in calls for r in range(pictures * waves)[rows]] == list(range(pictures * waves))
        for p, rows in calls:
            assert len(range(pictures * waves)[rows]) == len(range(pictures)[p]) * waves <= MAX_WAVEFORMS


@pytest.mark.slow
def test_generated_audio_matches_the_image_class(tmp_path):
    torch.manual_seed(0)
    trained = train_shapes_world(tmp_path)
    results = evaluate(trained["pipeline"], trained["world"])
    print(json.dumps(results))
    chance = results["chance"]
    # the judge itself works on real sounds passed through the trained VQ-VAE
    assert results["vqvae_accuracy"] >= 0.8, results
    # generated audio is recognisably the image's class, far above chance (1/3)
    assert results["accuracy_g3"] >= chance + 0.4, results
    # A quarter of each class's training clips carry the next class's sound, so the conditional
    # model (guidance 1) reproduces that mix; guidance 3 must suppress the wrong mode.
    assert results["accuracy_g3"] >= results["accuracy_g1"] + 0.1, results
    assert results["margin_g3"] > results["margin_g1"], results


@pytest.fixture(scope="module")
def patterns_world_results(tmp_path_factory) -> dict:
    """The patterns world trained once with the demo recipe, scored stage by stage (`evaluate_stages`)."""
    torch.manual_seed(0)
    trained = train_patterns_world(tmp_path_factory.mktemp("patterns"))
    results = evaluate_stages(trained["pipeline"], trained["world"])
    print(json.dumps(results))
    return results


@pytest.mark.slow
def test_patterns_world_learns_stage_by_stage(patterns_world_results):
    results = patterns_world_results
    # the judge itself works on real sounds passed through the trained VQ-VAE (level 0, what the
    # pipeline decodes; level 1 is reported as `vqvae_level1_accuracy`)
    assert results["vqvae_level0_accuracy"] >= 0.9, results
    # generated audio is the held-out image's class (chance: 1/6); issue 13 asks for 0.90
    # (`test_patterns_world_acceptance`), this is the floor of a learnt world
    assert results["accuracy_g3"] >= 0.75, results
    # An eighth of each class's training clips carry the next class's sound (the class that differs
    # from it in pattern only, for two of the pairs), so the conditional model (guidance 1)
    # reproduces that mix (0.78 on 384 clips, two trainings); guidance 3 must suppress the wrong
    # mode (0.977 and 0.99 on the same clips).
    assert results["accuracy_g3"] >= results["accuracy_g1"] + 0.1, results
    assert results["margin_g3"] > results["margin_g1"], results
    # UP earns its keep: LOW+UP audio is nearer the real class sound than LOW-only audio, on
    # average and in most clips
    assert results["low_up_g3_distance"] < results["low_g3_distance"], results
    assert results["up_closer_g3"] > 0.5, results


@pytest.mark.slow
def test_patterns_world_acceptance(patterns_world_results):
    # issue 13: guidance-3 accuracy >= 0.90 on the held-out pictures (8 per class, 4 clips each);
    # whole trainings of world seeds 0 and 1 gave 0.979 and 0.995 here, 0.977 and 0.99 on 384 other
    # never-trained clips; with LOW at 3000 steps, seed 0 gave 0.969, 0.953 and 0.943 (three
    # fresh-clone runs of this suite), seed 1 0.990
    assert patterns_world_results["accuracy_g3"] >= 0.9, patterns_world_results


if __name__ == "__main__":  # python tests/test_learning_e2e.py /tmp/e2e ['{"low": 800}']  (timings and scores)
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/im2wav_e2e")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    trained = train_patterns_world(root, steps=json.loads(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(json.dumps(evaluate_stages(trained["pipeline"], trained["world"]), indent=1))

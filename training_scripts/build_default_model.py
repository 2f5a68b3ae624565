"""Rebuild the bundled default model (`assets/default_model/`) from scratch, on a CPU, in about 10 minutes.

It is a tiny im2wav trained on the synthetic world: three picture classes (a circle on red, a square
on green, a triangle on blue), each paired with a tone of its own (250 Hz, a 500 + 750 Hz chord, 2.5 kHz).
It exists so that `im2wav generate` works out of the box and quickly. It knows only that world; it
is not a model of real sounds. Use the released checkpoints (converted with
`training_scripts/convert_original_checkpoint.py`) for real images.

    python training_scripts/build_default_model.py            # writes assets/default_model, assets/examples

Every stage runs as the plain command it prints, so any step can be re-run by hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from im2wav.errors import run_main

REPO = Path(__file__).resolve().parents[1]
SOUNDS = "low_tone,fifth,high_tone"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--work-dir", default="runs/default_model", help="folder for the world, data and runs")
    parser.add_argument("--out", default=str(REPO / "assets" / "default_model"), help="pipeline folder to write")
    parser.add_argument("--examples", default=str(REPO / "assets" / "examples"), help="example images folder")
    parser.add_argument("--clips-per-class", type=int, default=12, help="training videos per class")
    parser.add_argument("--vqvae-steps", type=int, default=500, help="VQ-VAE optimizer steps")
    parser.add_argument("--low-steps", type=int, default=1200, help="LOW prior optimizer steps")
    parser.add_argument("--up-steps", type=int, default=1200, help="UP prior optimizer steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and of every stage")
    return parser.parse_args(argv)


def run(*argv) -> None:
    command = [sys.executable, *[str(a) for a in argv]]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work_dir)
    if not work.is_absolute():
        work = REPO / work
    scripts = REPO / "training_scripts"
    seed = ["--seed", args.seed]
    quiet = ["--no-progress", "--log-every", 50, "--save-every", 100000]

    # 1. The world and a tiny random CLIP (the default model must not need a download)
    run(scripts / "make_synthetic_dataset.py", "--out", work / "world", "--num-classes", 3, "--sounds", SOUNDS,
        "--clips-per-class", args.clips_per_class, "--heldout-per-class", 1, "--duration", 4.0, *seed)
    run("-c", "import sys; from im2wav.clip_encoder import tiny_clip_vision; m, p = tiny_clip_vision(seed=0); "
        "m.save_pretrained(sys.argv[1]); p.save_pretrained(sys.argv[1])", work / "clip")
    # 2. Prepare, train the three stages, assemble
    run(scripts / "prepare_dataset.py", "--input", work / "world" / "videos", "--out", work / "data",
        "--clip-model", work / "clip", "--num-workers", 0, "--no-progress")
    run(scripts / "train_vqvae.py", "--dataset", work / "data", "--run-dir", work / "vqvae", "--preset", "tiny",
        "--window-length", 4096, "--batch-size", 8, "--max-steps", args.vqvae_steps, "--lr", 2e-3,
        "--warmup-steps", 20, "--lr-decay", "cosine", *seed, *quiet)
    run(scripts / "encode_tokens.py", "--dataset", work / "data", "--vqvae", work / "vqvae", "--out", work / "tokens",
        "--device", "cpu", "--no-progress")
    run(scripts / "train_prior.py", "--level", "low", "--preset", "tiny-low", "--config-overrides",
        json.dumps({"min_duration": 1.0}), "--dataset", work / "data", "--tokens", work / "tokens",
        "--run-dir", work / "low", "--batch-size", 8, "--max-steps", args.low_steps, "--lr", 2e-3,
        "--warmup-steps", 50, "--lr-decay", "cosine", *seed, *quiet)
    run(scripts / "train_prior.py", "--level", "up", "--preset", "tiny-up", "--dataset", work / "data",
        "--tokens", work / "tokens", "--run-dir", work / "up", "--batch-size", 4, "--max-steps", args.up_steps,
        "--lr", 1e-3, "--warmup-steps", 50, "--lr-decay", "cosine", *seed, *quiet)
    run(scripts / "assemble_pipeline.py", "--vqvae", work / "vqvae", "--low", work / "low", "--up", work / "up",
        "--dataset", work / "data", "--out", args.out, "--overwrite")  # rebuilding replaces the bundled model
    card = (
        "# im2wav default model (synthetic world)\n\n"
        "A tiny im2wav (5 MB) trained on the synthetic world of `im2wav.data.synthetic`: a red circle sounds "
        "like a 250 Hz tone, a green square like a 500 + 750 Hz chord, and a blue triangle like 2.5 kHz "
        "(`classes.json`). It knows nothing else: it exists so that `im2wav generate` runs out of the box, "
        "in under a minute on a CPU.\n\n"
        "    im2wav generate assets/examples/low_tone_circle.png --model assets/default_model "
        "--out outputs/example.wav --spectrogram outputs/example.png --seed 0\n\n"
        "Rebuild it (about 10 minutes on one CPU core):\n\n"
        f"    python training_scripts/build_default_model.py --seed {args.seed} "
        f"--clips-per-class {args.clips_per_class} --vqvae-steps {args.vqvae_steps} "
        f"--low-steps {args.low_steps} --up-steps {args.up_steps}\n"
    )
    (Path(args.out) / "README.md").write_text(card)
    shutil.copyfile(work / "world" / "classes.json", Path(args.out) / "classes.json")
    # 3. One held-out picture per class as the examples
    examples = Path(args.examples)
    examples.mkdir(parents=True, exist_ok=True)
    for image in sorted((work / "world" / "heldout").glob("*.png")):
        shutil.copyfile(image, examples / f"{image.stem.rsplit('_', 1)[0]}.png")
    print(json.dumps({"pipeline": str(args.out), "examples": str(examples)}))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

"""Rebuild the bundled default model (`assets/default_model/`) from scratch, on one CPU core, in about 15 minutes.

It is a tiny im2wav trained with the demo recipe (`im2wav.training.demo_recipe`) on the synthetic
`patterns` world: six picture classes, two pairs of which differ only in their background pattern,
each paired with a sound family of its own (a 250 Hz tone, a sweep, steady noise, bursts, a warble,
high hiss). It exists so that `im2wav generate` works out of the box and quickly. It knows only that
world; it is not a model of real sounds. Use the released checkpoints (converted with
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
from im2wav.training.demo_recipe import CLIP_FIT, RECIPE, STEPS  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--work-dir", default="runs/default_model", help="folder for the world, data and runs")
    parser.add_argument("--out", default=str(REPO / "assets" / "default_model"), help="pipeline folder to write")
    parser.add_argument("--examples", default=str(REPO / "assets" / "examples"), help="example images folder")
    parser.add_argument("--clips-per-class", type=int, default=16, help="training videos per class")
    parser.add_argument("--clip-steps", type=int, default=STEPS["clip"], help="image encoder fit steps")
    parser.add_argument("--vqvae-steps", type=int, default=STEPS["vqvae"], help="VQ-VAE optimizer steps")
    parser.add_argument("--low-steps", type=int, default=STEPS["low"], help="LOW prior optimizer steps")
    parser.add_argument("--up-steps", type=int, default=STEPS["up"], help="UP prior optimizer steps")
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

    # 1. The world, and the tiny offline CLIP image encoder fitted to its training videos
    run(scripts / "make_synthetic_dataset.py", "--out", work / "world", "--world", "patterns",
        "--clips-per-class", args.clips_per_class, "--heldout-per-class", 1, "--duration", 4.0, *seed)
    run(scripts / "fit_image_encoder.py", "--videos", work / "world" / "videos", "--out", work / "clip",
        "--steps", args.clip_steps, *CLIP_FIT, *seed)
    # 2. Prepare, train the three stages, assemble
    run(scripts / "prepare_dataset.py", "--input", work / "world" / "videos", "--out", work / "data",
        "--clip-model", work / "clip", "--num-workers", 0, "--no-progress")
    run(scripts / "train_vqvae.py", "--dataset", work / "data", "--run-dir", work / "vqvae", *RECIPE["vqvae"],
        "--max-steps", args.vqvae_steps, *seed, *quiet)
    run(scripts / "encode_tokens.py", "--dataset", work / "data", "--vqvae", work / "vqvae", "--out", work / "tokens",
        "--device", "cpu", "--no-progress")
    for level in ("low", "up"):
        run(scripts / "train_prior.py", "--level", level, "--dataset", work / "data", "--tokens", work / "tokens",
            "--run-dir", work / level, *RECIPE[level], "--max-steps", getattr(args, f"{level}_steps"), *seed, *quiet)
    run(scripts / "assemble_pipeline.py", "--vqvae", work / "vqvae", "--low", work / "low", "--up", work / "up",
        "--dataset", work / "data", "--out", args.out)
    names = ", ".join(c["name"] for c in json.loads((work / "world" / "classes.json").read_text())["classes"])
    card = (
        "# im2wav default model (synthetic world)\n\n"
        "A tiny im2wav (a few MB) trained with the demo recipe (`im2wav.training.demo_recipe`) on the `patterns` "
        "world of `im2wav.data.synthetic`: six picture classes (two pairs differ only in their background "
        "pattern), each with a sound family of its own; class names are `<sound>_<pattern>_<shape>`: "
        f"{names} (`classes.json`). Its image encoder is a tiny CLIP fitted to the training videos, not "
        "OpenAI's. It knows nothing else: it exists so that `im2wav generate` runs out of the box, "
        "in under a minute on a CPU.\n\n"
        "    im2wav generate assets/examples/low_tone_plain_circle.png --model assets/default_model "
        "--out outputs/example.wav --spectrogram outputs/example.png --seed 0\n\n"
        "Rebuild it (about 15 minutes on one CPU core):\n\n"
        f"    python training_scripts/build_default_model.py --seed {args.seed} "
        f"--clips-per-class {args.clips_per_class} --clip-steps {args.clip_steps} --vqvae-steps {args.vqvae_steps} "
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
    sys.exit(main())

"""Train a demo-size im2wav (about 6 MB) on a folder of videos, on a CPU, in one command.

It runs every stage as the plain `im2wav` command it prints (so any step can be re-run by hand):
prepare -> train-vqvae -> encode-tokens -> train-prior --level low and --level up (side by side,
one thread each, on two or more cores) -> assemble. The image encoder is a small CLIP made offline
(no download) and fitted to the training videos (`im2wav.training.image_encoder_fit`: pictures
whose sounds differ embed apart) unless --clip names a real one; the result is a pipeline folder
for `im2wav generate` and the ComfyUI nodes.
Without --videos it first writes the synthetic `patterns` world (six picture classes, two pairs told
apart by pattern alone, six sound families) and trains on that: the bundled default model
(`assets/default_model`) is made this way. The settings of every stage are the demo recipe,
`im2wav/training/demo_recipe.py`.

A demo-size model learns what your clips sound like in broad strokes (pitch, loudness, noise or
tone per kind of picture); it is no substitute for the released checkpoints (`im2wav convert`).

examples:
  im2wav build-demo --videos my_clips/ --out models/my_demo                # your own clips
  im2wav build-demo --out models/synthetic_demo --examples examples/      # the synthetic world
  im2wav build-demo --videos my_clips/ --clip openai/clip-vit-base-patch32 --low-steps 4000 --out models/m
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..errors import UserError
from ..training.demo_recipe import CLIP_FIT, RECIPE, STEPS
from .parsing import command_parser

NAME = "build-demo"
PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder holding the `im2wav` package

MIN_CLIP_SECONDS = 1.0  # the LOW recipe's min_duration: shorter clips are skipped when preparing


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The `im2wav build-demo` parser; `prog` names the program in its usage line."""
    parser = command_parser(NAME, __doc__, prog)
    parser.add_argument("--out", required=True, help="pipeline folder to write")
    parser.add_argument("--videos", default=None,
                        help="folder of your videos (searched recursively); default: make the synthetic world")
    parser.add_argument("--clip", default=None,
                        help="CLIP image encoder (folder or hub id); default: a small random one made offline")
    parser.add_argument("--work-dir", default=None, help="folder for the data and the runs (default: OUT.work)")
    parser.add_argument("--examples", default=None,
                        help="synthetic world only: copy one held-out picture per class here")
    parser.add_argument("--clips-per-class", type=int, default=16, help="synthetic world only: videos per class")
    parser.add_argument("--clip-steps", type=int, default=STEPS["clip"],
                        help="steps fitting the offline image encoder to the videos (0: keep it random; ignored with --clip)")
    parser.add_argument("--vqvae-steps", type=int, default=STEPS["vqvae"], help="VQ-VAE optimizer steps")
    parser.add_argument("--low-steps", type=int, default=STEPS["low"], help="LOW prior optimizer steps")
    parser.add_argument("--up-steps", type=int, default=STEPS["up"], help="UP prior optimizer steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and of every stage")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return parser


def _stage(command: str | None, argv, module: str) -> tuple[list[str], dict]:
    """The command line of a stage (printed) and its environment."""
    args = [str(a) for a in ([command] if command else []) + list(argv)]
    print("+", "im2wav" if module == "im2wav" else f"python -m {module}", " ".join(args), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))}
    return [sys.executable, "-m", module, *args], env


def _failed(command: str | None, module: str, status: int) -> UserError:
    return UserError(f"{module} {command or ''} failed (exit status {status}); see its message above")


def run_stage(command: str | None, *argv, module: str = "im2wav") -> None:
    """Run `im2wav COMMAND ARGV...` in a fresh interpreter (printed first); a failure stops the build.

    Args:
        command: the subcommand (with `module`: the first argument, or None for none).
        argv: its arguments (converted with `str`).
        module: the module run with `python -m` (`im2wav`, or a stage module of its own).
    """
    line, env = _stage(command, argv, module)
    status = subprocess.run(line, env=env).returncode
    if status != 0:
        raise _failed(command, module, status)


def run_stages_side_by_side(*stages: tuple[str, list]) -> None:
    """Run independent `im2wav` stages at once, one thread each, when there is a core for each.

    With fewer cores they run one after the other. A failing stage stops the others.

    Args:
        stages: `(command, argv)` of each stage.
    """
    if (os.cpu_count() or 1) < len(stages):
        for command, argv in stages:
            run_stage(command, *argv)
        return
    running = []
    for command, argv in stages:
        line, env = _stage(command, argv, "im2wav")
        name = " ".join(str(a) for a in [command, *argv[:2]])  # e.g. "train-prior --level low"
        running.append((name, subprocess.Popen(line, env={**env, "OMP_NUM_THREADS": "1"})))
    try:
        while running:
            for name, process in list(running):
                status = process.poll()
                if status is None:
                    continue
                running.remove((name, process))
                if status != 0:
                    raise _failed(name, "im2wav", status)
            time.sleep(0.5)
    finally:
        for _, process in running:  # only left after a failure or an interrupt
            process.kill()
            process.wait()


def make_offline_clip(folder: Path, seed: int = 0) -> Path:
    """Save the small random CLIP vision encoder (`im2wav.clip_encoder.tiny_clip_vision`) to `folder`.

    Args:
        folder: where to save model and image processor.
        seed: its initialisation seed.
    """
    from ..clip_encoder import tiny_clip_vision

    model, processor = tiny_clip_vision(seed=seed)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Build the demo model; prints `{"pipeline": folder, ...}` as JSON.

    `argv`: the arguments after the subcommand (default: `sys.argv[1:]`); `prog`: as in `build_parser`.
    """
    args = build_parser(prog).parse_args(argv)
    out = Path(args.out).resolve()
    work = Path(args.work_dir).resolve() if args.work_dir else out.with_name(out.name + ".work")
    if out.exists() and not args.overwrite:
        raise UserError(f"--out {out} already exists; choose another folder or pass --overwrite")
    if not out.parent.is_dir():
        raise UserError(f"the folder of --out {out} does not exist")
    if args.videos is not None and not Path(args.videos).is_dir():
        raise UserError(f"--videos {args.videos} is not a folder")
    for name in ("vqvae", "low", "up", "tokens", "data"):
        if (work / name).exists():
            raise UserError(f"{work / name} exists from an earlier build; pass a new --work-dir or delete it")
    work.mkdir(parents=True, exist_ok=True)
    seed = ["--seed", args.seed]
    quiet = ["--no-progress", "--log-every", 50, "--save-every", 100000]

    # 1. The videos (yours, or the synthetic world) and the image encoder
    videos = Path(args.videos).resolve() if args.videos else work / "world" / "videos"
    if args.videos is None:
        run_stage("make-synthetic", "--out", work / "world", "--world", "patterns",
                  "--clips-per-class", args.clips_per_class, "--heldout-per-class", 1, "--duration", 4.0, *seed)
    clip = args.clip
    if clip is None:
        clip = str(make_offline_clip(work / "clip", seed=0))
        if args.clip_steps > 0:  # fit it to the training videos (no labels: their soundtracks guide it)
            run_stage(None, "--videos", videos, "--init", clip, "--out", clip, "--steps", args.clip_steps,
                      *CLIP_FIT, *seed, module="im2wav.training.image_encoder_fit")
    # 2. Prepare, train the three stages, assemble
    run_stage("prepare", "--input", videos, "--out", work / "data", "--clip-model", clip, "--num-workers", 0,
              "--min-seconds", MIN_CLIP_SECONDS, "--no-progress")
    run_stage("train-vqvae", "--dataset", work / "data", "--run-dir", work / "vqvae", *RECIPE["vqvae"],
              "--max-steps", args.vqvae_steps, *seed, *quiet)
    run_stage("encode-tokens", "--dataset", work / "data", "--vqvae", work / "vqvae", "--out", work / "tokens",
              "--device", "cpu", "--no-progress")
    # LOW and UP are independent (UP learns from the real LOW tokens): side by side on two or more cores
    prior_steps = {"low": args.low_steps, "up": args.up_steps}
    run_stages_side_by_side(*[
        ("train-prior", ["--level", level, "--dataset", work / "data", "--tokens", work / "tokens", "--run-dir",
                         work / level, *RECIPE[level], "--max-steps", prior_steps[level], *seed, *quiet])
        for level in ("low", "up")])
    run_stage("assemble", "--vqvae", work / "vqvae", "--low", work / "low", "--up", work / "up",
              "--dataset", work / "data", "--out", out, *(["--overwrite"] if args.overwrite else []))
    # 3. A model card; for the synthetic world its classes and one example picture per class
    rebuild = f"im2wav build-demo --seed {args.seed} --clip-steps {args.clip_steps} --vqvae-steps {args.vqvae_steps} " \
              f"--low-steps {args.low_steps} --up-steps {args.up_steps}"
    result = {"pipeline": str(out), "work_dir": str(work)}
    if args.videos is None:
        shutil.copyfile(work / "world" / "classes.json", out / "classes.json")
        names = [c["name"] for c in json.loads((work / "world" / "classes.json").read_text())["classes"]]
        (out / "README.md").write_text(_synthetic_card(f"{rebuild} --clips-per-class {args.clips_per_class}", names))
        if args.examples:
            examples = Path(args.examples)
            examples.mkdir(parents=True, exist_ok=True)
            for image in sorted((work / "world" / "heldout").glob("*.png")):
                shutil.copyfile(image, examples / f"{image.stem.rsplit('_', 1)[0]}.png")
            result["examples"] = str(examples)
    else:
        (out / "README.md").write_text(
            "# im2wav demo-size model\n\n"
            f"Trained by `im2wav build-demo` on the videos in `{videos}` with the image encoder `{clip}`.\n\n"
            f"Rebuild it: `{rebuild} --videos {videos}" + (f" --clip {args.clip}" if args.clip else "") + "`\n"
        )
    print(json.dumps(result))
    return 0


def _synthetic_card(rebuild: str, classes: list[str]) -> str:
    return (
        "# im2wav default model (synthetic world)\n\n"
        "A tiny im2wav (a few MB) trained with the demo recipe (`im2wav/training/demo_recipe.py`) on the `patterns` "
        "world of `im2wav.data.synthetic`: six picture classes (two pairs differ only in their background "
        "pattern), each with a sound family of its own; class names are `<sound>_<pattern>_<shape>`: "
        f"{', '.join(classes)} (`classes.json`). Its image encoder is a tiny CLIP fitted to the training videos, "
        "not OpenAI's. It knows nothing else: it exists so that `im2wav generate` runs out of the box, in under "
        "a minute on a CPU.\n\n"
        "    im2wav generate assets/examples/low_tone_plain_circle.png --model assets/default_model "
        "--out outputs/example.wav --spectrogram outputs/example.png --seed 0\n\n"
        "Rebuild it (about 15 minutes on one CPU core):\n\n"
        f"    {rebuild} --out assets/default_model --examples assets/examples\n"
    )

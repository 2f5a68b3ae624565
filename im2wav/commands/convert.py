"""Convert the authors' original IM2WAV checkpoints (`.pth.tar`) into `from_pretrained` folders.

One checkpoint of any kind (VQ-VAE, LOW or UP prior; recognised from the file), or the three
checkpoints plus a CLIP ViT-B/32 into a whole `Im2WavPipeline` folder. The folder is written to a
temporary sibling and renamed at the end, so a failed conversion leaves nothing behind. Files are
read without unpickling code (`im2wav.convert.read_original_checkpoint`).

examples:
  im2wav convert --checkpoint vqvae.pth.tar --out models/vqvae
  im2wav convert --vqvae vqvae.pth.tar --low low.pth.tar --up up.pth.tar \\
      --clip openai/clip-vit-base-patch32 --out models/im2wav
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn

from ..atomic_files import atomic_folder
from ..output_paths import check_output_folder
from .parsing import command_parser

NAME = "convert"
# An existing --out is replaced (with --overwrite) only when it is a model folder, as this command writes.
MODEL_FOLDER_MARKERS = ("config.json", "model_index.json")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The `im2wav convert` parser; `prog` names the program in its usage line."""
    parser = command_parser(NAME, __doc__, prog)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--checkpoint", type=Path, help="convert ONE original .pth.tar file of any kind")
    mode.add_argument("--vqvae", type=Path, help="whole-pipeline mode: the VQ-VAE .pth.tar (needs --low --up --clip)")
    parser.add_argument("--low", type=Path, help="whole-pipeline mode: the LOW prior .pth.tar")
    parser.add_argument("--up", type=Path, help="whole-pipeline mode: the UP prior .pth.tar")
    parser.add_argument("--clip", help="whole-pipeline mode: CLIP ViT-B/32 folder or hub id")
    parser.add_argument("--out", type=Path, required=True, help="output folder for from_pretrained")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out if it exists and is a model folder; never a folder holding an input")
    return parser


def save_atomically(model: nn.Module, out: Path, overwrite: bool = False, inputs: list[Path] | None = None) -> None:
    """`model.save_pretrained` into a temporary sibling of `out`, then rename it to `out`.

    Args:
        model: a diffusers `ModelMixin` (or anything with `save_pretrained(path)`).
        out: the final folder.
        overwrite: replace an existing `out` (a model folder); otherwise an existing `out` is an error.
        inputs: the files the conversion read; an `out` holding one of them is never replaced.
    """
    with atomic_folder(out, overwrite=overwrite, inputs=inputs or [], marker_files=MODEL_FOLDER_MARKERS) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Convert; prints what was written.

    `argv`: the arguments after the subcommand (default: `sys.argv[1:]`); `prog`: as in `build_parser`.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    inputs = [p for p in (args.checkpoint, args.vqvae, args.low, args.up) if p is not None]
    if args.clip is not None and Path(args.clip).exists():
        inputs.append(Path(args.clip))
    # Before the (long) conversion: an --out that may not be written fails now, not at the end.
    check_output_folder(args.out, overwrite=args.overwrite, inputs=inputs, marker_files=MODEL_FOLDER_MARKERS)
    pipeline_args = {"--low": args.low, "--up": args.up, "--clip": args.clip}
    if args.vqvae is not None:
        missing = [name for name, value in pipeline_args.items() if value is None]
        if missing:
            parser.error(f"--vqvae (whole-pipeline mode) also needs {' '.join(missing)}")
        from ..convert.pipeline import build_pipeline_from_original
        from ..quiet_loading import quiet_loading

        with quiet_loading():
            model = build_pipeline_from_original(args.vqvae, args.low, args.up, args.clip)
    else:
        given = [name for name, value in pipeline_args.items() if value is not None]
        if given:
            parser.error(f"{' '.join(given)} belong to the whole-pipeline mode (--vqvae ...), not --checkpoint")
        from ..convert import load_original_checkpoint

        model = load_original_checkpoint(args.checkpoint)
    save_atomically(model, args.out, args.overwrite, inputs)
    print(f"wrote {type(model).__name__} to {args.out}")
    return 0

"""Convert an original IM2WAV checkpoint (`.pth.tar`) into a `from_pretrained` folder.

    python training_scripts/convert_original_checkpoint.py --checkpoint vqvae.pth.tar --out models/vqvae

or the authors' three checkpoints plus a CLIP ViT-B/32 into a whole `Im2WavPipeline` folder:

    python training_scripts/convert_original_checkpoint.py --vqvae vqvae.pth.tar --low low.pth.tar \
        --up up.pth.tar --clip openai/clip-vit-base-patch32 --out models/im2wav

The kind (VQ-VAE, LOW or UP prior) is recognised from the file. The folder is written to a
temporary sibling and renamed at the end, so a failed conversion leaves nothing behind.
The file is read without unpickling code (`im2wav.convert.read_original_checkpoint`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torch import nn

from im2wav.convert import load_original_checkpoint
from im2wav.atomic_files import atomic_folder
from im2wav.errors import run_main
from im2wav.output_paths import check_output_folder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # One input mode is required; a whole-pipeline mode (--vqvae/--low/--up/--clip) can join this group.
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--checkpoint", type=Path, help="convert ONE original .pth.tar file of any kind")
    mode.add_argument("--vqvae", type=Path, help="whole-pipeline mode: the VQ-VAE .pth.tar (needs --low --up --clip)")
    parser.add_argument("--low", type=Path, help="whole-pipeline mode: the LOW prior .pth.tar (default: None)")
    parser.add_argument("--up", type=Path, help="whole-pipeline mode: the UP prior .pth.tar (default: None)")
    parser.add_argument("--clip", help="whole-pipeline mode: CLIP ViT-B/32 folder or hub id (default: None)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for from_pretrained (default: required)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out if it exists and is a model folder; never a folder holding an input "
                             "(default: False)")
    return parser


# An existing --out is replaced (with --overwrite) only when it is a model folder, as this script writes.
MODEL_FOLDER_MARKERS = ("config.json", "model_index.json")


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


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    pipeline_args = {"--low": args.low, "--up": args.up, "--clip": args.clip}
    inputs = [p for p in (args.checkpoint, args.vqvae, args.low, args.up) if p is not None]
    if args.clip is not None and Path(args.clip).exists():
        inputs.append(Path(args.clip))
    # Before the (long) conversion: an --out that may not be written fails now, not at the end.
    check_output_folder(args.out, overwrite=args.overwrite, inputs=inputs, marker_files=MODEL_FOLDER_MARKERS)
    if args.vqvae is not None:
        missing = [name for name, value in pipeline_args.items() if value is None]
        if missing:
            parser.error(f"--vqvae (whole-pipeline mode) also needs {' '.join(missing)}")
        from im2wav.convert.pipeline import build_pipeline_from_original

        model = build_pipeline_from_original(args.vqvae, args.low, args.up, args.clip)
    else:
        given = [name for name, value in pipeline_args.items() if value is not None]
        if given:
            parser.error(f"{' '.join(given)} belong to the whole-pipeline mode (--vqvae ...), not --checkpoint")
        model = load_original_checkpoint(args.checkpoint)
    save_atomically(model, args.out, args.overwrite, inputs)
    print(f"wrote {type(model).__name__} to {args.out}")


if __name__ == "__main__":
    sys.exit(run_main(main))

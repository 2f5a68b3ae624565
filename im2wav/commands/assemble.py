"""Assemble trained stages into an `Im2WavPipeline` folder: VQ-VAE + LOW + UP + CLIP.

Each stage may be a run folder (its latest checkpoint), a checkpoint, a model folder, a pipeline
folder or an original `.pth.tar`. `--clip` must be the CLIP the training data was prepared with.

examples:
  im2wav assemble --vqvae runs/vqvae --low runs/low --up runs/up --dataset data/prepared --out my_im2wav
  im2wav generate cat.jpg --model my_im2wav --out cat.wav
"""

from __future__ import annotations

import argparse
import json

from .parsing import command_parser

NAME = "assemble"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The `im2wav assemble` parser; `prog` names the program in its usage line."""
    parser = command_parser(NAME, __doc__, prog)
    parser.add_argument("--vqvae", required=True, help="VQ-VAE source")
    parser.add_argument("--low", required=True, help="LOW prior source")
    parser.add_argument("--up", required=True, help="UP prior source")
    parser.add_argument("--clip", default=None,
                        help="CLIP checkpoint (folder or hub id); default: the one named in --dataset's info.json")
    parser.add_argument("--dataset", default=None, help="prepared dataset, to read the CLIP checkpoint it used")
    parser.add_argument("--use-ema", action="store_true", help="take the EMA weights of training checkpoints when saved")
    parser.add_argument("--out", required=True, help="pipeline folder to write (must not exist, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out if it is an existing pipeline folder (never any other folder)")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Assemble; prints `{"pipeline": folder}` as JSON.

    `argv`: the arguments after the subcommand (default: `sys.argv[1:]`); `prog`: as in `build_parser`.
    """
    args = build_parser(prog).parse_args(argv)
    from ..quiet_loading import quiet_loading
    from ..training.assemble import assemble_pipeline

    with quiet_loading():
        out = assemble_pipeline(args.vqvae, args.low, args.up, args.out, clip=args.clip, dataset=args.dataset,
                                use_ema=args.use_ema, overwrite=args.overwrite)
    print(json.dumps({"pipeline": str(out)}))
    return 0

"""Assemble trained stages into an `Im2WavPipeline` folder: VQ-VAE + LOW + UP + CLIP.

    python training_scripts/assemble_pipeline.py --vqvae runs/vqvae --low runs/low --up runs/up \
        --clip openai/clip-vit-base-patch32 --out my_im2wav
    im2wav generate cat.jpg --model my_im2wav --out cat.wav

Each stage may be a run folder (its latest checkpoint), a checkpoint, a model folder, a pipeline
folder or an original `.pth.tar`. `--clip` must be the CLIP the training data was prepared with.
"""

from __future__ import annotations

import argparse
import json
import sys

from im2wav.errors import run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from im2wav.training.assemble import assemble_pipeline

    out = assemble_pipeline(args.vqvae, args.low, args.up, args.out, clip=args.clip, dataset=args.dataset,
                            use_ema=args.use_ema, overwrite=args.overwrite)
    print(json.dumps({"pipeline": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

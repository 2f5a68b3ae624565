"""Prepare a folder of videos (or image + sound pairs, or a VGGSound CSV + folder) for training.

Decodes audio (16 kHz mono) and frames (30 fps), embeds every frame with CLIP and writes
safetensors shards plus a manifest. Resumable: run the same command again to continue.

examples:
  im2wav prepare --input videos/ --out data/prepared --clip-model openai/clip-vit-base-patch32
  im2wav prepare --input vggsound/ --csv vggsound.csv --out data/vgg --clip-model clip/ --num-workers 4
"""

from __future__ import annotations

import argparse
import json
import sys

from .parsing import command_parser

NAME = "prepare"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The `im2wav prepare` parser; `prog` names the program in its usage line."""
    parser = command_parser(NAME, __doc__, prog)
    parser.add_argument("--input", required=True, help="folder searched recursively for videos or image+sound pairs")
    parser.add_argument("--out", required=True, help="prepared dataset folder (resumed when it exists)")
    parser.add_argument("--clip-model", required=True, help="CLIP checkpoint: a local folder or a hub id")
    parser.add_argument("--csv", default=None, help="VGGSound-style CSV: youtube_id,start_seconds,label,split")
    parser.add_argument("--sample-rate", type=int, default=16000, help="audio sample rate in Hz")
    parser.add_argument("--fps", type=float, default=30.0, help="video frames per second embedded with CLIP")
    parser.add_argument("--num-workers", type=int, default=2, help="decoding processes (0: decode in this process)")
    parser.add_argument("--clip-batch-size", type=int, default=64, help="frames per CLIP forward pass")
    parser.add_argument("--items-per-shard", type=int, default=64, help="items per safetensors shard")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longer inputs are cut to this length")
    parser.add_argument("--min-seconds", type=float, default=0.1, help="shorter inputs are skipped")
    parser.add_argument("--device", default="cpu", help="device for CLIP")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Prepare the dataset; prints a JSON summary and one line per skipped input.

    `argv`: the arguments after the subcommand (default: `sys.argv[1:]`); `prog`: as in `build_parser`.
    """
    args = build_parser(prog).parse_args(argv)
    # Imported here, not at the top: decoding workers are spawned and re-import their caller.
    from ..data.preparation import prepare_dataset

    report = prepare_dataset(
        args.input, args.out, args.clip_model, csv_path=args.csv, sample_rate=args.sample_rate, fps=args.fps,
        num_workers=args.num_workers, clip_batch_size=args.clip_batch_size, items_per_shard=args.items_per_shard,
        max_seconds=args.max_seconds, min_seconds=args.min_seconds, device=args.device,
        progress=not args.no_progress,
    )
    summary = {"found": report.found, "already_done": report.already_done, "prepared": report.prepared,
               "skipped": len(report.skipped), "seconds": round(report.seconds, 2)}
    print(json.dumps(summary))
    for item in report.skipped:
        print(f"skipped {item['source']}: {item['reason']}", file=sys.stderr)
    return 0

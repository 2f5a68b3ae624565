"""Write the synthetic audio-visual world: K picture classes paired with K different sounds, as mp4.

Deterministic from --seed. Writes videos/*.mp4 (h264 or mpeg4 + AAC), heldout/*.png (+ .wav),
classes.json and vggsound.csv.

examples:
  im2wav make-synthetic --out world/ --num-classes 3 --clips-per-class 8
  im2wav make-synthetic --out world/ --world patterns --clips-per-class 16   # six classes, patterns
  im2wav prepare --input world/videos --out world_prepared --clip-model clip/
"""

from __future__ import annotations

import argparse
import json

from .parsing import command_parser

NAME = "make-synthetic"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The `im2wav make-synthetic` parser; `prog` names the program in its usage line."""
    from ..data.synthetic import SOUND_KINDS, WORLDS

    parser = command_parser(NAME, __doc__, prog)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--world", choices=WORLDS, default="shapes",
                        help="shapes: colour tells K classes apart; patterns: 6 classes, some told apart by pattern alone")
    parser.add_argument("--num-classes", type=int, default=None,
                        help=f"K of the shapes world (default 3, at most {len(SOUND_KINDS)}); patterns has 6")
    parser.add_argument("--sounds", default=None,
                        help=f"shapes world: comma-separated sound of each class (default: the first K of "
                             f"{','.join(SOUND_KINDS)})")
    parser.add_argument("--clips-per-class", type=int, default=8, help="training videos per class")
    parser.add_argument("--heldout-per-class", type=int, default=2, help="held-out still images per class")
    parser.add_argument("--mismatched-per-class", type=int, default=0,
                        help="training clips per class that carry the next class's sound (label noise)")
    parser.add_argument("--duration", type=float, default=2.0, help="clip length in seconds")
    parser.add_argument("--fps", type=int, default=30, help="video frame rate")
    parser.add_argument("--sample-rate", type=int, default=16000, help="audio sample rate in Hz")
    parser.add_argument("--size", type=int, default=64, help="frame height and width in pixels (even)")
    parser.add_argument("--video-codec", choices=("h264", "mpeg4"), default="h264", help="video codec")
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Write the world; prints a JSON summary.

    `argv`: the arguments after the subcommand (default: `sys.argv[1:]`); `prog`: as in `build_parser`.
    """
    args = build_parser(prog).parse_args(argv)
    from ..data.synthetic import make_synthetic_dataset

    world = make_synthetic_dataset(
        args.out, num_classes=args.num_classes, world=args.world, clips_per_class=args.clips_per_class,
        heldout_per_class=args.heldout_per_class, duration_s=args.duration, fps=args.fps,
        sample_rate=args.sample_rate, size=args.size, seed=args.seed, video_codec=args.video_codec,
        sounds=args.sounds.split(",") if args.sounds else None, mismatched_per_class=args.mismatched_per_class,
    )
    print(json.dumps({"videos": len(world.videos), "heldout_images": len(world.heldout_images),
                      "classes": [c.name for c in world.classes], "csv": str(world.csv_path)}))
    return 0

"""The generation options both evaluation command styles share, with the paper's values as defaults."""

from __future__ import annotations

import argparse


def add_generation_options(group: argparse._ArgumentGroup, seed_help: str) -> None:
    """`--audio-length`, `--guidance-scale` and `--seed`, the paper's values as defaults (also the flag style's)."""
    group.add_argument("--audio-length", type=float, default=4.0, help="seconds per clip (the paper: 4)")
    group.add_argument("--guidance-scale", type=float, default=3.0, help="LOW prior guidance scale (the paper: 3)")
    group.add_argument("--seed", type=int, default=0, help=seed_help)

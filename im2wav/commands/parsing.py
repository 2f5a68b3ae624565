"""One parser style for every subcommand: its module docstring as the description, examples kept
as written, defaults shown."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option; the description's usage examples kept line for line."""


def command_parser(name: str, doc: str | None, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of the subcommand `name`.

    Args:
        name: the subcommand (`prepare`, `train-vqvae`, ...).
        doc: the module docstring: a summary line, usage examples, notes.
        prog: the program name shown in usage lines (default: `im2wav NAME`).
    """
    return argparse.ArgumentParser(prog=prog or f"im2wav {name}", description=doc, formatter_class=HelpFormatter)

"""The `im2wav` command: every stage, from the authors' checkpoints or your own videos to audio.

    im2wav generate dog.jpg --model M --out dog.wav          # see `im2wav COMMAND --help`

Each subcommand is a module with `main(argv)`; this one forwards the rest of the command line to it
and reports user errors the same way for all of them: one line, `im2wav: error: ...`, exit status 2
(`--debug` or `IM2WAV_DEBUG=1` shows the traceback instead). A ValueError/TypeError raised outside
im2wav's own code is a bug, not a user error: its traceback is shown. Ctrl-C exits with 130.
`training_scripts/*.py` run their subcommand through `run_command`.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import traceback
from pathlib import Path

from .errors import UserError, run_main

__all__ = ["COMMANDS", "build_parser", "main", "run_command"]

# subcommand -> (module with `main(argv)`, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("im2wav.commands.generate", "generate audio for images or videos with a trained pipeline"),
    "convert": ("im2wav.commands.convert", "convert the authors' .pth.tar checkpoints into model folders"),
    "make-synthetic": ("im2wav.commands.synthetic", "write the synthetic picture/sound world (test data)"),
    "prepare": ("im2wav.commands.prepare", "decode videos and CLIP-embed their frames into a training dataset"),
    "train-vqvae": ("im2wav.commands.train_vqvae", "train or fine-tune the VQ-VAE"),
    "encode-tokens": ("im2wav.commands.encode_tokens", "encode a prepared dataset into VQ-VAE tokens"),
    "train-prior": ("im2wav.commands.train_prior", "train or fine-tune the LOW or UP prior"),
    "assemble": ("im2wav.commands.assemble", "put VQ-VAE, priors and CLIP together into a pipeline folder"),
    "build-demo": ("im2wav.commands.build_demo", "train a demo-size model on a video folder, on a CPU, in one go"),
    "evaluate": ("im2wav.evaluation.command", "score generated audio (FAD, KL, IMAGEHEAR accuracy, CLIP-score)"),
}

EXAMPLES = """\
examples:
  im2wav generate dog.jpg --model models/im2wav --out dog.wav --seed 0
  im2wav convert --vqvae vqvae.pth.tar --low low.pth.tar --up up.pth.tar --clip clip/ --out models/im2wav
  im2wav build-demo --videos my_clips/ --work-dir runs/demo --out models/my_demo
  im2wav prepare --input videos/ --out data/prepared --clip-model openai/clip-vit-base-patch32
  im2wav train-vqvae --dataset data/prepared --run-dir runs/vqvae

Stage by stage: prepare -> train-vqvae -> encode-tokens -> train-prior --level low / up -> assemble.
Add --debug (or set IM2WAV_DEBUG=1) to see the traceback of an error.
"""

# Optional dependencies -> the extra that installs them.
_EXTRAS = {"torchaudio": "eval", "accelerate": "train"}
# A ValueError/TypeError is the user's to fix when im2wav's own code raised it (a checked argument);
# raised from deep inside torch or numpy it is a bug and keeps its traceback.
_OUR_CODE = tuple(str(p) for p in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1] / "pipelines",
                                   Path(__file__).resolve().parents[1] / "training_scripts"))


class InternalError(RuntimeError):
    """A ValueError/TypeError from outside im2wav's code: a bug, shown with its traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: `im2wav [--debug] COMMAND ...` (only for `--help` and `--version`)."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="im2wav", description="Image-guided audio generation (IM2WAV).",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"im2wav {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors (also: IM2WAV_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (_, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def _raised_by_us(err: BaseException) -> bool:
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(_OUR_CODE)


def run_command(name: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the subcommand `name` with `argv`, reporting user errors in one line (`errors.run_main`).

    Args:
        name: a key of `COMMANDS`.
        argv: its arguments (default: `sys.argv[1:]`); a `--debug` among them shows tracebacks.
        prog: program name for its usage line and error messages (default: `im2wav NAME` and `im2wav`).

    Returns:
        The exit status: 0 done, 2 user error, 130 interrupted (argparse's own errors exit 2 too).
    """
    module = importlib.import_module(COMMANDS[name][0])
    kwargs = {"prog": prog or f"im2wav {name}"} if "prog" in inspect.signature(module.main).parameters else {}

    def checked_main(args: list[str]) -> int | None:
        try:
            return module.main(args, **kwargs)
        except (ValueError, TypeError) as err:
            if _raised_by_us(err):
                raise
            raise InternalError(f"internal error in im2wav {name} (please report it): {err}") from err
        except ModuleNotFoundError as err:
            if err.name not in _EXTRAS:
                raise
            raise UserError(f"im2wav {name} needs {err.name}: pip install 'im2wav[{_EXTRAS[err.name]}]' (for "
                            "torchaudio, the release that matches your torch)") from err

    return run_main(checked_main, argv, prog=prog or "im2wav")  # the scripts' errors name the script


def main(argv: list[str] | None = None) -> int:
    """Run `im2wav [--debug] COMMAND [ARGS]`; returns the exit status (0 ok, 2 user error, 130 interrupted).

    Args:
        argv: the command line after `im2wav` (default: `sys.argv[1:]`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    position = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if position is None or argv[position] not in COMMANDS:
        parser = build_parser()
        if position is None:
            parser.parse_args(argv)  # --help / --version exit here
            parser.print_help(sys.stderr)
            return 2
        parser.parse_args(argv[: position + 1])  # an unknown command: argparse lists the choices, exit 2
    options, name, rest = argv[:position], argv[position], argv[position + 1 :]
    unknown = [a for a in options if a != "--debug"]
    if unknown:
        build_parser().error(f"unrecognized arguments before {name}: {' '.join(unknown)}")
    return run_command(name, rest + (["--debug"] if "--debug" in options else []))


if __name__ == "__main__":
    sys.exit(main())

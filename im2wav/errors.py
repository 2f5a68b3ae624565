"""User errors (bad flags, missing files) and their one-line report, shared by every `im2wav`
subcommand and `training_scripts/*.py` (through `im2wav.cli.run_command`)."""

import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with the command line or the user's files: reported in one line, exit status 2."""


# What a user can cause and fix: bad flags and values, missing, unreadable, unfit or existing files,
# a full disk. Anything else (AttributeError, RuntimeError from torch, ...) is a bug and keeps its traceback.
USER_ERRORS = (UserError, ValueError, TypeError, OSError)


def one_line(err: BaseException) -> str:
    """The first line of an error's message; for OS errors their reason and file (`Permission denied: x`)."""
    if isinstance(err, OSError) and not isinstance(err, (FileNotFoundError, FileExistsError)) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}"
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None,
             prog: str | None = None) -> int:
    """Run an entry point's `main(argv)`, reporting user errors in one line with exit status 2.

    `--debug` in `argv` (removed before `main` sees it) or `IM2WAV_DEBUG=1` lets the traceback
    through instead. An interrupt exits with 130.

    Args:
        main: the entry point; returns an exit status or None (0).
        argv: the arguments (default: `sys.argv[1:]`).
        prog: the name printed before the message (default: the script's file name).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("IM2WAV_DEBUG", "") not in ("", "0")
    argv = [arg for arg in argv if arg != "--debug"]
    prog = prog or os.path.basename(sys.argv[0]) or "im2wav"
    try:
        status = main(argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    return int(status or 0)

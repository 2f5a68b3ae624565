"""Checks on a command's output paths, made before any long work starts.

A command must never replace one of its own inputs (whatever `--overwrite` says), two of its
outputs must never land on the same file, an existing output is replaced only when the user asked
for it, and a folder that cannot be written is reported before minutes of generation or training,
not after. `check_outputs` does all four in one call; the writers then publish each file with
`im2wav.atomic_files` so that "no overwrite" still holds at the moment of writing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["check_output_folder", "check_outputs", "check_writable_folder", "same_path"]

PathLike = str | os.PathLike


def same_path(a: PathLike, b: PathLike) -> bool:
    """True when `a` and `b` name the same file (links resolved, hard links included)."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_writable_folder(folder: PathLike) -> None:
    """Raise a `ValueError` unless new files can be created in `folder`.

    The check creates and removes a temporary file, so it sees what permission bits alone do not
    (read-only mounts, full quotas on some file systems, ACLs).

    Args:
        folder: an existing folder.
    """
    folder = Path(folder) if str(folder) else Path(".")
    if not folder.exists():
        raise ValueError(f"the output folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise ValueError(f"the output folder {folder} is a file, not a folder; choose another output")
    try:
        fd, name = tempfile.mkstemp(prefix=".im2wav-write-check.", dir=folder)
    except OSError as err:
        raise ValueError(f"cannot write into {folder} ({err.strerror}); choose a writable output location") from err
    os.close(fd)
    os.unlink(name)


def check_outputs(outputs: Iterable[PathLike], inputs: Iterable[PathLike], overwrite: bool = False) -> None:
    """Raise before any work when the planned outputs would destroy something or cannot be written.

    Args:
        outputs: every file the command will write.
        inputs: every file or folder the command reads (a model folder, input media).
        overwrite: whether existing outputs may be replaced (inputs never may).

    Raises:
        ValueError: an output is an input, two outputs are the same file, an output is a folder,
            or an output folder cannot be written.
        FileExistsError: an output exists and `overwrite` is False.
    """
    outputs = [Path(p) for p in outputs]
    inputs = [Path(p) for p in inputs]
    for out in outputs:
        for source in inputs:
            if same_path(out, source):
                raise ValueError(f"the output {out} is also an input of this command; choose another output name "
                                 "(inputs are never replaced, not even with --overwrite)")
    seen: dict[Path, Path] = {}
    for out in outputs:
        key = out.resolve()
        if key in seen:
            raise ValueError(f"two outputs would both be written to {out}; give them different names")
        seen[key] = out
    for out in outputs:
        if out.is_dir():
            raise ValueError(f"the output {out} is a folder; choose a file name")
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    for folder in sorted({out.parent for out in outputs}):
        check_writable_folder(folder)


def _holds(folder: Path, inner: PathLike) -> bool:
    """True when `inner` is `folder` itself or lies inside it (links resolved)."""
    folder, inner = folder.resolve(), Path(inner).resolve()
    return inner == folder or folder in inner.parents


def check_output_folder(
    path: PathLike, overwrite: bool = False, inputs: Iterable[PathLike] = (), marker_files: Iterable[str] = ()
) -> None:
    """Raise before any work when writing the folder `path` would destroy something or cannot be done.

    Args:
        path: the folder a command will write (as a whole, with `atomic_folder`).
        overwrite: whether an existing `path` may be replaced.
        inputs: files or folders the command reads; a `path` holding one is never replaced.
        marker_files: when given, an existing non-empty `path` is replaced only if it holds one of
            these names (e.g. `model_index.json`): the kind of folder the command itself writes.
            A folder of anything else is never deleted, whatever `overwrite` says.

    Raises:
        ValueError: `path` holds an input, is a file, is not the kind of folder the command writes,
            or its parent cannot be written.
        FileExistsError: `path` exists and `overwrite` is False.
    """
    path = Path(path)
    for item in inputs:
        if _holds(path, item):
            raise ValueError(
                f"refusing to write {path}: it holds {item}, an input of this command; choose another output folder"
            )
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot write the folder {path}: a file has that name; choose another output folder")
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} already exists; choose another output folder or pass --overwrite")
        markers = list(marker_files)
        if markers and any(path.iterdir()) and not any((path / name).exists() for name in markers):
            raise ValueError(
                f"refusing to replace {path}: it is not a folder this command wrote (none of {markers} in it); "
                "choose another output folder"
            )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    check_writable_folder(parent)

"""Atomic outputs: a file or folder appears under its final name complete, or not at all.

Every writer of the library (audio, videos, spectrograms, shards, checkpoints, converted models)
writes through these, so an interrupt or a failure never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

PathLike = str | os.PathLike


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

__all__ = ["atomic_folder", "atomic_output", "atomic_write_text"]


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only when the block succeeds.

    The temporary file keeps the final suffix (encoders choose the format from it) and lives in
    the same folder, so `os.replace` is an atomic rename. On any exception, KeyboardInterrupt
    included, the temporary file is removed and `path` is left untouched.

    Args:
        path: the final output path. Its folder must exist.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: the folder {folder} does not exist; create it first")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private; the output should read like any new file
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write a text file so that a crash leaves either the old or the new content, never a mix.

    Args:
        path: the final path. Its folder must exist.
        text: the whole content.
    """
    with atomic_output(path) as tmp:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_folder(path: PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it becomes `path` only when the block succeeds.

    An existing `path` is moved aside, the new folder renamed into place, then the old one deleted,
    so at no moment is `path` half-written. On any exception the temporary folder is removed and
    `path` is left untouched.

    Args:
        path: the final folder. Its parent is created.
        overwrite: replace an existing `path`; otherwise an existing `path` is a `FileExistsError`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another output folder or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should read like any new folder
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

"""Atomic outputs: a file or folder appears under its final name complete, or not at all.

Every writer of the library (audio, videos, spectrograms, shards, checkpoints, converted models)
writes through these, so an interrupt or a failure never leaves a half-written output behind.

With `overwrite=False`, "no overwrite" holds at the moment the output is published, not only when
a command starts: a file is published with `os.link` (which fails when the name exists) and a
folder by claiming its name with `os.mkdir` first, so an output that appeared meanwhile (another
run with the same `--out`, a user's file) is never replaced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .output_paths import check_output_folder

PathLike = str | os.PathLike

__all__ = ["atomic_folder", "atomic_output", "atomic_write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _appeared(path: Path) -> FileExistsError:
    return FileExistsError(
        f"{path} appeared while the output was being made; it was left as it is and nothing was written "
        "(remove it, choose another output, or allow overwriting)"
    )


def _publish_file_exclusively(tmp: Path, path: Path) -> None:
    """Give `tmp` the name `path` only if `path` does not exist at that moment."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _appeared(path) from None
    except OSError:
        # No hard links on this file system: claim the name exclusively, then move onto our own claim.
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise _appeared(path) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only when the block succeeds.

    The temporary file keeps the final suffix (encoders choose the format from it) and lives in
    the same folder, so `os.replace` is an atomic rename. On any exception, KeyboardInterrupt
    included, the temporary file is removed and `path` is left untouched.

    Args:
        path: the final output path. Its folder must exist.
        overwrite: replace an existing `path`. When False, an existing `path` is a
            `FileExistsError`, checked before the work and again, atomically, when publishing.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: the folder {folder} does not exist; create it first")
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; choose a file name")
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{path} already exists; remove it, choose another output, or allow overwriting")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=folder)
    except OSError as err:
        raise ValueError(f"cannot write into {folder} ({err.strerror}); choose a writable location") from err
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private; the output should read like any new file
    try:
        yield tmp
        if overwrite:
            os.replace(tmp, path)
        else:
            _publish_file_exclusively(tmp, path)
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
def atomic_folder(
    path: PathLike, overwrite: bool = True, inputs: Sequence[PathLike] = (), marker_files: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it becomes `path` only when the block succeeds.

    An existing `path` is moved aside, the new folder renamed into place, then the old one deleted,
    so at no moment is `path` half-written. On any exception the temporary folder is removed and
    `path` is left untouched.

    Args:
        path: the final folder. Its parent is created.
        overwrite: replace an existing `path`; otherwise an existing `path` is a `FileExistsError`,
            checked before the work and again, atomically, when publishing.
        inputs: files or folders the command reads: a `path` that holds one of them is never
            replaced, whatever `overwrite` says (a `ValueError` before any work).
        marker_files: an existing non-empty `path` is replaced only if it holds one of these names
            (see `im2wav.output_paths.check_output_folder`).
    """
    path = Path(path)
    check_output_folder(path, overwrite=overwrite, inputs=inputs, marker_files=marker_files)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    except OSError as err:
        raise ValueError(f"cannot write into {path.parent} ({err.strerror}); choose a writable location") from err
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should read like any new folder
    try:
        yield tmp
        if not overwrite:
            try:
                path.mkdir()  # claim the name: fails if anything appeared meanwhile
            except FileExistsError:
                raise _appeared(path) from None
            os.replace(tmp, path)  # onto our own, still empty, claim
        elif path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

"""One run per run folder: a lock file created exclusively, holding the owner's process id.

Two training runs on one run folder would interleave their metrics and overwrite each other's
checkpoints. `run_lock(run_dir)` creates `run_dir/.lock` with `O_CREAT | O_EXCL` (atomic on local
file systems), writes the owner's pid and host into it, and removes it when the run ends, however
it ends short of `kill -9`. A lock left by a killed run is stale: when its pid no longer lives on
this host it is taken over; a live owner, or one on another host, is reported in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_FILE", "run_lock"]

LOCK_FILE = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _owner(lock: Path) -> dict | None:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return None  # being written right now, or torn by a crash


def _is_secondary_process() -> bool:
    """True in the non-main processes of a multi-process (accelerate / torchrun) launch: rank 0 holds the lock."""
    return any(os.environ.get(name, "0") not in ("", "0") for name in ("RANK", "LOCAL_RANK"))


def _try_create(lock: Path, me: dict) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(me))
    return True


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold `run_dir/.lock` for the duration of the block.

    Args:
        run_dir: the run folder (created when missing).

    Raises:
        ValueError: another live process (or a process on another host) holds the run folder.
    """
    run_dir = Path(run_dir)
    if _is_secondary_process():
        yield run_dir / LOCK_FILE
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
        if _try_create(lock, me):
            break
        owner = _owner(lock)
        if owner is None:
            time.sleep(0.2)  # its owner is writing it; look again
            owner = _owner(lock)
        same_host = owner is not None and owner.get("host") == me["host"]
        if owner is not None and same_host and isinstance(owner.get("pid"), int) and not _alive(owner["pid"]):
            # Stale: its run was killed. Move it aside atomically, so that of two runs taking over
            # the same stale lock only one succeeds, then try again.
            with contextlib.suppress(FileNotFoundError):
                os.replace(lock, run_dir / f"{LOCK_FILE}.stale.{os.getpid()}")
                os.unlink(run_dir / f"{LOCK_FILE}.stale.{os.getpid()}")
            continue
        if owner is None:
            raise ValueError(f"{run_dir} is locked by {lock}, which cannot be read; if no run uses this folder, "
                             "delete the lock file and start again")
        where = "" if same_host else f" on host {owner.get('host')}"
        raise ValueError(
            f"{run_dir} is in use by another run (process {owner.get('pid')}{where}, started {owner.get('started')}); "
            f"wait for it to finish or choose another --run-dir (if that run is gone, delete {lock})"
        )
    else:
        raise ValueError(f"could not lock {run_dir}: other runs keep taking it; start one run per run folder")
    try:
        yield lock
    finally:
        if _owner(lock) == me:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()

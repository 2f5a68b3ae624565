"""Giving back the memory of a checkpoint tensor once it has been converted.

An original checkpoint is read with `torch.load(mmap=True)`: its tensors are pages of a private,
read-only mapping of the file, resident only once touched. Converting a tensor touches its pages;
`release_pages` then tells the kernel it may drop them (`madvise(MADV_DONTNEED)`). They are clean
file-backed pages of a private mapping, so nothing is lost: a later read faults them in from the
file again. Converting a whole prior so holds about one copy of its weights (the converted ones)
instead of the checkpoint plus the converted copy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import sys

import torch

_MADV_DONTNEED = 4  # Linux


@functools.lru_cache(maxsize=1)
def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc.madvise


def release_pages(tensor: torch.Tensor) -> None:
    """Drop the resident pages wholly inside `tensor`'s storage. Only for file-mapped (mmap) tensors.

    A no-op off Linux or for storages smaller than a page. Pages shared with a neighbouring tensor
    are kept (the range is rounded inwards).
    """
    madvise = _madvise()
    storage = tensor.untyped_storage()
    if madvise is None or storage.device.type != "cpu":
        return
    page = mmap.PAGESIZE
    start = -(-storage.data_ptr() // page) * page
    end = (storage.data_ptr() + storage.nbytes()) // page * page
    if end > start:
        madvise(start, end - start, _MADV_DONTNEED)

"""Reading an original IM2WAV `.pth.tar` without executing pickled code.

The original `make_models.save_checkpoint` writes `{'hps': dict, 'model': state_dict, 'opt', 'step'}`
with `torch.save`. Its `hps['bandwidth']` holds numpy float64 scalars, so a plain
`torch.load(weights_only=True)` refuses the file; we allow exactly the numpy scalar/dtype types
those need and nothing else. `weights_only=False` is never used: it runs whatever code a
downloaded pickle contains.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .page_release import release_pages

VQVAE_PREFIXES = ("encoders.", "decoders.", "bottleneck.")
PRIOR_PREFIX = "prior."


def _allowed_globals() -> list:
    """The numpy types a `hps['bandwidth']` float64 pickles to, under numpy 2 and numpy 1 names."""
    try:
        from numpy._core.multiarray import scalar  # NumPy 2, and the forward-compatible alias of late 1.26
    except ImportError:  # NumPy 1.26.0: only the old name; both pickled names are allowed below
        from numpy.core.multiarray import scalar
    return [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),  # files written under numpy 1.x
        (scalar, "numpy._core.multiarray.scalar"),  # files written under numpy 2, read under numpy 1.26
        np.dtype,
        np.dtypes.Float64DType,
    ]


_ALLOWED_NAMES = {
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray.scalar",
    "numpy.dtype",
    "numpy.dtypes.Float64DType",
}


@dataclass
class OriginalCheckpoint:
    """The content of an original-format checkpoint.

    Args:
        hps: the original hyperparameter dict (numpy scalars included, as stored).
        state_dict: the original `model` state dict, original key names and dtypes.
        kind: `"vqvae"` or `"prior"`, recognised from the state-dict keys.
        step: the training step stored with the weights, if any.
        path: the file it was read from.
        mapped: the tensors are pages of a read-only mapping of the file (`torch.load(mmap=True)`):
            only what is read becomes resident, and converters may release it afterwards.
    """

    hps: dict
    state_dict: dict[str, torch.Tensor]
    kind: str
    step: int | None
    path: str
    mapped: bool = False


def _refuse_code(path: Path, detail: str) -> ValueError:
    return ValueError(
        f"{path} contains pickled code or objects other than tensors ({detail}); it was NOT loaded, "
        "because unpickling it could run arbitrary code. Only load original IM2WAV checkpoints from a "
        "source you trust; an original checkpoint holds only tensors, numbers, strings and numpy scalars."
    )


def _globals_in_pickle(path: Path) -> set[str]:
    """Names a plain pickle file would import, found by parsing its opcodes without executing them."""
    names, strings = set(), []
    try:
        with open(path, "rb") as f:
            for opcode, arg, _ in pickletools.genops(f):
                if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                    strings.append(arg)
                elif opcode.name in ("GLOBAL", "INST"):
                    names.add(arg.replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL":
                    names.add(".".join(strings[-2:]) if len(strings) >= 2 else "<unknown>")
    except Exception:  # not a pickle, or the end of the first pickle stream: keep what was found
        pass
    return names


def _is_safe_global(name: str) -> bool:
    return name in _ALLOWED_NAMES or name.startswith("torch.") or name == "collections.OrderedDict"


def _reason(message: str) -> str:
    """The specific line of torch's weights-only error message, without its generic advice."""
    generic = ("Weights only load failed", "In PyTorch", "Please file", "Check the documentation", "(1)", "(2)")
    lines = [line.strip() for line in message.splitlines() if line.strip() and not line.strip().startswith(generic)]
    return (lines[-1] if lines else "unreadable pickle")[:200]


# torch.save stores the archive's entries uncompressed, so their total size is the file's size. A few MB
# of slack covers zip bookkeeping; anything inflating far beyond the file is not a torch checkpoint.
_INFLATE_SLACK_BYTES = 16 * 2**20


def _check_archive_sizes(path: Path) -> None:
    """Refuse a zip whose entries would inflate far beyond the file's own size (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # a damaged archive: torch.load reports it precisely
    size = path.stat().st_size
    if inflated > 2 * size + _INFLATE_SLACK_BYTES:
        raise ValueError(
            f"{path} would inflate to {inflated} bytes from a {size}-byte file; torch.save never compresses, so "
            "this is not a checkpoint torch wrote (possibly a zip bomb). It was not loaded"
        )


def _check_finite(state_dict: dict[str, torch.Tensor], path: Path, mapped: bool) -> None:
    """Refuse weights holding NaN or inf: they convert fine and then generate silence or noise.

    With `mapped` (tensors paging in from the file) each tensor's pages are released once checked,
    so the check does not make the whole checkpoint resident before the converters read it.
    """
    bad = []
    for key, value in state_dict.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            bad.append(key)
        if mapped:
            release_pages(value)
    if bad:
        raise ValueError(
            f"{path} holds NaN or inf weights in {len(bad)} tensor(s) (first: {bad[0]!r}); the checkpoint is "
            "damaged or was saved after training diverged. Use another checkpoint"
        )


def _load_safely(path: Path, is_zip: bool) -> object:
    if is_zip:
        _check_archive_sizes(path)
        # List what the pickle would import before unpickling anything, to name it in the error.
        try:
            unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(path)) - _ALLOWED_NAMES
        except Exception:  # a damaged archive: torch.load below reports it precisely
            unsafe = set()
        if unsafe:
            raise _refuse_code(path, "imports " + ", ".join(sorted(unsafe)))
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            # mmap: tensors stay in the file until read (an optimizer state that is never read costs nothing)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as err:
        message = str(err)
        if "Unsupported global" in message or "GLOBAL" in message or "allowlisted" in message:
            raise _refuse_code(path, _reason(message)) from None
        # The weights-only unpickler stops at the first opcode it does not support (e.g. a plain
        # protocol-4 pickle); parse the opcodes to tell a pickle that imports code from junk.
        unsafe = sorted(name for name in _globals_in_pickle(path) if not _is_safe_global(name))
        if unsafe:
            raise _refuse_code(path, "imports " + ", ".join(unsafe[:5])) from None
        raise ValueError(f"{path} is not a torch checkpoint ({_reason(message)}); "
                         "expected an original IM2WAV `.pth.tar` written by torch.save") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path} is truncated or corrupt and could not be read ({type(err).__name__}: "
                         f"{str(err)[:200]}); download it again and compare its size/checksum") from None
    except Exception as err:  # the weights-only unpickler fails on garbage with any error type
        raise ValueError(f"{path} is not a torch checkpoint or is corrupt ({type(err).__name__}: {str(err)[:200]}); "
                         "expected an original IM2WAV `.pth.tar` written by torch.save") from err


def _kind(state_dict: dict, path: Path) -> str:
    keys = list(state_dict)
    if any(k.startswith(PRIOR_PREFIX) for k in keys):
        return "prior"
    if keys and all(k.startswith(VQVAE_PREFIXES) for k in keys):
        return "vqvae"
    raise ValueError(f"{path} is not an IM2WAV checkpoint: its state dict has neither VQ-VAE keys "
                     f"({', '.join(VQVAE_PREFIXES)}) nor prior keys ({PRIOR_PREFIX}); first keys: {keys[:5]}")


def read_original_checkpoint(path: str | os.PathLike) -> OriginalCheckpoint:
    """Read an original IM2WAV checkpoint, refusing any file that would execute code.

    Args:
        path: an original `.pth.tar` (`{'hps', 'model', 'opt', 'step'}`).

    Returns:
        An `OriginalCheckpoint`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file is a directory, truncated or corrupt, not a torch checkpoint, contains
            pickled code, would inflate far beyond its size, lacks `hps`/`model`, holds NaN/inf
            weights, or holds neither a VQ-VAE nor a prior.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; check the path (original checkpoints are "
                                "`.pth.tar` files such as `vqvae.pth.tar`, `low.pth.tar`, `up.pth.tar`)")
    if not path.is_file():
        raise ValueError(f"{path} is not a file; pass the `.pth.tar` checkpoint file itself")
    mapped = zipfile.is_zipfile(path)  # torch's zip format can be memory-mapped; the legacy pickle cannot
    obj = _load_safely(path, mapped)
    if not isinstance(obj, dict) or "hps" not in obj or "model" not in obj:
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path} is not an original IM2WAV checkpoint: expected a dict with 'hps' and 'model' "
                         f"(as written by the original make_models.save_checkpoint), found {found}")
    hps, state_dict = obj["hps"], obj["model"]
    if not isinstance(hps, dict):
        raise ValueError(f"{path}: 'hps' should be a dict of hyperparameters, got {type(hps).__name__}")
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path}: 'model' should be a state dict of tensors")
    _check_finite(state_dict, path, mapped)
    step = obj.get("step")
    return OriginalCheckpoint(
        hps=hps,
        state_dict=dict(state_dict),
        kind=_kind(state_dict, path),
        step=int(step) if isinstance(step, (int, np.integer)) else None,
        path=str(path),
        mapped=mapped,
    )

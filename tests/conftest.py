"""Shared test fixtures. `../shared/` (golden parity fixtures, IMAGEHEAR, VGGSound clips) is used when
present beside the checkout; tests that need it skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("IM2WAV_SHARED_DIR", REPO_ROOT.parent / "shared"))

# The tests run tiny models token by token: hundreds of small ops where OpenMP threads waiting on
# each other cost far more than they bring (up to 15x slower on a shared 2-core machine).
torch.set_num_threads(1)


def python_env() -> dict[str, str]:
    """The environment of a `python` subprocess that imports this checkout's `im2wav` first."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


def shared_path(*parts: str) -> Path:
    """Path under ../shared/, or skip the calling test with the reason when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: the shared fixtures live in ../shared/ beside the checkout "
                    "(set IM2WAV_SHARED_DIR to point elsewhere)")
    return path


@pytest.fixture
def parity_dir() -> Path:
    return shared_path("parity")

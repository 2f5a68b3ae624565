"""The distribution ships every library package, and nothing generic at the top level."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import REPO_ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")


def _setuptools_table() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_for_installation():
    listed = set(_setuptools_table()["packages"])
    on_disk = {
        "im2wav" + "".join("." + part for part in init.parent.relative_to(REPO_ROOT / "im2wav").parts)
        for init in (REPO_ROOT / "im2wav").rglob("__init__.py")
    }
    on_disk.add("im2wav.pipelines")
    assert on_disk == listed, f"add {sorted(on_disk - listed)} / remove {sorted(listed - on_disk)} in pyproject.toml"


def test_pipelines_install_under_im2wav_and_no_generic_top_level_module():
    assert _setuptools_table()["package-dir"]["im2wav.pipelines"] == "pipelines"
    spec = importlib.util.find_spec("im2wav.pipelines")
    assert spec is not None and spec.origin.endswith("pipelines/__init__.py")
    # ComfyUI owns a top-level `nodes` module: we must never shadow it (nor install `pipelines`).
    for name in ("nodes", "pipelines"):
        if name in sys.modules:  # imported by a test from the repository root, not from site-packages
            continue
        found = importlib.util.find_spec(name)
        assert found is None or str(REPO_ROOT) in str(found.origin), found

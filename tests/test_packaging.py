"""Packaging rules: the distribution ships every library package and nothing generic at the top
level, and installing im2wav (as a library, or as a ComfyUI node folder) never replaces the torch a
user already has."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import REPO_ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli
    import tomli as tomllib

# Packages a CUDA/ROCm/CPU build of which the user chose: a library may state a range, never a pin.
TORCH_FAMILY = {"torch", "torchaudio", "torchvision"}
# torch releases a user's environment (e.g. a ComfyUI) may run today; every one must satisfy our range.
RECENT_TORCH = ["2.6.0", "2.7.1", "2.8.0", "2.9.1", "2.10.0", "2.11.0"]


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _setuptools_table() -> dict:
    return _pyproject()["tool"]["setuptools"]


def _requirements_txt() -> list[str]:
    lines = [ln.split("#")[0].strip() for ln in (REPO_ROOT / "requirements.txt").read_text().splitlines()]
    return [ln for ln in lines if ln]


def _name(requirement: Requirement) -> str:
    return re.sub(r"[-_.]+", "-", requirement.name).lower()


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


def test_torch_is_a_range_that_every_recent_release_satisfies_never_a_pin():
    project = _pyproject()["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    torch_family = [r for r in requirements if _name(r) in TORCH_FAMILY]
    assert any(_name(r) == "torch" for r in torch_family), "the library must state the torch range it works with"
    for requirement in torch_family:
        pinned = [s for s in requirement.specifier if s.operator in ("==", "===", "~=")]
        assert not pinned, f"{requirement} pins {requirement.name}: state a range (>=oldest tested,<next major)"
        for release in RECENT_TORCH:
            assert requirement.specifier.contains(Version(release)), f"{requirement} would replace torch {release}"
    runtime = {_name(Requirement(d)) for d in project["dependencies"]}
    assert "torchaudio" not in runtime, "torchaudio is only needed for evaluation: keep it in an extra"


def test_comfyui_requirements_never_name_torch_and_match_the_library():
    lines = _requirements_txt()
    named = [Requirement(ln) for ln in lines if ln != "."]
    assert not [r for r in named if _name(r) in TORCH_FAMILY], "ComfyUI brings torch: requirements.txt must not name it"
    assert lines[-1] == ".", "the last line installs the im2wav library from the node folder"
    dependencies = [Requirement(d) for d in _pyproject()["project"]["dependencies"]]
    assert {str(r) for r in named} == {str(d) for d in dependencies if _name(d) not in TORCH_FAMILY}


def test_installing_the_comfyui_requirements_keeps_the_installed_torch(tmp_path):
    """pip's own resolver, offline, against this environment: nothing but im2wav would be installed."""
    pytest.importorskip("setuptools", reason="the dry run builds the local project with setuptools")
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation", "--quiet",
         "--report", str(report), "-r", str(REPO_ROOT / "requirements.txt")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    to_install = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert to_install == {"im2wav"}, f"pip would also install {sorted(to_install - {'im2wav'})}"


def test_every_runtime_dependency_is_imported_somewhere():
    """A declared dependency that no module imports is dead weight for every user."""
    imports = {"pillow": "PIL", "huggingface-hub": "huggingface_hub"}
    sources = "\n".join(p.read_text() for folder in ("im2wav", "pipelines", "nodes") for p in (REPO_ROOT / folder).rglob("*.py"))
    for dependency in _pyproject()["project"]["dependencies"]:
        name = _name(Requirement(dependency))
        module = imports.get(name, name.replace("-", "_"))
        assert re.search(rf"^\s*(from|import)\s+{module}\b", sources, re.M), f"{name} is declared but never imported"

"""Checks on a saved pipeline folder, run before anything is loaded or allocated.

`check_pipeline_folder` proves that a folder holds every component of an `Im2WavPipeline`, that each
weights file is a complete safetensors file (read with `safetensors.safe_open`, which validates the
header against the file size), and that each component's `config.json` builds a model whose
parameters are exactly the tensors of its weights, same names and shapes. The model is built on
the meta device for that comparison, so a config edited to ask for a huge context or width is
refused before a single byte of it is allocated, and a weights file missing one tensor is named
here instead of failing later as a meta-tensor error deep inside the loader.

`is_hub_id` tells a Hugging Face Hub repo id from a local path (`huggingface_hub`'s own rules).
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import torch

__all__ = ["COMPONENT_FILES", "check_pipeline_folder", "import_component_modules", "is_hub_id", "resolve_pipeline_folder",
           "safetensors_shapes"]

# Components a pipeline folder must hold, with the file that proves each one was saved.
COMPONENT_FILES = {
    "image_encoder": "config.json",
    "feature_extractor": "preprocessor_config.json",
    "vqvae": "config.json",
    "low_prior": "config.json",
    "up_prior": "config.json",
}


def is_hub_id(name: str) -> bool:
    """True when `name` is a valid Hugging Face Hub repo id (`name` or `namespace/name`)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a safetensors file, read from its header only.

    Raises:
        ValueError: the file is truncated, has trailing bytes, or its header is malformed.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except SafetensorError as err:
        raise ValueError(
            f"{path} is truncated or corrupt: {err}. Re-download or re-save the pipeline"
        ) from err


def _read_json_object(path: Path) -> dict:
    """The JSON object in `path`, or a ValueError naming the file."""
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-save the pipeline") from err
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object; re-save the pipeline")
    return value


def _meta_model(name: str, subfolder: Path) -> torch.nn.Module:
    """The component's model class built from its config on the meta device (no memory used)."""
    config_path = subfolder / "config.json"
    config = _read_json_object(config_path)
    try:
        with torch.device("meta"):
            if name == "image_encoder":
                from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

                return CLIPVisionModelWithProjection(CLIPVisionConfig.from_dict(config))
            if name == "vqvae":
                from im2wav.models.vqvae import HierarchicalVQVAE

                return HierarchicalVQVAE.from_config(config)
            from im2wav.models.prior import Im2WavPrior

            return Im2WavPrior.from_config(config)
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as err:
        raise ValueError(f"{config_path} does not describe a valid {name} ({err}); re-save the pipeline") from err


def _check_weights_match_config(name: str, subfolder: Path, files: list[Path]) -> None:
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        shapes.update(safetensors_shapes(file))
    expected = {key: tuple(value.shape) for key, value in _meta_model(name, subfolder).state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    if missing:
        raise ValueError(
            f"the {name!r} weights in {subfolder} lack {len(missing)} tensor(s) its config.json needs "
            f"(first: {missing[0]!r}); the weights file is incomplete or belongs to another model. "
            "Re-save the pipeline"
        )
    for key, shape in expected.items():
        if shapes[key] != shape:
            raise ValueError(
                f"{subfolder / 'config.json'} does not match its weights: {key!r} is {list(shapes[key])} in the "
                f"weights but the config asks for {list(shape)}. Restore the config.json saved with these weights"
            )


def check_pipeline_folder(folder: str | os.PathLike) -> None:
    """Raise a `ValueError` that names the problem when `folder` is not a complete im2wav pipeline.

    Checks that `model_index.json` exists and names every component, that each component's folder
    holds its config and weights, that no safetensors file is truncated or malformed, and that each
    config matches its weights' tensor names and shapes (compared on the meta device, so nothing
    is allocated).

    Args:
        folder: a folder written by `Im2WavPipeline.save_pretrained`.
    """
    folder = Path(folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ValueError(
            f"{folder} is not an im2wav pipeline folder: model_index.json is missing. Make one with "
            "`pipe.save_pretrained(folder)` or `training_scripts/convert_original_checkpoint.py`"
        )
    index = _read_json_object(index_path)
    for name, config_file in COMPONENT_FILES.items():
        entry = index.get(name)
        if not isinstance(entry, list) or None in entry:
            raise ValueError(f"{index_path} has no {name!r} component; re-save the pipeline with all five components")
        subfolder = folder / name
        if not (subfolder / config_file).is_file():
            raise ValueError(f"the pipeline folder {folder} is missing its {name!r} component ({name}/{config_file})")
        if name == "feature_extractor":
            continue
        safetensors_files = sorted(subfolder.glob("*.safetensors"))
        if not safetensors_files and not list(subfolder.glob("*.bin")):
            raise ValueError(f"the {name!r} component in {subfolder} has no weights file (*.safetensors)")
        if safetensors_files:
            _check_weights_match_config(name, subfolder, safetensors_files)


def resolve_pipeline_folder(name_or_path: str | os.PathLike, kwargs: dict) -> Path:
    """The local folder of a pipeline: `name_or_path` itself, or a Hugging Face Hub repo id downloaded
    with `huggingface_hub.snapshot_download` (the hub options `revision`, `cache_dir`, `token` and
    `local_files_only` are taken out of `kwargs`).

    Raises:
        ValueError: not a folder and not a hub id. FileNotFoundError: the download failed.
    """
    name = str(name_or_path)
    folder = Path(os.path.expanduser(name))
    if folder.is_dir():
        return folder
    if not is_hub_id(name) or folder.exists():
        raise ValueError(f"pipeline folder not found: {name} (pass a folder made by save_pretrained or a hub id)")
    from huggingface_hub import snapshot_download

    hub_kwargs = {k: kwargs.pop(k) for k in ("revision", "cache_dir", "token", "local_files_only") if k in kwargs}
    try:
        return Path(snapshot_download(name, **hub_kwargs))
    except Exception as err:  # noqa: BLE001 - network, auth and missing-repo errors of the hub client
        raise FileNotFoundError(
            f"pipeline folder not found: {name} is not a local folder, and fetching it as a Hugging Face "
            f"Hub repo id failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            "Check the path, or the repo id and your connection"
        ) from err


def import_component_modules(folder: Path) -> None:
    """Import the im2wav modules `model_index.json` names (diffusers resolves classes from sys.modules).

    Only modules of this package are imported.
    """
    index = _read_json_object(folder / "model_index.json")
    for entry in index.values():
        if isinstance(entry, list) and entry and isinstance(entry[0], str) and entry[0].startswith("im2wav."):
            importlib.import_module(entry[0])

"""The few places where the im2wav nodes touch ComfyUI itself.

Every ComfyUI import happens inside a function: importing ``nodes`` (and so ``im2wav``'s test
suite) never needs ComfyUI, and tests install stand-ins for ``folder_paths`` and ``comfy``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from .types import MAX_SEED

MODEL_FOLDER = "im2wav"
PIPELINE_MARKER = "model_index.json"


def register_model_folder() -> None:
    """Register ``<ComfyUI models dir>/im2wav`` as the model folder named ``im2wav``.

    Idempotent; paths added through ``extra_model_paths.yaml`` under the key ``im2wav`` are kept.
    """
    import folder_paths

    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))


def list_pipelines() -> list[str]:
    """Names of the pipeline folders below the ``im2wav`` model folders (e.g. ``"im2wav-vggsound"``).

    A pipeline folder is one that holds a ``model_index.json``; the name is its path relative to
    the model folder, with forward slashes.
    """
    import folder_paths

    register_model_folder()
    names = {
        os.path.dirname(name).replace(os.sep, "/")
        for name in folder_paths.get_filename_list(MODEL_FOLDER)
        if os.path.basename(name) == PIPELINE_MARKER
    }
    return sorted(name for name in names if name)


def pipeline_path(name: str) -> str:
    """The full path of the pipeline folder ``name`` (one of :func:`list_pipelines`)."""
    import folder_paths

    register_model_folder()
    marker = folder_paths.get_full_path(MODEL_FOLDER, f"{name}/{PIPELINE_MARKER}")
    if marker is None:
        folders = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
        raise ValueError(
            f"no im2wav pipeline named {name!r}: put a pipeline folder (one with {PIPELINE_MARKER}) "
            f"at <models>/{MODEL_FOLDER}/{name}/; searched {folders}"
        )
    return os.path.dirname(marker)


def torch_device(name: str) -> torch.device:
    """``"auto"`` is ComfyUI's compute device (``--cpu`` makes it the CPU); anything else is taken as is."""
    if name == "auto":
        import comfy.model_management

        return comfy.model_management.get_torch_device()
    return torch.device(name)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator seeded with ``seed`` on ``device``; ComfyUI seeds span ``[0, 2**64 - 1]``, as does torch."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be between 0 and {MAX_SEED} (2**64 - 1), got {seed}")
    return torch.Generator(device=device).manual_seed(seed)


def progress_callback() -> Callable[[int, int], None]:
    """A sampler callback ``callback(step, total)`` that drives ComfyUI's progress bar and interrupt.

    The sampler calls it after every chunk of tokens; ``throw_exception_if_processing_interrupted``
    raises ComfyUI's interrupt exception there when the user pressed Cancel (or posted ``/interrupt``).
    """
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(1)

    def callback(step: int, total: int) -> None:
        bar.update_absolute(step, total)
        comfy.model_management.throw_exception_if_processing_interrupted()

    return callback


def progress_callback_on_step_end() -> Callable[..., None]:
    """The same as :func:`progress_callback` for ``Im2WavPipeline.__call__``'s
    ``callback_on_step_end(pipe, step, total_steps, callback_kwargs)``."""
    callback = progress_callback()

    def callback_on_step_end(pipe, step: int, total: int, callback_kwargs: dict) -> None:
        callback(step, total)

    return callback_on_step_end

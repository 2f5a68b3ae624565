"""The few places where the im2wav nodes touch ComfyUI itself.

Every ComfyUI import happens inside a function: importing ``nodes`` (and so ``im2wav``'s test
suite) never needs ComfyUI, and tests install stand-ins for ``folder_paths`` and ``comfy``.
"""

from __future__ import annotations

import logging
import os
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path

import torch

from .types import MAX_SEED, Im2WavModel

logger = logging.getLogger(__name__)

MODEL_FOLDER = "im2wav"
PIPELINE_MARKER = "model_index.json"
# The small demo model shipped in this folder (assets/default_model): always offered by the loader,
# so the example workflows run before any model is installed.
BUNDLED_MODEL = "im2wav-default (bundled demo)"
BUNDLED_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "default_model"
# The frame rate the IM2WAV models were trained on: video files are sampled at it.
MODEL_FPS = 30.0


def register_model_folder() -> None:
    """Register ``<ComfyUI models dir>/im2wav`` as the model folder named ``im2wav``.

    Idempotent; paths added through ``extra_model_paths.yaml`` under the key ``im2wav`` are kept.
    """
    import folder_paths

    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))


def list_pipelines() -> list[str]:
    """The bundled demo model, then the pipeline folders below the ``im2wav`` model folders.

    A pipeline folder is one that holds a ``model_index.json``; its name is its path relative to
    the model folder, with forward slashes (e.g. ``"im2wav-vggsound"``).
    """
    import folder_paths

    register_model_folder()
    names = {
        os.path.dirname(name).replace(os.sep, "/")
        for name in folder_paths.get_filename_list(MODEL_FOLDER)
        if os.path.basename(name) == PIPELINE_MARKER
    }
    bundled = [BUNDLED_MODEL] if (BUNDLED_MODEL_PATH / PIPELINE_MARKER).is_file() else []
    return bundled + sorted(name for name in names if name and name != BUNDLED_MODEL)


def pipeline_path(name: str) -> str:
    """The full path of the pipeline folder ``name`` (one of :func:`list_pipelines`)."""
    if name == BUNDLED_MODEL:
        if not (BUNDLED_MODEL_PATH / PIPELINE_MARKER).is_file():
            raise ValueError(f"the bundled model is missing from {BUNDLED_MODEL_PATH}; reinstall the im2wav node "
                             "folder or pick another model")
        return str(BUNDLED_MODEL_PATH)
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


class ComponentsModule(torch.nn.Module):
    """The pipeline's four models as one ``nn.Module`` for ComfyUI's ``ModelPatcher``.

    The patcher moves and measures an ``nn.Module`` and records its device in a ``device``
    attribute, which diffusers/transformers models expose read-only; this holder has none. Moving
    it moves the pipeline's own components (``Module.to`` changes parameters in place).
    """

    def __init__(self, pipeline):
        super().__init__()
        self.image_encoder = pipeline.image_encoder
        self.low_prior = pipeline.low_prior
        self.up_prior = pipeline.up_prior
        self.vqvae = pipeline.vqvae


def manage_model(pipeline, name: str, device: str) -> Im2WavModel:
    """Put a loaded pipeline under ComfyUI's model management.

    Args:
        pipeline: an ``Im2WavPipeline`` on the CPU.
        name: its name in the loader.
        device: ``"auto"`` (ComfyUI's compute device, the CPU under ``--cpu``) or ``"cpu"``.

    Returns:
        The ``IM2WAV_MODEL`` value; the weights move to the device only when a node needs them
        (:func:`load_model`), and back to ComfyUI's offload device when ComfyUI frees memory.
    """
    import comfy.model_management
    import comfy.model_patcher

    offload_device = comfy.model_management.unet_offload_device()
    pipeline.to(offload_device)
    pipeline.set_progress_bar_config(disable=True)  # ComfyUI's own progress bar is driven instead
    patcher = comfy.model_patcher.ModelPatcher(ComponentsModule(pipeline), load_device=torch_device(device),
                                               offload_device=offload_device)
    weakref.finalize(pipeline, logger.info, "im2wav: released the model %s", name)
    return Im2WavModel(pipeline=pipeline, patcher=patcher, name=name)


def load_model(model: Im2WavModel):
    """Have ComfyUI place the model on its device (freeing other models if memory is short).

    Returns:
        The pipeline, ready to run on ``model.load_device``.
    """
    import comfy.model_management

    # force_full_load: the patcher's partial (lowvram) loading only splits ComfyUI's own layer
    # types; the im2wav models are plain torch modules and must sit on one device as a whole.
    comfy.model_management.load_models_gpu([model.patcher], force_full_load=True)
    return model.pipeline


def video_frames(video) -> tuple[object, float, float]:
    """What to condition on for ComfyUI's ``VIDEO``: ``(source, fps, duration in seconds)``.

    A video loaded from a file is passed on as its path, sampled at the models' 30 fps by the
    library as it decodes (so a long or large video is never held in memory as float frames);
    a video made from frames (Create Video) gives its ``[F, H, W, C]`` IMAGE frames at their rate.
    """
    source = video.get_stream_source()
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source), MODEL_FPS, float(video.get_duration())
    components = video.get_components()
    fps = float(components.frame_rate)
    return components.images, fps, components.images.shape[0] / fps


def video_with_audio(video, audio: dict):
    """ComfyUI's ``VIDEO``: ``video``'s pictures with ``audio`` (AUDIO) as their only sound.

    A file-backed video is remuxed (its video stream copied, not re-encoded) into ComfyUI's temp
    folder; a video made from frames gets the audio in its components.
    """
    from comfy_api.input_impl import VideoFromComponents, VideoFromFile
    from comfy_api.util import VideoComponents

    source = video.get_stream_source()
    if isinstance(source, (str, os.PathLike)):
        import folder_paths

        from im2wav.audio_files import mux_audio_into_video, muxed_video_suffix

        out = Path(folder_paths.get_temp_directory()) / f"im2wav_{uuid.uuid4().hex}{muxed_video_suffix(source)}"
        out.parent.mkdir(parents=True, exist_ok=True)
        mux_audio_into_video(source, audio["waveform"][0], audio["sample_rate"], out)
        return VideoFromFile(str(out))
    components = video.get_components()
    return VideoFromComponents(VideoComponents(images=components.images, frame_rate=components.frame_rate,
                                               audio=audio))


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

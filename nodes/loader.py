"""The model loader node: a pipeline folder under ``ComfyUI/models/im2wav/`` (or the bundled demo) -> ``IM2WAV_MODEL``."""

from __future__ import annotations

import logging

import torch

from . import comfy_hooks
from .types import CATEGORY, MODEL

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Im2WavModelLoader:
    """Load an :class:`~im2wav.Im2WavPipeline` from a folder in ``ComfyUI/models/im2wav/``, under ComfyUI's memory management."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (comfy_hooks.list_pipelines(), {
                    "tooltip": "A pipeline folder (one holding model_index.json) in ComfyUI/models/im2wav/. "
                               f"'{comfy_hooks.BUNDLED_MODEL}' is the tiny model shipped with the node pack: it "
                               "knows six picture classes (shapes and patterns) and their sounds, enough to try "
                               "the graphs.",
                }),
                "device": (["auto", "cpu"], {
                    "default": "auto",
                    "tooltip": "auto: ComfyUI's compute device (the CPU when ComfyUI runs with --cpu). ComfyUI "
                               "moves the model there when a node needs it and offloads it when memory is short.",
                }),
                "dtype": (list(DTYPES), {
                    "default": "float32",
                    "tooltip": "Weights' precision; float16/bfloat16 halve the memory on a GPU.",
                }),
            }
        }

    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("im2wav_model",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Loads an IM2WAV model (CLIP image encoder, LOW and UP priors, VQ-VAE decoder) from "
                   "ComfyUI/models/im2wav/. ComfyUI manages its memory like that of its own models.")

    def load(self, model: str, device: str, dtype: str):
        """Load the pipeline folder ``model`` in ``dtype`` and hand it to ComfyUI's model management."""
        from im2wav import Im2WavPipeline
        from im2wav.quiet_loading import dtype_argument, quiet_loading

        path = comfy_hooks.pipeline_path(model)
        with quiet_loading():
            pipe = Im2WavPipeline.from_pretrained(path, **dtype_argument(DTYPES[dtype]))
        logger.info("im2wav: loaded the model %s (%s)", model, path)
        return (comfy_hooks.manage_model(pipe, model, device),)

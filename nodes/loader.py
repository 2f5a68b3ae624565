"""The model loader node: a pipeline folder under ``ComfyUI/models/im2wav/`` -> ``IM2WAV_MODEL``."""

from __future__ import annotations

import logging

import torch

from . import comfy_hooks
from .types import CATEGORY, MODEL

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Im2WavModelLoader:
    """Load an :class:`~im2wav.Im2WavPipeline` from a folder in ``ComfyUI/models/im2wav/``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (comfy_hooks.list_pipelines(), {
                    "tooltip": "A pipeline folder (one holding model_index.json) in ComfyUI/models/im2wav/.",
                }),
                "device": (["auto", "cpu"], {
                    "default": "auto",
                    "tooltip": "auto: ComfyUI's compute device (the CPU when ComfyUI runs with --cpu).",
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
    DESCRIPTION = "Loads an IM2WAV pipeline (CLIP image encoder, LOW and UP priors, VQ-VAE decoder)."

    def load(self, model: str, device: str, dtype: str):
        """Load the pipeline folder ``model`` and move it to ``device`` in ``dtype``."""
        from im2wav import Im2WavPipeline

        path = comfy_hooks.pipeline_path(model)
        logger.info("loading im2wav pipeline from %s", path)
        pipe = Im2WavPipeline.from_pretrained(path)
        return (pipe.to(comfy_hooks.torch_device(device), DTYPES[dtype]),)

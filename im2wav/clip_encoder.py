"""The CLIP image encoder IM2WAV conditions on: loading it, embedding images, and a tiny random one.

IM2WAV conditions on OpenAI CLIP ViT-B/32 image embeddings (512-d, L2-normalised), one per frame.
In transformers that is `CLIPVisionModelWithProjection` (`image_embeds`) with its `CLIPImageProcessor`.
The pipeline and the dataset preparation scripts both embed through `embed_images`, so training
and inference see identical features.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import torch
from PIL import Image
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

try:  # transformers >= 5 splits the processor into backends; the PIL one needs no torchvision and
    # preprocesses as OpenAI CLIP did (PIL bicubic resize, centre crop).
    from transformers import CLIPImageProcessorPil as CLIPImageProcessor
except ImportError:  # transformers 4.x: CLIPImageProcessor is the PIL implementation
    from transformers import CLIPImageProcessor

__all__ = ["CLIP_MODEL_ID", "embed_images", "load_clip_image_encoder", "name_in_transformers", "name_pil_processor",
           "tiny_clip_vision"]


def name_pil_processor() -> None:
    """Let `transformers.CLIPImageProcessorPil` name the PIL processor under transformers 4.x too.

    Pipelines saved under transformers 5 record their processor as `CLIPImageProcessorPil` in
    model_index.json; under 4.x that class is `CLIPImageProcessor`. Called before loading a pipeline.
    """
    name_in_transformers("CLIPImageProcessorPil", CLIPImageProcessor)


def name_in_transformers(name: str, obj: object) -> None:
    """Make `transformers.<name>` resolve to `obj` (if transformers has no such name) for diffusers' loader.

    The first import of `transformers.processing_utils` (4.x and 5.x alike) runs the package's
    `__init__` again, which puts a new module into `sys.modules["transformers"]` and so drops any
    name given to the old one. diffusers triggers that import while loading whichever transformers
    component comes first, an order that follows Python's string hashing (`PYTHONHASHSEED`). So the
    import happens here, first, and the name goes onto the module that results.

    Args:
        name: the attribute name, e.g. a class name recorded in a model_index.json.
        obj: what it stands for.
    """
    importlib.import_module("transformers.processing_utils")
    transformers = sys.modules["transformers"]
    if not hasattr(transformers, name):
        setattr(transformers, name, obj)


CLIP_MODEL_ID = "openai/clip-vit-base-patch32"


def load_clip_image_encoder(
    path_or_id: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[CLIPVisionModelWithProjection, CLIPImageProcessor]:
    """Load a CLIP image encoder and its image processor, in eval mode.

    A full CLIP checkpoint (text + vision, e.g. `openai/clip-vit-base-patch32`) works: only its
    vision tower and projection are loaded.

    Args:
        path_or_id: a local folder (config.json, weights, preprocessor_config.json) or a hub id.
        device: where to put the model (default: CPU).
        dtype: the model's dtype (default: float32).

    Raises:
        ValueError: nothing loadable was found at `path_or_id`.
    """
    source = str(path_or_id)
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(source, torch_dtype=dtype or torch.float32)
        processor = CLIPImageProcessor.from_pretrained(source)
    except (OSError, ValueError) as err:
        hint = (
            "the folder exists but is not a saved CLIP model"
            if os.path.isdir(source)
            else "no such local folder, and it could not be fetched from the Hugging Face Hub"
        )
        raise ValueError(
            f"cannot load a CLIP image encoder from {source!r}: {hint}. Pass a folder holding a CLIP "
            f"ViT-B/32 (config.json, model.safetensors, preprocessor_config.json) or a hub id such as "
            f"{CLIP_MODEL_ID!r}. ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err
    model.eval()
    if device is not None:
        model.to(device)
    return model, processor


@torch.no_grad()
def embed_images(
    model: CLIPVisionModelWithProjection,
    processor: CLIPImageProcessor,
    images: Sequence[Image.Image],
    batch_size: int = 32,
) -> torch.Tensor:
    """CLIP image embeddings, L2-normalised, one per image.

    Each image goes through the processor on its own terms (shorter side resized, centre crop), so
    images of different sizes can be mixed freely.

    Args:
        model: a `CLIPVisionModelWithProjection`.
        processor: its `CLIPImageProcessor`.
        images: RGB Pillow images.
        batch_size: images per forward pass (bounds memory on long videos).

    Returns:
        `[N, D]` float32 on the model's device, each row of unit length.
    """
    if len(images) == 0:
        raise ValueError("embed_images needs at least one image")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    param = next(model.parameters())
    chunks = []
    for start in range(0, len(images), batch_size):
        pixels = processor(images=list(images[start : start + batch_size]), return_tensors="pt").pixel_values
        embeds = model(pixel_values=pixels.to(param.device, param.dtype)).image_embeds.float()  # [N, D]
        chunks.append(torch.nn.functional.normalize(embeds, dim=-1))
    return torch.cat(chunks)


def tiny_clip_vision(
    seed: int = 0, projection_dim: int = 512
) -> tuple[CLIPVisionModelWithProjection, CLIPImageProcessor]:
    """A tiny randomly initialised CLIP vision model and a matching processor, built without downloads.

    For tests and the bundled synthetic model: 2 layers of width 32 on 32 x 32 images, projecting
    to `projection_dim` (512, as ViT-B/32, so it fits the IM2WAV priors). Deterministic in `seed`;
    the global torch RNG is left as it was.

    Args:
        seed: the initialisation seed.
        projection_dim: the embedding size D.
    """
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=projection_dim,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPVisionModelWithProjection(config)
    model.eval()
    processor = CLIPImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
    )
    return model, processor

"""Turning every accepted image input into RGB frame sequences: the pipeline's image processor.

The pipeline accepts a Pillow image, an image or video path, a list of frames, a batch of those,
and numpy/torch arrays `[H, W, C]`, `[F, H, W, C]`, `[B, F, H, W, C]` (uint8 0..255 or float 0..1).
`prepare_frames` turns any of them into `B` lists of Pillow RGB frames, with checks that say how to
fix a wrong input; the pipeline then embeds the frames with CLIP.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from PIL import Image

from im2wav.media import frame_count, is_video_file, load_frames, load_image

__all__ = ["ImageInput", "array_to_images", "check_fps", "check_num_waveforms", "prepare_frames"]

ImageInput = Any  # see `prepare_frames` for the accepted forms


def _is_path(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


def _is_frame(item: Any) -> bool:
    """One image: a Pillow image, an image file path, or an `[H, W, C]` array."""
    return (
        isinstance(item, Image.Image)
        or _is_path(item)
        or (isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim == 3)
    )


def check_fps(fps: float) -> None:
    """Raise a `ValueError` unless `fps` is a finite positive frame rate."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number of frames per second, got {fps}")


def check_num_waveforms(num_waveforms_per_prompt: int) -> None:
    """Raise a `ValueError` unless `num_waveforms_per_prompt` is an int >= 1."""
    if not isinstance(num_waveforms_per_prompt, int) or num_waveforms_per_prompt < 1:
        raise ValueError(f"num_waveforms_per_prompt must be an int >= 1, got {num_waveforms_per_prompt}")


def array_to_images(array: np.ndarray | torch.Tensor) -> list[Image.Image]:
    """`[H, W, C]` or `[F, H, W, C]` uint8 / float-in-0..1 array -> RGB Pillow images (checked).

    Args:
        array: numpy array or torch tensor, channels last.
    """
    if isinstance(array, torch.Tensor):
        if array.is_complex():
            raise TypeError("image arrays must be real, got a complex tensor")
        is_float = array.is_floating_point()
        array = array.detach().to("cpu", torch.float32 if is_float else array.dtype).numpy()
    array = np.asarray(array)
    frames = array[None] if array.ndim == 3 else array  # [F, H, W, C]
    if frames.ndim != 4:
        raise ValueError(f"image arrays must be [H, W, C], [F, H, W, C] or [B, F, H, W, C], got shape {array.shape}")
    if frames.shape[-1] != 3:
        hint = " (it looks channels-first: move the channel axis last)" if frames.shape[1] == 3 else ""
        raise ValueError(f"image arrays must have 3 (RGB) channels last, got shape {array.shape}{hint}")
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"image array has an empty dimension: shape {array.shape}")
    if frames.dtype == np.uint8:
        return [Image.fromarray(frame, mode="RGB") for frame in frames]
    if not np.issubdtype(frames.dtype, np.floating):
        raise TypeError(f"image arrays must be uint8 (0..255) or float (0..1), got dtype {frames.dtype}")
    if not np.isfinite(frames).all():
        raise ValueError("the image array contains NaN or inf values")
    low, high = float(frames.min()), float(frames.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"float image arrays must lie in 0..1, got values in {low:.4g}..{high:.4g}; "
            "divide 0..255 data by 255 or pass uint8"
        )
    pixels = np.rint(frames.astype(np.float64) * 255.0).astype(np.uint8)
    return [Image.fromarray(frame, mode="RGB") for frame in pixels]


def _one_item(item: Any, fps: float, max_seconds: float | None) -> list[Image.Image]:
    """One batch element -> its frames."""
    if isinstance(item, Image.Image):
        return [load_image(item)]
    if _is_path(item):
        return load_frames(item, fps=fps, max_seconds=max_seconds)
    if isinstance(item, (np.ndarray, torch.Tensor)):
        if item.ndim not in (3, 4):
            raise ValueError(
                f"a batch element array must be [H, W, C] or [F, H, W, C], got shape {tuple(item.shape)}"
            )
        return array_to_images(item)
    if isinstance(item, (list, tuple)):
        if len(item) == 0:
            raise ValueError("got an empty frame list; a frame sequence needs at least one image")
        frames = []
        for frame in item:
            if not _is_frame(frame):
                raise TypeError(
                    "a frame sequence must hold Pillow images, image paths or [H, W, C] arrays, "
                    f"got {type(frame).__name__}"
                )
            if _is_path(frame) and is_video_file(frame):
                raise ValueError(f"{frame} is a video; pass videos as batch elements, not inside a frame list")
            frames.extend(
                array_to_images(frame) if isinstance(frame, (np.ndarray, torch.Tensor)) else [load_image(frame)]
            )
        return frames
    raise TypeError(
        f"unsupported image input {type(item).__name__}: pass a PIL image, a list of them (frames), "
        "a list of such lists (batch), a path, or a uint8/float array [H, W, C], [F, H, W, C] or "
        "[B, F, H, W, C]"
    )


def _split_batch(images: ImageInput) -> list[Any]:
    """Split any accepted input into its batch elements."""
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 5:
        return list(images)  # [B, F, H, W, C]
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("got an empty image list; pass at least one image")
        if all(
            isinstance(x, Image.Image) or (isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 3) for x in images
        ):
            return [list(images)]  # one frame sequence
        if all(
            _is_path(x) or isinstance(x, (list, tuple)) or (isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 4)
            for x in images
        ):
            return list(images)  # a batch
        raise TypeError(
            "a list must hold either frames (PIL images / [H, W, C] arrays: one sequence) or batch elements "
            "(paths, frame lists, [F, H, W, C] arrays), not a mix"
        )
    return [images]


def prepare_frames(images: ImageInput, fps: float = 30.0, max_seconds: float | None = None) -> list[list[Image.Image]]:
    """Turn any accepted image input into a batch of RGB frame sequences.

    Args:
        images: one of
            - a PIL image, an image file path, or an `[H, W, C]` array: one image;
            - a list of PIL images / `[H, W, C]` arrays, or an `[F, H, W, C]` array: one frame
              sequence (a video at `fps`);
            - a video file path: its frames sampled at `fps`;
            - a list of paths / frame lists / `[F, H, W, C]` arrays, or a `[B, F, H, W, C]` array: a batch.
            Arrays are uint8 (0..255) or float (0..1), numpy or torch, channels last.
        fps: frame rate at which video files are sampled.
        max_seconds: when given, each sequence is cut to its first `max(1, int(max_seconds * fps))` frames.

    Returns:
        `B` lists of `F_b` Pillow RGB images.
    """
    check_fps(fps)
    batch = [_one_item(item, fps, max_seconds) for item in _split_batch(images)]
    if max_seconds is not None:
        keep = frame_count(max_seconds, fps)
        batch = [frames[:keep] for frames in batch]
    return batch

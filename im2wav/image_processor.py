"""Turning every accepted image input into RGB frame sequences: the pipeline's image processor.

The pipeline takes single pictures as `images` (Pillow images, image or video files, `[H, W, C]`
arrays, lists of them, `[B, H, W, C]` arrays) and frame sequences as `video` (frame lists,
`[F, H, W, C]` / `[B, F, H, W, C]` arrays, video files): the argument says what an input means,
not its Python type. `prepare_frames` turns either into `B` lists of Pillow RGB frames, with checks
that say how to fix a wrong input; the pipeline then embeds the frames with CLIP.

Memory follows the work, not the input: only the frames the requested length needs are converted,
each frame is converted on its own (uint8 until CLIP's processor; no float64 copy of a whole video)
and shrunk to the image encoder's input size as it comes (`short_side`), which gives CLIP exactly
the pixels it would have made from the full-size frame.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image

from im2wav.media import MAX_IMAGE_PIXELS, check_fps, frame_count, is_video_file, load_frames, load_image, resize_short_side

__all__ = [
    "check_image_embeds",
    "MAX_WAVEFORMS",
    "ImageInput",
    "array_to_images",
    "check_fps",
    "check_num_waveforms",
    "encoder_short_side",
    "prepare_frames",
]

# Waveforms one call may generate (batch x num_waveforms_per_prompt). Each row carries its own
# key/value caches through both priors; more rows than this do not fit a GPU at paper size anyway.
MAX_WAVEFORMS = 64

ImageInput = Any  # see `prepare_frames` for the accepted forms


def _is_path(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


def _is_image_array(item: Any) -> bool:
    return isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim == 3


def _is_frame(item: Any) -> bool:
    """One image: a Pillow image, an image file path, or an `[H, W, C]` array."""
    return isinstance(item, Image.Image) or _is_path(item) or _is_image_array(item)


def check_num_waveforms(num_waveforms_per_prompt: int, batch_size: int = 1) -> None:
    """Raise a `ValueError` unless `num_waveforms_per_prompt` is an int >= 1 and the call makes at
    most `MAX_WAVEFORMS` waveforms.

    Args:
        num_waveforms_per_prompt: waveforms per batch element.
        batch_size: batch elements in the call.
    """
    if isinstance(num_waveforms_per_prompt, bool) or not isinstance(num_waveforms_per_prompt, int):
        raise ValueError(f"num_waveforms_per_prompt must be an int >= 1, got {num_waveforms_per_prompt!r}")
    if num_waveforms_per_prompt < 1:
        raise ValueError(f"num_waveforms_per_prompt must be an int >= 1, got {num_waveforms_per_prompt}")
    if num_waveforms_per_prompt * batch_size > MAX_WAVEFORMS:
        raise ValueError(
            f"{batch_size} input(s) x num_waveforms_per_prompt={num_waveforms_per_prompt} asks for "
            f"{num_waveforms_per_prompt * batch_size} waveforms in one call, over the limit of {MAX_WAVEFORMS}; "
            "split the work into several calls"
        )


def encoder_short_side(processor: Any) -> int | None:
    """The shorter side, in pixels, the image processor resizes every image to (224 for CLIP), or None.

    Args:
        processor: a transformers image processor (`CLIPImageProcessor`).
    """
    size = getattr(processor, "size", None)
    short = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
    if not getattr(processor, "do_resize", True) or not isinstance(short, int) or short < 1:
        return None
    return short


def _check_array(array: np.ndarray | torch.Tensor) -> None:
    """Shape and dtype of an `[H, W, C]` or `[F, H, W, C]` image array (values are checked per frame)."""
    if isinstance(array, torch.Tensor) and array.is_complex():
        raise TypeError("image arrays must be real, got a complex tensor")
    shape = tuple(array.shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"image arrays must be [H, W, C], [F, H, W, C] or [B, F, H, W, C], got shape {shape}")
    frame_shape = shape[-3:]
    if frame_shape[-1] != 3:
        hint = " (it looks channels-first: move the channel axis last)" if frame_shape[0] == 3 else ""
        raise ValueError(f"image arrays must have 3 (RGB) channels last, got shape {shape}{hint}")
    if 0 in shape:
        raise ValueError(f"image array has an empty dimension: shape {shape}")
    if frame_shape[0] * frame_shape[1] > MAX_IMAGE_PIXELS:
        raise ValueError(f"image array frames are {frame_shape[1]} x {frame_shape[0]} pixels, over the "
                         f"{MAX_IMAGE_PIXELS // 1_000_000} MP limit; shrink them first")
    if isinstance(array, torch.Tensor):
        is_float, is_uint8 = array.is_floating_point(), array.dtype == torch.uint8
    else:
        is_float, is_uint8 = np.issubdtype(array.dtype, np.floating), array.dtype == np.uint8
    if not (is_float or is_uint8):
        raise TypeError(f"image arrays must be uint8 (0..255) or float (0..1), got dtype {array.dtype}")


def _frame_to_uint8(frame: np.ndarray | torch.Tensor) -> np.ndarray:
    """One `[H, W, 3]` frame, uint8 or float in 0..1 (checked), -> uint8 numpy `[H, W, 3]`."""
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().to("cpu")
        # float16/bfloat16/float64 -> float32 (numpy has no bfloat16); uint8 and float32 are not copied
        frame = (frame if frame.dtype == torch.uint8 else frame.float()).numpy()
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame
    if not np.isfinite(frame).all():
        raise ValueError("the image array contains NaN or inf values")
    low, high = float(frame.min()), float(frame.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"float image arrays must lie in 0..1, got values in {low:.4g}..{high:.4g}; "
            "divide 0..255 data by 255 or pass uint8"
        )
    return np.rint(frame * np.float32(255.0)).astype(np.uint8)


def array_to_images(
    array: np.ndarray | torch.Tensor, short_side: int | None = None, max_frames: int | None = None
) -> list[Image.Image]:
    """`[H, W, C]` or `[F, H, W, C]` uint8 / float-in-0..1 array -> RGB Pillow images (checked).

    Frames are converted one at a time, so the extra memory is one frame, not a copy of the array.

    Args:
        array: numpy array or torch tensor, channels last (a ComfyUI IMAGE is `[F, H, W, C]` float).
        short_side: shrink larger frames so that their shorter side has this many pixels (None: keep).
        max_frames: convert only the first `max_frames` frames (None: all).
    """
    _check_array(array)
    frames = array[None] if array.ndim == 3 else array  # [F, H, W, C]
    if max_frames is not None:
        frames = frames[:max_frames]
    return [
        resize_short_side(Image.fromarray(np.ascontiguousarray(_frame_to_uint8(frame)), mode="RGB"), short_side)
        for frame in frames
    ]


def _one_item(
    item: Any, fps: float, max_seconds: float | None, keep: int | None, short_side: int | None
) -> list[Image.Image]:
    """One batch element -> its first `keep` frames (all when None), shrunk to `short_side`."""
    if isinstance(item, Image.Image):
        return [load_image(item, short_side=short_side)]
    if _is_path(item):
        return load_frames(item, fps=fps, max_seconds=max_seconds, short_side=short_side)
    if isinstance(item, (np.ndarray, torch.Tensor)):
        if item.ndim not in (3, 4):
            raise ValueError(
                f"a batch element array must be [H, W, C] or [F, H, W, C], got shape {tuple(item.shape)}"
            )
        return array_to_images(item, short_side=short_side, max_frames=keep)
    if isinstance(item, (list, tuple)):
        if len(item) == 0:
            raise ValueError("got an empty frame list; a frame sequence needs at least one image")
        frames = []
        for frame in item[:keep]:
            if not _is_frame(frame):
                raise TypeError(
                    "a frame sequence must hold Pillow images, image paths or [H, W, C] arrays, "
                    f"got {type(frame).__name__}"
                )
            if _is_path(frame) and is_video_file(frame):
                raise ValueError(f"{frame} is a video; pass videos as batch elements, not inside a frame list")
            frames.extend(
                array_to_images(frame, short_side=short_side)
                if isinstance(frame, (np.ndarray, torch.Tensor))
                else [load_image(frame, short_side=short_side)]
            )
        return frames
    raise TypeError(
        f"unsupported image input {type(item).__name__}: pass a PIL image, a list of them (frames), "
        "a list of such lists (batch), a path, or a uint8/float array [H, W, C], [F, H, W, C] or "
        "[B, F, H, W, C]"
    )


def _split_images(images: ImageInput) -> list[Any]:
    """`images`: every element is one picture (or one video file); never a frame sequence."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        if images.ndim == 3:
            return [images]  # [H, W, C]
        if images.ndim == 4:
            return list(images)  # [B, H, W, C]: B pictures
        raise ValueError(f"an `images` array is [H, W, C] or [B, H, W, C] (one picture per row), got shape "
                         f"{tuple(images.shape)}; pass frame sequences as `video=` ([F, H, W, C] or [B, F, H, W, C])")
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("got an empty image list; pass at least one image")
        for item in images:
            if not _is_frame(item):
                kind = f"an array of shape {tuple(item.shape)}" if hasattr(item, "shape") else type(item).__name__
                raise TypeError(f"each element of `images` is one picture (a Pillow image, an image or video file, "
                                f"an [H, W, C] array), got {kind}; pass frame sequences as `video=`")
        return list(images)
    return [images]


def _split_videos(video: ImageInput) -> list[Any]:
    """`video`: one frame sequence, or a batch of them."""
    if isinstance(video, (np.ndarray, torch.Tensor)):
        if video.ndim == 4:
            return [video]  # [F, H, W, C]
        if video.ndim == 5:
            return list(video)  # [B, F, H, W, C]
        raise ValueError(f"a `video` array is [F, H, W, C] or [B, F, H, W, C], got shape {tuple(video.shape)}; "
                         "pass single pictures as `images=`")
    if _is_path(video):
        return [video]  # a video file
    if isinstance(video, (list, tuple)):
        if len(video) == 0:
            raise ValueError("got an empty `video` list; a frame sequence needs at least one frame")
        if all(_is_frame(x) for x in video):
            return [list(video)]  # one sequence of frames
        if all(isinstance(x, (list, tuple)) or (isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 4)
               for x in video):
            return list(video)  # a batch of sequences
        raise TypeError("`video` is one frame sequence (a list of Pillow images / image files / [H, W, C] arrays, "
                        "or an [F, H, W, C] array) or a list of such sequences, not a mix")
    raise TypeError(f"unsupported `video` input {type(video).__name__}: pass a list of frames, an [F, H, W, C] "
                    "array, a video file, or a batch of those")


def prepare_frames(
    images: ImageInput = None,
    fps: float = 30.0,
    max_seconds: float | None = None,
    short_side: int | None = None,
    video: ImageInput = None,
) -> list[list[Image.Image]]:
    """Turn the pipeline's `images` or `video` argument into a batch of RGB frame sequences.

    What an input means depends on the argument it comes in, never on its Python type:

    - `images`: single pictures, one sound each: a Pillow image, an image file, an `[H, W, C]`
      array, a list of those, or a `[B, H, W, C]` array. A video file here is one item too (its
      frames taken at `fps`).
    - `video`: frame sequences, one sound each: a list of frames (Pillow images, image files,
      `[H, W, C]` arrays) or an `[F, H, W, C]` array is one video at `fps`; a list of such
      sequences or a `[B, F, H, W, C]` array is a batch; a video file path is one video.

    Arrays are uint8 (0..255) or float (0..1), numpy or torch, channels last.

    Args:
        images: single pictures (see above); exactly one of `images` and `video` is given.
        fps: frame rate of frame sequences and at which video files are sampled.
        max_seconds: when given, each sequence is cut to its first `max(1, int(max_seconds * fps))` frames;
            frames past that are never decoded or converted.
        short_side: shrink larger frames so that their shorter side has this many pixels (the image
            encoder's input size, `encoder_short_side(processor)`); None keeps every frame's size.
        video: frame sequences (see above).

    Returns:
        `B` lists of `F_b` Pillow RGB images.
    """
    if (images is None) == (video is None):
        raise ValueError("pass exactly one of `images` (single pictures) and `video` (frame sequences)")
    check_fps(fps)
    keep = frame_count(max_seconds, fps) if max_seconds is not None else None
    items = _split_images(images) if images is not None else _split_videos(video)
    batch = [_one_item(item, fps, max_seconds, keep, short_side) for item in items]
    return [frames[:keep] for frames in batch]


def check_image_embeds(image_embeds: torch.Tensor, dim: int) -> None:
    """Raise unless `image_embeds` is a finite, L2-normalised float tensor [B, F, dim] (CLIP per frame).

    Args:
        image_embeds: precomputed embeddings passed to the pipeline.
        dim: the CLIP width the priors expect.
    """
    if not isinstance(image_embeds, torch.Tensor):
        raise TypeError(f"image_embeds must be a torch.Tensor [B, F, D], got {type(image_embeds).__name__}")
    if image_embeds.ndim != 3 or image_embeds.shape[0] < 1 or image_embeds.shape[1] < 1 or image_embeds.shape[2] != dim:
        raise ValueError(f"image_embeds must be [B, F, {dim}] (one CLIP embedding per frame; an image is F=1), "
                         f"got {tuple(image_embeds.shape)}")
    if not torch.isfinite(image_embeds).all():
        raise ValueError("image_embeds contain NaN or inf")
    norms = image_embeds.float().norm(dim=-1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-2):
        raise ValueError("image_embeds must be L2-normalised CLIP embeddings (norms are "
                         f"{norms.min().item():.3g}..{norms.max().item():.3g}); "
                         "pass torch.nn.functional.normalize(x, dim=-1)")

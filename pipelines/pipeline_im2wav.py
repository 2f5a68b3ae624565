"""`Im2WavPipeline`: image / frames / video -> CLIP embeddings -> LOW tokens -> UP tokens -> waveform.

The stages are public methods (`encode_images`, `sample_low`, `sample_up`, `decode`) so that node
wrappers can run them one at a time; `__call__` strings them together.
"""

from __future__ import annotations

import importlib
import json
import math
import numbers
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput
from diffusers.utils import replace_example_docstring
from PIL import Image
from transformers import CLIPVisionModelWithProjection

from im2wav.clip_encoder import CLIPImageProcessor, embed_images
from im2wav.media import frame_count, is_video_file, load_frames, load_image
from im2wav.models.prior import Im2WavPrior
from im2wav.models.vqvae import HierarchicalVQVAE
from im2wav.sampling import (
    check_generator,
    check_sampling_args,
    sample_low_tokens,
    sample_up_tokens,
)

__all__ = ["Im2WavPipeline", "check_pipeline_folder"]

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import soundfile
        >>> import torch
        >>> from PIL import Image
        >>> from im2wav import Im2WavPipeline

        >>> pipe = Im2WavPipeline.from_pretrained("path/to/im2wav-pipeline")  # a folder or a hub id
        >>> pipe = pipe.to("cuda")
        >>> generator = torch.Generator("cuda").manual_seed(0)

        >>> # one image -> 4.096 s of audio
        >>> audio = pipe(Image.open("dog.jpg"), guidance_scale=3.0, generator=generator).audios  # [1, 1, 65536]
        >>> soundfile.write("dog.wav", audio[0, 0], pipe.sample_rate)

        >>> # a video file (frames taken at 30 fps), 8 s of audio, two variations
        >>> audio = pipe("clip.mp4", audio_length_in_s=8.0, num_waveforms_per_prompt=2).audios  # [2, 1, 128000]
        ```
"""

# Components a pipeline folder must hold, with the file that proves each one was saved.
_COMPONENT_FILES = {
    "image_encoder": "config.json",
    "feature_extractor": "preprocessor_config.json",
    "vqvae": "config.json",
    "low_prior": "config.json",
    "up_prior": "config.json",
}

ImageInput = Any  # see `Im2WavPipeline.encode_images` for the accepted forms


def _safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a complete safetensors file, or None when its header and size agree."""
    size = path.stat().st_size
    if size < 8:
        return f"it has only {size} bytes"
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > size - 8:
            return f"its header claims {header_len} bytes but the file has {size}"
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "its header is not valid JSON"
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    expected = 8 + header_len + max(ends, default=0)
    if size < expected:
        return f"it has {size} bytes but its header describes {expected}"
    return None


def check_pipeline_folder(folder: str | os.PathLike) -> None:
    """Raise a `ValueError` that names the problem when `folder` is not a complete im2wav pipeline.

    Checks that `model_index.json` exists and names every component, that each component's
    folder holds its config and weights, and that no safetensors file is truncated.
    """
    folder = Path(folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ValueError(
            f"{folder} is not an im2wav pipeline folder: model_index.json is missing. Make one with "
            "`pipe.save_pretrained(folder)` or `training_scripts/convert_original_checkpoint.py`"
        )
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{index_path} is not valid JSON ({err}); re-save the pipeline") from err
    for name, config_file in _COMPONENT_FILES.items():
        entry = index.get(name)
        if not isinstance(entry, list) or None in entry:
            raise ValueError(f"{index_path} has no {name!r} component; re-save the pipeline with all five components")
        subfolder = folder / name
        if not (subfolder / config_file).is_file():
            raise ValueError(f"the pipeline folder {folder} is missing its {name!r} component ({name}/{config_file})")
        if name == "feature_extractor":
            continue
        weights = sorted(subfolder.glob("*.safetensors")) + sorted(subfolder.glob("*.bin"))
        if not weights:
            raise ValueError(f"the {name!r} component in {subfolder} has no weights file (*.safetensors)")
        for file in weights:
            problem = _safetensors_problem(file) if file.suffix == ".safetensors" else None
            if problem:
                raise ValueError(f"{file} is truncated or corrupt: {problem}. Re-download or re-save the pipeline")


def _is_hub_id(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_][\w.-]*(/[\w.-]+)?", name) is not None and ".." not in name


def _is_path(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


def _is_frame(item: Any) -> bool:
    """One image: a Pillow image, an image file path, or an `[H, W, C]` array."""
    return (
        isinstance(item, Image.Image)
        or _is_path(item)
        or (isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim == 3)
    )


def _check_fps(fps: float) -> None:
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number of frames per second, got {fps}")


def _check_num_waveforms(num_waveforms_per_prompt: int) -> None:
    if not isinstance(num_waveforms_per_prompt, int) or num_waveforms_per_prompt < 1:
        raise ValueError(f"num_waveforms_per_prompt must be an int >= 1, got {num_waveforms_per_prompt}")


def _array_to_images(array: np.ndarray | torch.Tensor) -> list[Image.Image]:
    """`[H, W, C]` or `[F, H, W, C]` uint8 / float-in-0..1 array -> RGB Pillow images (checked)."""
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


class Im2WavPipeline(DiffusionPipeline):
    r"""Image-guided audio generation with IM2WAV (Sheffer & Adi, ICASSP 2023).

    A picture, a frame sequence or a video is embedded frame by frame with CLIP; the LOW prior samples
    coarse VQ-VAE tokens (hop 32) with classifier-free guidance; the UP prior samples fine tokens
    (hop 8) conditioned on them; the VQ-VAE decodes those to a 16 kHz mono waveform.

    Args:
        image_encoder: CLIP vision model with projection (ViT-B/32 for the released checkpoints).
        feature_extractor: its image processor.
        vqvae: the hierarchical VQ-VAE; level 0 codes are decoded.
        low_prior: the LOW prior (level 1 tokens, CLIP + time conditioning, guidance).
        up_prior: the UP prior (level 0 tokens, conditioned on the LOW tokens).
    """

    model_cpu_offload_seq = "image_encoder->low_prior->up_prior->vqvae"
    _optional_components: list[str] = []

    # Beyond this the time conditioning was never trained (clips were 10 s) and sampling takes hours
    # at paper size; the LOW prior's own `max_duration` caps it further when smaller.
    max_audio_length_in_s: float = 120.0

    def __init__(
        self,
        image_encoder: CLIPVisionModelWithProjection,
        feature_extractor: CLIPImageProcessor,
        vqvae: HierarchicalVQVAE,
        low_prior: Im2WavPrior,
        up_prior: Im2WavPrior,
    ):
        super().__init__()
        self.register_modules(
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            vqvae=vqvae,
            low_prior=low_prior,
            up_prior=up_prior,
        )
        self.compiled_decoding = False

    def enable_compiled_decoding(self, enabled: bool = True) -> None:
        """Compile the priors' decoding step (`torch.compile(fullgraph=True)`; a CUDA graph on CUDA).

        The first generation after this pays the compilation (tens of seconds to minutes); every
        later one of the same batch size runs the compiled step. Where compilation is unavailable
        (no C++ compiler on a CPU), decoding falls back to eager with a warning. See docs/performance.md.
        """
        self.compiled_decoding = bool(enabled)

    # ------------------------------------------------------------------------------------------
    # loading

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> Im2WavPipeline:
        """Load a pipeline from a local folder (`save_pretrained` layout) or a Hugging Face Hub repo id.

        A hub id is downloaded with `huggingface_hub.snapshot_download` first (honouring `revision`,
        `cache_dir`, `token` and `local_files_only`). The folder is checked before loading: a missing
        component or a truncated safetensors file raises a `ValueError` that names it. Other
        keyword arguments (`torch_dtype`, components to substitute, ...) go to
        `DiffusionPipeline.from_pretrained`.
        """
        name = str(pretrained_model_name_or_path)
        folder = Path(os.path.expanduser(name))
        if not folder.is_dir():
            if not _is_hub_id(name) or folder.exists():
                raise ValueError(
                    f"pipeline folder not found: {name} (pass a folder made by save_pretrained or a hub id)"
                )
            from huggingface_hub import snapshot_download

            hub_kwargs = {
                k: kwargs.pop(k) for k in ("revision", "cache_dir", "token", "local_files_only") if k in kwargs
            }
            folder = Path(snapshot_download(name, **hub_kwargs))
        check_pipeline_folder(folder)

        # model_index.json names im2wav's own classes by module path; diffusers only resolves such
        # modules from sys.modules, so import them here (only modules of this package are imported).
        index = json.loads((folder / "model_index.json").read_text())
        for entry in index.values():
            if isinstance(entry, list) and entry and isinstance(entry[0], str) and entry[0].startswith("im2wav."):
                importlib.import_module(entry[0])
        return super().from_pretrained(folder, **kwargs)

    # ------------------------------------------------------------------------------------------
    # properties

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz (the VQ-VAE's)."""
        return int(self.vqvae.config.sample_rate)

    @property
    def low_hop_length(self) -> int:
        """Audio samples per LOW token (32)."""
        return int(self.low_prior.config.hop_length)

    @property
    def up_hop_length(self) -> int:
        """Audio samples per UP token (8)."""
        return int(self.up_prior.config.hop_length)

    @property
    def max_audio_length(self) -> float:
        """The longest `audio_length_in_s` accepted, in seconds."""
        return float(min(self.max_audio_length_in_s, self.low_prior.config.max_duration))

    def num_low_tokens(self, audio_length_in_s: float) -> int:
        """LOW tokens needed for `audio_length_in_s` seconds (4.096 s -> 2048)."""
        num_samples = round(audio_length_in_s * self.sample_rate)
        return max(1, math.ceil(num_samples / self.low_hop_length))

    # ------------------------------------------------------------------------------------------
    # checks

    def check_audio_length(self, audio_length_in_s: float) -> None:
        """Raise a `ValueError` unless `0 < audio_length_in_s <= max_audio_length` (finite)."""
        if isinstance(audio_length_in_s, bool) or not isinstance(audio_length_in_s, numbers.Real):
            raise TypeError(f"audio_length_in_s must be a number of seconds, got {type(audio_length_in_s).__name__}")
        if not math.isfinite(audio_length_in_s) or audio_length_in_s <= 0:
            raise ValueError(f"audio_length_in_s must be a positive number of seconds, got {audio_length_in_s}")
        if audio_length_in_s > self.max_audio_length:
            raise ValueError(
                f"audio_length_in_s={audio_length_in_s} is longer than the {self.max_audio_length:g} s this "
                "pipeline generates in one call; generate shorter pieces"
            )

    def _check_image_embeds(self, image_embeds: torch.Tensor) -> None:
        if not isinstance(image_embeds, torch.Tensor):
            raise TypeError(f"image_embeds must be a torch.Tensor [B, F, D], got {type(image_embeds).__name__}")
        dim = self.low_prior.config.clip_dim
        if (
            image_embeds.ndim != 3
            or image_embeds.shape[0] < 1
            or image_embeds.shape[1] < 1
            or image_embeds.shape[2] != dim
        ):
            raise ValueError(
                f"image_embeds must be [B, F, {dim}] (one CLIP embedding per frame; an image is F=1), "
                f"got {tuple(image_embeds.shape)}"
            )
        if not torch.isfinite(image_embeds).all():
            raise ValueError("image_embeds contain NaN or inf")
        norms = image_embeds.float().norm(dim=-1)
        if not torch.allclose(norms, torch.ones_like(norms), atol=1e-2):
            raise ValueError(
                "image_embeds must be L2-normalised CLIP embeddings (norms are "
                f"{norms.min().item():.3g}..{norms.max().item():.3g}); pass torch.nn.functional.normalize(x, dim=-1)"
            )

    # ------------------------------------------------------------------------------------------
    # 1. images -> CLIP embeddings

    def prepare_frames(
        self, images: ImageInput, fps: float = 30.0, max_seconds: float | None = None
    ) -> list[list[Image.Image]]:
        """Turn any accepted image input into a batch of RGB frame sequences.

        Args:
            images: any form `encode_images` accepts.
            fps: frame rate at which video files are sampled.
            max_seconds: when given, each sequence is cut to its first `max(1, int(max_seconds * fps))` frames.

        Returns:
            `B` lists of `F_b` Pillow RGB images.
        """
        _check_fps(fps)

        def one_item(item: Any) -> list[Image.Image]:  # one batch element -> its frames
            if isinstance(item, Image.Image):
                return [load_image(item)]
            if _is_path(item):
                return load_frames(item, fps=fps, max_seconds=max_seconds)
            if isinstance(item, (np.ndarray, torch.Tensor)):
                if item.ndim not in (3, 4):
                    raise ValueError(
                        f"a batch element array must be [H, W, C] or [F, H, W, C], got shape {tuple(item.shape)}"
                    )
                return _array_to_images(item)
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
                        _array_to_images(frame)
                        if isinstance(frame, (np.ndarray, torch.Tensor))
                        else [load_image(frame)]
                    )
                return frames
            raise TypeError(
                f"unsupported image input {type(item).__name__}: pass a PIL image, a list of them (frames), "
                "a list of such lists (batch), a path, or a uint8/float array [H, W, C], [F, H, W, C] or "
                "[B, F, H, W, C]"
            )

        # Split the input into batch elements.
        if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 5:
            items: list[Any] = list(images)  # [B, F, H, W, C]
        elif isinstance(images, (list, tuple)):
            if len(images) == 0:
                raise ValueError("got an empty image list; pass at least one image")
            if all(
                isinstance(x, Image.Image) or (isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 3)
                for x in images
            ):
                items = [list(images)]  # one frame sequence
            elif all(
                _is_path(x)
                or isinstance(x, (list, tuple))
                or (isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 4)
                for x in images
            ):
                items = list(images)  # a batch
            else:
                raise TypeError(
                    "a list must hold either frames (PIL images / [H, W, C] arrays: one sequence) or batch elements "
                    "(paths, frame lists, [F, H, W, C] arrays), not a mix"
                )
        else:
            items = [images]

        batch = [one_item(item) for item in items]
        if max_seconds is not None:
            keep = frame_count(max_seconds, fps)
            batch = [frames[:keep] for frames in batch]
        return batch

    def encode_images(self, images: ImageInput, fps: float = 30.0, max_seconds: float | None = None) -> torch.Tensor:
        """CLIP-embed every frame: the conditioning of both priors.

        Args:
            images: one of
                - a PIL image, an image file path, or an `[H, W, C]` array: one image;
                - a list of PIL images / `[H, W, C]` arrays, or an `[F, H, W, C]` array: one frame
                  sequence (a video at `fps`);
                - a video file path: its frames sampled at `fps`;
                - a list of paths / frame lists / `[F, H, W, C]` arrays, or a `[B, F, H, W, C]` array: a batch.
                Arrays are uint8 (0..255) or float (0..1), numpy or torch, channels last. Frames of
                different sizes may be mixed: the CLIP processor resizes and centre-crops each one.
                Every sequence in a batch must end up with the same number of frames.
            fps: frame rate used to sample video files.
            max_seconds: keep only the frames of the first `max_seconds` seconds (at `fps`).

        Returns:
            `[B, F, D]` float32 L2-normalised CLIP image embeddings.
        """
        batch = self.prepare_frames(images, fps=fps, max_seconds=max_seconds)
        counts = sorted({len(frames) for frames in batch})
        if len(counts) > 1:
            raise ValueError(
                f"the batch's frame sequences have different lengths {counts}; every element of a batch "
                "needs the same number of frames (pass them in separate calls)"
            )
        flat = [frame for frames in batch for frame in frames]
        embeds = embed_images(self.image_encoder, self.feature_extractor, flat)  # [B * F, D]
        return embeds.reshape(len(batch), counts[0], -1)  # [B, F, D]

    # ------------------------------------------------------------------------------------------
    # 2.-4. token sampling

    def sample_low(
        self,
        image_embeds: torch.Tensor,
        audio_length_in_s: float = 4.096,
        guidance_scale: float = 3.0,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_waveforms_per_prompt: int = 1,
        callback: Callable[[int, int], None] | None = None,
    ) -> torch.LongTensor:
        """Sample LOW tokens (hop 32) for `audio_length_in_s` seconds, with classifier-free guidance.

        The frames are spread evenly over the whole length (token t looks at frame
        `round(t / (T - 1) * (F - 1))`).

        Args:
            image_embeds: `[B, F, D]` L2-normalised CLIP embeddings (`encode_images`).
            audio_length_in_s: length of the audio the tokens will decode to.
            guidance_scale: `logits = null + s * (cond - null)`; 1 disables guidance, 0 is unconditional.
            temperature, top_k, top_p: sampling filters (0 / 1.0 disable top-k / top-p).
            generator: one generator, or one per output row (`B * num_waveforms_per_prompt`).
            num_waveforms_per_prompt: samples per batch element; rows come grouped by element.
            callback: `callback(step, total)` after each token; raise from it to stop.

        Returns:
            `[B * num_waveforms_per_prompt, T_low]` LongTensor.
        """

        self._check_image_embeds(image_embeds)
        self.check_audio_length(audio_length_in_s)
        check_sampling_args(temperature, top_k, top_p, guidance_scale)
        _check_num_waveforms(num_waveforms_per_prompt)
        check_generator(generator, image_embeds.shape[0] * num_waveforms_per_prompt)

        device = self._execution_device
        embeds = image_embeds.to(device, self.low_prior.dtype).repeat_interleave(
            num_waveforms_per_prompt, dim=0
        )  # [B*n, F, D]
        return sample_low_tokens(
            self.low_prior,
            embeds,
            self.num_low_tokens(audio_length_in_s),
            guidance_scale=guidance_scale,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
            callback=callback,
            compile=self.compiled_decoding,
        )

    def sample_up(
        self,
        low_tokens: torch.LongTensor,
        image_embeds: torch.Tensor,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        callback: Callable[[int, int], None] | None = None,
    ) -> torch.LongTensor:
        """Sample UP tokens (hop 8) conditioned on LOW tokens (no guidance).

        Args:
            low_tokens: `[N, T_low]` from `sample_low`.
            image_embeds: `[N, F, D]`, or `[B, F, D]` with `N = B * n` (rows are repeated n times,
                matching `sample_low`'s grouping).
            temperature, top_k, top_p, generator, callback: as in `sample_low`.

        Returns:
            `[N, up_prior.upsample_factor * T_low]` LongTensor.
        """

        if not isinstance(low_tokens, torch.Tensor) or low_tokens.ndim != 2 or low_tokens.dtype != torch.long:
            raise ValueError("low_tokens must be a LongTensor [N, T_low] (the output of sample_low)")
        self._check_image_embeds(image_embeds)
        check_sampling_args(temperature, top_k, top_p)
        rows, batch = low_tokens.shape[0], image_embeds.shape[0]
        if rows % batch:
            raise ValueError(
                f"low_tokens has {rows} rows; image_embeds must have {rows} rows or a divisor of it, got {batch}"
            )
        check_generator(generator, rows)
        device = self._execution_device
        embeds = image_embeds.to(device, self.up_prior.dtype).repeat_interleave(rows // batch, dim=0)  # [N, F, D]
        return sample_up_tokens(
            self.up_prior,
            low_tokens.to(device),
            embeds,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
            callback=callback,
            compile=self.compiled_decoding,
        )

    # ------------------------------------------------------------------------------------------
    # 5. tokens -> waveform

    @torch.no_grad()
    def decode(self, up_tokens: torch.LongTensor, num_samples: int | None = None) -> torch.Tensor:
        """Decode UP (level 0) tokens to audio.

        Args:
            up_tokens: `[B, T_up]` LongTensor.
            num_samples: cut the audio to this many samples (default: all, `T_up * 8`).

        Returns:
            `[B, 1, S]` float32 waveform at `sample_rate`.
        """
        if not isinstance(up_tokens, torch.Tensor) or up_tokens.ndim != 2 or up_tokens.dtype != torch.long:
            raise ValueError("up_tokens must be a LongTensor [B, T_up] (the output of sample_up)")
        audio = self.vqvae.decode(up_tokens.to(self._execution_device), level=0).float()  # [B, 1, S]
        return audio[..., :num_samples] if num_samples is not None else audio

    # ------------------------------------------------------------------------------------------

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        images: ImageInput = None,
        audio_length_in_s: float = 4.096,
        guidance_scale: float = 3.0,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        fps: float = 30.0,
        image_embeds: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[Im2WavPipeline, int, int, dict], Any] | None = None,
    ) -> AudioPipelineOutput | tuple:
        r"""Generate audio for images, frame sequences or videos.

        Args:
            images: the condition, in any form `encode_images` accepts (a PIL image, a frame list,
                a batch of frame lists, numpy/torch arrays `[H, W, C]`, `[F, H, W, C]`,
                `[B, F, H, W, C]`, image or video paths). Frame sequences cover at most
                `audio_length_in_s`: frames past `int(audio_length_in_s * fps)` are dropped, and
                a shorter sequence is stretched over the whole length.
            audio_length_in_s: seconds of audio, at most `max_audio_length` (120 s; the models were
                trained on 4.096 s windows, longer audio is sampled in overlapping windows).
            guidance_scale: classifier-free guidance scale of the LOW prior (the paper uses 3).
            num_waveforms_per_prompt: waveforms per batch element.
            generator: a `torch.Generator` or one per output waveform, for reproducibility.
            temperature: softmax temperature of both priors.
            top_k: keep the k most likely tokens (0: all).
            top_p: nucleus sampling threshold (1.0: off).
            fps: frame rate of frame sequences and of the frames taken from video files.
            image_embeds: precomputed `[B, F, D]` L2-normalised CLIP embeddings, instead of `images` (frames
                past `int(audio_length_in_s * fps)` are dropped here too).
            output_type: "np" (numpy), "pt" (torch) or "latent" (the UP tokens `[B, T_up]`, not decoded).
            return_dict: return an `AudioPipelineOutput` (True) or a plain tuple.
            callback_on_step_end: `callback(pipe, step, total_steps, {})` after every sampled token of
                either prior (steps count LOW then UP tokens); raise from it to stop.

        Examples:

        Returns:
            `AudioPipelineOutput` with `audios` `[B * num_waveforms_per_prompt, 1, S]`, or `(audios,)`.
        """
        # 1. Check inputs
        if (images is None) == (image_embeds is None):
            raise ValueError("pass exactly one of `images` and `image_embeds`")
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"output_type must be 'np', 'pt' or 'latent', got {output_type!r}")
        self.check_audio_length(audio_length_in_s)
        check_sampling_args(temperature, top_k, top_p, guidance_scale)
        _check_num_waveforms(num_waveforms_per_prompt)
        _check_fps(fps)

        # 2. Encode the images (one CLIP embedding per frame)
        if image_embeds is None:
            image_embeds = self.encode_images(images, fps=fps, max_seconds=audio_length_in_s)  # [B, F, D]
        else:
            self._check_image_embeds(image_embeds)
            image_embeds = image_embeds[:, : frame_count(audio_length_in_s, fps)]  # [B, F, D]
        batch_size = image_embeds.shape[0] * num_waveforms_per_prompt
        check_generator(generator, batch_size)

        num_low = self.num_low_tokens(audio_length_in_s)
        num_up = num_low * self.up_prior.upsample_factor
        total_steps = num_low + num_up
        with self.progress_bar(total=total_steps) as progress:

            def stage_callback(offset: int) -> Callable[[int, int], None]:
                def callback(step: int, total: int) -> None:
                    progress.update(max(0, offset + step - progress.n))
                    if callback_on_step_end is not None:
                        callback_on_step_end(self, offset + step, total_steps, {})

                return callback

            # 3. Sample LOW tokens (hop 32), classifier-free guided
            low_tokens = self.sample_low(
                image_embeds,
                audio_length_in_s=audio_length_in_s,
                guidance_scale=guidance_scale,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
                num_waveforms_per_prompt=num_waveforms_per_prompt,
                callback=stage_callback(0),
            )  # [B*n, T_low]
            progress.update(num_low - progress.n)

            # 4. Sample UP tokens (hop 8) conditioned on the LOW tokens
            up_tokens = self.sample_up(
                low_tokens,
                image_embeds,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
                callback=stage_callback(num_low),
            )  # [B*n, 4*T_low]
            progress.update(total_steps - progress.n)

        # 5. Decode
        if output_type == "latent":
            audios = up_tokens
        else:
            audios = self.decode(up_tokens, num_samples=round(audio_length_in_s * self.sample_rate))  # [B*n, 1, S]
            if output_type == "np":
                audios = audios.cpu().numpy()
        self.maybe_free_model_hooks()

        if not return_dict:
            return (audios,)
        return AudioPipelineOutput(audios=audios)

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput
from diffusers.utils import replace_example_docstring
from PIL import Image
from transformers import CLIPVisionModelWithProjection

from im2wav.clip_encoder import CLIPImageProcessor, embed_images, name_pil_processor
from im2wav.decoding import decode_threads
from im2wav.image_processor import check_fps, check_num_waveforms, encoder_short_side, prepare_frames
from im2wav.media import frame_count
from im2wav.model_folder import check_pipeline_folder, is_hub_id
from im2wav.models.prior import Im2WavPrior
from im2wav.models.vqvae import HierarchicalVQVAE
from im2wav.sampling import (
    check_generator,
    check_sampling_args,
    sample_low_tokens,
    sample_up_tokens,
)

__all__ = ["Im2WavPipeline", "check_pipeline_folder"]

Generator = torch.Generator | list[torch.Generator] | None
Callback = Callable[[int, int], None]

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
        >>> audio = pipe(video="clip.mp4", audio_length_in_s=8.0, num_waveforms_per_prompt=2).audios  # [2, 1, 128000]

        >>> # frames you already have are a `video`; a list in `images` is a batch of single pictures
        >>> frames = [Image.open(f"frame_{k:03d}.png") for k in range(120)]  # 4 s at 30 fps
        >>> audio = pipe(video=frames, fps=30).audios  # [1, 1, 65536]: one sound for the sequence
        >>> audio = pipe(images=frames[:2]).audios  # [2, 1, 65536]: one sound per picture
        ```
"""

ImageInput = Any  # see `Im2WavPipeline.encode_images` for the accepted forms




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
            if not is_hub_id(name) or folder.exists():
                raise ValueError(
                    f"pipeline folder not found: {name} (pass a folder made by save_pretrained or a hub id)"
                )
            from huggingface_hub import snapshot_download

            hub_kwargs = {
                k: kwargs.pop(k) for k in ("revision", "cache_dir", "token", "local_files_only") if k in kwargs
            }
            try:
                folder = Path(snapshot_download(name, **hub_kwargs))
            except Exception as err:  # noqa: BLE001 - network, auth and missing-repo errors of the hub client
                raise FileNotFoundError(
                    f"pipeline folder not found: {name} is not a local folder, and fetching it as a Hugging Face "
                    f"Hub repo id failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
                    "Check the path, or the repo id and your connection"
                ) from err
        check_pipeline_folder(folder)

        # model_index.json names im2wav's own classes by module path; diffusers only resolves such
        # modules from sys.modules, so import them here (only modules of this package are imported).
        index = json.loads((folder / "model_index.json").read_text())
        for entry in index.values():
            if isinstance(entry, list) and entry and isinstance(entry[0], str) and entry[0].startswith("im2wav."):
                importlib.import_module(entry[0])
        name_pil_processor()  # a folder saved under transformers 5 names a class 4.x calls otherwise
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
        """Raise a `ValueError` unless `audio_length_in_s` is one LOW token's span (2 ms) to `max_audio_length`."""
        if isinstance(audio_length_in_s, bool) or not isinstance(audio_length_in_s, numbers.Real):
            raise TypeError(f"audio_length_in_s must be a number of seconds, got {type(audio_length_in_s).__name__}")
        if not math.isfinite(audio_length_in_s) or audio_length_in_s <= 0:
            raise ValueError(f"audio_length_in_s must be a positive number of seconds, got {audio_length_in_s}")
        shortest = self.low_hop_length / self.sample_rate
        if audio_length_in_s < shortest:
            raise ValueError(
                f"audio_length_in_s={audio_length_in_s:g} is shorter than one token ({shortest:g} s, "
                f"{self.low_hop_length} samples); ask for at least that"
            )
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
        self, images: ImageInput = None, fps: float = 30.0, max_seconds: float | None = None, video: ImageInput = None
    ) -> list[list[Image.Image]]:
        """Turn `images` (single pictures) or `video` (frame sequences) into a batch of RGB frame
        sequences, each frame shrunk to the image encoder's input size (which leaves CLIP's result
        unchanged and memory small).

        Args:
            images: single pictures, as `encode_images` takes them.
            fps: frame rate of frame sequences and at which video files are sampled.
            max_seconds: when given, each sequence is cut to its first `max(1, int(max_seconds * fps))`
                frames; frames past that are never decoded.
            video: frame sequences, as `encode_images` takes them.

        Returns:
            `B` lists of `F_b` Pillow RGB images.
        """
        short_side = encoder_short_side(self.feature_extractor)
        return prepare_frames(images, fps=fps, max_seconds=max_seconds, short_side=short_side, video=video)

    def encode_images(
        self, images: ImageInput = None, fps: float = 30.0, max_seconds: float | None = None, video: ImageInput = None
    ) -> torch.Tensor:
        """CLIP-embed every frame: the conditioning of both priors. Pass exactly one of `images` and
        `video`; the argument, not the Python type, says what the input is (docs/pipeline.md).

        Args:
            images: single pictures, one sound each: a PIL image, an image file, an `[H, W, C]`
                array, a list of those, or a `[B, H, W, C]` array. A video file here is one item,
                its frames taken at `fps`.
            fps: frame rate of `video` frames and at which video files are sampled.
            max_seconds: keep only the frames of the first `max_seconds` seconds (at `fps`).
            video: frame sequences, one sound each: a list of frames (PIL images, image files,
                `[H, W, C]` arrays) or an `[F, H, W, C]` array is one video; a list of such
                sequences or a `[B, F, H, W, C]` array is a batch; a video file path is one video.
                Arrays are uint8 (0..255) or float (0..1), numpy or torch, channels last. Frames of
                different sizes may be mixed: the CLIP processor resizes and centre-crops each one.
                Every sequence in a batch must end up with the same number of frames.

        Returns:
            `[B, F, D]` float32 L2-normalised CLIP image embeddings.
        """
        batch = self.prepare_frames(images, fps=fps, max_seconds=max_seconds, video=video)
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
        check_num_waveforms(num_waveforms_per_prompt, image_embeds.shape[0])
        check_generator(generator, image_embeds.shape[0] * num_waveforms_per_prompt)
        return self._sample_low(image_embeds, audio_length_in_s, guidance_scale, temperature, top_k, top_p, generator,
                                num_waveforms_per_prompt, callback)

    def _sample_low(
        self, image_embeds: torch.Tensor, audio_length_in_s: float, guidance_scale: float, temperature: float,
        top_k: int, top_p: float, generator: Generator, num_waveforms_per_prompt: int, callback: Callback | None,
    ) -> torch.LongTensor:
        """`sample_low` without the checks (the caller made them)."""
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
        return self._sample_up(low_tokens, image_embeds, temperature, top_k, top_p, generator, callback)

    def _sample_up(
        self, low_tokens: torch.LongTensor, image_embeds: torch.Tensor, temperature: float, top_k: int, top_p: float,
        generator: Generator, callback: Callback | None,
    ) -> torch.LongTensor:
        """`sample_up` without the checks (the caller made them)."""
        device = self._execution_device
        rows = low_tokens.shape[0]
        embeds = image_embeds.to(device, self.up_prior.dtype).repeat_interleave(rows // image_embeds.shape[0], dim=0)
        return sample_up_tokens(  # embeds: [N, F, D]
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
            num_samples: cut the audio to this many samples, 1 to `T_up * 8` (default: all).

        Returns:
            `[B, 1, S]` float32 waveform at `sample_rate`.
        """
        if not isinstance(up_tokens, torch.Tensor) or up_tokens.ndim != 2 or up_tokens.dtype != torch.long:
            raise ValueError("up_tokens must be a LongTensor [B, T_up] (the output of sample_up)")
        full = up_tokens.shape[1] * self.up_hop_length
        if num_samples is not None and (
            isinstance(num_samples, bool) or not isinstance(num_samples, int) or not 1 <= num_samples <= full
        ):
            raise ValueError(
                f"num_samples must be an int from 1 to {full} (the {up_tokens.shape[1]} tokens' length), got {num_samples!r}"
            )
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
        video: ImageInput = None,
        image_embeds: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[Im2WavPipeline, int, int, dict], Any] | None = None,
    ) -> AudioPipelineOutput | tuple:
        r"""Generate audio for images, frame sequences or videos.

        Args:
            images: single pictures, one sound each (a PIL image, an image or video file, an
                `[H, W, C]` array, a list of those, a `[B, H, W, C]` array); see `encode_images`.
            audio_length_in_s: seconds of audio, at most `max_audio_length` (120 s; the models were
                trained on 4.096 s windows, longer audio is sampled in overlapping windows).
            guidance_scale: classifier-free guidance scale of the LOW prior (the paper uses 3).
            num_waveforms_per_prompt: waveforms per batch element.
            generator: a `torch.Generator` or one per output waveform, for reproducibility.
            temperature: softmax temperature of both priors.
            top_k: keep the k most likely tokens (0: all).
            top_p: nucleus sampling threshold (1.0: off).
            fps: frame rate of `video` frames and of the frames taken from video files.
            video: frame sequences, one sound each (a frame list or `[F, H, W, C]` array is one
                video, a list of them or `[B, F, H, W, C]` a batch); see `encode_images`. Sequences
                cover at most `audio_length_in_s`: frames past `int(audio_length_in_s * fps)` are
                dropped, and a shorter sequence is stretched over the whole length.
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
        # 1. Check inputs (once: the stages below run unchecked)
        if sum(x is not None for x in (images, video, image_embeds)) != 1:
            raise ValueError("pass exactly one of `images` (single pictures), `video` (frame sequences) and "
                             "`image_embeds`")
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"output_type must be 'np', 'pt' or 'latent', got {output_type!r}")
        self.check_audio_length(audio_length_in_s)
        check_sampling_args(temperature, top_k, top_p, guidance_scale)
        check_num_waveforms(num_waveforms_per_prompt)
        check_fps(fps)

        # small models run every stage on one thread: their many tiny operations only wait on each other
        # (and stall behind any busy core) when split; large ones use every thread (im2wav.decoding)
        with decode_threads(self.low_prior, 2 * num_waveforms_per_prompt):
            # 2. Encode the images (one CLIP embedding per frame)
            if image_embeds is None:
                image_embeds = self.encode_images(
                    images, fps=fps, max_seconds=audio_length_in_s, video=video
                )  # [B, F, D]
            else:
                self._check_image_embeds(image_embeds)
                image_embeds = image_embeds[:, : frame_count(audio_length_in_s, fps)]  # [B, F, D]
            check_num_waveforms(num_waveforms_per_prompt, image_embeds.shape[0])
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
                low_tokens = self._sample_low(
                    image_embeds, audio_length_in_s, guidance_scale, temperature, top_k, top_p, generator,
                    num_waveforms_per_prompt, stage_callback(0),
                )  # [B*n, T_low]
                progress.update(num_low - progress.n)

                # 4. Sample UP tokens (hop 8) conditioned on the LOW tokens
                up_tokens = self._sample_up(low_tokens, image_embeds, temperature, top_k, top_p, generator,
                                            stage_callback(num_low))  # [B*n, 4*T_low]
                progress.update(total_steps - progress.n)

            # 5. Decode
            if output_type == "latent":
                audios = up_tokens
            else:
                num_samples = round(audio_length_in_s * self.sample_rate)
                audios = self.decode(up_tokens, num_samples=num_samples)  # [B*n, 1, S]
                if output_type == "np":
                    audios = audios.cpu().numpy()
        self.maybe_free_model_hooks()

        if not return_dict:
            return (audios,)
        return AudioPipelineOutput(audios=audios)

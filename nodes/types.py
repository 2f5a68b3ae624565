"""The custom ComfyUI socket types of the im2wav nodes and the values that travel through them.

``IM2WAV_MODEL`` carries an :class:`Im2WavModel`: the pipeline and the ComfyUI model patcher that
places it on a device. The other two carry the small dataclasses below, so a graph cannot feed LOW
tokens to the decoder or UP tokens to the UP prior without a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

MODEL = "IM2WAV_MODEL"
CONDITIONING = "IM2WAV_CONDITIONING"
TOKENS = "IM2WAV_TOKENS"
CATEGORY = "audio/im2wav"

# The largest seed ComfyUI's seed widgets allow; torch.Generator.manual_seed accepts [0, 2**64 - 1].
MAX_SEED = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True, eq=False)
class Im2WavModel:
    """A loaded pipeline under ComfyUI's memory management.

    Args:
        pipeline: the :class:`~im2wav.Im2WavPipeline` (its components live where ``patcher`` put them).
        patcher: the ``comfy.model_patcher.ModelPatcher`` holding all its components, so that
            ComfyUI loads them onto ``load_device`` before a node runs and offloads or frees them
            (``--lowvram``, *free model and node cache*, another workflow needing the memory).
        name: the model's name in the loader, for messages.
    """

    pipeline: Any
    patcher: Any
    name: str = ""

    @property
    def load_device(self) -> torch.device:
        """Where the nodes run the model (ComfyUI's compute device, or the CPU)."""
        return torch.device(self.patcher.load_device)

    @property
    def sample_rate(self) -> int:
        """The audio's sample rate in Hz."""
        return int(self.pipeline.sample_rate)


@dataclass(frozen=True)
class Im2WavConditioning:
    """CLIP image embeddings, the output of ``Im2WavPipeline.encode_images``.

    Args:
        image_embeds: ``[B, F, D]`` one row of frame embeddings per item of the batch.
    """

    image_embeds: torch.Tensor


@dataclass(frozen=True)
class Im2WavTokens:
    """Sampled tokens of one prior level, with the conditioning they were sampled from.

    Args:
        tokens: ``[B * n, T]`` token ids (``n`` waveforms per conditioning item).
        level: ``"low"`` (hop 32, from ``sample_low``) or ``"up"`` (hop 8, from ``sample_up``).
        conditioning: the conditioning the LOW tokens were sampled from; the UP prior reuses it.
    """

    tokens: torch.Tensor
    level: str
    conditioning: Im2WavConditioning

    def require(self, level: str, node: str) -> torch.Tensor:
        """Return the tokens, or raise a ValueError saying how to rewire ``node`` when the level differs."""
        if self.level != level:
            source = {"low": "im2wav Sample LOW", "up": "im2wav Sample UP"}
            raise ValueError(
                f"{node} needs {level.upper()} tokens but got {self.level.upper()} tokens; "
                f"connect the output of '{source[level]}' to it"
            )
        return self.tokens

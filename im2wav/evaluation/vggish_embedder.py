"""VGGish, the paper's FAD embedding model, through the maintained `torchvggish` package.

The paper computes FAD (Kilgour et al.) on the features of an AudioSet-trained classifier,
VGGish. We follow the FAD literature's use of it (Kilgour et al.'s reference implementation
and the `frechet-audio-distance` package agree):
- 16 kHz mono audio, cut into non-overlapping 0.96 s examples of 96 x 64 log-mel frames
  (`torchvggish.waveform_to_examples`; a remainder shorter than 0.96 s is dropped);
- one 128-d embedding per example, taken before the final ReLU and without the PCA/quantisation
  post-processing; every example is one sample of the Gaussian fit (a 4 s clip gives 4).

A clip shorter than one example (15600 samples: 96 frames of 25 ms every 10 ms) is zero-padded
to that length so that it still counts.
"""

from __future__ import annotations

import os

import torch

from .audio_models import AudioInput, prepare_waveforms
from .checkpoints import load_state_dict
from .clip_windows import pad_to_length

__all__ = ["VGGISH_SAMPLE_RATE", "VggishEmbedder", "build_vggish", "load_vggish"]

VGGISH_SAMPLE_RATE = 16000
VGGISH_EXAMPLE_SECONDS = 0.96
# One example needs 96 STFT frames of 400 samples (25 ms) every 160 (10 ms): 400 + 95 * 160 samples.
VGGISH_MIN_SAMPLES = 400 + 95 * 160
VGGISH_WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"


def _examples(clip: torch.Tensor) -> torch.Tensor:
    from torchvggish import waveform_to_examples

    return waveform_to_examples(clip.numpy(), VGGISH_SAMPLE_RATE, return_tensor=True).detach()  # [E, 1, 96, 64]


class VggishEmbedder:
    """An `AudioEmbedder` giving one row per 0.96 s example of each clip.

    Args:
        model: maps `[E, 1, 96, 64]` log-mel examples to `[E, 128]` (torchvggish's VGG without
            post-processing and without its last ReLU, or a stand-in).
        batch_size: examples per forward pass.
        device: where the model runs (default: CPU).
        examples: maps a 16 kHz clip `[S]` to its examples `[E, 1, 96, 64]` (default: torchvggish's).
    """

    sample_rate = VGGISH_SAMPLE_RATE

    def __init__(self, model: torch.nn.Module, batch_size: int = 256, device: str | torch.device | None = None,
                 examples=_examples):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.examples = examples

    def settings(self) -> dict:
        return {
            "sample_rate": self.sample_rate,
            "example_seconds": VGGISH_EXAMPLE_SECONDS,
            "rows": "one per 0.96 s example, remainder dropped, clips under one example zero-padded to 15600 samples",
            "layer": "128-d embedding before the last ReLU, no PCA",
        }

    @torch.no_grad()
    def embed(self, audios: AudioInput, sample_rate: int) -> torch.Tensor:
        """`[N, 128]` float32 embeddings on the CPU: the examples of clip 0, then of clip 1, ...

        Args:
            audios: mono clips, see `prepare_waveforms`.
            sample_rate: their rate in Hz.
        """
        clips = prepare_waveforms(audios, sample_rate, self.sample_rate)
        examples = torch.cat([self.examples(pad_to_length(clip, VGGISH_MIN_SAMPLES)) for clip in clips])  # [N, 1, 96, 64]
        rows = [
            self.model(examples[start : start + self.batch_size].to(self.device)).float().cpu()
            for start in range(0, examples.shape[0], self.batch_size)
        ]
        return torch.cat(rows)


def build_vggish() -> torch.nn.Module:
    """torchvggish's VGGish with random weights, no post-processing, the last ReLU removed, in eval mode.

    Raises:
        ImportError: `torchvggish` is not installed (`pip install "im2wav[eval]"`).
    """
    try:
        from torchvggish import VGG, make_layers
    except ImportError as err:
        raise ImportError('VGGish needs the torchvggish package: pip install "im2wav[eval]"') from err
    model = VGG(make_layers(), postprocess=False)
    # Embeddings before the final ReLU: the FAD literature's layer (ReLU would zero half the dimensions).
    model.embeddings = torch.nn.Sequential(*list(model.embeddings.children())[:-1])
    return model.eval()


def load_vggish(
    weights: str | os.PathLike | dict | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    random_weights: bool = False,
) -> VggishEmbedder:
    """The paper's FAD embedder.

    Args:
        weights: torchvggish's `vggish-10086976.pth` (or its state dict); None downloads it from
            `VGGISH_WEIGHTS_URL`.
        batch_size: examples per forward pass.
        device: where to run it (default: CPU).
        random_weights: keep the random initialisation (plumbing checks only).

    Raises:
        ImportError: torchvggish is not installed.
        ValueError: the checkpoint does not fit the architecture.
    """
    model = build_vggish()
    if not random_weights:
        state = load_state_dict(weights, VGGISH_WEIGHTS_URL, "VGGish", "--vggish-weights")
        # The release also holds the last Linear's weights under the same names (the ReLU has none).
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(
                f"the VGGish checkpoint does not fit torchvggish's VGG ({str(err).splitlines()[0]}); pass vggish-10086976.pth"
            ) from err
    model.to(device or "cpu")
    return VggishEmbedder(model, batch_size=batch_size, device=device)

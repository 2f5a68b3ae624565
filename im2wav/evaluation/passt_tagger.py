"""PaSST, the paper's AudioSet classifier (KL and accuracy), through its maintained package `hear21passt`.

The paper passes audio through PaSST to get a distribution over AudioSet's 527 classes. We use
`hear21passt`'s AudioSet model `passt_s_swa_p16_128_ap476` (PaSST-S, patch 16, stride 10, 128
mel bins, 32 kHz, 10 s input), its mel front end and its wrapper in `logits` mode, exactly as the
package assembles them in `hear21passt.base.get_basic_model`.

Input handling (all of it in `PasstTagger`, tested without the package):
- audio is resampled to 32 kHz (torchaudio);
- a clip shorter than `min_seconds` (1 s) is zero-padded at its end;
- a clip longer than the model's 10 s window is split into 10 s windows (`clip_windows`) and
  its logits are the mean of the windows' logits (the paper's 4 s clips fit in one window);
- clips of one length are batched, never padded to each other.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Sequence

import torch

from .audio_models import AudioInput, LogitsTagger, prepare_waveforms
from .checkpoints import load_state_dict
from .clip_windows import equal_length_batches, pad_to_length, split_into_windows

__all__ = ["PASST_ARCH", "PASST_SAMPLE_RATE", "PasstTagger", "build_passt", "load_passt"]

PASST_ARCH = "passt_s_swa_p16_128_ap476"
PASST_SAMPLE_RATE = 32000
PASST_WINDOW_SECONDS = 10.0
PASST_WEIGHTS_URL = (
    "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt"
)


class PasstTagger(LogitsTagger):
    """An `AudioTagger` around a PaSST-like model.

    Args:
        model: maps `[B, S]` audio at `sample_rate` to `[B, K]` logits (hear21passt's wrapper in
            `logits` mode, or any stand-in with that interface).
        label_names: the K class names in output order (AudioSet's display names).
        multi_label: False: softmax over the classes (one distribution per clip, what the paper's
            KL compares); True: per-class sigmoids (PaSST is trained multi-label).
        batch_size: windows per forward pass.
        sample_rate: the model's rate.
        window_seconds: the longest input the model takes.
        min_seconds: shorter clips are zero-padded up to this length.
        device: where the model runs (default: CPU).
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], label_names: Sequence[str],
                 multi_label: bool = False, batch_size: int = 16, sample_rate: int = PASST_SAMPLE_RATE,
                 window_seconds: float = PASST_WINDOW_SECONDS, min_seconds: float = 1.0,
                 device: str | torch.device | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.label_names = list(label_names)
        self.multi_label = multi_label
        self.batch_size = batch_size
        self.sample_rate = sample_rate
        self.window = round(window_seconds * sample_rate)
        self.min_length = round(min_seconds * sample_rate)
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def settings(self) -> dict:
        """What a reader needs to compare numbers: rate, window, padding, probability rule."""
        return {
            "sample_rate": self.sample_rate,
            "window_seconds": self.window / self.sample_rate,
            "min_seconds": self.min_length / self.sample_rate,
            "probabilities": "sigmoid" if self.multi_label else "softmax",
        }

    @torch.no_grad()
    def logits(self, audios: AudioInput, sample_rate: int) -> torch.Tensor:
        """`[B, K]` float32 logits on the CPU, the mean over each clip's windows.

        `audios`: mono clips (see `prepare_waveforms`) at `sample_rate` Hz.
        """
        clips = prepare_waveforms(audios, sample_rate, self.sample_rate)
        windows: list[torch.Tensor] = []
        owner: list[int] = []
        for n, clip in enumerate(clips):
            for window in split_into_windows(pad_to_length(clip, self.min_length), self.window):
                windows.append(window)
                owner.append(n)
        per_window = torch.empty(len(windows), len(self.label_names))
        # PaSST prints its tensor shapes on its first call; keep them out of the user's console.
        with contextlib.redirect_stdout(io.StringIO()):
            for positions, batch in equal_length_batches(windows, self.batch_size):
                out = torch.as_tensor(self.model(batch.to(self.device))).float().cpu()
                if out.shape != (len(positions), len(self.label_names)):
                    raise ValueError(
                        f"the tagger returned shape {tuple(out.shape)} for {len(positions)} clips; expected "
                        f"[B, {len(self.label_names)}] logits, one per label name"
                    )
                per_window[positions] = out
        sums = torch.zeros(len(clips), len(self.label_names)).index_add_(0, torch.tensor(owner), per_window)
        counts = torch.bincount(torch.tensor(owner), minlength=len(clips)).float()
        return sums / counts[:, None]  # [B, K]


def build_passt(arch: str = PASST_ARCH) -> torch.nn.Module:
    """hear21passt's AudioSet PaSST with random weights, in eval mode: mel front end + network in `logits` mode.

    Raises:
        ImportError: `hear21passt` is not installed (`pip install "im2wav[eval]"`).
    """
    try:
        from hear21passt.models.passt import get_model
        from hear21passt.models.preprocess import AugmentMelSTFT
        from hear21passt.wrapper import PasstBasicWrapper
    except ImportError as err:
        raise ImportError('PaSST needs the hear21passt package: pip install "im2wav[eval]"') from err
    with contextlib.redirect_stdout(io.StringIO()):
        # The values hear21passt.base.get_basic_model uses for this model.
        mel = AugmentMelSTFT(n_mels=128, sr=PASST_SAMPLE_RATE, win_length=800, hopsize=320, n_fft=1024, freqm=48,
                             timem=192, htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000)
        net = get_model(arch=arch, pretrained=False)
    return PasstBasicWrapper(mel=mel, net=net, mode="logits").eval()


def load_passt(
    label_names: Sequence[str],
    weights: str | os.PathLike | dict | None = None,
    multi_label: bool = False,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    random_weights: bool = False,
) -> PasstTagger:
    """The paper's PaSST as an `AudioTagger`.

    Args:
        label_names: AudioSet's 527 display names (`load_audioset_labels`).
        weights: the checkpoint file hear21passt publishes for `passt_s_swa_p16_128_ap476` (or its
            state dict); None downloads it from `PASST_WEIGHTS_URL`.
        multi_label: see `PasstTagger`.
        batch_size: windows per forward pass.
        device: where to run it (default: CPU).
        random_weights: keep the random initialisation (plumbing checks only: the numbers mean nothing).

    Raises:
        ImportError: hear21passt is not installed.
        ValueError: the checkpoint does not fit the architecture, or the labels are not 527.
    """
    model = build_passt()
    num_classes = model.net.num_classes
    if len(label_names) != num_classes:
        raise ValueError(f"PaSST has {num_classes} outputs but {len(label_names)} label names were given")
    if not random_weights:
        from hear21passt.models.passt import checkpoint_filter_fn

        state = load_state_dict(weights, PASST_WEIGHTS_URL, "PaSST", "--passt-weights")
        # The release holds the network's weights (the wrapper adds the mel front end and a device
        # marker); the package's own filter adapts them as its pretrained loading does.
        missing, unexpected = model.net.load_state_dict(checkpoint_filter_fn(state, model.net), strict=False)
        if missing or unexpected:
            raise ValueError(
                f"the PaSST checkpoint does not fit {PASST_ARCH}: missing {sorted(missing)[:3]}, unexpected "
                f"{sorted(unexpected)[:3]}; pass the AudioSet checkpoint of that model"
            )
    model.to(device or "cpu")
    return PasstTagger(model, label_names, multi_label=multi_label, batch_size=batch_size, device=device)

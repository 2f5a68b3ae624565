"""The hierarchical VQ-VAE of IM2WAV (Jukebox style): one encoder, codebook and decoder per level.

Level `l`'s encoder stacks the downsamplings of levels `0..l`, so level 0 (UP prior, hop 8 in the
paper config) and level 1 (LOW prior, hop 32) see the waveform independently; decoder `l` mirrors
encoder `l` and reconstructs the waveform from level `l`'s codes alone.

The model encodes, quantises and decodes; its training objective (loss weights and the data
statistics the losses are normalised by) lives in `im2wav.losses.vqvae`, which imports this module,
never the reverse. Configs saved before that split carried those training fields: `from_config` (and
so `from_pretrained`) drops them silently (`TRAINING_KEYS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from .codebook import EMACodebook
from .conv_blocks import Downsampler, Upsampler

# Named configurations. "paper" is the authors' `small_multi_level_vqvae` (their README command);
# "tiny" has the same structure, shrunk, and matches the parity fixtures.
PRESETS: dict[str, dict] = {
    "paper": dict(
        levels=2, downs_t=[3, 2], strides_t=[2, 2], emb_width=128, l_bins=2048, width=32, depth=4,
        m_conv=1.0, dilation_growth_rate=3, dilation_cycle=None, reverse_decoder_dilation=True,
        res_scale=False, hvqvae_multipliers=None, l_mu=0.99, revival_threshold=1.0,
        sample_rate=16000,
    ),
    "tiny": dict(
        levels=2, downs_t=[3, 2], strides_t=[2, 2], emb_width=16, l_bins=64, width=16, depth=3,
        m_conv=1.0, dilation_growth_rate=3, dilation_cycle=None, reverse_decoder_dilation=True,
        res_scale=False, hvqvae_multipliers=None, l_mu=0.99, revival_threshold=1.0,
        sample_rate=16000,
    ),
}


# Training fields that configs saved before the objective moved to `im2wav.losses.vqvae` carried
# (loss weights, STFT sizes, data statistics). Loading drops them; `VQVAELossConfig.from_dict` reads them.
TRAINING_KEYS = frozenset({
    "commit", "loss_fn", "lmix_l1", "lmix_l2", "lmix_linf", "linf_k", "spectral", "multispectral",
    "spec_n_fft", "spec_hop_length", "spec_window_size", "multispec_n_fft", "multispec_hop_length",
    "multispec_window_size", "use_nonrelative_specloss", "bandwidth_l1", "bandwidth_l2", "bandwidth_spec",
})


@dataclass
class HierarchicalVQVAEOutput(BaseOutput):
    """Output of `HierarchicalVQVAE.forward`.

    Args:
        sample: level-0 reconstruction `[B, 1, S]` (straight-through, differentiable).
        reconstructions: every level's reconstruction `[B, 1, S]`, level 0 first.
        codes: every level's codes, LongTensor `[B, S // hop_l]`, level 0 first.
        commit_losses: every level's quantisation error `||sg(code) - x||^2 / numel` (scalar), the
            commitment term the training objective weights (`im2wav.losses.vqvae`).
        codebook_usage: detached code-usage scalars of the quantisers, averaged over levels
            (`fit`, `perplexity`, ...; in training also `usage` and `dk`, see `CodebookOutput`).
    """

    sample: torch.Tensor
    reconstructions: tuple[torch.Tensor, ...]
    codes: tuple[torch.Tensor, ...]
    commit_losses: tuple[torch.Tensor, ...]
    codebook_usage: dict[str, torch.Tensor]


class LevelEncoder(nn.Module):
    """Encoder of one level: `stages[i]` applies the downsamplings of level `i`, for `i = 0..level`."""

    def __init__(self, stages: list[Downsampler]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, S) -> (B, D, S // hop)
        for stage in self.stages:
            x = stage(x)
        return x


class LevelDecoder(nn.Module):
    """Decoder of one level: `stages[i]` undoes level `i`'s downsamplings; run top stage first, then `out`."""

    def __init__(self, stages: list[Upsampler], out: nn.Conv1d):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T) -> (B, 1, T * hop)
        for stage in reversed(self.stages):
            x = stage(x)
        return self.out(x)


class HierarchicalVQVAE(ModelMixin, ConfigMixin):
    """Multi-level VQ-VAE for 16 kHz mono audio, with EMA codebooks.

    Args:
        levels: number of levels (codebooks).
        downs_t: number of x`strides_t[l]` downsamplings added by level `l`.
        strides_t: stride (even) of level `l`'s downsamplings. Hop of level `l` = prod(strides_t[i]**downs_t[i], i<=l).
        emb_width: code width `D`.
        l_bins: codebook size `K` per level.
        width: channels of the conv stacks.
        depth: residual units per down/up-sampling step.
        m_conv: hidden-width multiplier inside each residual unit.
        dilation_growth_rate: residual unit `d` has dilation `growth ** (d % dilation_cycle)`.
        dilation_cycle: restart period of the dilation schedule (`None`: never restart).
        reverse_decoder_dilation: decoders run their residual units in reversed dilation order.
        res_scale: scale residual branches by `1/sqrt(depth)`.
        hvqvae_multipliers: per-level multipliers of `width` and `depth` (`None`: all 1).
        l_mu: EMA decay of the codebooks.
        revival_threshold: codes with an EMA count below this are revived during training.
        sample_rate: audio sample rate in Hz (the model does not resample).
    """

    @register_to_config
    def __init__(
        self,
        levels: int = 2,
        downs_t: list[int] | tuple[int, ...] = (3, 2),
        strides_t: list[int] | tuple[int, ...] = (2, 2),
        emb_width: int = 128,
        l_bins: int = 2048,
        width: int = 32,
        depth: int = 4,
        m_conv: float = 1.0,
        dilation_growth_rate: int = 3,
        dilation_cycle: int | None = None,
        reverse_decoder_dilation: bool = True,
        res_scale: bool = False,
        hvqvae_multipliers: list[int] | tuple[int, ...] | None = None,
        l_mu: float = 0.99,
        revival_threshold: float = 1.0,
        sample_rate: int = 16000,
    ):
        super().__init__()
        if len(downs_t) != levels or len(strides_t) != levels:
            raise ValueError(f"downs_t {downs_t} and strides_t {strides_t} need one entry per level ({levels})")
        if any(stride < 2 or stride % 2 for stride in strides_t):
            # Down/up-sampling convs use kernel 2*stride and padding stride//2, which divide the
            # length by exactly `stride` only for even strides.
            raise ValueError(f"strides_t must be even numbers >= 2 (kernel 2*s, padding s//2), got {strides_t}")
        multipliers = list(hvqvae_multipliers) if hvqvae_multipliers is not None else [1] * levels
        hops, hop = [], 1
        for down, stride in zip(downs_t, strides_t):
            hop *= stride**down
            hops.append(hop)
        self.hop_lengths = hops

        def stack_kwargs(level: int) -> dict:
            return dict(width=width * multipliers[level], depth=depth * multipliers[level], m_conv=m_conv,
                        dilation_growth_rate=dilation_growth_rate, dilation_cycle=dilation_cycle,
                        res_scale=res_scale)

        self.encoders = nn.ModuleList(
            LevelEncoder([
                Downsampler(1 if i == 0 else emb_width, emb_width, downs_t[i], strides_t[i], **stack_kwargs(level))
                for i in range(level + 1)
            ])
            for level in range(levels)
        )
        self.decoders = nn.ModuleList(
            LevelDecoder(
                [
                    Upsampler(emb_width, emb_width, downs_t[i], strides_t[i],
                              reverse_dilation=reverse_decoder_dilation, **stack_kwargs(level))
                    for i in range(level + 1)
                ],
                nn.Conv1d(emb_width, 1, 3, 1, 1),
            )
            for level in range(levels)
        )
        self.quantizers = nn.ModuleList(
            EMACodebook(l_bins, emb_width, decay=l_mu, revival_threshold=revival_threshold) for _ in range(levels)
        )

    @classmethod
    def from_config(cls, config: dict | None = None, return_unused_kwargs: bool = False, **kwargs):
        """`ConfigMixin.from_config`, after dropping the training fields older configs carried.

        Args:
            config: the config dict (e.g. a loaded `config.json`).
            return_unused_kwargs, kwargs: as in `ConfigMixin.from_config`.
        """
        if isinstance(config, dict):
            config = {k: v for k, v in config.items() if k not in TRAINING_KEYS}
        return super().from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> HierarchicalVQVAE:
        """A freshly initialised model from `PRESETS[name]`, with `overrides` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # --- input checks ------------------------------------------------------------------------

    def _check_audio(self, audio: torch.Tensor, values: bool = True) -> torch.Tensor:
        """Validate `[B, S]` / `[B, 1, S]` float audio and return it as `[B, 1, S]` in the model dtype.

        `values=False` skips the finite-values check (a host sync on a GPU): training data is checked
        once, when the dataset is prepared, not at every step.
        """
        if not isinstance(audio, torch.Tensor):
            raise TypeError(f"audio must be a torch.Tensor [B, S] or [B, 1, S], got {type(audio).__name__}")
        if not audio.is_floating_point():
            raise TypeError(f"audio must be a float tensor with samples in [-1, 1], got dtype {audio.dtype}; "
                            "convert integer PCM with e.g. `audio.float() / 32768`")
        if audio.dim() == 2:
            audio = audio.unsqueeze(1)  # (B, 1, S)
        elif audio.dim() != 3:
            raise ValueError(f"audio must have shape [B, S] or [B, 1, S], got {tuple(audio.shape)}; "
                             "add a batch dimension with `audio[None]` for a single clip")
        if audio.shape[1] != 1:
            raise ValueError(f"audio must be mono [B, 1, S], got {audio.shape[1]} channels (shape "
                             f"{tuple(audio.shape)}); mix stereo down with `audio.mean(dim=1, keepdim=True)`, "
                             "or transpose a channels-last [B, S, 1] tensor with `audio.transpose(1, 2)`")
        hop = self.hop_lengths[-1]
        if audio.shape[-1] == 0 or audio.shape[-1] % hop:
            raise ValueError(f"audio length {audio.shape[-1]} must be a positive multiple of the largest hop "
                             f"({hop}); pad it, e.g. `torch.nn.functional.pad(audio, (0, {hop} - S % {hop}))`")
        if values and not torch.isfinite(audio).all():
            raise ValueError("audio contains NaN or infinite samples; clean the input (e.g. `torch.nan_to_num`)")
        return audio.to(self.dtype)

    def _check_codes(self, codes: torch.Tensor | list[torch.Tensor], level: int) -> torch.Tensor:
        if not 0 <= level < self.config.levels:
            raise ValueError(f"level must be in [0, {self.config.levels - 1}], got {level}")
        if isinstance(codes, (list, tuple)):
            if len(codes) != self.config.levels:
                raise ValueError(f"a list of codes needs one tensor per level ({self.config.levels}), got {len(codes)}")
            codes = codes[level]
        if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.is_complex():
            raise TypeError("codes must be an integer (Long) tensor [B, T] or a list of them per level, got "
                            f"{codes.dtype if isinstance(codes, torch.Tensor) else type(codes).__name__}")
        if codes.dim() != 2:
            raise ValueError(f"codes must have shape [B, T], got {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.config.l_bins):
            raise ValueError(f"codes must lie in [0, {self.config.l_bins - 1}], got range "
                             f"[{int(codes.min())}, {int(codes.max())}]")
        return codes.long()

    # --- public API --------------------------------------------------------------------------

    @torch.no_grad()
    @apply_forward_hook  # an offloaded VQ-VAE (enable_model_cpu_offload) moves to its device first
    def encode(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """Audio -> codes of every level.

        Args:
            audio: float `[B, S]` or `[B, 1, S]` mono at `config.sample_rate`; `S` must be a multiple
                of the largest hop (32 for the paper config). Stereo is refused: mix it down first.

        Returns:
            One LongTensor `[B, S // hop_l]` per level, level 0 (finest, UP) first.
        """
        x = self._check_audio(audio)
        return [quantizer.encode(encoder(x)) for encoder, quantizer in zip(self.encoders, self.quantizers)]

    @torch.no_grad()
    @apply_forward_hook
    def decode(self, codes: torch.Tensor | list[torch.Tensor], level: int = 0) -> torch.Tensor:
        """Codes of one level -> audio, with that level's decoder only.

        Args:
            codes: LongTensor `[B, T]` of level `level`, or the list returned by `encode` (then
                `codes[level]` is used and the other levels are ignored).
            level: which level's codes and decoder to use (0: hop 8 / UP, 1: hop 32 / LOW).

        Returns:
            Audio `[B, 1, T * hop_level]`.
        """
        codes = self._check_codes(codes, level)
        return self.decoders[level](self.quantizers[level].decode(codes))

    def forward(self, audio: torch.Tensor) -> HierarchicalVQVAEOutput:
        """Encode, quantise (updating the codebooks in training mode) and decode every level.

        The training objective is `im2wav.losses.vqvae.vqvae_loss(model, audio, loss_config)`.

        Args:
            audio: float `[B, S]` or `[B, 1, S]` mono, as for `encode`.

        Returns:
            A `HierarchicalVQVAEOutput`.
        """
        x = self._check_audio(audio, values=not self.training)
        reconstructions, codes, commit_losses, usage = [], [], [], []
        for encoder, quantizer, decoder in zip(self.encoders, self.quantizers, self.decoders):
            quantized = quantizer(encoder(x))
            reconstructions.append(decoder(quantized.quantized))
            codes.append(quantized.codes)
            commit_losses.append(quantized.commit_loss)
            usage.append(quantized.metrics)
        return HierarchicalVQVAEOutput(
            sample=reconstructions[0],
            reconstructions=tuple(reconstructions),
            codes=tuple(codes),
            commit_losses=tuple(commit_losses),
            codebook_usage={name: torch.stack([m[name] for m in usage]).mean() for name in usage[0]},
        )

    def codes_length(self, num_samples: int, level: int) -> int:
        """Number of level-`level` codes for `num_samples` audio samples."""
        return num_samples // self.hop_lengths[level]

    def extra_repr(self) -> str:
        return f"hop_lengths={self.hop_lengths}, codebook={self.config.l_bins}x{self.config.emb_width}"


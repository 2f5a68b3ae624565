"""The VQ-VAE's training objective: its weights, the data statistics it is normalised by, and the loss.

The model (`im2wav.models.vqvae.HierarchicalVQVAE`) encodes, quantises and decodes; this module
turns its output into the original (Jukebox) objective: per level a reconstruction loss (`lmix`),
a single- and a multi-resolution spectral loss, plus the weighted commitment loss of the codebooks.

Example:
    >>> import torch
    >>> from im2wav import HierarchicalVQVAE
    >>> from im2wav.losses.vqvae import VQVAELossConfig, vqvae_loss
    >>> model = HierarchicalVQVAE.from_preset("tiny").train()
    >>> out = vqvae_loss(model, torch.randn(2, 4096) * 0.1, VQVAELossConfig())
    >>> out.loss.backward()
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch

from ..models.vqvae import HierarchicalVQVAE
from . import audio as audio_losses

__all__ = ["VQVAELossConfig", "VQVAELossOutput", "vqvae_loss"]


@dataclass(frozen=True)
class VQVAELossConfig:
    """Loss weights, STFT sizes and data statistics of the VQ-VAE objective (defaults: the paper's).

    Args:
        commit: weight of the commitment loss.
        loss_fn: reconstruction loss, `"lmix"`, `"l1"` or `"l2"`.
        lmix_l1, lmix_l2, lmix_linf: weights inside `lmix`; `linf_k`: its top-k size.
        spectral: weight of the single-resolution spectral loss.
        spec_n_fft, spec_hop_length, spec_window_size: its STFT, also used by the
            `spectral_convergence` metric. The original hard-codes (2048, 256, 1536) here
            (`DefaultSTFTValues`); its hps `n_fft`/`hop_length`/`window_size` are not used by the loss.
        multispectral: weight of the multi-resolution spectral loss.
        multispec_n_fft, multispec_hop_length, multispec_window_size: its STFT resolutions.
        use_nonrelative_specloss: spectral loss = `||dS||_F / bandwidth_spec` (else spectral convergence).
        bandwidth_l1, bandwidth_l2, bandwidth_spec: training-data statistics the losses are divided
            by (`im2wav.losses.audio.bandwidth_stats`).
    """

    # the reconstruction term: L2 + 0.02 Linf (top-2048 squared errors), as the paper's VQ-VAE
    loss_fn: str = "lmix"
    lmix_l1: float = 0.0
    lmix_l2: float = 1.0
    lmix_linf: float = 0.02
    linf_k: int = 2048
    # the weights of the other terms
    commit: float = 0.02
    spectral: float = 0.0
    multispectral: float = 1.0
    use_nonrelative_specloss: bool = True
    # STFTs (n_fft, hop, window) of the spectral terms
    spec_n_fft: int = 2048
    spec_hop_length: int = 256
    spec_window_size: int = 1536
    multispec_n_fft: tuple[int, ...] = (2048, 1024, 512)
    multispec_hop_length: tuple[int, ...] = (240, 120, 50)
    multispec_window_size: tuple[int, ...] = (1200, 600, 240)
    # training-data statistics (measured by `bandwidth_stats`)
    bandwidth_l1: float = 1.0
    bandwidth_l2: float = 1.0
    bandwidth_spec: float = 1.0

    def __post_init__(self):
        if self.loss_fn not in ("lmix", "l1", "l2"):
            raise ValueError(f"loss_fn must be 'lmix', 'l1' or 'l2', got {self.loss_fn!r}")
        lengths = {len(self.multispec_n_fft), len(self.multispec_hop_length), len(self.multispec_window_size)}
        if len(lengths) != 1:
            raise ValueError("multispec_n_fft, multispec_hop_length and multispec_window_size need one entry per "
                             f"resolution, got {self.multispec_n_fft}, {self.multispec_hop_length}, "
                             f"{self.multispec_window_size}")
        for name in ("multispec_n_fft", "multispec_hop_length", "multispec_window_size"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # JSON lists -> tuples

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The names of the config's fields."""
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, values: dict) -> VQVAELossConfig:
        """The config from the known keys of `values` (others are ignored, e.g. a saved model config).

        Args:
            values: a dict such as a run's `loss` section or a pre-split model `config.json`.
        """
        return cls(**{k: v for k, v in values.items() if k in cls.field_names()})

    def to_dict(self) -> dict:
        """JSON-able fields (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def stft(self) -> tuple[int, int, int]:
        """`(n_fft, hop_length, win_length)` of the single-resolution spectral loss."""
        return self.spec_n_fft, self.spec_hop_length, self.spec_window_size

    @property
    def resolutions(self) -> tuple[tuple[int, int, int], ...]:
        """`(n_fft, hop_length, win_length)` of each resolution of the multi-resolution spectral loss."""
        return tuple(zip(self.multispec_n_fft, self.multispec_hop_length, self.multispec_window_size))


@dataclass
class VQVAELossOutput:
    """Result of `vqvae_loss`.

    Attributes:
        sample: level-0 reconstruction `[B, 1, S]`.
        reconstructions: every level's reconstruction, level 0 first.
        loss: scalar training loss (reconstruction + spectral + commitment terms).
        metrics: detached scalars, named as in the original (`recons_loss_l1` is level 0, ...), plus
            the codebooks' usage (`HierarchicalVQVAEOutput.codebook_usage`).
    """

    sample: torch.Tensor
    reconstructions: tuple[torch.Tensor, ...]
    loss: torch.Tensor
    metrics: dict[str, torch.Tensor]


def _reconstruction_loss(target: torch.Tensor, pred: torch.Tensor, kind: str, c: VQVAELossConfig) -> torch.Tensor:
    if kind == "l1":
        return audio_losses.l1_loss(target, pred, c.bandwidth_l1)
    if kind == "l2":
        return audio_losses.l2_loss(target, pred, c.bandwidth_l2)
    if kind == "linf":
        return audio_losses.linf_loss(target, pred, c.linf_k, c.bandwidth_l2)
    return audio_losses.lmix(target, pred, c.lmix_l1, c.lmix_l2, c.lmix_linf, c.linf_k, c.bandwidth_l1, c.bandwidth_l2)


def _magnitude(audio: torch.Tensor, stft: tuple[int, int, int]) -> torch.Tensor:
    """`[B, 1, S]` -> |STFT| `[B, F, T]`. A fresh view per call, as the audio losses take: the backward
    pass then sums the gradients in the original order, and training stays bitwise the same."""
    return audio_losses.stft_magnitude(audio[:, 0].float(), *stft)


def vqvae_loss(model: HierarchicalVQVAE, audio: torch.Tensor, config: VQVAELossConfig) -> VQVAELossOutput:
    """Run the VQ-VAE on `audio` (updating its codebooks in training mode) and score it with the original objective.

    Metric names keep the original's 1-based level suffix (`recons_loss_l1` is level 0).

    Args:
        model: the VQ-VAE.
        audio: float `[B, S]` or `[B, 1, S]` mono (see `HierarchicalVQVAE.encode`).
        config: the loss weights and data statistics.

    Returns:
        A `VQVAELossOutput`.
    """
    out = model(audio)
    x = audio.reshape(out.sample.shape).to(out.sample.dtype)  # (B, S) or (B, 1, S) -> (B, 1, S); checked by the model
    c = config
    # the target's magnitude spectrograms, once per STFT for every level (no gradient reaches the target)
    target_specs = {stft: _magnitude(x, stft) for stft in (c.stft, *c.resolutions)}
    metrics: dict[str, torch.Tensor] = {}
    recons = spec = multispec = torch.zeros((), device=x.device)
    for level in reversed(range(len(out.reconstructions))):
        x_out = out.reconstructions[level]
        this_recons = _reconstruction_loss(x, x_out, c.loss_fn, c)
        # at weight 0 (the paper's) the single-resolution term is only a metric: kept out of the backward pass
        with torch.set_grad_enabled(torch.is_grad_enabled() and c.spectral != 0):
            spec_pred = _magnitude(x_out, c.stft)
            if c.use_nonrelative_specloss:
                this_spec = audio_losses.magnitude_distance(target_specs[c.stft], spec_pred).mean() / c.bandwidth_spec
            else:
                this_spec = audio_losses.magnitude_convergence(target_specs[c.stft], spec_pred).mean()
        # `multi_resolution_spectral_distance`, with the target's spectrograms shared
        distances = [audio_losses.magnitude_distance(target_specs[r], _magnitude(x_out, r)) for r in c.resolutions]
        this_multispec = (sum(distances) / len(distances)).mean() / c.bandwidth_spec
        metrics[f"recons_loss_l{level + 1}"] = this_recons
        metrics[f"spectral_loss_l{level + 1}"] = this_spec
        metrics[f"multispectral_loss_l{level + 1}"] = this_multispec
        recons, spec, multispec = recons + this_recons, spec + this_spec, multispec + this_multispec
    commit_loss = sum(out.commit_losses)
    loss = recons + c.spectral * spec + c.multispectral * multispec + c.commit * commit_loss
    with torch.no_grad():
        x_out = out.sample  # level 0, the last level of the loop: `spec_pred` is its spectrogram
        metrics.update(
            recons_loss=recons, spectral_loss=spec, multispectral_loss=multispec, commit_loss=commit_loss,
            spectral_convergence=audio_losses.magnitude_convergence(target_specs[c.stft], spec_pred.detach()).mean(),
            l2_loss=_reconstruction_loss(x, x_out, "l2", c),
            l1_loss=_reconstruction_loss(x, x_out, "l1", c),
            linf_loss=_reconstruction_loss(x, x_out, "linf", c),
        )
    metrics.update(out.codebook_usage)
    return VQVAELossOutput(sample=out.sample, reconstructions=out.reconstructions, loss=loss,
                           metrics={k: v.detach() for k, v in metrics.items()})

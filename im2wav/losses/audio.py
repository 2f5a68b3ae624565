"""Waveform and spectral losses of the VQ-VAE, as plain functions.

All functions take a target and a prediction of the same shape, `[B, S]` or `[B, 1, S]`, and are
normalised, as in the original, by "bandwidth" statistics of the training data
(`bandwidth_stats`), so that the loss weights mean the same thing for loud and quiet datasets.
Per-item functions return `[B]`; reductions are left to the caller.
"""

from __future__ import annotations

import torch

# (n_fft, hop_length, win_length) of the original single-resolution spectral loss, spectral
# convergence and bandwidth statistics (Jukebox's fixed `DefaultSTFTValues`: window = 6 * hop).
DEFAULT_STFT: tuple[int, int, int] = (2048, 256, 1536)
# (n_fft, hop_length, win_length) of the original multi-resolution spectral loss.
MULTISPEC_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((2048, 240, 1200), (1024, 120, 600), (512, 50, 240))


def _mono(x: torch.Tensor) -> torch.Tensor:
    """`[B, S]` or `[B, 1, S]` -> float32 `[B, S]`."""
    if x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"expected mono audio [B, 1, S], got shape {tuple(x.shape)}")
        x = x[:, 0]
    if x.dim() != 2:
        raise ValueError(f"expected audio of shape [B, S] or [B, 1, S], got {tuple(x.shape)}")
    return x.float()


def l1_loss(target: torch.Tensor, pred: torch.Tensor, bandwidth_l1: float = 1.0) -> torch.Tensor:
    """`mean(|pred - target|) / bandwidth_l1` (scalar)."""
    return (_mono(pred) - _mono(target)).abs().mean() / bandwidth_l1


def l2_loss(target: torch.Tensor, pred: torch.Tensor, bandwidth_l2: float = 1.0) -> torch.Tensor:
    """`mean((pred - target)^2) / bandwidth_l2` (scalar)."""
    return (_mono(pred) - _mono(target)).pow(2).mean() / bandwidth_l2


def linf_loss(target: torch.Tensor, pred: torch.Tensor, k: int = 2048, bandwidth_l2: float = 1.0) -> torch.Tensor:
    """Mean of each item's `k` largest squared errors, `/ bandwidth_l2` (scalar).

    A soft L-infinity norm: it punishes the worst samples (clicks) that a mean hides.
    `k` is capped at the item length so short clips can be scored.
    """
    residual = (_mono(pred) - _mono(target)).pow(2)  # (B, S)
    values, _ = torch.topk(residual, min(k, residual.shape[1]), dim=1)
    return values.mean() / bandwidth_l2


def lmix(target: torch.Tensor, pred: torch.Tensor, l1: float = 0.0, l2: float = 1.0, linf: float = 0.02,
         linf_k: int = 2048, bandwidth_l1: float = 1.0, bandwidth_l2: float = 1.0) -> torch.Tensor:
    """The original reconstruction loss: `l1 * L1 + l2 * L2 + linf * Linf_topk` (scalar).

    Args:
        target, pred: audio `[B, S]` or `[B, 1, S]`.
        l1, l2, linf: weights of the three terms (a zero weight skips the term).
        linf_k: how many of each item's largest squared errors `Linf_topk` averages.
        bandwidth_l1: mean |x| of the data; normalises L1.
        bandwidth_l2: variance of the data; normalises L2 and Linf.
    """
    loss = torch.zeros((), device=pred.device)
    if l1:
        loss = loss + l1 * l1_loss(target, pred, bandwidth_l1)
    if l2:
        loss = loss + l2 * l2_loss(target, pred, bandwidth_l2)
    if linf:
        loss = loss + linf * linf_loss(target, pred, linf_k, bandwidth_l2)
    return loss


def stft_magnitude(audio: torch.Tensor, n_fft: int, hop_length: int, win_length: int) -> torch.Tensor:
    """|STFT| with a Hann window, centred frames and reflect padding: `[B, S]` -> `[B, n_fft//2+1, frames]`."""
    window = torch.hann_window(win_length, device=audio.device)
    spec = torch.stft(audio, n_fft, hop_length, win_length=win_length, window=window,
                      center=True, pad_mode="reflect", return_complex=True)
    return spec.abs()


def _frobenius(x: torch.Tensor) -> torch.Tensor:
    """Per-item Frobenius norm: `[B, ...]` -> `[B]`."""
    return x.reshape(x.shape[0], -1).pow(2).sum(dim=-1).sqrt()  # (B, F*T)


def magnitude_distance(spec_target: torch.Tensor, spec_pred: torch.Tensor) -> torch.Tensor:
    """`||spec_target - spec_pred||_F` per item of two `stft_magnitude`s -> `[B]`."""
    return _frobenius(spec_target - spec_pred)


def magnitude_convergence(spec_target: torch.Tensor, spec_pred: torch.Tensor, eps: float = 2e-3) -> torch.Tensor:
    """`||spec_target - spec_pred||_F / ||spec_target||_F` per item -> `[B]`; 0 where the target is silent.

    Items whose target spectrum norm is at most `eps` score 0.
    """
    target_norm = _frobenius(spec_target)
    residual_norm = _frobenius(spec_target - spec_pred)
    audible = (target_norm > eps).to(residual_norm.dtype)
    return residual_norm * audible / target_norm.clamp(min=eps)


def spectral_distance(
    target: torch.Tensor, pred: torch.Tensor, n_fft: int = 2048, hop_length: int = 256, win_length: int = 1536
) -> torch.Tensor:
    """`|| |STFT(target)| - |STFT(pred)| ||_F` per item -> `[B]` (not normalised)."""
    spec_target = stft_magnitude(_mono(target), n_fft, hop_length, win_length)
    spec_pred = stft_magnitude(_mono(pred), n_fft, hop_length, win_length)
    return magnitude_distance(spec_target, spec_pred)


def multi_resolution_spectral_distance(
    target: torch.Tensor,
    pred: torch.Tensor,
    resolutions: tuple[tuple[int, int, int], ...] = MULTISPEC_RESOLUTIONS,
) -> torch.Tensor:
    """Mean of `spectral_distance` over `(n_fft, hop_length, win_length)` resolutions -> `[B]`."""
    distances = [spectral_distance(target, pred, *resolution) for resolution in resolutions]
    return sum(distances) / len(distances)


def spectral_convergence(target: torch.Tensor, pred: torch.Tensor, n_fft: int = 2048, hop_length: int = 256,
                         win_length: int = 1536, eps: float = 2e-3) -> torch.Tensor:
    """Relative spectral error `||S_t - S_p||_F / ||S_t||_F` per item -> `[B]`.

    Items whose target spectrum norm is at most `eps` (silence) score 0.
    """
    spec_target = stft_magnitude(_mono(target), n_fft, hop_length, win_length)
    spec_pred = stft_magnitude(_mono(pred), n_fft, hop_length, win_length)
    return magnitude_convergence(spec_target, spec_pred, eps)


@torch.no_grad()
def bandwidth_stats(
    clips: list[torch.Tensor] | torch.Tensor, n_fft: int = 2048, hop_length: int = 256, win_length: int = 1536
) -> dict[str, float]:
    """The data statistics the losses are normalised by, from a set of mono clips.

    Args:
        clips: clips of shape `[S]` (a list, or a `[B, S]` tensor).
        n_fft, hop_length, win_length: STFT used for the `spec` statistic.

    Returns:
        `{"l2": variance of all samples, "l1": mean |x|, "spec": mean per-clip ||STFT||_F}`,
        computed in float64 as the original `calculate_bandwidth` does.
    """
    total = total_sq = total_abs = spec_total = 0.0
    n_samples = 0
    for clip in clips:
        clip = clip.double().reshape(1, -1)  # (1, S)
        spec_total += float(_frobenius(stft_magnitude(clip, n_fft, hop_length, win_length)))
        total += float(clip.sum())
        total_sq += float(clip.pow(2).sum())
        total_abs += float(clip.abs().sum())
        n_samples += clip.numel()
    if n_samples == 0:
        raise ValueError("bandwidth_stats needs at least one non-empty clip")
    mean = total / n_samples
    return {"l2": total_sq / n_samples - mean**2, "l1": total_abs / n_samples, "spec": spec_total / len(clips)}

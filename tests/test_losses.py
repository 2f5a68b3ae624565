"""Properties of the VQ-VAE losses in `im2wav.losses.audio`."""

from __future__ import annotations

import pytest
import torch

from im2wav.losses import audio as A

SMALL = (64, 16, 48)  # (n_fft, hop, win): fast, and valid for 256-sample clips


def clips(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(3, 256, generator=gen) * 0.2
    return target, target + torch.randn(3, 256, generator=gen) * 0.05


def test_losses_vanish_for_a_perfect_reconstruction():
    target, _ = clips()
    assert A.lmix(target, target, l1=1.0, l2=1.0, linf=1.0) == 0
    assert (A.spectral_distance(target, target, *SMALL) == 0).all()
    assert (A.multi_resolution_spectral_distance(target, target, (SMALL, (32, 8, 32))) == 0).all()
    assert (A.spectral_convergence(target, target, *SMALL) == 0).all()


def test_lmix_is_the_weighted_sum_and_uses_the_bandwidth():
    target, pred = clips()
    expected = 0.5 * A.l1_loss(target, pred, 2.0) + 1.5 * A.l2_loss(target, pred, 3.0) + 0.1 * A.linf_loss(
        target, pred, 10, 3.0)
    got = A.lmix(target, pred, l1=0.5, l2=1.5, linf=0.1, linf_k=10, bandwidth_l1=2.0, bandwidth_l2=3.0)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(A.l2_loss(target, pred, 4.0) * 4.0, (target - pred).pow(2).mean())


def test_linf_averages_the_largest_errors():
    target, pred = clips()
    residual = (target - pred).pow(2)
    assert A.linf_loss(target, pred, k=1) == residual.max(dim=1).values.mean()
    # With k = every sample it is the L2 loss; with k > length it is capped there.
    torch.testing.assert_close(A.linf_loss(target, pred, k=256), A.l2_loss(target, pred))
    torch.testing.assert_close(A.linf_loss(target, pred, k=10_000), A.l2_loss(target, pred))
    assert A.linf_loss(target, pred, k=8) >= A.linf_loss(target, pred, k=64)


def test_layouts_and_per_item_shapes():
    target, pred = clips()
    assert A.spectral_distance(target, pred, *SMALL).shape == (3,)
    torch.testing.assert_close(A.spectral_distance(target[:, None], pred[:, None], *SMALL),
                               A.spectral_distance(target, pred, *SMALL))
    with pytest.raises(ValueError, match="mono"):
        A.l2_loss(torch.zeros(1, 2, 8), torch.zeros(1, 2, 8))


def test_spectral_distance_is_the_frobenius_norm_of_the_magnitude_difference():
    target, pred = clips()
    window = torch.hann_window(48)
    mags = [torch.stft(x, 64, 16, 48, window, center=True, pad_mode="reflect", return_complex=True).abs()
            for x in (target, pred)]
    expected = torch.linalg.matrix_norm(mags[0] - mags[1])  # Frobenius per item
    torch.testing.assert_close(A.spectral_distance(target, pred, *SMALL), expected)


def test_multi_resolution_is_the_mean_over_resolutions():
    target, pred = clips()
    resolutions = (SMALL, (32, 8, 32), (16, 4, 12))
    expected = sum(A.spectral_distance(target, pred, *r) for r in resolutions) / 3
    torch.testing.assert_close(A.multi_resolution_spectral_distance(target, pred, resolutions), expected)
    assert A.MULTISPEC_RESOLUTIONS == ((2048, 240, 1200), (1024, 120, 600), (512, 50, 240))


def test_spectral_convergence_is_relative_and_ignores_silence():
    target, pred = clips()
    sc = A.spectral_convergence(target, pred, *SMALL)
    scaled = A.spectral_convergence(target * 10, pred * 10, *SMALL)
    torch.testing.assert_close(sc, scaled)  # scale invariant
    silent = A.spectral_convergence(torch.zeros(1, 256), torch.randn(1, 256), *SMALL)
    assert silent.item() == 0


def test_bandwidth_stats():
    target, _ = clips()
    stats = A.bandwidth_stats(list(target), *SMALL)
    assert stats["l2"] == pytest.approx(target.double().var(unbiased=False).item(), rel=1e-9)
    assert stats["l1"] == pytest.approx(target.double().abs().mean().item(), rel=1e-9)
    norms = [A.spectral_distance(c[None].double(), torch.zeros(1, 256).double(), *SMALL).item() for c in target]
    assert stats["spec"] == pytest.approx(sum(norms) / 3, rel=1e-6)  # spectral_distance runs in float32
    with pytest.raises(ValueError, match="at least one"):
        A.bandwidth_stats([])

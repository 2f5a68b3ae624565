"""Fréchet distance between Gaussian fits of two embedding sets, and FAD built on it.

FAD (Kilgour et al., 2019) fits a Gaussian to the embeddings of real and of generated audio and
reports the Fréchet (2-Wasserstein) distance between the two fits:

    d² = |μ_r - μ_g|² + tr(Σ_r + Σ_g - 2 (Σ_r Σ_g)^{1/2})

(the IM2WAV paper's Eq. 3 prints the mean term without the square; every FAD implementation,
the paper's included, squares it.)

The trace of the matrix square root is computed without scipy and without complex numbers:
`tr((Σ_r Σ_g)^{1/2}) = tr((A Σ_g A)^{1/2})` with `A = Σ_r^{1/2}`, because `Σ_r Σ_g` is similar to the
symmetric positive semi-definite `A Σ_g A`. Both square roots therefore come from symmetric
eigendecompositions in float64, whose eigenvalues are real; round-off negatives are clipped to 0.
This is what keeps near-singular covariances (fewer samples than dimensions) finite, where
`scipy.linalg.sqrtm` returns complex parts that other implementations patch with an `eps * I`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["GaussianStatistics", "fad", "frechet_distance", "gaussian_statistics"]

# Eigenvalues below -TOLERANCE * (largest |eigenvalue|) mean the matrix was not a covariance.
_NEGATIVE_EIGENVALUE_TOLERANCE = 1e-8


class GaussianStatistics:
    """Mean and covariance of an embedding set, in float64.

    Args:
        mean: `[D]`.
        cov: `[D, D]`, symmetric positive semi-definite.
        num_samples: how many embeddings the fit came from (for reports).
    """

    def __init__(self, mean: np.ndarray, cov: np.ndarray, num_samples: int | None = None):
        mean = np.asarray(mean, dtype=np.float64)
        cov = np.asarray(cov, dtype=np.float64)
        if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(f"expected a mean [D] and a covariance [D, D], got {mean.shape} and {cov.shape}")
        self.mean = mean
        self.cov = cov
        self.num_samples = num_samples

    def save(self, path: str) -> None:
        """Write the statistics to a `.npz` file (`mean`, `cov`, `num_samples`), e.g. to reuse the
        reference set's fit across many evaluations.

        Args:
            path: the `.npz` file to write.
        """
        np.savez(path, mean=self.mean, cov=self.cov, num_samples=-1 if self.num_samples is None else self.num_samples)

    @classmethod
    def load(cls, path: str) -> GaussianStatistics:
        """Read statistics written by `save`.

        Args:
            path: a `.npz` file with `mean` and `cov`.
        """
        with np.load(path) as data:
            num = int(data["num_samples"]) if "num_samples" in data else -1
            return cls(data["mean"], data["cov"], None if num < 0 else num)


def _as_float64_matrix(embeddings: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(embeddings, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D] (one embedding per row), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the audio and the embedding model")
    return array


def gaussian_statistics(embeddings: np.ndarray | torch.Tensor, name: str = "embeddings") -> GaussianStatistics:
    """Fit a Gaussian to embeddings: their mean and unbiased (N - 1) covariance, in float64.

    Args:
        embeddings: `[N, D]` array or tensor, one embedding per row, N >= 2.
        name: what to call the set in error messages.

    Raises:
        ValueError: fewer than 2 embeddings (no covariance can be estimated), a wrong shape, or
            non-finite values.
    """
    array = _as_float64_matrix(embeddings, name)
    num, dim = array.shape
    if num < 2:
        raise ValueError(
            f"{name} has {num} embedding(s): a covariance needs at least 2 (and FAD is only reliable with "
            f"many more samples than the {dim} embedding dimensions); evaluate more clips"
        )
    if num <= dim:
        warnings.warn(
            f"{name} has {num} embeddings of dimension {dim}: the covariance is rank-deficient and the "
            "Fréchet distance is strongly biased upwards; compare such numbers only at equal sample counts",
            stacklevel=3,
        )
    return GaussianStatistics(array.mean(axis=0), np.cov(array, rowvar=False).reshape(dim, dim), num)


def _psd_sqrt(matrix: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-based square root of a symmetric PSD matrix: (sqrt matrix, clipped eigenvalues)."""
    symmetric = (matrix + matrix.T) / 2  # remove round-off asymmetry so eigh's assumption holds
    eigenvalues, eigenvectors = np.linalg.eigh(symmetric)
    scale = max(float(np.abs(eigenvalues).max(initial=0.0)), np.finfo(np.float64).tiny)
    if eigenvalues.min(initial=0.0) < -_NEGATIVE_EIGENVALUE_TOLERANCE * scale * matrix.shape[0]:
        raise ValueError(
            f"{name} is not positive semi-definite (eigenvalue {eigenvalues.min():.3g}); pass a covariance "
            "matrix, e.g. from gaussian_statistics"
        )
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    return (eigenvectors * np.sqrt(eigenvalues)) @ eigenvectors.T, eigenvalues


def frechet_distance(first: GaussianStatistics, second: GaussianStatistics) -> float:
    """Fréchet distance `|μ1 - μ2|² + tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^{1/2})` between two Gaussians.

    Symmetric in its arguments, 0 for identical statistics, and exactly `|μ1 - μ2|²` when the
    covariances are equal.

    Args:
        first: statistics of one set (e.g. the reference audio).
        second: statistics of the other set (e.g. the generated audio).

    Raises:
        ValueError: the dimensions differ or a covariance is not positive semi-definite.
    """
    if first.mean.shape != second.mean.shape:
        raise ValueError(
            f"the embeddings have different dimensions ({first.mean.shape[0]} vs {second.mean.shape[0]}); "
            "embed both sets with the same model"
        )
    mean_term = float(np.sum((first.mean - second.mean) ** 2))
    sqrt_first, _ = _psd_sqrt(first.cov, "the first covariance")
    _, eigenvalues = _psd_sqrt(sqrt_first @ second.cov @ sqrt_first, "the covariance product")
    trace_sqrt = float(np.sum(np.sqrt(eigenvalues)))  # tr((Σ1 Σ2)^{1/2})
    distance = mean_term + float(np.trace(first.cov) + np.trace(second.cov)) - 2.0 * trace_sqrt
    # The exact value is >= 0; round-off can leave a tiny negative for identical inputs.
    return max(distance, 0.0)


def fad(
    real_embeddings: np.ndarray | torch.Tensor | GaussianStatistics,
    generated_embeddings: np.ndarray | torch.Tensor | GaussianStatistics,
) -> float:
    """Fréchet Audio Distance between real and generated audio embeddings.

    Args:
        real_embeddings: `[N_r, D]` embeddings of the reference audio, or their precomputed
            `GaussianStatistics`.
        generated_embeddings: `[N_g, D]` embeddings of the generated audio (same embedding model),
            or their statistics.

    Returns:
        The Fréchet distance between the two Gaussian fits (lower is better).
    """
    real = real_embeddings if isinstance(real_embeddings, GaussianStatistics) else gaussian_statistics(
        real_embeddings, "real_embeddings"
    )
    generated = generated_embeddings if isinstance(generated_embeddings, GaussianStatistics) else gaussian_statistics(
        generated_embeddings, "generated_embeddings"
    )
    return frechet_distance(real, generated)

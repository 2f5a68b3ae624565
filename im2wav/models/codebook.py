"""EMA vector-quantisation codebook (one per VQ-VAE level).

Numerics follow the original Jukebox `BottleneckBlock`: nearest code by
`|x|^2 - 2 x.k + |k|^2`, straight-through gradients, commitment loss `||sg(x_q) - x||^2 / numel`,
and in training an exponential moving average of per-code sums and counts, with every code whose
EMA count fell below `revival_threshold` replaced by a random encoder output from the batch.
The state lives in buffers so that it is saved, loaded and moved with the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

# --- tiny pure helpers ------------------------------------------------------------------------


def squared_distances(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """`|x|^2 - 2 x.k + |k|^2` for every row of `x` [N, D] and code of `codebook` [K, D] -> [N, K].

    Evaluated in the original's order of operations so that argmin ties break the same way.
    """
    codebook_t = codebook.t()  # (D, K)
    return (
        x.pow(2).sum(dim=-1, keepdim=True)
        - 2 * torch.matmul(x, codebook_t)
        + codebook_t.pow(2).sum(dim=0, keepdim=True)
    )


def ema_inplace(moving: torch.Tensor, new: torch.Tensor, decay: float) -> None:
    """`moving <- decay * moving + (1 - decay) * new`, in place."""
    moving.mul_(decay).add_(new, alpha=1 - decay)


def tile_rows(x: torch.Tensor, min_rows: int) -> torch.Tensor:
    """Repeat `x` [N, D] until it has at least `min_rows` rows, jittering the copies.

    The jitter (std `0.01 / sqrt(D)`) keeps codes drawn from repeated rows distinct.
    """
    n, dim = x.shape
    if n >= min_rows:
        return x
    repeats = (min_rows + n - 1) // n
    x = x.repeat(repeats, 1)
    return x + torch.randn_like(x) * (0.01 / math.sqrt(dim))


def random_rows(x: torch.Tensor, num: int) -> torch.Tensor:
    """`num` distinct random rows of `x` [N, D] (tiled first when `N < num`) -> [num, D]."""
    x = tile_rows(x, num)
    return x[torch.randperm(x.shape[0], device=x.device)[:num]]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def code_entropy(counts: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the code-usage distribution given per-code counts [K]."""
    prob = counts / counts.sum().clamp_min(1e-12)
    return -(prob * torch.log(prob + 1e-8)).sum()


# --- module -----------------------------------------------------------------------------------


@dataclass
class CodebookOutput:
    """What `EMACodebook.forward` returns.

    Args:
        codes: LongTensor [B, T], index of the nearest code per time step.
        quantized: [B, D, T] code vectors with straight-through gradients to the input.
        commit_loss: scalar `||sg(quantized) - x||^2 / numel`.
        metrics: detached scalars: `fit` (mean squared distance to the chosen code), `prenorm`,
            `entropy` and `perplexity` of this batch's code usage, `used_curr` (codes used at least
            `revival_threshold` times in this batch) and, in training, `usage` (codes kept by the
            EMA update, the rest were revived) and `dk` (RMS change of the codebook).
    """

    codes: torch.Tensor
    quantized: torch.Tensor
    commit_loss: torch.Tensor
    metrics: dict[str, torch.Tensor]


class EMACodebook(nn.Module):
    """A codebook of `num_codes` vectors of width `dim`, learnt by EMA (not by gradients).

    In `train()` mode `forward` updates the codebook from the batch (the first batch initialises
    it when `initialized` is false); in `eval()` mode it only quantises.

    Args:
        num_codes: codebook size `K` (`l_bins`).
        dim: code width `D` (`emb_width`).
        decay: EMA decay `mu` of the per-code sums and counts.
        revival_threshold: codes whose EMA count is below this are replaced by random batch vectors.
    """

    def __init__(self, num_codes: int, dim: int, decay: float = 0.99, revival_threshold: float = 1.0):
        super().__init__()
        self.num_codes = num_codes
        self.dim = dim
        self.decay = decay
        self.revival_threshold = revival_threshold
        self.register_buffer("codebook", torch.zeros(num_codes, dim))  # (K, D)
        self.register_buffer("cluster_sum", torch.zeros(num_codes, dim))  # EMA of sum of assigned x
        self.register_buffer("cluster_size", torch.ones(num_codes))  # EMA of assignment counts
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def set_codebook(self, codebook: torch.Tensor, expected_count: float = 1.0) -> None:
        """Use `codebook` [K, D] as the codes and restart the EMA state from it.

        The EMA counts restart at `expected_count` per code (the original `restore_k`).
        """
        if codebook.shape != self.codebook.shape:
            raise ValueError(f"codebook must have shape {tuple(self.codebook.shape)}, got {tuple(codebook.shape)}")
        self.codebook.copy_(codebook)
        self.cluster_size.fill_(expected_count)
        self.cluster_sum.copy_(codebook * expected_count)
        self.initialized.fill_(True)

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest code for each row of `x` [N, D] -> (codes [N], min squared distance [N])."""
        min_distance, codes = squared_distances(x, self.codebook.to(x.dtype)).min(dim=-1)
        return codes, min_distance

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors for `codes` [...] -> [..., D]."""
        return F.embedding(codes, self.codebook)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes of encoder outputs `x` [B, D, T] -> LongTensor [B, T]."""
        batch, _, length = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            codes, _ = self.quantize(x.float().permute(0, 2, 1).reshape(-1, self.dim))  # (B*T, D)
        return codes.view(batch, length)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors for `codes` [B, T] -> [B, D, T]."""
        return self.dequantize(codes).permute(0, 2, 1)

    @torch.no_grad()
    def _ema_update(self, x: torch.Tensor, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """One EMA step on flattened encoder outputs `x` [N, D] assigned to `codes` [N]."""
        onehot = F.one_hot(codes, self.num_codes).to(x.dtype)  # (N, K)
        batch_sum = onehot.t() @ x  # (K, D)
        batch_count = onehot.sum(dim=0)  # (K,)
        replacements = random_rows(x, self.num_codes)  # (K, D)
        if _distributed():
            # Every rank must hold the same codebook: sum the statistics, share rank 0's draws.
            dist.all_reduce(batch_sum)
            dist.all_reduce(batch_count)
            dist.broadcast(replacements, 0)
        old_codebook = self.codebook.clone()
        ema_inplace(self.cluster_sum, batch_sum, self.decay)
        ema_inplace(self.cluster_size, batch_count, self.decay)
        # A code keeps its EMA mean only if it was used often enough lately; otherwise it is revived
        # at a random encoder output, so it can start attracting vectors again.
        alive = (self.cluster_size >= self.revival_threshold).to(x.dtype).unsqueeze(1)  # (K, 1)
        means = self.cluster_sum / self.cluster_size.unsqueeze(1)
        self.codebook.copy_(alive * means + (1 - alive) * replacements)
        return {
            "usage": alive.sum(),
            "dk": torch.linalg.vector_norm(self.codebook - old_codebook) / math.sqrt(old_codebook.numel()),
        }

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        """Codes = random rows of the first training batch `x` [N, D] (rank 0's, when distributed)."""
        codebook = random_rows(x, self.num_codes)
        if _distributed():
            dist.broadcast(codebook, 0)
        self.set_codebook(codebook)

    def forward(self, x: torch.Tensor) -> CodebookOutput:
        """Quantise encoder outputs `x` [B, D, T] (and update the codebook in training).

        Args:
            x: encoder outputs, [B, D, T].

        Returns:
            A `CodebookOutput`.
        """
        batch, dim, length = x.shape
        if dim != self.dim:
            raise ValueError(f"expected {self.dim} channels, got input of shape {tuple(x.shape)}")
        # Distances and EMA sums in half precision pick wrong codes and drift: always float32.
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = self._quantize_and_update(x.float(), batch, length)
        out.quantized = out.quantized.to(x.dtype)  # a half-precision decoder gets its own dtype back
        return out

    def _quantize_and_update(self, x: torch.Tensor, batch: int, length: int) -> CodebookOutput:
        dim = self.dim
        flat = x.permute(0, 2, 1).reshape(-1, dim)  # (B*T, D)
        if self.training and not bool(self.initialized):
            self._initialize(flat.detach())
        codes, min_distance = self.quantize(flat)
        quantized = self.dequantize(codes).to(flat.dtype)  # (B*T, D)
        metrics = {}
        if self.training:
            metrics.update(self._ema_update(flat.detach(), codes))
        commit_loss = (quantized.detach() - flat).pow(2).sum() / flat.numel()
        # Straight-through: the forward value is the code, the gradient flows to `x` unchanged.
        quantized = flat + (quantized - flat).detach()
        with torch.no_grad():
            counts = torch.bincount(codes, minlength=self.num_codes).to(flat.dtype)
            entropy = code_entropy(counts)
            metrics.update(
                fit=min_distance.mean(),
                prenorm=torch.linalg.vector_norm(flat - flat.mean()) / math.sqrt(flat.numel()),
                entropy=entropy,
                perplexity=entropy.exp(),
                used_curr=(counts >= self.revival_threshold).sum().to(flat.dtype),
            )
        return CodebookOutput(
            codes=codes.view(batch, length),
            quantized=quantized.view(batch, length, dim).permute(0, 2, 1),  # (B, D, T)
            commit_loss=commit_loss,
            metrics={k: v.detach() for k, v in metrics.items()},
        )

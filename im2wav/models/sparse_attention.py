"""Factorized sparse self-attention and the pre-norm transformer layer of the IM2WAV prior.

The sequence of `n_ctx` tokens is cut into `blocks` blocks of `block_ctx` tokens. Layer `i` uses
kind `("block", "transpose", "previous")[i % 3]`:

- `block`: causal attention within the token's own block;
- `transpose`: causal attention across blocks, to the tokens at the same in-block position;
- `previous`: attention to every token of the previous block, without a mask; block 0 attends to
  all-zero keys/values, so its output is zero (before the output projection's bias).

Numerics follow the original (Jukebox) implementation in eval mode: q.k is scaled by
`1/sqrt(head_dim)`, masked positions never contribute, no final LayerNorm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..kv_cache import ATTENTION_KINDS, SparseKVCache


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """`x * sigmoid(1.702 x)`, the MLP activation of the original prior."""
    return x * torch.sigmoid(1.702 * x)


def attention_kind(layer: int) -> str:
    """Attention kind of transformer layer `layer` (the original's `attn_order=2`)."""
    return ATTENTION_KINDS[layer % 3]


class FactorizedAttention(nn.Module):
    """One sparse self-attention layer (`kind` fixes which past tokens a query sees).

    Args:
        width: model width `D`.
        attn_width: q/k/v width (`m_attn * width`).
        heads: attention heads; `attn_width` must be divisible by it.
        n_ctx: context length.
        blocks: number of attention blocks; `n_ctx` must be divisible by it.
        kind: `"block"`, `"transpose"` or `"previous"`.
    """

    def __init__(self, width: int, attn_width: int, heads: int, n_ctx: int, blocks: int, kind: str):
        super().__init__()
        if attn_width % heads:
            raise ValueError(f"attention width {attn_width} is not divisible by heads={heads}")
        if n_ctx % blocks:
            raise ValueError(f"n_ctx={n_ctx} is not divisible by blocks={blocks}")
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention kind {kind!r}; expected one of {ATTENTION_KINDS}")
        self.kind = kind
        self.heads = heads
        self.head_dim = attn_width // heads
        self.block_ctx = n_ctx // blocks
        self.qkv = nn.Linear(width, 3 * attn_width)
        self.proj = nn.Linear(attn_width, width)

    def _split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (B, T, C)
        # (B, T, C) -> (B, H, T, D_head)
        return tuple(t.view(B, T, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))

    def _merge_heads(self, a: torch.Tensor) -> torch.Tensor:
        B, H, T, Dh = a.shape
        return self.proj(a.transpose(1, 2).reshape(B, T, H * Dh))  # (B, H, T, D_head) -> (B, T, D)

    def _sparse_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Full-sequence attention; q/k/v [B, H, T, D_head] with T a multiple of `block_ctx`."""
        B, H, T, Dh = q.shape
        nb, bc = T // self.block_ctx, self.block_ctx
        scale = Dh**-0.5
        if self.kind == "block":
            # (B, H, T, Dh) -> (B, H*nb, bc, Dh): causal attention inside each block
            q, k, v = (t.reshape(B, H * nb, bc, Dh) for t in (q, k, v))
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale).reshape(B, H, T, Dh)
        if self.kind == "transpose":
            # (B, H, T, Dh) -> (B, H, bc, nb, Dh) -> (B, H*bc, nb, Dh): causal across blocks
            q, k, v = (t.reshape(B, H, nb, bc, Dh).transpose(2, 3).reshape(B, H * bc, nb, Dh) for t in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
            return a.reshape(B, H, bc, nb, Dh).transpose(2, 3).reshape(B, H, T, Dh)
        # previous: block b attends to all of block b-1; block 0 to zeros
        q = q.reshape(B, H * nb, bc, Dh)
        k, v = (F.pad(t.reshape(B, H, nb, bc, Dh)[:, :, :-1], (0, 0, 0, 0, 1, 0)).reshape(B, H * nb, bc, Dh)
                for t in (k, v))  # (B, H, nb, bc, Dh) shifted by one block -> (B, H*nb, bc, Dh)
        return F.scaled_dot_product_attention(q, k, v, scale=scale).reshape(B, H, T, Dh)

    def forward(self, x: torch.Tensor, cache: SparseKVCache | None = None) -> torch.Tensor:
        """Attention over a sequence that starts at position 0.

        Args:
            x: [B, T, D], T <= n_ctx.
            cache: when given, the keys/values of these T positions are written into it (prefill).

        Returns:
            [B, T, D].
        """
        B, T, _ = x.shape
        q, k, v = self._split_heads(x)
        if cache is not None:
            cache.update(torch.arange(T, device=x.device), k, v)
        pad = -T % self.block_ctx
        if pad:  # padding at the end never reaches earlier positions: every kind is causal
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        a = self._sparse_attention(q, k, v)[:, :, :T]
        return self._merge_heads(a)

    def decode(self, x: torch.Tensor, pos: int, cache: SparseKVCache) -> torch.Tensor:
        """Attention of a single new token at absolute position `pos`, reading the cache.

        Args:
            x: [B, 1, D].
            pos: position of the token (all batch rows decode the same position).
            cache: this layer's cache, holding every position before `pos` that this kind reads.

        Returns:
            [B, 1, D].
        """
        q, k, v = self._split_heads(x)
        cache.update(pos, k, v)
        kv = cache.read(pos)
        if kv is None:
            a = torch.zeros_like(q)
        else:
            k, v = kv
            a = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), scale=self.head_dim**-0.5)
        return self._merge_heads(a)


class TransformerLayer(nn.Module):
    """Pre-norm residual block: `h = x + a + m`, `a = attn(ln(x))`, `m = mlp(ln(x + a))`.

    Args:
        width: model width `D`.
        attn_width: q/k/v width.
        mlp_width: hidden width of the MLP (`m_mlp * width`).
        heads, n_ctx, blocks, kind: see `FactorizedAttention`.
    """

    def __init__(self, width: int, attn_width: int, mlp_width: int, heads: int, n_ctx: int, blocks: int, kind: str):
        super().__init__()
        self.attn_norm = nn.LayerNorm(width, eps=1e-5)
        self.attn = FactorizedAttention(width, attn_width, heads, n_ctx, blocks, kind)
        self.mlp_norm = nn.LayerNorm(width, eps=1e-5)
        self.mlp_fc = nn.Linear(width, mlp_width)
        self.mlp_proj = nn.Linear(mlp_width, width)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp_proj(quick_gelu(self.mlp_fc(x)))

    def forward(self, x: torch.Tensor, cache: SparseKVCache | None = None) -> torch.Tensor:
        """[B, T, D] -> [B, T, D] for positions `0 .. T-1`; with `cache`, their keys/values are stored (prefill)."""
        a = self.attn(self.attn_norm(x), cache)
        return x + a + self._mlp(self.mlp_norm(x + a))

    def decode(self, x: torch.Tensor, pos: int, cache: SparseKVCache) -> torch.Tensor:
        """[B, 1, D] -> [B, 1, D] for the one token at position `pos`, reading and extending `cache`."""
        a = self.attn.decode(self.attn_norm(x), pos, cache)
        return x + a + self._mlp(self.mlp_norm(x + a))

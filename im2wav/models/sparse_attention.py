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
from einops import rearrange
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
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (B, T, C)
        return tuple(rearrange(t, "b t (h d) -> b h t d", h=self.heads) for t in (q, k, v))  # (B, H, T, Dh)

    def _merge_heads(self, a: torch.Tensor) -> torch.Tensor:
        return self.proj(rearrange(a, "b h t d -> b t (h d)"))  # (B, H, T, Dh) -> (B, T, D)

    def _sparse_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Full-sequence attention; q/k/v [B, H, T, Dh] with T a multiple of `block_ctx`."""
        bc, scale = self.block_ctx, self.head_dim**-0.5
        H = q.shape[1]
        if self.kind == "block":  # causal attention inside each block `n`, over in-block positions `j`
            q, k, v = (rearrange(t, "b h (n j) d -> b (h n) j d", j=bc) for t in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
            return rearrange(a, "b (h n) j d -> b h (n j) d", h=H)
        if self.kind == "transpose":  # causal attention across blocks `n`, at each in-block position `j`
            q, k, v = (rearrange(t, "b h (n j) d -> b (h j) n d", j=bc) for t in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
            return rearrange(a, "b (h j) n d -> b h (n j) d", h=H)
        # previous: block n attends to all of block n-1; block 0 to zeros
        q = rearrange(q, "b h (n j) d -> b (h n) j d", j=bc)
        k, v = (rearrange(F.pad(rearrange(t, "b h (n j) d -> b h n j d", j=bc)[:, :, :-1], (0, 0, 0, 0, 1, 0)),
                          "b h n j d -> b (h n) j d") for t in (k, v))  # shifted by one block
        a = F.scaled_dot_product_attention(q, k, v, scale=scale)
        return rearrange(a, "b (h n) j d -> b h (n j) d", h=H)

    def forward(
        self, x: torch.Tensor, input_pos: torch.Tensor | None = None, cache: SparseKVCache | None = None
    ) -> torch.Tensor:
        """Attention of positions `input_pos` (default `0 .. T-1`).

        Args:
            x: [B, T, D].
            input_pos: LongTensor [T] of the positions of `x`. Without a cache or with T > 1 they must be
                `0 .. T-1` (a window from its start; with a cache this is the prefill). With a cache and
                T == 1 it is any position whose predecessors the cache holds (one decoding step).
            cache: this layer's cache: the keys/values of these positions are written into it, and a
                decoding step reads the past from it.

        Returns:
            [B, T, D].
        """
        B, T, _ = x.shape
        q, k, v = self._split_heads(x)
        if cache is not None:
            if input_pos is None:
                input_pos = torch.arange(T, device=x.device)
            cache.update(input_pos, k, v)
            if T == 1:  # one decoding step: a fixed-size read of the cache, masked
                return self._merge_heads(self._cached_attention(q, *cache.read(input_pos)))
        pad = -T % self.block_ctx
        if pad:  # padding at the end never reaches earlier positions: every kind is causal
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        a = self._sparse_attention(q, k, v)[:, :, :T]
        return self._merge_heads(a)

    def _cached_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """q [B, H, 1, Dh] over the cache slab k/v [B, H, L, Dh]; `mask` [1, L] marks the slots read.

        A query that reads nothing (the previous-block kind in block 0) gets zeros, as in the original
        where block 0 attends to all-zero keys and values.
        """
        scores = torch.matmul(q, k.to(q.dtype).transpose(-1, -2)) * self.head_dim**-0.5  # (B, H, 1, L)
        probs = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).nan_to_num(0.0)
        return torch.matmul(probs, v.to(q.dtype))  # (B, H, 1, Dh)


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

    def forward(
        self, x: torch.Tensor, input_pos: torch.Tensor | None = None, cache: SparseKVCache | None = None
    ) -> torch.Tensor:
        """[B, T, D] -> [B, T, D] for positions `input_pos` (see `FactorizedAttention.forward`)."""
        a = self.attn(self.attn_norm(x), input_pos, cache)
        return x + a + self._mlp(self.mlp_norm(x + a))

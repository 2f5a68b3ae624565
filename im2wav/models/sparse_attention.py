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

from ..kv_cache import ATTENTION_KINDS, SparseKVCache, StepPlan


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """`x * sigmoid(1.702 x)`, the MLP activation of the original prior."""
    return x * torch.sigmoid(1.702 * x)


def step_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)` inside a decoding step.

    Traced by torch.compile, it is a product and a separate bias add: the add then fuses into the
    elementwise kernel that follows, where a CPU `addmm` first copies the bias into its output (about
    0.1 ms of a 0.8 ms step at width 256). Eager, one `addmm` is the cheaper call.
    """
    if not torch.compiler.is_compiling():
        return layer(x)
    return (x.flatten(0, -2) @ layer.weight.t()).view(*x.shape[:-1], -1) + layer.bias


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
        self, x: torch.Tensor, input_pos: torch.Tensor | None = None, cache: SparseKVCache | None = None,
        plan: StepPlan | None = None,
    ) -> torch.Tensor:
        """Attention of a window from its start, or of one decoding step.

        Args:
            x: [B, T, D].
            input_pos: LongTensor [T], the positions `0 .. T-1` of `x` (default). With a `cache` their
                keys/values are written into it (the prefill).
            cache: this layer's cache.
            plan: one decoding step (T == 1, with `cache`): this kind's `StepPlan` for the position;
                the step writes its key/value and reads the past through a fixed-size masked slab.

        Returns:
            [B, T, D].
        """
        if plan is not None:
            return self._step(x, cache, plan)
        B, T, _ = x.shape
        q, k, v = self._split_heads(x)
        if cache is not None:
            cache.update(input_pos if input_pos is not None else torch.arange(T, device=x.device), k, v)
        pad = -T % self.block_ctx
        if pad:  # padding at the end never reaches earlier positions: every kind is causal
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        a = self._sparse_attention(q, k, v)[:, :, :T]
        return self._merge_heads(a)

    def _step(self, x: torch.Tensor, cache: SparseKVCache, plan: StepPlan) -> torch.Tensor:
        """One token [B, 1, D] -> [B, 1, D]; few operations, since a step runs once per token and layer."""
        B = x.shape[0]
        qkv = step_linear(self.qkv, x).view(1, B, 3, self.heads, self.head_dim)  # (B, 1, 3C) -> (1, B, q|k|v, H, Dh)
        k, v = cache.step(plan, qkv[:, :, 1:].transpose(1, 2))  # new (1, 2, B, H, Dh) in; (B, H, L, Dh) out
        q = qkv[0, :, 0, :, None]  # (B, H, 1, Dh)
        scale = self.head_dim**-0.5
        if torch.compiler.is_compiling():  # one query over a few dozen slots: written out, it fuses into one
            # kernel with the cache write and the read (SDPA stays an opaque call of several microseconds)
            weights = torch.softmax((q * k).sum(-1) * scale + plan.mask, dim=-1)  # (B, H, L)
            a = (weights[..., None] * v).sum(2, keepdim=True)  # (B, H, 1, Dh)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=plan.mask, scale=scale)
        if plan.gate is not None:  # the previous-block kind reads nothing in block 0: zeros, as the original
            a = a * plan.gate
        return step_linear(self.proj, a.view(B, self.heads * self.head_dim)[:, None])  # (B, H, 1, Dh) -> (B, 1, D)


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
        return step_linear(self.mlp_proj, quick_gelu(step_linear(self.mlp_fc, x)))

    def forward(
        self, x: torch.Tensor, input_pos: torch.Tensor | None = None, cache: SparseKVCache | None = None,
        plan: StepPlan | None = None,
    ) -> torch.Tensor:
        """[B, T, D] -> [B, T, D] (see `FactorizedAttention.forward` for the cached arguments)."""
        h = x + self.attn(self.attn_norm(x), input_pos, cache, plan)
        return h + self._mlp(self.mlp_norm(h))

"""Key/value caches for cached (incremental) decoding with the prior's factorized sparse attention.

Each attention kind reads a different part of the past, so each layer's cache keeps only that part:

| kind        | reads at position `p` (block `b = p // block_ctx`, in-block index `j = p % block_ctx`) | slots kept |
|-------------|------------------------------------------------------------------------------------------|------------|
| `block`     | positions `b*block_ctx .. p` (its own block, causally)                                    | `block_ctx` (ring buffer) |
| `transpose` | positions `j, j + block_ctx, ..., p` (same in-block index in every block so far)          | `n_ctx`, laid out `[j, b]` |
| `previous`  | the whole block `b - 1` (nothing for block 0)                                             | `2 * block_ctx` (ring buffer of two blocks) |

Fixed shapes: a decoding step reads a slab whose size does not depend on the position (`block_ctx`,
`blocks` or `block_ctx` slots) together with a boolean mask of the slots that count, and indexes it
with the position as a tensor. Nothing in a step depends on a Python int that changes from step to
step, so one step compiles once (`torch.compile(fullgraph=True)`) and can be captured as a CUDA graph.

The caches are allocated once per generation and written in place (`update`), never grown with
`torch.cat`. `PriorKVCache` also holds the conditioning of the current window (`start`, `x_cond`),
written once per window by the prefill, so a decoding step needs nothing but the token and its position.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

ATTENTION_KINDS = ("block", "transpose", "previous")


def _static(buffer: torch.Tensor) -> torch.Tensor:
    """Tell torch.compile / CUDA graphs that this buffer keeps its address (it is updated in place)."""
    if hasattr(torch, "_dynamo") and hasattr(torch._dynamo, "mark_static_address"):
        torch._dynamo.mark_static_address(buffer)
    return buffer


class SparseKVCache(nn.Module):
    """The key/value cache of one attention layer, shaped for its attention kind.

    Args:
        kind: `"block"`, `"transpose"` or `"previous"` (see the module docstring).
        batch_size: number of sequences decoded together (both guidance branches count).
        heads: attention heads.
        head_dim: width of one head.
        n_ctx: context length of the prior.
        block_ctx: tokens per attention block.
        dtype, device: of the cache tensors.
    """

    def __init__(
        self,
        kind: str,
        batch_size: int,
        heads: int,
        head_dim: int,
        n_ctx: int,
        block_ctx: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention kind {kind!r}; expected one of {ATTENTION_KINDS}")
        self.kind = kind
        self.block_ctx = block_ctx
        self.blocks = n_ctx // block_ctx
        self.num_slots = {"block": block_ctx, "transpose": n_ctx, "previous": 2 * block_ctx}[kind]
        shape = (batch_size, heads, self.num_slots, head_dim)  # (B, H, slots, D_head)
        self.register_buffer("k_cache", _static(torch.zeros(shape, dtype=dtype, device=device)), persistent=False)
        self.register_buffer("v_cache", _static(torch.zeros(shape, dtype=dtype, device=device)), persistent=False)
        # slot index of each read slab entry, for the masks (a buffer: no allocation per step)
        span = {"block": block_ctx, "transpose": self.blocks, "previous": block_ctx}[kind]
        self.register_buffer("_span", torch.arange(span, device=device), persistent=False)

    def slots(self, input_pos: torch.Tensor) -> torch.Tensor:
        """Cache slot of each absolute position."""
        if self.kind == "transpose":
            return (input_pos % self.block_ctx) * self.blocks + input_pos // self.block_ctx
        return input_pos % self.num_slots

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write the keys/values of `input_pos` (ascending positions) into their slots.

        Only the last `num_slots` positions are written: earlier ones would be overwritten in a ring
        buffer anyway, and this layer never reads them again.

        Args:
            input_pos: LongTensor [S] of absolute positions.
            k, v: [B, H, S, D_head].
        """
        if input_pos.shape[0] > self.num_slots:  # a static shape: no host sync
            input_pos, k, v = input_pos[-self.num_slots:], k[:, :, -self.num_slots:], v[:, :, -self.num_slots:]
        slots = self.slots(input_pos)
        self.k_cache.index_copy_(2, slots, k.to(self.k_cache.dtype))
        self.v_cache.index_copy_(2, slots, v.to(self.v_cache.dtype))

    def read(self, input_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys/values the query at position `input_pos` attends to, as a fixed-size slab and a mask.

        Args:
            input_pos: LongTensor [1], the position being decoded (already written with `update`).

        Returns:
            `(k, v, mask)`: k and v [B, H, L, D_head] with `L` fixed per kind, and a BoolTensor [1, L]
            of the slots the query reads. For the previous-block kind in block 0 the mask is all
            False: the query reads nothing and its attention output is zero.
        """
        block, index = input_pos // self.block_ctx, input_pos % self.block_ctx  # [1], [1]
        if self.kind == "block":  # the ring holds this block's slots 0..index (later slots: last block)
            return self.k_cache, self.v_cache, (self._span <= index)[None]
        if self.kind == "transpose":
            # (B, H, block_ctx * blocks, Dh) -> (B, H, block_ctx, blocks, Dh): row `index`, blocks 0..block
            k, v = (rearrange(t, "b h (j n) d -> b h j n d", n=self.blocks).index_select(2, index)[:, :, 0]
                    for t in (self.k_cache, self.v_cache))
            return k, v, (self._span <= block)[None]
        # previous: (B, H, 2 * block_ctx, Dh) -> (B, H, 2, block_ctx, Dh), the half of block - 1
        half = (block - 1) % 2
        k, v = (rearrange(t, "b h (r j) d -> b h r j d", r=2).index_select(2, half)[:, :, 0]
                for t in (self.k_cache, self.v_cache))
        return k, v, (block > 0).expand(self.block_ctx)[None]


class PriorKVCache(nn.Module):
    """The caches of every transformer layer of one prior, plus the current window's conditioning.

    Allocated once per generation (`Im2WavPrior.new_kv_cache`); every buffer is written in place.

    Args:
        kinds: attention kind of each layer, in order.
        batch_size, heads, head_dim, n_ctx, block_ctx, dtype, device: see `SparseKVCache`.
        width: model width `D` (of the conditioning buffers).
    """

    def __init__(
        self,
        kinds: list[str],
        batch_size: int,
        heads: int,
        head_dim: int,
        n_ctx: int,
        block_ctx: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        width: int | None = None,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            SparseKVCache(kind, batch_size, heads, head_dim, n_ctx, block_ctx, dtype, device) for kind in kinds
        )
        width = width if width is not None else heads * head_dim
        # the window's conditioning: start-token input [B, D] and x_cond of every position [B, n_ctx, D]
        self.register_buffer("start", _static(torch.zeros(batch_size, width, dtype=dtype, device=device)),
                             persistent=False)
        self.register_buffer("x_cond", _static(torch.zeros(batch_size, n_ctx, width, dtype=dtype, device=device)),
                             persistent=False)

    def set_condition(self, start: torch.Tensor, x_cond: torch.Tensor) -> None:
        """Store a window's conditioning: `start` [B, D], `x_cond` [B, T, D] (T <= n_ctx; the rest is zeroed)."""
        T = x_cond.shape[1]
        self.start.copy_(start)
        self.x_cond[:, :T].copy_(x_cond)
        self.x_cond[:, T:].zero_()

    @property
    def batch_size(self) -> int:
        return self.start.shape[0]

    def __getitem__(self, i: int) -> SparseKVCache:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

"""Key/value caches for cached (incremental) decoding with the prior's factorized sparse attention.

Each attention kind reads a different part of the past, so each layer's cache keeps only that part:

| kind        | reads at position `p` (block `b = p // block_ctx`, in-block index `j = p % block_ctx`) | slots kept |
|-------------|------------------------------------------------------------------------------------------|------------|
| `block`     | positions `b*block_ctx .. p` (its own block, causally)                                    | `block_ctx` (ring buffer) |
| `transpose` | positions `j, j + block_ctx, ..., p` (same in-block index in every block so far)          | `n_ctx`, laid out `[j, b]` so the read is contiguous |
| `previous`  | the whole block `b - 1` (nothing for block 0)                                             | `2 * block_ctx` (ring buffer of two blocks) |

The caches are allocated once per generation and written in place (`update`), never grown with `torch.cat`.
"""

from __future__ import annotations

import torch
from torch import nn

ATTENTION_KINDS = ("block", "transpose", "previous")


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
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def slots(self, input_pos: torch.Tensor | int) -> torch.Tensor | int:
        """Cache slot of each absolute position."""
        if self.kind == "transpose":
            return (input_pos % self.block_ctx) * self.blocks + input_pos // self.block_ctx
        return input_pos % self.num_slots

    def update(
        self, input_pos: torch.Tensor | int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the keys/values of `input_pos` (ascending positions) into their slots.

        Only the last `num_slots` positions are written: earlier ones would be overwritten in a ring
        buffer anyway, and this layer never reads them again.

        Args:
            input_pos: LongTensor [S] of absolute positions, or one position as an int (decoding).
            k, v: [B, H, S, D_head].

        Returns:
            The whole cache `(k_cache, v_cache)`, each [B, H, slots, D_head].
        """
        if isinstance(input_pos, int):  # one decoded token: a plain slice write, no index tensor
            slot = self.slots(input_pos)
            self.k_cache[:, :, slot] = k[:, :, 0]
            self.v_cache[:, :, slot] = v[:, :, 0]
            return self.k_cache, self.v_cache
        if input_pos.numel() > self.num_slots:
            input_pos, k, v = input_pos[-self.num_slots:], k[:, :, -self.num_slots:], v[:, :, -self.num_slots:]
        slots = self.slots(input_pos)
        self.k_cache.index_copy_(2, slots, k.to(self.k_cache.dtype))
        self.v_cache.index_copy_(2, slots, v.to(self.v_cache.dtype))
        return self.k_cache, self.v_cache

    def read(self, pos: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Keys/values the query at absolute position `pos` attends to (after `pos` was written).

        Returns:
            `(k, v)`, each [B, H, L, D_head], or `None` when there is nothing to attend to (the
            previous-block kind in block 0, whose output is zero).
        """
        block, index = divmod(pos, self.block_ctx)
        if self.kind == "block":
            return self.k_cache[:, :, : index + 1], self.v_cache[:, :, : index + 1]
        if self.kind == "transpose":
            start = index * self.blocks
            return self.k_cache[:, :, start : start + block + 1], self.v_cache[:, :, start : start + block + 1]
        if block == 0:
            return None
        start = ((block - 1) % 2) * self.block_ctx
        return self.k_cache[:, :, start : start + self.block_ctx], self.v_cache[:, :, start : start + self.block_ctx]


class PriorKVCache(nn.Module):
    """The caches of every transformer layer of one prior, allocated once per generation.

    Args:
        kinds: attention kind of each layer, in order.
        batch_size, heads, head_dim, n_ctx, block_ctx, dtype, device: see `SparseKVCache`.
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
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            SparseKVCache(kind, batch_size, heads, head_dim, n_ctx, block_ctx, dtype, device) for kind in kinds
        )

    def __getitem__(self, i: int) -> SparseKVCache:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

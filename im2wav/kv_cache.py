"""Key/value caches for cached (incremental) decoding with the prior's factorized sparse attention.

Each attention kind reads a different part of the past, so each layer's cache keeps only that part:

| kind        | reads at position `p` (block `b = p // block_ctx`, in-block index `j = p % block_ctx`) | slots kept |
|-------------|------------------------------------------------------------------------------------------|------------|
| `block`     | positions `b*block_ctx .. p` (its own block, causally)                                    | `block_ctx` (ring buffer) |
| `transpose` | positions `j, j + block_ctx, ..., p` (same in-block index in every block so far)          | `n_ctx`, laid out `[j, b]` |
| `previous`  | the whole block `b - 1` (nothing for block 0)                                             | `2 * block_ctx` (ring buffer of two blocks) |

Fixed shapes: a decoding step reads a slab whose size does not depend on the position (`block_ctx`,
`blocks` or `block_ctx` slots) and masks the slots it must not see; the position is a tensor. Nothing
in a step depends on a Python int that changes from step to step, so one step compiles once
(`torch.compile(fullgraph=True)`) and can be captured as a CUDA graph. Where each kind writes and
reads depends only on the position, so it is computed once per step for all layers (`StepPlan`).

Keys and values share one buffer `kv` [slots, 2, B, H, D_head], slots first, so a step writes both
with one `index_copy_` and reads both with one `index_select` of a contiguous run of slots. The caches are allocated once per generation
and written in place, never grown with `torch.cat`. `PriorKVCache` also holds the conditioning of
the current window (`start`, `x_cond`), written once per window, so a decoding step needs nothing
but the token and its position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ATTENTION_KINDS = ("block", "transpose", "previous")


def _static(buffer: torch.Tensor) -> torch.Tensor:
    """Tell torch.compile / CUDA graphs that this buffer keeps its address (it is updated in place)."""
    torch._dynamo.mark_static_address(buffer)
    return buffer


@dataclass
class StepPlan:
    """Where one attention kind writes and reads at one decoding step (the same for all its layers).

    Attributes:
        slot: LongTensor [1], the cache slot of the new key/value.
        index: LongTensor [1], the slab read (`transpose`: the in-block index; `previous`: the ring half).
        mask: FloatTensor [1, L], 0 for the slots read and -inf for the others.
        gate: FloatTensor [1] (`previous` only): 0 in block 0, whose output is zero, else 1.
        first: eager decoding on a CPU only: the first slot of the slab as an int, so the read is a
            view instead of a copy (reading a CPU tensor costs no sync; traced code never gets one).
    """

    slot: torch.Tensor
    index: torch.Tensor
    mask: torch.Tensor
    gate: torch.Tensor | None = None
    first: int | None = None


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
        shape = (self.num_slots, 2, batch_size, heads, head_dim)  # (slots, k|v, B, H, D_head)
        self.register_buffer("kv", _static(torch.zeros(shape, dtype=dtype, device=device)), persistent=False)

    def slots(self, input_pos: torch.Tensor) -> torch.Tensor:
        """Cache slot of each absolute position."""
        if self.kind == "transpose":
            return (input_pos % self.block_ctx) * self.blocks + input_pos // self.block_ctx
        return input_pos % self.num_slots

    def plan(self, input_pos: torch.Tensor) -> StepPlan:
        """Where the token at `input_pos` (LongTensor [1]) writes and what it reads."""
        block, index = input_pos // self.block_ctx, input_pos % self.block_ctx  # [1], [1]
        device, dtype = input_pos.device, self.kv.dtype
        eager_cpu = device.type == "cpu" and not torch.compiler.is_compiling()
        if self.kind == "block":  # the ring holds this block's slots 0..index (later slots: the last block)
            visible = torch.arange(self.block_ctx, device=device) <= index
            return StepPlan(index, index, _additive(visible, dtype))
        if self.kind == "transpose":  # row `index` of the [j, b] layout, blocks 0..block
            visible = torch.arange(self.blocks, device=device) <= block
            first = int(index) * self.blocks if eager_cpu else None
            return StepPlan(index * self.blocks + block, index, _additive(visible, dtype), first=first)
        zeros = torch.zeros(1, self.block_ctx, device=device, dtype=dtype)  # the whole previous block
        half = (block - 1) % 2
        first = int(half) * self.block_ctx if eager_cpu else None
        return StepPlan(input_pos % self.num_slots, half, zeros, (block > 0).to(dtype), first)

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write the keys/values of positions `input_pos` (ascending) into their slots (the prefill).

        Only the last `num_slots` positions are written: earlier ones would be overwritten in a ring
        buffer anyway, and this layer never reads them again.

        Args:
            input_pos: LongTensor [S] of absolute positions.
            k, v: [B, H, S, D_head].
        """
        if input_pos.shape[0] > self.num_slots:  # a static shape: no host sync
            input_pos, k, v = input_pos[-self.num_slots:], k[:, :, -self.num_slots:], v[:, :, -self.num_slots:]
        new = torch.stack([k, v]).permute(3, 0, 1, 2, 4)  # (2, B, H, S, Dh) -> (S, 2, B, H, Dh)
        self.kv.index_copy_(0, self.slots(input_pos), new.to(self.kv.dtype))

    def step(self, plan: StepPlan, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write one token's key/value and read what it attends to.

        Args:
            plan: this kind's `StepPlan` for the position.
            kv: [1, 2, B, H, D_head], the new key and value.

        Returns:
            `(k, v)`, each [B, H, L, D_head] with `L` fixed per kind (masked by `plan.mask`).
        """
        self.kv.index_copy_(0, plan.slot, kv.to(self.kv.dtype))
        slots, two, B, H, Dh = self.kv.shape
        if self.kind == "block":
            slab = self.kv  # (block_ctx, 2, B, H, Dh)
        elif plan.first is not None:  # eager on a CPU: the same slab as a view
            slab = self.kv.narrow(0, plan.first, self.blocks if self.kind == "transpose" else self.block_ctx)
        elif self.kind == "transpose":  # (block_ctx * blocks, ...) -> (block_ctx, blocks, ...): row `index`
            slab = self.kv.view(self.block_ctx, self.blocks, two, B, H, Dh).index_select(0, plan.index)[0]
        else:  # previous: (2 * block_ctx, ...) -> (2, block_ctx, ...): the half of block - 1
            slab = self.kv.view(2, self.block_ctx, two, B, H, Dh).index_select(0, plan.index)[0]
        slab = slab.permute(1, 2, 3, 0, 4)  # (L, 2, B, H, Dh) -> (2, B, H, L, Dh)
        return slab[0], slab[1]


def _additive(visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """BoolTensor [L] -> [1, L] of `dtype`: 0 where visible, -inf elsewhere (an attention bias)."""
    return torch.zeros(visible.shape, device=visible.device, dtype=dtype).masked_fill(~visible, float("-inf"))[None]


class PriorKVCache(nn.Module):
    """The caches of every transformer layer of one prior, plus the current window's conditioning.

    Allocated once per generation (`Im2WavPrior.new_kv_cache`); every buffer is written in place.

    Args:
        layers: one `SparseKVCache` per transformer layer, in order (batch, dtype and device are theirs).
        n_ctx: context length of the prior.
        width: model width `D` (of the conditioning buffers).
    """

    def __init__(self, layers: list[SparseKVCache], n_ctx: int, width: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        # every layer of a kind writes and reads the same slots at a step: one of each plans for all
        self._planners = {layer.kind: layer for layer in layers}
        kv = layers[0].kv
        batch_size, kw = kv.shape[2], dict(dtype=kv.dtype, device=kv.device)
        # the window's conditioning: start-token input [B, D] and x_cond of every position, positions
        # first [n_ctx, B, D] so a step reads its row with a contiguous `index_select`
        self.register_buffer("start", _static(torch.zeros(batch_size, width, **kw)), persistent=False)
        self.register_buffer("x_cond", _static(torch.zeros(n_ctx, batch_size, width, **kw)), persistent=False)

    def set_condition(self, start: torch.Tensor, x_cond: torch.Tensor) -> None:
        """Store a window's conditioning: `start` [B, D], `x_cond` [B, T, D] (T <= n_ctx; the rest is zeroed)."""
        T = x_cond.shape[1]
        self.start.copy_(start)
        self.x_cond[:T].copy_(x_cond.transpose(0, 1))  # (B, T, D) -> (T, B, D)
        self.x_cond[T:].zero_()

    def condition_at(self, input_pos: torch.Tensor) -> torch.Tensor:
        """x_cond [B, S, D] of positions `input_pos` [S]."""
        return self.x_cond.index_select(0, input_pos).transpose(0, 1)  # (S, B, D) -> (B, S, D)

    def plans(self, input_pos: torch.Tensor) -> dict[str, StepPlan]:
        """The `StepPlan` of each attention kind for the token at `input_pos` (LongTensor [1])."""
        return {kind: layer.plan(input_pos) for kind, layer in self._planners.items()}

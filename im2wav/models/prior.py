"""The IM2WAV prior: one autoregressive sparse transformer class, configured as LOW or UP.

LOW (hop 32) models the top VQ-VAE level from CLIP image embeddings, with a time signal and
classifier-free guidance; UP (hop 8) models the bottom level, additionally conditioned on the LOW
tokens. Sampling lives in `im2wav.sampling`; this module only computes logits.

Example:
    >>> import torch
    >>> from im2wav import Im2WavPrior
    >>> prior = Im2WavPrior.from_preset("tiny-low").eval()
    >>> tokens = torch.randint(0, prior.config.vocab_size, (2, prior.config.n_ctx))
    >>> frames = torch.nn.functional.normalize(torch.randn(2, 8, 512), dim=-1)   # CLIP per frame
    >>> timing = torch.tensor([[160000.0, 0.0, 4096.0]] * 2)                     # total, offset, window
    >>> prior(tokens, frame_embeds=frames, timing=timing).shape
    torch.Size([2, 128, 64])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from ..kv_cache import PriorKVCache, SparseKVCache
from .prior_conditioning import ClipMLP, LowerTokenConditioner, TimeSignal, token_to_frame
from .sparse_attention import TransformerLayer, attention_kind

_PAPER = dict(vocab_size=2048, width=1024, depth=48, heads=1, blocks=64, m_attn=0.25, m_mlp=1.0, clip_dim=512)
_TINY = dict(vocab_size=64, width=64, depth=6, heads=1, blocks=16, m_attn=0.25, m_mlp=1.0, clip_dim=512)
_LOW = dict(hop_length=32, time_signal=True, frame_conditioning=True, guidance=True,
            sample_rate=16000, min_duration=2.05, max_duration=600.0, time_bins=64)
_UP = dict(hop_length=8, time_signal=False, frame_conditioning=False, guidance=False, lower_stride=2,
           lower_num_steps=2, lower_dilation_growth_rate=3)

PRESETS: dict[str, dict] = {
    # the released checkpoints' configs (`small_labelled_prior` / `small_upsampler` + README flags)
    "paper-low": {**_PAPER, **_LOW, "n_ctx": 2048},
    "paper-up": {**_PAPER, **_UP, "n_ctx": 8192, "lower_vocab_size": 2048, "lower_channels": 512,
                 "lower_depth": 16, "lower_dilation_cycle": 8},
    # the sizes of the parity fixtures (../shared/parity/{low,up}_tiny.pth.tar)
    "tiny-low": {**_TINY, **_LOW, "n_ctx": 128},
    "tiny-up": {**_TINY, **_UP, "n_ctx": 512, "lower_vocab_size": 64, "lower_channels": 32,
                "lower_depth": 6, "lower_dilation_cycle": 4},
}


_TOKEN_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8)


def _check_tensor(x: object, name: str, shape: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape}, got {type(x).__name__}; convert it with torch.as_tensor")


@dataclass
class PriorConditioning:
    """Everything a window of the prior is conditioned on, precomputed once per window.

    Attributes:
        start: [B, D] input of position 0 (the start token).
        x_cond: [B, T, D] added to the input of every position and again to the transformer output.
    """

    start: torch.Tensor
    x_cond: torch.Tensor


class Im2WavPrior(ModelMixin, ConfigMixin):
    """Autoregressive prior over VQ-VAE tokens with factorized sparse attention.

    Args:
        vocab_size: codebook size `K` of the modelled level.
        n_ctx: tokens per window.
        width: model width `D`.
        depth: transformer layers; layer `i` uses attention kind `("block", "transpose", "previous")[i % 3]`.
        heads: attention heads.
        blocks: attention blocks per window (`block_ctx = n_ctx // blocks`).
        m_attn: q/k/v width as a fraction of `width`.
        m_mlp: MLP hidden width as a fraction of `width`.
        clip_dim: width of the CLIP frame embeddings.
        hop_length: audio samples per token of the modelled level (LOW 32, UP 8).
        time_signal: add the (total length, offset, window length) embedding (LOW).
        frame_conditioning: add a per-frame CLIP embedding to every token (LOW, "video CLIP").
        guidance: learn null conditions for classifier-free guidance (LOW).
        sample_rate, min_duration, max_duration, time_bins: time-signal ranges (seconds) and bins.
        lower_vocab_size: codebook size of the LOW tokens UP is conditioned on; `None` for LOW.
        lower_channels, lower_depth, lower_num_steps, lower_stride, lower_dilation_growth_rate,
            lower_dilation_cycle: the LOW-token upsampler (see `LowerTokenConditioner`).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        vocab_size: int = 2048,
        n_ctx: int = 2048,
        width: int = 1024,
        depth: int = 48,
        heads: int = 1,
        blocks: int = 64,
        m_attn: float = 0.25,
        m_mlp: float = 1.0,
        clip_dim: int = 512,
        hop_length: int = 32,
        time_signal: bool = True,
        frame_conditioning: bool = True,
        guidance: bool = True,
        sample_rate: int = 16000,
        min_duration: float = 2.05,
        max_duration: float = 600.0,
        time_bins: int = 64,
        lower_vocab_size: int | None = None,
        lower_channels: int = 512,
        lower_depth: int = 16,
        lower_num_steps: int = 2,
        lower_stride: int = 2,
        lower_dilation_growth_rate: int = 3,
        lower_dilation_cycle: int | None = 8,
    ):
        super().__init__()
        if n_ctx % blocks:
            raise ValueError(f"n_ctx={n_ctx} must be divisible by blocks={blocks}")
        attn_width, mlp_width = int(m_attn * width), int(m_mlp * width)

        # 1. tokens and positions; the output projection is the transposed token embedding (tied)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Parameter(torch.zeros(n_ctx, width))
        self.layers = nn.ModuleList(
            TransformerLayer(width, attn_width, mlp_width, heads, n_ctx, blocks, attention_kind(i))
            for i in range(depth)
        )

        # 2. conditioning
        self.start_mlp = ClipMLP(clip_dim, width)
        self.frame_mlp = ClipMLP(clip_dim, width) if frame_conditioning else None
        self.time_embedding = (TimeSignal(n_ctx, time_bins, sample_rate, min_duration, max_duration, width)
                            if time_signal else None)
        self.lower_conditioner = None
        if lower_vocab_size is not None:
            self.lower_conditioner = LowerTokenConditioner(
                lower_vocab_size, width, lower_channels, lower_depth, lower_num_steps, lower_stride,
                dilation_growth_rate=lower_dilation_growth_rate, dilation_cycle=lower_dilation_cycle)
        if guidance:  # the learned null condition: used for condition dropout AND the CFG branch
            self.null_start = nn.Parameter(torch.zeros(width))
            self.null_frame = nn.Parameter(torch.zeros(width)) if frame_conditioning else None
        else:
            self.null_start = self.null_frame = None

        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.01)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> Im2WavPrior:
        """Build a randomly initialised prior from a named preset (`PRESETS`), optionally overriding fields."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # ----------------------------------------------------------------------------------------
    # properties used by the sampler
    @property
    def block_ctx(self) -> int:
        return self.config.n_ctx // self.config.blocks

    @property
    def upsample_factor(self) -> int:
        """UP tokens per LOW token (4), or 1 for a prior without LOW-token conditioning."""
        c = self.config
        return c.lower_stride**c.lower_num_steps if c.lower_vocab_size is not None else 1

    def new_kv_cache(
        self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> PriorKVCache:
        """Allocate the key/value caches of every layer, and the window conditioning, for `batch_size` sequences.

        Args:
            batch_size: rows decoded together (both guidance branches count).
            dtype: of the cache (default: the prior's).
            device: where decoding runs (default: the prior's; pass the execution device when the
                prior is offloaded and moves there on its first call).
        """
        c, dtype, device = self.config, dtype or self.dtype, device or self.device
        layers = [SparseKVCache(layer.attn.kind, batch_size, layer.attn.heads, layer.attn.head_dim, c.n_ctx,
                                self.block_ctx, dtype, device) for layer in self.layers]
        return PriorKVCache(layers, c.n_ctx, c.width)

    # ----------------------------------------------------------------------------------------
    # conditioning
    def _check_embeds(self, frame_embeds: torch.Tensor, batch_size: int) -> None:
        _check_tensor(frame_embeds, "frame_embeds", f"[B, F, {self.config.clip_dim}]")
        if frame_embeds.ndim != 3 or frame_embeds.shape[0] != batch_size or frame_embeds.shape[1] < 1:
            raise ValueError(f"frame_embeds must be [B={batch_size}, F>=1, {self.config.clip_dim}] (one CLIP "
                             f"embedding per frame; an image is F=1), got {tuple(frame_embeds.shape)}")
        if frame_embeds.shape[-1] != self.config.clip_dim:
            raise ValueError(f"frame_embeds have width {frame_embeds.shape[-1]}, this prior expects "
                             f"{self.config.clip_dim} (CLIP ViT-B/32 image embeddings)")

    def check_values(
        self,
        tokens: torch.Tensor | None = None,
        frame_embeds: torch.Tensor | None = None,
        lower_tokens: torch.Tensor | None = None,
        timing: torch.Tensor | None = None,
    ) -> None:
        """Raise a `ValueError` for out-of-range token ids, non-finite embeddings or timing outside the
        trained ranges.

        Each check reads the tensor on the host (a sync on a GPU), so it runs once per call at the
        public entry points (an eval-mode `forward`, the samplers, the pipeline), never per step.
        Shapes and types are checked by `condition` and `forward` themselves.
        """
        if tokens is not None:
            self._check_token_range(tokens, self.config.vocab_size, "tokens")
        if lower_tokens is not None and self.config.lower_vocab_size is not None:
            _check_tensor(lower_tokens, "lower_tokens", "LongTensor [B, T_low]")
            self._check_token_range(lower_tokens, self.config.lower_vocab_size, "lower_tokens")
        if isinstance(frame_embeds, torch.Tensor) and not torch.isfinite(frame_embeds).all():
            raise ValueError("frame_embeds contain NaN or inf; check the CLIP encoder's input")
        if isinstance(timing, torch.Tensor) and self.time_embedding is not None and timing.shape[-1:] == (3,):
            self.time_embedding.check(timing)

    @apply_forward_hook  # an offloaded prior (enable_model_cpu_offload) moves to its device first
    def condition(
        self,
        batch_size: int,
        num_tokens: int,
        frame_embeds: torch.Tensor | None = None,
        lower_tokens: torch.Tensor | None = None,
        timing: torch.Tensor | None = None,
        unconditional: bool | torch.Tensor = False,
    ) -> PriorConditioning:
        """Compute the start token and `x_cond` of a window (see `forward` for the arguments).

        Only shapes and types are checked here; `check_values` checks the values.

        Returns:
            `PriorConditioning` with `start` [B, D] and `x_cond` [B, num_tokens, D].
        """
        c = self.config
        if isinstance(unconditional, torch.Tensor):
            uncond = unconditional.to(device=self.device, dtype=torch.bool)
            if uncond.ndim > 1 or (uncond.ndim == 1 and uncond.shape[0] != batch_size):
                raise ValueError(f"unconditional must be a bool or a BoolTensor [B={batch_size}], got shape "
                                 f"{tuple(uncond.shape)}")
            uncond = uncond.expand(batch_size)
            # frames are read unless every row is unconditional (only asked when none were given)
            need_frames = frame_embeds is not None or not bool(uncond.all())
        else:
            need_frames, uncond = not unconditional, None
        # the host reads `uncond` only for a prior without a null condition, where any null row is an error
        if self.null_start is None and (bool(uncond.any()) if uncond is not None else bool(unconditional)):
            raise ValueError("this prior was trained without classifier-free guidance (config.guidance=False): "
                             "it has no null condition; use unconditional=False")
        if need_frames and frame_embeds is None:
            raise ValueError("frame_embeds [B, F, 512] are required (CLIP embedding per frame; F=1 for an image)")
        if need_frames:
            self._check_embeds(frame_embeds, batch_size)
            frame_embeds = frame_embeds.to(self.device, self.dtype)

        # 1. start token: MLP(mean CLIP over frames), or the learned null start
        width = c.width
        if need_frames:
            start = self.start_mlp(frame_embeds.mean(dim=1))  # (B, F, C) -> (B, D)
            if uncond is not None and self.null_start is not None:
                start = torch.where(uncond[:, None], self.null_start.to(start.dtype), start)
        else:
            start = self.null_start.expand(batch_size, width)

        # 2. x_cond of every position
        x_cond = torch.zeros(batch_size, num_tokens, width, device=self.device, dtype=self.dtype)
        if self.time_embedding is not None:
            if timing is None:
                raise ValueError("timing [B, 3] = (total length, offset, window length) in samples is required "
                                 "by this prior (config.time_signal=True)")
            _check_tensor(timing, "timing", "[B, 3]")
            if timing.shape != (batch_size, 3):
                raise ValueError(f"timing must be [B={batch_size}, 3], got {tuple(timing.shape)}")
            x_cond = x_cond + self.time_embedding(timing.to(self.device))[:, :num_tokens].to(self.dtype)
        if self.frame_mlp is not None:
            if need_frames:
                # token t reads frame round(t / (n_ctx - 1) * (F - 1)) of the window
                index = token_to_frame(c.n_ctx, frame_embeds.shape[1], self.device)[:num_tokens]
                frames = self.frame_mlp(frame_embeds)  # (B, F, C) -> (B, F, D)
                if uncond is not None:
                    frames = torch.where(uncond[:, None, None], self.null_frame.to(frames.dtype), frames)
                x_cond = x_cond + frames[:, index]  # (B, F, D) -> (B, T, D)
            else:
                x_cond = x_cond + self.null_frame
        if self.lower_conditioner is not None:
            factor = self.upsample_factor
            if lower_tokens is None:
                raise ValueError(f"lower_tokens [B, T // {factor}] (the LOW tokens) are required by this UP prior")
            _check_tensor(lower_tokens, "lower_tokens", "LongTensor [B, T_low]")
            if lower_tokens.ndim != 2 or lower_tokens.shape[0] != batch_size:
                raise ValueError(f"lower_tokens must be [B={batch_size}, T_low], got {tuple(lower_tokens.shape)}")
            if lower_tokens.dtype not in _TOKEN_DTYPES:
                raise ValueError(f"lower_tokens must be an integer tensor, got {lower_tokens.dtype}")
            t_low = lower_tokens.shape[1]
            if not (num_tokens <= t_low * factor <= c.n_ctx):
                raise ValueError(f"lower_tokens has {t_low} tokens: it must cover the {num_tokens} UP tokens "
                                 f"(>= {-(-num_tokens // factor)}) and fit one window (<= {c.n_ctx // factor})")
            x_cond = x_cond + self.lower_conditioner(lower_tokens.to(self.device))[:, :num_tokens]
        return PriorConditioning(start, x_cond)

    @staticmethod
    def _check_token_range(tokens: torch.Tensor, vocab_size: int, name: str) -> None:
        if tokens.dtype not in _TOKEN_DTYPES:
            raise ValueError(f"{name} must be an integer tensor, got {tokens.dtype}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
            raise ValueError(f"{name} ids must be in [0, {vocab_size}), got [{int(tokens.min())}, "
                             f"{int(tokens.max())}]; were they produced by the VQ-VAE level this prior models?")

    # ----------------------------------------------------------------------------------------
    # the network
    def _embed(self, prev_tokens: torch.Tensor, input_pos: torch.Tensor, start: torch.Tensor,
               x_cond: torch.Tensor) -> torch.Tensor:
        """Transformer input [B, S, D] of positions `input_pos` [S] from the token before each [B, S].

        Position 0's input is the start token; `x_cond` [B, S, D] is that of the same positions.
        """
        h = self.token_embedding(prev_tokens)  # (B, S, D)
        h = torch.where((input_pos == 0)[None, :, None], start[:, None].to(h.dtype), h)
        return h + self.position_embedding.index_select(0, input_pos) + x_cond

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits [B, S, K] from `h + x_cond` [B, S, D] (the output projection is the token embedding)."""
        return torch.nn.functional.linear(h, self.token_embedding.weight)

    def forward(
        self,
        tokens: torch.Tensor,
        frame_embeds: torch.Tensor | None = None,
        lower_tokens: torch.Tensor | None = None,
        timing: torch.Tensor | None = None,
        unconditional: bool | torch.Tensor = False,
        *,
        input_pos: torch.Tensor | None = None,
        kv_cache: PriorKVCache | None = None,
    ) -> torch.Tensor:
        """Logits of a window, teacher-forced (no cache) or cached (prefill and decoding steps).

        Without `kv_cache` (training, scoring): `logits[:, t]` predicts `tokens[:, t]` from
        `tokens[:, :t]`, conditioned on the arguments below.

        With `kv_cache` (sampling, gpt-fast style): the conditioning of the window is the one stored
        in the cache (`kv_cache.set_condition(*prior.condition(...))`), `tokens[:, s]` is the INPUT of
        position `input_pos[s]`, i.e. the token at `input_pos[s] - 1` (ignored at position 0, whose
        input is the start token), and `logits[:, s]` predicts the token at `input_pos[s]`. Either
        `input_pos = 0 .. S-1` (prefill: the cache is filled) or one position (a decoding step: the
        cache is read through fixed-size masked slabs, so the step compiles once with
        `fullgraph=True` and can run as a CUDA graph).

        Args:
            tokens: LongTensor [B, T], T <= n_ctx.
            frame_embeds: [B, F, clip_dim] CLIP embedding per frame of the window (an image: F=1).
                Not needed when every row is `unconditional`.
            lower_tokens: UP only: the LOW tokens of the window, [B, T // 4] (up to n_ctx // 4).
            timing: LOW only: [B, 3] = (total length, offset, window length) in audio samples.
            unconditional: bool or BoolTensor [B]: use the learned null condition (the guidance
                branch; condition dropout in training). The time signal is kept.
            input_pos: cached mode: LongTensor [T] of the positions computed.
            kv_cache: cached mode: the caches from `new_kv_cache`, batch B.

        Returns:
            FloatTensor [B, T, K].
        """
        if kv_cache is not None:
            if input_pos is None:
                raise ValueError("cached decoding needs input_pos, the LongTensor [T] of the positions computed")
            x_cond = kv_cache.condition_at(input_pos)  # (B, T, D)
            h = self._embed(tokens, input_pos, kv_cache.start, x_cond)
            plans = kv_cache.plans(input_pos) if tokens.shape[1] == 1 else {}  # one decoding step
            for layer, cache in zip(self.layers, kv_cache.layers):
                h = layer(h, input_pos, cache, plans.get(cache.kind))
            return self._head(h + x_cond)

        _check_tensor(tokens, "tokens", "LongTensor [B, T]")
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be [B, T], got {tuple(tokens.shape)}")
        B, T = tokens.shape
        if not 1 <= T <= self.config.n_ctx:
            raise ValueError(f"tokens has length {T}; one forward pass takes 1..n_ctx={self.config.n_ctx} tokens "
                             "(use im2wav.sampling for longer, windowed generation)")
        if not self.training:  # value checks read the tensors on the host; training data is checked once, upstream
            self.check_values(tokens=tokens, frame_embeds=frame_embeds, lower_tokens=lower_tokens, timing=timing)
        cond = self.condition(B, T, frame_embeds, lower_tokens, timing, unconditional)
        # position t's input is token t-1 (the start token at t=0)
        h = self._embed(torch.roll(tokens, 1, dims=1), torch.arange(T, device=tokens.device), cond.start, cond.x_cond)
        for layer in self.layers:
            h = layer(h)
        return self._head(h + cond.x_cond)

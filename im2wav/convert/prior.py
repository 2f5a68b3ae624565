"""Original (Jukebox-style) LOW/UP prior checkpoint -> `Im2WavPrior`.

Key mapping (`i` transformer layer, `s` upsampling step, `u` residual unit):

| original | ours |
|---|---|
| `prior.x_emb.weight` (= `prior.x_out.weight`, one storage) | `token_embedding.weight` (also the output projection) |
| `prior.pos_emb.pos_emb` | `position_embedding` |
| `prior.transformer._attn_mods.i.attn.c_attn.{w,b}` (Conv1D, `[in, out]`) | `layers.i.attn.qkv.{weight,bias}` (transposed) |
| `prior.transformer._attn_mods.i.attn.c_proj.{w,b}` | `layers.i.attn.proj.{weight,bias}` |
| `prior.transformer._attn_mods.i.mlp.c_fc.{w,b}` / `.c_proj.{w,b}` | `layers.i.mlp_fc` / `layers.i.mlp_proj` |
| `prior.transformer._attn_mods.i.ln_0` / `.ln_1` | `layers.i.attn_norm` / `layers.i.mlp_norm` |
| `y_emb.clip_map.sequential.{0,3}` | `start_mlp.{fc,proj}` |
| `y_emb.video_map.sequential.{0,3}` | `frame_mlp.{fc,proj}` |
| `y_emb.null_CLIP` / `y_emb.null_video_CLIP` | `null_start` / `null_frame` |
| `y_emb.{total_length,absolute_pos,relative_pos}_emb.emb.weight` | `time_embedding.{total_length,absolute_position,relative_position}.emb.weight` |
| `conditioner_blocks.0.x_emb.weight` | `lower_conditioner.embedding.weight` |
| `conditioner_blocks.0.cond.model.0` | `lower_conditioner.upsampler.proj` |
| `conditioner_blocks.0.cond.model.{s+1}.0.blocks.u.model.{1,3}` | `lower_conditioner.upsampler.steps.s.residual.units.u.{dilated_conv,pointwise_conv}` |
| `conditioner_blocks.0.cond.model.{s+1}.1` | `lower_conditioner.upsampler.steps.s.conv` |
| `conditioner_blocks.0.ln` | `lower_conditioner.norm` |

The released checkpoints store the Conv1D weights in float16; the original computes with them cast
to float32, so converting them to float32 reproduces its numerics exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.prior import Im2WavPrior
from .checkpoint_file import OriginalCheckpoint
from .page_release import release_pages

_CONV1D = {"attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj", "mlp.c_fc": "mlp_fc", "mlp.c_proj": "mlp_proj"}
_LAYERNORM = {"ln_0": "attn_norm", "ln_1": "mlp_norm"}
_TIME = {"total_length_emb": "total_length", "absolute_pos_emb": "absolute_position",
         "relative_pos_emb": "relative_position"}


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def prior_config_from_hps(hps: dict) -> dict:
    """Constructor arguments of `Im2WavPrior` from the original hps dict.

    Raises:
        ValueError: the hps describe a prior variant IM2WAV never used (lyrics, merged decoder,
            other attention orders, ...), which this class does not implement.
    """
    get = lambda key, default=None: _plain(hps.get(key, default))  # noqa: E731
    unsupported = {
        "attn_order": (get("attn_order"), 2), "clip_emb": (get("clip_emb"), True), "labels": (get("labels"), True),
        "merged_decoder": (bool(get("merged_decoder", False)), False),
        "single_enc_dec": (bool(get("single_enc_dec", False)), False),
        "res_scale": (bool(get("res_scale", False)), False), "pos_init": (bool(get("pos_init", False)), False),
        "use_tokens": (bool(get("use_tokens", False)), False), "spread": (get("spread"), None),
        "cond_res_scale": (bool(get("cond_res_scale", False)), False),
    }
    wrong = {k: found for k, (found, want) in unsupported.items() if found != want}
    if wrong:
        raise ValueError(f"this prior checkpoint uses hyperparameters Im2WavPrior does not implement: {wrong}")
    levels, level = int(get("levels")), int(get("level"))
    downsamples = [int(s) ** int(d) for s, d in zip(hps["strides_t"], hps["downs_t"])]
    is_top = level == levels - 1
    if not is_top and level != levels - 2:
        raise ValueError(f"level {level} of {levels}: only the top (LOW) and the one below it (UP) are supported")
    guidance = float(get("class_free_guidance_prob", -1)) >= 0
    config = dict(
        vocab_size=int(get("l_bins")), n_ctx=int(get("n_ctx")), width=int(get("prior_width")),
        depth=int(get("prior_depth")), heads=int(get("heads")), blocks=int(get("blocks")),
        m_attn=float(get("m_attn")), m_mlp=float(get("m_mlp")), clip_dim=512,
        hop_length=int(np.prod(downsamples[: level + 1])),
        time_signal=is_top, frame_conditioning=bool(get("video_clip_emb", False)), guidance=guidance,
        sample_rate=int(get("sr")),
    )
    if is_top:
        config.update(min_duration=float(get("min_duration")), max_duration=float(get("max_duration")),
                      time_bins=int(get("t_bins")), lower_vocab_size=None)
    else:
        cycle = get("cond_dilation_cycle")
        config.update(
            lower_vocab_size=int(get("l_bins")), lower_channels=int(get("cond_width")),
            lower_depth=int(get("cond_depth")), lower_num_steps=int(hps["downs_t"][level + 1]),
            lower_stride=int(hps["strides_t"][level + 1]),
            lower_dilation_growth_rate=int(get("cond_dilation_growth_rate")),
            lower_dilation_cycle=None if cycle is None else int(cycle),
        )
        if float(get("cond_m_conv", 1.0)) != 1.0:
            raise ValueError(f"cond_m_conv={get('cond_m_conv')} is not supported (IM2WAV uses 1.0)")
    return config


def _key_map(config: dict) -> dict[str, tuple[str, bool]]:
    """original key -> (our key, is a Conv1D weight stored [in, out])."""
    m: dict[str, tuple[str, bool]] = {
        "prior.x_emb.weight": ("token_embedding.weight", False),
        "prior.pos_emb.pos_emb": ("position_embedding", False),
        "y_emb.clip_map.sequential.0.weight": ("start_mlp.fc.weight", False),
        "y_emb.clip_map.sequential.0.bias": ("start_mlp.fc.bias", False),
        "y_emb.clip_map.sequential.3.weight": ("start_mlp.proj.weight", False),
        "y_emb.clip_map.sequential.3.bias": ("start_mlp.proj.bias", False),
    }
    for i in range(config["depth"]):
        src, dst = f"prior.transformer._attn_mods.{i}.", f"layers.{i}."
        for theirs, ours in _CONV1D.items():
            m[f"{src}{theirs}.w"] = (f"{dst}{ours}.weight", True)
            m[f"{src}{theirs}.b"] = (f"{dst}{ours}.bias", False)
        for theirs, ours in _LAYERNORM.items():
            for p in ("weight", "bias"):
                m[f"{src}{theirs}.{p}"] = (f"{dst}{ours}.{p}", False)
    if config["frame_conditioning"]:
        for i, ours in ((0, "fc"), (3, "proj")):
            for p in ("weight", "bias"):
                m[f"y_emb.video_map.sequential.{i}.{p}"] = (f"frame_mlp.{ours}.{p}", False)
    if config["guidance"]:
        m["y_emb.null_CLIP"] = ("null_start", False)
        if config["frame_conditioning"]:
            m["y_emb.null_video_CLIP"] = ("null_frame", False)
    if config["time_signal"]:
        for theirs, ours in _TIME.items():
            m[f"y_emb.{theirs}.emb.weight"] = (f"time_embedding.{ours}.emb.weight", False)
    if config["lower_vocab_size"] is not None:
        src, dst = "conditioner_blocks.0.", "lower_conditioner."
        m[f"{src}x_emb.weight"] = (f"{dst}embedding.weight", False)
        for p in ("weight", "bias"):
            m[f"{src}cond.model.0.{p}"] = (f"{dst}upsampler.proj.{p}", False)
            m[f"{src}ln.{p}"] = (f"{dst}norm.{p}", False)
            for s in range(config["lower_num_steps"]):
                m[f"{src}cond.model.{s + 1}.1.{p}"] = (f"{dst}upsampler.steps.{s}.conv.{p}", False)
                for u in range(config["lower_depth"]):
                    unit_src = f"{src}cond.model.{s + 1}.0.blocks.{u}.model."
                    unit_dst = f"{dst}upsampler.steps.{s}.residual.units.{u}."
                    m[f"{unit_src}1.{p}"] = (f"{unit_dst}dilated_conv.{p}", False)
                    m[f"{unit_src}3.{p}"] = (f"{unit_dst}pointwise_conv.{p}", False)
    return m


def prior_from_original(checkpoint: OriginalCheckpoint) -> Im2WavPrior:
    """Build an `Im2WavPrior` (float32, eval mode) from an original LOW or UP prior checkpoint.

    Args:
        checkpoint: the content of an original `.pth.tar` (see `read_original_checkpoint`).

    Returns:
        The converted prior; its logits match the original's to float32 round-off.

    Raises:
        ValueError: not a prior checkpoint, unsupported hyperparameters, or state-dict keys that are
            unknown, missing or of the wrong shape.
    """
    if checkpoint.kind != "prior":
        raise ValueError(f"{checkpoint.path} holds a {checkpoint.kind}, not a prior; use vqvae_from_original")
    config = prior_config_from_hps(checkpoint.hps)
    sd = checkpoint.state_dict
    mapping = _key_map(config)

    # x_out is the same tensor as x_emb in the original (tied); accept it, never load it twice
    tied = sd.get("prior.x_out.weight")
    if tied is not None and not torch.equal(tied.float(), sd["prior.x_emb.weight"].float()):
        raise ValueError(f"{checkpoint.path}: prior.x_out.weight differs from prior.x_emb.weight; IM2WAV ties them")
    unknown = sorted(set(sd) - set(mapping) - {"prior.x_out.weight"})
    missing = sorted(set(mapping) - set(sd))
    if unknown or missing:
        raise ValueError(f"{checkpoint.path}: state dict does not match the prior built from its hps: "
                         f"unknown keys {unknown[:10]}{' ...' if len(unknown) > 10 else ''}, "
                         f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")

    # parameters on the meta device: no memory until the converted tensors are assigned (priors have no buffers)
    with torch.device("meta"):
        prior = Im2WavPrior(**config)
    shapes = {key: value.shape for key, value in prior.state_dict().items()}
    converted = {}
    for theirs, (key, conv1d) in mapping.items():
        source = sd[theirs].detach()
        if conv1d:
            source = source.t()  # Conv1D [in, out] -> nn.Linear [out, in]
        if source.shape != shapes[key]:
            raise ValueError(f"{checkpoint.path}: {theirs} has shape {tuple(sd[theirs].shape)}, expected "
                             f"{tuple(shapes[key])} for {key}")
        converted[key] = torch.empty(source.shape, dtype=torch.float32).copy_(source)  # one float32 copy
        if checkpoint.mapped:
            release_pages(source)  # the file's pages of this tensor are no longer needed
    prior.load_state_dict(converted, strict=True, assign=True)
    return prior.eval()

"""Original (Jukebox-style) VQ-VAE checkpoint -> `HierarchicalVQVAE`.

Key mapping (`l` model level, `i` stage = the level whose downsamplings it holds, `j` step, `u` unit):

| original | ours |
|---|---|
| `encoders.l.level_blocks.i.model.j.0` (strided conv) | `encoders.l.stages.i.steps.j.conv` |
| `encoders.l.level_blocks.i.model.j.1.model.u.model.1` / `.3` | `encoders.l.stages.i.steps.j.residual.units.u.dilated_conv` / `.pointwise_conv` |
| `encoders.l.level_blocks.i.model.{down_t}` (last conv) | `encoders.l.stages.i.proj` |
| `decoders.l.level_blocks.i.model.0` (first conv) | `decoders.l.stages.i.proj` |
| `decoders.l.level_blocks.i.model.{j+1}.0.model.u.model.1` / `.3` | `decoders.l.stages.i.steps.j.residual.units.u.dilated_conv` / `.pointwise_conv` |
| `decoders.l.level_blocks.i.model.{j+1}.1` (transposed conv) | `decoders.l.stages.i.steps.j.conv` |
| `decoders.l.out` | `decoders.l.out` |
| `bottleneck.level_blocks.l.k` (codebook buffer) | `quantizers.l.codebook` (+ EMA state restarted from it) |
"""

from __future__ import annotations

import re

import torch

from ..losses.vqvae import VQVAELossConfig
from ..models.vqvae import HierarchicalVQVAE
from .checkpoint_file import OriginalCheckpoint

# hps key -> constructor argument, for the arguments that exist under another name or directly.
_STRUCTURE_KEYS = {
    "levels": "levels", "downs_t": "downs_t", "strides_t": "strides_t", "emb_width": "emb_width",
    "l_bins": "l_bins", "width": "width", "depth": "depth", "m_conv": "m_conv",
    "dilation_growth_rate": "dilation_growth_rate", "dilation_cycle": "dilation_cycle",
    "vqvae_reverse_decoder_dilation": "reverse_decoder_dilation", "res_scale": "res_scale",
}
_OPTIONAL_KEYS = {
    "hvqvae_multipliers": "hvqvae_multipliers", "l_mu": "l_mu", "revival_threshold": "revival_threshold",
    "sr": "sample_rate",
}
# hps key -> `VQVAELossConfig` field: the training objective, which is not part of the model.
_LOSS_KEYS = {
    "commit": "commit", "loss_fn": "loss_fn", "lmix_l1": "lmix_l1", "lmix_l2": "lmix_l2", "lmix_linf": "lmix_linf",
    "linf_k": "linf_k", "spectral": "spectral", "multispectral": "multispectral",
    "multispec_loss_n_fft": "multispec_n_fft", "multispec_loss_hop_length": "multispec_hop_length",
    "multispec_loss_window_size": "multispec_window_size", "use_nonrelative_specloss": "use_nonrelative_specloss",
}


# Not mapped: hps `n_fft`/`hop_length`/`window_size`. The original's spectral loss and bandwidth
# statistics use fixed STFT values (2048, 256, 1536) instead, which are our defaults.


def _plain(value):
    """numpy scalars and tuples -> JSON-serialisable Python values."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        return value.item()
    return value


def vqvae_config_from_hps(hps: dict) -> dict:
    """Constructor arguments of `HierarchicalVQVAE` from the original hps dict."""
    missing = [k for k in _STRUCTURE_KEYS if k not in hps]
    if missing:
        raise ValueError(f"the checkpoint's hps lack the VQ-VAE structure keys {missing}; is it a VQ-VAE checkpoint?")
    config = {ours: _plain(hps[theirs]) for theirs, ours in _STRUCTURE_KEYS.items()}
    config.update({ours: _plain(hps[theirs]) for theirs, ours in _OPTIONAL_KEYS.items() if theirs in hps})
    return config


def vqvae_loss_config_from_hps(hps: dict) -> VQVAELossConfig:
    """The original run's training objective: loss weights and its data statistics (`hps.bandwidth`).

    Args:
        hps: the original checkpoint's hps dict.
    """
    config = {ours: _plain(hps[theirs]) for theirs, ours in _LOSS_KEYS.items() if theirs in hps}
    for name, value in (hps.get("bandwidth") or {}).items():
        config[f"bandwidth_{name}"] = float(value)
    return VQVAELossConfig.from_dict(config)


def _map_key(key: str, downs_t: list[int]) -> str | None:
    """Our parameter name for an original VQ-VAE key (`None` if it is not a known pattern)."""
    if m := re.fullmatch(r"bottleneck\.level_blocks\.(\d+)\.k", key):
        return f"quantizers.{m[1]}.codebook"
    if m := re.fullmatch(r"decoders\.(\d+)\.out\.(weight|bias)", key):
        return key
    unit = r"model\.(\d+)\.model\.([13])\.(weight|bias)"
    conv_name = {"1": "dilated_conv", "3": "pointwise_conv"}
    if m := re.fullmatch(r"encoders\.(\d+)\.level_blocks\.(\d+)\.model\.(\d+)\.1\." + unit, key):
        level, stage, step, u, conv, param = m.groups()
        return f"encoders.{level}.stages.{stage}.steps.{step}.residual.units.{u}.{conv_name[conv]}.{param}"
    if m := re.fullmatch(r"encoders\.(\d+)\.level_blocks\.(\d+)\.model\.(\d+)\.0\.(weight|bias)", key):
        level, stage, step, param = m.groups()
        return f"encoders.{level}.stages.{stage}.steps.{step}.conv.{param}"
    if m := re.fullmatch(r"encoders\.(\d+)\.level_blocks\.(\d+)\.model\.(\d+)\.(weight|bias)", key):
        level, stage, index, param = m.groups()
        if int(stage) < len(downs_t) and int(index) == downs_t[int(stage)]:
            return f"encoders.{level}.stages.{stage}.proj.{param}"
        return None
    if m := re.fullmatch(r"decoders\.(\d+)\.level_blocks\.(\d+)\.model\.(\d+)\.0\." + unit, key):
        level, stage, index, u, conv, param = m.groups()
        return f"decoders.{level}.stages.{stage}.steps.{int(index) - 1}.residual.units.{u}.{conv_name[conv]}.{param}"
    if m := re.fullmatch(r"decoders\.(\d+)\.level_blocks\.(\d+)\.model\.(\d+)\.1\.(weight|bias)", key):
        level, stage, index, param = m.groups()
        return f"decoders.{level}.stages.{stage}.steps.{int(index) - 1}.conv.{param}"
    if m := re.fullmatch(r"decoders\.(\d+)\.level_blocks\.(\d+)\.model\.0\.(weight|bias)", key):
        level, stage, param = m.groups()
        return f"decoders.{level}.stages.{stage}.proj.{param}"
    return None


def map_vqvae_state_dict(state_dict: dict[str, torch.Tensor], downs_t: list[int]) -> dict[str, torch.Tensor]:
    """Rename every original key to ours (float32); raise listing any key that matches no rule."""
    mapped, unknown = {}, []
    for key, value in state_dict.items():
        ours = _map_key(key, downs_t)
        if ours is None:
            unknown.append(key)
        else:
            mapped[ours] = value.float()
    if unknown:
        raise ValueError(f"{len(unknown)} original VQ-VAE keys have no counterpart in HierarchicalVQVAE: {unknown[:10]}")
    return mapped


def vqvae_from_original(checkpoint: OriginalCheckpoint) -> HierarchicalVQVAE:
    """Build a `HierarchicalVQVAE` from an original VQ-VAE checkpoint.

    Args:
        checkpoint: a checkpoint read by `read_original_checkpoint` with `kind == "vqvae"`.

    Returns:
        The model in eval mode, float32, codebooks restored and marked initialised.

    Raises:
        ValueError: the checkpoint is not a VQ-VAE, or keys/shapes do not match the config in its hps.
    """
    if checkpoint.kind != "vqvae":
        raise ValueError(f"{checkpoint.path} holds a {checkpoint.kind}, not a VQ-VAE")
    config = vqvae_config_from_hps(checkpoint.hps)
    try:
        with torch.device("meta"):  # shapes only: hps asking for a huge model allocate nothing before the checks
            model = HierarchicalVQVAE(**config)
    except (TypeError, ValueError, KeyError, AssertionError) as err:
        raise ValueError(f"{checkpoint.path}: its hps do not describe a valid VQ-VAE ({err})") from err
    mapped = map_vqvae_state_dict(checkpoint.state_dict, list(config["downs_t"]))
    codebooks = {k: mapped.pop(k) for k in [k for k in mapped if k.endswith(".codebook")]}
    expected = {k for k in model.state_dict() if not k.startswith("quantizers.")}
    missing, unexpected = sorted(expected - set(mapped)), sorted(set(mapped) - expected)
    if missing or unexpected or len(codebooks) != config["levels"]:
        raise ValueError(f"{checkpoint.path} does not match the VQ-VAE described by its hps: missing "
                         f"{missing[:10]}, unexpected {unexpected[:10]}, {len(codebooks)} codebooks for "
                         f"{config['levels']} levels")
    own = model.state_dict()
    bad_shapes = [k for k, v in mapped.items() if v.shape != own[k].shape]
    if bad_shapes:
        raise ValueError(f"{checkpoint.path}: shape mismatch for {[(k, tuple(mapped[k].shape)) for k in bad_shapes[:5]]}")
    model = HierarchicalVQVAE(**config)  # now for real: every shape was checked against the weights
    model.load_state_dict(mapped, strict=False)
    for level, quantizer in enumerate(model.quantizers):
        # The original keeps only `k`; its EMA sums/counts restart from it (`restore_k`).
        quantizer.set_codebook(codebooks[f"quantizers.{level}.codebook"])
    return model.float().eval()

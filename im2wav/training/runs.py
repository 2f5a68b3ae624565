"""One training run per stage, from a typed run configuration.

`train_vqvae_run(VQVAERunConfig(...))` and `train_prior_run(PriorRunConfig(...))` are what the
training commands call after turning their arguments into these dataclasses
(`im2wav.training.arguments`): open the data, build the model (`setup_model`), check that model and
data fit, write the resolved configuration and run `im2wav.training.loop.train`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import nn

from .checkpointing import check_settings_match, checkpoint_config, checkpoint_state
from .loop import LossFn, TrainingConfig, train
from .run_setup import ModelSource, setup_model, write_run_config
from .run_lock import run_lock

__all__ = ["PriorRunConfig", "VQVAERunConfig", "check_prior_fits_tokens", "reset_time_signal", "train_prior_run",
           "train_vqvae_run"]


@dataclass
class VQVAERunConfig:
    """A VQ-VAE training run.

    Args:
        dataset: prepared dataset folder.
        model: where the model comes from. For the VQ-VAE, `config_overrides` may also set fields
            of the training objective (`im2wav.losses.vqvae.VQVAELossConfig`), e.g. `multispectral`.
        training: the loop's configuration (run folder, steps, optimiser, ...).
        window_length: audio samples per training window (a multiple of the largest hop).
        bandwidth_windows: training windows the loss normalisation is measured on (new runs).
        val_fraction: validation share of the items when the manifest has no split column.
        progress: show a progress bar.
    """

    dataset: str
    model: ModelSource
    training: TrainingConfig
    window_length: int = 65536
    bandwidth_windows: int = 64
    val_fraction: float = 0.0
    progress: bool = True


@dataclass
class PriorRunConfig:
    """A LOW or UP prior training run.

    Args:
        level: `low` or `up`.
        dataset: prepared dataset folder (CLIP frames, lengths).
        tokens: token folder written by `encode_tokens`.
        model: where the model comes from.
        training: the loop's configuration.
        condition_dropout: probability of training a window with the null condition (0.5 LOW, 0 UP).
        time_signal_init_std: fresh LOW runs: redraw the time-signal embeddings from N(0, std**2)
            (`reset_time_signal`); None keeps the constructor's N(0, 0.01**2), the original's init.
        val_fraction: validation share of the items when the manifest has no split column.
        progress: show a progress bar.
    """

    level: str
    dataset: str
    tokens: str
    model: ModelSource
    training: TrainingConfig
    condition_dropout: float = 0.0
    time_signal_init_std: float | None = None
    val_fraction: float = 0.0
    progress: bool = True


def reset_time_signal(prior: nn.Module, std: float) -> None:
    """Redraw the LOW prior's time-signal embeddings from N(0, std**2), in place.

    The constructor draws them with std 0.01, as the original does; a larger std lets the time
    signal drown the image condition at the start of training. Applied to fresh training runs only:
    a resumed or loaded model keeps its weights.

    Args:
        prior: an `Im2WavPrior` with a time signal (LOW).
        std: the standard deviation (> 0).

    Raises:
        ValueError: `std` is not positive, or the prior has no time signal.
    """
    if not std > 0:
        raise ValueError(f"--time-signal-init-std must be > 0, got {std}")
    if getattr(prior, "time_embedding", None) is None:
        raise ValueError("--time-signal-init-std applies to a prior with a time signal (the LOW prior); drop it for UP")
    for embedding in (prior.time_embedding.total_length, prior.time_embedding.absolute_position,
                      prior.time_embedding.relative_position):
        nn.init.normal_(embedding.emb.weight, std=std)


def _check_type(config, expected: type) -> None:
    if not isinstance(config, expected):
        raise TypeError(f"expected a {expected.__name__}, got {type(config).__name__}; build it from parsed "
                        f"arguments with im2wav.training.arguments (e.g. vqvae_run_config(args))")


def _validation_windows(open_split: Callable[[str], object]):
    """The `val` split's windows, or None when the dataset holds no validation item."""
    try:
        return open_split("val")
    except ValueError:
        return None  # no validation items (or none long enough for a window)


def _run(run, cfg: TrainingConfig, model: nn.Module, resume, loss_fn: LossFn, train_data, val_data,
         extra: dict | None = None, checkpoint_extra: dict | None = None) -> dict:
    """Write the run's config, train, and return the JSON summary the commands print."""
    settings = {k: v for k, v in dataclasses.asdict(run).items() if k != "training"}
    with run_lock(cfg.run_dir):  # one run per run folder: a second one stops here, in one line
        write_run_config(cfg, settings, model, {"train_items": len(train_data),
                                                "val_items": 0 if val_data is None else len(val_data),
                                                **(extra or {})})
        result = train(model, loss_fn, train_data, cfg, val_data=val_data, resume=resume, progress=run.progress,
                       checkpoint_extra=checkpoint_extra)
    return {"step": result.step, "stopped": result.stopped, "checkpoint": str(result.checkpoint),
            "last_loss": result.losses[-1] if result.losses else None, "val_loss": result.val_loss}


def _vqvae_loss_config(loss_overrides: dict, resume, measure: Callable[[], dict]):
    """The run's `VQVAELossConfig`: the checkpoint's on resume, else defaults + overrides + measured statistics."""
    from ..losses.vqvae import VQVAELossConfig

    if resume is None:
        stats = measure()
        return VQVAELossConfig.from_dict({**loss_overrides, "bandwidth_l1": stats["l1"], "bandwidth_l2": stats["l2"],
                                          "bandwidth_spec": stats["spec"]})
    # checkpoints written before the objective left the model carry it in the model config
    saved = checkpoint_state(resume).get("extra", {}).get("vqvae_loss") or checkpoint_config(resume)
    loss = VQVAELossConfig.from_dict(saved)
    requested = VQVAELossConfig.from_dict(loss_overrides).to_dict()  # validates the overrides
    check_settings_match(loss.to_dict(), {k: requested[k] for k in loss_overrides}, resume, "loss config")
    return loss


def train_vqvae_run(run: VQVAERunConfig) -> dict:
    """Train (or fine-tune, or resume) the VQ-VAE.

    A new run (fresh or `--init`) measures the loss normalisation (`bandwidth_*`) on
    `run.bandwidth_windows` training windows, as the original does on every run; a resumed run
    takes the loss config stored in its checkpoint.

    Args:
        run: the run's configuration.

    Returns:
        `{"step", "stopped", "checkpoint", "last_loss", "val_loss"}`.

    Raises:
        ValueError: `window_length` is not a multiple of the VQ-VAE's largest hop, or see `setup_model`.
    """
    from ..data.windows import AudioWindows
    from ..losses.audio import bandwidth_stats
    from ..losses.vqvae import VQVAELossConfig, vqvae_loss
    from ..models.vqvae import PRESETS, HierarchicalVQVAE

    _check_type(run, VQVAERunConfig)
    cfg = dataclasses.replace(run.training, stage="vqvae", tokens_per_sample=run.window_length)

    def open_split(split: str) -> AudioWindows:
        return AudioWindows(run.dataset, run.window_length, split, run.val_fraction)

    train_data = open_split("train")
    val_data = _validation_windows(open_split)
    loss_keys = VQVAELossConfig.field_names()
    overrides = run.model.config_overrides
    source = dataclasses.replace(run.model, config_overrides={k: v for k, v in overrides.items() if k not in loss_keys})
    model, resume = setup_model(source, "vqvae", cfg.run_dir, cfg.seed, PRESETS, lambda c: HierarchicalVQVAE(**c))
    hop = model.hop_lengths[-1]
    if run.window_length % hop:
        raise ValueError(f"--window-length {run.window_length} must be a multiple of the VQ-VAE's largest hop ({hop})")

    def measure() -> dict:
        rng = np.random.default_rng([cfg.seed, 1_000_003])
        return bandwidth_stats(train_data.batch(train_data.draw(rng, run.bandwidth_windows))["audio"])  # (B, S)

    loss_config = _vqvae_loss_config({k: v for k, v in overrides.items() if k in loss_keys}, resume, measure)

    def loss_fn(model: nn.Module, batch: dict, training: bool):
        out = vqvae_loss(model, batch["audio"], loss_config)  # (B, S) -> reconstructions + loss terms
        return out.loss, out.metrics

    return _run(run, cfg, model, resume, loss_fn, train_data, val_data, extra={"loss_config": loss_config.to_dict()},
                checkpoint_extra={"vqvae_loss": loss_config.to_dict()})


def check_prior_fits_tokens(config, token_info, level: int, rows: list[dict]) -> None:
    """Raise a `ValueError` unless a prior with `config` can train on these tokens.

    Args:
        config: the prior's config (`Im2WavPrior.config`).
        token_info: the token folder's `TokenInfo`.
        level: the token level the prior models (1 LOW, 0 UP).
        rows: the manifest rows of the training items (`num_samples`, `id`).
    """
    if token_info.codebook_size != config.vocab_size:
        raise ValueError(f"the tokens come from a VQ-VAE with {token_info.codebook_size} codes but the prior models "
                         f"{config.vocab_size}; pick a matching --preset or override vocab_size")
    if token_info.hop_lengths[level] != config.hop_length:
        raise ValueError(f"the prior's hop_length is {config.hop_length} but level {level} of the tokens has hop "
                         f"{token_info.hop_lengths[level]}")
    if config.lower_vocab_size is not None and config.lower_vocab_size != token_info.codebook_size:
        raise ValueError(f"the UP prior expects LOW tokens from {config.lower_vocab_size} codes, the tokens have "
                         f"{token_info.codebook_size}")
    if config.time_signal:  # the time signal only covers lengths the prior was built for
        short = [r["id"] for r in rows if r["num_samples"] < config.min_duration * config.sample_rate]
        if short:
            raise ValueError(f"{len(short)} clips (e.g. {short[0]!r}) are shorter than the prior's min_duration "
                             f"({config.min_duration} s); lower it with --config-overrides "
                             "'{\"min_duration\": ...}' in a fresh run, or prepare longer clips")


def train_prior_run(run: PriorRunConfig) -> dict:
    """Train (or fine-tune, or resume) the LOW or UP prior.

    Args:
        run: the run's configuration.

    Returns:
        `{"step", "stopped", "checkpoint", "last_loss", "val_loss"}`.

    Raises:
        ValueError: the prior does not fit the tokens (`check_prior_fits_tokens`), or see `setup_model`.
    """
    from ..data.windows import TokenWindows
    from ..losses.tokens import prior_token_loss
    from ..models.prior import PRESETS, Im2WavPrior

    _check_type(run, PriorRunConfig)
    if run.level not in ("low", "up"):
        raise ValueError(f"level must be 'low' or 'up', got {run.level!r}")
    model, resume = setup_model(run.model, run.level, run.training.run_dir, run.training.seed, PRESETS,
                                lambda config: Im2WavPrior(**config))
    if run.time_signal_init_std is not None and resume is None and run.model.init is None:
        reset_time_signal(model, run.time_signal_init_std)  # a fresh model; a resumed or loaded one keeps its weights
    cfg = dataclasses.replace(run.training, stage=run.level, tokens_per_sample=model.config.n_ctx)
    level = 1 if run.level == "low" else 0

    def open_split(split: str) -> TokenWindows:
        return TokenWindows(run.dataset, run.tokens, level, model.config.n_ctx, split, run.val_fraction)

    train_data = open_split("train")
    val_data = _validation_windows(open_split)
    info = train_data.token_info
    check_prior_fits_tokens(model.config, info, level, train_data.rows)

    def loss_fn(model: nn.Module, batch: dict, training: bool):
        out = prior_token_loss(model, batch["tokens"], frame_embeds=batch["frame_embeds"],
                               lower_tokens=batch.get("lower_tokens"),
                               timing=batch["timing"] if run.level == "low" else None,
                               condition_dropout=run.condition_dropout if training else 0.0)
        return out.loss, {"cross_entropy": out.cross_entropy.detach()}

    return _run(run, cfg, model, resume, loss_fn, train_data, val_data,
                extra={"tokens_info": info.__dict__ | {"vqvae_config": "..."}})

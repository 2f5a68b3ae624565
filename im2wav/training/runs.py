"""One training run per stage, from parsed command-line arguments.

`train_vqvae_run(args)` and `train_prior_run(args)` are what `training_scripts/train_vqvae.py` and
`training_scripts/train_prior.py` call: open the data, build the model (`setup_model`), check that
model and data fit, write the resolved configuration and run `im2wav.training.loop.train`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from torch import nn

from .arguments import setup_model, training_config, write_run_config
from .loop import LossFn, train
from .run_lock import run_lock

__all__ = ["check_prior_fits_tokens", "train_prior_run", "train_vqvae_run"]


def _validation_windows(open_split: Callable[[str], object]):
    """The `val` split's windows, or None when the dataset holds no validation item."""
    try:
        return open_split("val")
    except ValueError:
        return None  # no validation items (or none long enough for a window)


def _run(args: argparse.Namespace, stage: str, model: nn.Module, resume, loss_fn: LossFn, train_data, val_data,
         tokens_per_sample: int, extra: dict | None = None) -> dict:
    """Write the run's config, train, and return the JSON summary the scripts print."""
    cfg = training_config(args, stage, tokens_per_sample=tokens_per_sample)
    with run_lock(args.run_dir):  # one run per run folder: a second one stops here, in one line
        write_run_config(args.run_dir, args, cfg, model, {"train_items": len(train_data),
                                                           "val_items": 0 if val_data is None else len(val_data),
                                                           **(extra or {})})
        result = train(model, loss_fn, train_data, cfg, val_data=val_data, resume=resume,
                       progress=not args.no_progress)
    return {"step": result.step, "stopped": result.stopped, "checkpoint": str(result.checkpoint),
            "last_loss": result.losses[-1] if result.losses else None, "val_loss": result.val_loss}


def train_vqvae_run(args: argparse.Namespace) -> dict:
    """Train (or fine-tune, or resume) the VQ-VAE as `training_scripts/train_vqvae.py` describes.

    A fresh model's loss normalisation (`bandwidth_*`) is measured on `args.bandwidth_windows`
    training windows.

    Args:
        args: the script's parsed arguments (`add_training_arguments` plus `--dataset`,
            `--window-length`, `--bandwidth-windows`).

    Returns:
        `{"step", "stopped", "checkpoint", "last_loss", "val_loss"}`.

    Raises:
        ValueError: `--window-length` is not a multiple of the VQ-VAE's largest hop, or see `setup_model`.
    """
    from ..data.windows import AudioWindows
    from ..losses.audio import bandwidth_stats
    from ..models.vqvae import PRESETS, HierarchicalVQVAE

    def open_split(split: str) -> AudioWindows:
        return AudioWindows(args.dataset, args.window_length, split, args.val_fraction)

    train_data = open_split("train")
    val_data = _validation_windows(open_split)

    def fresh(config: dict) -> HierarchicalVQVAE:
        rng = np.random.default_rng([args.seed, 1_000_003])
        clips = train_data.batch(train_data.draw(rng, args.bandwidth_windows))["audio"]  # (B, S)
        stats = bandwidth_stats(clips)
        return HierarchicalVQVAE(**config, bandwidth_l1=stats["l1"], bandwidth_l2=stats["l2"],
                                 bandwidth_spec=stats["spec"])

    model, resume = setup_model(args, "vqvae", PRESETS, fresh,
                                data_keys=("bandwidth_l1", "bandwidth_l2", "bandwidth_spec"))
    hop = model.hop_lengths[-1]
    if args.window_length % hop:
        raise ValueError(f"--window-length {args.window_length} must be a multiple of the VQ-VAE's largest hop ({hop})")

    def loss_fn(model: nn.Module, batch: dict, training: bool):
        out = model(batch["audio"])  # (B, S) -> reconstructions + loss terms
        return out.loss, out.metrics

    return _run(args, "vqvae", model, resume, loss_fn, train_data, val_data, tokens_per_sample=args.window_length)


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


def train_prior_run(args: argparse.Namespace) -> dict:
    """Train (or fine-tune, or resume) the LOW or UP prior as `training_scripts/train_prior.py` describes.

    Args:
        args: the script's parsed arguments (`add_training_arguments` plus `--level`, `--dataset`,
            `--tokens`, `--condition-dropout`, all resolved).

    Returns:
        `{"step", "stopped", "checkpoint", "last_loss", "val_loss"}`.

    Raises:
        ValueError: the prior does not fit the tokens (`check_prior_fits_tokens`), or see `setup_model`.
    """
    from ..data.windows import TokenWindows
    from ..losses.tokens import prior_token_loss
    from ..models.prior import PRESETS, Im2WavPrior

    model, resume = setup_model(args, args.level, PRESETS, lambda config: Im2WavPrior(**config))
    level = 1 if args.level == "low" else 0

    def open_split(split: str) -> TokenWindows:
        return TokenWindows(args.dataset, args.tokens, level, model.config.n_ctx, split, args.val_fraction)

    train_data = open_split("train")
    val_data = _validation_windows(open_split)
    info = train_data.token_info
    check_prior_fits_tokens(model.config, info, level, train_data.rows)

    def loss_fn(model: nn.Module, batch: dict, training: bool):
        out = prior_token_loss(model, batch["tokens"], frame_embeds=batch["frame_embeds"],
                               lower_tokens=batch.get("lower_tokens"),
                               timing=batch["timing"] if args.level == "low" else None,
                               condition_dropout=args.condition_dropout if training else 0.0)
        return out.loss, {"cross_entropy": out.cross_entropy.detach()}

    return _run(args, args.level, model, resume, loss_fn, train_data, val_data, tokens_per_sample=model.config.n_ctx,
                extra={"tokens_info": info.__dict__ | {"vqvae_config": "..."}})

"""The command-line boundary of training: shared arguments, and parsed arguments -> typed run configs.

Every stage command adds `add_training_arguments` to its parser, then turns the parsed namespace
into a `VQVAERunConfig` / `PriorRunConfig` (`vqvae_run_config`, `prior_run_config`) for
`im2wav.training.runs`. Nothing past this module sees an `argparse.Namespace`.
"""

from __future__ import annotations

import argparse
import json

from .loop import TrainingConfig
from .run_setup import ModelSource
from .runs import PriorRunConfig, VQVAERunConfig

__all__ = ["add_training_arguments", "model_source", "parse_overrides", "prior_run_config", "training_config",
           "vqvae_run_config"]


def add_training_arguments(parser: argparse.ArgumentParser, *, preset: str, batch_size: int, lr: float,
                           max_steps: int) -> None:
    """Add the arguments every stage shares (with stage-specific defaults).

    Args:
        parser: the script's parser.
        preset: default `--preset`.
        batch_size: default `--batch-size`.
        lr: default `--lr`.
        max_steps: default `--max-steps`.
    """
    g = parser.add_argument_group("model")
    g.add_argument("--preset", default=preset, help="model preset for a fresh run (ignored with --init/--resume)")
    g.add_argument("--config-overrides", default="{}",
                   help="JSON object of model config fields overriding the preset, e.g. '{\"width\": 32}' "
                        "(for the VQ-VAE also loss fields, e.g. '{\"multispectral\": 0.5}')")
    g.add_argument("--init", default=None,
                   help="fine-tune from: an original .pth.tar, a pipeline folder, a model folder, a checkpoint or a run folder")
    g = parser.add_argument_group("run")
    g.add_argument("--run-dir", required=True, help="run folder: checkpoints, metrics, resolved config")
    g.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue exactly: alone, from --run-dir's latest checkpoint; or from a given run/checkpoint folder")
    g.add_argument("--max-steps", type=int, default=max_steps, help="total optimizer steps (a resumed run counts earlier ones)")
    g.add_argument("--max-minutes", type=float, default=None, help="also stop after this many minutes of this process")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, data sampling and dropout")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, default=batch_size, help="windows per micro-batch per process")
    g.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--lr", type=float, default=lr, help="peak learning rate (AdamW)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay of matrices")
    g.add_argument("--beta1", type=float, default=0.9, help="AdamW beta1")
    g.add_argument("--beta2", type=float, default=0.999, help="AdamW beta2")
    g.add_argument("--warmup-steps", type=int, default=100, help="linear learning-rate warmup steps")
    g.add_argument("--lr-decay", choices=("constant", "linear", "cosine"), default="constant",
                   help="learning-rate shape after warmup")
    g.add_argument("--clip-grad-norm", type=float, default=1.0, help="gradient clipping norm (0: off)")
    g.add_argument("--ema-decay", type=float, default=None, help="keep an EMA of the weights with this decay (e.g. 0.999)")
    g.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no", help="accelerate mixed precision")
    g = parser.add_argument_group("logging, validation, checkpoints")
    g.add_argument("--log-every", type=int, default=10, help="steps per metrics row")
    g.add_argument("--val-every", type=int, default=0, help="steps between validations (0: only at the end)")
    g.add_argument("--val-fraction", type=float, default=0.0,
                   help="validation share of the items when the manifest has no split column")
    g.add_argument("--val-windows", type=int, default=32, help="validation windows (a fixed set)")
    g.add_argument("--save-every", type=int, default=500, help="steps between checkpoints (one is always written at the end)")
    g.add_argument("--keep-checkpoints", type=int, default=2, help="checkpoints kept in the run folder")


def parse_overrides(text: str) -> dict:
    """`--config-overrides` JSON -> dict, with a clear error.

    Args:
        text: the option's value, a JSON object.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--config-overrides must be a JSON object, e.g. '{{\"width\": 32}}': {err}") from err
    if not isinstance(value, dict):
        raise TypeError(f"--config-overrides must be a JSON object, got {text!r}")
    return value


def model_source(args: argparse.Namespace) -> ModelSource:
    """The `ModelSource` of parsed arguments (`--preset`, `--config-overrides`, `--init`, `--resume`).

    Args:
        args: parsed arguments (`add_training_arguments`).
    """
    return ModelSource(preset=args.preset, config_overrides=parse_overrides(args.config_overrides),
                       init=None if args.init is None else str(args.init),
                       resume=None if args.resume is None else str(args.resume))


def training_config(args: argparse.Namespace, stage: str) -> TrainingConfig:
    """The loop's configuration from the parsed arguments.

    Args:
        args: parsed arguments (`add_training_arguments`).
        stage: `vqvae`, `low` or `up`.
    """
    for name in ("max_steps", "batch_size", "grad_accum", "log_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return TrainingConfig(
        run_dir=str(args.run_dir), stage=stage, max_steps=args.max_steps, max_minutes=args.max_minutes,
        batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr, weight_decay=args.weight_decay,
        betas=(args.beta1, args.beta2), warmup_steps=args.warmup_steps, lr_decay=args.lr_decay,
        clip_grad_norm=args.clip_grad_norm, ema_decay=args.ema_decay, mixed_precision=args.mixed_precision,
        log_every=args.log_every, val_every=args.val_every, val_windows=args.val_windows,
        save_every=args.save_every, keep_checkpoints=args.keep_checkpoints, seed=args.seed,
    )


def vqvae_run_config(args: argparse.Namespace) -> VQVAERunConfig:
    """`train_vqvae`'s parsed arguments (`add_training_arguments` plus `--dataset`, `--window-length`,
    `--bandwidth-windows`) -> `VQVAERunConfig`.

    Args:
        args: the parsed arguments.
    """
    return VQVAERunConfig(dataset=str(args.dataset), model=model_source(args), training=training_config(args, "vqvae"),
                          window_length=args.window_length, bandwidth_windows=args.bandwidth_windows,
                          val_fraction=args.val_fraction, progress=not args.no_progress)


def prior_run_config(args: argparse.Namespace) -> PriorRunConfig:
    """`train_prior`'s parsed arguments (`add_training_arguments` plus `--level`, `--dataset`, `--tokens`,
    `--condition-dropout`) -> `PriorRunConfig`; an empty `--preset` means `paper-<level>`, no
    `--condition-dropout` means 0.5 for LOW and 0 for UP.

    Args:
        args: the parsed arguments.
    """
    source = model_source(args)
    if not source.preset:
        source.preset = f"paper-{args.level}"
    dropout = args.condition_dropout
    if dropout is None:
        dropout = 0.5 if args.level == "low" else 0.0
    return PriorRunConfig(level=args.level, dataset=str(args.dataset), tokens=str(args.tokens), model=source,
                          training=training_config(args, args.level), condition_dropout=dropout,
                          val_fraction=args.val_fraction, progress=not args.no_progress)

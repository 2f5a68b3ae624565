"""The command-line boundary of training: shared arguments, and parsed arguments -> typed run configs.

Every stage command adds `add_training_arguments` to its parser, then turns the parsed namespace
into a `VQVAERunConfig` / `PriorRunConfig` (`vqvae_run_config`, `prior_run_config`) for
`im2wav.training.runs`. Nothing past this module sees an `argparse.Namespace`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from .loop import TrainingConfig
from .optim import LR_DECAYS
from .run_setup import ModelSource
from .runs import PriorRunConfig, VQVAERunConfig

__all__ = ["add_training_arguments", "model_source", "parse_overrides", "prior_run_config", "training_config",
           "vqvae_run_config"]


# Options that set the `TrainingConfig` field of the same name, per help group: (field, help). Their
# defaults and types come from the dataclass, so the command line and the library cannot drift apart.
_LOOP_OPTIONS: dict[str, list[tuple[str, str]]] = {
    "run": [("max_steps", "total optimizer steps (a resumed run counts earlier ones)"),
            ("max_minutes", "also stop after this many minutes of this process"),
            ("seed", "seed of initialisation, data sampling and dropout")],
    "optimisation": [("batch_size", "windows per micro-batch per process"),
                     ("grad_accum", "micro-batches per optimizer step"), ("lr", "peak learning rate (AdamW)"),
                     ("weight_decay", "AdamW weight decay of matrices"),
                     ("warmup_steps", "linear learning-rate warmup steps (from 0)"),
                     ("lr_decay", "learning-rate shape after warmup"),
                     ("clip_grad_norm", "gradient clipping norm (0: off)"),
                     ("ema_decay", "keep an EMA of the weights with this decay (e.g. 0.999)"),
                     ("mixed_precision", "accelerate mixed precision")],
    "logging, validation, checkpoints": [
        ("log_every", "steps per metrics row"), ("val_every", "steps between validations (0: only at the end)"),
        ("val_windows", "validation windows (a fixed set)"),
        ("save_every", "steps between checkpoints (one is always written at the end)"),
        ("keep_checkpoints", "checkpoints kept in the run folder")],
}
_CHOICES = {"lr_decay": LR_DECAYS, "mixed_precision": ("no", "fp16", "bf16")}
_FLOAT_OR_NONE = ("max_minutes", "ema_decay")


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
    stage_defaults = {"batch_size": batch_size, "lr": lr, "max_steps": max_steps}
    defaults = {f.name: f.default for f in fields(TrainingConfig)} | stage_defaults
    groups = {}
    for title, options in _LOOP_OPTIONS.items():
        groups[title] = g = parser.add_argument_group(title)
        for name, help_text in options:
            kind = float if name in _FLOAT_OR_NONE else type(defaults[name])
            g.add_argument("--" + name.replace("_", "-"), type=kind, default=defaults[name], help=help_text,
                           choices=_CHOICES.get(name))
    g = groups["run"]
    g.add_argument("--run-dir", required=True, help="run folder: checkpoints, metrics, resolved config")
    g.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue exactly: alone, from --run-dir's latest checkpoint; or from a given run/checkpoint folder")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    beta1, beta2 = defaults["betas"]
    groups["optimisation"].add_argument("--beta1", type=float, default=beta1, help="AdamW beta1")
    groups["optimisation"].add_argument("--beta2", type=float, default=beta2, help="AdamW beta2")
    groups["logging, validation, checkpoints"].add_argument(
        "--val-fraction", type=float, default=0.0, help="validation share of the items when the manifest has no split column")


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
    options = {name: getattr(args, name) for group in _LOOP_OPTIONS.values() for name, _ in group}
    return TrainingConfig(run_dir=str(args.run_dir), stage=stage, betas=(args.beta1, args.beta2), **options)


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
    `--condition-dropout`, `--time-signal-init-std`) -> `PriorRunConfig`; an empty `--preset` means `paper-<level>`, no
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
                          time_signal_init_std=args.time_signal_init_std,
                          val_fraction=args.val_fraction, progress=not args.no_progress)

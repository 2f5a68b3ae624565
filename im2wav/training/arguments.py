"""Command-line arguments shared by the training scripts, and the run set-up they imply.

Every stage script (`train_vqvae.py`, `train_prior.py`) adds these arguments, then calls
`setup_model` (fresh from a preset, fine-tuned from `--init`, or resumed from `--resume`) and
`training_config`, writes the resolved configuration with `write_run_config`, and runs
`im2wav.training.loop.train`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..atomic_files import atomic_write_text
from .checkpointing import check_compatible, checkpoint_config, latest_checkpoint
from .loop import TrainingConfig, config_dict, resolve_resume
from .stages import load_stage_model, model_class

__all__ = ["add_training_arguments", "parse_overrides", "setup_model", "training_config", "write_run_config"]


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
                   help="JSON object of model config fields overriding the preset, e.g. '{\"width\": 32}'")
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


def setup_model(args: argparse.Namespace, stage: str, presets: dict[str, dict],
                make_fresh: Callable[[dict], nn.Module], data_keys: tuple[str, ...] = ()) -> tuple[nn.Module, Path | None]:
    """Build the model of a run: resumed, fine-tuned or fresh.

    Args:
        args: parsed arguments (`add_training_arguments`).
        stage: `vqvae`, `low` or `up`.
        presets: the model class's `PRESETS`.
        make_fresh: `config -> model` for a fresh run (may add statistics measured from the data).
        data_keys: config keys measured from the data; not compared on resume.

    Returns:
        `(model, checkpoint to resume from or None)`.

    Raises:
        ValueError: an unknown preset, an incompatible checkpoint, or a run folder that already has
            checkpoints while `--resume` is not given.
    """
    torch.manual_seed(args.seed)
    overrides = parse_overrides(args.config_overrides)
    resume = resolve_resume(args.resume, args.run_dir)
    if resume is None and latest_checkpoint(args.run_dir) is not None:
        raise ValueError(f"{args.run_dir} already holds checkpoints: pass --resume to continue that run, or choose "
                         "a new --run-dir")
    if resume is not None:
        saved = checkpoint_config(resume)
        if args.init is None:  # a fresh run's settings must match the checkpoint's model
            if args.preset not in presets:
                raise ValueError(f"unknown preset {args.preset!r}; choose one of {sorted(presets)}")
            intended = {**presets[args.preset], **overrides}
            # fields the preset leaves at their defaults, and statistics measured from the data, are not compared
            check_compatible(intended, resume, stage, ignore=tuple(set(saved) - set(intended)) + tuple(data_keys))
        else:
            check_compatible(saved, resume, stage)  # checks the stage
        return model_class(stage).from_config(saved).train(), resume
    if args.init is not None:
        model = load_stage_model(args.init, stage)
        if overrides:
            raise ValueError("--config-overrides cannot change a model loaded with --init (its weights fix its config)")
        return model, None
    if args.preset not in presets:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {sorted(presets)}")
    return make_fresh({**presets[args.preset], **overrides}).train(), None


def training_config(args: argparse.Namespace, stage: str, tokens_per_sample: int = 1) -> TrainingConfig:
    """The loop's configuration from the parsed arguments.

    Args:
        args: parsed arguments (`add_training_arguments`).
        stage: `vqvae`, `low` or `up`.
        tokens_per_sample: tokens per window, for the tokens/s throughput.
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
        tokens_per_sample=tokens_per_sample,
    )


def write_run_config(run_dir: str | os.PathLike, args: argparse.Namespace, cfg: TrainingConfig, model: nn.Module,
                     extra: dict | None = None) -> Path:
    """Write `config.json` into the run folder: arguments, loop config, model config, extras.

    Args:
        run_dir: the run folder (created).
        args: parsed arguments.
        cfg: the loop's configuration.
        model: the model (its config is recorded).
        extra: further JSON-able fields (item counts, token info).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {
        "arguments": vars(args),
        "training": config_dict(cfg),
        "model_class": type(model).__name__,
        "model_config": {k: v for k, v in dict(model.config).items() if not k.startswith("_")},
        **(extra or {}),
    }
    path = run_dir / "config.json"
    atomic_write_text(path, json.dumps(resolved, indent=2, default=str))
    return path

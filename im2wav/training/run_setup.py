"""A run's starting point: its model (fresh, fine-tuned or resumed) and the resolved config it writes.

`setup_model(source, stage, ...)` builds the model of a run from a typed `ModelSource`;
`write_run_config` records everything a run resolved into its folder. The command-line side
(`im2wav.training.arguments`) only turns parsed arguments into these dataclasses.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..atomic_files import atomic_write_text
from .checkpointing import check_compatible, checkpoint_config, latest_checkpoint
from .loop import TrainingConfig, config_dict, resolve_resume
from .stages import load_stage_model, model_class

__all__ = ["ModelSource", "setup_model", "write_run_config"]


@dataclass
class ModelSource:
    """Where a run's model comes from.

    Args:
        preset: model preset of a fresh run (checked against the checkpoint on resume).
        config_overrides: model config fields overriding the preset.
        init: fine-tune from this file or folder (see `im2wav.training.stages.load_stage_model`).
        resume: continue exactly: `auto` (the run folder's latest checkpoint), a run folder or a
            checkpoint folder; None for a new run.
    """

    preset: str
    config_overrides: dict = field(default_factory=dict)
    init: str | None = None
    resume: str | None = None


def setup_model(source: ModelSource, stage: str, run_dir: str | os.PathLike, seed: int, presets: dict[str, dict],
                make_fresh: Callable[[dict], nn.Module]) -> tuple[nn.Module, Path | None]:
    """Build the model of a run: resumed, fine-tuned or fresh.

    Args:
        source: where the model comes from.
        stage: `vqvae`, `low` or `up`.
        run_dir: the run folder (checked for earlier checkpoints).
        seed: seeds the initialisation of a fresh model.
        presets: the model class's `PRESETS`.
        make_fresh: `config -> model` for a fresh run.

    Returns:
        `(model, checkpoint to resume from or None)`.

    Raises:
        ValueError: an unknown preset, an incompatible checkpoint, or a run folder that already has
            checkpoints while no resume is asked for.
    """
    torch.manual_seed(seed)
    overrides = dict(source.config_overrides)
    known = set(inspect.signature(model_class(stage).__init__).parameters) - {"self"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"--config-overrides: {unknown} are not fields of {model_class(stage).__name__}; "
                         f"choose from {sorted(known)}")
    resume = resolve_resume(source.resume, run_dir)
    if resume is None and latest_checkpoint(run_dir) is not None:
        raise ValueError(f"{run_dir} already holds checkpoints: pass --resume to continue that run, or choose "
                         "a new --run-dir")
    if resume is not None:
        saved = checkpoint_config(resume)
        if source.init is None:  # a fresh run's settings must match the checkpoint's model
            # fields the preset leaves at their defaults are not compared (check_compatible compares
            # only the keys of the config it is given)
            check_compatible({**_preset(presets, source.preset), **overrides}, resume, stage)
        else:
            check_compatible(saved, resume, stage)  # checks the stage
        return model_class(stage).from_config(saved).train(), resume
    if source.init is not None:
        model = load_stage_model(source.init, stage)
        if overrides:
            raise ValueError("--config-overrides cannot change a model loaded with --init (its weights fix its config)")
        return model, None
    return make_fresh({**_preset(presets, source.preset), **overrides}).train(), None


def _preset(presets: dict[str, dict], name: str) -> dict:
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(presets)}")
    return presets[name]


def write_run_config(cfg: TrainingConfig, run: dict, model: nn.Module, extra: dict | None = None) -> Path:
    """Write `config.json` into the run folder: the run's settings, loop config, model config, extras.

    Args:
        cfg: the loop's configuration (its `run_dir` is created).
        run: the run's other settings, JSON-able (dataset, model source, ...).
        model: the model (its config is recorded).
        extra: further JSON-able fields (item counts, token info, loss config).
    """
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = {
        "run": run,
        "training": config_dict(cfg),
        "model_class": type(model).__name__,
        "model_config": {k: v for k, v in dict(model.config).items() if not k.startswith("_")},
        **(extra or {}),
    }
    path = run_dir / "config.json"
    atomic_write_text(path, json.dumps(resolved, indent=2, default=str))
    return path

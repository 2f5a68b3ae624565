"""Training checkpoints: atomic, resumable, and loadable with `from_pretrained`.

A run folder holds::

    config.json                    the resolved training configuration
    metrics.jsonl, metrics.csv     one row per logged step (train and validation)
    checkpoints/step_00001000/
        model/                     `Model.from_pretrained(...)` folder (config.json + safetensors)
        ema/                       the EMA weights, same format (when EMA is on)
        training_state.pt          optimizer, scheduler, EMA state (tensors only: loads with weights_only)
        rng_0.json / rng_0.pt      per-process RNG: data sampler state (JSON) and torch RNG (tensors)
        state.json                 step, stage, world size
    checkpoints/latest             the name of the newest complete checkpoint

A checkpoint is written into a hidden temporary folder and renamed into place, then `latest` is
replaced atomically: a run killed at any moment leaves the previous checkpoint intact.

Why this is not accelerate's `save_state` / `load_state` / `register_for_checkpointing` (the EMA
and the learning-rate schedule do come from diffusers): `save_state` writes straight into its
target folder, so a run killed mid-save leaves a half checkpoint that `load_state` accepts; its
model file is a bare `model.safetensors`, not the `from_pretrained` folder that makes every
checkpoint a fine-tuning source (`--init`) and a pipeline component (`assemble`); objects
registered for checkpointing (our data sampler's generator) are unpickled with
`weights_only=False`, which this package never does; and `load_state` needs one RNG file per
process of the same world size, while a run here may resume on another number of processes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ..atomic_files import atomic_folder, atomic_write_text

__all__ = [
    "capture_rng",
    "check_compatible",
    "check_settings_match",
    "checkpoint_config",
    "checkpoint_state",
    "latest_checkpoint",
    "load_checkpoint",
    "restore_rng",
    "save_checkpoint",
    "save_rng",
]

CHECKPOINTS = "checkpoints"


def _normalise(value):
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def check_compatible(config: dict, checkpoint_dir: str | os.PathLike, stage: str) -> None:
    """Raise a `ValueError` unless `checkpoint_dir` was written for this stage and model config.

    Only the keys of `config` are compared: fields it leaves out (a preset's defaults) and fields the
    checkpoint's config carries but the model no longer takes (migrated on load) are not.

    Args:
        config: the model config this run would train (keys starting with `_` are ignored).
        checkpoint_dir: a `checkpoints/step_*` folder.
        stage: `vqvae`, `low` or `up`.
    """
    state = checkpoint_state(checkpoint_dir)
    if state.get("stage") != stage:
        raise ValueError(f"cannot resume {stage!r} training from {checkpoint_dir}: it is a {state.get('stage')!r} "
                         "checkpoint. Use --init to start a new run from another stage's weights")
    current = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    check_settings_match(checkpoint_config(checkpoint_dir), current, checkpoint_dir, "model config")


def check_settings_match(saved: dict, current: dict, checkpoint_dir: str | os.PathLike, what: str) -> None:
    """Raise a `ValueError` naming the keys of `current` whose value differs from `saved`'s.

    Only the keys of `current` are compared; a tuple equals the list of the same values (JSON).

    Args:
        saved: the settings stored in the checkpoint.
        current: the settings this run asks for.
        checkpoint_dir: the checkpoint (named in the message).
        what: what the settings are, e.g. `"model config"`.
    """
    differing = sorted(k for k in current if _normalise(saved.get(k)) != _normalise(current[k]))
    if differing:
        details = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs this run {current[k]!r}" for k in differing[:6])
        raise ValueError(f"cannot resume from {checkpoint_dir}: its {what} differs ({details}). Resume with "
                         "the original run's settings, or start a new run with --init to fine-tune from it")


def checkpoint_state(checkpoint_dir: str | os.PathLike) -> dict:
    """A checkpoint's `state.json`: step, stage, world size and what the run stored with it (`extra`).

    Args:
        checkpoint_dir: a `checkpoints/step_*` folder.
    """
    state_path = Path(checkpoint_dir) / "state.json"
    if not state_path.is_file():
        raise ValueError(f"{checkpoint_dir} is not a training checkpoint (no state.json); pass a "
                         f"run folder or one of its checkpoints/step_* folders to --resume")
    return json.loads(state_path.read_text())


def checkpoint_config(checkpoint_dir: str | os.PathLike) -> dict:
    """The model config saved in a checkpoint (without diffusers' `_` bookkeeping keys).

    Args:
        checkpoint_dir: a `checkpoints/step_*` folder.
    """
    path = Path(checkpoint_dir) / "model" / "config.json"
    if not path.is_file():
        raise ValueError(f"{checkpoint_dir} has no model/config.json; the checkpoint is incomplete")
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run folder, or None.

    Args:
        run_dir: the run folder.
    """
    root = Path(run_dir) / CHECKPOINTS
    pointer = root / "latest"
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if (candidate / "state.json").is_file():
            return candidate
    complete = sorted(p for p in root.glob("step_*") if (p / "state.json").is_file())
    return complete[-1] if complete else None


def capture_rng(data_rng: np.random.Generator) -> tuple[dict, dict[str, torch.Tensor]]:
    """This process's RNG states: `(json-able part, tensor part)`.

    Args:
        data_rng: the data sampler's generator.
    """
    json_part = {
        "data": data_rng.bit_generator.state,
        "numpy": [x.tolist() if isinstance(x, np.ndarray) else x for x in np.random.get_state()],
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = state
    return json_part, tensors


def restore_rng(data_rng: np.random.Generator, json_part: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of `capture_rng`.

    Args:
        data_rng: the data sampler's generator (its state is set in place).
        json_part, tensors: what `capture_rng` returned.
    """
    data_rng.bit_generator.state = json_part["data"]
    kind, keys, pos, has_gauss, cached = json_part["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = json_part["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda_"))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    stage: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    ema_model: nn.Module | None = None,
    ema_state: dict | None = None,
    rng: tuple[dict, dict[str, torch.Tensor]] | None = None,
    process_index: int = 0,
    num_processes: int = 1,
    keep: int = 2,
    extra: dict | None = None,
) -> Path:
    """Write checkpoint `step` atomically and point `latest` at it (call on the main process).

    Args:
        run_dir: the run folder.
        step: optimizer steps done.
        stage: `vqvae`, `low` or `up` (checked on resume).
        model: the unwrapped model (a diffusers `ModelMixin`).
        optimizer, scheduler: their states are saved.
        ema_model: a model holding the EMA weights, saved as `ema/` (or None).
        ema_state: `EMA.state_dict()` (or None).
        rng: `capture_rng(...)` of this process.
        process_index, num_processes: this process and the world size.
        keep: how many checkpoints to keep (older ones are deleted after the new one is complete).
        extra: JSON-able settings the run needs back on resume (e.g. the VQ-VAE's loss config),
            stored in `state.json` under `extra`.

    Returns:
        The checkpoint folder.
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final = root / name
    # overwrite: re-saving the same step (e.g. a resumed run that stops at once) replaces it
    with atomic_folder(final) as tmp:
        model.save_pretrained(tmp / "model", safe_serialization=True)
        if ema_model is not None:
            ema_model.save_pretrained(tmp / "ema", safe_serialization=True)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "ema": ema_state},
                   tmp / "training_state.pt")
        if rng is not None:
            save_rng(tmp, rng, process_index)
        (tmp / "state.json").write_text(json.dumps({"step": step, "stage": stage, "num_processes": num_processes,
                                                    "extra": extra or {}}))
    atomic_write_text(root / "latest", name)
    complete = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in complete[:-keep] if keep > 0 else []:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_rng(checkpoint_dir: str | os.PathLike, rng: tuple[dict, dict[str, torch.Tensor]], process_index: int) -> None:
    """Write a process's RNG state into a checkpoint folder.

    Args:
        checkpoint_dir: the checkpoint folder (exists).
        rng: `capture_rng(...)` of that process.
        process_index: the process's index.
    """
    checkpoint_dir = Path(checkpoint_dir)
    (checkpoint_dir / f"rng_{process_index}.json").write_text(json.dumps(rng[0]))
    torch.save(rng[1], checkpoint_dir / f"rng_{process_index}.pt")


def load_checkpoint(
    checkpoint_dir: str | os.PathLike,
    stage: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    process_index: int = 0,
) -> dict:
    """Load a checkpoint into `model`, `optimizer` and `scheduler` for an exact resume.

    Args:
        checkpoint_dir: a `checkpoints/step_*` folder.
        stage: `vqvae`, `low` or `up` (must be the checkpoint's).
        model: the model, built from the checkpoint's config.
        optimizer, scheduler: their states are loaded.
        process_index: which process's RNG state to load.

    Returns:
        `{"step", "ema" (state or None), "rng" ((json, tensors) of this process, or None)}`.

    Raises:
        ValueError: the checkpoint is from another stage or model config, or incomplete.
    """
    checkpoint_dir = Path(checkpoint_dir)
    check_compatible(dict(model.config), checkpoint_dir, stage)
    weights = sorted((checkpoint_dir / "model").glob("*.safetensors"))
    if not weights:
        raise ValueError(f"{checkpoint_dir}/model holds no safetensors weights; the checkpoint is incomplete")
    state_dict = {}
    for path in weights:
        state_dict.update(load_file(str(path)))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {checkpoint_dir} does not fit the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    training = torch.load(checkpoint_dir / "training_state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(training["optimizer"])
    scheduler.load_state_dict(training["scheduler"])
    state = json.loads((checkpoint_dir / "state.json").read_text())
    rng = None
    rng_json = checkpoint_dir / f"rng_{process_index}.json"
    if rng_json.is_file():
        rng = (json.loads(rng_json.read_text()),
               torch.load(checkpoint_dir / f"rng_{process_index}.pt", map_location="cpu", weights_only=True))
    return {"step": int(state["step"]), "ema": training.get("ema"), "rng": rng}

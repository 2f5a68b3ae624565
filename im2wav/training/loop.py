"""The training loop shared by every stage (VQ-VAE, LOW prior, UP prior), on top of `accelerate`.

A stage supplies a model, a loss function `loss_fn(model, batch, train) -> (loss, metrics)` and its
data (`random_batch(rng, batch_size)` for training, `grid()` + `batch()` for validation). The loop
adds what every stage needs: mixed precision, gradient accumulation, AdamW with warmup, gradient
clipping, an optional EMA of the weights, periodic validation, CSV/JSONL metrics, atomic
checkpoints, exact resumption and the `max_steps` / `max_minutes` budgets.

Exact resumption: batches come from a `numpy.random.Generator` and all randomness inside the
step (condition dropout, codebook revival) from torch's RNG; both are checkpointed per process, so
N steps in one go and N/2 + resume + N/2 produce the same losses.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..atomic_files import atomic_write_text
from .checkpointing import (
    CHECKPOINTS,
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    save_rng,
)
from .ema import load_weight_ema_state, weight_ema
from .optim import make_optimizer, warmup_schedule

__all__ = ["TrainingConfig", "TrainingResult", "resolve_resume", "train"]

LossFn = Callable[[nn.Module, dict, bool], "tuple[torch.Tensor, dict[str, torch.Tensor | float]]"]

CSV_COLUMNS = ("step", "split", "loss", "lr", "grad_norm", "samples_per_s", "tokens_per_s", "elapsed_s")


class Batches(Protocol):
    def random_batch(self, rng: np.random.Generator, batch_size: int) -> dict[str, torch.Tensor]: ...


@dataclass
class TrainingConfig:
    """Hyper-parameters of the loop (the model's own live in its config).

    Args:
        run_dir: the run folder (checkpoints, metrics, resolved config).
        stage: `vqvae`, `low` or `up`; written into checkpoints and checked on resume.
        max_steps: stop after this many optimizer steps in total (a resumed run counts the earlier ones).
        max_minutes: also stop after this much wall time in this process (None: no limit).
        batch_size: windows per micro-batch per process.
        grad_accum: micro-batches per optimizer step.
        lr, weight_decay, betas, eps: AdamW.
        warmup_steps: linear learning-rate warmup.
        lr_decay: `constant`, `linear` or `cosine` after the warmup.
        clip_grad_norm: max gradient norm (0: no clipping).
        ema_decay: keep an EMA of the weights with this decay (None: no EMA).
        mixed_precision: `no`, `fp16` or `bf16` (accelerate).
        log_every: optimizer steps per metrics row.
        val_every: optimizer steps between validations (0: only at the end when there is validation data).
        val_windows: validation windows (a fixed set, the same at every validation).
        save_every: optimizer steps between checkpoints (a final one is always written).
        keep_checkpoints: checkpoints kept in the run folder.
        seed: seeds the data sampler (per process) and torch.
        tokens_per_sample: tokens per window, for the tokens/s throughput (1 for the VQ-VAE: samples).
    """

    run_dir: str
    stage: str
    max_steps: int = 1000
    max_minutes: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 100
    lr_decay: str = "constant"
    clip_grad_norm: float = 1.0
    ema_decay: float | None = None
    mixed_precision: str = "no"
    log_every: int = 10
    val_every: int = 0
    val_windows: int = 32
    save_every: int = 500
    keep_checkpoints: int = 2
    seed: int = 0
    tokens_per_sample: int = 1


@dataclass
class TrainingResult:
    """What `train` did: the final step, why it stopped, the last checkpoint, the logged train losses."""

    step: int
    stopped: str
    checkpoint: Path | None
    losses: list[float] = field(default_factory=list)
    val_loss: float | None = None


def resolve_resume(resume: str | None, run_dir: str | os.PathLike) -> Path | None:
    """`--resume` value -> checkpoint folder: `auto` (the run's latest, if any), a run folder, or a checkpoint.

    Args:
        resume: the option's value (None or "": no resume).
        run_dir: this run's folder (for `auto`).

    Raises:
        FileNotFoundError: an explicit path that holds no checkpoint.
    """
    if resume is None or resume == "":
        return None
    if resume == "auto":
        return latest_checkpoint(run_dir)
    path = Path(resume)
    if (path / "state.json").is_file():
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise FileNotFoundError(f"--resume {resume}: no checkpoint there (expected a run folder with "
                                "checkpoints/step_* or a checkpoint folder with state.json)")
    return found


def read_metric_rows(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl; a line torn by a crash mid-append (only ever the last) is dropped."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def _csv_step(row: dict) -> int | None:
    """A metrics.csv row's step, or None for a row torn by a crash mid-append."""
    try:
        return int(row["step"])
    except (TypeError, ValueError, KeyError):
        return None


def _truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop rows logged after `step` (by a run killed after its last checkpoint) before resuming."""
    jsonl = run_dir / "metrics.jsonl"
    if jsonl.is_file():
        keep = [row for row in read_metric_rows(jsonl) if row["step"] <= step]
        atomic_write_text(jsonl, "".join(json.dumps(row) + "\n" for row in keep))
    path = run_dir / "metrics.csv"
    if path.is_file():
        with open(path, newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if (row_step := _csv_step(r)) is not None and row_step <= step]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def _log(run_dir: Path, row: dict) -> None:
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps(row) + "\n")
    path = run_dir / "metrics.csv"
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def _to_float(value) -> float:
    return float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else float(value)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def _validate(model: nn.Module, loss_fn: LossFn, val_batches: list[dict], device: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.random.fork_rng(devices=[]):  # validation must not shift the training RNG stream
        for batch in val_batches:
            loss, _ = loss_fn(model, _to_device(batch, device), False)
            n = next(iter(batch.values())).shape[0]
            total += _to_float(loss) * n
            count += n
    model.train()
    return total / max(count, 1)


def train(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batches,
    cfg: TrainingConfig,
    *,
    val_data=None,
    resume: Path | None = None,
    accelerator=None,
    progress: bool = True,
    checkpoint_extra: dict | None = None,
) -> TrainingResult:
    """Train `model` until `cfg.max_steps` or `cfg.max_minutes`, checkpointing into `cfg.run_dir`.

    Args:
        model: the model (built, or loaded for fine-tuning, on the CPU; same seed on every process).
        loss_fn: `(model, batch, train) -> (scalar loss, metrics)`; `train=False` for validation.
        data: training windows (`random_batch(rng, batch_size)`).
        cfg: the loop's hyper-parameters.
        val_data: validation windows (`grid(max_windows)` and `batch(windows)`), or None.
        resume: a checkpoint folder to continue from exactly (see `resolve_resume`).
        accelerator: an `accelerate.Accelerator` (built from `cfg` when None).
        progress: show a tqdm bar on the main process.
        checkpoint_extra: JSON-able settings stored in every checkpoint (`checkpoint_state(...)["extra"]`).

    Returns:
        A `TrainingResult`.
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from tqdm.auto import tqdm

    run_dir = Path(cfg.run_dir)
    if accelerator is None:
        # A batch whose items are all dropped (or none) leaves the condition (or null) parameters
        # out of the graph; DDP must be told that this can happen.
        accelerator = Accelerator(mixed_precision=cfg.mixed_precision,
                                  kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    rank, world = accelerator.process_index, accelerator.num_processes
    data_rng = np.random.default_rng([cfg.seed, rank])
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, tuple(cfg.betas), cfg.eps)
    scheduler = warmup_schedule(optimizer, cfg.warmup_steps, cfg.max_steps, cfg.lr_decay)
    ema = weight_ema(model, cfg.ema_decay) if cfg.ema_decay else None
    step = 0
    if resume is not None:
        loaded = load_checkpoint(resume, cfg.stage, model, optimizer, scheduler, process_index=rank)
        step = loaded["step"]
        if ema is not None:
            if loaded["ema"] is None:
                raise ValueError(f"--ema-decay is set but checkpoint {resume} has no EMA state; resume without EMA "
                                 "or start a new run with --init")
            load_weight_ema_state(ema, loaded["ema"], model)
        if loaded["rng"] is not None:
            restore_rng(data_rng, *loaded["rng"])
        else:  # a different world size than the checkpoint's: fresh but reproducible streams
            data_rng = np.random.default_rng([cfg.seed, rank, step])
            torch.manual_seed(hash((cfg.seed, rank, step)) % 2**31)
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        _truncate_metrics(run_dir, step)
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    if ema is not None:
        ema.to(device)  # the shadow weights live beside the weights they average
    val_batches = None
    if val_data is not None:
        windows = val_data.grid(cfg.val_windows, multiple=getattr(val_data, "top_hop", 1))
        val_batches = [val_data.batch(windows[i:i + cfg.batch_size]) for i in range(0, len(windows), cfg.batch_size)]

    def checkpoint() -> Path:
        unwrapped = accelerator.unwrap_model(model)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            ema_model = None
            if ema is not None:
                ema_model = copy.deepcopy(unwrapped)
                ema.copy_to(ema_model.parameters())
            save_checkpoint(run_dir, step, cfg.stage, unwrapped, getattr(optimizer, "optimizer", optimizer),
                            scheduler, ema_model, ema.state_dict() if ema else None, capture_rng(data_rng),
                            rank, world, cfg.keep_checkpoints, checkpoint_extra)
        accelerator.wait_for_everyone()
        path = run_dir / CHECKPOINTS / f"step_{step:08d}"
        if not accelerator.is_main_process:  # the other processes add their RNG state to the main's checkpoint
            save_rng(path, capture_rng(data_rng), rank)
        accelerator.wait_for_everyone()
        return path

    started = time.monotonic()
    deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    losses: list[float] = []
    window_losses: list[float] = []
    window_started, window_steps = time.monotonic(), 0
    last_ckpt: Path | None = resume
    last_val: float | None = None
    stopped = "max_steps"
    model.train()
    bar = tqdm(total=cfg.max_steps, initial=step, desc=f"train {cfg.stage}", disable=not (progress and accelerator.is_main_process))
    while step < cfg.max_steps:
        if time.monotonic() >= deadline:
            stopped = "max_minutes"
            break
        step_loss, metrics = 0.0, {}
        for micro in range(cfg.grad_accum):
            batch = _to_device(data.random_batch(data_rng, cfg.batch_size), device)
            sync = micro == cfg.grad_accum - 1
            with (contextlib.nullcontext() if sync else accelerator.no_sync(model)), accelerator.autocast():
                loss, metrics = loss_fn(model, batch, True)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the {cfg.stage} loss is {float(loss)} at step {step + 1}; lower --lr, "
                                         "raise --warmup-steps, or use --mixed-precision bf16 instead of fp16")
            accelerator.backward(loss / cfg.grad_accum)
            step_loss += float(loss.detach()) / cfg.grad_accum
        grad_norm = None
        if cfg.clip_grad_norm > 0:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update()
        if ema is not None:
            ema.step(accelerator.unwrap_model(model).parameters())
        losses.append(step_loss)
        window_losses.append(step_loss)
        window_steps += 1
        if accelerator.is_main_process and (step % cfg.log_every == 0 or step == cfg.max_steps):
            seconds = max(time.monotonic() - window_started, 1e-9)
            samples = window_steps * cfg.batch_size * cfg.grad_accum * world
            row = {
                "step": step, "split": "train", "loss": float(np.mean(window_losses)),
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": None if grad_norm is None else _to_float(grad_norm),
                "samples_per_s": samples / seconds, "tokens_per_s": samples * cfg.tokens_per_sample / seconds,
                "elapsed_s": time.monotonic() - started,
                **{k: _to_float(v) for k, v in metrics.items()},
            }
            _log(run_dir, row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            window_losses, window_started, window_steps = [], time.monotonic(), 0
        if val_batches and cfg.val_every and step % cfg.val_every == 0:
            last_val = _validate(model, loss_fn, val_batches, device)
            if accelerator.is_main_process:
                _log(run_dir, {"step": step, "split": "val", "loss": last_val, "elapsed_s": time.monotonic() - started})
        if cfg.save_every and step % cfg.save_every == 0:
            last_ckpt = checkpoint()
    bar.close()
    if val_batches and (last_val is None or not cfg.val_every or step % cfg.val_every):
        last_val = _validate(model, loss_fn, val_batches, device)
        if accelerator.is_main_process:
            _log(run_dir, {"step": step, "split": "val", "loss": last_val, "elapsed_s": time.monotonic() - started})
    if last_ckpt is None or last_ckpt.name != f"step_{step:08d}":
        last_ckpt = checkpoint()
    return TrainingResult(step=step, stopped=stopped, checkpoint=last_ckpt, losses=losses, val_loss=last_val)


def config_dict(cfg: TrainingConfig) -> dict:
    """`cfg` as a JSON-able dict."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}

"""The three training stages and where their starting weights come from.

`load_stage_model(source, stage)` accepts everything a user may want to fine-tune from or assemble:
an original-format checkpoint (`.pth.tar`, converted with `im2wav.convert.load_original_checkpoint`),
a pipeline folder (`model_index.json`; the stage's component is taken), a `from_pretrained` model
folder, a training checkpoint (`checkpoints/step_*`) or a run folder (its latest checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from .checkpointing import latest_checkpoint

__all__ = ["PIPELINE_COMPONENTS", "STAGES", "load_stage_model", "model_class", "stage_of"]

STAGES = ("vqvae", "low", "up")
# the pipeline's component (subfolder) of each stage
PIPELINE_COMPONENTS = {"vqvae": "vqvae", "low": "low_prior", "up": "up_prior"}


def stage_of(model: nn.Module) -> str:
    """`vqvae`, `low` or `up` for a model instance.

    Args:
        model: a `HierarchicalVQVAE` or `Im2WavPrior`.
    """
    from ..models.prior import Im2WavPrior
    from ..models.vqvae import HierarchicalVQVAE

    if isinstance(model, HierarchicalVQVAE):
        return "vqvae"
    if isinstance(model, Im2WavPrior):
        return "up" if model.config.lower_vocab_size is not None else "low"
    raise TypeError(f"not an im2wav model: {type(model).__name__}")


def model_class(stage: str) -> type:
    """The model class of a stage: `HierarchicalVQVAE` for `vqvae`, `Im2WavPrior` for `low` and `up`."""
    from ..models.prior import Im2WavPrior
    from ..models.vqvae import HierarchicalVQVAE

    return HierarchicalVQVAE if stage == "vqvae" else Im2WavPrior


def load_stage_model(source: str | os.PathLike, stage: str, use_ema: bool = False) -> nn.Module:
    """Load the weights of one stage from any supported source (see the module docstring).

    Args:
        source: file or folder.
        stage: `vqvae`, `low` or `up`.
        use_ema: from a training checkpoint or run folder, take the EMA weights (`ema/`) when saved.

    Returns:
        The model in train mode, float32, on the CPU.

    Raises:
        FileNotFoundError: `source` does not exist.
        ValueError: `source` holds no model of this stage.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {source}")
    if path.is_file():
        from ..convert import load_original_checkpoint

        model = load_original_checkpoint(path)
        folder = None
    else:
        if (path / "model_index.json").is_file():
            folder = path / PIPELINE_COMPONENTS[stage]
        elif (path / "state.json").is_file():
            folder = path / ("ema" if use_ema and (path / "ema").is_dir() else "model")
        elif (path / "config.json").is_file() and not (path / "checkpoints").is_dir():
            folder = path
        else:
            checkpoint = latest_checkpoint(path)
            if checkpoint is None:
                raise ValueError(f"{source} is neither a model folder (config.json), a pipeline folder "
                                 "(model_index.json), a training checkpoint nor a run folder with checkpoints")
            folder = checkpoint / ("ema" if use_ema and (checkpoint / "ema").is_dir() else "model")
        if not (folder / "config.json").is_file():
            raise ValueError(f"{folder} holds no model (config.json missing)")
        model = model_class(stage).from_pretrained(str(folder))
    found = stage_of(model)
    if found != stage:
        raise ValueError(f"{source} holds a model of stage {found!r}, but stage {stage!r} is needed here")
    return model.float().train()

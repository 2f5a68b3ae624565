"""Loading the authors' original-format checkpoints (`.pth.tar`) into im2wav models.

`load_original_checkpoint(path)` reads the file without unpickling code, recognises which model it
holds from its state-dict keys, rebuilds the config from the checkpoint's hps, maps every key and
returns a float32 model in eval mode.
"""

from __future__ import annotations

import os

from torch import nn

from .checkpoint_file import OriginalCheckpoint, read_original_checkpoint

__all__ = ["load_original_checkpoint", "read_original_checkpoint", "OriginalCheckpoint"]


def load_original_checkpoint(path: str | os.PathLike) -> nn.Module:
    """Load an original IM2WAV checkpoint as a `HierarchicalVQVAE` or an `Im2WavPrior`.

    Args:
        path: an original-format `.pth.tar` file (`{'hps', 'model', 'opt', 'step'}`).

    Returns:
        The converted model, float32, in eval mode.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is truncated, not a torch checkpoint, holds pickled code, is not an
            IM2WAV checkpoint, or has unknown/missing keys.
    """
    checkpoint = read_original_checkpoint(path)
    if checkpoint.kind == "vqvae":
        from .vqvae import vqvae_from_original

        return vqvae_from_original(checkpoint)
    from .prior import prior_from_original

    return prior_from_original(checkpoint)

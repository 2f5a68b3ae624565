"""Loading a pipeline without diffusers'/transformers'/accelerate's chatter.

Loading bars and info messages from those libraries drown what a user needs (the sampling progress,
the seed, what was written) in the terminal and in ComfyUI's console.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["dtype_argument", "quiet_loading"]


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Within the block, diffusers, transformers and accelerate report errors only and draw no
    loading bars; their previous settings come back afterwards."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    accelerate_logger = logging.getLogger("accelerate")
    levels = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity(), accelerate_logger.level
    bars = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    accelerate_logger.setLevel(logging.ERROR)
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(levels[0])
        transformers_logging.set_verbosity(levels[1])
        accelerate_logger.setLevel(levels[2])
        if bars[0]:
            diffusers_logging.enable_progress_bar()
        if bars[1]:
            transformers_logging.enable_progress_bar()


def dtype_argument(dtype) -> dict:
    """The `from_pretrained` keyword that loads weights in `dtype`: `dtype` where diffusers has
    renamed it (it warns about `torch_dtype` there), `torch_dtype` in older releases.

    Args:
        dtype: a `torch.dtype`.
    """
    from diffusers.utils import deprecation_utils

    renamed = hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE")
    return {"dtype": dtype} if renamed else {"torch_dtype": dtype}

"""im2wav: image-guided audio generation (IM2WAV, Sheffer & Adi, ICASSP 2023).

Public API::

    from im2wav import HierarchicalVQVAE, Im2WavPrior, Im2WavPipeline
    from im2wav.convert import load_original_checkpoint
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["HierarchicalVQVAE", "Im2WavPrior", "Im2WavPipeline", "__version__"]

if TYPE_CHECKING:
    from .models.prior import Im2WavPrior
    from .models.vqvae import HierarchicalVQVAE
    from .pipelines import Im2WavPipeline


def __getattr__(name: str):
    # Imported lazily so `import im2wav` stays cheap (the CLI's --help, ComfyUI start-up) and the
    # pipeline module, which imports the models, cannot form an import cycle with this package.
    if name == "HierarchicalVQVAE":
        from .models.vqvae import HierarchicalVQVAE

        return HierarchicalVQVAE
    if name == "Im2WavPrior":
        from .models.prior import Im2WavPrior

        return Im2WavPrior
    if name == "Im2WavPipeline":
        from .pipelines import Im2WavPipeline

        return Im2WavPipeline
    raise AttributeError(f"module 'im2wav' has no attribute {name!r}")

"""The diffusers pipeline, installed as `im2wav.pipelines`."""

from .pipeline_im2wav import Im2WavPipeline

__all__ = ["Im2WavPipeline"]

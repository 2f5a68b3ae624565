"""The all-in-one node: IMAGE (+ fps) -> AUDIO in one call of the pipeline."""

from __future__ import annotations

from . import comfy_hooks
from .stages import IMAGE_MODES, audio_output, image_sequences, sampling_inputs
from .types import CATEGORY, MODEL


class Im2WavImageToAudio:
    """Encode, sample LOW and UP, and decode in one node (``Im2WavPipeline.__call__``)."""

    @classmethod
    def INPUT_TYPES(cls):
        inputs = {
            "im2wav_model": (MODEL,),
            "images": ("IMAGE",),
            "mode": (IMAGE_MODES, {"default": IMAGE_MODES[0]}),
            "fps": ("FLOAT", {"default": 30.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
        }
        inputs.update(sampling_inputs(include_length=True))
        inputs["batch_size"] = ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Waveforms per conditioning item."})
        return {"required": inputs}

    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    FUNCTION = "generate"
    CATEGORY = CATEGORY
    DESCRIPTION = "Generates the sound of an image, of several images, or of the frames of a video."

    def generate(self, im2wav_model, images, mode: str, fps: float, seconds: float, guidance_scale: float,
                 temperature: float, top_k: int, top_p: float, seed: int, batch_size: int):
        """Return AUDIO for ``images``; one seed drives both priors, the progress bar counts LOW then UP tokens."""
        output = im2wav_model(
            image_sequences(images, mode),
            fps=fps,
            audio_length_in_s=seconds,
            guidance_scale=guidance_scale,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=comfy_hooks.make_generator(seed, im2wav_model.device),
            num_waveforms_per_prompt=batch_size,
            output_type="pt",
            callback_on_step_end=comfy_hooks.progress_callback_on_step_end(),
        )
        return (audio_output(output.audios, im2wav_model.sample_rate),)

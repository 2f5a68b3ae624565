"""The all-in-one nodes: IMAGE (+ fps) -> AUDIO, and VIDEO -> AUDIO + VIDEO, each one call of the pipeline."""

from __future__ import annotations

from . import comfy_hooks
from .stages import (
    BATCH_SIZE_INPUT, FPS_INPUT, IMAGE_MODES, IMAGES_INPUT, MODE_TOOLTIP, MODEL_INPUT, audio_output, image_input,
    sampler_arguments, sampling_inputs,
)
from .types import CATEGORY, Im2WavModel


def _generate(im2wav_model: Im2WavModel, condition: dict, fps: float, seconds: float, guidance_scale: float,
              temperature: float, top_k: int, top_p: float, seed: int, batch_size: int = 1) -> dict:
    """One `Im2WavPipeline.__call__` (``condition``: its ``images=`` or ``video=`` argument) on ComfyUI's
    device, driving ComfyUI's progress bar; returns AUDIO."""
    pipe = comfy_hooks.load_model(im2wav_model)
    output = pipe(
        **condition,
        fps=fps,
        audio_length_in_s=seconds,
        guidance_scale=guidance_scale,
        num_waveforms_per_prompt=batch_size,
        output_type="pt",
        callback_on_step_end=comfy_hooks.progress_callback_on_step_end(),
        **sampler_arguments(im2wav_model, temperature, top_k, top_p, seed),
    )
    return audio_output(output.audios, im2wav_model.sample_rate)


class Im2WavImageToAudio:
    """Encode, sample LOW and UP, and decode in one node (``Im2WavPipeline.__call__``)."""

    @classmethod
    def INPUT_TYPES(cls):
        inputs = {
            "im2wav_model": MODEL_INPUT,
            "images": IMAGES_INPUT,
            "mode": (IMAGE_MODES, {"default": IMAGE_MODES[0], "tooltip": MODE_TOOLTIP}),
            "fps": FPS_INPUT,
        }
        inputs.update(sampling_inputs(include_length=True))
        inputs["batch_size"] = BATCH_SIZE_INPUT
        return {"required": inputs}

    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    FUNCTION = "generate"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Generates the sound of an image, of several images, or of the frames of a video, in one step. "
                   "For a video file, 'im2wav Video to Audio' matches the sound to the video's length by itself.")

    def generate(self, im2wav_model: Im2WavModel, images, mode: str, fps: float, seconds: float,
                 guidance_scale: float, temperature: float, top_k: int, top_p: float, seed: int, batch_size: int):
        """Return AUDIO for ``images``; one seed drives both priors, the progress bar counts LOW then UP tokens."""
        return (_generate(im2wav_model, image_input(images, mode), fps, seconds, guidance_scale, temperature,
                          top_k, top_p, seed, batch_size),)


class Im2WavVideoToAudio:
    """ComfyUI's VIDEO (Load Video) -> its sound, as AUDIO and as the same video with that sound."""

    @classmethod
    def INPUT_TYPES(cls):
        inputs = {
            "im2wav_model": MODEL_INPUT,
            "video": ("VIDEO", {"tooltip": "A video, e.g. from Load Video; its own sound is ignored."}),
            "seconds": ("FLOAT", {
                "default": 0.0, "min": 0.0, "max": 120.0, "step": 0.001, "round": 0.001,
                "tooltip": "Length of the sound; 0: as long as the video. A shorter sound covers the video's start.",
            }),
        }
        sampling = sampling_inputs(include_length=True)
        del sampling["seconds"]
        inputs.update(sampling)
        return {"required": inputs}

    RETURN_TYPES = ("AUDIO", "VIDEO")
    RETURN_NAMES = ("audio", "video")
    FUNCTION = "generate"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Generates the sound of a video from its frames, as long as the video by default, and returns "
                   "it alone (AUDIO) and put into the video (VIDEO, for Save Video).")

    def generate(self, im2wav_model: Im2WavModel, video, seconds: float, guidance_scale: float, temperature: float,
                 top_k: int, top_p: float, seed: int):
        """Return ``(AUDIO, VIDEO)``: the generated sound, and ``video`` with it as its only sound."""
        frames, fps, duration = comfy_hooks.video_frames(video)
        limit = im2wav_model.pipeline.max_audio_length
        if seconds <= 0 and duration > limit:
            raise ValueError(f"the video lasts {duration:g} s, longer than the {limit:g} s this model makes in one "
                             f"run; set seconds to at most {limit:g} (the sound then covers the video's start)")
        audio = _generate(im2wav_model, {"video": frames}, fps, seconds if seconds > 0 else duration, guidance_scale,
                          temperature, top_k, top_p, seed)
        return audio, comfy_hooks.video_with_audio(video, audio)

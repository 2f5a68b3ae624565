"""One node per pipeline stage: encode images, sample LOW, sample UP, decode.

Each node converts ComfyUI values, has ComfyUI place the model on its device
(``comfy_hooks.load_model``) and calls one ``Im2WavPipeline`` method.
"""

from __future__ import annotations

from im2wav.media import MAX_FPS

from . import comfy_hooks
from .types import CATEGORY, CONDITIONING, MAX_SEED, MODEL, TOKENS, Im2WavConditioning, Im2WavModel, Im2WavTokens

# What the IMAGE batch means: ComfyUI's IMAGE is [B, H, W, C]; the pipeline takes it as `video`
# (the frames of one sequence) or as `images` (B single pictures).
IMAGE_MODES = ["frames of one video", "batch of single images"]
MODEL_INPUT = (MODEL, {"tooltip": "The model from 'im2wav Model Loader'."})
MODE_TOOLTIP = ("frames of one video: one sound for the whole batch, the frames spread over its length; "
                "batch of single images: one sound per image.")
FPS_INPUT = ("FLOAT", {"default": 30.0, "min": 0.01, "max": MAX_FPS, "step": 0.01,
                       "tooltip": "Frame rate of the frames (for a video, connect Get Video Components' fps)."})
IMAGES_INPUT = ("IMAGE", {"tooltip": "The picture(s), or the frames of a video."})
BATCH_SIZE_INPUT = ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Sounds per image or video."})


def sampling_inputs(include_length: bool) -> dict:
    """The widgets shared by the LOW sampler and the all-in-one node."""
    inputs = {}
    if include_length:
        inputs["seconds"] = ("FLOAT", {
            "default": 4.096, "min": 0.001, "max": 120.0, "step": 0.001, "round": 0.001,  # Im2WavPipeline's limit
            "tooltip": "Length of the audio; 4.096 s is the priors' context, longer audio is sampled in windows.",
        })
        inputs["guidance_scale"] = ("FLOAT", {
            "default": 3.0, "min": 0.0, "max": 20.0, "step": 0.1,
            "tooltip": "Classifier-free guidance of the LOW prior (the paper uses 3; 1 disables it).",
        })
    inputs.update({
        "temperature": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 5.0, "step": 0.01,
                                  "tooltip": "Sampling temperature: below 1 plainer, above 1 more varied sound."}),
        "top_k": ("INT", {"default": 0, "min": 0, "max": 2048,
                          "tooltip": "Sample only among the k most likely tokens; 0 keeps every token."}),
        "top_p": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01,
                            "tooltip": "Nucleus sampling: keep the most likely tokens up to this probability; "
                                       "1 keeps every token."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                         "tooltip": "The same seed, model and settings give the same sound."}),
    })
    return inputs


def sampler_arguments(im2wav_model: Im2WavModel, temperature: float, top_k: int, top_p: float, seed: int) -> dict:
    """The sampling widgets every sampling node passes on, ``seed`` as a generator on the model's device."""
    return {"temperature": temperature, "top_k": top_k, "top_p": top_p,
            "generator": comfy_hooks.make_generator(seed, im2wav_model.load_device)}


def image_input(images, mode: str) -> dict:
    """ComfyUI IMAGE ``[B, H, W, C]`` -> the pipeline's argument: ``{"video": frames}`` (one frame
    sequence) or ``{"images": pictures}`` (one picture per row)."""
    if mode not in IMAGE_MODES:
        raise ValueError(f"mode must be one of {IMAGE_MODES}, got {mode!r}")
    return {"video": images} if mode == IMAGE_MODES[0] else {"images": images}


class Im2WavEncodeImages:
    """CLIP-encode an IMAGE batch, as the frames of one video or as separate images."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "im2wav_model": MODEL_INPUT,
                "images": IMAGES_INPUT,
                "mode": (IMAGE_MODES, {"default": IMAGE_MODES[0], "tooltip": MODE_TOOLTIP}),
                "fps": FPS_INPUT,
            },
            "optional": {
                "max_seconds": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": 3600.0, "step": 0.001,
                    "tooltip": "Keep only the frames of the first max_seconds seconds, so they line up "
                               "with a shorter sound (set it to Sample LOW's seconds); 0 keeps all.",
                }),
            },
        }

    RETURN_TYPES = (CONDITIONING,)
    RETURN_NAMES = ("conditioning",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    DESCRIPTION = "Embeds each picture (or each video frame) with the model's CLIP image encoder: what the priors listen to."

    def encode(self, im2wav_model: Im2WavModel, images, mode: str, fps: float, max_seconds: float = 0.0):
        """Return the CLIP embeddings of ``images`` (of their first ``max_seconds`` when it is > 0)."""
        embeds = comfy_hooks.load_model(im2wav_model).encode_images(
            **image_input(images, mode), fps=fps, max_seconds=max_seconds if max_seconds > 0 else None
        )
        return (Im2WavConditioning(embeds),)


class Im2WavSampleLow:
    """Sample LOW tokens (the coarse level, hop 32) from the image conditioning."""

    @classmethod
    def INPUT_TYPES(cls):
        inputs = {"im2wav_model": MODEL_INPUT,
                  "conditioning": (CONDITIONING, {"tooltip": "From 'im2wav Encode Images'."})}
        inputs.update(sampling_inputs(include_length=True))
        inputs["batch_size"] = BATCH_SIZE_INPUT
        return {"required": inputs}

    RETURN_TYPES = (TOKENS,)
    RETURN_NAMES = ("low_tokens",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Samples the coarse sound (LOW prior, one token per 2 ms) from the image conditioning, "
                   "with classifier-free guidance. The slowest step; Cancel stops it at the next token.")

    def sample(self, im2wav_model: Im2WavModel, conditioning: Im2WavConditioning, seconds: float,
               guidance_scale: float, temperature: float, top_k: int, top_p: float, seed: int, batch_size: int):
        """Return LOW tokens ``[B * batch_size, T_low]``."""
        tokens = comfy_hooks.load_model(im2wav_model).sample_low(
            conditioning.image_embeds,
            audio_length_in_s=seconds,
            guidance_scale=guidance_scale,
            num_waveforms_per_prompt=batch_size,
            callback=comfy_hooks.progress_callback(),
            **sampler_arguments(im2wav_model, temperature, top_k, top_p, seed),
        )
        return (Im2WavTokens(tokens, "low", conditioning),)


class Im2WavSampleUp:
    """Sample UP tokens (the fine level, hop 8) from LOW tokens and their conditioning."""

    @classmethod
    def INPUT_TYPES(cls):
        inputs = {"im2wav_model": MODEL_INPUT,
                  "low_tokens": (TOKENS, {"tooltip": "From 'im2wav Sample LOW'."})}
        inputs.update(sampling_inputs(include_length=False))
        return {"required": inputs}

    RETURN_TYPES = (TOKENS,)
    RETURN_NAMES = ("up_tokens",)
    FUNCTION = "sample"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Samples the fine sound (UP prior, four tokens per LOW token) from the LOW tokens. "
                   "Re-run it with other seeds to vary the detail and keep the coarse sound.")

    def sample(self, im2wav_model: Im2WavModel, low_tokens: Im2WavTokens, temperature: float, top_k: int,
               top_p: float, seed: int):
        """Return UP tokens ``[B * n, 4 * T_low]``."""
        tokens = comfy_hooks.load_model(im2wav_model).sample_up(
            low_tokens.require("low", "im2wav Sample UP"),
            low_tokens.conditioning.image_embeds,
            callback=comfy_hooks.progress_callback(),
            **sampler_arguments(im2wav_model, temperature, top_k, top_p, seed),
        )
        return (Im2WavTokens(tokens, "up", low_tokens.conditioning),)


class Im2WavDecode:
    """Decode UP tokens with the VQ-VAE into ComfyUI AUDIO."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"im2wav_model": MODEL_INPUT,
                             "up_tokens": (TOKENS, {"tooltip": "From 'im2wav Sample UP'."})}}

    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    FUNCTION = "decode"
    CATEGORY = CATEGORY
    DESCRIPTION = "Turns UP tokens into sound with the VQ-VAE decoder (16 kHz mono for the released models)."

    def decode(self, im2wav_model: Im2WavModel, up_tokens: Im2WavTokens):
        """Return AUDIO ``{"waveform": [B, 1, S] float32 on the CPU, "sample_rate": the model's rate}``."""
        waveform = comfy_hooks.load_model(im2wav_model).decode(up_tokens.require("up", "im2wav Decode"))
        return (audio_output(waveform, im2wav_model.sample_rate),)


def audio_output(waveform, sample_rate: int) -> dict:
    """ComfyUI's AUDIO value, as SaveAudio and CreateVideo read it."""
    return {"waveform": waveform.detach().to(device="cpu").float(), "sample_rate": int(sample_rate)}

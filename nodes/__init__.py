"""ComfyUI nodes for im2wav (category ``audio/im2wav``).

Only relative imports here: ComfyUI owns the top-level module name ``nodes``. Importing this
package does not import ComfyUI; the nodes reach ``folder_paths`` and ``comfy`` inside their
functions.
"""

from .all_in_one import Im2WavImageToAudio, Im2WavVideoToAudio
from .loader import Im2WavModelLoader
from .stages import Im2WavDecode, Im2WavEncodeImages, Im2WavSampleLow, Im2WavSampleUp

NODE_CLASS_MAPPINGS = {
    "Im2WavModelLoader": Im2WavModelLoader,
    "Im2WavEncodeImages": Im2WavEncodeImages,
    "Im2WavSampleLow": Im2WavSampleLow,
    "Im2WavSampleUp": Im2WavSampleUp,
    "Im2WavDecode": Im2WavDecode,
    "Im2WavImageToAudio": Im2WavImageToAudio,
    "Im2WavVideoToAudio": Im2WavVideoToAudio,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "Im2WavModelLoader": "im2wav Model Loader",
    "Im2WavEncodeImages": "im2wav Encode Images",
    "Im2WavSampleLow": "im2wav Sample LOW",
    "Im2WavSampleUp": "im2wav Sample UP",
    "Im2WavDecode": "im2wav Decode",
    "Im2WavImageToAudio": "im2wav Image to Audio",
    "Im2WavVideoToAudio": "im2wav Video to Audio",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

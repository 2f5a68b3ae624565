"""Evaluation of image-to-audio models with the IM2WAV paper's metrics.

- fidelity: `fad` (Fréchet Audio Distance, `frechet.py`);
- relevance: `paired_kl_divergence` and `imagehear_accuracy` on AudioSet tagger outputs
  (`classifier_metrics.py`), `clip_score` between image and CLIP-space audio embeddings (`clip_score.py`);
- the models the metrics need (`audio_models.py`), the IMAGEHEAR benchmark (`imagehear.py`) and
  folder-to-folder evaluation (`audio_folders.py`).

`training_scripts/evaluate.py` runs them from the command line; see docs/evaluation.md.
"""

from .audio_folders import (
    AudioFolderResult,
    evaluate_audio_folders,
    list_audio_files,
    read_mono,
)
from .audio_models import (
    AudioEmbedder,
    AudioTagger,
    CallableClipAudioEncoder,
    ClipAudioEncoder,
    TransformersAudioClassifier,
    load_audio_classifier,
    load_clip_audio_encoder,
)
from .classifier_metrics import (
    AccuracyResult,
    check_tagger_labels,
    imagehear_accuracy,
    kl_divergence,
    paired_kl_divergence,
)
from .clip_score import CLIP_SCORE_SCALE, clip_score, clip_scores
from .frechet import GaussianStatistics, fad, frechet_distance, gaussian_statistics
from .imagehear import (
    ImageHear,
    ImageHearItem,
    ImageHearResult,
    evaluate_imagehear,
    load_imagehear,
)

__all__ = [
    "CLIP_SCORE_SCALE",
    "AccuracyResult",
    "AudioEmbedder",
    "AudioFolderResult",
    "AudioTagger",
    "CallableClipAudioEncoder",
    "ClipAudioEncoder",
    "GaussianStatistics",
    "ImageHear",
    "ImageHearItem",
    "ImageHearResult",
    "TransformersAudioClassifier",
    "check_tagger_labels",
    "clip_score",
    "clip_scores",
    "evaluate_audio_folders",
    "evaluate_imagehear",
    "fad",
    "frechet_distance",
    "gaussian_statistics",
    "imagehear_accuracy",
    "kl_divergence",
    "list_audio_files",
    "load_audio_classifier",
    "load_clip_audio_encoder",
    "load_imagehear",
    "paired_kl_divergence",
    "read_mono",
]

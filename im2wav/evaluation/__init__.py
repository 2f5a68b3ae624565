"""Evaluation of image-to-audio models with the IM2WAV paper's metrics.

- fidelity: `fad` (Fréchet Audio Distance, `frechet.py`);
- relevance: `paired_kl_divergence` and `imagehear_accuracy` on AudioSet tagger outputs
  (`classifier_metrics.py`), `clip_score` between image and CLIP-space audio embeddings (`clip_score.py`);
- the paper's metric models through their packages (the `eval` extra): PaSST (`passt_tagger.py`),
  VGGish (`vggish_embedder.py`), Wav2CLIP (`wav2clip_encoder.py`), their weights and AudioSet labels
  (`checkpoints.py`), how clips become their inputs (`clip_windows.py`); any `transformers`
  classifier or exported CLIP-space audio encoder (`audio_models.py`);
- the paper's protocol: the IMAGEHEAR benchmark (`imagehear.py`, `imagehear_protocol.py`), VGGSound
  test videos (`vggsound_protocol.py`), the resumable, shardable generation (`generation.py`),
  reports and charts (`report.py`, `charts.py`), the command (`command.py`);
- folder-to-folder evaluation (`audio_folders.py`).

`training_scripts/evaluate.py` (or `im2wav evaluate`) runs the protocol; see docs/evaluation.md.
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
from .checkpoints import load_audioset_labels
from .frechet import GaussianStatistics, fad, frechet_distance, gaussian_statistics
from .imagehear import (
    ImageHear,
    ImageHearItem,
    ImageHearResult,
    evaluate_imagehear,
    load_imagehear,
)
from .passt_tagger import PasstTagger, load_passt
from .vggish_embedder import VggishEmbedder, load_vggish
from .wav2clip_encoder import load_wav2clip

__all__ = [
    "CLIP_SCORE_SCALE",
    "AccuracyResult",
    "AudioEmbedder",
    "AudioFolderResult",
    "AudioTagger",
    "CallableClipAudioEncoder",
    "ClipAudioEncoder",
    "GaussianStatistics",
    "PasstTagger",
    "VggishEmbedder",
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
    "load_audioset_labels",
    "load_clip_audio_encoder",
    "load_imagehear",
    "load_passt",
    "load_vggish",
    "load_wav2clip",
    "paired_kl_divergence",
    "read_mono",
]

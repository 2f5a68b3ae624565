"""Evaluation metrics: properties of the Fréchet distance, KL, accuracy and CLIP-score; the metric
models loaded from tiny saved checkpoints; the IMAGEHEAR definition; `evaluate.py` end to end."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import shared_path
from evaluation_helpers import (
    CLASS_TO_LABELS,
    IGNORED,
    LABELS,
    TinyClipAudioEncoder,
    audioset_like_labels,
    make_tiny_benchmark,
    save_tiny_ast,
    save_tiny_clip_audio_encoder,
)
from tiny_components import TINY_SECONDS, build_tiny_pipeline

from im2wav.evaluation import (
    GaussianStatistics,
    check_tagger_labels,
    clip_score,
    clip_scores,
    evaluate_audio_folders,
    fad,
    frechet_distance,
    gaussian_statistics,
    imagehear_accuracy,
    kl_divergence,
    load_audio_classifier,
    load_clip_audio_encoder,
    load_imagehear,
    paired_kl_divergence,
)
from im2wav.evaluation import legacy_command
from im2wav.media import load_image

# Loaded from its file under a unique name: "evaluate" is also the name of a Hugging Face package.
_SCRIPT = Path(__file__).resolve().parents[1] / "training_scripts" / "evaluate.py"
_spec = importlib.util.spec_from_file_location("im2wav_evaluate_script", _SCRIPT)
evaluate_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evaluate_script)

# TorchScript is deprecated in torch 2.11 but still the simplest way to ship a Wav2CLIP-like encoder.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

# ----------------------------------------------------------------------------------------------
# Fréchet distance
# ----------------------------------------------------------------------------------------------


def _random_psd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


def test_frechet_distance_of_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(300, 8))
    assert fad(x, x) == pytest.approx(0.0, abs=1e-9)
    assert fad(torch.from_numpy(x).float(), torch.from_numpy(x).float()) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_is_symmetric():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6))
    y = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) + 0.5
    assert fad(x, y) == pytest.approx(fad(y, x), rel=1e-9)
    assert fad(x, y) > 0.5


def test_mean_shift_adds_exactly_its_squared_norm():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 5)) @ rng.normal(size=(5, 5))
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert fad(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-7)
    cov = _random_psd(rng, 5)
    first, second = GaussianStatistics(np.zeros(5), cov), GaussianStatistics(shift, cov)
    assert frechet_distance(first, second) == pytest.approx(float(shift @ shift), rel=1e-7)


def test_one_dimensional_closed_form():
    # d² = (μ1 - μ2)² + (σ1 - σ2)²
    first = GaussianStatistics(np.array([1.5]), np.array([[4.0]]))
    second = GaussianStatistics(np.array([-0.5]), np.array([[0.25]]))
    assert frechet_distance(first, second) == pytest.approx(2.0**2 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_general_covariances_match_the_nonsymmetric_square_root():
    rng = np.random.default_rng(3)
    cov1, cov2 = _random_psd(rng, 4), _random_psd(rng, 4)
    mean1, mean2 = rng.normal(size=4), rng.normal(size=4)
    # Independent reference: tr((Σ1 Σ2)^{1/2}) from the (real, positive) eigenvalues of Σ1 Σ2.
    trace_sqrt = np.sqrt(np.linalg.eigvals(cov1 @ cov2).real).sum()
    expected = ((mean1 - mean2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt
    got = frechet_distance(GaussianStatistics(mean1, cov1), GaussianStatistics(mean2, cov2))
    assert got == pytest.approx(expected, rel=1e-9)


def test_fewer_samples_than_dimensions_stays_finite_and_warns():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 16)), rng.normal(size=(6, 16)) + 1.0
    with pytest.warns(UserWarning, match="rank-deficient"):
        value = fad(x, y)
    # FAD = |Δμ|² + tr(Σx + Σy - 2 (Σx Σy)^½), and the trace term is >= 0 for PSD covariances, so
    # the value is at least the squared mean distance, and at most that plus tr(Σx) + tr(Σy).
    mean_term = float(((x.mean(0) - y.mean(0)) ** 2).sum())
    trace_sum = float(np.trace(np.cov(x, rowvar=False)) + np.trace(np.cov(y, rowvar=False)))
    assert math.isfinite(value) and mean_term - 1e-9 <= value <= mean_term + trace_sum + 1e-9
    assert value > mean_term + 1.0  # different random covariances: the trace term is far from 0


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        gaussian_statistics(np.zeros(4))
    with pytest.raises(ValueError, match="different dimensions"):
        fad(np.random.randn(10, 3), np.random.randn(10, 4))
    with pytest.raises(ValueError, match="not positive semi-definite"):
        frechet_distance(GaussianStatistics(np.zeros(2), np.diag([1.0, -1.0])), GaussianStatistics(np.zeros(2), np.eye(2)))
    stats = gaussian_statistics(np.random.default_rng(5).normal(size=(20, 3)))
    stats.save(str(tmp_path / "ref.npz"))
    loaded = GaussianStatistics.load(str(tmp_path / "ref.npz"))
    assert loaded.num_samples == 20 and frechet_distance(stats, loaded) == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------------------------------
# KL divergence and accuracy
# ----------------------------------------------------------------------------------------------


def test_kl_is_zero_for_identical_and_positive_otherwise():
    logits = torch.randn(4, 527, generator=torch.Generator().manual_seed(0))
    p = logits.softmax(-1)
    assert torch.allclose(kl_divergence(p, p), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    q = (logits + torch.randn(4, 527, generator=torch.Generator().manual_seed(1))).softmax(-1)
    assert (kl_divergence(p, q) > 1e-3).all()
    sig_p, sig_q = logits.sigmoid(), (logits + 1.0).sigmoid()
    assert paired_kl_divergence(sig_p, sig_p, multi_label=True) == pytest.approx(0.0, abs=1e-12)
    assert paired_kl_divergence(sig_p, sig_q, multi_label=True) > 1e-3


def test_kl_matches_hand_computation_and_pairs_rows():
    p = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.9, 0.1], [0.5, 0.5]], dtype=torch.float64)
    expected = [0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1), math.log(1.0 / 0.5)]
    assert kl_divergence(p, q).tolist() == pytest.approx(expected, rel=1e-9)
    # Bernoulli form: one class with p = 0.2, q = 0.6
    bern = 0.2 * math.log(0.2 / 0.6) + 0.8 * math.log(0.8 / 0.4)
    assert kl_divergence(torch.tensor([[0.2]], dtype=torch.float64), torch.tensor([[0.6]], dtype=torch.float64), multi_label=True).item() == pytest.approx(bern)
    # Pairing matters: the same rows in another order are other pairs.
    assert paired_kl_divergence(p, q) != pytest.approx(paired_kl_divergence(p, q.flip(0)))


def test_kl_rejects_unnormalised_rows_and_mismatched_shapes():
    with pytest.raises(ValueError, match="multi_label=True"):
        kl_divergence(torch.full((2, 4), 0.5), torch.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="softmax/sigmoid"):
        kl_divergence(torch.randn(2, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        kl_divergence(torch.full((2, 4), 0.25), torch.full((3, 4), 0.25))


def test_accuracy_bookkeeping_on_hand_built_predictions():
    #                     Music Dog  Bark Cat  Meow Animal
    probs = torch.tensor([[0.9, 0.0, 0.1, 0.0, 0.0, 0.0],  # Dog: Music ignored -> Bark: correct
                          [0.0, 0.1, 0.0, 0.9, 0.0, 0.0],  # Dog: Cat: wrong
                          [0.0, 0.0, 0.0, 0.1, 0.2, 0.7],  # Cat: Animal ignored -> Meow: correct
                          [0.0, 0.0, 0.0, 0.8, 0.1, 0.1],  # Cat: Cat: correct
                          [0.1, 0.6, 0.0, 0.3, 0.0, 0.0]])  # Cat: Dog: wrong
    classes = ["Dog", "Dog", "Cat", "Cat", "Cat"]
    result = imagehear_accuracy(probs, classes, LABELS, CLASS_TO_LABELS, IGNORED)
    assert result.predictions == ["Bark", "Cat", "Meow", "Cat", "Dog"]
    assert result.correct == [True, False, True, True, False]
    assert result.per_class == pytest.approx({"Dog": 0.5, "Cat": 2 / 3})
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.mean_class_accuracy == pytest.approx((0.5 + 2 / 3) / 2)
    # Without ignoring, the general labels win and both those clips become wrong.
    assert imagehear_accuracy(probs, classes, LABELS, CLASS_TO_LABELS).accuracy == pytest.approx(1 / 5)


def test_accuracy_rejects_labels_the_tagger_does_not_have():
    with pytest.raises(ValueError, match="not among the classifier's"):
        check_tagger_labels(LABELS, {"Dog": ["Dog", "Howl"]}, IGNORED)
    with pytest.raises(ValueError, match="no entry"):
        imagehear_accuracy(torch.rand(1, 6), ["Horse"], LABELS, CLASS_TO_LABELS, IGNORED)


# ----------------------------------------------------------------------------------------------
# CLIP-score
# ----------------------------------------------------------------------------------------------


def test_clip_score_of_identical_unit_vectors_is_100():
    v = torch.nn.functional.normalize(torch.randn(3, 512), dim=-1)
    assert clip_score(v, v) == pytest.approx(100.0, abs=1e-4)
    assert clip_score(3.0 * v, v) == pytest.approx(100.0, abs=1e-4)  # cosine: scale-free
    assert clip_score(v, -v) == pytest.approx(-100.0, abs=1e-4)  # no clipping of negatives


def test_clip_score_of_a_video_averages_its_frames():
    audio = torch.tensor([[1.0, 0.0]])
    frames = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # [N=1, F=2, D]: cos 1 and 0
    assert clip_scores(frames, audio).tolist() == pytest.approx([50.0])
    ragged = [torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])]
    assert clip_scores(ragged, torch.tensor([[1.0, 0.0], [1.0, 0.0]])).tolist() == pytest.approx([100.0, 100.0 / 3])
    with pytest.raises(ValueError, match="same space"):
        clip_score(torch.randn(2, 512), torch.randn(2, 128))


# ----------------------------------------------------------------------------------------------
# Metric models from tiny checkpoints
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ast_dir(tmp_path_factory) -> Path:
    return save_tiny_ast(tmp_path_factory.mktemp("ast"), audioset_like_labels(LABELS))


def _tone(freq: float, rate: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_ast_embedder_and_tagger_run_at_another_sample_rate(ast_dir):
    model = load_audio_classifier(ast_dir)
    assert model.sample_rate == 16000 and model.label_names[:6] == LABELS
    audio = torch.randn(3, 1, 11025, generator=torch.Generator().manual_seed(0))  # 0.5 s at 22.05 kHz
    embeds = model.embed(audio, sample_rate=22050)
    probs = model.class_probabilities(audio, sample_rate=22050)
    assert embeds.shape == (3, 32) and torch.isfinite(embeds).all()
    assert probs.shape == (3, 527) and torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-5)
    # A batch of clips of different lengths gives each clip's own result.
    clips = [audio[0, 0].numpy(), audio[1, 0, :7000].numpy()]
    torch.testing.assert_close(model.embed(clips, 22050)[1], model.embed(clips[1:], 22050)[0], atol=1e-5, rtol=1e-5)
    sigmoid = load_audio_classifier(ast_dir, multi_label=True).class_probabilities(audio, 22050)
    assert ((sigmoid > 0) & (sigmoid < 1)).all() and not torch.allclose(sigmoid.sum(-1), torch.ones(3))


def test_declared_sample_rate_is_honoured(ast_dir):
    model = load_audio_classifier(ast_dir)
    native = model.embed(_tone(440.0, 16000), 16000)
    resampled = model.embed(_tone(440.0, 48000), 48000)  # the same tone, recorded at 48 kHz
    misdeclared = model.embed(_tone(440.0, 48000), 16000)  # the 48 kHz tone played 3x slower
    assert (native - resampled).norm() < 0.2 * (native - misdeclared).norm()


def test_missing_or_invalid_checkpoints_raise(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_audio_classifier(tmp_path / "no_such_model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="does not hold a saved audio-classification model"):
        load_audio_classifier(tmp_path / "empty")
    with pytest.raises(ValueError, match="not found"):
        load_clip_audio_encoder(tmp_path / "wav2clip.pt")
    (tmp_path / "not_torchscript.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        load_clip_audio_encoder(tmp_path / "not_torchscript.pt")


def test_clip_audio_encoder_from_torchscript_and_callable(tmp_path):
    encoder = load_clip_audio_encoder(save_tiny_clip_audio_encoder(tmp_path / "enc.pt"), sample_rate=16000)
    audio = torch.randn(2, 1, 8000, generator=torch.Generator().manual_seed(0))
    embeds = encoder.embed(audio, sample_rate=8000)
    assert embeds.shape == (2, 512)
    assert torch.allclose(embeds.norm(dim=-1), torch.ones(2), atol=1e-5)
    # Ragged clips are encoded one at a time.
    ragged = encoder.embed([audio[0, 0], audio[1, 0, :5000]], sample_rate=8000)
    torch.testing.assert_close(ragged[0], embeds[0])
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        load_clip_audio_encoder(lambda a: a.sum(-1)).embed(audio, 16000)


def test_clip_audio_encoder_from_torch_export(tmp_path):
    module = TinyClipAudioEncoder().eval()
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=2)
    program = torch.export.export(module, (torch.randn(2, 1600),), dynamic_shapes={"audio": {0: batch, 1: samples}})
    torch.export.save(program, str(tmp_path / "enc.pt2"))
    encoder = load_clip_audio_encoder(tmp_path / "enc.pt2")
    audio = torch.randn(3, 999, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.normalize(module(audio), dim=-1)
    torch.testing.assert_close(encoder.embed(audio, 16000), expected.detach())


# ----------------------------------------------------------------------------------------------
# IMAGEHEAR definition
# ----------------------------------------------------------------------------------------------


def test_published_imagehear_definition():
    folder = shared_path("data", "imagehear")
    benchmark = load_imagehear(folder)
    items = benchmark.items()
    assert len(benchmark.classes) == 30 and len(items) == 100
    assert (folder / "people4.jpg").is_file()
    assert "people4.jpg" not in {item.image_path.name for item in items}  # in the folder, not in the class list
    saxophone = next(item for item in items if item.image_path.name == "saxophone3.jpg")
    assert saxophone.class_name == "Saxophone" and load_image(saxophone.image_path).mode == "RGB"  # a WEBP named .jpg
    assert "Music" in benchmark.ignored_labels and "Bass guitar" in benchmark.to_audioset["Bass"]


def test_imagehear_lists_only_defined_items_and_reports_missing_images(tmp_path):
    folder = make_tiny_benchmark(tmp_path / "bench")
    items = load_imagehear(folder).items()
    assert [(i.class_name, i.image_path.name) for i in items] == [("Dog", "dog1.jpg"), ("Dog", "dog2.jpg"), ("Cat", "cat1.jpg")]
    (folder / "dog2.jpg").unlink()
    with pytest.raises(ValueError, match="missing"):
        load_imagehear(folder)
    with pytest.raises(ValueError, match="imagehear.json"):
        load_imagehear(tmp_path)


# ----------------------------------------------------------------------------------------------
# Folder evaluation and the script
# ----------------------------------------------------------------------------------------------


def _write_clips(folder: Path, rate: int, seed: int, names=("a.wav", "b.wav", "c.wav")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        sf.write(folder / name, rng.normal(0, 0.3, size=(rate // 2, 2)).astype(np.float32), rate)  # stereo, 0.5 s
    return folder


@pytest.mark.filterwarnings("ignore:.*rank-deficient")
def test_folders_identical_sets_give_zero_and_pair_by_name(tmp_path, ast_dir):
    model = load_audio_classifier(ast_dir)
    reference = _write_clips(tmp_path / "ref", 22050, seed=0)
    same = evaluate_audio_folders(reference, reference, model, model)
    assert same.fad == pytest.approx(0.0, abs=1e-6) and same.kl == pytest.approx(0.0, abs=1e-9)
    generated = _write_clips(tmp_path / "gen", 16000, seed=1, names=("a.wav", "b.wav", "z.wav"))
    other = evaluate_audio_folders(generated, reference, model, model, batch_size=2)
    assert other.num_pairs == 2 and set(other.per_file_kl) == {"a.wav", "b.wav"}
    assert other.fad > 0 and other.kl > 0
    with pytest.raises(ValueError, match="no file name appears in both"):
        evaluate_audio_folders(_write_clips(tmp_path / "x", 16000, 2, names=("q.wav", "r.wav")), reference, model, model)


@pytest.mark.filterwarnings("ignore:.*rank-deficient")
def test_evaluate_script_end_to_end(tmp_path):
    pipe_dir = tmp_path / "pipe"
    build_tiny_pipeline(seed=0).save_pretrained(pipe_dir)
    bench = make_tiny_benchmark(tmp_path / "bench")
    tagger = save_tiny_ast(tmp_path / "ast", audioset_like_labels(LABELS), sample_rate=8000)  # the pipeline makes 16 kHz audio
    encoder = save_tiny_clip_audio_encoder(tmp_path / "wav2clip.pt")
    clips = tmp_path / "clips"
    report_path = tmp_path / "imagehear.json"
    assert evaluate_script.main([
        "--imagehear", str(bench), "--model", str(pipe_dir), "--tagger", str(tagger),
        "--clip-audio-encoder", str(encoder), "--per-image", "2", "--audio-length", str(TINY_SECONDS),
        "--save-audio", str(clips), "--device", "cpu", "--out", str(report_path),
    ]) == 0
    report = json.loads(report_path.read_text())
    assert report["mode"] == "imagehear" and report["num_clips"] == 6
    assert set(report["per_class"]) == {"Dog", "Cat"}
    assert report["per_class"]["Dog"] in (0.0, 0.25, 0.5, 0.75, 1.0)  # 4 Dog clips
    assert report["per_class"]["Cat"] in (0.0, 0.5, 1.0)  # 2 Cat clips
    assert report["accuracy"] == pytest.approx((4 * report["per_class"]["Dog"] + 2 * report["per_class"]["Cat"]) / 6)
    # The CLIP-score is recomputed independently: the pipeline's CLIP embedding of each image against
    # the encoder's embedding of the saved clip (100 x cosine), clip by clip.
    pipe = build_tiny_pipeline(seed=0)
    clip_encoder = load_clip_audio_encoder(encoder, sample_rate=16000)
    for record in report["clips"]:
        image_embed = pipe.encode_images(load_image(bench / record["image"]))[0, 0]  # [D]
        audio, rate = sf.read(clips / f"{Path(record['image']).stem}_{record['index']}.wav", dtype="float32")
        audio_embed = clip_encoder.embed(audio, rate)[0]
        expected = 100.0 * torch.nn.functional.cosine_similarity(image_embed, audio_embed, dim=0).item()
        assert record["clip_score"] == pytest.approx(expected, abs=1e-3)
    records = report["clips"]
    assert [(r["image"], r["index"]) for r in records][:3] == [("dog1.jpg", 0), ("dog1.jpg", 1), ("dog2.jpg", 0)]
    assert sum(r["correct"] for r in records) / 6 == pytest.approx(report["accuracy"])
    assert sum(r["clip_score"] for r in records) / 6 == pytest.approx(report["clip_score"], rel=1e-5)
    assert report["config"]["per_image"] == 2
    saved = sorted(p.name for p in clips.iterdir())
    assert saved == ["cat1_0.wav", "cat1_1.wav", "dog1_0.wav", "dog1_1.wav", "dog2_0.wav", "dog2_1.wav"]
    assert sf.info(clips / "dog1_0.wav").frames == round(TINY_SECONDS * 16000)

    # Folder mode on those clips: against themselves FAD and KL vanish; against others they do not.
    reference = tmp_path / "reference"
    shutil.copytree(clips, reference)
    folder_report = tmp_path / "folders.json"
    args = ["--generated", str(clips), "--reference", str(reference), "--embedder", str(tagger),
            "--device", "cpu", "--out", str(folder_report)]
    assert evaluate_script.main(args) == 0
    result = json.loads(folder_report.read_text())
    assert result["fad"] == pytest.approx(0.0, abs=1e-6) and result["kl"] == pytest.approx(0.0, abs=1e-9)
    assert result["num_pairs"] == 6
    _write_clips(reference, 16000, seed=3, names=saved)  # overwrite the references with noise
    assert evaluate_script.main(args) == 0
    result = json.loads(folder_report.read_text())
    assert result["fad"] > 0 and result["kl"] > 0


def test_evaluate_script_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        legacy_command.parse_args(["--out", str(tmp_path / "r.json")])
    with pytest.raises(SystemExit):
        legacy_command.parse_args(["--imagehear", "x", "--generated", "y", "--out", "r.json"])
    code = evaluate_script.main(["--generated", str(tmp_path / "none"), "--reference", str(tmp_path),
                                 "--embedder", str(tmp_path / "no_model"), "--out", str(tmp_path / "r.json")])
    assert code == 2 and "not found" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()

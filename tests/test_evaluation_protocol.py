"""The paper's evaluation protocol: metric-model plumbing (rates, windows, padding) on stand-ins,
the real PaSST/VGGish/Wav2CLIP architectures with random weights (when the `eval` extra is
installed), the job plan, the resumable clip cache, sharding, reports and charts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from evaluation_helpers import CLASS_TO_LABELS, IGNORED, LABELS, make_tiny_benchmark
from PIL import Image
from tiny_components import TINY_SECONDS, build_tiny_pipeline

from im2wav.errors import UserError
from im2wav.evaluation.charts import accuracy_chart
from im2wav.evaluation.checkpoints import load_audioset_labels, load_state_dict
from im2wav.evaluation.classifier_metrics import kl_divergence
from im2wav.evaluation.clip_windows import equal_length_batches, pad_to_length, split_into_windows
from im2wav.evaluation.generation import ClipCache, GenerationJob, generate_missing, shard_batches
from im2wav.evaluation.imagehear import load_imagehear
from im2wav.evaluation.imagehear_protocol import imagehear_jobs, score_imagehear
from im2wav.evaluation.metric_models import placeholder_audioset_labels
from im2wav.evaluation.passt_tagger import PasstTagger
from im2wav.evaluation.report import markdown_report
from im2wav.evaluation.vggish_embedder import VggishEmbedder
from im2wav.evaluation.vggsound_protocol import _accuracy, list_test_videos

HAS_EVAL = all(importlib.util.find_spec(name) for name in ("hear21passt", "torchvggish", "wav2clip"))
needs_eval = pytest.mark.skipif(not HAS_EVAL, reason='the eval extra (hear21passt, torchvggish, wav2clip) is not '
                                                    'installed: pip install -e ".[eval]"')

# ----------------------------------------------------------------------------------------------
# Windows and padding
# ----------------------------------------------------------------------------------------------


def test_windows_cover_the_clip_and_the_last_one_ends_at_its_end():
    clip = torch.arange(25.0)
    windows = split_into_windows(clip, 10)
    assert [w[0].item() for w in windows] == [0.0, 10.0, 15.0]  # the last window is [15, 25), not zero-padded
    assert all(w.shape == (10,) for w in windows) and windows[-1][-1].item() == 24.0
    assert [w.tolist() for w in split_into_windows(clip[:20], 10)] == [list(range(10)), list(range(10, 20))]
    assert split_into_windows(clip[:7], 10)[0].shape == (7,)  # short clips stay whole
    assert pad_to_length(clip[:3], 5).tolist() == [0.0, 1.0, 2.0, 0.0, 0.0]
    assert pad_to_length(clip[:8], 5).shape == (8,)


def test_batches_never_mix_lengths():
    clips = [torch.zeros(4), torch.zeros(4), torch.zeros(6), torch.zeros(4), torch.zeros(4), torch.zeros(4)]
    batches = [(positions, batch.shape) for positions, batch in equal_length_batches(clips, batch_size=2)]
    assert batches == [([0, 1], (2, 4)), ([2], (1, 6)), ([3, 4], (2, 4)), ([5], (1, 4))]


class RecordingTagger(torch.nn.Module):
    """A PaSST stand-in: logit 0 is the window's mean, logit 1 its length; records what it is fed."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.num_classes, self.seen = num_classes, []

    def forward(self, audio: torch.Tensor) -> torch.Tensor:  # [B, S] -> [B, K]
        self.seen.append(tuple(audio.shape))
        logits = torch.zeros(audio.shape[0], self.num_classes)
        logits[:, 0], logits[:, 1] = audio.mean(-1), float(audio.shape[-1])
        return logits


def test_passt_tagger_resamples_pads_and_averages_windows():
    model = RecordingTagger()
    tagger = PasstTagger(model, ["a", "b", "c", "d"], sample_rate=32000, window_seconds=10.0, min_seconds=1.0)
    # 1 s at 16 kHz reaches the model as 32000 samples: resampled, not padded.
    tagger.logits(torch.zeros(2, 16000), 16000)
    assert model.seen == [(2, 32000)]
    # 0.25 s is zero-padded to the 1 s minimum: the mean of the window is a quarter of the clip's level.
    model.seen.clear()
    assert tagger.logits(torch.ones(1, 8000), 32000)[0, 0].item() == pytest.approx(0.25)
    assert model.seen == [(1, 32000)]
    # 25 s: windows [0, 10), [10, 20), [15, 25); the clip's logits are the mean over its windows.
    model.seen.clear()
    clip = torch.cat([torch.zeros(320000), torch.ones(320000), 2 * torch.ones(160000)])
    logits = tagger.logits([clip, torch.ones(32000)], 32000)
    assert sorted(model.seen) == [(1, 32000), (3, 320000)]
    assert logits[0, 0].item() == pytest.approx((0.0 + 1.0 + 1.5) / 3)
    assert logits[1, 0].item() == pytest.approx(1.0)
    probs = tagger.class_probabilities(torch.zeros(1, 32000), 32000)
    assert torch.allclose(probs.sum(-1), torch.ones(1))
    with pytest.raises(ValueError, match="one per label name"):
        PasstTagger(RecordingTagger(3), ["a", "b"]).logits(torch.zeros(1, 32000), 32000)


def test_vggish_embedder_resamples_and_pads_short_clips():
    seen = []

    def examples(clip: torch.Tensor) -> torch.Tensor:  # one "example" per 16000 samples
        seen.append(clip.shape[0])
        return clip[: clip.shape[0] // 16000 * 16000].reshape(-1, 1, 1, 16000)  # [E, 1, 1, 16000]

    embedder = VggishEmbedder(lambda x: x.flatten(1)[:, :2], examples=examples)
    rows = embedder.embed([torch.ones(44100), torch.ones(8000)], 44100)
    assert seen == [16000, 15600]  # 1 s at 44.1 kHz -> 16000 samples; 0.18 s -> padded to 15600
    assert rows.shape == (1, 2)  # the padded clip is still shorter than this stand-in's example


# ----------------------------------------------------------------------------------------------
# KL direction and the accuracy rule
# ----------------------------------------------------------------------------------------------


def test_kl_is_reference_given_generated():
    reference = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    generated = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    # KL(reference || generated) = 1 * log(1 / 0.5); the other direction would be infinite (clamped huge).
    assert kl_divergence(reference, generated).item() == pytest.approx(np.log(2.0))
    assert kl_divergence(generated, reference).item() > 10.0


def test_vggsound_accuracy_uses_imagehear_classes_and_ignores_general_labels(tmp_path):
    benchmark = load_imagehear(make_tiny_benchmark(tmp_path / "bench"))

    class Tagger:
        label_names, multi_label = LABELS, False

    #                     Music Dog  Bark Cat  Meow Animal
    probs = torch.tensor([[0.9, 0.0, 0.1, 0.0, 0.0, 0.0],   # "dog barking": Music ignored -> Bark: correct
                          [0.0, 0.0, 0.0, 0.1, 0.0, 0.9],   # "cat meowing": Animal ignored -> Cat: correct
                          [0.0, 0.9, 0.0, 0.1, 0.0, 0.0],   # "cat meowing": Dog: wrong
                          [0.0, 0.0, 0.0, 0.9, 0.1, 0.0]])  # "playing piano": no IMAGEHEAR class: not counted
    result = _accuracy(probs, ["dog barking", "cat meowing", "cat meowing", "playing piano"], Tagger(), benchmark)
    assert result["num_clips"] == 3
    assert result["per_class"] == pytest.approx({"Dog": 1.0, "Cat": 0.5})
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert _accuracy(probs[3:], ["playing piano"], Tagger(), benchmark) is None


# ----------------------------------------------------------------------------------------------
# Job plan, sharding, cache
# ----------------------------------------------------------------------------------------------


def test_imagehear_jobs_use_each_image_of_a_class_equally(tmp_path):
    benchmark = load_imagehear(make_tiny_benchmark(tmp_path / "bench"))
    jobs = imagehear_jobs(benchmark, per_class=6, seed=10)
    assert [j.source.name for j in jobs if j.group == "Dog"] == ["dog1.jpg", "dog2.jpg"] * 3
    assert [j.source.name for j in jobs if j.group == "Cat"] == ["cat1.jpg"] * 6
    assert [j.seed for j in jobs] == list(range(10, 22)) and len({j.name for j in jobs}) == 12


def test_imagehear_paper_plan_on_the_published_benchmark():
    from conftest import shared_path

    benchmark = load_imagehear(shared_path("data", "imagehear"))
    jobs = imagehear_jobs(benchmark)
    assert len(jobs) == 30 * 120
    for class_name, files in benchmark.classes.items():
        used = [j.source.name for j in jobs if j.group == class_name]
        assert {used.count(f) for f in files} == {120 // len(files)}  # 2, 3, 4 or 8 images: all divide 120


def test_shards_partition_the_same_batches_for_any_process_count():
    jobs = [GenerationJob(f"j{k}", "c", Path("x"), k) for k in range(11)]
    one = shard_batches(jobs, batch_size=3)
    two = shard_batches(jobs, 3, 0, 2) + shard_batches(jobs, 3, 1, 2)
    three = [b for rank in range(3) for b in shard_batches(jobs, 3, rank, 3)]
    key = lambda batches: sorted(tuple(j.name for j in b) for b in batches)  # noqa: E731
    assert key(one) == key(two) == key(three) and len(one) == 4
    with pytest.raises(ValueError, match="process_index"):
        shard_batches(jobs, 3, 2, 2)


def test_cache_resumes_and_refuses_other_settings(tmp_path):
    pipe = build_tiny_pipeline(seed=0)
    benchmark = load_imagehear(make_tiny_benchmark(tmp_path / "bench"))
    jobs = imagehear_jobs(benchmark, per_class=2)
    settings = {"model": "tiny", "audio_length_in_s": TINY_SECONDS}
    cache = ClipCache(tmp_path / "clips", settings)

    def encode(job):
        from im2wav.media import load_image

        return pipe.encode_images(load_image(job.source))  # one picture: [1, 1, D]

    batches = shard_batches(jobs, 3)
    assert generate_missing(pipe, batches[:1], cache, encode, TINY_SECONDS, 3.0) == 3  # "stopped" after batch 1
    first = cache.audio_path(jobs[0]).read_bytes()
    assert generate_missing(pipe, batches, ClipCache(tmp_path / "clips", settings), encode, TINY_SECONDS, 3.0) == 1
    assert cache.audio_path(jobs[0]).read_bytes() == first and all(cache.has(j) for j in jobs)
    # A cached clip is the clip its own seed gives, whatever else was in its batch.
    alone = pipe(image_embeds=encode(jobs[3]), audio_length_in_s=TINY_SECONDS,
                 generator=torch.Generator().manual_seed(jobs[3].seed), output_type="pt").audios[0, 0]
    torch.testing.assert_close(torch.from_numpy(cache.read(jobs[3])[0]), alone, atol=1e-5, rtol=1e-4)
    with pytest.raises(UserError, match="differing: audio_length_in_s"):
        ClipCache(tmp_path / "clips", {**settings, "audio_length_in_s": 1.0})


# ----------------------------------------------------------------------------------------------
# Scoring, labels, checkpoints, reports
# ----------------------------------------------------------------------------------------------


def test_score_imagehear_counts_the_hand_made_predictions(tmp_path):
    benchmark = load_imagehear(make_tiny_benchmark(tmp_path / "bench"))
    jobs = imagehear_jobs(benchmark, per_class=2)  # Dog, Dog, Cat, Cat
    cache = ClipCache(tmp_path / "clips", {})
    # Each clip's level encodes the label the stand-in tagger predicts for it.
    levels = {"Dog_0000": 2, "Dog_0001": 3, "Cat_0000": 4, "Cat_0001": 1}  # Bark, Cat, Meow, Dog
    for job in jobs:
        cache.write(job, torch.full((1, 800), levels[job.name] / 10), torch.ones(1, 4), 16000)

    class LevelTagger:
        label_names, multi_label, sample_rate = LABELS, False, 16000

        def class_probabilities(self, audios, sample_rate):
            picks = [round(float(a.mean()) * 10) for a in audios]
            return torch.nn.functional.one_hot(torch.tensor(picks), len(LABELS)).double() * 0.9 + 0.1 / len(LABELS)

    result = score_imagehear(cache, jobs, benchmark, LevelTagger())
    assert [c["prediction"] for c in result["clips"]] == ["Bark", "Cat", "Meow", "Dog"]
    assert result["per_class"]["Dog"]["accuracy"] == 0.5 and result["per_class"]["Cat"]["accuracy"] == 0.5
    assert result["accuracy"] == 0.5 and result["images_used"] == {"dog1.jpg": 1, "dog2.jpg": 1, "cat1.jpg": 2}
    text = markdown_report("imagehear", {**result, "plumbing_check": False}, {"metrics": {"tagger": {"model": "x"}}})
    assert "| Dog | 2 | 50.00% | - |" in text and "| metrics.tagger.model | x |" in text


def test_audioset_labels_file_and_placeholders(tmp_path):
    path = tmp_path / "class_labels_indices.csv"
    rows = ["index,mid,display_name"] + [f'{k},/m/{k},"Label {k}"' for k in range(527)]
    path.write_text("\n".join(rows))
    labels = load_audioset_labels(path)
    assert len(labels) == 527 and labels[3] == "Label 3"
    path.write_text("\n".join(rows[:100]))
    with pytest.raises(ValueError, match="not AudioSet's 527"):
        load_audioset_labels(path)
    with pytest.raises(FileNotFoundError):
        load_audioset_labels(tmp_path / "none.csv")
    placeholders = placeholder_audioset_labels(CLASS_TO_LABELS["Dog"] + IGNORED)
    assert len(placeholders) == 527 and {"Dog", "Bark", "Music"} <= set(placeholders)


def test_checkpoint_errors_name_the_flag(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="--passt-weights"):
        load_state_dict(tmp_path / "none.pt", "http://x", "PaSST", "--passt-weights")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="weights_only"):
        load_state_dict(tmp_path / "bad.pt", "http://x", "PaSST", "--passt-weights")

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ValueError, match="pass it with --vggish-weights"):
        load_state_dict(None, "http://x/vggish.pth", "VGGish", "--vggish-weights")

    # A downloaded file passes the checks of a local one: tensors only, a "state_dict" wrapper removed.
    def fetch(url, dst, progress=True):
        torch.save({"state_dict": {"w": torch.ones(2)}} if url.endswith("vggish.pth") else {"w": Path("x")}, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fetch)
    state = load_state_dict(None, "http://x/vggish.pth", "VGGish", "--vggish-weights")
    assert torch.equal(state["w"], torch.ones(2)) and (tmp_path / "hub" / "checkpoints" / "vggish.pth").is_file()
    with pytest.raises(ValueError, match="weights_only"):
        load_state_dict(None, "http://x/code.pth", "PaSST", "--passt-weights")  # a pickled object, not tensors


def test_accuracy_chart_bar_lengths_follow_the_values(tmp_path):
    path = accuracy_chart(tmp_path / "acc.png", {"Dog": 1.0, "Cat": 0.25}, "test")
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    blue = (np.abs(image - np.array([52, 101, 164])).sum(-1) < 10)  # the bar colour
    rows = [r for r in range(image.shape[0]) if blue[r].sum() > 20]
    lengths = sorted({int(blue[r].sum()) for r in rows}, reverse=True)
    assert lengths[0] == pytest.approx(4 * lengths[-1], rel=0.05)


def test_vggsound_csv_matching(tmp_path):
    for name in ("abc_1000_11000.mp4", "def_000002.mp4", "abc_1000_11000.wav"):
        (tmp_path / name).write_bytes(b"")
    csv_path = tmp_path / "vgg.csv"
    csv_path.write_text("abc,1,dog barking,test\ndef,2,cat meowing,test\nghi,3,cat meowing,test\nabc,1,x,train\n")
    videos, missing = list_test_videos(tmp_path, csv_path)
    assert [(v.path.name, v.label, v.reference.name) for v in videos] == [
        ("abc_1000_11000.mp4", "dog barking", "abc_1000_11000.wav"), ("def_000002.mp4", "cat meowing", "def_000002.mp4")]
    assert missing == 1
    with pytest.raises(UserError, match="no rows of split 'val'"):
        list_test_videos(tmp_path, csv_path, split="val")


def test_reference_audio_is_the_first_seconds_of_the_sidecar_or_the_track():
    from conftest import shared_path

    from im2wav.evaluation.audio_folders import read_mono
    from im2wav.evaluation.vggsound_protocol import REFERENCE_RATE, VggSoundVideo, reference_audio
    from im2wav.media import read_audio_track

    video = shared_path("data", "vggsound_examples") / "0nYltlo90Zc_147000_157000.mp4"
    sidecar = video.with_suffix(".wav")
    audio, rate = reference_audio(VggSoundVideo(video, "dog barking", sidecar), 0.5)
    whole, whole_rate = read_mono(sidecar)
    assert rate == whole_rate and np.array_equal(audio, whole[: round(0.5 * rate)])
    # Without a sidecar: the video's own track at 32 kHz, decoded only as far as needed.
    audio, rate = reference_audio(VggSoundVideo(video, "dog barking", video), 0.5)
    whole = read_audio_track(video, REFERENCE_RATE)
    assert rate == REFERENCE_RATE and np.array_equal(audio, whole[: REFERENCE_RATE // 2])


# ----------------------------------------------------------------------------------------------
# The paper's architectures with random weights (the eval extra)
# ----------------------------------------------------------------------------------------------


@needs_eval
def test_passt_loads_its_architecture_and_scores_at_32khz():
    from im2wav.evaluation.passt_tagger import build_passt, load_passt

    labels = [f"label {k}" for k in range(527)]
    reference = build_passt()
    tagger = load_passt(labels, weights=reference.net.state_dict())
    audio = 0.1 * torch.randn(1, 64000, generator=torch.Generator().manual_seed(0))  # 4 s at 16 kHz
    import torchaudio.functional as AF

    with torch.no_grad():
        expected = reference(AF.resample(audio, 16000, 32000))  # [1, 527]
    torch.testing.assert_close(tagger.logits(audio, 16000), expected, atol=1e-4, rtol=1e-4)
    broken = {k: v for k, v in reference.net.state_dict().items() if not k.startswith("head")}
    with pytest.raises(ValueError, match="does not fit"):
        load_passt(labels, weights=broken)
    with pytest.raises(ValueError, match="527 outputs"):
        load_passt(labels[:10], random_weights=True)


@needs_eval
def test_vggish_gives_one_row_per_example_before_the_last_relu():
    from im2wav.evaluation.vggish_embedder import build_vggish, load_vggish

    embedder = load_vggish(weights=build_vggish().state_dict())
    assert not isinstance(list(embedder.model.embeddings.children())[-1], torch.nn.ReLU)
    rng = torch.Generator().manual_seed(0)
    assert embedder.embed(0.1 * torch.randn(1, 64000, generator=rng), 16000).shape == (4, 128)  # 4 s
    assert embedder.embed(0.1 * torch.randn(1, 176400, generator=rng), 44100).shape == (4, 128)  # 4 s at 44.1 kHz
    assert embedder.embed(0.1 * torch.randn(1, 40000, generator=rng), 16000).shape == (2, 128)  # 2.5 s: rest dropped
    rows = embedder.embed(0.1 * torch.randn(1, 8000, generator=rng), 16000)  # 0.5 s: padded to one example
    assert rows.shape == (1, 128) and (rows < 0).any()  # no ReLU: negative values survive
    with pytest.raises(ValueError, match="does not fit"):
        load_vggish(weights={"features.0.weight": torch.zeros(1)})


@needs_eval
def test_wav2clip_loads_the_release_layout():
    from im2wav.evaluation.wav2clip_encoder import build_wav2clip, load_wav2clip

    source = build_wav2clip()
    checkpoint = {**{f"audio_encoder.{k}": v for k, v in source.encoder.state_dict().items()},
                  **{f"audio_transform.{k}": v for k, v in source.transform.state_dict().items()}}
    encoder = load_wav2clip(weights=checkpoint)
    audio = 0.1 * torch.randn(2, 32000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = torch.nn.functional.normalize(source(audio), dim=-1)
    torch.testing.assert_close(encoder.embed(audio, 16000), expected, atol=1e-5, rtol=1e-4)
    # 8 kHz audio reaches the model resampled to 16 kHz.
    import torchaudio.functional as AF

    with torch.no_grad():
        expected = torch.nn.functional.normalize(source(AF.resample(audio[:, :16000], 8000, 16000)), dim=-1)
    torch.testing.assert_close(encoder.embed(audio[:, :16000], 8000), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="audio_transform"):
        load_wav2clip(weights={k: v for k, v in checkpoint.items() if k.startswith("audio_encoder.")})


# ----------------------------------------------------------------------------------------------
# The command end to end
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A tiny pipeline folder, the tiny two-class benchmark, a tiny AST tagger and a TorchScript CLIP encoder."""
    from evaluation_helpers import audioset_like_labels, save_tiny_ast, save_tiny_clip_audio_encoder

    root = tmp_path_factory.mktemp("eval_setup")
    build_tiny_pipeline(seed=0).save_pretrained(root / "pipe")
    return {
        "pipe": root / "pipe",
        "bench": make_tiny_benchmark(root / "bench"),
        "tagger": save_tiny_ast(root / "ast", audioset_like_labels(LABELS)),
        "encoder": save_tiny_clip_audio_encoder(root / "wav2clip.pt"),
    }


def _imagehear_args(setup: dict, out: Path, *extra: str) -> list[str]:
    return ["imagehear", str(setup["bench"]), "--model", str(setup["pipe"]), "--out", str(out), "--per-class", "3",
            "--audio-length", str(TINY_SECONDS), "--tagger", str(setup["tagger"]), "--clip-audio-encoder",
            str(setup["encoder"]), "--batch-size", "2", "--device", "cpu", *extra]


def _results(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    results["settings"].pop("processes")
    return results


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_imagehear_command_writes_reports_and_resumes(tiny_setup, tmp_path, capsys):
    from im2wav.evaluation.command import main

    out = tmp_path / "eval"
    assert main(_imagehear_args(tiny_setup, out)) == 0
    results = _results(out)
    assert results["num_clips"] == 6 and set(results["per_class"]) == {"Dog", "Cat"}
    assert results["images_used"] == {"dog1.jpg": 2, "dog2.jpg": 1, "cat1.jpg": 3}
    assert results["accuracy"] == pytest.approx(sum(c["correct"] for c in results["clips"]) / 6)
    assert results["settings"]["generation"]["per_class"] == 3
    assert results["settings"]["metrics"]["tagger"]["model"] == str(tiny_setup["tagger"])
    markdown = (out / "results.md").read_text()
    assert "| Dog | 3 |" in markdown and "generation.guidance_scale | 3.0" in markdown
    assert Image.open(out / "accuracy_per_class.png").format == "PNG"
    # A rerun generates nothing: the cached clips stay as they are and the numbers do not move.
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "clips").glob("*.wav")}
    assert main(_imagehear_args(tiny_setup, out)) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "clips").glob("*.wav")} == stamps
    assert _results(out) == results
    # Other settings in the same folder are refused with one line.
    capsys.readouterr()
    assert main(_imagehear_args(tiny_setup, out, "--guidance-scale", "1.0")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "guidance_scale" in err and err.count("\n") == 1  # before any loading
    assert main(_imagehear_args(tiny_setup, tmp_path / "x", "--per-class", "0")) == 2


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_two_processes_give_the_results_of_one(tiny_setup, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    one, two = tmp_path / "one", tmp_path / "two"
    module = ["-m", "im2wav.evaluation.command"]
    subprocess.run([sys.executable, *module, *_imagehear_args(tiny_setup, one)], check=True, env=env,
                   capture_output=True)
    # On a machine without GPUs, accelerate's multi-process launcher (torchrun) starts CPU processes (gloo).
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    done = subprocess.run([*launch, *module, *_imagehear_args(tiny_setup, two)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((two / "results.json").read_text())["settings"]["processes"] == 2
    assert _results(two) == _results(one)
    names = sorted(p.name for p in (one / "clips").iterdir())
    assert names == sorted(p.name for p in (two / "clips").iterdir()) and len(names) == 13  # 6 x (wav, npy) + settings
    for name in names:
        if name.endswith(".wav"):  # samples, not bytes: libsndfile stamps float WAVs with the time of writing
            np.testing.assert_array_equal(sf.read(one / "clips" / name)[0], sf.read(two / "clips" / name)[0])
        else:
            assert (one / "clips" / name).read_bytes() == (two / "clips" / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*rank-deficient")
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_vggsound_command_on_the_example_clips(tiny_setup, tmp_path):
    from conftest import shared_path

    from im2wav.evaluation.command import main

    examples = shared_path("data", "vggsound_examples")
    csv_path = tmp_path / "vggsound.csv"
    csv_path.write_text("0nYltlo90Zc,147,dog barking,test\n20qZLse0acs,30,cat meowing,test\nabsent,1,cat meowing,test\n")
    out = tmp_path / "vgg"
    args = ["vggsound", str(examples), "--csv", str(csv_path), "--imagehear", str(tiny_setup["bench"]),
            "--model", str(tiny_setup["pipe"]), "--out", str(out), "--audio-length", "0.5",
            "--tagger", str(tiny_setup["tagger"]), "--embedder", str(tiny_setup["tagger"]),
            "--clip-audio-encoder", str(tiny_setup["encoder"]), "--device", "cpu"]
    assert main(args) == 0
    results = _results(out)
    assert results["num_clips"] == 2 and results["missing_videos"] == 1
    assert results["fad"] > 0 and results["kl"] > 0
    assert [c["kl"] for c in results["clips"]] == pytest.approx([results["kl"] * 2 - results["clips"][1]["kl"],
                                                                 results["clips"][1]["kl"]])
    assert results["accuracy"]["num_clips"] == 2 and set(results["accuracy"]["per_class"]) == {"Dog", "Cat"}
    assert sum(results["class_distribution"]["generated"].values()) == 2
    assert (out / "class_distribution.png").is_file() and (out / "accuracy_per_class.png").is_file()
    # The reference side is the sidecar .wav's first 0.5 s: scoring it as "generated" gives zero KL.
    from im2wav.evaluation.generation import ClipCache
    from im2wav.evaluation.vggsound_protocol import list_test_videos, reference_audio, score_vggsound, vggsound_jobs
    from im2wav.evaluation.metric_models import load_metric_models

    videos, _ = list_test_videos(examples, csv_path)
    jobs = vggsound_jobs(videos)
    cache = ClipCache(tmp_path / "refcache", {})
    for job, video in zip(jobs, videos):
        audio, rate = reference_audio(video, 0.5)
        assert video.reference.suffix == ".wav" and rate == 16000 and audio.shape == (8000,)
        cache.write(job, torch.from_numpy(audio), torch.ones(2, 512), rate)
    models = load_metric_models(str(tiny_setup["tagger"]), str(tiny_setup["tagger"]), None)
    same = score_vggsound(cache, jobs, videos, 0.5, models.tagger, models.embedder)
    assert same["kl"] == pytest.approx(0.0, abs=1e-9) and same["fad"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
@needs_eval
def test_imagehear_command_with_the_paper_models_random_weights(tiny_setup, tmp_path):
    from im2wav.evaluation.command import main

    out = tmp_path / "paper"
    args = ["imagehear", str(tiny_setup["bench"]), "--model", str(tiny_setup["pipe"]), "--out", str(out),
            "--per-class", "1", "--audio-length", str(TINY_SECONDS), "--random-metric-weights", "--device", "cpu"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["plumbing_check"] is True and results["num_clips"] == 2
    assert results["settings"]["metrics"]["tagger"]["sample_rate"] == 32000
    assert results["settings"]["metrics"]["clip_audio_encoder"]["sample_rate"] == 16000
    assert "plumbing check" in (out / "results.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--per-class", "0"], "--per-class must be >= 1"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--audio-length", "-1"], "--audio-length must be positive"),
    (["--device", "foo"], "not a device name"),
])
def test_command_rejects_bad_flags_in_one_line(tmp_path, capsys, extra, message):
    from im2wav.evaluation.command import main

    bench = make_tiny_benchmark(tmp_path / "bench")
    assert main(["imagehear", str(bench), "--model", "m", "--out", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing written
    assert main(["imagehear", str(tmp_path / "none"), "--model", "m", "--out", str(tmp_path / "no" / "out")]) == 2
    assert "the folder of --out" in capsys.readouterr().err

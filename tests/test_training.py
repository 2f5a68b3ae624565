"""Training scripts and helpers: exact resume, atomic checkpoints, clear errors (tiny models, seconds)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from im2wav.data.shards import DatasetInfo, ShardWriter, to_pcm16
from im2wav.training import checkpointing
from im2wav.training.ema import EMA
from im2wav.training.optim import make_optimizer, warmup_schedule

REPO = Path(__file__).resolve().parents[1]
SR = 16000
# Shrunk far below the "tiny" presets so every script run takes a second or two.
VQ = ["--preset", "tiny", "--config-overrides",
      json.dumps({"width": 8, "depth": 1, "emb_width": 8, "l_bins": 16, "multispec_n_fft": [256],
                  "multispec_hop_length": [64], "multispec_window_size": [256]})]
LOW = ["--preset", "tiny-low", "--config-overrides",
       json.dumps({"width": 32, "depth": 3, "vocab_size": 16, "min_duration": 0.1, "blocks": 8})]
UP = ["--preset", "tiny-up", "--config-overrides",
      json.dumps({"width": 32, "depth": 3, "vocab_size": 16, "lower_vocab_size": 16, "lower_channels": 8,
                  "lower_depth": 1, "blocks": 16})]
QUIET = ["--no-progress", "--log-every", "1", "--warmup-steps", "2", "--save-every", "1000"]


def run_script(name: str, *argv) -> int:
    spec = importlib.util.spec_from_file_location(f"_script_{name}", REPO / "training_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(a) for a in argv])


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A prepared dataset written directly (no video decoding): 4 items of 0.6 s, 2 tones, 5 frames."""
    root = tmp_path_factory.mktemp("data")
    writer = ShardWriter(root)
    t = np.arange(9600) / SR
    for i, freq in enumerate((300.0, 300.0, 2000.0, 2000.0)):
        clip = torch.nn.functional.normalize(torch.randn(18, 512) + 3 * (freq > 1000), dim=-1)
        writer.add(f"item{i}", {"audio": to_pcm16(0.4 * np.sin(2 * np.pi * freq * t + i)), "clip": clip},
                   {"num_samples": 9600, "num_frames": 18})
    writer.flush()
    DatasetInfo(SR, 30.0, "random", 512).save(root)
    return root


@pytest.fixture(scope="module")
def vqvae_run(dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("vq") / "run"
    run_script("train_vqvae", "--dataset", dataset, "--run-dir", run, *VQ, "--window-length", 2048,
               "--batch-size", 2, "--max-steps", 2, *QUIET)
    return run


@pytest.fixture(scope="module")
def tokens(dataset, vqvae_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokens"
    run_script("encode_tokens", "--dataset", dataset, "--vqvae", vqvae_run, "--out", out, "--device", "cpu",
               "--no-progress")
    return out


# ------------------------------------------------------------------------------------------------
# exact resume


def test_vqvae_resume_reproduces_the_straight_run(dataset, tmp_path):
    args = ["--dataset", dataset, *VQ, "--window-length", 2048, "--batch-size", 2, *QUIET, "--ema-decay", "0.9"]
    run_script("train_vqvae", *args, "--run-dir", tmp_path / "straight", "--max-steps", 4)
    run_script("train_vqvae", *args, "--run-dir", tmp_path / "split", "--max-steps", 2)
    run_script("train_vqvae", *args, "--run-dir", tmp_path / "split", "--max-steps", 4, "--resume")
    straight = losses(tmp_path / "straight")
    assert len(straight) == 4 and straight == losses(tmp_path / "split")
    a = checkpointing.latest_checkpoint(tmp_path / "straight")
    b = checkpointing.latest_checkpoint(tmp_path / "split")
    for sub in ("model", "ema"):  # weights, codebooks (buffers) and EMA weights end up identical
        assert (a / sub / "diffusion_pytorch_model.safetensors").read_bytes() == \
            (b / sub / "diffusion_pytorch_model.safetensors").read_bytes()


def test_low_prior_resume_reproduces_the_straight_run_with_condition_dropout(dataset, tokens, tmp_path):
    # item3 is the only validation item (its id hash < 0.1); validating every step must not disturb the RNG stream
    args = ["--level", "low", "--dataset", dataset, "--tokens", tokens, *LOW, "--batch-size", 4, *QUIET,
            "--grad-accum", 2, "--val-fraction", "0.1", "--val-every", "1"]
    run_script("train_prior", *args, "--run-dir", tmp_path / "straight", "--max-steps", 4)
    run_script("train_prior", *args, "--run-dir", tmp_path / "split", "--max-steps", 2)
    run_script("train_prior", *args, "--run-dir", tmp_path / "split", "--max-steps", 4, "--resume")
    assert losses(tmp_path / "straight") == losses(tmp_path / "split")
    config = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert config["training"]["grad_accum"] == 2 and config["model_config"]["vocab_size"] == 16
    assert (config["train_items"], config["val_items"]) == (3, 1)
    rows = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in val] == [1, 2, 3, 4] and all(np.isfinite(r["loss"]) for r in val)
    assert (tmp_path / "straight" / "metrics.csv").read_text().startswith("step,split,loss,lr")


def test_up_prior_trains_and_the_stages_assemble_into_a_pipeline(dataset, tokens, vqvae_run, tmp_path):
    from im2wav import Im2WavPipeline
    from im2wav.clip_encoder import tiny_clip_vision

    for level, preset in (("low", LOW), ("up", UP)):
        run_script("train_prior", "--level", level, "--dataset", dataset, "--tokens", tokens, *preset,
                   "--batch-size", 2, "--max-steps", 1, *QUIET, "--run-dir", tmp_path / level)
    clip_model, processor = tiny_clip_vision(seed=0)
    clip_model.save_pretrained(tmp_path / "clip")
    processor.save_pretrained(tmp_path / "clip")
    run_script("assemble_pipeline", "--vqvae", vqvae_run, "--low", tmp_path / "low", "--up", tmp_path / "up",
               "--clip", tmp_path / "clip", "--out", tmp_path / "pipe")
    pipe = Im2WavPipeline.from_pretrained(tmp_path / "pipe")
    pipe.set_progress_bar_config(disable=True)
    out = pipe(image_embeds=torch.nn.functional.normalize(torch.randn(1, 1, 512), dim=-1),
               audio_length_in_s=0.064, generator=torch.Generator().manual_seed(0))
    assert out.audios.shape == (1, 1, 1024)
    # any pipeline folder is a fine-tuning start: its component of the stage is taken
    from im2wav.training.stages import load_stage_model

    low = load_stage_model(tmp_path / "pipe", "low")
    assert low.training and torch.equal(low.token_embedding.weight, pipe.low_prior.token_embedding.weight)
    with pytest.raises(ValueError, match="holds a model of stage 'low', but stage 'up' is needed"):
        load_stage_model(tmp_path / "low", "up")
    with pytest.raises(ValueError, match="do not fit together"):  # LOW trained on 16 codes, VQ-VAE "tiny" has 64
        from im2wav.models.vqvae import HierarchicalVQVAE

        HierarchicalVQVAE.from_preset("tiny").save_pretrained(tmp_path / "vq64")
        run_script("assemble_pipeline", "--vqvae", tmp_path / "vq64", "--low", tmp_path / "low", "--up",
                   tmp_path / "up", "--clip", tmp_path / "clip", "--out", tmp_path / "pipe2")


def test_fine_tune_from_an_original_checkpoint(dataset, tmp_path, parity_dir):
    run_script("train_vqvae", "--dataset", dataset, "--run-dir", tmp_path / "ft", "--window-length", 2048,
               "--batch-size", 1, "--max-steps", 1, *QUIET, "--init", parity_dir / "vqvae_tiny.pth.tar")
    config = json.loads((tmp_path / "ft" / "config.json").read_text())["model_config"]
    assert config["l_bins"] == 64 and config["width"] == 16  # the original checkpoint's config, not a preset's


# ------------------------------------------------------------------------------------------------
# bad input


def test_resume_from_an_incompatible_checkpoint_is_refused(dataset, tokens, vqvae_run, tmp_path):
    with pytest.raises(ValueError, match="model config differs.*width"):
        run_script("train_vqvae", "--dataset", dataset, "--run-dir", vqvae_run, "--preset", "tiny",
                   "--window-length", 2048, "--max-steps", 3, *QUIET, "--resume")
    with pytest.raises(ValueError, match="it is a 'vqvae' checkpoint"):
        run_script("train_prior", "--level", "low", "--dataset", dataset, "--tokens", tokens, *LOW,
                   "--run-dir", tmp_path / "low", "--max-steps", 3, *QUIET, "--resume", vqvae_run)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        run_script("train_vqvae", "--dataset", dataset, "--run-dir", vqvae_run, *VQ, "--window-length", 2048,
                   "--max-steps", 3, *QUIET)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_script("train_vqvae", "--dataset", dataset, "--run-dir", tmp_path / "x", *VQ, "--window-length", 2048,
                   "--max-steps", 3, *QUIET, "--resume", tmp_path / "nothing_here")


def test_prior_refuses_tokens_of_another_codebook_size(dataset, tokens, tmp_path):
    with pytest.raises(ValueError, match="16 codes but the prior models 64"):
        run_script("train_prior", "--level", "low", "--dataset", dataset, "--tokens", tokens, "--preset", "tiny-low",
                   "--config-overrides", '{"min_duration": 0.1}', "--run-dir", tmp_path / "r", "--max-steps", 1, *QUIET)
    with pytest.raises(FileNotFoundError, match="encode_tokens.py"):
        run_script("train_prior", "--level", "low", "--dataset", dataset, "--tokens", tmp_path, *LOW,
                   "--run-dir", tmp_path / "r2", "--max-steps", 1, *QUIET)


def test_assembling_without_a_usable_clip_is_refused_and_writes_nothing(vqvae_run, tmp_path):
    from im2wav.training.assemble import assemble_pipeline

    with pytest.raises(ValueError, match="--clip"):
        assemble_pipeline(vqvae_run, vqvae_run, vqvae_run, tmp_path / "pipe")
    with pytest.raises(ValueError, match="CLIP"):
        assemble_pipeline(vqvae_run, vqvae_run, vqvae_run, tmp_path / "pipe", clip=str(tmp_path / "no_such_clip"))
    assert list(tmp_path.iterdir()) == []


def test_max_minutes_stops_and_still_checkpoints(dataset, tmp_path):
    run_script("train_vqvae", "--dataset", dataset, "--run-dir", tmp_path / "r", *VQ, "--window-length", 2048,
               "--max-steps", 1000, "--max-minutes", "1e-9", *QUIET)
    latest = checkpointing.latest_checkpoint(tmp_path / "r")
    assert latest is not None and json.loads((latest / "state.json").read_text())["step"] == 0


# ------------------------------------------------------------------------------------------------
# helpers


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    from im2wav.models.vqvae import HierarchicalVQVAE

    model = HierarchicalVQVAE(width=4, depth=1, emb_width=4, l_bins=8)
    optimizer = make_optimizer(model, 1e-3)
    scheduler = warmup_schedule(optimizer, 1)
    first = checkpointing.save_checkpoint(tmp_path, 1, "vqvae", model, optimizer, scheduler)
    before = (first / "model" / "diffusion_pytorch_model.safetensors").read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpointing.save_checkpoint(tmp_path, 2, "vqvae", model, optimizer, scheduler)
    assert checkpointing.latest_checkpoint(tmp_path) == first
    assert (first / "model" / "diffusion_pytorch_model.safetensors").read_bytes() == before
    assert not (tmp_path / "checkpoints" / "step_00000002").exists()
    # nothing half-written is left behind, not even a hidden temporary folder
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_00000001"]


def test_warmup_then_cosine_schedule():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_schedule(optimizer, warmup_steps=4, total_steps=12, decay="cosine")
    lrs = []
    for _ in range(12):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert lrs[8] == pytest.approx(0.5) and lrs[-1] < 0.05
    with pytest.raises(ValueError, match="needs total_steps"):
        warmup_schedule(optimizer, 4, None, "linear")


def test_ema_tracks_weights_with_warmup():
    model = torch.nn.Linear(2, 1, bias=False)
    start = model.weight.detach().clone()
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # first update: decay min(0.5, (1 + 0) / (10 + 0)) = 0.1
    target = torch.nn.Linear(2, 1, bias=False)
    ema.copy_to(target)
    assert torch.allclose(target.weight, 0.1 * start + 0.9)
    ema.update(model)  # decay min(0.5, 2 / 11)
    assert torch.allclose(ema.shadow["weight"], (2 / 11) * (0.1 * start + 0.9) + (9 / 11))


def test_optimizer_decays_only_matrices():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    groups = make_optimizer(model, 1e-3, weight_decay=0.1).param_groups
    assert [(len(g["params"]), g["weight_decay"]) for g in groups] == [(1, 0.1), (3, 0.0)]


def test_bundled_default_model_hears_its_examples():
    """assets/default_model (training_scripts/build_default_model.py) gives each example its class's tone."""
    from PIL import Image
    from test_learning_e2e import CentroidClassifier, real_class_windows

    from im2wav import Im2WavPipeline
    from im2wav.data.synthetic import SyntheticClass

    folder = REPO / "assets" / "default_model"
    if not folder.is_dir():
        pytest.skip("assets/default_model is not in this checkout")
    classes = [SyntheticClass(**{**c, "background": tuple(c["background"]), "shape_colour": tuple(c["shape_colour"])})
               for c in json.loads((folder / "classes.json").read_text())["classes"]]
    pipe = Im2WavPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    judge = CentroidClassifier(real_class_windows(classes, 4096))
    images = [Image.open(REPO / "assets" / "examples" / f"{c.name}.png") for c in classes]  # a batch of pictures
    audio = pipe(images, audio_length_in_s=0.256, generator=torch.Generator().manual_seed(0)).audios[:, 0]
    assert [judge.predict(x) for x in audio] == list(range(len(classes)))

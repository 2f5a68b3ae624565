"""Training scripts and helpers: exact resume, atomic checkpoints, clear errors (tiny models, seconds)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_components import tiny_stage_args

from im2wav.data.shards import DatasetInfo, ShardWriter, to_pcm16
from im2wav.training import checkpointing
from im2wav.training.ema import load_weight_ema_state, weight_ema
from im2wav.training.optim import make_optimizer, warmup_schedule

REPO = Path(__file__).resolve().parents[1]
SR = 16000
VQ = tiny_stage_args("vqvae")
LOW = tiny_stage_args("low", min_duration=0.1)
UP = tiny_stage_args("up")
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


def test_vqvae_resumes_a_checkpoint_written_before_the_loss_left_the_model(dataset, tmp_path):
    """Such a checkpoint holds the loss weights and statistics in model/config.json and no `extra`."""
    args = ["--dataset", dataset, *VQ, "--window-length", 2048, "--batch-size", 2, *QUIET]
    run_script("train_vqvae", *args, "--run-dir", tmp_path / "straight", "--max-steps", 4)
    run_script("train_vqvae", *args, "--run-dir", tmp_path / "split", "--max-steps", 2)
    checkpoint = checkpointing.latest_checkpoint(tmp_path / "split")
    state = json.loads((checkpoint / "state.json").read_text())
    loss = state.pop("extra")["vqvae_loss"]
    assert loss["bandwidth_l2"] != 1.0  # measured on the data
    (checkpoint / "state.json").write_text(json.dumps(state))
    config = json.loads((checkpoint / "model" / "config.json").read_text())
    (checkpoint / "model" / "config.json").write_text(json.dumps({**config, **loss}))
    run_script("train_vqvae", *args, "--run-dir", tmp_path / "split", "--max-steps", 4, "--resume")
    assert losses(tmp_path / "straight") == losses(tmp_path / "split")
    resolved = json.loads((tmp_path / "split" / "config.json").read_text())
    assert resolved["loss_config"] == loss and "bandwidth_l2" not in resolved["model_config"]


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


def test_time_signal_init_std_redraws_a_fresh_low_run_only(dataset, tokens, tmp_path):
    from im2wav import Im2WavPrior

    def time_signal_std(run_dir: Path) -> float:
        prior = Im2WavPrior.from_pretrained(checkpointing.latest_checkpoint(run_dir) / "model")
        signal = prior.time_embedding
        weights = [e.emb.weight for e in (signal.total_length, signal.absolute_position, signal.relative_position)]
        return float(torch.cat(weights).detach().std())

    args = ["--level", "low", "--dataset", dataset, "--tokens", tokens, *LOW, "--batch-size", 2, *QUIET, "--lr", 1e-6]
    run_script("train_prior", *args, "--run-dir", tmp_path / "default", "--max-steps", 1)
    small = [*args, "--time-signal-init-std", 0.1]
    run_script("train_prior", *small, "--run-dir", tmp_path / "small", "--max-steps", 1)
    assert 0.005 < time_signal_std(tmp_path / "default") < 0.02  # the constructor's N(0, 0.01**2), the original's
    assert 0.05 < time_signal_std(tmp_path / "small") < 0.2
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    assert config["run"]["time_signal_init_std"] == 0.1
    # a resumed run keeps its checkpoint's weights: it continues the straight run exactly
    run_script("train_prior", *small, "--run-dir", tmp_path / "small", "--max-steps", 2, "--resume")
    run_script("train_prior", *small, "--run-dir", tmp_path / "straight", "--max-steps", 2)
    assert losses(tmp_path / "small") == losses(tmp_path / "straight")
    with pytest.raises(ValueError, match="time signal.*LOW"):
        run_script("train_prior", "--level", "up", "--dataset", dataset, "--tokens", tokens, *UP, "--batch-size", 2,
                   *QUIET, "--max-steps", 1, "--time-signal-init-std", 0.01, "--run-dir", tmp_path / "up")
    with pytest.raises(ValueError, match="must be > 0"):
        run_script("train_prior", *args, "--time-signal-init-std", 0, "--run-dir", tmp_path / "zero", "--max-steps", 1)


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
    with pytest.raises(ValueError, match=r"loss config differs \(multispectral: checkpoint 1.0 vs this run 0.5\)"):
        run_script("train_vqvae", "--dataset", dataset, "--run-dir", vqvae_run,
                   *tiny_stage_args("vqvae", multispectral=0.5), "--window-length", 2048, "--max-steps", 3, *QUIET,
                   "--resume")
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
    assert lrs[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])  # (step + 1) / warmup: no step at lr 0
    assert lrs[8] == pytest.approx(0.5) and lrs[-1] == pytest.approx(0.5 * (1 + np.cos(np.pi * 7 / 8)))
    linear = warmup_schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0), 2, 6, "linear")
    values = []
    for _ in range(6):
        values.append(linear.get_last_lr()[0])
        linear.optimizer.step()
        linear.step()
    assert values == pytest.approx([1.0, 2.0, 2.0, 1.5, 1.0, 0.5])
    with pytest.raises(ValueError, match="needs total_steps"):
        warmup_schedule(optimizer, 4, None, "linear")


def test_ema_tracks_weights_with_warmup():
    model = torch.nn.Linear(2, 1, bias=False)
    ema = weight_ema(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.step(model.parameters())  # first update copies the weights (decay 0)
    target = torch.nn.Linear(2, 1, bias=False)
    ema.copy_to(target.parameters())
    assert torch.allclose(target.weight, torch.ones(1, 2))
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.step(model.parameters())  # decay min(0.5, (1 + 1) / (10 + 1))
    ema.copy_to(target.parameters())
    assert torch.allclose(target.weight, torch.full((1, 2), (2 / 11) * 1.0 + (9 / 11) * 3.0))
    for _ in range(20):
        ema.step(model.parameters())  # the decay is capped at 0.5: the average closes half the gap per step
    ema.copy_to(target.parameters())
    assert torch.allclose(target.weight, torch.full((1, 2), 3.0), atol=1e-5)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        weight_ema(model, 1.5)


def test_ema_state_round_trips_and_refuses_another_model():
    model = torch.nn.Linear(3, 2)
    ema = weight_ema(model, 0.9)
    ema.step(model.parameters())
    fresh = weight_ema(model, 0.9)
    load_weight_ema_state(fresh, ema.state_dict(), model)
    assert fresh.optimization_step == 1
    assert all(torch.equal(a, b) for a, b in zip(fresh.shadow_params, ema.shadow_params))
    # a checkpoint written by the earlier name-keyed EMA still resumes
    old = {"decay": 0.9, "num_updates": 7, "shadow": {n: p.detach() + 1 for n, p in model.named_parameters()}}
    load_weight_ema_state(fresh, old, model)
    assert fresh.optimization_step == 7 and torch.equal(fresh.shadow_params[0], model.weight.detach() + 1)
    with pytest.raises(ValueError, match="does not match the model"):
        load_weight_ema_state(weight_ema(torch.nn.Linear(3, 3), 0.9), ema.state_dict(), torch.nn.Linear(3, 3))


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


def test_run_configs_are_typed_and_built_at_the_command_line_boundary(tmp_path):
    import argparse

    from im2wav.training.arguments import add_training_arguments, prior_run_config
    from im2wav.training.runs import PriorRunConfig, train_prior_run, train_vqvae_run

    with pytest.raises(TypeError, match="VQVAERunConfig.*vqvae_run_config"):
        train_vqvae_run(argparse.Namespace(dataset="x", run_dir=str(tmp_path)))
    parser = argparse.ArgumentParser()
    for flag in ("--level", "--dataset", "--tokens"):
        parser.add_argument(flag)
    parser.add_argument("--condition-dropout", type=float, default=None)
    parser.add_argument("--time-signal-init-std", type=float, default=None)
    add_training_arguments(parser, preset="", batch_size=4, lr=3e-4, max_steps=10)
    args = parser.parse_args(["--level", "up", "--dataset", "d", "--tokens", "t", "--run-dir", str(tmp_path),
                              "--warmup-steps", "7", "--config-overrides", '{"width": 32}'])
    run = prior_run_config(args)
    assert isinstance(run, PriorRunConfig) and run.model.preset == "paper-up" and run.condition_dropout == 0.0
    assert run.model.config_overrides == {"width": 32} and run.training.warmup_steps == 7
    assert run.training.max_steps == 10 and run.training.clip_grad_norm == 1.0  # stage default, dataclass default
    with pytest.raises(ValueError, match=r"\['widht'\] are not fields of Im2WavPrior"):
        run_script("train_prior", "--level", "low", "--dataset", "d", "--tokens", "t", "--run-dir", tmp_path / "r",
                   "--config-overrides", '{"widht": 32}')
    with pytest.raises(ValueError, match="level must be"):
        train_prior_run(PriorRunConfig(level="mid", dataset="d", tokens="t", model=run.model, training=run.training))

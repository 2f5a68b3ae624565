"""Im2WavPipeline on tiny real components: determinism, batching, every input and output form,
save/load, errors, and parity of decoding with the original implementation's fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput
from PIL import Image
from tiny_components import (  # noqa: F401  (pytest fixtures)
    TINY_SECONDS,
    build_tiny_pipeline,
    make_test_video,
    tiny_image,
    tiny_pipe,
    tiny_pipe_dir,
)

from im2wav import Im2WavPipeline
from im2wav.clip_encoder import tiny_clip_vision
from im2wav.media import load_video_frames

S = round(TINY_SECONDS * 16000)  # 1024 samples
T_LOW = S // 32  # 32 tokens
T_UP = 4 * T_LOW


def _image(seed: int = 0, size=(40, 30)) -> Image.Image:
    return tiny_image(seed, size)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _run(pipe, images=None, seed=0, **kwargs):
    kwargs.setdefault("audio_length_in_s", TINY_SECONDS)
    return pipe(images, generator=_gen(seed), **kwargs).audios


# ------------------------------------------------------------------------------------------------
# outputs


def test_output_shapes_types_and_sample_rate(tiny_pipe):
    out = tiny_pipe(_image(), audio_length_in_s=TINY_SECONDS, generator=_gen())
    assert isinstance(out, AudioPipelineOutput)
    assert isinstance(out.audios, np.ndarray) and out.audios.dtype == np.float32 and out.audios.shape == (1, 1, S)
    assert np.isfinite(out.audios).all() and 0.01 < np.sqrt(np.mean(out.audios**2)) < 1.0  # audible, not silence or blow-up
    assert tiny_pipe.sample_rate == 16000

    pt = _run(tiny_pipe, _image(), output_type="pt")
    assert isinstance(pt, torch.Tensor) and pt.dtype == torch.float32 and pt.shape == (1, 1, S)
    np.testing.assert_array_equal(pt.numpy(), out.audios)  # same generator, same audio

    latent = _run(tiny_pipe, _image(), output_type="latent")
    assert latent.dtype == torch.long and latent.shape == (1, T_UP)
    torch.testing.assert_close(tiny_pipe.decode(latent, num_samples=S), pt)

    (audios,) = tiny_pipe(_image(), audio_length_in_s=TINY_SECONDS, generator=_gen(), return_dict=False)
    np.testing.assert_array_equal(audios, out.audios)


def test_lengths_map_to_tokens_and_samples(tiny_pipe):
    assert tiny_pipe.num_low_tokens(4.096) == 2048
    assert tiny_pipe.num_low_tokens(0.05) == 25  # 800 samples -> 25 tokens of 32
    audio = _run(tiny_pipe, _image(), audio_length_in_s=0.05, output_type="pt")
    assert audio.shape == (1, 1, 800)  # decoded 25 * 32 = 800, cut to the asked length


def test_same_generator_same_audio_other_seed_other_audio(tiny_pipe):
    a, b = _run(tiny_pipe, _image(), seed=1), _run(tiny_pipe, _image(), seed=1)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != _run(tiny_pipe, _image(), seed=2)) > 0.5  # a new seed redraws the clip, not a few samples


def test_guidance_changes_output(tiny_pipe):
    embeds = tiny_pipe.encode_images(_image())
    with_guidance = tiny_pipe.sample_low(embeds, TINY_SECONDS, guidance_scale=3.0, generator=_gen())
    without = tiny_pipe.sample_low(embeds, TINY_SECONDS, guidance_scale=1.0, generator=_gen())
    assert with_guidance.shape == without.shape == (1, T_LOW)
    # guidance reshapes the sequence: 81% of the tiny pipe's tokens differ with transformers 5, 31% with the floor
    # 4.40, whose CLIP initialisation draws another tiny image encoder (hence other embeddings)
    assert (with_guidance != without).float().mean() > 0.2


def test_the_image_conditions_the_audio(tiny_pipe):
    a = _run(tiny_pipe, _image(0), output_type="latent")
    b = _run(tiny_pipe, _image(1), output_type="latent")
    assert (a != b).float().mean() > 0.1  # same draws, other image: many tokens change (tiny pipe: 18%), not one


def test_batch_element_0_equals_single_run(tiny_pipe):
    images = [_image(0), _image(1)]  # a list in `images` is a batch of single pictures
    batch = tiny_pipe(images, audio_length_in_s=TINY_SECONDS, generator=[_gen(5), _gen(6)], output_type="latent").audios
    single = tiny_pipe(_image(0), audio_length_in_s=TINY_SECONDS, generator=_gen(5), output_type="latent").audios
    second = tiny_pipe(_image(1), audio_length_in_s=TINY_SECONDS, generator=_gen(6), output_type="latent").audios
    assert batch.shape == (2, T_UP)
    torch.testing.assert_close(batch[:1], single, rtol=0, atol=0)
    torch.testing.assert_close(batch[1:], second, rtol=0, atol=0)


def test_num_waveforms_per_prompt(tiny_pipe):
    audios = _run(tiny_pipe, [_image(0), _image(1)], num_waveforms_per_prompt=3, output_type="pt")
    assert audios.shape == (6, 1, S)
    assert (audios[0] != audios[1]).float().mean() > 0.5  # different samples of the same image, not a copy
    gens = [_gen(i) for i in range(6)]
    tokens = tiny_pipe(
        [_image(0), _image(1)],
        audio_length_in_s=TINY_SECONDS,
        num_waveforms_per_prompt=3,
        generator=gens,
        output_type="latent",
    ).audios
    # rows are grouped by prompt: row 3 is the first waveform of image 1
    alone = tiny_pipe(_image(1), audio_length_in_s=TINY_SECONDS, generator=_gen(3), output_type="latent").audios
    torch.testing.assert_close(tokens[3:4], alone, rtol=0, atol=0)


def test_windowed_sampling_beyond_one_window(tiny_pipe):
    # tiny-low's window is 128 tokens (0.256 s); 0.3 s needs 150 LOW and 600 UP tokens (UP window 512)
    tokens = _run(tiny_pipe, _image(), audio_length_in_s=0.3, output_type="latent")
    assert tokens.shape == (1, 600)
    assert 0 <= tokens.min() and tokens.max() < tiny_pipe.up_prior.config.vocab_size
    # the second UP window decodes new tokens rather than repeating the first window's start
    assert (tokens[:, 512:] != tokens[:, :88]).float().mean() > 0.5  # (tiny pipe: 92% differ), not a near-copy


def test_callback_and_progress(tiny_pipe):
    steps = []
    tiny_pipe(
        _image(),
        audio_length_in_s=TINY_SECONDS,
        generator=_gen(),
        callback_on_step_end=lambda pipe, step, total, kwargs: steps.append((step, total)),
        output_type="latent",
    )
    assert [s for s, _ in steps] == list(range(1, T_LOW + T_UP + 1))
    assert {t for _, t in steps} == {T_LOW + T_UP}

    class Stop(Exception):
        pass

    def interrupt(pipe, step, total, kwargs):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        tiny_pipe(_image(), audio_length_in_s=TINY_SECONDS, callback_on_step_end=interrupt)


# ------------------------------------------------------------------------------------------------
# input forms


def test_every_input_form_gives_the_same_embeddings(tiny_pipe, tmp_path):
    image = _image(3)
    pixels = np.array(image)
    reference = tiny_pipe.encode_images(image)
    assert reference.shape == (1, 1, 512)
    torch.testing.assert_close(reference.norm(dim=-1), torch.ones(1, 1))
    path = tmp_path / "image.png"
    image.save(path)
    forms = {
        "path": path,
        "str path": str(path),
        "numpy uint8 HWC": pixels,
        "numpy float HWC": pixels.astype(np.float32) / 255,
        "torch uint8 HWC": torch.from_numpy(pixels),
        "torch float HWC": torch.from_numpy(pixels).double() / 255,
        "list of one picture": [image],
        "numpy BHWC": pixels[None],
        "one-frame video": None,
    }
    for name, form in forms.items():
        got = tiny_pipe.encode_images(video=[image]) if form is None else tiny_pipe.encode_images(form)
        torch.testing.assert_close(got, reference, msg=name)

    frames = [_image(i) for i in range(3)]
    sequence = tiny_pipe.encode_images(video=frames)
    assert sequence.shape == (1, 3, 512)
    stacked = np.stack([np.array(f) for f in frames])
    torch.testing.assert_close(tiny_pipe.encode_images(video=stacked), sequence)
    batch = tiny_pipe.encode_images(video=[frames, frames[::-1]])
    assert batch.shape == (2, 3, 512)
    torch.testing.assert_close(batch[1], sequence[0].flip(0))
    torch.testing.assert_close(tiny_pipe.encode_images(video=np.stack([stacked, stacked[::-1]])), batch)
    torch.testing.assert_close(tiny_pipe.encode_images(video=torch.from_numpy(np.stack([stacked, stacked[::-1]]))), batch)


def test_the_argument_not_the_python_type_says_what_an_input_means(tiny_pipe, tmp_path):
    """The same pictures as files, Pillow images or arrays: a batch in `images`, one video in `video`."""
    frames = [_image(i) for i in range(3)]
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for p, f in zip(paths, frames):
        f.save(p)
    arrays = [np.array(f) for f in frames]
    pictures = tiny_pipe.encode_images(frames)
    assert pictures.shape == (3, 1, 512)
    sequence = tiny_pipe.encode_images(video=frames)
    assert sequence.shape == (1, 3, 512)
    torch.testing.assert_close(sequence[0], pictures[:, 0])
    for name, form in {"paths": paths, "str paths": [str(p) for p in paths], "arrays": arrays,
                       "stacked array": np.stack(arrays), "torch float": torch.from_numpy(np.stack(arrays)) / 255.0}.items():
        if not isinstance(form, list) and form.ndim == 4:
            torch.testing.assert_close(tiny_pipe.encode_images(form), pictures, msg=name)
            torch.testing.assert_close(tiny_pipe.encode_images(video=form), sequence, msg=name)
            continue
        torch.testing.assert_close(tiny_pipe.encode_images(form), pictures, msg=name)
        torch.testing.assert_close(tiny_pipe.encode_images(video=form), sequence, msg=name)
    with pytest.raises(ValueError, match="exactly one of `images`"):
        tiny_pipe.encode_images(frames, video=frames)
    with pytest.raises(TypeError, match="pass frame sequences as `video=`"):
        tiny_pipe.encode_images([frames])
    with pytest.raises(ValueError, match="pass frame sequences as `video=`"):
        tiny_pipe.encode_images(np.stack([np.stack(arrays)]))


def test_frames_of_different_sizes_are_resized_independently(tiny_pipe):
    frames = [_image(0, (40, 30)), _image(1, (64, 64)), _image(2, (33, 90))]
    mixed = tiny_pipe.encode_images(video=frames)
    one_by_one = torch.cat([tiny_pipe.encode_images(f) for f in frames], dim=1)
    torch.testing.assert_close(mixed, one_by_one, atol=1e-5, rtol=1e-5)


def test_image_embeds_input_equals_image_input(tiny_pipe):
    embeds = tiny_pipe.encode_images(_image())
    from_images = _run(tiny_pipe, _image())
    from_embeds = tiny_pipe(image_embeds=embeds, audio_length_in_s=TINY_SECONDS, generator=_gen()).audios
    np.testing.assert_array_equal(from_images, from_embeds)


def test_frame_sequences_are_cut_to_the_audio_length(tiny_pipe):
    frames = [_image(i) for i in range(10)]
    # 0.064 s at 30 fps covers int(1.92) = 1 frame; at 100 fps 6 frames
    assert tiny_pipe.prepare_frames(video=frames, fps=30, max_seconds=TINY_SECONDS)[0] == frames[:1]
    assert len(tiny_pipe.prepare_frames(video=frames, fps=100, max_seconds=TINY_SECONDS)[0]) == 6
    a = _run(tiny_pipe, video=frames, fps=100, output_type="latent")
    b = _run(tiny_pipe, video=frames[:6], fps=100, output_type="latent")
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_video_file_input(tiny_pipe, tmp_path):
    video = make_test_video(tmp_path / "clip.mp4", seconds=1.0, fps=10)
    embeds = tiny_pipe.encode_images(video, fps=30)
    assert embeds.shape == (1, 30, 512)
    torch.testing.assert_close(embeds[0, 0], embeds[0, 2])  # 10 fps video at 30 fps: frames repeat
    assert (embeds[0, 0] - embeds[0, 3]).abs().max() > 1e-4
    audio = tiny_pipe(str(video), audio_length_in_s=TINY_SECONDS, generator=_gen()).audios
    assert audio.shape == (1, 1, S)
    # a video behaves as the frame list it decodes to
    frames = tiny_pipe.prepare_frames(video, fps=30, max_seconds=TINY_SECONDS)[0]
    np.testing.assert_array_equal(audio, _run(tiny_pipe, video=frames))
    np.testing.assert_array_equal(audio, _run(tiny_pipe, video=str(video)))  # a video file is a `video` too


def test_vggsound_video_input(tiny_pipe):
    mp4 = sorted(shared_path("data", "vggsound_examples").glob("*.mp4"))[0]
    embeds = tiny_pipe.encode_images(mp4, fps=30, max_seconds=0.5)
    assert embeds.shape == (1, 15, 512)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(1, 15))
    # a path is read exactly as its decoded frames would be, and the frames are not all alike
    frames = load_video_frames(mp4, fps=30, max_seconds=0.5).frames
    torch.testing.assert_close(tiny_pipe.encode_images(video=frames, fps=30), embeds)
    assert not torch.allclose(embeds[0, 0], embeds[0, -1])


# ------------------------------------------------------------------------------------------------
# bad input


def test_bad_image_inputs_raise_clear_errors(tiny_pipe, tmp_path):
    pixels = np.asarray(_image())
    cases = [
        ([], ValueError, "empty image list"),
        ({"video": [[]]}, ValueError, "empty frame list"),
        ({"video": [[_image(0)], [_image(1), _image(2)]]}, ValueError, "same number of frames"),
        (pixels.astype(np.float32), ValueError, "0..1"),  # 0..255 floats
        (np.full((8, 8, 3), np.nan, dtype=np.float32), ValueError, "NaN"),
        (np.full((8, 8, 3), np.inf), ValueError, "NaN or inf"),
        (pixels.astype(np.int64), TypeError, "uint8"),
        (np.transpose(pixels, (2, 0, 1)).copy(), ValueError, "channels-first"),
        (pixels[..., :2], ValueError, "3 \\(RGB\\) channels"),
        (np.zeros((2, 2, 2, 2, 8, 8, 3), dtype=np.uint8), ValueError, "is \\[H, W, C\\] or \\[B, H, W, C\\]"),
        (42, TypeError, "unsupported image input"),
        ([_image(), [_image()]], TypeError, "pass frame sequences as `video=`"),
        (tmp_path / "missing.png", FileNotFoundError, "not found"),
    ]
    for images, error, match in cases:
        with pytest.raises(error, match=match):
            if isinstance(images, dict):  # frame sequences
                tiny_pipe.encode_images(**images)
            else:
                tiny_pipe.encode_images(images)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        tiny_pipe.encode_images(broken)
    wav = tmp_path / "sound.wav"
    import soundfile

    soundfile.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="no video stream"):
        tiny_pipe.encode_images(wav)
    video = make_test_video(tmp_path / "v.mp4", seconds=0.5)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        tiny_pipe.encode_images(truncated)


def test_bad_call_arguments_raise_clear_errors(tiny_pipe):
    image = _image()
    embeds = tiny_pipe.encode_images(image)
    cases = [
        (dict(audio_length_in_s=0), ValueError, "positive"),
        (dict(audio_length_in_s=-1.0), ValueError, "positive"),
        (dict(audio_length_in_s=float("nan")), ValueError, "positive"),
        (dict(audio_length_in_s=1e6), ValueError, "longer than the 120 s"),
        (dict(audio_length_in_s="4"), TypeError, "number of seconds"),
        (dict(num_waveforms_per_prompt=0), ValueError, "num_waveforms_per_prompt"),
        (dict(generator=[_gen(), _gen()]), ValueError, "one per waveform"),
        (dict(output_type="wav"), ValueError, "output_type"),
        (dict(temperature=0), ValueError, "temperature"),
        (dict(top_k=-1), ValueError, "top_k"),
        (dict(top_p=1.5), ValueError, "top_p"),
        (dict(guidance_scale=-1.0), ValueError, "guidance_scale"),
        (dict(fps=0), ValueError, "fps"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            tiny_pipe(image, **{"audio_length_in_s": TINY_SECONDS, **kwargs})
    with pytest.raises(ValueError, match="exactly one"):
        tiny_pipe(image, image_embeds=embeds)
    with pytest.raises(ValueError, match="exactly one"):
        tiny_pipe()
    with pytest.raises(ValueError, match=r"\[B, F, 512\]"):
        tiny_pipe(image_embeds=embeds[0])
    with pytest.raises(ValueError, match="L2-normalised"):
        tiny_pipe(image_embeds=embeds * 3)
    with pytest.raises(ValueError, match="NaN"):
        tiny_pipe(image_embeds=torch.full_like(embeds, float("nan")))
    with pytest.raises(ValueError, match="rows"):
        tiny_pipe.sample_up(torch.zeros(3, T_LOW, dtype=torch.long), torch.cat([embeds, embeds]))


# ------------------------------------------------------------------------------------------------
# save / load


def test_save_load_round_trip(tiny_pipe, tiny_pipe_dir):
    index = json.loads((tiny_pipe_dir / "model_index.json").read_text())
    assert index["_class_name"] == "Im2WavPipeline"
    assert index["vqvae"][1] == "HierarchicalVQVAE" and index["low_prior"][1] == "Im2WavPrior"
    for name in ("image_encoder", "vqvae", "low_prior", "up_prior"):
        assert list((tiny_pipe_dir / name).glob("*.safetensors")), name
    loaded = Im2WavPipeline.from_pretrained(tiny_pipe_dir)
    assert isinstance(loaded, Im2WavPipeline)
    for name in ("vqvae", "low_prior", "up_prior", "image_encoder"):
        original, reloaded = getattr(tiny_pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert original.keys() == reloaded.keys()
        assert all(torch.equal(original[k], reloaded[k]) for k in original), name
    np.testing.assert_array_equal(_run(loaded, _image()), _run(tiny_pipe, _image()))


def test_hub_id_goes_through_snapshot_download(tiny_pipe_dir, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(tiny_pipe_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    pipe = Im2WavPipeline.from_pretrained("someone/im2wav-tiny", revision="main")
    assert calls == [("someone/im2wav-tiny", {"revision": "main"})]
    assert isinstance(pipe, Im2WavPipeline)


def test_broken_model_folders_raise_clear_errors(tiny_pipe_dir, tmp_path):
    with pytest.raises(ValueError, match="not found"):
        Im2WavPipeline.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model_index.json is missing"):
        Im2WavPipeline.from_pretrained(tmp_path / "empty")

    missing = shutil.copytree(tiny_pipe_dir, tmp_path / "missing")
    shutil.rmtree(missing / "up_prior")
    with pytest.raises(ValueError, match="missing its 'up_prior' component"):
        Im2WavPipeline.from_pretrained(missing)

    truncated = shutil.copytree(tiny_pipe_dir, tmp_path / "truncated")
    weights = next((truncated / "low_prior").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size - 100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        Im2WavPipeline.from_pretrained(truncated)

    no_weights = shutil.copytree(tiny_pipe_dir, tmp_path / "no_weights")
    for f in (no_weights / "vqvae").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ValueError, match="no weights file"):
        Im2WavPipeline.from_pretrained(no_weights)


def test_to_device_and_dtype():
    pipe = build_tiny_pipeline(seed=1).to("cpu", torch.bfloat16)
    assert pipe.low_prior.dtype == torch.bfloat16 and pipe.vqvae.dtype == torch.bfloat16
    audio = pipe(_image(), audio_length_in_s=TINY_SECONDS, generator=_gen(), output_type="pt").audios
    assert audio.dtype == torch.float32 and audio.shape == (1, 1, S) and torch.isfinite(audio).all()


def test_model_cpu_offload_loads_each_stage_before_use():
    pytest.importorskip("accelerate")
    pipe = build_tiny_pipeline(seed=2)
    pipe.enable_model_cpu_offload(device="cpu")  # a real accelerator is not needed to check the hooks
    loaded = []
    for name in ("low_prior", "up_prior", "vqvae"):
        hook = getattr(pipe, name)._hf_hook
        original = hook.pre_forward

        def spy(module, *args, _name=name, _original=original, **kwargs):
            loaded.append(_name)
            return _original(module, *args, **kwargs)

        hook.pre_forward = spy
    audio = pipe(_image(), audio_length_in_s=TINY_SECONDS, generator=_gen(), output_type="pt").audios
    assert audio.shape == (1, 1, S)
    # sampling and decoding call methods other than forward: their apply_forward_hook on-loads each stage
    assert [n for i, n in enumerate(loaded) if i == 0 or loaded[i - 1] != n] == ["low_prior", "up_prior", "vqvae"]


# ------------------------------------------------------------------------------------------------
# parity with the original implementation


def test_pipeline_from_parity_checkpoints_decodes_fixture_tokens(parity_dir, tmp_path):
    from safetensors.torch import load_file

    from im2wav.convert.pipeline import build_pipeline_from_original

    pipe = build_pipeline_from_original(
        parity_dir / "vqvae_tiny.pth.tar",
        parity_dir / "low_tiny.pth.tar",
        parity_dir / "up_tiny.pth.tar",
        clip=tiny_clip_vision(),
    )
    io = load_file(parity_dir / "sample_pipeline_tiny_io.safetensors")
    for run in ("video_forced", "image_forced"):
        expected = io[f"{run}.up.decoded_audio"].permute(0, 2, 1)  # [B, S, 1] -> [B, 1, S]
        torch.testing.assert_close(pipe.decode(io["forced.up_tokens"]), expected, atol=1e-5, rtol=1e-4)
    pipe.save_pretrained(tmp_path / "converted")
    reloaded = Im2WavPipeline.from_pretrained(tmp_path / "converted")
    torch.testing.assert_close(reloaded.decode(io["forced.up_tokens"]), expected, atol=1e-5, rtol=1e-4)


def test_convert_script_whole_pipeline_mode(parity_dir, tmp_path):
    import importlib.util

    from safetensors.torch import load_file

    script_path = Path(__file__).resolve().parents[1] / "training_scripts" / "convert_original_checkpoint.py"
    spec = importlib.util.spec_from_file_location("convert_original_checkpoint_for_pipeline", script_path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    clip_model, clip_processor = tiny_clip_vision()
    clip_model.save_pretrained(tmp_path / "clip")
    clip_processor.save_pretrained(tmp_path / "clip")
    vqvae, low, up = (parity_dir / f"{name}_tiny.pth.tar" for name in ("vqvae", "low", "up"))
    out = tmp_path / "pipeline"
    script.main(
        ["--vqvae", str(vqvae), "--low", str(low), "--up", str(up), "--clip", str(tmp_path / "clip"), "--out", str(out)]
    )
    pipe = Im2WavPipeline.from_pretrained(out)
    io = load_file(parity_dir / "sample_pipeline_tiny_io.safetensors")
    expected = io["image_forced.up.decoded_audio"].permute(0, 2, 1)  # [B, S, 1] -> [B, 1, S]
    torch.testing.assert_close(pipe.decode(io["forced.up_tokens"]), expected, atol=1e-5, rtol=1e-4)

    with pytest.raises(SystemExit):  # argparse error: the pipeline mode needs all four inputs
        script.main(["--vqvae", str(vqvae), "--low", str(low), "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="swapped"):
        script.main(
            [
                "--vqvae",
                str(vqvae),
                "--low",
                str(up),
                "--up",
                str(low),
                "--clip",
                str(tmp_path / "clip"),
                "--out",
                str(tmp_path / "swapped"),
            ]
        )
    assert not (tmp_path / "swapped").exists()

"""The `im2wav` command line, end to end on the tiny pipeline."""

from __future__ import annotations

import os
import subprocess
import sys

import av
import numpy as np
import pytest
import soundfile
from PIL import Image
from tiny_components import (  # noqa: F401  (pytest fixtures)
    TINY_SECONDS,
    make_test_video,
    tiny_image,
    tiny_pipe,
    tiny_pipe_dir,
)

from im2wav.cli import main

S = round(TINY_SECONDS * 16000)


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "dog.jpg"
    tiny_image(0).save(path)
    return path


def _generate(model, *args) -> int:
    return main(["generate", *map(str, args), "--model", str(model), "--device", "cpu"])


def test_generate_one_image_with_spectrogram(tiny_pipe_dir, image_path, tmp_path):
    out, png = tmp_path / "dog.wav", tmp_path / "dog.png"
    assert (
        _generate(tiny_pipe_dir, image_path, "--out", out, "--seconds", TINY_SECONDS, "--seed", 0, "--spectrogram", png)
        == 0
    )
    audio, rate = soundfile.read(out, dtype="float32")
    assert rate == 16000 and audio.shape == (S,)
    assert Image.open(png).format == "PNG"
    # the same seed reproduces the file; the pipeline gives the same audio
    again = tmp_path / "again.flac"
    assert _generate(tiny_pipe_dir, image_path, "--out", again, "--seconds", TINY_SECONDS, "--seed", 0) == 0
    np.testing.assert_allclose(soundfile.read(again, dtype="float32")[0], np.clip(audio, -1, 1), atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.flac", "dog.jpg", "dog.png", "dog.wav"]


def test_several_inputs_and_waveforms_go_to_a_folder(tiny_pipe_dir, tmp_path):
    inputs = []
    for i in range(2):
        inputs.append(tmp_path / f"img{i}.png")
        tiny_image(i).save(inputs[-1])
    out = tmp_path / "outputs"
    assert (
        _generate(
            tiny_pipe_dir,
            *inputs,
            "--out",
            out,
            "--seconds",
            TINY_SECONDS,
            "--num-waveforms",
            2,
            "--seed",
            1,
            "--spectrogram",
            tmp_path / "specs",
        )
        == 0
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == ["img0_0.wav", "img0_1.wav", "img1_0.wav", "img1_1.wav"]
    assert sorted(p.name for p in (tmp_path / "specs").iterdir()) == [n.replace(".wav", ".png") for n in names]


def test_video_input_defaults_to_its_duration_and_muxes(tiny_pipe_dir, tmp_path):
    video = make_test_video(tmp_path / "clip.mp4", seconds=0.1, fps=10)
    out = tmp_path / "clip_gen.wav"
    assert _generate(tiny_pipe_dir, video, "--out", out, "--seed", 0, "--mux-video") == 0
    audio, _ = soundfile.read(out)
    assert len(audio) == 1600  # the video's 0.1 s
    muxed = tmp_path / "clip_gen.mp4"
    with av.open(str(muxed)) as container, av.open(str(video)) as original:
        assert container.streams.video[0].codec_context.name == original.streams.video[0].codec_context.name
        assert container.streams.video[0].frames == original.streams.video[0].frames
        assert len(container.streams.audio) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seconds", "-1"], "--seconds must be a positive"),
        (["--seconds", "100000"], "limit"),
        (["--num-waveforms", "0"], "--num-waveforms"),
        (["--top-p", "0"], "--top-p must be in (0, 1]"),
        (["--top-k", "-1"], "--top-k must be an int >= 0"),
        (["--temperature", "0"], "--temperature must be a positive number"),
        (["--guidance", "-1"], "--guidance must be a finite number >= 0"),
        (["--mux-video"], "needs video inputs"),
        (["--device", "cuda:0"] if not __import__("torch").cuda.is_available() else ["--device", "nonsense"], "device"),
    ],
)
def test_user_errors_exit_2_with_one_line(tiny_pipe_dir, image_path, tmp_path, capsys, extra, message):
    code = main(["generate", str(image_path), "--model", str(tiny_pipe_dir), "--out", str(tmp_path / "o.wav"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("im2wav: error:") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.wav").exists()


def test_file_errors_exit_2(tiny_pipe_dir, image_path, tmp_path, capsys):
    cases = [
        (
            [
                "generate",
                str(tmp_path / "missing.jpg"),
                "--model",
                str(tiny_pipe_dir),
                "--out",
                str(tmp_path / "o.wav"),
            ],
            "input not found",
        ),
        (
            ["generate", str(image_path), "--model", str(tmp_path / "no_model"), "--out", str(tmp_path / "o.wav")],
            "not found",
        ),
        (
            ["generate", str(image_path), "--model", str(tiny_pipe_dir), "--out", str(tmp_path / "o.mp3")],
            ".wav or .flac",
        ),
        (
            [
                "generate",
                str(image_path),
                str(image_path),
                "--model",
                str(tiny_pipe_dir),
                "--out",
                str(tmp_path / "o.wav"),
            ],
            "share a file name",
        ),
        (
            [
                "generate",
                str(image_path),
                "--model",
                str(tiny_pipe_dir),
                "--out",
                str(image_path.with_suffix(".wav")),
                "--num-waveforms",
                "2",
            ],
            "several outputs",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + bytes(40))
    assert (
        main(
            [
                "generate",
                str(broken),
                "--model",
                str(tiny_pipe_dir),
                "--out",
                str(tmp_path / "b.wav"),
                "--seconds",
                str(TINY_SECONDS),
            ]
        )
        == 2
    )
    assert "truncated or corrupt" in capsys.readouterr().err
    existing = tmp_path / "exists.wav"
    existing.write_bytes(b"keep")
    assert main(["generate", str(image_path), "--model", str(tiny_pipe_dir), "--out", str(existing)]) == 2
    assert "--overwrite" in capsys.readouterr().err and existing.read_bytes() == b"keep"


def test_interrupt_leaves_no_partial_file(tiny_pipe_dir, image_path, tmp_path, monkeypatch, capsys):
    import soundfile as sf

    def interrupted_write(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"RIFF half")
        raise KeyboardInterrupt

    monkeypatch.setattr(sf, "write", interrupted_write)
    out = tmp_path / "out.wav"
    assert _generate(tiny_pipe_dir, image_path, "--out", out, "--seconds", TINY_SECONDS, "--seed", 0) == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dog.jpg"]


@pytest.mark.slow
def test_console_script_end_to_end(tiny_pipe_dir, image_path, tmp_path):
    """The installed `im2wav` entry point in a fresh process: output file, and a user error without traceback."""
    script = os.path.join(os.path.dirname(sys.executable), "im2wav")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "im2wav.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out.wav"
    done = subprocess.run(
        [
            *command,
            "generate",
            str(image_path),
            "--model",
            str(tiny_pipe_dir),
            "--out",
            str(out),
            "--seconds",
            str(TINY_SECONDS),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "seed:" in done.stderr and soundfile.info(out).frames == S
    bad = subprocess.run(
        [*command, "generate", str(tmp_path / "nope.jpg"), "--model", str(tiny_pipe_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == f"im2wav: error: input not found: {tmp_path / 'nope.jpg'}"

"""One-line errors everywhere a user can go wrong, and no silent wrong results.

Every entry point reports a user error in one line naming the file or flag and the fix, exit 2;
`--debug` / IM2WAV_DEBUG=1 shows the traceback; bugs keep theirs.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_components import TINY_SECONDS, make_test_video, tiny_image, tiny_pipe, tiny_pipe_dir  # noqa: F401
from test_input_limits import _png_declaring

from im2wav.cli import main
from im2wav.convert import read_original_checkpoint
from im2wav.data.shards import DatasetInfo
from im2wav.data.token_cache import encode_dataset_tokens
from im2wav.errors import run_main
from im2wav.models.vqvae import HierarchicalVQVAE
from im2wav.pipelines import Im2WavPipeline
from im2wav.training.loop import _truncate_metrics

REPO_ROOT = Path(__file__).resolve().parents[1]


def _generate(model, *args) -> int:
    return main(["generate", *map(str, args), "--model", str(model), "--seed", "0"])


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("im2wav: error: "), lines
    return lines[0]


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "dog.png"
    tiny_image(0).save(path)
    return path


# ------------------------------------------------------------------------------------------------
# the shared reporter of the stand-alone scripts


def test_run_main_reports_user_errors_in_one_line(capsys, monkeypatch):
    def fails(argv):
        raise ValueError("--dataset /nope is not a prepared dataset; run prepare_dataset.py first\nmore detail")

    monkeypatch.delenv("IM2WAV_DEBUG", raising=False)
    assert run_main(fails, [], prog="train_vqvae.py") == 2
    assert capsys.readouterr().err == "train_vqvae.py: error: --dataset /nope is not a prepared dataset; " \
                                      "run prepare_dataset.py first\n"
    with pytest.raises(ValueError):
        run_main(fails, ["--debug"], prog="x")
    monkeypatch.setenv("IM2WAV_DEBUG", "1")
    with pytest.raises(ValueError):
        run_main(fails, [], prog="x")


def test_run_main_does_not_disguise_bugs_and_strips_debug(monkeypatch):
    monkeypatch.delenv("IM2WAV_DEBUG", raising=False)
    seen = []

    def bug(argv):
        seen.append(argv)
        raise AttributeError("a bug")

    with pytest.raises(AttributeError):
        run_main(bug, ["--flag", "--debug"], prog="x")
    assert seen == [["--flag"]]

    def interrupted(argv):
        raise KeyboardInterrupt

    assert run_main(interrupted, [], prog="x") == 130


@pytest.mark.parametrize(
    "script, args, expected",
    [
        ("prepare_dataset.py", ["--input", "/no/such/folder", "--out", "{tmp}/out", "--clip-model", "x"], "/no/such"),
        ("train_vqvae.py", ["--dataset", "/no/such/dataset", "--run-dir", "{tmp}/run"], "/no/such/dataset"),
        ("convert_original_checkpoint.py", ["--checkpoint", "/no/such.pth.tar", "--out", "{tmp}/m"], "/no/such"),
    ],
)
def test_scripts_exit_2_with_one_line(tmp_path, script, args, expected):
    args = [a.format(tmp=tmp_path) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "IM2WAV_DEBUG"}
    result = subprocess.run([sys.executable, f"training_scripts/{script}", *args], capture_output=True, text=True,
                            cwd=REPO_ROOT, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: ") and expected in lines[0], lines
    debug = subprocess.run([sys.executable, f"training_scripts/{script}", *args, "--debug"], capture_output=True,
                           text=True, cwd=REPO_ROOT, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


# ------------------------------------------------------------------------------------------------
# the generate command


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--device", "meta"], "--device 'meta' cannot run the model"),
        (["--device", "cuda:99"] if torch.cuda.is_available() else ["--device", "cuda"], "--device cuda"),
        (["--guidance", "1e30"], "--guidance must be at most"),
        (["--temperature", "1e-300"], "--temperature must be at least"),
        (["--fps", "1e300"], "--fps=1e+300 is above"),
        (["--num-waveforms", "1000000"], "--num-waveforms 1000000 is over the limit"),
    ],
)
def test_extreme_options_are_one_line_errors(tiny_pipe_dir, image_path, tmp_path, capsys, extra, message):  # noqa: F811
    assert _generate(tiny_pipe_dir, image_path, "--out", tmp_path / "o.wav", *extra) == 2
    assert message in _one_error_line(capsys)


def test_mps_without_an_apple_gpu_is_a_one_line_error(tiny_pipe_dir, image_path, tmp_path, capsys):  # noqa: F811
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        pytest.skip("this machine has MPS")
    assert _generate(tiny_pipe_dir, image_path, "--out", tmp_path / "o.wav", "--device", "mps") == 2
    assert "MPS" in _one_error_line(capsys)


def test_decompression_bomb_input_is_a_one_line_error(tiny_pipe_dir, tmp_path, capsys):  # noqa: F811
    bomb = _png_declaring(tmp_path / "bomb.png", 15000, 15000)
    assert _generate(tiny_pipe_dir, bomb, "--out", tmp_path / "o.wav", "--device", "cpu") == 2
    assert "MP limit" in _one_error_line(capsys)


def test_broken_model_folders_are_one_line_errors(tiny_pipe_dir, image_path, tmp_path, capsys):  # noqa: F811
    header = shutil.copytree(tiny_pipe_dir, tmp_path / "bad_header")
    weights = next((header / "low_prior").glob("*.safetensors"))
    weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])
    assert _generate(header, image_path, "--out", tmp_path / "a.wav", "--device", "cpu") == 2
    assert "truncated or corrupt" in _one_error_line(capsys)

    missing = shutil.copytree(tiny_pipe_dir, tmp_path / "missing_weight")
    weights = next((missing / "vqvae").glob("*.safetensors"))
    tensors = load_file(weights)
    del tensors[sorted(tensors)[-1]]
    save_file(tensors, weights, metadata={"format": "pt"})
    assert _generate(missing, image_path, "--out", tmp_path / "b.wav", "--device", "cpu") == 2
    assert "lack 1 tensor" in _one_error_line(capsys)


def test_non_image_inputs_are_named_for_what_they_are(tiny_pipe_dir, tmp_path, capsys):  # noqa: F811
    audio_only = make_test_video(tmp_path / "song.mp4", seconds=0.2, fps=10)
    import av

    with av.open(str(audio_only)) as src, av.open(str(tmp_path / "sound.m4a"), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    assert _generate(tiny_pipe_dir, tmp_path / "sound.m4a", "--out", tmp_path / "a.wav", "--device", "cpu") == 2
    assert "no video stream" in _one_error_line(capsys)

    junk = tmp_path / "broken.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    assert _generate(tiny_pipe_dir, junk, "--out", tmp_path / "b.wav", "--device", "cpu") == 2
    line = _one_error_line(capsys)
    assert "truncated or corrupt" in line and "not an image Pillow can read" not in line


# ------------------------------------------------------------------------------------------------
# silent wrong results


def test_audio_shorter_than_one_token_is_refused(tiny_pipe):  # noqa: F811
    with pytest.raises(ValueError, match="shorter than one token"):
        tiny_pipe(tiny_image(0), audio_length_in_s=1e-9)


def test_decode_checks_num_samples(tiny_pipe):  # noqa: F811
    tokens = torch.zeros(1, 16, dtype=torch.long)
    for bad in (-5, 0, 16 * 8 + 1, 2.5, True):
        with pytest.raises(ValueError, match="num_samples must be an int from 1 to 128"):
            tiny_pipe.decode(tokens, num_samples=bad)
    assert tiny_pipe.decode(tokens, num_samples=100).shape == (1, 1, 100)


def test_nan_original_checkpoint_is_refused(tmp_path):
    path = tmp_path / "diverged.pth.tar"
    torch.save({"hps": {"levels": 2}, "model": {"encoders.0.w": torch.full((4,), float("nan"))}, "step": 3}, path)
    with pytest.raises(ValueError, match="NaN or inf weights"):
        read_original_checkpoint(path)


def test_encode_tokens_refuses_a_prepared_dataset_as_out(tmp_path):
    dataset, other = tmp_path / "dataset", tmp_path / "other_dataset"
    for folder in (dataset, other):
        folder.mkdir()
        DatasetInfo(16000, 30.0, "clip", 512).save(folder)
        (folder / "manifest.jsonl").write_text("")
    vqvae = HierarchicalVQVAE.from_preset("tiny")
    for out in (dataset, other):
        with pytest.raises(ValueError, match="prepared dataset"):
            encode_dataset_tokens(dataset, vqvae, out, progress=False)
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="other files"):
        encode_dataset_tokens(dataset, vqvae, stranger, progress=False)


def test_a_local_path_typo_is_not_reported_as_a_hub_problem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(FileNotFoundError, match="models/im2wav-tyop is not a local folder"):
        Im2WavPipeline.from_pretrained("models/im2wav-tyop", local_files_only=True)


def test_a_torn_metrics_line_does_not_block_resume(tmp_path):
    rows = [{"step": s, "split": "train", "loss": 1.0 / s} for s in (1, 2, 3, 4)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5, "spl')
    (tmp_path / "metrics.csv").write_text("step,split,loss\n1,train,1.0\n2,train,0.5\n3,train,0.3\n4,tr")
    _truncate_metrics(tmp_path, 2)
    kept = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in kept] == [1, 2]
    with open(tmp_path / "metrics.csv", newline="") as handle:
        assert [(r["step"], r["loss"]) for r in csv.DictReader(handle)] == [("1", "1.0"), ("2", "0.5")]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state  # a zombie waiting for a reaper has already exited


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="reads process states from Linux /proc")
def test_decode_workers_exit_when_their_parent_is_killed():
    parent = subprocess.run(
        [sys.executable, "-c",
         "import concurrent.futures as cf, multiprocessing, os, signal\n"
         "from im2wav.data.sources import exit_with_parent\n"
         "pool = cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context('spawn'),\n"
         "                              initializer=exit_with_parent, initargs=(os.getpid(), 0.1))\n"
         "print(sorted({f.result() for f in [pool.submit(os.getpid) for _ in range(8)]}), flush=True)\n"
         "os.kill(os.getpid(), signal.SIGKILL)  # as kill -9 of prepare_dataset"],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )
    assert parent.returncode == -signal.SIGKILL
    workers = json.loads(parent.stdout.strip().splitlines()[-1])
    assert workers
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_gone(pid) for pid in workers):
        time.sleep(0.1)
    assert all(_gone(pid) for pid in workers), "orphaned decode workers are still running"

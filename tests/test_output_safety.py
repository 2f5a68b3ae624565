"""Outputs never destroy what a user owns: no replacing inputs, no collisions, "no overwrite" at the
moment of writing, one run per run folder, unwritable places reported before the work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_components import TINY_SECONDS, make_test_video, tiny_image, tiny_pipe, tiny_pipe_dir  # noqa: F401

from im2wav.atomic_files import atomic_folder, atomic_output
from im2wav.cli import main
from im2wav.output_paths import check_output_folder, check_outputs
from im2wav.training.assemble import assemble_pipeline
from im2wav.training.run_lock import LOCK_FILE, run_lock

REPO_ROOT = Path(__file__).resolve().parents[1]


def _generate(model, *args) -> int:
    return main(["generate", *map(str, args), "--model", str(model), "--device", "cpu"])


# ------------------------------------------------------------------------------------------------
# "no overwrite" holds when publishing, not only at the start


def test_a_file_that_appears_while_writing_is_never_replaced(tmp_path):
    target = tmp_path / "out.wav"
    with pytest.raises(FileExistsError, match="appeared while"):
        with atomic_output(target, overwrite=False) as tmp:
            tmp.write_bytes(b"generated")
            target.write_bytes(b"the user's file")  # e.g. a second run with the same --out
    assert target.read_bytes() == b"the user's file"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # no temporary left behind
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic_output(target, overwrite=False):
            pass
    with atomic_output(tmp_path / "new.wav", overwrite=False) as tmp:
        tmp.write_bytes(b"new")
    assert (tmp_path / "new.wav").read_bytes() == b"new"


def test_a_folder_that_appears_while_writing_is_never_replaced(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(FileExistsError, match="appeared while"):
        with atomic_folder(target, overwrite=False) as tmp:
            (tmp / "weights.bin").write_bytes(b"new")
            target.mkdir()
            (target / "mine.txt").write_text("the user's")
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_folder_holding_an_input_is_never_replaced(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    checkpoint = folder / "vqvae.pth.tar"
    checkpoint.write_bytes(b"weights")
    with pytest.raises(ValueError, match="an input of this command"):
        with atomic_folder(folder, overwrite=True, inputs=[checkpoint]):
            pass
    assert checkpoint.read_bytes() == b"weights"


def test_only_the_kind_of_folder_a_command_writes_is_replaced(tmp_path):
    other = tmp_path / "dataset"
    other.mkdir()
    (other / "manifest.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="not a folder this command wrote"):
        check_output_folder(other, overwrite=True, marker_files=["model_index.json"])
    with pytest.raises(FileExistsError, match="--overwrite"):
        check_output_folder(other, overwrite=False)
    (other / "model_index.json").write_text("{}")
    check_output_folder(other, overwrite=True, marker_files=["model_index.json"])


# ------------------------------------------------------------------------------------------------
# planned outputs: inputs, collisions, writability


def test_outputs_are_checked_against_inputs_each_other_and_the_file_system(tmp_path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"video")
    with pytest.raises(ValueError, match="also an input"):
        check_outputs([tmp_path / "sub" / ".." / "clip.mp4"], [source], overwrite=True)
    link = tmp_path / "hard_link.mp4"
    os.link(source, link)
    with pytest.raises(ValueError, match="also an input"):
        check_outputs([link], [source], overwrite=True)
    with pytest.raises(ValueError, match="both be written"):
        check_outputs([tmp_path / "a.wav", tmp_path / "a.wav"], [], overwrite=True)
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        check_outputs([tmp_path / "dir.wav"], [], overwrite=True)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_outputs([not_a_folder / "out.wav"], [])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc, a folder nobody can create files in")
def test_an_unwritable_folder_is_reported_before_the_work():
    with pytest.raises(ValueError, match="cannot write into /proc"):
        check_outputs([Path("/proc/out.wav")], [])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_reported_before_the_work(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="cannot write into"):
            check_outputs([folder / "out.wav"], [])
    finally:
        folder.chmod(0o755)


# ------------------------------------------------------------------------------------------------
# the generate command


def test_spectrogram_onto_the_audio_output_is_refused(tiny_pipe_dir, tmp_path, capsys):  # noqa: F811
    image = tmp_path / "dog.png"
    tiny_image(0).save(image)
    out = tmp_path / "dog.wav"
    assert _generate(tiny_pipe_dir, image, "--out", out, "--spectrogram", out, "--seconds", TINY_SECONDS) == 2
    assert "both be written" in capsys.readouterr().err
    assert not out.exists()


def test_muxing_never_replaces_the_input_video_even_with_overwrite(tiny_pipe_dir, tmp_path, capsys):  # noqa: F811
    video = make_test_video(tmp_path / "clip.mp4", seconds=0.1, fps=10)
    before = video.read_bytes()
    code = _generate(tiny_pipe_dir, video, "--out", tmp_path / "clip.wav", "--mux-video", "--overwrite")
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "also an input" in err
    assert video.read_bytes() == before and not (tmp_path / "clip.wav").exists()


def test_existing_output_is_refused_before_loading_the_model(tmp_path, capsys):
    image = tmp_path / "dog.png"
    tiny_image(0).save(image)
    (tmp_path / "dog.wav").write_bytes(b"keep me")
    # The model folder does not exist: the output check must come first, so this is the error seen.
    assert _generate(tmp_path / "no_model", image, "--out", tmp_path / "dog.wav") == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "dog.wav").read_bytes() == b"keep me"


# ------------------------------------------------------------------------------------------------
# assemble and convert


def test_assemble_never_deletes_an_existing_folder_unasked(tmp_path):
    dataset = tmp_path / "prepared"
    dataset.mkdir()
    (dataset / "manifest.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(FileExistsError, match="already exists"):
        assemble_pipeline(tmp_path / "v", tmp_path / "l", tmp_path / "u", dataset, clip="x")
    with pytest.raises(ValueError, match="not a folder this command wrote"):
        assemble_pipeline(tmp_path / "v", tmp_path / "l", tmp_path / "u", dataset, clip="x", overwrite=True)
    run = dataset / "runs" / "vqvae"
    run.mkdir(parents=True)
    (dataset / "model_index.json").write_text("{}")
    with pytest.raises(ValueError, match="an input of this command"):
        assemble_pipeline(run, run, run, dataset, clip="x", overwrite=True)
    assert (dataset / "manifest.jsonl").read_text() == '{"id": "a"}\n'


def test_converter_overwrite_never_deletes_the_folder_of_its_own_input(tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    checkpoint = folder / "vqvae.pth.tar"
    checkpoint.write_bytes(b"original weights")
    result = subprocess.run(
        [sys.executable, "training_scripts/convert_original_checkpoint.py", "--checkpoint", str(checkpoint),
         "--out", str(folder), "--overwrite"],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "an input of this command" in result.stderr
    assert checkpoint.read_bytes() == b"original weights"


# ------------------------------------------------------------------------------------------------
# run folders


def test_a_run_folder_is_locked_by_its_run(tmp_path):
    run = tmp_path / "run"
    with run_lock(run) as lock:
        owner = json.loads(lock.read_text())
        assert owner["pid"] == os.getpid()
        with pytest.raises(ValueError, match="in use by another run"):
            with run_lock(run):
                pass
        assert lock.exists()  # the refused run did not remove the owner's lock
    assert not (run / LOCK_FILE).exists()
    with run_lock(run):  # free again
        pass


def test_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (run / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "then"}))
    with run_lock(run) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in run.iterdir()) == []


def test_two_training_processes_on_one_run_folder(tmp_path):
    """The second process stops at once with a one-line error; the first one's lock is untouched."""
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom im2wav.training.run_lock import run_lock\n"
         f"with run_lock({str(run)!r}):\n    print('locked', flush=True)\n    time.sleep(30)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = subprocess.run(
            [sys.executable, "-c",
             "import sys\nfrom im2wav.errors import run_main\nfrom im2wav.training.run_lock import run_lock\n"
             "def main(argv):\n    with run_lock(argv[0]):\n        return 0\n"
             f"sys.exit(run_main(main, [{str(run)!r}], prog='train_vqvae.py'))"],
            capture_output=True, text=True, cwd=REPO_ROOT,
        )
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("train_vqvae.py: error:"), lines
        assert f"process {holder.pid}" in second.stderr
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()

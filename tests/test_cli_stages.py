"""Every `im2wav` subcommand end to end on tiny data, through the one command line (`im2wav.cli.main`).

make-synthetic -> prepare -> train-vqvae -> encode-tokens -> train-prior (low, up) -> assemble ->
generate -> evaluate, each in this process; build-demo (which runs the stages as `python -m im2wav`
subprocesses) and convert (which needs the original-format fixtures of ../shared) on their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
from tiny_components import tiny_stage_args

from im2wav.cli import COMMANDS, main
from im2wav.data.shards import read_manifest

REPO = Path(__file__).resolve().parents[1]
VQ = tiny_stage_args("vqvae")
LOW = tiny_stage_args("low", min_duration=0.5)
UP = tiny_stage_args("up")
QUIET = ["--no-progress", "--log-every", "1", "--warmup-steps", "1", "--save-every", "1000", "--batch-size", "2",
         "--max-steps", "2"]


def im2wav(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def stages(tmp_path_factory) -> dict[str, Path]:
    """Run the stages once; each later test looks at what one of them wrote."""
    from im2wav.commands.build_demo import make_offline_clip

    root = tmp_path_factory.mktemp("stages")
    paths = {name: root / name for name in ("world", "clip", "data", "vqvae", "tokens", "low", "up", "pipeline")}
    assert im2wav("make-synthetic", "--out", paths["world"], "--num-classes", 2, "--clips-per-class", 2,
                  "--heldout-per-class", 1, "--duration", 1.0, "--size", 32, "--fps", 10) == 0
    make_offline_clip(paths["clip"])
    assert im2wav("prepare", "--input", paths["world"] / "videos", "--out", paths["data"], "--clip-model",
                  paths["clip"], "--num-workers", 0, "--fps", 10, "--no-progress") == 0
    assert im2wav("train-vqvae", "--dataset", paths["data"], "--run-dir", paths["vqvae"], *VQ, "--window-length",
                  2048, *QUIET) == 0
    assert im2wav("encode-tokens", "--dataset", paths["data"], "--vqvae", paths["vqvae"], "--out", paths["tokens"],
                  "--device", "cpu", "--no-progress") == 0
    assert im2wav("train-prior", "--level", "low", "--dataset", paths["data"], "--tokens", paths["tokens"],
                  "--run-dir", paths["low"], *LOW, *QUIET) == 0
    assert im2wav("train-prior", "--level", "up", "--dataset", paths["data"], "--tokens", paths["tokens"],
                  "--run-dir", paths["up"], *UP, *QUIET) == 0
    assert im2wav("assemble", "--vqvae", paths["vqvae"], "--low", paths["low"], "--up", paths["up"], "--dataset",
                  paths["data"], "--out", paths["pipeline"]) == 0
    return paths


def test_the_stages_chain_into_a_pipeline_that_generates(stages, tmp_path, capsys):
    assert len(list((stages["world"] / "videos").glob("*.mp4"))) == 4
    assert len(read_manifest(stages["data"])) == 4  # every clip prepared
    for run in ("vqvae", "low", "up"):
        assert (stages[run] / "config.json").is_file(), run
    assert (stages["pipeline"] / "model_index.json").is_file()
    image = next((stages["world"] / "heldout").glob("*.png"))
    out = tmp_path / "out.wav"
    capsys.readouterr()
    assert im2wav("generate", image, "--model", stages["pipeline"], "--out", out, "--seconds", 0.6, "--seed", 0,
                  "--device", "cpu") == 0
    audio, rate = soundfile.read(out)
    assert rate == 16000 and audio.shape == (round(0.6 * 16000),)


def test_evaluate_subcommand_forwards_to_the_evaluation_command(capsys):
    """`im2wav evaluate` is `im2wav.evaluation.command` (tested end to end in test_evaluation_protocol.py)."""
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "imagehear" in text and "vggsound" in text


def test_convert_subcommand_writes_a_model_folder(parity_dir, tmp_path):
    from im2wav import HierarchicalVQVAE

    out = tmp_path / "vqvae"
    assert im2wav("convert", "--checkpoint", parity_dir / "vqvae_tiny.pth.tar", "--out", out) == 0
    assert isinstance(HierarchicalVQVAE.from_pretrained(out), HierarchicalVQVAE)


def test_user_errors_of_every_subcommand_are_one_line_with_status_2(stages, tmp_path, capsys):
    missing = tmp_path / "missing"
    cases = {
        "convert": ["--checkpoint", missing, "--out", tmp_path / "c"],
        "prepare": ["--input", missing, "--out", tmp_path / "p", "--clip-model", stages["clip"], "--num-workers", 0],
        "train-vqvae": ["--dataset", missing, "--run-dir", tmp_path / "v", *VQ],
        "encode-tokens": ["--dataset", stages["data"], "--vqvae", missing, "--out", tmp_path / "t"],
        "train-prior": ["--level", "low", "--dataset", stages["data"], "--tokens", missing, "--run-dir", tmp_path / "l"],
        "assemble": ["--vqvae", missing, "--low", stages["low"], "--up", stages["up"], "--dataset", stages["data"],
                     "--out", tmp_path / "a"],
        "build-demo": ["--videos", missing, "--out", tmp_path / "d"],
        "generate": [missing, "--model", stages["pipeline"], "--out", tmp_path / "g.wav"],
        "make-synthetic": ["--out", tmp_path / "w", "--num-classes", 99],
    }
    assert set(cases) | {"evaluate"} == set(COMMANDS)
    for name, argv in cases.items():
        capsys.readouterr()
        assert im2wav(name, *argv) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("im2wav: error: ") and err.count("\n") == 1, (name, err)
        assert "Traceback" not in err, name


def test_top_level_help_lists_every_subcommand_with_examples(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in COMMANDS) and "examples:" in text
    for name in set(COMMANDS) - {"evaluate"}:  # evaluate's parser is im2wav.evaluation.command's own
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert f"usage: im2wav {name}" in capsys.readouterr().out, name


def test_an_unknown_subcommand_and_a_bug_are_not_disguised(monkeypatch, capsys):
    with pytest.raises(SystemExit) as done:
        main(["bogus"])
    assert done.value.code == 2 and "invalid choice" in capsys.readouterr().err
    # a ValueError raised inside a dependency (not by im2wav's own checks) keeps its traceback
    from im2wav.commands import prepare

    def broken(*args, **kwargs):
        import numpy as np

        np.zeros(3).reshape(2, 2)

    monkeypatch.setattr("im2wav.data.preparation.prepare_dataset", broken)
    from im2wav.cli import InternalError

    with pytest.raises(InternalError, match="internal error in im2wav prepare"):
        main(["prepare", "--input", ".", "--out", "x", "--clip-model", "y"])
    with pytest.raises(ValueError, match="reshape"):  # the scripts' and tests' direct call is not wrapped
        prepare.main(["--input", ".", "--out", "x", "--clip-model", "y"])


def test_training_scripts_are_thin_wrappers_of_the_subcommands():
    for script in sorted((REPO / "training_scripts").glob("*.py")):
        text = script.read_text()
        assert len(text.splitlines()) < 30 and "def " not in text, script.name
        assert "run_command(" in text or "from im2wav.evaluation.command import main" in text, script.name


def test_side_by_side_stages_stop_together_when_one_fails(monkeypatch, tmp_path):
    """build-demo trains LOW and UP at once; a failing stage ends the build at once and stops the other."""
    import time

    from im2wav.commands import build_demo
    from im2wav.errors import UserError

    marker = tmp_path / "finished"
    programs = {"slow": f"import time, pathlib; time.sleep(30); pathlib.Path({str(marker)!r}).touch()",
                "broken": "raise SystemExit(3)", "quick": "pass"}
    monkeypatch.setattr(build_demo, "_stage", lambda command, argv, module: ([sys.executable, "-c", programs[command]],
                                                                             dict(os.environ)))
    monkeypatch.setattr(build_demo.os, "cpu_count", lambda: 2)
    started = time.monotonic()
    with pytest.raises(UserError, match="broken failed .exit status 3"):
        build_demo.run_stages_side_by_side(("slow", []), ("broken", []))
    assert time.monotonic() - started < 20 and not marker.exists()  # the slow stage was stopped, not waited for
    build_demo.run_stages_side_by_side(("quick", []), ("quick", []))  # both finish: no error


@pytest.mark.slow
def test_build_demo_trains_a_model_on_any_video_folder_in_one_command(tmp_path):
    """`im2wav build-demo --videos DIR` on a folder of plain clips (not the synthetic world)."""
    from tiny_components import make_test_video

    videos = tmp_path / "my clips"
    videos.mkdir()
    for k in range(3):
        make_test_video(videos / f"clip{k}.mp4", seconds=1.2, fps=10, audio_rate=16000)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "im2wav", "build-demo", "--videos", str(videos), "--out", str(tmp_path / "demo"),
         "--vqvae-steps", "2", "--low-steps", "2", "--up-steps", "2"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = [line for line in done.stdout.splitlines() if line.startswith("+ im2wav ")]
    assert [line.split()[2] for line in printed] == ["prepare", "train-vqvae", "encode-tokens", "train-prior",
                                                     "train-prior", "assemble"]
    assert (tmp_path / "demo" / "model_index.json").is_file() and (tmp_path / "demo" / "README.md").is_file()
    assert json.loads(done.stdout.strip().splitlines()[-1])["pipeline"] == str(tmp_path / "demo")

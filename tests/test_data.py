"""Dataset preparation, shards and training windows (tiny inputs, seconds on a CPU)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from im2wav.data.preparation import prepare_dataset
from im2wav.data.shards import (
    DatasetInfo,
    ShardReader,
    ShardWriter,
    read_manifest,
    to_pcm16,
)
from im2wav.data.sources import find_sources
from im2wav.data.synthetic import (
    class_specs,
    render_frames,
    synthesize_sound,
    write_video,
)
from im2wav.data.windows import (
    AudioWindows,
    TokenInfo,
    TokenWindows,
    frames_for_window,
    split_items,
    window_frame_indices,
)

SR = 16000


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    from im2wav.clip_encoder import tiny_clip_vision

    folder = tmp_path_factory.mktemp("clip")
    model, processor = tiny_clip_vision(seed=0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def write_clip(path, class_index: int, seconds: float = 0.5, seed: int = 0, codec: str = "h264"):
    spec = class_specs(3)[class_index]
    rng = np.random.default_rng([seed, class_index])
    frames = render_frames(spec, int(seconds * 30), 32, rng)
    audio = synthesize_sound(spec.sound, int(seconds * SR), SR, rng)
    write_video(path, frames, audio, fps=30, sample_rate=SR, video_codec=codec)
    return audio


# ------------------------------------------------------------------------------------------------
# window alignment (the original FilesAudioDataset.get_video_chunk)


def test_frames_per_window_follow_the_original_dataset():
    # 4096 samples at 16 kHz and 30 fps: int(4096 * 30 / 16000) + 1 = 8 frames (sample.py would give 7)
    assert frames_for_window(48000, 4096, SR, 30.0) == (90, 8)
    assert frames_for_window(0, 65536, SR, 30.0) == (0, 123)
    # start = int(offset / sr * fps): a window starting mid-frame starts at the frame shown then
    assert frames_for_window(16000 + 500, 4096, SR, 30.0) == (30, 8)


def test_window_frames_repeat_the_last_frame_past_the_end_and_for_still_images():
    idx = window_frame_indices(num_frames=92, offset=48000, window_length=4096, sample_rate=SR)
    assert idx.tolist() == [90, 91, 91, 91, 91, 91, 91, 91]
    assert window_frame_indices(1, 48000, 4096, SR).tolist() == [0] * 8


def test_token_windows_match_the_parity_fixture_layout(tmp_path, parity_dir):
    """The original dataset's y for (total 160000, offsets 48000 / 16000, window 4096) at 30 fps."""
    from safetensors.torch import load_file

    y = load_file(str(parity_dir / "low_tiny_io.safetensors"))["in.y_video"]  # (2, F=8, 515)
    root, tokens = tmp_path / "data", tmp_path / "tokens"
    clip = torch.nn.functional.normalize(torch.randn(300, 512), dim=-1)
    clip[:, 0] = torch.arange(300).float()  # tag every frame with its index
    writer = ShardWriter(root)
    writer.add("clip0", {"audio": torch.zeros(160000, dtype=torch.int16), "clip": clip},
               {"num_samples": 160000, "num_frames": 300})
    writer.flush()
    DatasetInfo(SR, 30.0, "tiny", 512).save(root)
    twriter = ShardWriter(tokens)
    twriter.add("clip0", {"level0": torch.arange(20000, dtype=torch.int16) % 64,
                          "level1": torch.arange(5000, dtype=torch.int16) % 64}, {})
    twriter.flush()
    TokenInfo([8, 32], 64, "test", {}, str(root)).save(tokens)
    windows = TokenWindows(root, tokens, level=1, num_tokens=128)
    batch = windows.batch([(0, 48000), (0, 16000)])
    assert batch["frame_embeds"].shape == (2, y.shape[1], 512)
    assert torch.equal(batch["timing"], y[:, 0, :3])
    assert batch["frame_embeds"][0, :, 0].tolist() == list(range(90, 98))  # frames start .. end inclusive
    assert batch["frame_embeds"][1, :, 0].tolist() == list(range(30, 38))
    assert batch["tokens"][0].tolist() == [(48000 // 32 + i) % 64 for i in range(128)]
    up = TokenWindows(root, tokens, level=0, num_tokens=512).batch([(0, 48000)])
    assert up["lower_tokens"].shape == (1, 128)
    assert torch.equal(up["lower_tokens"], batch["tokens"][:1])  # UP reads the LOW tokens of its span
    assert up["tokens"][0, 0].item() == (48000 // 8) % 64


def test_random_windows_are_reproducible_and_aligned(tmp_path):
    root = tmp_path / "data"
    writer = ShardWriter(root)
    for i, n in enumerate((5000, 9000, 3000)):  # the 3000-sample item is shorter than a window
        writer.add(f"item{i}", {"audio": to_pcm16(np.full(n, 0.1 * i)), "clip": torch.zeros(3, 512)},
                   {"num_samples": n, "num_frames": 3})
    writer.flush()
    DatasetInfo(SR, 30.0, "tiny", 512).save(root)
    windows = AudioWindows(root, 4096)
    assert len(windows) == 2
    a = windows.draw(np.random.default_rng(3), 16, multiple=32)
    assert a == windows.draw(np.random.default_rng(3), 16, multiple=32)
    assert all(o % 32 == 0 and o + 4096 <= windows.rows[i]["num_samples"] for i, o in a)
    batch = windows.random_batch(np.random.default_rng(0), 4)
    assert batch["audio"].shape == (4, 4096) and batch["audio"].dtype == torch.float32


def test_split_uses_the_manifest_column_else_a_stable_hash():
    rows = [{"id": f"a{i}"} for i in range(200)]
    val = split_items(rows, "val", 0.2)
    assert 20 < len(val) < 60 and val == split_items(rows, "val", 0.2)
    assert len(val) + len(split_items(rows, "train", 0.2)) == 200
    marked = [{"id": "x", "split": "train"}, {"id": "y", "split": "test"}]
    assert [r["id"] for r in split_items(marked, "val")] == ["y"]


# ------------------------------------------------------------------------------------------------
# shards


def test_shards_round_trip_and_a_torn_manifest_line_is_ignored(tmp_path):
    writer = ShardWriter(tmp_path, items_per_shard=2)
    audio = np.sin(np.linspace(0, 100, 1000)) * 0.5
    for i in range(3):
        writer.add(f"dir/item{i}", {"audio": to_pcm16(audio), "clip": torch.full((4, 512), float(i))},
                   {"num_samples": 1000, "num_frames": 4})
    writer.flush()
    rows = read_manifest(tmp_path)
    assert [r["id"] for r in rows] == ["dir/item0", "dir/item1", "dir/item2"]
    assert len({r["shard"] for r in rows}) == 2
    reader = ShardReader(tmp_path)
    got = reader.get(rows[2]["shard"], "dir/item2/audio", 100, 200).float() / 32767
    assert np.abs(got.numpy() - audio[100:200]).max() < 1 / 32767
    assert torch.equal(reader.get(rows[1]["shard"], "dir/item1/clip"), torch.full((4, 512), 1.0))
    with open(tmp_path / "manifest.jsonl", "a") as handle:
        handle.write('{"id": "torn", "num_sa')  # a crash in the middle of an append
    assert len(read_manifest(tmp_path)) == 3
    assert ShardWriter(tmp_path)._next_shard == 2  # shard numbers are never reused


# ------------------------------------------------------------------------------------------------
# preparation


def test_prepare_videos_pairs_and_bad_files(tmp_path, tiny_clip_dir):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    audio = write_clip(src / "a.mp4", 0)
    write_clip(src / "sub" / "b.mkv", 1, codec="mpeg4")
    Image.new("RGB", (40, 30), (200, 10, 10)).save(src / "pair.png")
    sf.write(src / "pair.wav", synthesize_sound("chirp", 8000, SR, np.random.default_rng(0)), SR)
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    Image.new("RGB", (8, 8)).save(src / "lonely.jpg")
    out = tmp_path / "prepared"
    report = prepare_dataset(src, out, str(tiny_clip_dir), num_workers=0, progress=False)
    assert (report.found, report.prepared) == (4, 3)
    reasons = {s["id"]: s["reason"] for s in report.skipped}
    assert set(reasons) == {"broken", "lonely"}
    assert "corrupt" in reasons["broken"] or "cannot" in reasons["broken"]
    assert "without a sound" in reasons["lonely"]
    rows = {r["id"]: r for r in read_manifest(out)}
    assert set(rows) == {"a", "sub/b", "pair"}
    assert rows["pair"]["still"] and rows["pair"]["num_frames"] == 1
    assert rows["a"]["num_frames"] == 15 and not rows["a"]["still"]
    assert abs(rows["a"]["num_samples"] - len(audio)) <= 2048  # AAC pads at most a frame or two
    clip = ShardReader(out).get(rows["a"]["shard"], "a/clip")
    assert clip.shape == (15, 512) and torch.allclose(clip.norm(dim=-1), torch.ones(15), atol=1e-5)
    assert DatasetInfo.load(out).clip_model == str(tiny_clip_dir)
    assert len((out / "skipped.jsonl").read_text().splitlines()) == 2
    # resume: nothing is redone
    again = prepare_dataset(src, out, str(tiny_clip_dir), num_workers=0, progress=False)
    assert (again.already_done, again.prepared) == (3, 0)
    assert len(read_manifest(out)) == 3


def test_prepare_with_worker_processes(tmp_path, tiny_clip_dir):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        write_clip(src / f"v{i}.mp4", i, seconds=0.3)
    report = prepare_dataset(src, tmp_path / "out", str(tiny_clip_dir), num_workers=2, progress=False)
    assert report.prepared == 2 and not report.skipped
    # decoding in worker processes gives exactly what decoding in this process gives
    prepare_dataset(src, tmp_path / "serial", str(tiny_clip_dir), num_workers=0, progress=False)
    pooled = {r["id"]: r for r in read_manifest(tmp_path / "out")}  # in the order the workers finished
    serial = {r["id"]: r for r in read_manifest(tmp_path / "serial")}
    assert sorted(pooled) == sorted(serial) == ["v0", "v1"]
    for item_id, row in serial.items():
        for name in ("audio", "clip"):
            assert torch.equal(ShardReader(tmp_path / "out").get(pooled[item_id]["shard"], f"{item_id}/{name}"),
                               ShardReader(tmp_path / "serial").get(row["shard"], f"{item_id}/{name}"))


def test_prepare_from_a_vggsound_csv(tmp_path, tiny_clip_dir):
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "abcdefghijk_000030.mp4", 0, seconds=0.3)
    write_clip(src / "zyxwvutsrqp_12000_22000.mp4", 1, seconds=0.3)
    write_clip(src / "notlisted.mp4", 2, seconds=0.3)
    with open(tmp_path / "vgg.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("abcdefghijk", 30, "dog barking", "train"),
                                      ("zyxwvutsrqp", 12, "rain", "test"), ("missing0000", 5, "cat", "train")])
    report = prepare_dataset(src, tmp_path / "out", str(tiny_clip_dir), csv_path=tmp_path / "vgg.csv",
                             num_workers=0, progress=False)
    rows = {r["id"]: r for r in read_manifest(tmp_path / "out")}
    assert {k: (r["label"], r["split"]) for k, r in rows.items()} == {
        "abcdefghijk_000030": ("dog barking", "train"), "zyxwvutsrqp_12000_22000": ("rain", "test")}
    assert [s["id"] for s in report.skipped] == ["missing0000"]


def test_no_usable_files_is_a_clear_error(tmp_path, tiny_clip_dir):
    src = tmp_path / "in"
    src.mkdir()
    (src / "notes.txt").write_text("hello")
    Image.new("RGB", (8, 8)).save(src / "photo.jpg")
    with pytest.raises(ValueError, match="no usable files"):
        prepare_dataset(src, tmp_path / "out", str(tiny_clip_dir), num_workers=0, progress=False)
    (src / "bad.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="no usable files.*all 1 inputs failed"):
        prepare_dataset(src, tmp_path / "out", str(tiny_clip_dir), num_workers=0, progress=False)
    with pytest.raises(FileNotFoundError, match="input folder not found"):
        prepare_dataset(tmp_path / "nope", tmp_path / "out", str(tiny_clip_dir), progress=False)


def test_missing_clip_checkpoint_fails_before_any_decoding(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "a.mp4", 0, seconds=0.3)
    with pytest.raises(ValueError, match="CLIP"):
        prepare_dataset(src, tmp_path / "out", str(tmp_path / "no_such_clip"), num_workers=0, progress=False)
    assert not (tmp_path / "out").exists()  # nothing written


def test_resuming_with_other_settings_is_refused(tmp_path, tiny_clip_dir):
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "a.mp4", 0, seconds=0.3)
    prepare_dataset(src, tmp_path / "out", str(tiny_clip_dir), num_workers=0, progress=False)
    with pytest.raises(ValueError, match="same settings or write to a new folder"):
        prepare_dataset(src, tmp_path / "out", str(tiny_clip_dir), fps=10.0, num_workers=0, progress=False)


def test_find_sources_pairs_by_stem(tmp_path):
    (tmp_path / "x").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "x" / "dog.jpg")
    sf.write(tmp_path / "x" / "dog.flac", np.zeros(100), SR)
    sf.write(tmp_path / "x" / "cat.wav", np.zeros(100), SR)
    items, skipped = find_sources(tmp_path)
    assert [(i.id, bool(i.image), bool(i.audio)) for i in items] == [("x/dog", True, True)]
    assert [s["id"] for s in skipped] == ["x/cat"]


def test_dataset_info_is_required(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare_dataset.py"):
        AudioWindows(tmp_path, 4096)
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"id": "a", "num_samples": 10, "num_frames": 1}) + "\n")
    DatasetInfo(SR, 30.0, "x", 512).save(tmp_path)
    with pytest.raises(ValueError, match="at least 4096 samples"):
        AudioWindows(tmp_path, 4096)

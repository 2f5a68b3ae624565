"""Atomic outputs: complete under the final name, or nothing at all (old content kept)."""

from __future__ import annotations

import os

import pytest

from im2wav.atomic_files import atomic_folder, atomic_output, atomic_write_text


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.wav"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(ValueError, match="does not exist"):
        with atomic_output(tmp_path / "no" / "such" / "dir.wav"):
            pass


def test_atomic_folder_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_folder(target) as tmp:
            (tmp / "half.bin").write_bytes(b"half")
            raise RuntimeError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in target.iterdir()) == ["old.bin"]
    with atomic_folder(target) as tmp:
        (tmp / "new.bin").write_bytes(b"new")
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic_folder(target, overwrite=False):
            pass
    atomic_write_text(tmp_path / "note.txt", "first")
    atomic_write_text(tmp_path / "note.txt", "second")
    assert (tmp_path / "note.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "note.txt"]


def test_outputs_get_the_usual_permissions_not_private_temp_ones(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "a.wav") as tmp:
            tmp.write_bytes(b"x")
        with atomic_folder(tmp_path / "model") as tmp:
            (tmp / "w.bin").write_bytes(b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.wav").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755

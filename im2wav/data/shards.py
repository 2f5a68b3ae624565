"""The prepared-dataset format: safetensors shards plus a JSONL manifest.

A prepared dataset is a folder::

    manifest.jsonl          one JSON object per item, appended after its shard is safely on disk
    shards/shard_00000.safetensors   per item: "<id>/audio" int16 [S], "<id>/clip" float32 [F, 512]
    info.json               sample rate, fps, CLIP checkpoint and embedding width (fixed per folder)
    skipped.jsonl           files that could not be used, with the reason (one line per attempt)

Audio is 16-bit PCM at `info.json`'s sample rate (mono). `clip` holds one L2-normalised CLIP image
embedding per video frame at `fps`; a still image paired with a sound has F = 1 (`"still": true` in
the manifest). Token shards written by `training_scripts/encode_tokens.py` use the same manifest ids.

Writes are crash-safe: a shard is written to a temporary file and renamed, and only then are its
items appended to the manifest, so a killed preparation never lists an item whose data is missing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic_files import atomic_output, atomic_write_text

__all__ = [
    "DatasetInfo",
    "ShardReader",
    "ShardWriter",
    "append_jsonl",
    "read_manifest",
    "to_pcm16",
]

MANIFEST = "manifest.jsonl"
INFO = "info.json"
SKIPPED = "skipped.jsonl"
SHARD_DIR = "shards"


def append_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    """Append rows to a JSONL file and fsync, so a finished append survives a crash."""
    if not rows:
        return
    with open(path, "a") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
        handle.flush()
        os.fsync(handle.fileno())


def read_manifest(root: str | os.PathLike) -> list[dict]:
    """The items of a prepared dataset, in manifest order. A torn last line (a crash mid-append) is ignored.

    Raises:
        FileNotFoundError: `root` has no manifest (it is not a prepared dataset).
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{root} is not a prepared dataset (no {MANIFEST}); run training_scripts/prepare_dataset.py first")
    rows = []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # only the last line can be torn, and its shard is then an unlisted orphan
    return rows


def to_pcm16(audio: np.ndarray) -> torch.Tensor:
    """float audio [S] in [-1, 1] -> int16 [S] (clipped), the storage format of prepared audio."""
    pcm = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    return torch.from_numpy(pcm)


@dataclass
class DatasetInfo:
    """Fixed properties of a prepared dataset (`info.json`).

    Args:
        sample_rate: audio sample rate in Hz.
        fps: CLIP frames per second of video.
        clip_model: the CLIP checkpoint (local folder or hub id) the embeddings came from.
        embed_dim: CLIP embedding width.
    """

    sample_rate: int
    fps: float
    clip_model: str
    embed_dim: int
    format_version: int = 1

    def save(self, root: str | os.PathLike) -> None:
        atomic_write_text(Path(root) / INFO, json.dumps(self.__dict__, indent=2))

    @classmethod
    def load(cls, root: str | os.PathLike) -> DatasetInfo:
        path = Path(root) / INFO
        if not path.is_file():
            raise FileNotFoundError(
                f"{root} is not a prepared dataset (no {INFO}); run training_scripts/prepare_dataset.py first")
        return cls(**json.loads(path.read_text()))


@dataclass
class ShardWriter:
    """Buffers prepared items and writes them shard by shard.

    Args:
        root: the dataset folder.
        items_per_shard: items per shard file.
    """

    root: Path
    items_per_shard: int = 64
    _tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    _rows: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        (self.root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        existing = [int(p.stem.split("_")[1]) for p in (self.root / SHARD_DIR).glob("shard_*.safetensors")]
        # Never reuse a shard number, not even that of an orphan left by a crash.
        self._next_shard = max(existing, default=-1) + 1

    def add(self, item_id: str, tensors: dict[str, torch.Tensor], row: dict) -> None:
        """Queue one item: its tensors are stored as `<item_id>/<name>`; `row` goes to the manifest."""
        for name, tensor in tensors.items():
            self._tensors[f"{item_id}/{name}"] = tensor.contiguous()
        self._rows.append({"id": item_id, **row})
        if len(self._rows) >= self.items_per_shard:
            self.flush()

    def flush(self) -> None:
        """Write the queued items as one shard, then list them in the manifest."""
        if not self._rows:
            return
        name = f"shard_{self._next_shard:05d}.safetensors"
        with atomic_output(self.root / SHARD_DIR / name) as tmp:
            save_file(self._tensors, str(tmp))
        append_jsonl(self.root / MANIFEST, [{**row, "shard": f"{SHARD_DIR}/{name}"} for row in self._rows])
        self._next_shard += 1
        self._tensors, self._rows = {}, []


class ShardReader:
    """Lazy access to the tensors of shard files (memory-mapped; opened on first use, per process).

    Args:
        root: the dataset (or token) folder that the manifest's `shard` paths are relative to.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._open: dict[str, object] = {}

    def _handle(self, shard: str):
        handle = self._open.get(shard)
        if handle is None:
            path = self.root / shard
            if not path.is_file():
                raise FileNotFoundError(f"shard {path} listed in the manifest is missing; re-run the preparation")
            handle = safe_open(str(path), framework="pt")
            self._open[shard] = handle
        return handle

    def get(self, shard: str, name: str, start: int | None = None, stop: int | None = None) -> torch.Tensor:
        """Tensor `name` of `shard`, or only rows `start:stop` of its first dimension (read lazily)."""
        handle = self._handle(shard)
        if start is None and stop is None:
            return handle.get_tensor(name)
        return handle.get_slice(name)[start:stop]

    def __getstate__(self) -> dict:  # file handles do not cross process boundaries
        return {"root": self.root, "_open": {}}

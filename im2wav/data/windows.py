"""Training windows over a prepared dataset, aligned exactly like the original IM2WAV dataset.

A window is `window_length` samples of one item starting at `offset` samples. Its conditioning is
what the original `FilesAudioDataset.get_video_chunk` builds for `y`:

- the time signal `timing = (total_length, offset, window_length)` in samples, where `total_length`
  is the item's full length;
- the CLIP frames covering the window: `start = int(offset / sr * fps)`,
  `end = int(start + window_length / sr * fps)`, frames `start .. end` inclusive, i.e.
  `int(window_length * fps / sr) + 1` frames (8 for 4096 samples at 16 kHz and 30 fps). The original
  slices `clip[start:end + 1]`, which comes up short at the end of a clip; we repeat the last frame
  instead so every window of a batch has the same F. A still image (F = 1) is repeated to F frames.

The token -> frame mapping (`round(linspace(0, 1, T) * (F - 1))`) happens inside the prior.

Batches are drawn from a `numpy.random.Generator` that the caller owns, so a training run that saves
the generator's state resumes with exactly the same batches.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .shards import DatasetInfo, ShardReader, read_manifest

__all__ = [
    "AudioWindows",
    "TokenInfo",
    "TokenWindows",
    "frames_for_window",
    "split_items",
    "window_frame_indices",
]


def frames_for_window(offset: int, window_length: int, sample_rate: int, fps: float = 30.0) -> tuple[int, int]:
    """First frame index and number of frames covering a window, as the original dataset picks them.

    Args:
        offset: window start in samples.
        window_length: window length in samples.
        sample_rate: audio sample rate in Hz.
        fps: CLIP frames per second.

    Returns:
        `(start, count)` with `count = int(window_length * fps / sample_rate) + 1`.
    """
    start = int(offset / float(sample_rate) * fps)
    end = int(start + window_length / float(sample_rate) * fps)
    return start, end - start + 1


def window_frame_indices(num_frames: int, offset: int, window_length: int, sample_rate: int,
                         fps: float = 30.0) -> np.ndarray:
    """Indices into an item's `num_frames` frames for one window; past the end the last frame repeats.

    A still image (`num_frames == 1`) gives index 0 for every frame of the window.
    """
    start, count = frames_for_window(offset, window_length, sample_rate, fps)
    return np.minimum(np.arange(start, start + count), num_frames - 1)


def _hash_unit(item_id: str) -> float:
    digest = hashlib.sha1(item_id.encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64


def split_items(rows: list[dict], split: str, val_fraction: float = 0.0) -> list[dict]:
    """Items of a split.

    When the manifest has a `split` column (a VGGSound CSV gives one) it decides: `val` takes the rows
    marked `val`/`test`/`valid`, `train` takes the others. Otherwise a fixed hash of the item id puts
    `val_fraction` of the items into `val` (the same items on every run and machine).

    Args:
        rows: manifest rows.
        split: `train`, `val` or `all`.
        val_fraction: validation share when the manifest has no split column.
    """
    if split == "all":
        return list(rows)
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
    held = ("val", "valid", "validation", "test")
    if any(row.get("split") in held for row in rows):
        is_val = [row.get("split") in held for row in rows]
    else:
        is_val = [_hash_unit(row["id"]) < val_fraction for row in rows]
    return [row for row, v in zip(rows, is_val) if v == (split == "val")]


class _Windows:
    """Shared logic: items long enough for a window, sampled in proportion to their length."""

    def __init__(self, rows: list[dict], window_length: int, what: str):
        self.rows = [row for row in rows if row["num_samples"] >= window_length]
        self.window_length = window_length
        if not self.rows:
            raise ValueError(
                f"no {what} item is at least {window_length} samples long ({len(rows)} items before the "
                "length filter); prepare longer clips or train with a shorter window")
        lengths = np.array([row["num_samples"] - window_length + 1 for row in self.rows], dtype=np.float64)
        self._weights = lengths / lengths.sum()

    def __len__(self) -> int:
        return len(self.rows)

    def draw(self, rng: np.random.Generator, batch_size: int, multiple: int = 1) -> list[tuple[int, int]]:
        """`batch_size` random `(item index, offset)` pairs; offsets are multiples of `multiple`."""
        items = rng.choice(len(self.rows), size=batch_size, p=self._weights)
        out = []
        for i in items:
            last = (self.rows[i]["num_samples"] - self.window_length) // multiple
            out.append((int(i), int(rng.integers(0, last + 1)) * multiple))
        return out

    def grid(self, max_windows: int | None = None, multiple: int = 1) -> list[tuple[int, int]]:
        """Deterministic windows (validation): each item cut into consecutive windows, at most `max_windows`."""
        out = []
        for i, row in enumerate(self.rows):
            for offset in range(0, row["num_samples"] - self.window_length + 1, self.window_length):
                out.append((i, offset - offset % multiple))
        if max_windows is not None and len(out) > max_windows:
            keep = np.linspace(0, len(out) - 1, max_windows).round().astype(int)
            out = [out[k] for k in keep]
        return out


class AudioWindows(_Windows):
    """Raw audio windows of a prepared dataset (VQ-VAE training).

    Args:
        root: prepared dataset folder.
        window_length: samples per window.
        split: `train`, `val` or `all` (see `split_items`).
        val_fraction: validation share when the manifest has no split column.
    """

    def __init__(self, root: str | os.PathLike, window_length: int, split: str = "all", val_fraction: float = 0.0):
        self.root = Path(root)
        self.info = DatasetInfo.load(root)
        self.reader = ShardReader(root)
        super().__init__(split_items(read_manifest(root), split, val_fraction), window_length, f"{split}")

    def audio(self, index: int, offset: int) -> torch.Tensor:
        """float32 [window_length] in [-1, 1]."""
        row = self.rows[index]
        pcm = self.reader.get(row["shard"], f"{row['id']}/audio", offset, offset + self.window_length)
        return pcm.float() / 32767.0

    def batch(self, windows: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
        """`{"audio": [B, S]}` for `(item index, offset)` pairs."""
        return {"audio": torch.stack([self.audio(i, o) for i, o in windows])}  # (B, S)

    def random_batch(self, rng: np.random.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self.batch(self.draw(rng, batch_size))


class TokenInfo:
    """`tokens_info.json` of a token folder written by `encode_tokens.py`: hops, codebook size, VQ-VAE."""

    FILE = "tokens_info.json"

    def __init__(self, hop_lengths: list[int], codebook_size: int, vqvae: str, vqvae_config: dict,
                 dataset: str):
        self.hop_lengths = list(hop_lengths)
        self.codebook_size = codebook_size
        self.vqvae = vqvae
        self.vqvae_config = vqvae_config
        self.dataset = dataset

    def save(self, folder: str | os.PathLike) -> None:
        from ..atomic_files import atomic_write_text

        atomic_write_text(Path(folder) / self.FILE, json.dumps(self.__dict__, indent=2))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TokenInfo:
        path = Path(folder) / cls.FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} holds no precomputed tokens ({cls.FILE} missing); run "
                "training_scripts/encode_tokens.py --dataset <prepared> --vqvae <vqvae> --out <folder>")
        return cls(**json.loads(path.read_text()))


class TokenWindows(_Windows):
    """Windows of precomputed VQ-VAE tokens plus their conditioning (LOW and UP prior training).

    LOW (`level=1`): `tokens` [B, T] of level 1, `timing` [B, 3], `frame_embeds` [B, F, D].
    UP (`level=0`): additionally `lower_tokens` [B, T // r] of level 1 for the same span, r = hop ratio.

    Offsets are multiples of the top level's hop, so every level's tokens start exactly at the window.

    Args:
        dataset_root: prepared dataset folder (CLIP frames, lengths).
        tokens_root: token folder from `encode_tokens.py` (its manifest has the same ids).
        level: 1 for LOW, 0 for UP.
        num_tokens: tokens per window (the prior's n_ctx).
        split: `train`, `val` or `all`.
        val_fraction: validation share when the manifest has no split column.
    """

    def __init__(self, dataset_root: str | os.PathLike, tokens_root: str | os.PathLike, level: int,
                 num_tokens: int, split: str = "all", val_fraction: float = 0.0):
        self.info = DatasetInfo.load(dataset_root)
        self.token_info = TokenInfo.load(tokens_root)
        hops = self.token_info.hop_lengths
        if not 0 <= level < len(hops):
            raise ValueError(f"level must be in [0, {len(hops) - 1}] for these tokens, got {level}")
        self.level, self.num_tokens = level, num_tokens
        self.hop = hops[level]
        self.top_hop = hops[-1]
        window_length = num_tokens * self.hop
        if window_length % self.top_hop:
            raise ValueError(f"a window of {num_tokens} level-{level} tokens ({window_length} samples) is not a "
                             f"whole number of level-{len(hops) - 1} tokens (hop {self.top_hop})")
        self.data = ShardReader(dataset_root)
        self.tokens = ShardReader(tokens_root)
        token_rows = {row["id"]: row for row in read_manifest(tokens_root)}
        rows = split_items(read_manifest(dataset_root), split, val_fraction)
        missing = [row["id"] for row in rows if row["id"] not in token_rows]
        if missing:
            raise ValueError(f"{len(missing)} items of {dataset_root} have no tokens in {tokens_root} (first: "
                             f"{missing[0]!r}); re-run encode_tokens.py, it skips items already encoded")
        rows = [{**row, "token_shard": token_rows[row["id"]]["shard"]} for row in rows]
        super().__init__(rows, window_length, split)

    def window(self, index: int, offset: int) -> dict[str, torch.Tensor]:
        row = self.rows[index]
        start = offset // self.hop
        out = {
            "tokens": self.tokens.get(row["token_shard"], f"{row['id']}/level{self.level}",
                                      start, start + self.num_tokens).long(),
            "timing": torch.tensor([row["num_samples"], offset, self.window_length], dtype=torch.float32),
        }
        if self.level + 1 < len(self.token_info.hop_lengths):
            upper = self.level + 1
            ratio = self.token_info.hop_lengths[upper] // self.hop
            lo = offset // self.token_info.hop_lengths[upper]
            out["lower_tokens"] = self.tokens.get(row["token_shard"], f"{row['id']}/level{upper}",
                                                  lo, lo + self.num_tokens // ratio).long()
        idx = window_frame_indices(row["num_frames"], offset, self.window_length, self.info.sample_rate,
                                   self.info.fps)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        frames = self.data.get(row["shard"], f"{row['id']}/clip", lo, hi)  # [hi - lo, D]
        out["frame_embeds"] = frames[torch.from_numpy(idx - lo)].float()  # [F, D]
        return out

    def batch(self, windows: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
        parts = [self.window(i, o) for i, o in windows]
        # tokens (B, T), timing (B, 3), frame_embeds (B, F, D), lower_tokens (B, T // r)
        return {key: torch.stack([p[key] for p in parts]) for key in parts[0]}

    def random_batch(self, rng: np.random.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        return self.batch(self.draw(rng, batch_size, multiple=self.top_hop))

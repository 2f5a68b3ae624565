"""Precomputing the VQ-VAE tokens of a prepared dataset, for prior training.

The priors train on token windows; encoding the audio once instead of at every step makes prior
training several times faster. `encode_dataset_tokens` writes a token folder::

    tokens_info.json            hop per level, codebook size, the VQ-VAE used (its config)
    manifest.jsonl              one row per item (same ids as the dataset), appended per shard
    shards/shard_00000.safetensors   "<id>/level0" [S // hop_0], "<id>/level1" [S // hop_1], ...

Each clip is cut to a whole number of top-level tokens and encoded whole (in chunks of
`chunk_seconds` for long clips). Resumable: items already in the manifest are skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .shards import INFO, DatasetInfo, ShardReader, ShardWriter, read_manifest
from .windows import TokenInfo

__all__ = ["encode_dataset_tokens"]


def _same(a, b) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


@torch.no_grad()
def encode_dataset_tokens(
    dataset_root: str | os.PathLike,
    vqvae,
    out_dir: str | os.PathLike,
    *,
    vqvae_source: str = "",
    batch_size: int = 8,
    chunk_seconds: float = 30.0,
    items_per_shard: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> int:
    """Encode every item of a prepared dataset with `vqvae`; returns the number of items encoded now.

    Args:
        dataset_root: prepared dataset folder.
        vqvae: a `HierarchicalVQVAE`.
        out_dir: token folder (created; resumed when it exists).
        vqvae_source: where the VQ-VAE came from (recorded in `tokens_info.json`).
        batch_size: clips of equal length encoded together.
        chunk_seconds: longer clips are encoded in chunks of this length.
        items_per_shard: items per shard file.
        device: where to run the VQ-VAE.
        progress: show a tqdm progress bar.

    Raises:
        ValueError: the sample rates differ, `out_dir` is the dataset, another dataset or a folder of
            other files, or it holds tokens of another VQ-VAE.
    """
    from tqdm.auto import tqdm

    info = DatasetInfo.load(dataset_root)
    if int(vqvae.config.sample_rate) != info.sample_rate:
        raise ValueError(f"the VQ-VAE expects {vqvae.config.sample_rate} Hz audio but {dataset_root} was prepared at "
                         f"{info.sample_rate} Hz; prepare the dataset again with --sample-rate {vqvae.config.sample_rate}")
    out_dir = Path(out_dir)
    if out_dir.resolve() == Path(dataset_root).resolve():
        raise ValueError(f"--out {out_dir} is the prepared dataset itself; encode the tokens into a new folder")
    if (out_dir / INFO).is_file():
        raise ValueError(f"--out {out_dir} is a prepared dataset (it has {INFO}), not a token folder; "
                         "encode the tokens into a new folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / TokenInfo.FILE).is_file():
        raise ValueError(f"--out {out_dir} is a folder of other files (no {TokenInfo.FILE}); "
                         "encode the tokens into a new or empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in dict(vqvae.config).items() if not k.startswith("_")}
    token_info = TokenInfo(list(vqvae.hop_lengths), int(vqvae.config.l_bins), vqvae_source, config,
                           str(Path(dataset_root).resolve()))
    if (out_dir / TokenInfo.FILE).is_file():
        existing = TokenInfo.load(out_dir)
        if not _same(existing.vqvae_config, config) or existing.hop_lengths != token_info.hop_lengths:
            raise ValueError(f"{out_dir} holds tokens of another VQ-VAE ({existing.vqvae or 'unknown source'}); "
                             "encode into a new folder")
    else:
        token_info.save(out_dir)
    done = {row["id"] for row in read_manifest(out_dir)} if (out_dir / "manifest.jsonl").is_file() else set()
    top_hop = vqvae.hop_lengths[-1]
    rows = [row for row in read_manifest(dataset_root) if row["id"] not in done and row["num_samples"] >= top_hop]
    rows.sort(key=lambda row: row["num_samples"])
    chunk = max(top_hop, int(chunk_seconds * info.sample_rate) // top_hop * top_hop)
    dtype = torch.int16 if vqvae.config.l_bins <= 32767 else torch.int32
    reader, writer = ShardReader(dataset_root), ShardWriter(out_dir, items_per_shard=items_per_shard)
    vqvae = vqvae.to(device).eval()
    bar = tqdm(total=len(rows), desc="encoding tokens", unit="clip", disable=not progress)
    i = 0
    while i < len(rows):
        length = rows[i]["num_samples"] // top_hop * top_hop
        group = [rows[i]]
        while (i + len(group) < len(rows) and len(group) < batch_size
               and rows[i + len(group)]["num_samples"] // top_hop * top_hop == length):
            group.append(rows[i + len(group)])
        pcm = torch.stack([reader.get(r["shard"], f"{r['id']}/audio", 0, length) for r in group])  # (B, S) int16
        audio = pcm.float() / 32767.0
        pieces = [vqvae.encode(audio[:, s:s + chunk].to(device)) for s in range(0, length, chunk)]  # per chunk: [level][B, T]
        levels = [torch.cat([p[level] for p in pieces], dim=1).cpu() for level in range(len(vqvae.hop_lengths))]
        for b, row in enumerate(group):
            tensors = {f"level{level}": codes[b].to(dtype) for level, codes in enumerate(levels)}
            writer.add(row["id"], tensors, {"num_tokens": [int(codes.shape[1]) for codes in levels]})
        bar.update(len(group))
        i += len(group)
    writer.flush()
    bar.close()
    return len(rows)

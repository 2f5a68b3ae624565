"""Preparing a folder of videos (or image + sound pairs) into a training dataset.

`prepare_dataset` finds the usable inputs, decodes each one (audio to mono at 16 kHz, frames at
30 fps) in a pool of worker processes, embeds the frames with CLIP in the main process, and writes
the result as safetensors shards plus a manifest (`im2wav.data.shards`). It is resumable: items
already in the manifest are skipped. One bad file never stops the run; it is reported in
`skipped.jsonl` with the reason.

What counts as an input is described in `im2wav.data.sources`.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from .shards import (
    MANIFEST,
    SKIPPED,
    DatasetInfo,
    ShardWriter,
    append_jsonl,
    read_manifest,
    to_pcm16,
)
from .sources import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    SourceItem,
    decode_source,
    exit_with_parent,
    find_sources,
)

__all__ = ["PreparationReport", "prepare_dataset"]


@dataclass
class PreparationReport:
    """What a `prepare_dataset` run did.

    Args:
        found: usable-looking inputs found.
        already_done: inputs skipped because they were in the manifest already.
        prepared: inputs prepared by this run.
        skipped: `{"id", "source", "reason"}` for every input that could not be used.
        seconds: wall time.
    """

    found: int = 0
    already_done: int = 0
    prepared: int = 0
    skipped: list[dict] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# The run


def _decode_in_pool(items: list[SourceItem], args: tuple, num_workers: int, finish, bar,
                    crashed: str | None = None) -> list[SourceItem]:
    """Decode `items` in worker processes, calling `finish(item, decoded)` in this process as they come.

    Returns the items that were in flight when a worker process died (a segfault in a decoder
    breaks the whole pool); with `crashed` set, those are reported as failed with that reason instead.
    """
    # spawn: the workers must not inherit this process's torch threads and CLIP model.
    context = multiprocessing.get_context("spawn")
    pending: dict[cf.Future, SourceItem] = {}
    queue = iter(items)
    with cf.ProcessPoolExecutor(max_workers=num_workers, mp_context=context,
                                initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
        try:
            for item in queue:  # keep at most 2 items per worker in flight (bounded memory)
                pending[pool.submit(decode_source, item, *args)] = item
                if len(pending) >= 2 * num_workers:
                    break
            while pending:
                finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    item = pending.pop(future)
                    decoded = future.result()  # decode_source never raises; a dead worker raises here
                    finish(item, decoded)
                    bar.update()
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending[pool.submit(decode_source, nxt, *args)] = nxt
            return []
        except BrokenProcessPool:
            in_flight, rest = list(pending.values()), list(queue)
    if crashed is not None:
        for item in in_flight + rest:
            finish(item, {"error": crashed})
            bar.update()
        return []
    # the items not yet submitted were not involved: carry on with them in a fresh pool
    return in_flight + (_decode_in_pool(rest, args, num_workers, finish, bar) if rest else [])


def _first_reasons(skipped: list[dict], count: int = 3) -> str:
    return "; ".join(f"{s['source']}: {s['reason']}" for s in skipped[:count])


def _check_info(out_dir: Path, info: DatasetInfo) -> None:
    try:
        existing = DatasetInfo.load(out_dir)
    except FileNotFoundError:
        info.save(out_dir)
        return
    if (existing.sample_rate, existing.fps, existing.clip_model, existing.embed_dim) != (
            info.sample_rate, info.fps, info.clip_model, info.embed_dim):
        raise ValueError(
            f"{out_dir} was prepared with sample_rate={existing.sample_rate}, fps={existing.fps}, "
            f"clip={existing.clip_model!r} (dim {existing.embed_dim}); this run asks for "
            f"sample_rate={info.sample_rate}, fps={info.fps}, clip={info.clip_model!r} (dim {info.embed_dim}). "
            "Resume with the same settings or write to a new folder")


def prepare_dataset(
    input_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    clip_model: str,
    *,
    csv_path: str | os.PathLike | None = None,
    sample_rate: int = 16000,
    fps: float = 30.0,
    num_workers: int = 2,
    clip_batch_size: int = 64,
    items_per_shard: int = 64,
    max_seconds: float = 60.0,
    min_seconds: float = 0.1,
    device: str = "cpu",
    progress: bool = True,
) -> PreparationReport:
    """Prepare (or resume preparing) a dataset folder from videos or image + sound pairs.

    Args:
        input_dir: folder searched recursively for inputs (see the module docstring).
        out_dir: the prepared dataset folder (created; resumed when it exists).
        clip_model: CLIP checkpoint, a local folder or a hub id (e.g. `openai/clip-vit-base-patch32`).
        csv_path: optional VGGSound-style CSV (`youtube_id,start_seconds,label,split`).
        sample_rate: audio rate in Hz.
        fps: frames per second taken from videos for CLIP.
        num_workers: decoding processes (0: decode in this process).
        clip_batch_size: frames per CLIP forward pass.
        items_per_shard: items per shard file.
        max_seconds: longer inputs are cut to this length.
        min_seconds: shorter inputs are skipped.
        device: device for CLIP.
        progress: show a tqdm progress bar.

    Returns:
        A `PreparationReport`.

    Raises:
        FileNotFoundError: `input_dir` does not exist.
        ValueError: no usable input at all, an unloadable CLIP checkpoint, or `out_dir` prepared with
            other settings.
    """
    from tqdm.auto import tqdm

    from ..clip_encoder import embed_images, load_clip_image_encoder

    started = time.monotonic()
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    items, skipped = find_sources(input_dir, csv_path)
    if not items:
        reasons = _first_reasons(skipped)
        raise ValueError(
            f"no usable files in {input_dir}: expected videos ({' '.join(VIDEO_EXTENSIONS)}) or images "
            f"({' '.join(IMAGE_EXTENSIONS)}) with a sound ({' '.join(AUDIO_EXTENSIONS)}) of the same stem"
            + (f"; found only: {reasons}" if reasons else ""))
    # Load CLIP before any decoding: a wrong checkpoint should fail in a second, not after an hour.
    model, processor = load_clip_image_encoder(clip_model, device=device)
    embed_dim = int(model.config.projection_dim)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_info(out_dir, DatasetInfo(sample_rate=sample_rate, fps=float(fps), clip_model=str(clip_model),
                                     embed_dim=embed_dim))
    done = {row["id"] for row in read_manifest(out_dir)} if (out_dir / MANIFEST).exists() else set()
    report = PreparationReport(found=len(items), skipped=list(skipped))
    todo = [item for item in items if item.id not in done]
    report.already_done = len(items) - len(todo)
    writer = ShardWriter(out_dir, items_per_shard=items_per_shard)

    def finish(item: SourceItem, decoded: dict) -> None:
        if "error" in decoded:
            report.skipped.append({"id": item.id, "source": item.video or item.image, "reason": decoded["error"]})
            return
        clip = embed_images(model, processor, decoded["frames"], batch_size=clip_batch_size)  # [F, D]
        row = {"source": item.video or item.image, "still": item.video is None}
        if item.audio is not None:
            row["audio_source"] = item.audio
        if item.label is not None:
            row["label"] = item.label
        if item.split is not None:
            row["split"] = item.split
        audio = to_pcm16(decoded["audio"])
        row = {"num_samples": int(audio.shape[0]), "num_frames": int(clip.shape[0]), **row}
        writer.add(item.id, {"audio": audio, "clip": clip.cpu().float()}, row)
        report.prepared += 1

    bar = tqdm(total=len(todo), desc="preparing", unit="file", disable=not progress)
    args = (sample_rate, float(fps), max_seconds, min_seconds)
    try:
        if num_workers <= 0:
            for item in todo:
                finish(item, decode_source(item, *args))
                bar.update()
        else:
            suspects = _decode_in_pool(todo, args, num_workers, finish, bar)
            for item in suspects:  # in flight when a worker died: retry each alone to find the culprit
                _decode_in_pool([item], args, 1, finish, bar, crashed="the decoder process crashed on this file")
        writer.flush()
    finally:
        bar.close()
        append_jsonl(out_dir / SKIPPED, [{**s, "time": time.strftime("%Y-%m-%dT%H:%M:%S")} for s in report.skipped])
    report.seconds = time.monotonic() - started
    if report.prepared == 0 and report.already_done == 0:
        reasons = _first_reasons(report.skipped)
        raise ValueError(f"no usable files in {input_dir}: all {len(items)} inputs failed ({reasons}); "
                         f"see {out_dir / SKIPPED}")
    return report

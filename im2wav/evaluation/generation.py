"""Generating an evaluation's clips: jobs, an on-disk cache that lets a stopped run resume, sharding.

A `GenerationJob` is one clip to generate: its name, its condition (an image or a video), its
seed. `ClipCache` keeps every finished clip as `NAME.wav` (32-bit float, written atomically) and
the CLIP embeddings of its condition as `NAME.npy` (written first: a WAV present means both are
complete), plus `settings.json`, so a rerun with the same settings skips what exists and a rerun
with other settings is refused instead of mixing clips.

Sharding: the job list is cut into batches of `batch_size` first, then batch b goes to process
`b % num_processes`. Every batch is therefore the same whatever the number of processes, and
so is every clip (batched sampling is not bit-identical to one-by-one sampling on every backend).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import torch

from ..atomic_files import atomic_output, atomic_write_text
from ..errors import UserError
from ..media import write_audio

if TYPE_CHECKING:
    from ..pipelines import Im2WavPipeline

__all__ = ["ClipCache", "GenerationJob", "cached_chunks", "generate_missing", "shard_batches"]


@dataclass(frozen=True)
class GenerationJob:
    """One clip to generate.

    Attributes:
        name: the cached file's stem (unique in the evaluation).
        group: the class (IMAGEHEAR) or the video's label (VGGSound) it belongs to.
        source: the image or video file that conditions it.
        seed: its own generator seed, so it can be regenerated alone.
    """

    name: str
    group: str
    source: Path
    seed: int


class ClipCache:
    """The folder of an evaluation's generated clips.

    Args:
        folder: where the clips live (created when missing).
        settings: everything that changes what a clip sounds like (model, length, guidance, seed
            rule, ...); stored in `settings.json` on first use and compared on every later one.

    Raises:
        UserError: the folder holds clips made with other settings.
    """

    def __init__(self, folder: str | Path, settings: dict):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        stored = self.folder / "settings.json"
        wanted = json.loads(json.dumps(settings))  # as JSON would give it back
        if stored.is_file():
            previous = json.loads(stored.read_text())
            if previous != wanted:
                changed = sorted(k for k in set(previous) | set(wanted) if previous.get(k) != wanted.get(k))
                raise UserError(
                    f"{self.folder} holds clips generated with other settings (differing: {', '.join(changed)}); "
                    "rerun with the same settings to resume, or pass another --out folder"
                )
        else:
            atomic_write_text(stored, json.dumps(wanted, indent=2, sort_keys=True))

    def audio_path(self, job: GenerationJob) -> Path:
        return self.folder / f"{job.name}.wav"

    def embeds_path(self, job: GenerationJob) -> Path:
        return self.folder / f"{job.name}.npy"

    def has(self, job: GenerationJob) -> bool:
        return self.audio_path(job).is_file() and self.embeds_path(job).is_file()

    def write(self, job: GenerationJob, audio: torch.Tensor, image_embeds: torch.Tensor, sample_rate: int) -> None:
        """Store one clip `[1, S]` or `[S]` and its condition's embeddings `[F, D]`."""
        with atomic_output(self.embeds_path(job)) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, image_embeds.detach().float().cpu().numpy())
        write_audio(self.audio_path(job), audio, sample_rate)

    def read(self, job: GenerationJob) -> tuple[np.ndarray, int, torch.Tensor]:
        """`(audio [S] float32, its rate, condition embeddings [F, D])` of a finished job."""
        audio, rate = sf.read(str(self.audio_path(job)), dtype="float32")
        return audio, int(rate), torch.from_numpy(np.load(self.embeds_path(job)))


def cached_chunks(cache: ClipCache, jobs: Sequence[GenerationJob], chunk: int = 64):
    """Cached clips in chunks `(jobs, audios [B] list of [S], rate, embeds list of [F, D])`, so that
    thousands of clips are never all in memory at once."""
    for start in range(0, len(jobs), chunk):
        part = list(jobs[start : start + chunk])
        loaded = [cache.read(job) for job in part]
        rates = {rate for _, rate, _ in loaded}
        if len(rates) != 1:
            raise ValueError(f"the cached clips in {cache.folder} have different sample rates {sorted(rates)}")
        yield part, [torch.from_numpy(a) for a, _, _ in loaded], rates.pop(), [e for _, _, e in loaded]


def shard_batches(
    jobs: Sequence[GenerationJob], batch_size: int, process_index: int = 0, num_processes: int = 1
) -> list[list[GenerationJob]]:
    """The batches of `jobs` that process `process_index` of `num_processes` generates.

    Args:
        jobs: every job of the evaluation, in a fixed order.
        batch_size: jobs per batch.
        process_index: this process's rank.
        num_processes: how many processes share the work.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process_index must be in [0, {num_processes}), got {process_index}")
    batches = [list(jobs[start : start + batch_size]) for start in range(0, len(jobs), batch_size)]
    return batches[process_index::num_processes]


def generate_missing(
    pipe: Im2WavPipeline,
    batches: Sequence[Sequence[GenerationJob]],
    cache: ClipCache,
    encode: Callable[[GenerationJob], torch.Tensor],
    audio_length_in_s: float,
    guidance_scale: float,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Generate and cache every job of `batches` that is not cached yet; returns how many were generated.

    A batch's missing jobs are generated in one pipeline call when their conditions have the same
    number of frames (always for images), otherwise one by one.

    Args:
        pipe: the pipeline under evaluation.
        batches: from `shard_batches`.
        cache: where the clips go.
        encode: a job -> its condition's CLIP embeddings `[1, F, D]` (e.g. `pipe.encode_images`).
        audio_length_in_s: length of every clip.
        guidance_scale: the LOW prior's classifier-free guidance scale.
        progress: called with the number of jobs of each batch once it is done (cached or generated).
    """
    generated = 0
    for batch in batches:
        todo = [job for job in batch if not cache.has(job)]
        if todo:
            embeds = [encode(job) for job in todo]  # each [1, F, D]
            same_frames = len({e.shape[1] for e in embeds}) == 1
            groups = [(todo, torch.cat(embeds))] if same_frames else [([j], e) for j, e in zip(todo, embeds)]
            for jobs, image_embeds in groups:
                generators = [torch.Generator(device=pipe.device).manual_seed(job.seed) for job in jobs]
                audios = pipe(
                    image_embeds=image_embeds,
                    audio_length_in_s=audio_length_in_s,
                    guidance_scale=guidance_scale,
                    generator=generators,
                    output_type="pt",
                ).audios.float().cpu()  # [B, 1, S]
                for job, audio, frames in zip(jobs, audios, image_embeds):
                    cache.write(job, audio, frames, pipe.sample_rate)
                generated += len(jobs)
        if progress is not None:
            progress(len(batch))
    return generated

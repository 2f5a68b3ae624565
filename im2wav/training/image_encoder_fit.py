"""Fit a small CLIP image encoder to a video folder, so that frames whose sounds differ embed apart.

IM2WAV conditions on CLIP ViT-B/32 image embeddings. A demo-size model trained without a download
needs a tiny CLIP of its own, and a randomly initialised one maps pictures that differ only in
texture (stripes versus a checkerboard on the same colour) to nearly the same embedding (cosine
0.97 between class centroids), which no prior can undo. This stage gives the tiny encoder the one
thing CLIP's training gave the real one, an embedding space where what matters is far apart, by
the same kind of objective: a symmetric contrastive (InfoNCE) loss between image embeddings and
embeddings of the clip's soundtrack, over the training videos only. No labels are used: a frame's
positive is the audio of its own clip, every other clip of the batch is a negative.

The audio side (log band energies of the soundtrack, their mean and spread over time, through a
small MLP) exists only for the fit and is thrown away; the image encoder is saved as a normal
`CLIPVisionModelWithProjection` folder that `prepare_dataset.py` and the pipeline load as usual.

    python -m im2wav.training.image_encoder_fit --videos world/videos --out runs/clip --steps 400
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .optim import warmup_schedule

__all__ = ["audio_features", "fit_image_encoder", "main"]

_NUM_BANDS = 32


def audio_features(audio: np.ndarray, sample_rate: int, num_bands: int = _NUM_BANDS) -> np.ndarray:
    """What the fit knows of a soundtrack: mean and spread over time of log band energies.

    Args:
        audio: float [S] mono.
        sample_rate: in Hz.
        num_bands: log-spaced bands between 60 Hz and 0.48 x the sample rate.

    Returns:
        float32 [2 * num_bands]: per band, the mean log energy (mean over bands removed) and its
        standard deviation over 32 ms frames (steady sounds ~0, bursts and sweeps large).
    """
    n_fft, hop = 512, 256
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * np.hanning(n_fft)  # (N, n_fft)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2  # (N, n_fft // 2 + 1)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = np.geomspace(60.0, 0.48 * sample_rate, num_bands + 1)
    bands = np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(-1) for lo, hi in zip(edges[:-1], edges[1:])], -1)
    logs = np.log10(bands + 1e-6 * power.sum(-1, keepdims=True).mean() + 1e-10)  # (N, num_bands)
    mean = logs.mean(0)
    return np.concatenate([mean - mean.mean(), logs.std(0)]).astype(np.float32)


def _load_pairs(videos: list[Path], frames_per_video: int, sample_rate: int, fps: float):
    """Frames (PIL) of every video, the video index of each frame, and each video's audio features."""
    from ..media import load_video_frames, read_audio_track

    images, owner, features = [], [], []
    for v, path in enumerate(videos):
        frames = load_video_frames(path, fps=fps).frames
        picks = np.linspace(0, len(frames) - 1, min(frames_per_video, len(frames))).round().astype(int)
        images += [frames[i] for i in picks]
        owner += [v] * len(picks)
        features.append(audio_features(read_audio_track(path, sample_rate), sample_rate))
    return images, np.array(owner), np.stack(features)


def fit_image_encoder(model, processor, videos: list[str | os.PathLike], *, steps: int = 400, batch_size: int = 32,
                      lr: float = 3e-3, frames_per_video: int = 8, temperature: float = 0.1,
                      colour_jitter: float = 0.0, seed: int = 0, sample_rate: int = 16000, fps: float = 30.0,
                      log_every: int = 50) -> dict:
    """Train `model` (a `CLIPVisionModelWithProjection`) in place with the audio-visual contrastive loss.

    Each step draws `batch_size` different videos, one random frame of each, and scores every frame
    against every video's audio embedding; the loss is the mean of the image->audio and
    audio->image cross-entropies with the frame's own video as the target.

    The target is the clip, not a label, so an encoder can lower the loss by learning what makes
    one clip's pictures unlike its neighbours' (a slightly other background colour) and pull the
    clips whose soundtrack is another kind's towards that kind: a picture of the same kind with a
    similar colour then embeds near the wrong sound. `colour_jitter` shifts each frame's colour
    channels by a fresh random offset every time it is drawn, so those small differences carry no
    information and the encoder must rely on what the kind of picture shares (colour family,
    pattern, shape).

    Args:
        model: the image encoder to fit (trained in place, left in eval mode).
        processor: its `CLIPImageProcessor`.
        videos: training video files (with a soundtrack).
        steps: optimizer steps.
        batch_size: videos per step (at most the number of videos).
        lr: AdamW learning rate (cosine decay).
        frames_per_video: frames taken from each video, evenly spaced.
        temperature: softmax temperature of the similarity logits.
        colour_jitter: largest per-channel colour offset added to a drawn frame, in 0-255 levels
            (uniform, independent per frame and channel; 0: none).
        seed: seed of the audio head's initialisation and of the batches.
        sample_rate, fps: how the videos are read.
        log_every: steps between printed loss lines (0: silent).

    Returns:
        `{"steps", "first_loss", "last_loss"}`.

    Raises:
        ValueError: fewer than two videos, or a non-positive `steps`/`batch_size`.
    """
    if len(videos) < 2:
        raise ValueError(f"the contrastive fit needs at least 2 training videos, got {len(videos)}")
    if steps < 1 or batch_size < 2:
        raise ValueError(f"steps must be >= 1 and batch_size >= 2, got {steps} and {batch_size}")
    if not 0 <= colour_jitter <= 255:
        raise ValueError(f"colour_jitter must be in [0, 255] levels, got {colour_jitter}")
    images, owner, features = _load_pairs([Path(v) for v in videos], frames_per_video, sample_rate, fps)
    pixels = processor(images=images, return_tensors="pt").pixel_values  # (N, 3, H, W)
    # an offset of one 0-255 level in the processor's normalised units, per channel
    level = torch.tensor(1.0 / (255.0 * np.asarray(processor.image_std)), dtype=pixels.dtype).view(1, 3, 1, 1)
    feats = torch.from_numpy((features - features.mean(0)) / (features.std(0) + 1e-3))  # (V, A) standardised
    dim = model.config.projection_dim
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        audio_head = nn.Sequential(nn.Linear(feats.shape[1], 256), nn.ReLU(), nn.Linear(256, dim))
    params = list(model.parameters()) + list(audio_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = warmup_schedule(optimizer, 0, steps, "cosine")
    frames_of = [np.flatnonzero(owner == v) for v in range(len(features))]
    batch_size = min(batch_size, len(features))
    targets = torch.arange(batch_size)
    model.train()
    losses = []
    for step in range(steps):
        vids = rng.choice(len(features), size=batch_size, replace=False)
        picks = [int(rng.choice(frames_of[v])) for v in vids]
        batch = pixels[picks]  # (B, 3, H, W)
        if colour_jitter > 0:
            offsets = torch.from_numpy(rng.uniform(-colour_jitter, colour_jitter, size=(batch_size, 3, 1, 1)))
            batch = batch + offsets.to(batch.dtype) * level  # (B, 3, 1, 1) broadcast over the pixels
        image = nn.functional.normalize(model(pixel_values=batch).image_embeds, dim=-1)  # (B, D)
        audio = nn.functional.normalize(audio_head(feats[vids]), dim=-1)  # (B, D)
        logits = image @ audio.T / temperature  # (B, B)
        loss = 0.5 * (nn.functional.cross_entropy(logits, targets) + nn.functional.cross_entropy(logits.T, targets))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(json.dumps({"step": step + 1, "loss": round(float(np.mean(losses[-log_every:])), 4)}), flush=True)
    model.eval()
    return {"steps": steps, "first_loss": losses[0], "last_loss": float(np.mean(losses[-10:]))}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--videos", required=True, help="folder of training videos with soundtracks (searched recursively)")
    parser.add_argument("--out", required=True, help="folder to write the fitted CLIP image encoder to")
    parser.add_argument("--init", default=None,
                        help="CLIP image encoder folder to start from (default: im2wav's tiny random CLIP, seeded)")
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=32, help="videos per step")
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate")
    parser.add_argument("--frames-per-video", type=int, default=8, help="frames taken from each video")
    parser.add_argument("--colour-jitter", type=float, default=0.0,
                        help="largest random per-channel colour offset of a drawn frame, in 0-255 levels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the batches")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ..clip_encoder import load_clip_image_encoder, tiny_clip_vision
    from ..media import is_video_file

    folder = Path(args.videos)
    if not folder.is_dir():
        raise FileNotFoundError(f"--videos {folder} is not a folder; pass the folder of training videos")
    videos = sorted(p for p in folder.rglob("*") if p.is_file() and is_video_file(p))  # searched recursively
    if args.init is None:
        model, processor = tiny_clip_vision(seed=args.seed)
    else:
        model, processor = load_clip_image_encoder(args.init)
    result = fit_image_encoder(model, processor, videos, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                               frames_per_video=args.frames_per_video, colour_jitter=args.colour_jitter,
                               seed=args.seed)
    out = Path(args.out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    print(json.dumps({"out": str(out), "videos": len(videos), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

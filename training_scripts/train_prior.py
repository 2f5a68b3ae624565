"""Train (or fine-tune) the LOW or UP prior on precomputed VQ-VAE tokens.

    python training_scripts/encode_tokens.py --dataset data/prepared --vqvae runs/vqvae --out data/tokens
    python training_scripts/train_prior.py --level low --dataset data/prepared --tokens data/tokens --run-dir runs/low
    python training_scripts/train_prior.py --level up  --dataset data/prepared --tokens data/tokens --run-dir runs/up
    accelerate launch training_scripts/train_prior.py ...   # several GPUs

LOW drops the image condition of each window with probability `--condition-dropout` (0.5, as the
paper) so that it learns the null condition classifier-free guidance needs; UP is never dropped.
"""

from __future__ import annotations

import argparse
import json
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    from im2wav.training.arguments import add_training_arguments

    parser.add_argument("--level", choices=("low", "up"), required=True, help="which prior")
    parser.add_argument("--dataset", required=True, help="prepared dataset folder (CLIP frames, lengths)")
    parser.add_argument("--tokens", required=True, help="token folder written by encode_tokens.py")
    parser.add_argument("--condition-dropout", type=float, default=None,
                        help="probability of training a window with the null condition (default: 0.5 LOW, 0 UP)")
    add_training_arguments(parser, preset="", batch_size=4, lr=3e-4, max_steps=100000)
    args = parser.parse_args(argv)
    if not args.preset:
        args.preset = f"paper-{args.level}"
    if args.condition_dropout is None:
        args.condition_dropout = 0.5 if args.level == "low" else 0.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from im2wav.data.windows import TokenWindows
    from im2wav.losses.tokens import prior_token_loss
    from im2wav.models.prior import PRESETS, Im2WavPrior
    from im2wav.training.arguments import setup_model, training_config, write_run_config
    from im2wav.training.loop import train

    model, resume = setup_model(args, args.level, PRESETS, lambda config: Im2WavPrior(**config))
    c = model.config
    level = 1 if args.level == "low" else 0
    train_data = TokenWindows(args.dataset, args.tokens, level, c.n_ctx, "train", args.val_fraction)
    try:
        val_data = TokenWindows(args.dataset, args.tokens, level, c.n_ctx, "val", args.val_fraction)
    except ValueError:
        val_data = None  # no validation items
    info = train_data.token_info
    if info.codebook_size != c.vocab_size:
        raise ValueError(f"the tokens come from a VQ-VAE with {info.codebook_size} codes but the prior models "
                         f"{c.vocab_size}; pick a matching --preset or override vocab_size")
    if info.hop_lengths[level] != c.hop_length:
        raise ValueError(f"the prior's hop_length is {c.hop_length} but level {level} of the tokens has hop "
                         f"{info.hop_lengths[level]}")
    if c.lower_vocab_size is not None and c.lower_vocab_size != info.codebook_size:
        raise ValueError(f"the UP prior expects LOW tokens from {c.lower_vocab_size} codes, the tokens have "
                         f"{info.codebook_size}")
    if c.time_signal:  # the time signal only covers lengths the prior was built for
        lo = c.min_duration * c.sample_rate
        short = [r["id"] for r in train_data.rows if r["num_samples"] < lo]
        if short:
            raise ValueError(f"{len(short)} clips (e.g. {short[0]!r}) are shorter than the prior's min_duration "
                             f"({c.min_duration} s); lower it with --config-overrides '{{\"min_duration\": ...}}' "
                             "in a fresh run, or prepare longer clips")
    cfg = training_config(args, args.level, tokens_per_sample=c.n_ctx)
    write_run_config(args.run_dir, args, cfg, model, {"train_items": len(train_data),
                                                       "val_items": 0 if val_data is None else len(val_data),
                                                       "tokens_info": info.__dict__ | {"vqvae_config": "..."}})
    dropout = args.condition_dropout

    def loss_fn(model: torch.nn.Module, batch: dict, training: bool):
        out = prior_token_loss(model, batch["tokens"], frame_embeds=batch["frame_embeds"],
                               lower_tokens=batch.get("lower_tokens"),
                               timing=batch["timing"] if args.level == "low" else None,
                               condition_dropout=dropout if training else 0.0)
        return out.loss, {"cross_entropy": out.cross_entropy.detach()}

    result = train(model, loss_fn, train_data, cfg, val_data=val_data, resume=resume, progress=not args.no_progress)
    print(json.dumps({"step": result.step, "stopped": result.stopped, "checkpoint": str(result.checkpoint),
                      "last_loss": result.losses[-1] if result.losses else None, "val_loss": result.val_loss}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

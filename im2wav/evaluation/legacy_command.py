r"""The flag-style evaluation of earlier versions, kept working: `evaluate --imagehear DIR --model M
--tagger T ...` (IMAGEHEAR with any transformers tagger, `per_image` clips per image) and
`evaluate --generated DIR --reference DIR --embedder E` (FAD and paired KL between two folders).

    python training_scripts/evaluate.py --generated gen_wavs --reference vggsound_test_wavs \
        --embedder MIT/ast-finetuned-audioset-10-10-0.4593 --out vggsound_report.json

The paper's protocol is the `imagehear` / `vggsound` subcommands (`im2wav.evaluation.command`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..commands.parsing import HelpFormatter
from .generation_options import add_generation_options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    bench = parser.add_argument_group("IMAGEHEAR: generate from the benchmark images and score the clips")
    bench.add_argument("--imagehear", default=None, help="IMAGEHEAR folder (images + imagehear.json)")
    bench.add_argument("--model", default=None, help="Im2WavPipeline folder or hub id to generate with")
    bench.add_argument("--tagger", default=None,
                       help="AudioSet classifier (transformers folder or hub id) for accuracy; in folder mode, "
                            "for KL (default there: --embedder)")
    bench.add_argument("--clip-audio-encoder", default=None,
                       help="CLIP-space audio encoder ([B, S] -> [B, D], e.g. Wav2CLIP) saved with torch.export "
                            "(.pt2) or TorchScript, for the CLIP-score; skipped when absent")
    bench.add_argument("--clip-audio-rate", type=int, default=16000, help="sample rate the CLIP audio encoder expects")
    bench.add_argument("--per-image", type=int, default=1, help="clips generated per image")
    add_generation_options(bench, seed_help="clip k of image i uses seed + i * per_image + k")
    bench.add_argument("--save-audio", default=None, help="folder to also write the generated clips to (WAV)")
    folders = parser.add_argument_group("folders: FAD and KL between generated and reference clips")
    folders.add_argument("--generated", default=None, help="folder of generated .wav/.flac clips")
    folders.add_argument("--reference", default=None, help="folder of reference clips, same file names for KL")
    folders.add_argument("--embedder", default=None, help="audio model (transformers folder or hub id) for FAD embeddings")
    folders.add_argument("--no-kl", action="store_true", help="compute FAD only")
    parser.add_argument("--multi-label", action="store_true",
                        help="sigmoid (independent per-class) probabilities instead of softmax for KL")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass of the metric models")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--out", required=True, help="JSON report to write")
    args = parser.parse_args(argv)

    imagehear_mode = args.imagehear is not None
    folder_mode = args.generated is not None or args.reference is not None
    if imagehear_mode == folder_mode:
        parser.error("choose one evaluation: --imagehear DIR --model DIR --tagger DIR, or --generated DIR --reference DIR "
                     "--embedder DIR")
    if imagehear_mode and (args.model is None or args.tagger is None):
        parser.error("--imagehear needs --model (the pipeline to evaluate) and --tagger (an AudioSet classifier)")
    if folder_mode and (args.generated is None or args.reference is None or args.embedder is None):
        parser.error("folder evaluation needs --generated, --reference and --embedder")
    if args.per_image < 1:
        parser.error(f"--per-image must be >= 1, got {args.per_image}")
    return args


def run_imagehear(args: argparse.Namespace, device: str) -> dict:
    import torch
    from tqdm.auto import tqdm

    from im2wav import Im2WavPipeline
    from im2wav.evaluation import (
        evaluate_imagehear,
        load_audio_classifier,
        load_clip_audio_encoder,
        load_imagehear,
    )
    from im2wav.media import write_audio

    benchmark = load_imagehear(args.imagehear)
    tagger = load_audio_classifier(args.tagger, device=device, multi_label=args.multi_label, batch_size=args.batch_size)
    encoder = None
    if args.clip_audio_encoder is not None:
        encoder = load_clip_audio_encoder(args.clip_audio_encoder, sample_rate=args.clip_audio_rate, device=device)
    pipe = Im2WavPipeline.from_pretrained(args.model).to(device)
    pipe.set_progress_bar_config(disable=True)  # one bar over the images instead of one per clip

    on_clips = None
    if args.save_audio is not None:
        save_dir = Path(args.save_audio)
        save_dir.mkdir(parents=True, exist_ok=True)

        def on_clips(item, audios: torch.Tensor) -> None:
            for k, audio in enumerate(audios):
                write_audio(save_dir / f"{item.image_path.stem}_{k}.wav", audio[0].numpy(), pipe.sample_rate)

    items = benchmark.items()
    with tqdm(total=len(items), desc="IMAGEHEAR images", unit="image") as bar:
        result = evaluate_imagehear(
            pipe, benchmark, tagger, encoder,
            per_image=args.per_image, audio_length_in_s=args.audio_length, guidance_scale=args.guidance_scale,
            seed=args.seed, on_clips=on_clips, progress=bar.update,
        )
    return {"mode": "imagehear", **result.to_dict()}


def run_folders(args: argparse.Namespace, device: str) -> dict:
    from tqdm.auto import tqdm

    from im2wav.evaluation import (
        evaluate_audio_folders,
        list_audio_files,
        load_audio_classifier,
    )

    embedder = load_audio_classifier(args.embedder, device=device, multi_label=args.multi_label,
                                     batch_size=args.batch_size)
    tagger = None
    if not args.no_kl:
        same = args.tagger is None or args.tagger == args.embedder
        tagger = embedder if same else load_audio_classifier(args.tagger, device=device, multi_label=args.multi_label,
                                                             batch_size=args.batch_size)
    generated, reference = list_audio_files(args.generated), list_audio_files(args.reference)
    names = {p.name for p in reference}
    num_pairs = sum(p.name in names for p in generated)
    total = len(generated) + len(reference) + (2 * num_pairs if tagger is not None else 0)
    with tqdm(total=total, desc="clips", unit="clip") as bar:
        result = evaluate_audio_folders(args.generated, args.reference, embedder, tagger,
                                        batch_size=args.batch_size, progress=bar.update)
    return {"mode": "folders", **result.to_dict()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    if not out.parent.is_dir():
        print(f"error: the folder of --out ({out.parent}) does not exist", file=sys.stderr)
        return 2
    try:
        report = run_imagehear(args, device) if args.imagehear is not None else run_folders(args, device)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report["config"] = {**vars(args), "device": device}
    from im2wav.media import atomic_output

    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    summary = {k: report[k] for k in ("fad", "kl", "accuracy", "mean_class_accuracy", "clip_score") if k in report}
    print(json.dumps(summary))
    return 0


r"""`evaluate`: the IM2WAV paper's evaluation protocol, with its metric models.

    evaluate imagehear ../shared/data/imagehear --model my_im2wav --out eval/imagehear \
        --passt-weights passt-s-f128-p16-s10-ap.476-swa.pt --wav2clip-weights Wav2CLIP.pt \
        --audioset-labels class_labels_indices.csv
    evaluate vggsound vggsound_videos/ --csv vggsound.csv --imagehear ../shared/data/imagehear \
        --model my_im2wav --out eval/vggsound --vggish-weights vggish-10086976.pth ...
    accelerate launch --num_processes 4 -m im2wav.evaluation.command imagehear ...   # shard generation

Generated clips are cached under OUT/clips (a stopped run resumes where it stopped); OUT gets
results.json, results.md and the PNG charts. Without the weight flags each model's package URL
is used (downloaded once). `--random-metric-weights` builds the same models with random
weights: a plumbing check whose numbers mean nothing. The flag style of earlier versions
(`evaluate --imagehear DIR --tagger T ...`, `evaluate --generated DIR --reference DIR ...`)
still works. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from ..commands.parsing import HelpFormatter
from ..errors import UserError
from .generation_options import add_generation_options

__all__ = ["build_parser", "main"]


def _add_common(parser: argparse.ArgumentParser) -> None:
    gen = parser.add_argument_group("generation")
    gen.add_argument("--model", required=True, help="Im2WavPipeline folder or hub id to evaluate")
    gen.add_argument("--out", required=True, type=Path, help="output folder (clips/, results.json, results.md, *.png)")
    add_generation_options(gen, seed_help="clip k of the job list uses seed + k")
    gen.add_argument("--batch-size", type=int, default=8, help="conditions generated per pipeline call")
    gen.add_argument("--device", default=None, help="torch device (default: accelerate's / cuda when available / cpu)")
    metrics = parser.add_argument_group("metric models")
    metrics.add_argument("--tagger", default="passt", help="'passt' or a transformers audio classifier (folder/hub id)")
    metrics.add_argument("--clip-audio-encoder", default="wav2clip",
                         help="'wav2clip', a .pt2/TorchScript file ([B, S] -> [B, D]), or 'none' to skip the CLIP-score")
    metrics.add_argument("--passt-weights", default=None, help="PaSST checkpoint file (default: hear21passt's URL)")
    metrics.add_argument("--wav2clip-weights", default=None, help="Wav2CLIP.pt (default: wav2clip's URL)")
    metrics.add_argument("--audioset-labels", default=None, help="AudioSet class_labels_indices.csv (default: download)")
    metrics.add_argument("--random-metric-weights", action="store_true",
                         help="paper models with random weights: a plumbing check, the numbers mean nothing")
    metrics.add_argument("--multi-label", action="store_true", help="sigmoid instead of softmax class probabilities")
    metrics.add_argument("--metric-batch-size", type=int, default=16, help="clips per metric-model forward pass")
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__, formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench = commands.add_parser("imagehear", formatter_class=HelpFormatter,
                                help="IMAGEHEAR: accuracy and CLIP-score, per class (Table 1, right)")
    bench.add_argument("benchmark", type=Path, help="IMAGEHEAR folder (images + imagehear.json)")
    bench.add_argument("--per-class", type=int, default=120, help="clips per class (the paper: 120)")
    _add_common(bench)
    vgg = commands.add_parser("vggsound", formatter_class=HelpFormatter,
                              help="VGGSound test videos: FAD, KL, CLIP-score, accuracy (Table 1, left)")
    vgg.add_argument("videos", type=Path, help="folder of VGGSound videos (ID_STARTms_ENDms.mp4)")
    vgg.add_argument("--csv", required=True, type=Path, help="vggsound.csv: youtube_id,start_seconds,label,split")
    vgg.add_argument("--split", default="test", help="the CSV split to evaluate")
    vgg.add_argument("--imagehear", type=Path, default=None,
                     help="IMAGEHEAR folder, for accuracy on the videos of IMAGEHEAR classes (skipped without it)")
    vgg.add_argument("--fps", type=float, default=30.0, help="frame rate of the conditioning frames")
    vgg.add_argument("--embedder", default="vggish", help="'vggish' or a transformers audio classifier, for FAD")
    vgg.add_argument("--vggish-weights", default=None, help="vggish-10086976.pth (default: torchvggish's URL)")
    _add_common(vgg)
    return parser


def _check_args(args: argparse.Namespace) -> None:
    for flag in ("batch_size", "metric_batch_size") + (("per_class",) if args.command == "imagehear" else ()):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if not args.audio_length > 0:
        raise UserError(f"--audio-length must be positive, got {args.audio_length}")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    if not args.out.parent.is_dir():
        raise UserError(f"the folder of --out ({args.out.parent}) does not exist")
    if args.device is not None:
        import torch

        try:
            device = torch.device(args.device)
        except RuntimeError as err:
            raise UserError(f"--device {args.device!r} is not a device name (cpu, cuda, cuda:1, mps)") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but CUDA is not available; use --device cpu")


def _process_state(device: str | None):
    """accelerate's process state when a launcher started several processes, else a one-process stand-in."""
    try:
        from accelerate import PartialState
    except ImportError:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError('sharding across processes needs accelerate: pip install "im2wav[train]"') from None
        return None
    return PartialState(cpu=device == "cpu")


def _run(args: argparse.Namespace) -> dict | None:
    import torch
    from tqdm.auto import tqdm

    from ..pipelines import Im2WavPipeline
    from .generation import ClipCache, generate_missing, shard_batches
    from .imagehear import load_imagehear
    from .metric_models import load_metric_models
    from .report import write_report

    # 1. Processes and device
    state = _process_state(args.device)
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    device = args.device or (str(state.device) if state is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    is_main = rank == 0

    # 2. The jobs
    if args.command == "imagehear":
        from .imagehear_protocol import imagehear_jobs

        imagehear = load_imagehear(args.benchmark)
        jobs = imagehear_jobs(imagehear, args.per_class, args.seed)
    else:
        from .vggsound_protocol import list_test_videos, vggsound_jobs

        imagehear = load_imagehear(args.imagehear) if args.imagehear is not None else None
        videos, missing_videos = list_test_videos(args.videos, args.csv, args.split)
        jobs = vggsound_jobs(videos, args.seed)

    # 3. The clip cache (refuses clips made with other settings), the pipeline, then the metric
    # models on the main process: all before hours of generation
    # A local model folder is named by its absolute path: "m" and "./m" are one model to the cache.
    model_name = str(Path(args.model).resolve()) if Path(args.model).is_dir() else str(args.model)
    generation = {"model": model_name, "audio_length_in_s": args.audio_length,
                  "guidance_scale": args.guidance_scale, "seed": args.seed}
    generation.update({"per_class": args.per_class} if args.command == "imagehear" else {"fps": args.fps})
    cache = ClipCache(args.out / "clips", generation)
    try:
        pipe = Im2WavPipeline.from_pretrained(args.model).to(device)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the model {args.model}: {str(err).splitlines()[0]}") from err
    pipe.set_progress_bar_config(disable=True)
    pipe.check_audio_length(args.audio_length)
    models = None
    if is_main:
        named = [label for labels in imagehear.to_audioset.values() for label in labels] if imagehear else []
        named += imagehear.ignored_labels if imagehear else []
        encoder = None if args.clip_audio_encoder == "none" else args.clip_audio_encoder
        models = load_metric_models(
            tagger=args.tagger, embedder=getattr(args, "embedder", None), clip_audio_encoder=encoder,
            passt_weights=args.passt_weights, vggish_weights=getattr(args, "vggish_weights", None),
            wav2clip_weights=args.wav2clip_weights, audioset_labels=args.audioset_labels, placeholder_labels=named,
            random_weights=args.random_metric_weights, multi_label=args.multi_label,
            batch_size=args.metric_batch_size, device=device,
        )
        if imagehear is not None:
            from .classifier_metrics import check_tagger_labels

            check_tagger_labels(models.tagger.label_names, imagehear.to_audioset, imagehear.ignored_labels)

    # 4. Generate this process's share of the missing clips
    if args.command == "imagehear":

        def encode(job):
            from ..media import load_image

            return pipe.encode_images(load_image(job.source))  # one picture: [1, F=1, D]
    else:

        def encode(job):
            return pipe.encode_images(video=str(job.source), fps=args.fps, max_seconds=args.audio_length)  # [1, F, D]

    batches = shard_batches(jobs, args.batch_size, rank, world)
    with tqdm(total=sum(map(len, batches)), desc=f"generating ({rank + 1}/{world})", unit="clip",
              disable=not sys.stderr.isatty()) as bar:
        generate_missing(pipe, batches, cache, encode, args.audio_length, args.guidance_scale, progress=bar.update)
    if state is not None:
        state.wait_for_everyone()
    if not is_main:
        return None

    # 5. Score on the main process, from the cache
    absent = [job.name for job in jobs if not cache.has(job)]
    if absent:
        raise UserError(f"{len(absent)} clips are missing from {cache.folder} (e.g. {absent[0]}); rerun to generate them")
    if args.command == "imagehear":
        from .imagehear_protocol import score_imagehear

        results = score_imagehear(cache, jobs, imagehear, models.tagger, models.clip_audio_encoder)
    else:
        from .vggsound_protocol import score_vggsound

        results = score_vggsound(cache, jobs, videos, args.audio_length, models.tagger, models.embedder,
                                 models.clip_audio_encoder, imagehear)
        results["missing_videos"] = missing_videos
    results["plumbing_check"] = args.random_metric_weights
    settings = {"generation": {**generation, "sample_rate": pipe.sample_rate}, "metrics": models.description, "processes": world,
                "clip_score": "100 x cosine(CLIP image, audio embedding); video: mean over frames"}
    if args.command == "vggsound":
        settings["reference_audio"] = f"first {args.audio_length:g} s; sidecar .wav/.flac or the video's track at 32 kHz"
        settings["kl"] = "KL(reference ‖ generated) per pair, mean over pairs"
    paths = write_report(args.out, args.command, results, settings)
    return {"results": {k: results[k] for k in ("fad", "kl", "clip_score", "accuracy", "mean_class_accuracy")
                        if k in results}, "files": {k: str(v) for k, v in paths.items()}}


def main(argv: list[str] | None = None) -> int:
    """Run `evaluate imagehear|vggsound ...` (or the older flag style); returns the exit status.

    User errors print one line to stderr and return 2 (`--debug` or IM2WAV_DEBUG=1: raise instead).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("--") and argv[0] not in ("--help", "--debug"):
        from .legacy_command import main as legacy_main

        return legacy_main(argv)
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("IM2WAV_DEBUG") == "1"
    try:
        _check_args(args)
        summary = _run(args)
    except (UserError, ValueError, TypeError, FileNotFoundError, ImportError) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    if summary is not None:
        with contextlib.suppress(BrokenPipeError):
            print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

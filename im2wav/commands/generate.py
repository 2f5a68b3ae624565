"""Generate audio for images and videos with a trained pipeline.

An image gives 4.096 s of audio; a video gives audio as long as the video (its frames taken at
--fps). Every output file is written to a temporary name and renamed when complete, so an
interrupted or failed run never leaves a half-written file.

examples:
  im2wav generate dog.jpg --model path/or/hub-id --out dog.wav --seed 0
  im2wav generate clip.mp4 --model M --out clip.wav --mux-video --spectrogram clip.png
  im2wav generate a.jpg b.jpg --model M --out outputs/ --num-waveforms 3
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import NamedTuple

from ..errors import UserError
from ..output_paths import check_outputs
from .parsing import command_parser

NAME = "generate"

AUDIO_SUFFIXES = (".wav", ".flac")
DEFAULT_SECONDS = 4.096


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The `im2wav generate` parser; `prog` names the program in its usage line."""
    gen = command_parser(NAME, __doc__, prog)
    gen.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files")
    gen.add_argument("--model", required=True, help="pipeline folder (save_pretrained layout) or Hugging Face Hub id")
    gen.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output .wav/.flac file; a folder when there are several outputs (several inputs "
        "or --num-waveforms > 1), files are then named after the inputs",
    )
    gen.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="audio length (default: 4.096 for an image, the video's duration for a video)",
    )
    gen.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1: off)")
    gen.add_argument("--seed", type=int, default=None, help="random seed (default: a random one, printed)")
    gen.add_argument("--num-waveforms", type=int, default=1, help="waveforms per input")
    gen.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    gen.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: all)")
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold (1: off)")
    gen.add_argument("--fps", type=float, default=30.0, help="frame rate at which video frames are taken")
    gen.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps, or auto")
    gen.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="model dtype")
    gen.add_argument(
        "--mux-video",
        action="store_true",
        help="also write a copy of each video input with the generated audio (same name as the "
        "audio file, video suffix)",
    )
    gen.add_argument(
        "--spectrogram",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write a mel spectrogram PNG (a folder when there are several outputs)",
    )
    gen.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return gen


# ------------------------------------------------------------------------------------------------
# planning: everything that can be checked before the model is loaded


_SAMPLING_FLAGS = {"temperature": "--temperature", "top_k": "--top-k", "top_p": "--top-p", "guidance_scale": "--guidance"}


def _check_options(args: argparse.Namespace) -> None:
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        raise UserError(f"--seconds must be a positive number, got {args.seconds}")
    if args.num_waveforms < 1:
        raise UserError(f"--num-waveforms must be >= 1, got {args.num_waveforms}")
    from ..image_processor import MAX_WAVEFORMS
    from ..media import check_fps
    from ..sampling import check_sampling_args

    if args.num_waveforms > MAX_WAVEFORMS:
        raise UserError(f"--num-waveforms {args.num_waveforms} is over the limit of {MAX_WAVEFORMS} per input; "
                        "run the command several times with different --seed values")
    try:
        check_fps(args.fps)
    except ValueError as err:
        raise UserError(f"--{err}") from None

    try:  # the library's own checks, reported with the command line's flag names
        check_sampling_args(args.temperature, args.top_k, args.top_p, args.guidance)
    except ValueError as err:
        name, rest = str(err).split(" ", 1)
        raise UserError(f"{_SAMPLING_FLAGS[name]} {rest}") from None


class Outputs(NamedTuple):
    """The files written for one waveform: the audio and, when asked for, its spectrogram and video."""

    audio: Path
    spectrogram: Path | None
    video: Path | None


def _plan_outputs(args: argparse.Namespace) -> list[tuple[Path, list[Outputs]]]:
    """`(input, [its files per waveform])` for every input; checks the paths before any work."""
    inputs = [Path(p) for p in args.inputs]
    for path in inputs:
        if not path.is_file():
            raise UserError(f"input not found: {path}")
    stems = [p.stem for p in inputs]
    if len(set(stems)) != len(stems):
        raise UserError("two inputs share a file name; their outputs would collide (rename one)")
    several = len(inputs) > 1 or args.num_waveforms > 1
    out: Path = args.out
    if several:
        if out.suffix.lower() in AUDIO_SUFFIXES:
            raise UserError(f"--out {out} is a file name, but there are several outputs; pass a folder")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)

        def name(stem: str, k: int) -> Path:
            return out / (f"{stem}_{k}.wav" if args.num_waveforms > 1 else f"{stem}.wav")

        audio_plan = [(path, [name(path.stem, k) for k in range(args.num_waveforms)]) for path in inputs]
    else:
        if out.suffix.lower() not in AUDIO_SUFFIXES:
            if out.is_dir():
                out = out / f"{inputs[0].stem}.wav"
            else:
                raise UserError(f"--out {out} must end in .wav or .flac (or be an existing folder)")
        if not out.parent.is_dir():
            raise UserError(f"the folder of --out {out} does not exist")
        audio_plan = [(inputs[0], [out])]

    if args.spectrogram is not None and several:
        if args.spectrogram.suffix.lower() == ".png":
            raise UserError("--spectrogram is a file name, but there are several outputs; pass a folder")
        args.spectrogram.mkdir(parents=True, exist_ok=True)
    elif args.spectrogram is not None and not args.spectrogram.parent.is_dir():
        raise UserError(f"the folder of --spectrogram {args.spectrogram} does not exist")

    def outputs(source: Path, audio: Path) -> Outputs:
        spectrogram = None if args.spectrogram is None else (
            args.spectrogram / f"{audio.stem}.png" if several else args.spectrogram)
        return Outputs(audio, spectrogram, _video_path(source, audio) if args.mux_video else None)

    plan = [(source, [outputs(source, audio) for audio in audio_paths]) for source, audio_paths in audio_plan]
    written = [path for _, files in plan for output in files for path in output if path is not None]
    check_outputs(written, inputs + [Path(args.model)], overwrite=args.overwrite)
    return plan


def _video_path(source: Path, audio_path: Path) -> Path:
    from ..audio_files import muxed_video_suffix

    return audio_path.with_suffix(muxed_video_suffix(source))


def _resolve_device(name: str):
    import torch

    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise UserError(f"--device {name!r} is not a device name (cpu, cuda, cuda:1, mps)") from err
        if device.type not in ("cpu", "cuda", "mps"):
            raise UserError(f"--device {name!r} cannot run the model; use cpu, cuda, cuda:N, mps or auto")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but CUDA is not available; use --device cpu")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise UserError(f"--device {name} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                            "device(s), numbered from 0")
        mps = getattr(torch.backends, "mps", None)
        if device.type == "mps" and not (mps is not None and mps.is_available()):
            raise UserError("--device mps was asked for but MPS (Apple GPU) is not available; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Generate and write the audio (and the asked-for spectrograms and videos).

    `argv`: the arguments after the subcommand (default: `sys.argv[1:]`); `prog`: as in `build_parser`.
    """
    args = build_parser(prog).parse_args(argv)
    import torch

    from ..image_processor import encoder_short_side
    from ..media import is_video_file, load_frames, load_video_frames, mux_audio_into_video, write_audio
    from ..quiet_loading import dtype_argument, quiet_loading
    from ..spectrogram_image import save_spectrogram_png

    _check_options(args)
    plan = _plan_outputs(args)
    kinds = {source: is_video_file(source) for source, _ in plan}
    if args.mux_video:
        not_videos = [str(s) for s, is_video in kinds.items() if not is_video]
        if not_videos:
            raise UserError(f"--mux-video needs video inputs; not a video: {', '.join(not_videos)}")
    device = _resolve_device(args.device)
    dtype = getattr(torch, args.dtype)

    from ..pipelines import Im2WavPipeline

    if args.seconds is not None and args.seconds > Im2WavPipeline.max_audio_length_in_s:
        raise UserError(
            f"--seconds {args.seconds} is longer than the {Im2WavPipeline.max_audio_length_in_s:g} s "
            "limit; generate shorter pieces"
        )
    try:
        with quiet_loading():  # loaded in its dtype: casting afterwards makes diffusers warn per model
            pipe = Im2WavPipeline.from_pretrained(args.model, **dtype_argument(dtype)).to(device)
    except OSError as err:  # hub / file-system failures; the pipeline's own checks raise ValueError
        raise UserError(f"cannot load the model {args.model}: {str(err).splitlines()[0]}") from err
    short_side = encoder_short_side(pipe.feature_extractor)
    limit = pipe.max_audio_length
    if args.seconds is not None and args.seconds > limit:
        raise UserError(f"--seconds {args.seconds} is longer than the {limit:g} s limit; generate shorter pieces")

    seed = args.seed if args.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
    if args.seed is None:
        print(f"seed: {seed}", file=sys.stderr)

    for source, files in plan:
        if kinds[source]:
            video = load_video_frames(source, fps=args.fps, max_seconds=args.seconds or limit, short_side=short_side)
            condition: dict = {"video": video.frames}
            seconds = args.seconds or video.duration
        else:
            # load_frames names what the file is when it is not an image (audio only, truncated video, ...)
            condition = {"images": load_frames(source, short_side=short_side)[0]}
            seconds = args.seconds or DEFAULT_SECONDS
        generator = torch.Generator(device="cpu" if device.type == "mps" else device).manual_seed(seed)
        audios = pipe(
            **condition,
            audio_length_in_s=seconds,
            guidance_scale=args.guidance,
            num_waveforms_per_prompt=args.num_waveforms,
            generator=generator,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            fps=args.fps,
            output_type="np",
        ).audios  # [n, 1, S]
        for audio, output in zip(audios, files):
            write_audio(output.audio, audio[0], pipe.sample_rate, overwrite=args.overwrite)
            if output.spectrogram is not None:
                save_spectrogram_png(output.spectrogram, audio[0], pipe.sample_rate, overwrite=args.overwrite)
            if output.video is not None:
                mux_audio_into_video(source, audio[0], pipe.sample_rate, output.video, overwrite=args.overwrite)
            print("wrote " + ", ".join(str(p) for p in output if p is not None), file=sys.stderr)
    return 0

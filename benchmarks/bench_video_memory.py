"""Peak memory of generating audio for long, high-resolution videos: set by the work, not by the file.

Synthesizes a 60 s 1080p and a 10 s 4K video with PyAV (H.264 at a small bitrate), then, for each,
runs `Im2WavPipeline(video_path, audio_length_in_s=4.096)` with the bundled tiny model in a fresh
subprocess and reports the peak resident memory (VmHWM) above the memory held once the model is
loaded. The target is at most 1.5 GB above the loaded model.

    python benchmarks/bench_video_memory.py                  # both videos, JSON to benchmarks/results/
    python benchmarks/bench_video_memory.py --cases 1080p_60s --seconds 4.096

The peak is read from /proc/self/status after resetting it (`/proc/self/clear_refs`), so only the
call itself is measured; Linux only.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

CASES = {
    # name: (seconds of video, width, height)
    "1080p_60s": (60.0, 1920, 1080),
    "4k_10s": (10.0, 3840, 2160),
}
TARGET_BYTES = int(1.5 * 1024**3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases: " + ", ".join(CASES))
    parser.add_argument("--seconds", type=float, default=4.096, help="audio_length_in_s of the generation")
    parser.add_argument("--model", default=str(REPO_ROOT / "assets" / "default_model"), help="pipeline folder")
    parser.add_argument("--fps", type=int, default=30, help="frame rate of the synthesized videos")
    parser.add_argument("--out", default="benchmarks/results/video_memory.json", help="JSON output file")
    return parser.parse_args(argv)


def synthesize_video(path: Path, seconds: float, width: int, height: int, fps: int) -> Path:
    """An H.264 video of a bright bar sweeping over a flat background, encoded at a small bitrate.

    Frames are built directly in YUV 4:2:0 (no RGB conversion), so writing 4K stays fast.
    """
    import av
    import numpy as np

    with av.open(str(path), mode="w") as output:
        stream = output.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 400_000
        if stream.codec_context.name == "libx264":
            stream.options = {"preset": "ultrafast"}
        planes = np.full((height * 3 // 2, width), 128, dtype=np.uint8)  # Y plane, then U and V rows
        for k in range(int(seconds * fps)):
            planes[:height] = 60
            start = (k * width // (2 * fps)) % width
            planes[:height, start : start + width // 10] = 200
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = k
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return path


# Runs in a fresh interpreter: load the model, reset the peak, generate, report.
CHILD = r"""
import json, sys, time
import torch
from im2wav import Im2WavPipeline

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)

torch.set_num_threads(1)
model, video, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
pipe = Im2WavPipeline.from_pretrained(model)
pipe.set_progress_bar_config(disable=True)
loaded = status("VmRSS")
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    reset = True
except OSError:
    reset = False
start = time.perf_counter()
audio = pipe(video, audio_length_in_s=seconds, generator=torch.Generator().manual_seed(0)).audios
elapsed = time.perf_counter() - start
print(json.dumps({"loaded_rss_bytes": loaded, "peak_rss_bytes": status("VmHWM"), "peak_was_reset": reset,
                  "seconds_elapsed": round(elapsed, 2), "audio_shape": list(audio.shape)}))
"""


def measure(model: str, video: Path, seconds: float) -> dict:
    """Run one generation in a subprocess; its memory report plus the peak above the loaded model."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, model, str(video), str(seconds)],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the measurement of {video.name} failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["peak_above_loaded_bytes"] = report["peak_rss_bytes"] - report["loaded_rss_bytes"]
    report["peak_above_loaded_mib"] = round(report["peak_above_loaded_bytes"] / 2**20, 1)
    report["within_target"] = report["peak_above_loaded_bytes"] <= TARGET_BYTES
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        print(f"bench_video_memory: error: unknown case(s) {unknown}; choose from {sorted(CASES)}", file=sys.stderr)
        return 2
    results = {}
    with tempfile.TemporaryDirectory(prefix="im2wav_bench_video_") as tmp:
        for name in names:
            seconds, width, height = CASES[name]
            start = time.perf_counter()
            video = synthesize_video(Path(tmp) / f"{name}.mp4", seconds, width, height, args.fps)
            synth_seconds = time.perf_counter() - start
            report = measure(args.model, video, args.seconds)
            report.update({"video_seconds": seconds, "width": width, "height": height, "fps": args.fps,
                           "video_file_bytes": video.stat().st_size, "synthesis_seconds": round(synth_seconds, 1)})
            results[name] = report
            print(f"{name}: peak {report['peak_above_loaded_mib']} MiB above the loaded model "
                  f"({report['seconds_elapsed']} s)", file=sys.stderr)
    summary = {
        "benchmark": "video_memory",
        "audio_length_in_s": args.seconds,
        "model": str(Path(args.model).resolve().relative_to(REPO_ROOT)) if Path(args.model).resolve().is_relative_to(
            REPO_ROOT) else args.model,
        "target_peak_above_loaded_bytes": TARGET_BYTES,
        "all_within_target": all(r["within_target"] for r in results.values()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cases": results,
    }
    text = json.dumps(summary, indent=2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    return 0 if summary["all_within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())

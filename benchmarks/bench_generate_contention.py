"""`im2wav generate` with the bundled default model, on a quiet machine and beside busy processes.

A small prior's decoding step is hundreds of tiny operations; with several intra-op threads each
one waits on a barrier, and a barrier stalls whenever another process holds a core. This runs the
README's example generation (the command `make generate` runs) once quietly and once while `--busy`
processes spin on the CPU, and reports both wall times and their ratio (target: <= 2).

    python benchmarks/bench_generate_contention.py            # writes benchmarks/results/generate_contention.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPIN = "import time\nend = time.time() + 3600\nwhile time.time() < end:\n    pass\n"


def generate(out_dir: Path, image: str) -> float:
    """Seconds for one `im2wav generate` of the bundled example (a fresh process, as `make generate`)."""
    cmd = [sys.executable, "-m", "im2wav.cli", "generate", str(REPO / image),
           "--model", str(REPO / "assets/default_model"), "--out", str(out_dir / "example.wav"),
           "--seed", "0", "--overwrite"]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"im2wav generate failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default="assets/examples/low_tone_plain_circle.png", help="the example `make generate` uses")
    p.add_argument("--busy", type=int, default=2, help="busy processes beside the generation")
    p.add_argument("--repeats", type=int, default=2, help="runs per condition (the fastest counts)")
    p.add_argument("--out", default="benchmarks/results/generate_contention.json")
    args = p.parse_args()
    report = {"cpu_count": os.cpu_count(), "busy_processes": args.busy, "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), args.image)  # warm the file cache
        report["quiet_s"] = round(min(generate(Path(tmp), args.image) for _ in range(args.repeats)), 2)
        spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.busy)]
        try:
            time.sleep(1.0)
            report["busy_s"] = round(min(generate(Path(tmp), args.image) for _ in range(args.repeats)), 2)
        finally:
            for s in spinners:
                s.kill()
    report["ratio"] = round(report["busy_s"] / report["quiet_s"], 2)
    report["load_average_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

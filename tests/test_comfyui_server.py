"""The example graphs in a real ComfyUI server (opt-in: set COMFYUI_DIR to a ComfyUI checkout).

Run with a Python that has ComfyUI's requirements and im2wav installed, e.g.::

    COMFYUI_DIR=/path/to/ComfyUI /path/to/comfyvenv/bin/python -m pytest tests/test_comfyui_server.py -q

The fixture builds a temporary ComfyUI base directory: `custom_nodes/im2wav` links to this
repository, `models/im2wav/<the examples' model name>/` holds a tiny pipeline, `input/` the
example image and video. It starts `main.py --cpu` on a free local port, posts the API-format
examples (with the audio length cut to the tiny length) to `/prompt`, waits for `/history`,
and decodes the saved files. A last test posts `/interrupt` while the LOW prior is sampling.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = [
    pytest.mark.skipif(
        not COMFYUI_DIR,
        reason="COMFYUI_DIR is not set: point it at a ComfyUI checkout (run with a Python that has "
        "ComfyUI's requirements and im2wav installed) to run the example graphs in a real ComfyUI server",
    ),
    pytest.mark.slow,
]

REPO_ROOT = Path(__file__).resolve().parents[1]
API_DIR = REPO_ROOT / "example_workflows" / "api"
logger = logging.getLogger(__name__)
START_TIMEOUT_S = 300
RUN_TIMEOUT_S = 600


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_prompt(name: str) -> dict:
    return json.loads((API_DIR / f"{name}.json").read_text())


def model_name() -> str:
    """The pipeline folder name the examples' loader asks for."""
    prompt = load_prompt("image_to_audio")
    return next(n["inputs"]["model"] for n in prompt.values() if n["class_type"] == "Im2WavModelLoader")


class ComfyServer:
    """A running ComfyUI (`main.py --cpu`) on a temporary base directory, spoken to over HTTP."""

    def __init__(self, base: Path, port: int, process: subprocess.Popen, log: Path):
        self.base, self.port, self.process, self.log = base, port, process, log
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str):
        import requests

        response = requests.get(self.url + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, payload: dict | None = None):
        import requests

        return requests.post(self.url + path, json=payload or {}, timeout=30)

    def queue_prompt(self, prompt: dict, client_id: str | None = None) -> str:
        response = self.post("/prompt", {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex})
        body = response.json()
        assert response.status_code == 200, json.dumps(body, indent=1)
        assert body.get("node_errors") == {}, body
        return body["prompt_id"]

    def wait_for_history(self, prompt_id: str, timeout_s: float = RUN_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"ComfyUI exited; see {self.log}"
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                entry = history[prompt_id]
                if entry["status"]["status_str"] in ("success", "error"):
                    return entry
            time.sleep(0.5)
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout_s} s; see {self.log}")

    def output_file(self, item: dict) -> Path:
        return self.base / "output" / item["subfolder"] / item["filename"]


@pytest.fixture(scope="module")
def tiny_builder():
    from tiny_components import TINY_SECONDS, build_tiny_pipeline

    return build_tiny_pipeline, TINY_SECONDS


@pytest.fixture(scope="module")
def comfy_server(tiny_builder):
    """Start ComfyUI on CPU with this repository as a custom node and a tiny pipeline as its model."""
    from PIL import Image
    from tiny_components import make_test_video

    build_tiny_pipeline, _ = tiny_builder
    comfyui = Path(COMFYUI_DIR).resolve()
    assert (comfyui / "main.py").is_file(), f"COMFYUI_DIR={COMFYUI_DIR} has no main.py"
    with tempfile.TemporaryDirectory(prefix="im2wav_comfyui_") as tmp:
        base = Path(tmp)
        (base / "custom_nodes").mkdir()
        (base / "custom_nodes" / "im2wav").symlink_to(REPO_ROOT, target_is_directory=True)
        pipe = build_tiny_pipeline()
        pipe.save_pretrained(base / "models" / "im2wav" / model_name())
        (base / "input").mkdir()
        Image.new("RGB", (48, 32), (200, 120, 40)).save(base / "input" / "im2wav_example.png")
        make_test_video(base / "input" / "im2wav_example.mp4", seconds=1.0, fps=10, audio_rate=None)

        port, log = free_port(), base / "comfyui.log"
        command = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                   "--base-directory", str(base), "--database-url", "sqlite:///:memory:", "--disable-auto-launch"]
        with open(log, "w") as log_file:
            process = subprocess.Popen(command, cwd=comfyui, stdout=log_file, stderr=subprocess.STDOUT)
        server = ComfyServer(base, port, process, log)
        server.sample_rate = pipe.sample_rate
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                assert process.poll() is None, f"ComfyUI exited at start:\n{log.read_text()[-4000:]}"
                try:
                    server.get("/system_stats")
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"ComfyUI did not start in {START_TIMEOUT_S} s; see {log}"
                    time.sleep(1.0)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tiny_prompt(name: str, seconds: float) -> dict:
    """An API example with every `seconds` widget set to `seconds` (the tiny pipeline's length)."""
    prompt = load_prompt(name)
    for node in prompt.values():
        if "seconds" in node["inputs"]:
            node["inputs"]["seconds"] = seconds
    return prompt


def test_the_server_loads_our_nodes_and_the_core_nodes_match_the_examples_table(comfy_server):
    from test_example_workflows import CORE_NODES

    info = comfy_server.get("/object_info")
    ours = {name: spec for name, spec in info.items() if spec.get("category") == "audio/im2wav"}
    assert set(ours) == {"Im2WavModelLoader", "Im2WavEncodeImages", "Im2WavSampleLow", "Im2WavSampleUp",
                         "Im2WavDecode", "Im2WavImageToAudio"}, f"see {comfy_server.log}"
    assert info["Im2WavModelLoader"]["input"]["required"]["model"][0] == [model_name()]
    for name, core in CORE_NODES.items():
        spec = info[name]
        declared = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
        for input_name, kind in core["inputs"].items():
            actual = declared[input_name][0]
            assert (isinstance(actual, list) or actual == "COMBO") if kind == "COMBO" else actual == kind, (name, input_name)
        assert set(spec["input"].get("optional", {})) >= core["optional"], name
        assert list(spec["output"]) == core["outputs"], name


def test_image_to_audio_example_saves_audio_at_the_models_rate(comfy_server, tiny_builder):
    import soundfile

    _, seconds = tiny_builder
    prompt_id = comfy_server.queue_prompt(tiny_prompt("image_to_audio", seconds))
    entry = comfy_server.wait_for_history(prompt_id)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"], indent=1)
    (saved,) = [item for output in entry["outputs"].values() for item in output.get("audio", [])]
    audio, rate = soundfile.read(comfy_server.output_file(saved), dtype="float32")
    assert rate == comfy_server.sample_rate
    assert audio.ndim == 1 and audio.shape[0] >= round(seconds * rate) > 0


def test_video_to_audio_example_saves_a_video_with_the_generated_audio(comfy_server, tiny_builder):
    import av

    _, seconds = tiny_builder
    prompt_id = comfy_server.queue_prompt(tiny_prompt("video_to_audio", seconds))
    entry = comfy_server.wait_for_history(prompt_id)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"], indent=1)
    (saved,) = [item for output in entry["outputs"].values() for item in output.get("images", [])]
    with av.open(str(comfy_server.output_file(saved))) as container:
        assert container.streams.video and container.streams.audio, "the saved video has no audio track"
        stream = container.streams.audio[0]
        assert stream.rate == comfy_server.sample_rate
        samples = sum(frame.samples for frame in container.decode(stream))
    assert samples > 0


async def interrupt_while_sampling(server: ComfyServer, prompt: dict, sampler_id: str) -> tuple[str, float]:
    """Queue `prompt`, post /interrupt at the sampler's first progress message; return (prompt id, time)."""
    import aiohttp

    client_id = uuid.uuid4().hex
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}") as ws:
            prompt_id = await asyncio.to_thread(server.queue_prompt, prompt, client_id)
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while time.monotonic() < deadline:
                message = await ws.receive(timeout=RUN_TIMEOUT_S)
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(message.data)
                data = event.get("data", {})
                if event["type"] == "progress" and data.get("node") == sampler_id and data["value"] >= 2:
                    interrupted_at = time.monotonic()
                    logger.info("posting /interrupt at LOW token %d of %d", data["value"], data["max"])
                    response = await asyncio.to_thread(server.post, "/interrupt")
                    assert response.status_code == 200
                    return prompt_id, interrupted_at
                assert event["type"] not in ("execution_error", "execution_success"), event
    raise AssertionError("the LOW sampler reported no progress")


def test_interrupt_stops_sampling_mid_run(comfy_server):
    prompt = tiny_prompt("image_to_audio", 2.0)  # 1000 LOW tokens: far longer than the test waits
    sampler_id = next(i for i, n in prompt.items() if n["class_type"] == "Im2WavSampleLow")
    prompt_id, interrupted_at = asyncio.run(interrupt_while_sampling(comfy_server, prompt, sampler_id))
    entry = comfy_server.wait_for_history(prompt_id, timeout_s=120)
    stopped_after = time.monotonic() - interrupted_at
    assert entry["status"]["status_str"] == "error" and not entry["outputs"]
    events = dict((name, data) for name, data in entry["status"]["messages"])
    assert "execution_interrupted" in events, entry["status"]
    assert events["execution_interrupted"]["node_type"] == "Im2WavSampleLow"
    logger.info("the prompt stopped %.1f s after /interrupt: %s", stopped_after, events["execution_interrupted"])
    assert stopped_after < 60, f"took {stopped_after:.1f} s to stop"

"""The example graphs in a real ComfyUI server (opt-in: set COMFYUI_DIR to a ComfyUI checkout).

Run with a Python that has ComfyUI's requirements and im2wav installed, e.g.::

    COMFYUI_DIR=/path/to/ComfyUI /path/to/comfyvenv/bin/python -m pytest tests/test_comfyui_server.py -q

The fixture builds a temporary ComfyUI base directory: `custom_nodes/im2wav` links to this
repository, `models/` is empty (the examples use the bundled model, `assets/default_model`),
`input/` holds ComfyUI's own `example.png` and a short video. It starts `main.py --cpu` on a free
local port, posts the API-format examples exactly as they are to `/prompt`, waits for `/history`,
and decodes the saved files: the video example must give a video whose sound lasts as long as the
video. Then "free model and node cache" (`POST /free`) must release the im2wav model, and a last
test posts `/interrupt` while the LOW prior is sampling.
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
VIDEO_SECONDS = 2.0  # the input video of the video example
# How long one `POST /free` may go unanswered before it is repeated (an answered one takes well under 1 s).
FREE_SIGNAL_WAIT_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_prompt(name: str) -> dict:
    return json.loads((API_DIR / f"{name}.json").read_text())


def model_name() -> str:
    """The model the examples' loader asks for: the bundled one."""
    prompt = load_prompt("image_to_audio")
    return next(n["inputs"]["model"] for n in prompt.values() if n["class_type"] == "Im2WavModelLoader")


def input_file(name: str, key: str) -> str:
    """The input file the example `name` loads (`key`: the loader's input name)."""
    return next(n["inputs"][key] for n in load_prompt(name).values() if key in n["inputs"] and "Load" in n["class_type"])


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
def comfy_server():
    """Start ComfyUI on CPU with this repository as a custom node and nothing in its models folder."""
    import shutil

    from tiny_components import make_test_video

    comfyui = Path(COMFYUI_DIR).resolve()
    assert (comfyui / "main.py").is_file(), f"COMFYUI_DIR={COMFYUI_DIR} has no main.py"
    with tempfile.TemporaryDirectory(prefix="im2wav_comfyui_") as tmp:
        base = Path(tmp)
        (base / "custom_nodes").mkdir()
        (base / "custom_nodes" / "im2wav").symlink_to(REPO_ROOT, target_is_directory=True)
        (base / "models").mkdir()
        (base / "input").mkdir()
        shutil.copyfile(comfyui / "input" / "example.png", base / "input" / input_file("image_to_audio", "image"))
        make_test_video(base / "input" / input_file("video_to_audio", "file"), seconds=VIDEO_SECONDS, fps=10,
                        audio_rate=44100)  # its own sound is replaced

        port, log = free_port(), base / "comfyui.log"
        command = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                   "--base-directory", str(base), "--database-url", "sqlite:///:memory:", "--disable-auto-launch"]
        with open(log, "w") as log_file:
            process = subprocess.Popen(command, cwd=comfyui, stdout=log_file, stderr=subprocess.STDOUT)
        server = ComfyServer(base, port, process, log)
        server.sample_rate = 16000  # the bundled model's
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
                         "Im2WavDecode", "Im2WavImageToAudio", "Im2WavVideoToAudio"}, f"see {comfy_server.log}"
    assert info["Im2WavModelLoader"]["input"]["required"]["model"][0] == [model_name()]  # models/ is empty
    for name, spec in ours.items():
        assert spec["description"], name
    for name, core in CORE_NODES.items():
        spec = info[name]
        declared = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
        for input_name, kind in core["inputs"].items():
            actual = declared[input_name][0]
            assert (isinstance(actual, list) or actual == "COMBO") if kind == "COMBO" else actual == kind, (name, input_name)
        assert set(spec["input"].get("optional", {})) >= core["optional"], name
        assert list(spec["output"]) == core["outputs"], name


def test_image_to_audio_example_runs_unmodified_and_saves_audio_at_the_models_rate(comfy_server):
    import soundfile

    seconds = next(n["inputs"]["seconds"] for n in load_prompt("image_to_audio").values() if "seconds" in n["inputs"])
    prompt_id = comfy_server.queue_prompt(load_prompt("image_to_audio"))
    entry = comfy_server.wait_for_history(prompt_id)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"], indent=1)
    (saved,) = [item for output in entry["outputs"].values() for item in output.get("audio", [])]
    audio, rate = soundfile.read(comfy_server.output_file(saved), dtype="float32")
    assert rate == comfy_server.sample_rate
    assert audio.ndim == 1 and audio.shape[0] >= round(seconds * rate) > 0


def test_video_example_runs_unmodified_and_its_sound_lasts_as_long_as_the_video(comfy_server):
    import av

    prompt_id = comfy_server.queue_prompt(load_prompt("video_to_audio"))
    entry = comfy_server.wait_for_history(prompt_id)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"], indent=1)
    (saved,) = [item for output in entry["outputs"].values() for item in output.get("images", [])]
    with av.open(str(comfy_server.output_file(saved))) as container:
        assert container.streams.video and len(container.streams.audio) == 1, "the saved video has no audio track"
        video = container.streams.video[0]
        video_seconds = float(video.duration * video.time_base) if video.duration else container.duration / av.time_base
        stream = container.streams.audio[0]
        assert stream.rate == comfy_server.sample_rate
        samples = sum(frame.samples for frame in container.decode(stream))
    logger.info("saved video: %.3f s of video, %.3f s of sound", video_seconds, samples / stream.rate)
    assert abs(video_seconds - VIDEO_SECONDS) < 0.15
    assert abs(samples / stream.rate - VIDEO_SECONDS) < 0.1  # AAC frames hold 1024 samples


def test_free_model_and_node_cache_releases_the_im2wav_model(comfy_server):
    """What the UI's "free model and node cache" button posts; the loader logs when the model is released.

    ComfyUI frees in its prompt worker, at the worker's next wake-up, which `/free` only signals.
    A signal sent while the worker is busy between reading its flags and waiting again (it runs a
    garbage collection there after a prompt) wakes nobody, and the worker then sleeps until the
    next prompt or 1000 s (ComfyUI 0.3.64, main.py `prompt_worker`). So, as a user would press the
    button again, the request is repeated while the model stays loaded.
    """
    prompt_id = comfy_server.queue_prompt(load_prompt("image_to_audio"))
    assert comfy_server.wait_for_history(prompt_id)["status"]["status_str"] == "success"
    released_before = comfy_server.log.read_text().count("im2wav: released the model")

    def request_free() -> float:
        assert comfy_server.post("/free", {"unload_models": True, "free_memory": True}).status_code == 200
        return time.monotonic()

    deadline = time.monotonic() + 180  # the machine may be busy
    requests, requested_at = 1, request_free()
    while comfy_server.log.read_text().count("im2wav: released the model") == released_before:
        assert time.monotonic() < deadline, f"the im2wav model was not released:\n{comfy_server.log.read_text()[-3000:]}"
        if time.monotonic() - requested_at > FREE_SIGNAL_WAIT_S:  # the worker missed it
            requests, requested_at = requests + 1, request_free()
        time.sleep(0.2)
    logger.info("the im2wav model was released after %d request(s) to free memory", requests)
    # and the next run loads it again, from disk
    loads_before = comfy_server.log.read_text().count("im2wav: loaded the model")
    prompt_id = comfy_server.queue_prompt(load_prompt("image_to_audio"))
    assert comfy_server.wait_for_history(prompt_id)["status"]["status_str"] == "success"
    assert comfy_server.log.read_text().count("im2wav: loaded the model") == loads_before + 1


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

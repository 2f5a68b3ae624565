"""The nodes as a ComfyUI user meets them: the bundled model, ComfyUI's VIDEO, ComfyUI's memory
management, a quiet console, and a description and tooltip everywhere.

Stand-ins for ComfyUI's modules come from tests/test_nodes.py (`comfy_stubs`); this file adds
stand-ins for ComfyUI's VIDEO objects (`comfy_api.input_impl.VideoFromFile` /
`VideoFromComponents`, `comfy_api.util.VideoComponents`) with the methods the nodes use.
"""

from __future__ import annotations

import gc
import sys
import types
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch
from test_nodes import (  # noqa: F401  (comfy_stubs, tiny_model, tiny_pipeline_folder are fixtures)
    RecordingPipeline,
    assert_comfy_audio,
    comfy_image,
    comfy_stubs,
    model_of,
    sampler_defaults,
    tiny_model,
    tiny_pipeline_folder,
)
from tiny_components import TINY_SECONDS, make_test_video

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from nodes import NODE_CLASS_MAPPINGS, comfy_hooks  # noqa: E402

sys.path.remove(str(REPO_ROOT))


# ---------------------------------------------------------------------------------------------
# Stand-ins for ComfyUI's VIDEO
# ---------------------------------------------------------------------------------------------


@dataclass
class VideoComponents:
    """comfy_api.util.VideoComponents: images [F, H, W, C] float in 0..1, a Fraction frame rate, AUDIO."""

    images: torch.Tensor
    frame_rate: Fraction
    audio: dict | None = None
    metadata: dict | None = None


class VideoFromFile:
    """comfy_api.input_impl.VideoFromFile: what Load Video gives; the stream source is the file path."""

    def __init__(self, path):
        self.path = path

    def get_stream_source(self):
        return self.path

    def get_duration(self) -> float:
        with av.open(self.path) as container:
            return float(container.duration / av.time_base)

    def get_components(self):
        raise AssertionError("a file-backed video must not be decoded into float frames by the node")


class VideoFromComponents:
    """comfy_api.input_impl.VideoFromComponents: what Create Video gives; no file behind it."""

    def __init__(self, components: VideoComponents):
        self.components = components

    def get_stream_source(self):
        import io

        return io.BytesIO(b"an encoded copy")

    def get_components(self) -> VideoComponents:
        return self.components


@pytest.fixture
def comfy_video_api(comfy_stubs, monkeypatch):
    comfy_api = types.ModuleType("comfy_api")
    comfy_api.__path__ = []
    input_impl = types.ModuleType("comfy_api.input_impl")
    input_impl.VideoFromFile, input_impl.VideoFromComponents = VideoFromFile, VideoFromComponents
    util = types.ModuleType("comfy_api.util")
    util.VideoComponents = VideoComponents
    for name, module in {"comfy_api": comfy_api, "comfy_api.input_impl": input_impl, "comfy_api.util": util}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return comfy_stubs


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


# ---------------------------------------------------------------------------------------------
# The bundled model
# ---------------------------------------------------------------------------------------------


def test_the_bundled_model_is_always_offered_first_and_loads(comfy_stubs):
    choices = NODE_CLASS_MAPPINGS["Im2WavModelLoader"].INPUT_TYPES()["required"]["model"][0]
    assert choices == [comfy_hooks.BUNDLED_MODEL]  # nothing in models/im2wav/ yet
    assert Path(comfy_hooks.pipeline_path(comfy_hooks.BUNDLED_MODEL)) == REPO_ROOT / "assets" / "default_model"
    (model,) = NODE_CLASS_MAPPINGS["Im2WavModelLoader"]().load(comfy_hooks.BUNDLED_MODEL, "auto", "float32")
    assert model.sample_rate == 16000 and model.name == comfy_hooks.BUNDLED_MODEL


def test_the_example_workflows_name_the_bundled_model():
    import json

    for path in sorted((REPO_ROOT / "example_workflows").rglob("*.json")):
        text = json.loads(path.read_text())
        nodes = text.values() if "nodes" not in text else text["nodes"]
        loaders = [n for n in nodes if n.get("class_type", n.get("type")) == "Im2WavModelLoader"]
        assert loaders, path
        for node in loaders:
            model = node["inputs"]["model"] if "inputs" in node and "model" in node["inputs"] else node["widgets_values"][0]
            assert model == comfy_hooks.BUNDLED_MODEL, path


# ---------------------------------------------------------------------------------------------
# ComfyUI's memory management
# ---------------------------------------------------------------------------------------------


def test_the_loader_puts_every_component_under_one_model_patcher(tiny_model, comfy_stubs):
    (patcher,) = comfy_stubs.patchers
    assert tiny_model.patcher is patcher
    assert patcher.load_device == torch.device("cpu") and patcher.offload_device == torch.device("cpu")
    pipe = tiny_model.pipeline
    holder = patcher.model
    for name in ("image_encoder", "low_prior", "up_prior", "vqvae"):
        assert getattr(holder, name) is getattr(pipe, name), name
    # ComfyUI moves the holder; the pipeline's own components move with it (the same parameters)
    assert {p.data_ptr() for p in holder.parameters()} == {
        p.data_ptr() for name in ("image_encoder", "low_prior", "up_prior", "vqvae") for p in getattr(pipe, name).parameters()}
    holder.to(torch.float64)
    assert pipe.low_prior.dtype == torch.float64 and pipe.vqvae.dtype == torch.float64
    holder.to(torch.float32)


def test_every_node_has_comfyui_load_the_model_before_its_library_call(comfy_stubs):
    pipe = RecordingPipeline(chunks=1)
    model = model_of(pipe, comfy_stubs)
    conditioning, = NODE_CLASS_MAPPINGS["Im2WavEncodeImages"]().encode(model, comfy_image(1), "frames of one video", 30.0)
    low, = NODE_CLASS_MAPPINGS["Im2WavSampleLow"]().sample(
        model, conditioning, **sampler_defaults(NODE_CLASS_MAPPINGS["Im2WavSampleLow"]))
    up, = NODE_CLASS_MAPPINGS["Im2WavSampleUp"]().sample(model, low, 1.0, 0, 1.0, 0)
    NODE_CLASS_MAPPINGS["Im2WavDecode"]().decode(model, up)
    NODE_CLASS_MAPPINGS["Im2WavImageToAudio"]().generate(
        model, comfy_image(1), **sampler_defaults(NODE_CLASS_MAPPINGS["Im2WavImageToAudio"]))
    assert comfy_stubs.events == ["load", "encode_images", "load", "sample_low", "load", "sample_up", "load",
                                  "decode", "load", "__call__"]
    assert all(patcher is model.patcher and full for patcher, full in comfy_stubs.loads)


def test_freeing_models_offloads_and_dropping_the_node_output_frees_the_pipeline(comfy_stubs, tiny_pipeline_folder):
    import comfy.model_management

    (comfy_stubs.models_dir / "im2wav").mkdir()
    (comfy_stubs.models_dir / "im2wav" / "tiny").symlink_to(tiny_pipeline_folder, target_is_directory=True)
    (model,) = NODE_CLASS_MAPPINGS["Im2WavModelLoader"]().load("tiny", "auto", "float32")
    NODE_CLASS_MAPPINGS["Im2WavEncodeImages"]().encode(model, comfy_image(1), "frames of one video", 30.0)
    assert [ref() for ref in comfy_stubs.loaded] == [model.patcher]
    detached = []
    model.patcher.detach = lambda unpatch_all=True, original=model.patcher.detach: detached.append(original())
    comfy.model_management.unload_all_models()  # "free model and node cache", part 1
    assert detached == [model.patcher.model]
    # part 2: the node cache lets go of the loader's output; nothing of ours keeps the model alive
    pipeline, patcher = weakref.ref(model.pipeline), weakref.ref(model.patcher)
    del model, detached
    comfy_stubs.patchers.clear(), comfy_stubs.loads.clear()  # the stand-in's own records
    gc.collect()
    assert pipeline() is None and patcher() is None


# ---------------------------------------------------------------------------------------------
# ComfyUI's VIDEO
# ---------------------------------------------------------------------------------------------


def test_video_node_passes_a_loaded_video_file_and_its_duration(comfy_video_api, tmp_path):
    path = tmp_path / "clip.mp4"
    make_test_video(path, seconds=1.5, fps=10, audio_rate=None)
    pipe = RecordingPipeline(chunks=1)
    pipe.sample_rate = 16000  # a rate AAC takes: the node muxes the returned sound into a copy of the video
    node = NODE_CLASS_MAPPINGS["Im2WavVideoToAudio"]
    widgets = sampler_defaults(node)
    assert widgets["seconds"] == 0.0  # 0: as long as the video
    NODE_CLASS_MAPPINGS["Im2WavVideoToAudio"]().generate(model_of(pipe, comfy_video_api), VideoFromFile(str(path)),
                                                          **widgets)
    (argument, images), kwargs = pipe.calls["__call__"]
    assert argument == "video" and images == str(path) and kwargs["fps"] == 30.0  # decoded by the library at the models' rate
    assert kwargs["audio_length_in_s"] == pytest.approx(VideoFromFile(str(path)).get_duration())
    assert kwargs["num_waveforms_per_prompt"] == 1

    NODE_CLASS_MAPPINGS["Im2WavVideoToAudio"]().generate(model_of(pipe, comfy_video_api), VideoFromFile(str(path)),
                                                          **{**widgets, "seconds": 0.5})
    assert pipe.calls["__call__"][1]["audio_length_in_s"] == 0.5


def test_video_node_takes_the_frames_and_rate_of_a_video_made_from_frames(comfy_video_api):
    frames = comfy_image(batch=12)
    video = VideoFromComponents(VideoComponents(images=frames, frame_rate=Fraction(24)))
    pipe = RecordingPipeline(chunks=1)
    node = NODE_CLASS_MAPPINGS["Im2WavVideoToAudio"]
    audio, out_video = node().generate(model_of(pipe, comfy_video_api), video, **sampler_defaults(node))
    (argument, images), kwargs = pipe.calls["__call__"]
    assert argument == "video" and images is frames and kwargs["fps"] == 24.0 and kwargs["audio_length_in_s"] == pytest.approx(0.5)
    assert out_video.components.images is frames and out_video.components.frame_rate == 24
    assert out_video.components.audio is audio


def test_video_node_refuses_a_video_longer_than_the_model_makes_with_a_fix(comfy_video_api):
    video = VideoFromComponents(VideoComponents(images=comfy_image(batch=4), frame_rate=Fraction(1, 60)))  # 240 s
    node = NODE_CLASS_MAPPINGS["Im2WavVideoToAudio"]
    with pytest.raises(ValueError, match="lasts 240 s.*set seconds to at most 120"):
        node().generate(model_of(RecordingPipeline(), comfy_video_api), video, **sampler_defaults(node))


@pytest.mark.slow
def test_video_node_gives_a_video_whose_sound_lasts_as_long_as_the_video(tiny_model, comfy_video_api, tmp_path):
    path = tmp_path / "clip.mp4"
    make_test_video(path, seconds=TINY_SECONDS * 2, fps=10, audio_rate=8000)  # its own sound is replaced
    node = NODE_CLASS_MAPPINGS["Im2WavVideoToAudio"]
    audio, video = node().generate(tiny_model, VideoFromFile(str(path)), **sampler_defaults(node))
    duration = VideoFromFile(str(path)).get_duration()
    assert_comfy_audio(audio, sample_rate=tiny_model.sample_rate, batch=1)
    assert audio["waveform"].shape[-1] == round(duration * tiny_model.sample_rate)
    out = Path(video.path)
    assert out.parent == Path(sys.modules["folder_paths"].get_temp_directory())
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1 and container.streams.audio[0].rate == tiny_model.sample_rate
    assert audio_seconds(out) == pytest.approx(duration, abs=0.07)  # AAC frames are 1024 samples


# ---------------------------------------------------------------------------------------------
# A quiet console; descriptions and tooltips
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_loading_and_generating_print_nothing(comfy_stubs, tiny_pipeline_folder, capfd):
    import warnings

    (comfy_stubs.models_dir / "im2wav").mkdir()
    (comfy_stubs.models_dir / "im2wav" / "tiny").symlink_to(tiny_pipeline_folder, target_is_directory=True)
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning on every load is console noise too
        (model,) = NODE_CLASS_MAPPINGS["Im2WavModelLoader"]().load("tiny", "auto", "bfloat16")
    node = NODE_CLASS_MAPPINGS["Im2WavImageToAudio"]
    (model,) = NODE_CLASS_MAPPINGS["Im2WavModelLoader"]().load("tiny", "auto", "float32")
    node().generate(model, comfy_image(1), **{**sampler_defaults(node), "seconds": TINY_SECONDS})
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)


@pytest.mark.parametrize("name", sorted(NODE_CLASS_MAPPINGS))
def test_every_node_has_a_description_and_every_input_a_tooltip(name, comfy_stubs):
    cls = NODE_CLASS_MAPPINGS[name]
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 20, name
    spec = cls.INPUT_TYPES()
    for input_name, declaration in {**spec["required"], **spec.get("optional", {})}.items():
        assert len(declaration) == 2 and declaration[1].get("tooltip"), f"{name}.{input_name} has no tooltip"

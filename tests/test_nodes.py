"""The ComfyUI node pack (`nodes/`, the repository root's `__init__.py`) without ComfyUI.

Stand-ins for ComfyUI's `folder_paths`, `comfy.utils` and `comfy.model_management` go into
`sys.modules` for a test and come out after it (the `comfy_stubs` fixture). Node declarations are
checked against the classic node API; node functions run against a recording stand-in pipeline
(argument conversion, progress, interruption, seeds) and against a tiny real pipeline saved to a
temporary `models/im2wav/tiny/` folder.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import io
import os
import subprocess
import sys
import types
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # `nodes` as a package for these tests; ComfyUI loads it relatively
from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
from nodes.types import Im2WavConditioning, Im2WavModel, Im2WavTokens  # noqa: E402
from tiny_components import TINY_SECONDS  # noqa: E402

sys.path.remove(str(REPO_ROOT))

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

CLASSIC_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "IMAGE", "AUDIO", "MASK", "VIDEO"}
CUSTOM_TYPES = {"IM2WAV_MODEL", "IM2WAV_CONDITIONING", "IM2WAV_TOKENS"}


# ---------------------------------------------------------------------------------------------
# Stand-ins for ComfyUI's modules
# ---------------------------------------------------------------------------------------------


class InterruptProcessingException(Exception):
    """Stand-in for comfy.model_management.InterruptProcessingException."""


@dataclass
class ComfyStubs:
    """What the stand-in ComfyUI modules recorded, and the switch that interrupts processing."""

    models_dir: Path
    progress: list[tuple[int, int]] = field(default_factory=list)
    interrupt_after: int | None = None  # raise at this many interrupt checks
    interrupt_checks: int = 0
    patchers: list = field(default_factory=list)  # every ModelPatcher made
    loads: list = field(default_factory=list)  # (patcher, force_full_load) per load_models_gpu call
    loaded: list = field(default_factory=list)  # weak references, as comfy.model_management keeps them
    events: list = field(default_factory=list)  # "load" and the library calls, in order


def make_folder_paths(state: ComfyStubs) -> types.ModuleType:
    """A `folder_paths` with the functions the nodes use and ComfyUI's semantics for them."""
    module = types.ModuleType("folder_paths")
    module.models_dir = str(state.models_dir)
    module.folder_names_and_paths = {}

    def add_model_folder_path(folder_name, full_folder_path, is_default=False):
        paths, _ = module.folder_names_and_paths.setdefault(folder_name, ([], set()))
        if full_folder_path not in paths:
            paths.insert(0, full_folder_path) if is_default else paths.append(full_folder_path)

    def get_folder_paths(folder_name):
        return list(module.folder_names_and_paths[folder_name][0])

    def get_filename_list(folder_name):
        names = set()
        for root in get_folder_paths(folder_name):
            for directory, _, files in os.walk(root, followlinks=True):
                names.update(os.path.relpath(os.path.join(directory, f), root) for f in files)
        return sorted(names)

    def get_full_path(folder_name, filename):
        for root in get_folder_paths(folder_name):
            path = os.path.join(root, os.path.relpath(os.path.join("/", filename), "/"))
            if os.path.isfile(path):
                return path
        return None

    module.get_temp_directory = lambda: str(state.models_dir.parent / "temp")
    module.add_model_folder_path = add_model_folder_path
    module.get_folder_paths = get_folder_paths
    module.get_filename_list = get_filename_list
    module.get_full_path = get_full_path
    return module


class ModelPatcher:
    """Stand-in for comfy.model_patcher.ModelPatcher: holds a module, moves it on load and detach."""

    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False, *, state=None):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        state.patchers.append(self)

    def detach(self, unpatch_all=True):
        self.model.to(self.offload_device)
        return self.model


def make_comfy(state: ComfyStubs) -> dict[str, types.ModuleType]:
    """`comfy`, `comfy.utils` (ProgressBar), `comfy.model_management` (devices, loading, interrupt)
    and `comfy.model_patcher` (ModelPatcher), with ComfyUI's semantics for what the nodes use."""
    comfy = types.ModuleType("comfy")
    comfy.__path__ = []
    utils = types.ModuleType("comfy.utils")
    management = types.ModuleType("comfy.model_management")
    model_patcher = types.ModuleType("comfy.model_patcher")
    model_patcher.ModelPatcher = lambda *args, **kwargs: ModelPatcher(*args, **kwargs, state=state)

    def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                        force_full_load=False):
        for patcher in models:
            state.events.append("load")
            state.loads.append((patcher, force_full_load))
            patcher.model.to(patcher.load_device)
            if not any(ref() is patcher for ref in state.loaded):
                state.loaded.append(weakref.ref(patcher))  # ComfyUI's LoadedModel holds the patcher weakly

    def unload_all_models():
        for ref in state.loaded:
            if ref() is not None:
                ref().detach()
        state.loaded.clear()

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            self.total = self.total if total is None else total
            state.progress.append((value, self.total))

    def throw_exception_if_processing_interrupted():
        state.interrupt_checks += 1
        if state.interrupt_after is not None and state.interrupt_checks >= state.interrupt_after:
            raise InterruptProcessingException()

    utils.ProgressBar = ProgressBar
    management.InterruptProcessingException = InterruptProcessingException
    management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    management.get_torch_device = lambda: torch.device("cpu")
    management.unet_offload_device = lambda: torch.device("cpu")
    management.load_models_gpu = load_models_gpu
    management.unload_all_models = unload_all_models
    comfy.utils, comfy.model_management, comfy.model_patcher = utils, management, model_patcher
    return {"comfy": comfy, "comfy.utils": utils, "comfy.model_management": management,
            "comfy.model_patcher": model_patcher}


@pytest.fixture
def comfy_stubs(tmp_path, monkeypatch) -> ComfyStubs:
    """Install stand-in ComfyUI modules into sys.modules; monkeypatch restores them afterwards."""
    state = ComfyStubs(models_dir=tmp_path / "models")
    state.models_dir.mkdir()
    monkeypatch.setitem(sys.modules, "folder_paths", make_folder_paths(state))
    for name, module in make_comfy(state).items():
        monkeypatch.setitem(sys.modules, name, module)
    return state


# ---------------------------------------------------------------------------------------------
# A recording stand-in pipeline: checks what the nodes hand to the library
# ---------------------------------------------------------------------------------------------


class RecordingPipeline:
    """Has the `Im2WavPipeline` methods the nodes call; records arguments, reports progress per chunk."""

    sample_rate = 12345
    device = torch.device("cpu")

    def __init__(self, chunks: int = 4):
        self.calls: dict[str, tuple[tuple, dict]] = {}
        self.chunks = chunks
        self.events: list = []
        self.max_audio_length = 120.0

    def _record(self, name, args, kwargs):
        self.calls[name] = (args, kwargs)
        self.events.append(name)

    def _run_chunks(self, callback):
        for step in range(1, self.chunks + 1):
            if callback is not None:
                callback(step, self.chunks)

    def encode_images(self, images=None, fps=30.0, max_seconds=None, video=None):
        argument = ("images", images) if video is None else ("video", video)
        self._record("encode_images", argument, {"fps": fps, "max_seconds": max_seconds})
        return torch.zeros(images.shape[0] if video is None else 1, 3, 8)  # [B, F, D]

    def sample_low(self, image_embeds, **kwargs):
        self._record("sample_low", (image_embeds,), kwargs)
        self._run_chunks(kwargs.get("callback"))
        n = image_embeds.shape[0] * kwargs.get("num_waveforms_per_prompt", 1)
        return torch.randint(0, 16, (n, 8), generator=kwargs["generator"])  # [B*n, T_low]

    def sample_up(self, low_tokens, image_embeds, **kwargs):
        self._record("sample_up", (low_tokens, image_embeds), kwargs)
        self._run_chunks(kwargs.get("callback"))
        return torch.randint(0, 16, (low_tokens.shape[0], 4 * low_tokens.shape[1]), generator=kwargs["generator"])

    def decode(self, up_tokens):
        self._record("decode", (up_tokens,), {})
        return torch.zeros(up_tokens.shape[0], 1, 8 * up_tokens.shape[1], dtype=torch.float64)  # [B, 1, S]

    def __call__(self, images=None, video=None, **kwargs):
        self._record("__call__", ("images", images) if video is None else ("video", video), kwargs)
        on_step_end = kwargs["callback_on_step_end"]
        self._run_chunks(lambda step, total: on_step_end(self, step, total, {}))
        return types.SimpleNamespace(audios=torch.zeros(2, 1, 64))


def model_of(pipe: RecordingPipeline, state: ComfyStubs) -> Im2WavModel:
    """The IM2WAV_MODEL value for a recording pipeline; its library calls land in `state.events`."""
    import comfy.model_patcher

    pipe.events = state.events
    patcher = comfy.model_patcher.ModelPatcher(torch.nn.Module(), load_device=torch.device("cpu"),
                                               offload_device=torch.device("cpu"))
    return Im2WavModel(pipeline=pipe, patcher=patcher, name="recording")


def sampler_defaults(node_cls) -> dict:
    """The default widget values of a node (everything except its links)."""
    required = node_cls.INPUT_TYPES()["required"]
    return {name: spec[1]["default"] for name, spec in required.items() if len(spec) > 1 and "default" in spec[1]}


def comfy_image(batch: int = 2, height: int = 32, width: int = 24) -> torch.Tensor:
    """A ComfyUI IMAGE: [B, H, W, C] float32 in 0..1."""
    return torch.rand(batch, height, width, 3, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------------------------
# Packaging: how ComfyUI finds the nodes, and that im2wav never needs ComfyUI
# ---------------------------------------------------------------------------------------------


def test_root_init_reexports_the_mappings_when_loaded_the_way_comfyui_loads_it(monkeypatch):
    # ComfyUI has a top-level `nodes` module of its own; ours must be reached relatively.
    monkeypatch.setitem(sys.modules, "nodes", types.ModuleType("nodes"))
    name = str(REPO_ROOT / "custom_nodes_probe").replace(".", "_x_")  # a path-like name, as ComfyUI uses
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    try:
        spec.loader.exec_module(module)
        assert set(module.NODE_CLASS_MAPPINGS) == set(NODE_CLASS_MAPPINGS)
        assert module.NODE_DISPLAY_NAME_MAPPINGS == NODE_DISPLAY_NAME_MAPPINGS
        assert "folder_paths" not in sys.modules and "comfy" not in sys.modules
    finally:
        for key in [k for k in sys.modules if k.startswith(name + ".")]:
            del sys.modules[key]


def test_importing_im2wav_and_the_nodes_never_imports_comfyui():
    code = (
        "import sys; import im2wav; sys.path.insert(0, sys.argv[1]); import nodes; "
        "bad = [m for m in sys.modules if m == 'folder_paths' or m == 'comfy' or m.startswith('comfy.')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(REPO_ROOT)], check=True, cwd=REPO_ROOT / "tests")


def test_pyproject_installs_no_top_level_nodes_package_and_has_registry_metadata():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]
    assert all(p.split(".")[0] != "nodes" for p in packages), packages
    comfy = pyproject["tool"].get("comfy")
    assert comfy is not None, "pyproject.toml needs a [tool.comfy] table for the ComfyUI registry"
    assert {"PublisherId", "DisplayName", "Icon", "includes"} <= set(comfy)


def test_requirements_txt_is_installable_by_comfyui_manager_and_matches_pyproject():
    lines = [ln.strip() for ln in (REPO_ROOT / "requirements.txt").read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    assert not any(ln.startswith("-e") for ln in lines), "ComfyUI-Manager does not allow editable installs"
    assert lines[-1] == ".", "the last line installs the im2wav library from the node folder"
    # Every runtime dependency except torch/torchaudio (which ComfyUI brings), with pyproject's bounds.
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    expected = {d for d in dependencies if not d.startswith(("torch=", "torch>", "torch<", "torchaudio"))}
    assert set(lines[:-1]) == expected


# ---------------------------------------------------------------------------------------------
# Declarations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(NODE_CLASS_MAPPINGS))
def test_node_declaration_is_a_valid_classic_comfyui_node(name, comfy_stubs):
    cls = NODE_CLASS_MAPPINGS[name]
    assert name in NODE_DISPLAY_NAME_MAPPINGS
    assert cls.CATEGORY == "audio/im2wav"
    assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES)
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
    assert set(cls.RETURN_TYPES) <= CLASSIC_TYPES | CUSTOM_TYPES
    assert callable(getattr(cls, cls.FUNCTION))
    assert cls.__doc__, f"{name} needs a docstring"

    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"} and "required" in spec
    inputs = {**spec["required"], **spec.get("optional", {})}
    for input_name, declaration in inputs.items():
        assert isinstance(declaration, tuple) and 1 <= len(declaration) <= 2, input_name
        kind, options = declaration[0], (declaration[1] if len(declaration) == 2 else {})
        if isinstance(kind, list):  # a combo
            assert all(isinstance(choice, str) for choice in kind)
            if "default" in options:
                assert options["default"] in kind, input_name
        else:
            assert kind in CLASSIC_TYPES | CUSTOM_TYPES, (input_name, kind)
        if kind in ("INT", "FLOAT"):
            assert options["min"] <= options["default"] <= options["max"], input_name
            if kind == "INT":
                assert all(isinstance(options[k], int) for k in ("min", "default", "max")), input_name

    # ComfyUI calls FUNCTION with the inputs as keyword arguments.
    parameters = list(inspect.signature(getattr(cls, cls.FUNCTION)).parameters)[1:]
    assert set(parameters) == set(inputs), (parameters, list(inputs))


def test_seed_widgets_span_the_whole_comfyui_range(comfy_stubs):
    for name in ("Im2WavSampleLow", "Im2WavSampleUp", "Im2WavImageToAudio", "Im2WavVideoToAudio"):
        kind, options = NODE_CLASS_MAPPINGS[name].INPUT_TYPES()["required"]["seed"]
        assert kind == "INT" and {k: v for k, v in options.items() if k != "tooltip"} == {
            "default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}


def test_model_choices_are_the_pipeline_folders_below_models_im2wav(comfy_stubs):
    root = comfy_stubs.models_dir / "im2wav"
    for folder in ("b-model", "a-model", "org/nested"):
        (root / folder).mkdir(parents=True)
        (root / folder / "model_index.json").write_text("{}")
    (root / "not-a-pipeline").mkdir()
    (root / "not-a-pipeline" / "weights.safetensors").write_text("")
    choices = NODE_CLASS_MAPPINGS["Im2WavModelLoader"].INPUT_TYPES()["required"]["model"][0]
    from nodes import comfy_hooks

    assert choices == [comfy_hooks.BUNDLED_MODEL, "a-model", "b-model", "org/nested"]

    assert comfy_hooks.pipeline_path("org/nested") == str(root / "org" / "nested")
    with pytest.raises(ValueError, match="models>/im2wav/missing/"):
        comfy_hooks.pipeline_path("missing")


def test_extra_model_paths_for_im2wav_are_kept(comfy_stubs, tmp_path):
    import folder_paths

    extra = tmp_path / "elsewhere"
    (extra / "far").mkdir(parents=True)
    (extra / "far" / "model_index.json").write_text("{}")
    folder_paths.add_model_folder_path("im2wav", str(extra))  # what extra_model_paths.yaml does
    assert NODE_CLASS_MAPPINGS["Im2WavModelLoader"].INPUT_TYPES()["required"]["model"][0][1:] == ["far"]


# ---------------------------------------------------------------------------------------------
# Node functions against a recording pipeline
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, argument", [("frames of one video", "video"), ("batch of single images", "images")])
def test_encode_images_passes_the_image_batch_as_frames_or_as_single_images(mode, argument, comfy_stubs):
    pipe = RecordingPipeline()
    images = comfy_image(batch=5)
    (conditioning,) = NODE_CLASS_MAPPINGS["Im2WavEncodeImages"]().encode(model_of(pipe, comfy_stubs), images, mode, 12.5)
    (name, passed), kwargs = pipe.calls["encode_images"]
    assert name == argument and passed is images and kwargs == {"fps": 12.5, "max_seconds": None}
    assert isinstance(conditioning, Im2WavConditioning)


def test_encode_images_max_seconds_reaches_the_library(comfy_stubs):
    pipe = RecordingPipeline()
    NODE_CLASS_MAPPINGS["Im2WavEncodeImages"]().encode(model_of(pipe, comfy_stubs), comfy_image(batch=5), "frames of one video", 30.0, 1.5)
    _, kwargs = pipe.calls["encode_images"]
    assert kwargs == {"fps": 30.0, "max_seconds": 1.5}


def test_samplers_pass_their_widgets_and_report_progress_for_every_chunk(comfy_stubs):
    pipe = RecordingPipeline(chunks=3)
    conditioning = Im2WavConditioning(torch.zeros(2, 1, 8))
    low_node = NODE_CLASS_MAPPINGS["Im2WavSampleLow"]()
    (low,) = low_node.sample(model_of(pipe, comfy_stubs), conditioning, seconds=1.024, guidance_scale=2.5, temperature=0.9, top_k=7,
                             top_p=0.8, seed=5, batch_size=3)
    _, kwargs = pipe.calls["sample_low"]
    assert {k: kwargs[k] for k in ("audio_length_in_s", "guidance_scale", "temperature", "top_k", "top_p",
                                   "num_waveforms_per_prompt")} == {
        "audio_length_in_s": 1.024, "guidance_scale": 2.5, "temperature": 0.9, "top_k": 7, "top_p": 0.8,
        "num_waveforms_per_prompt": 3}
    assert kwargs["generator"].initial_seed() == 5
    assert low.level == "low" and low.tokens.shape[0] == 6
    assert comfy_stubs.progress == [(1, 3), (2, 3), (3, 3)] and comfy_stubs.interrupt_checks == 3

    (up,) = NODE_CLASS_MAPPINGS["Im2WavSampleUp"]().sample(model_of(pipe, comfy_stubs), low, temperature=1.1, top_k=0, top_p=1.0, seed=6)
    (low_tokens, image_embeds), kwargs = pipe.calls["sample_up"]
    assert low_tokens is low.tokens and image_embeds is conditioning.image_embeds
    assert kwargs["temperature"] == 1.1 and kwargs["generator"].initial_seed() == 6
    assert up.level == "up" and comfy_stubs.interrupt_checks == 6


def test_interrupt_stops_sampling_at_the_next_chunk(comfy_stubs):
    pipe = RecordingPipeline(chunks=10)
    comfy_stubs.interrupt_after = 2
    with pytest.raises(InterruptProcessingException):
        NODE_CLASS_MAPPINGS["Im2WavSampleLow"]().sample(
            model_of(pipe, comfy_stubs), Im2WavConditioning(torch.zeros(1, 1, 8)), **sampler_defaults(NODE_CLASS_MAPPINGS["Im2WavSampleLow"]))
    assert comfy_stubs.progress == [(1, 10), (2, 10)]


@pytest.mark.parametrize("seed", [0, 2**63 - 1, 2**63, 0xFFFFFFFFFFFFFFFF])
def test_every_comfyui_seed_maps_to_a_torch_generator(seed, comfy_stubs):
    pipe = RecordingPipeline()
    widgets = {**sampler_defaults(NODE_CLASS_MAPPINGS["Im2WavSampleLow"]), "seed": seed}
    NODE_CLASS_MAPPINGS["Im2WavSampleLow"]().sample(model_of(pipe, comfy_stubs), Im2WavConditioning(torch.zeros(1, 1, 8)), **widgets)
    assert pipe.calls["sample_low"][1]["generator"].initial_seed() == seed


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_seeds_outside_the_comfyui_range_are_refused(seed, comfy_stubs):
    widgets = {**sampler_defaults(NODE_CLASS_MAPPINGS["Im2WavSampleLow"]), "seed": seed}
    with pytest.raises(ValueError, match="seed must be between 0 and"):
        NODE_CLASS_MAPPINGS["Im2WavSampleLow"]().sample(model_of(RecordingPipeline(), comfy_stubs), Im2WavConditioning(torch.zeros(1, 1, 8)),
                                                        **widgets)


def test_tokens_of_the_wrong_level_are_refused_with_a_fix(comfy_stubs):
    low = Im2WavTokens(torch.zeros(1, 8, dtype=torch.long), "low", Im2WavConditioning(torch.zeros(1, 1, 8)))
    with pytest.raises(ValueError, match="connect the output of 'im2wav Sample UP'"):
        NODE_CLASS_MAPPINGS["Im2WavDecode"]().decode(model_of(RecordingPipeline(), comfy_stubs), low)
    up = Im2WavTokens(torch.zeros(1, 32, dtype=torch.long), "up", low.conditioning)
    with pytest.raises(ValueError, match="connect the output of 'im2wav Sample LOW'"):
        NODE_CLASS_MAPPINGS["Im2WavSampleUp"]().sample(model_of(RecordingPipeline(), comfy_stubs), up, 1.0, 0, 1.0, 0)


def test_decode_returns_comfyui_audio_at_the_models_rate(comfy_stubs):
    pipe = RecordingPipeline()
    up = Im2WavTokens(torch.zeros(2, 32, dtype=torch.long), "up", Im2WavConditioning(torch.zeros(2, 1, 8)))
    (audio,) = NODE_CLASS_MAPPINGS["Im2WavDecode"]().decode(model_of(pipe, comfy_stubs), up)
    assert_comfy_audio(audio, sample_rate=pipe.sample_rate, batch=2)


def test_image_to_audio_calls_the_pipeline_once(comfy_stubs):
    pipe = RecordingPipeline(chunks=2)
    node = NODE_CLASS_MAPPINGS["Im2WavImageToAudio"]
    widgets = {**sampler_defaults(node), "seed": 9}
    (audio,) = node().generate(model_of(pipe, comfy_stubs), comfy_image(batch=2), **widgets)
    (argument, images), kwargs = pipe.calls["__call__"]
    assert argument == "video" and tuple(images.shape) == (2, 32, 24, 3) and kwargs["fps"] == 30.0
    assert kwargs["generator"].initial_seed() == 9 and kwargs["audio_length_in_s"] == 4.096
    assert comfy_stubs.progress == [(1, 2), (2, 2)]
    assert_comfy_audio(audio, sample_rate=pipe.sample_rate, batch=2)


def test_loader_device_auto_is_comfyuis_device(comfy_stubs):
    from nodes import comfy_hooks

    assert comfy_hooks.torch_device("auto") == torch.device("cpu")
    assert comfy_hooks.torch_device("cpu") == torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# The AUDIO contract: exactly what ComfyUI's SaveAudio / CreateVideo read
# ---------------------------------------------------------------------------------------------


def assert_comfy_audio(audio: dict, sample_rate: int, batch: int) -> None:
    """SaveAudio reads audio["waveform"] as [B, C, S] (iterating `.cpu()` rows) and audio["sample_rate"]."""
    assert set(audio) == {"waveform", "sample_rate"}
    waveform = audio["waveform"]
    assert isinstance(waveform, torch.Tensor) and waveform.dtype == torch.float32
    assert waveform.device.type == "cpu" and waveform.ndim == 3
    assert waveform.shape[0] == batch and waveform.shape[1] == 1 and waveform.shape[2] > 0
    assert type(audio["sample_rate"]) is int and audio["sample_rate"] == sample_rate


def encode_flac_like_save_audio(audio: dict) -> bytes:
    """Encode AUDIO's first item to FLAC with PyAV the way SaveAudio does: interleaved `flt`, mono layout."""
    import av

    waveform = audio["waveform"][0]  # [C, S]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=audio["sample_rate"], layout="mono")
        frame = av.AudioFrame.from_ndarray(waveform.movedim(0, 1).reshape(1, -1).numpy(), format="flt", layout="mono")
        frame.sample_rate = audio["sample_rate"]
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# A tiny real pipeline in a temporary ComfyUI models folder
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pipeline_folder(tmp_path_factory) -> Path:
    """A tiny `Im2WavPipeline` saved as a pipeline folder (built by tests/tiny_components.py)."""
    from tiny_components import build_tiny_pipeline

    folder = tmp_path_factory.mktemp("im2wav_models") / "tiny"
    build_tiny_pipeline().save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_model(comfy_stubs, tiny_pipeline_folder):
    """The loader node's output for the tiny pipeline linked into the stand-in models/im2wav/ folder."""
    (comfy_stubs.models_dir / "im2wav").mkdir()
    (comfy_stubs.models_dir / "im2wav" / "tiny").symlink_to(tiny_pipeline_folder, target_is_directory=True)
    loader = NODE_CLASS_MAPPINGS["Im2WavModelLoader"]
    assert loader.INPUT_TYPES()["required"]["model"][0][1:] == ["tiny"]
    (model,) = loader().load("tiny", device="auto", dtype="float32")
    return model




@pytest.mark.slow
def test_staged_nodes_turn_images_into_audio_with_a_tiny_pipeline(tiny_model, comfy_stubs):
    widgets = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
    (conditioning,) = NODE_CLASS_MAPPINGS["Im2WavEncodeImages"]().encode(
        tiny_model, comfy_image(batch=1), "batch of single images", 30.0)
    (low,) = NODE_CLASS_MAPPINGS["Im2WavSampleLow"]().sample(
        tiny_model, conditioning, seconds=TINY_SECONDS, guidance_scale=3.0, seed=1, batch_size=1, **widgets)
    (up,) = NODE_CLASS_MAPPINGS["Im2WavSampleUp"]().sample(tiny_model, low, seed=2, **widgets)
    (audio,) = NODE_CLASS_MAPPINGS["Im2WavDecode"]().decode(tiny_model, up)
    assert_comfy_audio(audio, sample_rate=tiny_model.sample_rate, batch=1)
    assert comfy_stubs.progress and comfy_stubs.interrupt_checks == len(comfy_stubs.progress)

    # the nodes are thin: the same library stages with the same seeds give the same audio
    pipe = tiny_model.pipeline
    embeds = pipe.encode_images(comfy_image(batch=1), fps=30.0)  # one picture
    low_ref = pipe.sample_low(embeds, audio_length_in_s=TINY_SECONDS, guidance_scale=3.0,
                                    generator=torch.Generator().manual_seed(1))
    up_ref = pipe.sample_up(low_ref, embeds, generator=torch.Generator().manual_seed(2))
    assert torch.equal(low.tokens, low_ref) and torch.equal(up.tokens, up_ref)
    torch.testing.assert_close(audio["waveform"], pipe.decode(up_ref).float().cpu())

    import soundfile

    decoded, rate = soundfile.read(io.BytesIO(encode_flac_like_save_audio(audio)), dtype="float32")
    assert rate == tiny_model.sample_rate and decoded.shape == (audio["waveform"].shape[-1],)
    # FLAC stores 16-bit samples: the saved file holds the waveform up to that quantisation
    assert abs(decoded - audio["waveform"][0, 0].numpy()).max() < 2e-4


@pytest.mark.slow
def test_image_to_audio_node_with_a_tiny_pipeline(tiny_model, comfy_stubs):
    node = NODE_CLASS_MAPPINGS["Im2WavImageToAudio"]()
    widgets = {**sampler_defaults(NODE_CLASS_MAPPINGS["Im2WavImageToAudio"]), "seconds": TINY_SECONDS, "seed": 2**64 - 1}
    (audio,) = node.generate(tiny_model, comfy_image(batch=3), **widgets)  # three frames of one video
    assert_comfy_audio(audio, sample_rate=tiny_model.sample_rate, batch=1)
    assert audio["waveform"].shape[-1] == round(TINY_SECONDS * tiny_model.sample_rate)
    steps = [step for step, _ in comfy_stubs.progress]
    assert steps == sorted(steps) and comfy_stubs.progress[-1][0] == comfy_stubs.progress[-1][1]


def test_interrupt_stops_a_tiny_pipeline_mid_sampling(tiny_model, comfy_stubs):
    comfy_stubs.interrupt_after = 1
    (conditioning,) = NODE_CLASS_MAPPINGS["Im2WavEncodeImages"]().encode(tiny_model, comfy_image(1), "frames of one video", 30.0)
    with pytest.raises(InterruptProcessingException):
        NODE_CLASS_MAPPINGS["Im2WavSampleLow"]().sample(
            tiny_model, conditioning, seconds=TINY_SECONDS, guidance_scale=3.0, temperature=1.0, top_k=0,
            top_p=1.0, seed=0, batch_size=1)
    assert comfy_stubs.interrupt_checks == 1

"""The example graphs in `example_workflows/` use only existing nodes, with valid inputs.

`example_workflows/*.json` are UI-format workflows (ComfyUI lists them as this node pack's
templates); `example_workflows/api/*.json` are the same graphs in API format (what `/prompt`
takes). Our nodes are checked against their INPUT_TYPES; ComfyUI's core nodes against
`CORE_NODES`, a table of the inputs and outputs the graphs use, read off ComfyUI's source
(`nodes.py`, `comfy_extras/nodes_audio.py`, `comfy_extras/nodes_video.py`);
tests/test_comfyui_server.py compares it with a running ComfyUI's /object_info.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from test_nodes import comfy_stubs  # noqa: F401  (fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO_ROOT / "example_workflows"
sys.path.insert(0, str(REPO_ROOT))
from nodes import NODE_CLASS_MAPPINGS  # noqa: E402

sys.path.remove(str(REPO_ROOT))

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

# Core ComfyUI nodes used by the examples: input name -> type ("COMBO" for a list of choices), the
# optional inputs, the output types, and how many values the UI format stores in widgets_values.
CORE_NODES = {
    "LoadImage": {"inputs": {"image": "COMBO"}, "optional": set(), "outputs": ["IMAGE", "MASK"], "ui_widgets": 2},
    "SaveAudio": {"inputs": {"audio": "AUDIO", "filename_prefix": "STRING"}, "optional": set(), "outputs": [],
                  "ui_widgets": 2},
    "LoadVideo": {"inputs": {"file": "COMBO"}, "optional": set(), "outputs": ["VIDEO"], "ui_widgets": 2},
    "GetVideoComponents": {"inputs": {"video": "VIDEO"}, "optional": set(), "outputs": ["IMAGE", "AUDIO", "FLOAT"],
                           "ui_widgets": 0},
    "CreateVideo": {"inputs": {"images": "IMAGE", "fps": "FLOAT", "audio": "AUDIO"}, "optional": {"audio"},
                    "outputs": ["VIDEO"], "ui_widgets": 1},
    "SaveVideo": {"inputs": {"video": "VIDEO", "filename_prefix": "STRING", "format": "COMBO", "codec": "COMBO"},
                  "optional": set(), "outputs": [], "ui_widgets": 3},
}

API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
UI_FILES = sorted(WORKFLOWS.glob("*.json"))


def node_signature(class_type: str) -> dict:
    """Inputs (name -> type, with their option dicts), optional names and outputs of a node class."""
    if class_type in CORE_NODES:
        core = CORE_NODES[class_type]
        return {"inputs": {name: (kind, {}) for name, kind in core["inputs"].items()},
                "optional": core["optional"], "outputs": core["outputs"]}
    cls = NODE_CLASS_MAPPINGS[class_type]
    spec = cls.INPUT_TYPES()
    inputs = {}
    for name, declaration in {**spec["required"], **spec.get("optional", {})}.items():
        kind = "COMBO" if isinstance(declaration[0], list) else declaration[0]
        options = dict(declaration[1]) if len(declaration) > 1 else {}
        if kind == "COMBO":
            options["choices"] = declaration[0]
        inputs[name] = (kind, options)
    return {"inputs": inputs, "optional": set(spec.get("optional", {})), "outputs": list(cls.RETURN_TYPES)}


def ui_widget_count(class_type: str) -> int:
    """How many widgets_values the UI format stores: one per widget, plus a seed's control_after_generate."""
    if class_type in CORE_NODES:
        return CORE_NODES[class_type]["ui_widgets"]
    inputs = node_signature(class_type)["inputs"].values()
    return sum(1 + bool(options.get("control_after_generate")) for kind, options in inputs if kind in WIDGET_TYPES)


def check_widget_value(class_type: str, name: str, kind: str, options: dict, value) -> None:
    """A widget value of one of our nodes must be what its INPUT_TYPES accepts."""
    where = f"{class_type}.{name}"
    if kind == "COMBO":
        if class_type == "Im2WavModelLoader" and name == "model":
            assert isinstance(value, str) and value, where  # the user's own folder name
        else:
            assert value in options["choices"], (where, value)
    elif kind in ("INT", "FLOAT"):
        assert isinstance(value, int if kind == "INT" else (int, float)) and not isinstance(value, bool), where
        assert options["min"] <= value <= options["max"], (where, value)
    elif kind == "STRING":
        assert isinstance(value, str), where
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), where


def test_every_example_comes_in_both_formats():
    assert API_FILES, "example_workflows/api/ holds no workflow"
    assert [p.name for p in API_FILES] == [p.name for p in UI_FILES]
    assert {"image_to_audio.json", "video_to_audio.json"} <= {p.name for p in UI_FILES}


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_api_workflow_references_existing_nodes_with_valid_inputs(path, comfy_stubs):  # noqa: F811
    prompt = json.loads(path.read_text())
    used_ours = False
    for node_id, node in prompt.items():
        class_type = node["class_type"]
        assert class_type in NODE_CLASS_MAPPINGS or class_type in CORE_NODES, class_type
        used_ours |= class_type in NODE_CLASS_MAPPINGS
        signature = node_signature(class_type)
        given = node["inputs"]
        assert set(given) <= set(signature["inputs"]), (node_id, set(given) - set(signature["inputs"]))
        missing = set(signature["inputs"]) - signature["optional"] - set(given)
        assert not missing, (node_id, class_type, missing)
        for name, value in given.items():
            kind, options = signature["inputs"][name]
            if isinstance(value, list):  # a link: [source node id, output index]
                source = prompt[value[0]]
                source_outputs = node_signature(source["class_type"])["outputs"]
                assert source_outputs[value[1]] == kind, (node_id, name, source_outputs[value[1]], kind)
            else:
                assert kind in WIDGET_TYPES, f"{class_type}.{name} ({kind}) must be linked"
                if class_type in NODE_CLASS_MAPPINGS:
                    check_widget_value(class_type, name, kind, options, value)
    assert used_ours
    assert any(node["class_type"] in ("SaveAudio", "SaveVideo") for node in prompt.values())


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_is_the_api_graph_with_consistent_links(path, comfy_stubs):  # noqa: F811
    workflow = json.loads(path.read_text())
    prompt = json.loads((WORKFLOWS / "api" / path.name).read_text())
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert {str(i): n["type"] for i, n in nodes.items()} == {i: n["class_type"] for i, n in prompt.items()}
    assert workflow["last_node_id"] == max(nodes) and workflow["last_link_id"] == len(workflow["links"])

    edges = set()
    for link_id, src, src_slot, dst, dst_slot, kind in workflow["links"]:
        output = nodes[src]["outputs"][src_slot]
        target = nodes[dst]["inputs"][dst_slot]
        assert output["type"] == kind and link_id in output["links"], (link_id, output)
        assert target["link"] == link_id, (link_id, target)
        assert node_signature(nodes[dst]["type"])["inputs"][target["name"]][0] == kind
        edges.add((str(dst), target["name"], str(src), src_slot))
    api_edges = {(i, name, v[0], v[1]) for i, n in prompt.items() for name, v in n["inputs"].items() if isinstance(v, list)}
    assert edges == api_edges

    for node_id, node in nodes.items():
        assert len(node["widgets_values"]) == ui_widget_count(node["type"]), (node_id, node["type"])
        if node["type"] in NODE_CLASS_MAPPINGS:
            # Widget values in INPUT_TYPES order (a seed is followed by its control_after_generate),
            # equal to the API inputs wherever those are not linked.
            values = iter(node["widgets_values"])
            for name, (kind, options) in node_signature(node["type"])["inputs"].items():
                if kind not in WIDGET_TYPES:
                    continue
                value = next(values)
                check_widget_value(node["type"], name, kind, options, value)
                if options.get("control_after_generate"):
                    assert next(values) in ("fixed", "increment", "decrement", "randomize")
                api_value = prompt[str(node_id)]["inputs"][name]
                if not isinstance(api_value, list):
                    assert api_value == value, (node_id, name)

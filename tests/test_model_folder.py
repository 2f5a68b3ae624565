"""Model-folder checks: broken or edited folders are refused by name, before anything is allocated."""

from __future__ import annotations

import json
import shutil
import struct

import pytest
from safetensors.torch import load_file, save_file
from tiny_components import tiny_pipe, tiny_pipe_dir  # noqa: F401  (pytest fixtures)

from im2wav.model_folder import check_pipeline_folder, is_hub_id


def test_hub_ids_are_told_from_paths():
    assert is_hub_id("someone/im2wav-tiny") and is_hub_id("im2wav")
    for path in ("./model", "/abs/model", "~/model", "a/b/c", "x..y", "my model"):
        assert not is_hub_id(path), path


def test_saved_folder_passes(tiny_pipe_dir):  # noqa: F811
    check_pipeline_folder(tiny_pipe_dir)


def test_weights_missing_one_tensor_is_named(tiny_pipe_dir, tmp_path):  # noqa: F811
    folder = shutil.copytree(tiny_pipe_dir, tmp_path / "missing_tensor")
    weights = next((folder / "up_prior").glob("*.safetensors"))
    tensors = load_file(weights)
    dropped = sorted(tensors)[0]
    del tensors[dropped]
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=f"up_prior.*lack 1 tensor.*{dropped}"):
        check_pipeline_folder(folder)


def test_config_asking_for_a_huge_model_is_refused_without_allocating(tiny_pipe_dir, tmp_path):  # noqa: F811
    folder = shutil.copytree(tiny_pipe_dir, tmp_path / "huge")
    config_path = folder / "low_prior" / "config.json"
    config = json.loads(config_path.read_text())
    config["n_ctx"] = 2**31  # would be tens of GB of position embedding if built for real
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match its weights"):
        check_pipeline_folder(folder)


def test_config_that_builds_no_model_is_named(tiny_pipe_dir, tmp_path):  # noqa: F811
    folder = shutil.copytree(tiny_pipe_dir, tmp_path / "invalid")
    config_path = folder / "vqvae" / "config.json"
    config = json.loads(config_path.read_text())
    config["downs_t"] = config["downs_t"][:1]  # one entry for two levels
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="vqvae/config.json does not describe a valid vqvae"):
        check_pipeline_folder(folder)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:5],  # shorter than the length prefix
        lambda data: struct.pack("<Q", 10**15) + data[8:],  # header length beyond the file
        lambda data: data[:8] + b"[" + data[9:],  # header not JSON
        lambda data: data + b"junk",  # trailing bytes
    ],
    ids=["tiny", "huge-header", "not-json", "trailing"],
)
def test_malformed_safetensors_is_one_clear_error(tiny_pipe_dir, tmp_path, damage):  # noqa: F811
    folder = shutil.copytree(tiny_pipe_dir, tmp_path / "bad")
    weights = next((folder / "vqvae").glob("*.safetensors"))
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        check_pipeline_folder(folder)


def test_config_that_is_not_json_is_named(tiny_pipe_dir, tmp_path):  # noqa: F811
    folder = shutil.copytree(tiny_pipe_dir, tmp_path / "bad_config")
    (folder / "vqvae" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="vqvae/config.json is not valid JSON"):
        check_pipeline_folder(folder)

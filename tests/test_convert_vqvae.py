"""Converting original VQ-VAE checkpoints, and refusing files that are broken or hostile."""

from __future__ import annotations

import dataclasses
import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

from conftest import shared_path
from im2wav import HierarchicalVQVAE
from im2wav.convert import load_original_checkpoint, read_original_checkpoint
from im2wav.convert.vqvae import vqvae_from_original, vqvae_loss_config_from_hps
from im2wav.models.vqvae import TRAINING_KEYS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training_scripts"))
import convert_original_checkpoint as script  # noqa: E402


@pytest.fixture(scope="module")
def original():
    return read_original_checkpoint(shared_path("parity", "vqvae_tiny.pth.tar"))


class _RunsShell:
    """Unpickling this runs a shell command: what a malicious checkpoint would contain."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --- reading ----------------------------------------------------------------------------------


def test_read_original_checkpoint(original):
    assert original.kind == "vqvae"
    assert isinstance(original.step, int)
    assert original.hps["levels"] == 2 and "bandwidth" in original.hps
    assert all(isinstance(v, torch.Tensor) for v in original.state_dict.values())
    assert {f.name for f in dataclasses.fields(original)} == {"hps", "state_dict", "kind", "step", "path", "mapped"}
    assert original.mapped  # a zip checkpoint is memory-mapped: only what is read becomes resident


def test_prior_checkpoints_are_recognised(parity_dir):
    for name in ("low_tiny.pth.tar", "up_tiny.pth.tar", "low_tiny_fp16params.pth.tar"):
        assert read_original_checkpoint(parity_dir / name).kind == "prior"


def test_load_original_checkpoint_returns_a_float32_eval_model(parity_dir):
    model = load_original_checkpoint(parity_dir / "vqvae_tiny.pth.tar")
    assert isinstance(model, HierarchicalVQVAE) and not model.training
    assert all(t.dtype == torch.float32 for t in model.state_dict().values() if t.is_floating_point())
    assert all(bool(q.initialized) for q in model.quantizers)


def test_every_original_key_is_used(original):
    model = vqvae_from_original(original)
    for level in range(2):
        assert torch.equal(model.quantizers[level].codebook, original.state_dict[f"bottleneck.level_blocks.{level}.k"])
    assert torch.equal(model.decoders[1].stages[1].steps[0].conv.weight,
                       original.state_dict["decoders.1.level_blocks.1.model.1.1.weight"])
    n_original = sum(v.numel() for k, v in original.state_dict.items() if not k.startswith("bottleneck."))
    assert sum(p.numel() for p in model.parameters()) == n_original


def test_float16_weights_are_accepted_and_returned_as_float32(original):
    half = dataclasses.replace(original, state_dict={k: v.half() for k, v in original.state_dict.items()})
    model = vqvae_from_original(half)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert torch.equal(model.decoders[0].out.weight, original.state_dict["decoders.0.out.weight"].half().float())


def test_unknown_and_missing_keys_are_listed(original):
    extra = dict(original.state_dict, **{"encoders.0.level_blocks.0.model.9.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"encoders\.0\.level_blocks\.0\.model\.9\.weight"):
        vqvae_from_original(dataclasses.replace(original, state_dict=extra))
    fewer = {k: v for k, v in original.state_dict.items() if k != "decoders.1.out.bias"}
    with pytest.raises(ValueError, match=r"decoders\.1\.out\.bias"):
        vqvae_from_original(dataclasses.replace(original, state_dict=fewer))
    with pytest.raises(ValueError, match="structure keys"):
        vqvae_from_original(dataclasses.replace(original, hps={"levels": 2}))


# --- broken and hostile files -----------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_original_checkpoint(tmp_path / "nope.pth.tar")
    with pytest.raises(ValueError, match="not a file"):
        load_original_checkpoint(tmp_path)


def test_truncated_file(tmp_path, parity_dir):
    data = (parity_dir / "vqvae_tiny.pth.tar").read_bytes()
    path = tmp_path / "truncated.pth.tar"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_original_checkpoint(path)


@pytest.mark.parametrize("content", [b"hello, this is a text file\n", bytes(range(256)) * 4])
def test_not_a_torch_checkpoint(tmp_path, content):
    path = tmp_path / "junk.pth.tar"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a torch checkpoint|truncated or corrupt"):
        load_original_checkpoint(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch_zip", "torch_legacy", "plain_pickle"])
def test_pickled_code_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    payload = {"hps": {"levels": 2}, "model": {"encoders.0.x": torch.zeros(1)}, "evil": _RunsShell(marker)}
    path = tmp_path / "evil.pth.tar"
    if writer == "plain_pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=writer == "torch_zip")
    with pytest.raises(ValueError, match="pickled code"):
        load_original_checkpoint(path)
    assert not marker.exists(), "the pickled command was executed"


def test_torch_file_that_is_not_an_im2wav_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"model": {"encoders.0.w": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="'hps' and 'model'"):
        load_original_checkpoint(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="'hps' and 'model'"):
        load_original_checkpoint(path)
    torch.save({"hps": {}, "model": {"resnet.fc.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="neither VQ-VAE keys"):
        load_original_checkpoint(path)


# --- the conversion script --------------------------------------------------------------------


def test_script_writes_a_from_pretrained_folder(tmp_path, parity_dir):
    out = tmp_path / "vqvae"
    script.main(["--checkpoint", str(parity_dir / "vqvae_tiny.pth.tar"), "--out", str(out)])
    converted = HierarchicalVQVAE.from_pretrained(out)
    direct = load_original_checkpoint(parity_dir / "vqvae_tiny.pth.tar")
    for name, value in direct.state_dict().items():
        assert torch.equal(converted.state_dict()[name], value), name
    assert not TRAINING_KEYS & set(converted.config)  # the training objective is not part of the model
    hps = read_original_checkpoint(parity_dir / "vqvae_tiny.pth.tar").hps
    assert vqvae_loss_config_from_hps(hps).bandwidth_spec == pytest.approx(float(hps["bandwidth"]["spec"]))
    with pytest.raises(FileExistsError):
        script.main(["--checkpoint", str(parity_dir / "vqvae_tiny.pth.tar"), "--out", str(out)])


def test_script_leaves_nothing_behind_on_failure(tmp_path):
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"not a checkpoint")
    out_parent = tmp_path / "models"
    out_parent.mkdir()
    with pytest.raises(ValueError):
        script.main(["--checkpoint", str(bad), "--out", str(out_parent / "vqvae")])
    assert list(out_parent.iterdir()) == []

    class Unsaveable(torch.nn.Module):
        def save_pretrained(self, path, **kwargs):
            (Path(path) / "half_written.bin").write_bytes(b"x")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        script.save_atomically(Unsaveable(), out_parent / "vqvae")
    assert list(out_parent.iterdir()) == []

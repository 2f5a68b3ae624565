"""Large CPU weights move onto transparent huge pages in place: same values, a storage of their own
(so saving still works), 2 MiB-aligned, once; nothing moves where huge pages are unavailable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from im2wav import huge_pages
from im2wav.huge_pages import HUGE_PAGE, use_huge_pages


def model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 8))  # a 4 MiB weight and small ones
    m.register_buffer("table", torch.randn(1024, 1024))  # buffers are not weights a step streams
    return m


def thp_mapped_bytes(address: int) -> int | None:
    """AnonHugePages of the mapping holding `address` (None: no smaps here)."""
    try:
        smaps = Path("/proc/self/smaps").read_text()
    except OSError:
        return None
    for m in re.finditer(r"^([0-9a-f]+)-([0-9a-f]+) .*?\n(.*?)(?=^[0-9a-f]+-[0-9a-f]+ |\Z)", smaps, re.S | re.M):
        if int(m.group(1), 16) <= address < int(m.group(2), 16):
            return 1024 * int(re.search(r"AnonHugePages:\s+(\d+) kB", m.group(3)).group(1))
    return None


@pytest.mark.skipif(not huge_pages.huge_pages_available(), reason="no transparent huge pages on this platform")
def test_large_weights_move_once_and_keep_their_values(tmp_path):
    m = model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    weight, small, buffer_ptr = m[0].weight, m[1].weight, m.table.data_ptr()
    small_ptr = small.data_ptr()
    with torch.inference_mode():  # as the samplers call it
        assert use_huge_pages(m) == 1024 * 1024 * 4
    assert not m[0].weight.is_inference()
    assert m[0].weight is weight  # the same Parameter, new memory
    assert weight.data_ptr() % HUGE_PAGE == 0
    assert small.data_ptr() == small_ptr and m.table.data_ptr() == buffer_ptr  # small ones and buffers stay
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert use_huge_pages(m) == 0  # already moved
    # each weight keeps a storage of its own: safetensors saves and loads it
    save_file(m.state_dict(), tmp_path / "m.safetensors")
    assert torch.equal(load_file(tmp_path / "m.safetensors")["0.weight"], before["0.weight"])
    # still a working, trainable parameter (moved under inference mode, it would refuse backward)
    m(torch.randn(2, 1024)).sum().backward()
    assert m[0].weight.grad.shape == (1024, 1024)
    # where the kernel gives them, the weight really sits on huge pages
    mapped = thp_mapped_bytes(weight.data_ptr())
    if mapped is not None and Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().find("[never]") < 0:
        assert mapped >= HUGE_PAGE


@pytest.mark.skipif(not huge_pages.huge_pages_available(), reason="no transparent huge pages on this platform")
def test_weights_converted_under_inference_mode_still_run_there():
    m = model()
    x = torch.randn(2, 1024)
    with torch.inference_mode():
        m.to(torch.bfloat16)  # new weights made under inference mode
        expected = m(x.bfloat16())
        assert use_huge_pages(m) == 1024 * 1024 * 2
        assert torch.equal(m(x.bfloat16()), expected)


def test_nothing_moves_without_huge_pages(monkeypatch):
    monkeypatch.setattr(huge_pages, "huge_pages_available", lambda: False)
    m = model()
    ptr = m[0].weight.data_ptr()
    assert use_huge_pages(m) == 0 and m[0].weight.data_ptr() == ptr


@pytest.mark.skipif(not huge_pages.huge_pages_available(), reason="no transparent huge pages on this platform")
def test_a_moved_module_moved_again_gets_huge_pages_again():
    m = model()
    use_huge_pages(m)
    m.to(torch.float64)  # new memory for every parameter
    assert use_huge_pages(m) == 1024 * 1024 * 8
    assert m[0].weight.dtype == torch.float64 and m[0].weight.data_ptr() % HUGE_PAGE == 0


@pytest.mark.skipif(not huge_pages.huge_pages_available(), reason="no transparent huge pages on this platform")
def test_sampling_moves_the_weights_and_draws_the_same_tokens(monkeypatch):
    from im2wav.models.prior import Im2WavPrior
    from im2wav.sampling import sample_low_tokens

    torch.manual_seed(0)
    # a token table of 1024 x 512 float32 = 2 MiB: the one weight large enough to move
    prior = Im2WavPrior.from_preset("tiny-low", vocab_size=1024, width=512).eval()
    frames = torch.nn.functional.normalize(torch.randn(1, 1, 512), dim=-1)

    def draw():
        return sample_low_tokens(prior, frames, 24, generator=torch.Generator().manual_seed(3))

    monkeypatch.setattr(huge_pages, "huge_pages_available", lambda: False)
    before, ptr = draw(), prior.token_embedding.weight.data_ptr()
    monkeypatch.undo()
    after = draw()
    assert prior.token_embedding.weight.data_ptr() != ptr
    assert prior.token_embedding.weight.data_ptr() % HUGE_PAGE == 0
    assert torch.equal(before, after)

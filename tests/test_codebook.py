"""Properties of the EMA codebook: nearest-code search, straight-through gradients, EMA, revival."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from conftest import python_env
from im2wav.models.codebook import EMACodebook, squared_distances


def make_codebook(num_codes: int = 8, dim: int = 4, seed: int = 0, **kwargs) -> EMACodebook:
    torch.manual_seed(seed)
    book = EMACodebook(num_codes, dim, **kwargs)
    book.set_codebook(torch.randn(num_codes, dim))
    return book


def test_squared_distances_match_cdist():
    x, codes = torch.randn(50, 6, dtype=torch.float64), torch.randn(9, 6, dtype=torch.float64)
    torch.testing.assert_close(squared_distances(x, codes), torch.cdist(x, codes).pow(2))


def test_codes_are_the_nearest_codebook_vectors():
    book = make_codebook().eval()
    x = torch.randn(3, 4, 20)  # (B, D, T)
    out = book(x)
    flat = x.permute(0, 2, 1).reshape(-1, 4)  # (B*T, D)
    nearest = torch.cdist(flat, book.codebook).argmin(dim=-1).view(3, 20)
    assert torch.equal(out.codes, nearest)
    assert torch.equal(out.codes, book.encode(x))
    torch.testing.assert_close(out.quantized, book.decode(out.codes))


def test_straight_through_gradient_is_identity():
    for mode in ("train", "eval"):
        book = make_codebook()
        book.train(mode == "train")
        x = torch.randn(2, 4, 16, requires_grad=True)
        upstream = torch.randn(2, 4, 16)
        (book(x).quantized * upstream).sum().backward()
        torch.testing.assert_close(x.grad, upstream)


def test_commit_loss_is_mean_squared_distance_to_the_code():
    book = make_codebook().eval()
    x = torch.randn(2, 4, 16, requires_grad=True)
    out = book(x)
    torch.testing.assert_close(out.commit_loss, (out.quantized.detach() - x).pow(2).mean())
    out.commit_loss.backward()
    assert x.grad.abs().sum() > 0  # the commitment loss pulls the encoder toward its codes


def test_eval_does_not_change_the_codebook():
    book = make_codebook().eval()
    before = {k: v.clone() for k, v in book.state_dict().items()}
    book(torch.randn(2, 4, 16))
    assert all(torch.equal(before[k], v) for k, v in book.state_dict().items())


def test_ema_step_moves_used_codes_toward_their_inputs():
    book = make_codebook(decay=0.9).train()
    x = torch.randn(4, 4, 64) * 3
    flat = x.permute(0, 2, 1).reshape(-1, 4)  # (B*T, D)
    old = book.codebook.clone()
    codes = book(x).codes.reshape(-1)
    for code in codes.unique():
        assigned_mean = flat[codes == code].mean(dim=0)
        old_gap = (old[code] - assigned_mean).norm()
        new_gap = (book.codebook[code] - assigned_mean).norm()
        assert new_gap < old_gap or old_gap < 1e-6
        # Exactly the EMA of sums over the EMA of counts, from the restarted state (count 1, sum k).
        count = (codes == code).sum()
        expected = (0.9 * old[code] + 0.1 * flat[codes == code].sum(0)) / (0.9 + 0.1 * count)
        torch.testing.assert_close(book.codebook[code], expected)


def test_dead_codes_are_revived_at_batch_vectors():
    book = make_codebook(num_codes=8, dim=4, revival_threshold=1.0).train()
    with torch.no_grad():
        book.codebook[5] = 1e3  # far from every input: never chosen, so it is dead after one step
        book.cluster_sum[5] = 1e3
    x = torch.randn(2, 4, 32)
    out = book(x)
    assert (out.codes != 5).all()
    assert book.cluster_size[5] < book.revival_threshold
    flat = x.permute(0, 2, 1).reshape(-1, 4)  # (B*T, D)
    assert torch.cdist(book.codebook[5:6], flat).min() < 1e-5  # replaced by one of the batch vectors
    assert out.metrics["usage"] < 8


def test_first_training_batch_initialises_the_codebook():
    book = EMACodebook(16, 4).train()
    assert not book.initialized
    x = torch.randn(1, 4, 5)  # fewer vectors than codes: they are tiled with jitter
    book(x)
    assert book.initialized
    flat = x.permute(0, 2, 1).reshape(-1, 4)  # (B*T, D)
    assert torch.cdist(book.codebook, flat).min(dim=1).values.max() < 0.1
    assert torch.unique(book.codebook, dim=0).shape[0] == 16


def test_usage_metrics():
    book = make_codebook(num_codes=8).eval()
    x = book.codebook[[0, 1, 2, 3]].t().unsqueeze(0)  # (1, D, 4): each of 4 codes used once
    metrics = book(x).metrics
    torch.testing.assert_close(metrics["perplexity"], torch.tensor(4.0), rtol=1e-5, atol=1e-5)
    assert metrics["used_curr"] == 4
    assert metrics["fit"] < 1e-6


def test_autocast_does_not_lower_the_quantisation_precision():
    book = make_codebook(num_codes=64, dim=8).eval()
    x = torch.randn(2, 8, 64)
    reference = book(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = book(x)
    assert torch.equal(mixed.codes, reference.codes)
    assert mixed.quantized.dtype == x.dtype


def test_half_precision_codebook_and_input():
    book = make_codebook().to(torch.bfloat16).eval()
    x = torch.randn(2, 4, 16, dtype=torch.bfloat16)
    out = book(x)
    assert out.quantized.dtype == torch.bfloat16
    assert torch.equal(out.codes, book.encode(x))


def test_distributed_update_runs_and_matches_single_process(tmp_path):
    """With one rank, the all-reduce/broadcast path gives the single-process result.

    In a fresh interpreter that leaves by `os._exit`, never destroying its process group: before
    torch 2.8 that can deadlock (the gloo destructor joins its worker threads holding the GIL while
    a worker waits for the GIL to free a tensor; pytorch/pytorch#154976). The test process itself
    then never joins a process group either.
    """
    code = f"""
import os, sys
import torch
import torch.distributed as dist
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_codebook import make_codebook

x = torch.randn(2, 4, 32)
single = make_codebook(seed=1).train()
torch.manual_seed(5)
single(x)
dist.init_process_group("gloo", init_method={f"file://{tmp_path / 'store'}"!r}, rank=0, world_size=1)
assert dist.is_initialized()  # the codebook takes its distributed path
synced = make_codebook(seed=1).train()
torch.manual_seed(5)
synced(x)
torch.save({{"single": single.codebook, "synced": synced.codebook}}, {str(tmp_path / "books.pt")!r})
os._exit(0)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    books = torch.load(tmp_path / "books.pt")
    torch.testing.assert_close(books["synced"], books["single"])

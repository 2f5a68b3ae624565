"""A fresh prior's conditioning starts small, as in the original, so it does not drown the tokens.

The LOW prior adds `x_cond` (time signal + frame condition) to the token embeddings (std 0.02) and
again to the output. With torch's default N(0, 1) embeddings the time signal alone was ~80x larger
than the tokens, and a demo-size LOW prior trained on it learned about half as fast.
"""

from __future__ import annotations

import torch

from im2wav import Im2WavPrior


def test_time_signal_and_lower_token_embeddings_start_small():
    torch.manual_seed(0)
    low = Im2WavPrior.from_preset("tiny-low")
    token_std = low.token_embedding.weight.std().item()
    for emb in (low.time_embedding.total_length, low.time_embedding.absolute_position,
                low.time_embedding.relative_position):
        assert emb.emb.weight.std().item() < token_std  # original: std 0.01 vs 0.02 for the tokens
    timing = torch.tensor([[64000.0, 8192.0, 4096.0]])
    time_signal = low.time_embedding(timing)  # (1, T, D)
    assert time_signal.norm(dim=-1).mean() < 2 * low.token_embedding.weight.norm(dim=-1).mean()
    up = Im2WavPrior.from_preset("tiny-up")
    assert abs(up.lower_conditioner.embedding.weight.std().item() - 0.02) < 0.005

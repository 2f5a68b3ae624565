"""Datasets: preparing video folders into shards, training windows, the synthetic audio-visual world."""

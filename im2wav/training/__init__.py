"""Training helpers shared by the training scripts: checkpointing, optimisation, EMA of weights."""

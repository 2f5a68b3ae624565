"""Training losses as plain functions: audio reconstruction (`audio`) and token prediction (`tokens`)."""

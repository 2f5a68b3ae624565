"""The IM2WAV models: the hierarchical VQ-VAE and the LOW/UP prior (one class, two configs)."""

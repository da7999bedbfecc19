"""``steerlab export gguf`` and ``steerlab import gguf``: control vectors in and out."""

"""Taking a vector out of steerlab: steering folded into a plain checkpoint, rank-1 LoRA
ablation adapters (for multi-LoRA servers). GGUF control vectors, being a vector file
format, live in :mod:`steerlab.gguf_vectors` below the vector type."""

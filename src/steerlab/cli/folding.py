"""``steerlab fold``: steering folded into a plain checkpoint or a rank-1 LoRA adapter."""

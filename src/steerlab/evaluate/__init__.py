"""Evaluation: fit steering sweeps and measure what steering costs."""

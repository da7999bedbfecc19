"""Reports of sweep results: plots (PNG and SVG) drawn from results, never from models."""

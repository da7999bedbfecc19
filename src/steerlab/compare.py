"""Deprecated import path: use :mod:`steerlab.extract.compare` (or ``steerlab.compare``)."""

from steerlab.extract.compare import Comparison, CosineRow, compare, describe_rows

__all__ = ["Comparison", "CosineRow", "compare", "describe_rows"]

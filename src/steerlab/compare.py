"""Deprecated import path: use :mod:`steerlab.extract.comparison` (or ``steerlab.compare``)."""

from steerlab.extract.comparison import Comparison, CosineRow, compare, describe_rows

__all__ = ["Comparison", "CosineRow", "compare", "describe_rows"]

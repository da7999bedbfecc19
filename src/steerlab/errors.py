"""Errors users can act on.

Every error steerlab raises for bad input is a :class:`SteerlabError` whose message is one
line naming the file, line, field or value at fault. The CLI prints that line and exits
non-zero; it never shows a traceback for these.
"""

from __future__ import annotations


class SteerlabError(Exception):
    """Base class: an error caused by input the user can fix."""


class DataError(SteerlabError):
    """Malformed, missing or empty data (message names ``FILE:LINE`` where known)."""


class LayerError(SteerlabError):
    """A layer that does not exist, or a model whose layers could not be found."""


class VectorError(SteerlabError):
    """A steering vector that is malformed, non-finite or unreadable."""


class ModelMismatchError(SteerlabError):
    """A vector or model used with a model of another architecture or size."""


class ModelLoadError(SteerlabError):
    """A model that could not be located or loaded."""


class SpecError(SteerlabError):
    """An invalid steering or extraction setting (coefficient, operator, positions...)."""


class SteerlabWarning(UserWarning):
    """Base class of steerlab's warnings: something works, but probably not as meant."""


class SteeringStrengthWarning(SteerlabWarning):
    """A push at some steered layer large enough, relative to that layer's activation norm,
    that the model is likely to produce gibberish."""


class MeasuredNormsNotice(SteerlabWarning):
    """A vector lacked activation norms, so steerlab measured them on built-in text."""

"""Checks every config dataclass uses on its fields: one wording, one meaning of "an integer".

A field is checked where the config is built (``__post_init__``), so a bad value fails with
one line naming the field and the value, before any model is loaded. ``True`` is never an
integer here (Python says it is), and numbers must be finite. Each check returns the value
normalised (``numpy.int64(3)`` → ``3``), so a config can store what it returns.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Iterable
from typing import Any, TypeVar

from steerlab.errors import SpecError, SteerlabError

T = TypeVar("T")


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy) and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (int, float or numpy scalar) and not a bool."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    optional: bool = False,
    error: type[SteerlabError] = SpecError,
) -> Any:
    """``value`` as an ``int`` if it is an integer within ``[minimum, maximum]``.

    Args:
        value: The field's value.
        name: How the message names the field (``"batch_size"``, ``"suite field 'limit'"``).
        minimum: Smallest allowed value, or None.
        maximum: Largest allowed value, or None.
        optional: Whether None is allowed (and returned as None).
        error: The error class to raise.

    Raises:
        SpecError (or ``error``): one line naming the field, the bound and the value.
    """
    if value is None and optional:
        return None
    ok = is_int(value)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        raise error(f"{name} must be {_int_wording(minimum, maximum, optional)}, got {value!r}")
    return int(value)


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
    error: type[SteerlabError] = SpecError,
) -> Any:
    """``value`` as a ``float`` if it is a finite number within the stated bounds.

    Args:
        value: The field's value.
        name: How the message names the field.
        low: Lower bound, or None.
        high: Upper bound, or None.
        low_open: Whether ``low`` itself is excluded.
        high_open: Whether ``high`` itself is excluded.
        optional: Whether None is allowed (and returned as None).
        error: The error class to raise.

    Raises:
        SpecError (or ``error``): one line naming the field, the bounds and the value.
    """
    if value is None and optional:
        return None
    ok = is_number(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high:g}")
        wording = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
        raise error(f"{name} must be {wording}{' or None' if optional else ''}, got {value!r}")
    return float(value)


def check_bool(value: Any, name: str, *, error: type[SteerlabError] = SpecError) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise error(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(
    value: T, name: str, choices: Collection[T], *, error: type[SteerlabError] = SpecError
) -> T:
    """``value`` if it is one of ``choices``; the message lists them."""
    if value not in choices:
        listed = ", ".join(str(choice) for choice in choices)
        raise error(f"{name} {value!r} is not one of {listed}")
    return value


def check_layer_indices(
    values: Iterable[Any],
    name: str,
    *,
    allow_empty: bool = False,
    allow_duplicates: bool = False,
    error: type[SteerlabError] = SpecError,
) -> tuple[int, ...]:
    """``values`` as a tuple of layer indices (integers >= 0).

    Args:
        values: The indices (any iterable but a string).
        name: How the message names the field.
        allow_empty: Whether no index at all is allowed.
        allow_duplicates: Whether an index may repeat.
        error: The error class to raise.

    Raises:
        SpecError (or ``error``): the first index at fault, or an empty/duplicated list.
    """
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise error(f"{name} must be a list of layer indices, got {values!r}")
    layers = tuple(values)
    if not layers and not allow_empty:
        raise error(f"{name} is empty; give at least one layer index")
    for layer in layers:
        if not is_int(layer) or layer < 0:
            raise error(f"{name}: {layer!r} is not a layer index >= 0")
    if not allow_duplicates and len(set(layers)) != len(layers):
        raise error(f"{name} {list(layers)} has duplicates")
    return tuple(int(layer) for layer in layers)


def _int_wording(minimum: int | None, maximum: int | None, optional: bool) -> str:
    if minimum == 1 and maximum is None:
        wording = "a positive integer"
    elif minimum is not None and maximum is not None:
        wording = f"an integer from {minimum} to {maximum}"
    elif minimum is not None:
        wording = f"an integer >= {minimum}"
    elif maximum is not None:
        wording = f"an integer <= {maximum}"
    else:
        wording = "an integer"
    return wording + (" or None" if optional else "")

"""steerlab.validation: the field checks every config uses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerlab.errors import DataError, SpecError
from steerlab.validation import (
    check_bool,
    check_choice,
    check_int,
    check_layer_indices,
    check_number,
    is_int,
    is_number,
)


@pytest.mark.parametrize("value", [0, 3, -2, np.int64(5)])
def test_integers(value: object) -> None:
    assert is_int(value)


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, np.float32(1)])
def test_not_integers(value: object) -> None:
    assert not is_int(value)


@pytest.mark.parametrize("value", [True, math.nan, math.inf, "2", None])
def test_not_numbers(value: object) -> None:
    assert not is_number(value)


def test_check_int_normalises_and_names_the_field() -> None:
    assert check_int(np.int64(4), "batch_size", minimum=1) == 4
    assert type(check_int(np.int64(4), "batch_size", minimum=1)) is int
    assert check_int(None, "limit", minimum=1, optional=True) is None
    with pytest.raises(SpecError, match=r"^batch_size must be a positive integer, got True$"):
        check_int(True, "batch_size", minimum=1)
    with pytest.raises(SpecError, match=r"seed must be an integer >= 0, got -1"):
        check_int(-1, "seed", minimum=0)
    with pytest.raises(SpecError, match=r"from 1 to 3 or None, got 4"):
        check_int(4, "n", minimum=1, maximum=3, optional=True)
    with pytest.raises(DataError):
        check_int("3", "limit", error=DataError)


def test_check_number_bounds() -> None:
    assert check_number(1, "alpha", low=0, low_open=True) == 1.0
    assert check_number(0.0, "dropout", low=0, high=1, high_open=True) == 0.0
    with pytest.raises(SpecError, match=r"dropout must be a finite number >= 0 and < 1, got 1"):
        check_number(1, "dropout", low=0, high=1, high_open=True)
    with pytest.raises(SpecError, match=r"> 0"):
        check_number(0, "learning_rate", low=0, low_open=True)
    with pytest.raises(SpecError, match="nan"):
        check_number(math.nan, "rep_weight", low=0)
    with pytest.raises(SpecError, match="True"):
        check_number(True, "rep_weight")


def test_check_bool_choice_and_layers() -> None:
    assert check_bool(False, "token_loss") is False
    with pytest.raises(SpecError, match="token_loss must be True or False, got 1"):
        check_bool(1, "token_loss")
    assert check_choice("toward", "direction", ("toward", "away")) == "toward"
    with pytest.raises(SpecError, match="direction 'up' is not one of toward, away"):
        check_choice("up", "direction", ("toward", "away"))
    assert check_layer_indices([3, np.int64(4)], "layers") == (3, 4)
    with pytest.raises(SpecError, match="layers: -1 is not a layer index"):
        check_layer_indices([-1], "layers")
    with pytest.raises(SpecError, match="duplicates"):
        check_layer_indices([2, 2], "layers")
    with pytest.raises(SpecError, match="empty"):
        check_layer_indices([], "layers")
    with pytest.raises(SpecError, match="list of layer indices"):
        check_layer_indices("12", "layers")
    assert check_layer_indices([], "layers", allow_empty=True) == ()

"""The shared CLI pieces (:mod:`steerlab.cli.common`): parsers, checks, training options."""

from __future__ import annotations

import pytest

from steerlab.cli.common import parse_coefficients
from steerlab.errors import SpecError

# -- parse_coefficients --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-6,0,6", [-6.0, 0.0, 6.0]),
        (" 1.5 ", [1.5]),
        ("-2,0,2,", [-2.0, 0.0, 2.0]),
        ("-8:8:17", [float(x) for x in range(-8, 9)]),
        ("0:1:5", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("3:9:1", [3.0]),
        ("1:-1:3", [1.0, 0.0, -1.0]),
    ],
)
def test_parse_coefficients(text: str, expected: list[float]) -> None:
    assert parse_coefficients(text) == pytest.approx(expected, abs=1e-12)


def test_parse_coefficients_range_endpoints_exact() -> None:
    values = parse_coefficients("-0.3:0.3:7")
    assert len(values) == 7
    assert values[0] == -0.3
    assert values[-1] == 0.3
    assert values[3] == 0.0


@pytest.mark.parametrize("text", ["", ",", "a,b", "1:2", "1:2:3:4", "0:1:0", "0:1:-2", "0:1:x"])
def test_parse_coefficients_errors(text: str) -> None:
    with pytest.raises(SpecError):
        parse_coefficients(text)

"""The calibration plot: both files, deterministic bytes, optional parts, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from steerlab.errors import SpecError
from steerlab.report.calibration import plot_calibration

GRID = (-0.4, -0.2, -0.1, 0.0, 0.1, 0.2, 0.4)
BEHAVIOR = tuple(float(np.tanh(3 * c)) for c in GRID)
RATIO = tuple(1 + 10 * c * c for c in GRID)


def full_plot(out_base) -> list:
    xs = np.linspace(-0.4, 0.4, 41)
    return plot_calibration(
        out_base,
        coefficients=GRID,
        behavior=BEHAVIOR,
        behavior_low=[b - 0.1 for b in BEHAVIOR],
        behavior_high=[b + 0.1 for b in BEHAVIOR],
        perplexity_ratio=RATIO,
        perplexity_bound=1.5,
        recommended=(-0.2, 0.2),
        cost_effective=[(-0.3, 0.0), (0.0, 0.3)],
        behavior_curve=(xs, np.tanh(3 * xs)),
        perplexity_curve=(xs, 1 + 10 * xs * xs),
        title="Calibration (norm scale, layers 12-18)",
    )


def test_writes_png_and_svg_with_identical_bytes_each_time(tmp_path) -> None:
    first = full_plot(tmp_path / "a" / "calibration")
    assert [p.name for p in first] == ["calibration.png", "calibration.svg"]
    assert all(p.stat().st_size > 1000 for p in first)
    second = full_plot(tmp_path / "b" / "calibration.png")  # a suffix is replaced
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_optional_parts_may_be_left_out(tmp_path) -> None:
    paths = plot_calibration(
        tmp_path / "bare",
        coefficients=GRID[::-1],  # any order
        behavior=BEHAVIOR[::-1],
        perplexity_ratio=RATIO[::-1],
        perplexity_bound=2.0,
        recommended=(None, 0.4),
    )
    assert all(p.is_file() for p in paths)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"coefficients": (), "behavior": (), "perplexity_ratio": ()}, "no points"),
        ({"behavior": BEHAVIOR[:-1]}, "differ in length"),
        ({"behavior_curve": ([0.0, 0.1], [0.0])}, "fitted curve"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, change: dict, message: str) -> None:
    arguments = {
        "coefficients": GRID,
        "behavior": BEHAVIOR,
        "perplexity_ratio": RATIO,
        "perplexity_bound": 1.5,
        **change,
    }
    with pytest.raises(SpecError, match=message):
        plot_calibration(tmp_path / "x", **arguments)

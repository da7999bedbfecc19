"""Tests for steerlab.report.plots: files written, readable, deterministic and atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from steerlab.errors import SpecError
from steerlab.evaluate.fit import TradeoffFit, fit_tradeoff
from steerlab.evaluate.results import SweepRow
from steerlab.report import plots
from steerlab.report.plots import plot_behavior, plot_helpfulness, plot_sweep, plot_tradeoff

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
R = np.linspace(-4.0, 4.0, 9)
BEHAVIOR_TASK = "refusal"
HELPFULNESS_TASK = "mmlu_medical_genetics"


def _curves() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Known tanh and parabolic curves with a little seeded noise."""
    rng = np.random.default_rng(0)
    behavior = np.clip(np.tanh(0.45 * R + np.arctanh(0.1)) + rng.normal(0, 0.02, R.size), -1, 1)
    helpfulness = 0.6 / (0.6 + 0.4 * (1.0 + 0.06 * R**2)) + rng.normal(0, 0.01, R.size)
    accuracy = np.clip(helpfulness + rng.normal(0, 0.03, R.size), 0, 1)
    return behavior, helpfulness, accuracy


def _row(task: str, kind: str, metric: str, r: float, value: float, half: float) -> SweepRow:
    return SweepRow(task, kind, metric, float(r), float(value), value - half, value + half, 100)


def make_rows(kinds: tuple[str, ...] = ("behavior", "helpfulness")) -> list[SweepRow]:
    behavior, helpfulness, accuracy = _curves()
    rows: list[SweepRow] = []
    for r, b, p, a in zip(R, behavior, helpfulness, accuracy, strict=True):
        if "behavior" in kinds:
            rows.append(_row(BEHAVIOR_TASK, "behavior", "B_likelihood", r, b, 0.08))
            rows.append(_row(BEHAVIOR_TASK, "behavior", "B_sampling", r, 0.9 * b, 0.12))
        if "helpfulness" in kinds:
            rows.append(_row(HELPFULNESS_TASK, "helpfulness", "p_correct", r, p, 0.05))
            rows.append(_row(HELPFULNESS_TASK, "helpfulness", "accuracy", r, a, 0.09))
            rows.append(_row(HELPFULNESS_TASK, "perplexity", "perplexity", r, 10 + r * r, 0.5))
    return rows


@pytest.fixture(scope="module")
def fit() -> TradeoffFit:
    behavior, helpfulness, _ = _curves()
    return fit_tradeoff(R, behavior, helpfulness)


def assert_valid_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    assert len(data) > 10_000, f"{path} is suspiciously small ({len(data)} bytes)"


def svg_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text, path
    return text


def assert_no_temp_files(folder: Path) -> None:
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".") or ".tmp" in p.name]
    assert leftovers == []


def test_behavior_plot_writes_png_and_svg(tmp_path: Path, fit: TradeoffFit) -> None:
    paths = plot_behavior(make_rows(), tmp_path / "behavior", fit=fit.behavior)

    assert paths == [tmp_path / "behavior.png", tmp_path / "behavior.svg"]
    assert_valid_png(paths[0])
    text = svg_text(paths[1])
    assert "Behaviour vs steering coefficient (refusal)" in text
    assert "steering coefficient r_e" in text
    assert "behaviour B = P(aligned) − P(misaligned)" in text
    assert "tanh fit: Δλ=" in text and "B0=" in text and "R²=" in text
    assert "B_likelihood" in text and "B_sampling" in text
    assert "mmlu" not in text  # other kinds are not drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["behavior.png", "behavior.svg"]


def test_helpfulness_plot_has_both_metrics_and_fit_label(tmp_path: Path, fit: TradeoffFit) -> None:
    paths = plot_helpfulness(make_rows(), tmp_path / "help", fit=fit.helpfulness)

    assert_valid_png(paths[0])
    text = svg_text(paths[1])
    assert f"Helpfulness vs steering coefficient ({HELPFULNESS_TASK})" in text
    assert "steering coefficient r_e" in text
    assert "helpfulness (p_correct, accuracy)" in text  # p_correct first, accuracy second
    assert "parabolic bound fit: P0=" in text
    assert "a=" in text and "λσβ=" in text and "R²=" in text
    assert "perplexity" not in text


def test_tradeoff_plot_has_colorbar_and_zero_annotation(tmp_path: Path, fit: TradeoffFit) -> None:
    paths = plot_tradeoff(make_rows(), tmp_path / "tradeoff", fit=fit)

    assert_valid_png(paths[0])
    text = svg_text(paths[1])
    assert "Alignment–helpfulness frontier" in text
    assert "coefficient r_e" in text
    assert "r = 0" in text
    # Defaults: B_likelihood and p_correct are preferred over the other metrics.
    assert f"helpfulness: {HELPFULNESS_TASK} · p_correct" in text
    assert f"behaviour: {BEHAVIOR_TASK} · B_likelihood" in text
    assert "fitted frontier" in text


def test_tradeoff_named_series_and_no_fit(tmp_path: Path) -> None:
    paths = plot_tradeoff(
        make_rows(),
        tmp_path / "t",
        behavior_metric="B_sampling",
        helpfulness_metric="accuracy",
    )
    text = svg_text(paths[1])
    assert "B_sampling" in text and "accuracy" in text
    assert "fitted frontier" not in text


def test_same_inputs_give_byte_identical_files(tmp_path: Path, fit: TradeoffFit) -> None:
    rows = make_rows()
    first = plot_sweep(rows, tmp_path / "a", fit)
    before = {p.name: p.read_bytes() for p in first}
    # Rewriting in place (a resumed sweep) and writing elsewhere both give the same bytes.
    again = plot_sweep(rows, tmp_path / "a", fit)
    other = plot_sweep(list(reversed(rows)), tmp_path / "b", fit)
    assert [p.name for p in again] == [p.name for p in other] == list(before)
    for path in again:
        assert path.read_bytes() == before[path.name], path.name
    for path in other:
        assert path.read_bytes() == before[path.name], path.name
    assert_no_temp_files(tmp_path / "a")
    assert_no_temp_files(tmp_path / "b")


def test_plot_sweep_writes_all_three(tmp_path: Path, fit: TradeoffFit) -> None:
    paths = plot_sweep(make_rows(), tmp_path / "out", fit)

    names = [p.name for p in paths]
    assert names == [
        "behavior.png",
        "behavior.svg",
        "helpfulness.png",
        "helpfulness.svg",
        "tradeoff.png",
        "tradeoff.svg",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    for path in paths:
        if path.suffix == ".png":
            assert_valid_png(path)
    behavior_svg = svg_text(tmp_path / "out" / "behavior.svg")
    assert "B_likelihood" in behavior_svg and "B_sampling" not in behavior_svg
    assert "tanh fit" in behavior_svg
    helpfulness_svg = svg_text(tmp_path / "out" / "helpfulness.svg")
    assert "parabolic bound fit" in helpfulness_svg and "accuracy" in helpfulness_svg


def test_plot_sweep_with_only_behavior_rows(tmp_path: Path) -> None:
    paths = plot_sweep(make_rows(kinds=("behavior",)), tmp_path, None)

    assert [p.name for p in paths] == ["behavior.png", "behavior.svg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["behavior.png", "behavior.svg"]
    assert "tanh fit" not in svg_text(tmp_path / "behavior.svg")


def test_plot_sweep_with_only_helpfulness_rows(tmp_path: Path) -> None:
    paths = plot_sweep(make_rows(kinds=("helpfulness",)), tmp_path, None)
    assert [p.name for p in paths] == ["helpfulness.png", "helpfulness.svg"]


def test_plot_sweep_with_no_rows_writes_nothing(tmp_path: Path) -> None:
    assert plot_sweep([], tmp_path / "empty", None) == []
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda rows, out: plot_behavior(rows, out, task="nope"), "no behavior rows for task"),
        (lambda rows, out: plot_behavior(rows, out, metric="nope"), "metric 'nope'"),
        # A helpfulness task is not a behaviour task.
        (lambda rows, out: plot_behavior(rows, out, task=HELPFULNESS_TASK), "available: refusal"),
        (lambda rows, out: plot_helpfulness(rows, out, task="nope"), "no helpfulness rows"),
        (lambda rows, out: plot_tradeoff(rows, out, behavior_task="nope"), "no behavior rows"),
        (
            lambda rows, out: plot_tradeoff(rows, out, helpfulness_metric="perplexity"),
            "no helpfulness rows",
        ),
    ],
)
def test_missing_series_is_a_one_line_spec_error(tmp_path: Path, call, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        call(make_rows(), tmp_path / "plot")
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_no_rows_of_kind_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no helpfulness rows to plot"):
        plot_helpfulness(make_rows(kinds=("behavior",)), tmp_path / "h")


def test_tradeoff_without_shared_coefficients_is_a_spec_error(tmp_path: Path) -> None:
    rows = [r for r in make_rows() if r.kind != "helpfulness" or r.coefficient < 0]
    rows = [r for r in rows if r.kind != "behavior" or r.coefficient > 0]
    with pytest.raises(SpecError, match="no coefficient has both"):
        plot_tradeoff(rows, tmp_path / "t")
    # plot_sweep skips the frontier instead.
    names = [p.name for p in plot_sweep(rows, tmp_path / "s", None)]
    assert "tradeoff.png" not in names and "behavior.png" in names


def test_suffix_in_out_base(tmp_path: Path) -> None:
    rows = make_rows()
    assert plot_behavior(rows, tmp_path / "b.png") == [tmp_path / "b.png", tmp_path / "b.svg"]
    assert plot_behavior(rows, tmp_path / "run.v2") == [
        tmp_path / "run.v2.png",
        tmp_path / "run.v2.svg",
    ]


def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_savefig = Figure.savefig

    def failing_savefig(self: Figure, fname, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("format") == "svg":
            Path(fname).write_text("<svg half written")
            raise OSError("disk full")
        return real_savefig(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_behavior(make_rows(), tmp_path / "behavior")
    # The PNG was complete and renamed; the SVG never appeared, nor did any temporary file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["behavior.png"]


def test_odd_sweeps_still_plot(tmp_path: Path) -> None:
    """One coefficient, positive-only coefficients and NaN intervals do not break plotting."""
    single = [_row("t", "behavior", "B_likelihood", 0.0, 0.2, 0.1)]
    single.append(_row("h", "helpfulness", "p_correct", 0.0, 0.5, 0.1))
    assert len(plot_sweep(single, tmp_path / "single", None)) == 6

    positive = [_row("t", "behavior", "B_likelihood", r, r / 10, 0.05) for r in (1.0, 2.0, 4.0)]
    positive += [_row("h", "helpfulness", "p_correct", r, 0.5 - r / 20, 0.05) for r in (1, 2, 4)]
    nan = SweepRow("t", "behavior", "B_likelihood", 8.0, 0.5, float("nan"), float("nan"), 1)
    paths = plot_sweep([*positive, nan], tmp_path / "positive", None)
    assert len(paths) == 6
    assert "r = 0" not in svg_text(tmp_path / "positive" / "tradeoff.svg")


def test_pyplot_global_state_untouched(tmp_path: Path) -> None:
    import matplotlib

    backend = matplotlib.get_backend()
    rc_before = dict(matplotlib.rcParams)
    plot_sweep(make_rows(), tmp_path, None)
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == rc_before
    assert plots.DPI == 150

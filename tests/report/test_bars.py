"""Bar charts of suite rows: files written, deterministic, inputs checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from steerlab.errors import DataError, SpecError
from steerlab.evaluate.suite import SuiteRow
from steerlab.report.bars import panel_title, plot_suite_bars

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODELS = ("untuned", "token_only", "honest", "untuned+steer(4)")


def make_rows() -> list[SuiteRow]:
    rows = []
    for k, model in enumerate(MODELS):
        rows += [
            SuiteRow(
                model, "tf_accuracy", "facts_true_false", 0.5 + 0.1 * k, 0.45, 0.6 + 0.1 * k, 50
            ),
            SuiteRow(model, "tf_auroc", "facts_true_false", 0.55 + 0.1 * k, 0.5, 0.7 + 0.1 * k, 50),
            SuiteRow(model, "truthfulqa_mc2", "truthfulqa", 0.3 + 0.05 * k, 0.25, 0.4 + k / 20, 40),
            SuiteRow(model, "perplexity", "general_text", 12.0 + k, 11.0 + k, 13.5 + k, 40),
            SuiteRow(model, "cosine", "facts", -0.1 + 0.1 * k, -0.15 + 0.1 * k, 0.1 * k, 64),
        ]
    return rows


def test_bars_written_and_deterministic(tmp_path: Path):
    rows = make_rows()
    paths = plot_suite_bars(rows, tmp_path / "bars")
    assert paths == [tmp_path / "bars.png", tmp_path / "bars.svg"]
    assert paths[0].read_bytes().startswith(PNG_MAGIC)
    svg = paths[1].read_bytes()
    assert b"<svg" in svg
    again = plot_suite_bars(rows, tmp_path / "other.svg")
    assert again[1].read_bytes() == svg
    assert again[0].read_bytes() == paths[0].read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))


def test_bars_accept_dicts_and_nan(tmp_path: Path):
    rows = [
        {
            "model": "a",
            "metric": "tf_auroc",
            "dataset": "x",
            "value": None,
            "low": None,
            "high": None,
        },
        {"model": "b", "metric": "tf_auroc", "dataset": "x", "value": 0.7, "low": 0.6, "high": 0.8},
        # An interval that misses the point must not give negative error bars.
        {"model": "a", "metric": "custom", "dataset": "y", "value": 2.0, "low": 2.5, "high": 3.0},
    ]
    paths = plot_suite_bars(rows, tmp_path / "bars")
    assert all(p.is_file() for p in paths)


def test_bars_reject_bad_rows(tmp_path: Path):
    with pytest.raises(SpecError, match="nothing to plot"):
        plot_suite_bars([], tmp_path / "bars")
    with pytest.raises(DataError, match="row 0: missing field 'dataset'"):
        plot_suite_bars([{"model": "a", "metric": "m", "value": 1}], tmp_path / "bars")


def test_panel_titles():
    assert (
        panel_title("tf_accuracy", "facts_true_false") == "true/false accuracy — facts_true_false"
    )
    assert (
        panel_title("perplexity", "general_text") == "perplexity (lower is better) — general_text"
    )
    assert panel_title("truthfulqa_mc1", "truthfulqa") == "TruthfulQA MC1 accuracy"
    assert panel_title("other", "d") == "other — d"

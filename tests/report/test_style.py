"""steerlab.report.style and the report package's layout: shared output, re-exports, layering."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import steerlab.report as report_package
from steerlab.errors import SpecError
from steerlab.report import matrix, plots, style, vectors
from steerlab.report.matrix import plot_matrix


def test_plot_targets_replace_only_plot_suffixes(tmp_path: Path) -> None:
    assert style.plot_targets(tmp_path / "a") == [tmp_path / "a.png", tmp_path / "a.svg"]
    assert style.plot_targets(tmp_path / "a.svg") == [tmp_path / "a.png", tmp_path / "a.svg"]
    assert style.plot_targets(tmp_path / "run.v2") == [
        tmp_path / "run.v2.png",
        tmp_path / "run.v2.svg",
    ]


def test_plots_module_still_offers_every_plot() -> None:
    assert plots.plot_matrix is matrix.plot_matrix
    assert plots.plot_comparison is vectors.plot_comparison
    assert plots.DPI == style.DPI == 150


def test_matrix_plot_is_deterministic(tmp_path: Path) -> None:
    rates = [
        {"vector": "-", "operator": "none", "normalization": "-", "layers": "-",
         "coefficient": 0.0, "rate": 0.1, "median_perplexity": 5.0},
        {"vector": "v", "operator": "add", "normalization": "raw", "layers": "all",
         "coefficient": 1.0, "rate": 0.4, "median_perplexity": 6.0},
        {"vector": "v", "operator": "add", "normalization": "raw", "layers": "all",
         "coefficient": 2.0, "rate": 0.7, "median_perplexity": 9.0},
    ]  # fmt: skip
    first = plot_matrix(rates, tmp_path / "a", "judge")
    second = plot_matrix(rates, tmp_path / "b", "judge")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    with pytest.raises(SpecError, match="nothing to plot"):
        plot_matrix([], tmp_path / "c", "judge")


def test_report_imports_only_stats_and_foundation() -> None:
    """Report draws results; it must not reach into the evaluation code (or a model)."""
    allowed = ("steerlab.stats", "steerlab.errors", "steerlab.provenance", "steerlab.report")
    folder = Path(report_package.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("steerlab"):
                    assert name.startswith(allowed), f"{path.name} imports {name}"
                assert not name.startswith(("torch", "transformers")), f"{path.name}: {name}"

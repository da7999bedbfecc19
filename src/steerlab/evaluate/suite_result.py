"""The result of an honesty-suite run: its rows and settings, as tables, text, files and plots.

A suite run's folder holds ``results.jsonl`` (one :class:`~steerlab.evaluate.suite_rows.SuiteRow`
a line), ``suite.json`` (settings, data hashes, models, provenance), ``table.csv``,
``table.md`` and ``bars.png`` / ``bars.svg``; :meth:`SuiteResult.save` writes them and
:meth:`SuiteResult.load` reads them back. :meth:`SuiteResult.table` and
:meth:`SuiteResult.summary` render the result for a terminal.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from steerlab.errors import DataError, SpecError
from steerlab.evaluate.jsonl import read_rows, write_rows
from steerlab.evaluate.suite_rows import SuiteRow
from steerlab.provenance import atomic_write

__all__ = [
    "BARS",
    "CONFIG",
    "RESULTS",
    "TABLE_CSV",
    "TABLE_MD",
    "SuiteResult",
    "read_config",
    "write_config",
]

RESULTS = "results.jsonl"
"""The rows of a suite run."""

CONFIG = "suite.json"
"""The settings, data hashes, models and provenance of a suite run."""

TABLE_CSV = "table.csv"
"""The table (a row per model) as CSV."""

TABLE_MD = "table.md"
"""The table as Markdown."""

BARS = "bars"
"""The bar plots (``bars.png``, ``bars.svg``)."""


@dataclass
class SuiteResult:
    """The rows of a suite run, with its settings; tables and plots.

    Attributes:
        rows: one per model x metric x dataset, models in the given order.
        models: model labels, in order.
        config: the run's settings, data hashes, models and provenance (``suite.json``).
    """

    rows: list[SuiteRow]
    models: list[str]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> list[tuple[str, str]]:
        """The ``(metric, dataset)`` columns, in table order."""
        return list(dict.fromkeys((r.metric, r.dataset) for r in self.rows))

    def value(self, model: str, metric: str, dataset: str | None = None) -> SuiteRow:
        """The row of ``model``'s ``metric`` on ``dataset``.

        ``dataset=None`` takes the metric's only dataset; for the cosine metrics, whose rows
        are a mean over layers (``facts``) and one per layer (``facts L12``...), the mean.
        ``"cosine"`` on a result without such rows is a deprecated alias of
        ``"cosine_statement"`` (the old row averaged the whole prompt, template included).

        Raises:
            SpecError: no such row, or ``dataset=None`` where the metric has several.
        """
        if metric == "cosine" and not any(r.metric == "cosine" for r in self.rows):
            warnings.warn(
                "the suite's 'cosine' row is now 'cosine_statement' (the statement's tokens; "
                "'cosine_answer': the answer position)",
                DeprecationWarning,
                stacklevel=2,
            )
            metric = "cosine_statement"
        matches = [
            r
            for r in self.rows
            if r.model == model and r.metric == metric and dataset in (None, r.dataset)
        ]
        if not matches:
            where = "" if dataset is None else f" on {dataset!r}"
            raise SpecError(f"no {metric!r} row{where} for model {model!r}")
        if len(matches) > 1 and dataset is None:
            # Per-layer rows carry their layer: without a dataset, the mean over layers.
            overall = [r for r in matches if "layer" not in r.extra]
            matches = overall if len(overall) == 1 else matches
        if len(matches) > 1:
            names = ", ".join(r.dataset for r in matches)
            raise SpecError(f"metric {metric!r} has several datasets ({names}); name one")
        return matches[0]

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        columns = self.metrics
        index = {r.key: r for r in self.rows}
        header = ["model", *(f"{m}[{d}]" for m, d in columns)]
        body = []
        for model in self.models:
            cells = [model]
            for metric, dataset in columns:
                row = index.get((model, metric, dataset))
                cells.append("-" if row is None else _cell(row))
            body.append(cells)
        return header, body

    def table_markdown(self) -> str:
        """A Markdown table: one row per model, one column per ``metric[dataset]``."""
        header, body = self._cells()
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---", *(["---:"] * (len(header) - 1))]) + "|",
        ]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in body]
        return "\n".join(lines) + "\n"

    def table_csv(self) -> str:
        """The same table as CSV text."""
        header, body = self._cells()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)
        return buffer.getvalue()

    def table(self) -> Table:
        """A rich table for the terminal: one row per metric, one column per model.

        Transposed against the files (models are few, metrics many), so that it stays
        readable in an 80-column terminal; each cell is the value over its 95% CI.
        """
        table = Table(title="honesty suite: value, 95% CI", show_lines=True)
        table.add_column("metric", overflow="fold")
        table.add_column("data", overflow="fold")
        for model in self.models:
            table.add_column(model, justify="right", overflow="fold")
        index = {r.key: r for r in self.rows}
        splits = self.facts_splits()
        for metric, dataset in self.metrics:
            cells = []
            for model in self.models:
                row = index.get((model, metric, dataset))
                cells.append("-" if row is None else _terminal_cell(row))
            n = next((r.n for r in self.rows if (r.metric, r.dataset) == (metric, dataset)), 0)
            split = splits.get(dataset) if metric.startswith("tf_") else None
            detail = f"{split}, n={n}" if split else f"n={n}"
            table.add_row(metric, f"{dataset}\n({detail})", *cells)
        return table

    def rich_table(self) -> Table:
        """Deprecated: use :meth:`table`."""
        warnings.warn(
            "SuiteResult.rich_table() is deprecated; use SuiteResult.table()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.table()

    def summary(self) -> str:
        """A few plain-text lines: the models, the data scored, and each model's values.

        One line for the run, one per facts file (:meth:`data_summary`), and one per model
        with every ``metric[dataset] = value [95% CI]``.
        """
        lines = [
            f"honesty suite: {len(self.models)} model(s) ({', '.join(self.models)}), "
            f"{len(self.metrics)} metric column(s), 95% bootstrap intervals"
        ]
        lines += self.data_summary()
        index = {r.key: r for r in self.rows}
        for model in self.models:
            cells = [
                f"{metric}[{dataset}] = {_cell(index[(model, metric, dataset)])}"
                for metric, dataset in self.metrics
                if (model, metric, dataset) in index
            ]
            lines.append(f"{model}: {'; '.join(cells) if cells else 'no rows'}")
        return "\n".join(lines)

    def facts_splits(self) -> dict[str, str]:
        """The split (``heldout`` or ``all``) each facts dataset was scored on."""
        return {
            str(d.get("dataset")): str(d.get("split"))
            for d in self.config.get("data", [])
            if isinstance(d, dict) and d.get("kind") == "facts" and d.get("split")
        }

    def data_summary(self) -> list[str]:
        """One line per facts file (the split scored, why, how many statements), and one for
        the cosine metrics (their layers and answer positions, and why)."""
        lines = []
        for d in self.config.get("data", []):
            if not isinstance(d, dict):
                continue
            if d.get("kind") == "facts" and d.get("split"):
                lines.append(
                    f"true/false statements {d['dataset']}: split {d['split']} "
                    f"({d.get('split_reason', '')}), n = {d['n']}"
                )
            elif d.get("kind") == "cosine" and d.get("layers"):
                layers = ", ".join(str(layer) for layer in d["layers"])
                lines.append(
                    f"cosine to the vector: layers {layers} ({d.get('layers_reason', '')}); "
                    "cosine_statement over each statement's tokens, cosine_answer over "
                    f"positions {d.get('answer_positions')!r} ({d.get('positions_reason', '')}); "
                    f"n = {d.get('n')} statements"
                )
        return lines

    def save(self, output_dir: str | os.PathLike[str]) -> list[Path]:
        """Write ``results.jsonl``, ``suite.json`` (when known), the tables and the bar plots.

        Returns:
            The paths written.
        """
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [write_rows(out / RESULTS, self.rows)]
        if self.config:
            written.append(write_config(out / CONFIG, self.config))
        with atomic_write(out / TABLE_CSV) as handle:
            handle.write(self.table_csv())
        with atomic_write(out / TABLE_MD) as handle:
            handle.write(self.table_markdown())
        written += [out / TABLE_CSV, out / TABLE_MD]
        # One panel per metric and dataset: the per-layer cosine rows stay in the tables.
        plotted = [r for r in self.rows if "layer" not in r.extra]
        if plotted:
            # Imported here: matplotlib takes a while to import, and only saving draws.
            from steerlab.report.bars import plot_suite_bars

            written += plot_suite_bars(plotted, out / BARS)
        return written

    @classmethod
    def load(cls, output_dir: str | os.PathLike[str]) -> SuiteResult:
        """Read a folder written by :func:`~steerlab.evaluate.evaluate_models` or :meth:`save`.

        Raises:
            DataError: no ``results.jsonl``, or a malformed file.
        """
        out = Path(output_dir)
        if not (out / RESULTS).is_file():
            raise DataError(f"{out / RESULTS}: no such file")
        rows = read_rows(out / RESULTS, SuiteRow.from_json)
        config: dict[str, Any] = {}
        if (out / CONFIG).is_file():
            config = read_config(out / CONFIG)
        labels = [m.get("label") for m in config.get("models", []) if isinstance(m, dict)]
        present = list(dict.fromkeys(r.model for r in rows))
        models = [m for m in labels if m in present] + [m for m in present if m not in labels]
        return cls(rows, models, config)


def _cell(row: SuiteRow) -> str:
    if not math.isfinite(row.value):
        return "n/a"
    digits = 2 if row.metric == "perplexity" else 3
    low = "n/a" if not math.isfinite(row.low) else f"{row.low:.{digits}f}"
    high = "n/a" if not math.isfinite(row.high) else f"{row.high:.{digits}f}"
    return f"{row.value:.{digits}f} [{low}, {high}]"


def _terminal_cell(row: SuiteRow) -> str:
    """Value over a compact interval (one digit fewer), to fit narrow terminal columns."""
    if not math.isfinite(row.value):
        return "n/a"
    digits = 1 if row.metric == "perplexity" else 2
    bounds = ["n/a" if not math.isfinite(b) else f"{b:.{digits}f}" for b in (row.low, row.high)]
    return f"{row.value:.{digits + 1}f}\n[{bounds[0]}, {bounds[1]}]"


def read_config(path: Path) -> dict[str, Any]:
    """A suite run's ``suite.json``.

    Raises:
        DataError: invalid JSON (naming the line) or not an object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write ``suite.json`` atomically (sorted keys, two-space indent, strict JSON)."""
    with atomic_write(path) as handle:
        json.dump(config, handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")
    return path

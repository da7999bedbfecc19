"""The rows of a steering matrix and their renderings: rates, CSV, example pages, table, text.

One :class:`MatrixRow` per generated output (condition x prompt), scored for the behaviour and
for fluency; :class:`MatrixResult` groups them by condition and writes ``results.jsonl``,
``summary.csv``, ``examples.md``/``.html`` and the rate plots.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from steerlab.errors import DataError
from steerlab.evaluate.jsonl import write_rows
from steerlab.provenance import atomic_write

__all__ = ["MatrixResult", "MatrixRow"]


@dataclass(frozen=True)
class MatrixRow:
    """One generated output under one condition."""

    vector: str
    operator: str
    normalization: str
    layers: str
    coefficient: float
    prompt: str
    response: str
    score: int
    perplexity: float

    def to_json(self) -> str:
        """One JSON line (keys sorted)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str, where: str) -> MatrixRow:
        """Parse :meth:`to_json` output; ``where`` (``FILE:LINE``) names bad input.

        Raises:
            DataError: a line that is not a steering-matrix row.
        """
        try:
            return cls(**json.loads(line))
        except (json.JSONDecodeError, TypeError):
            raise DataError(f"{where}: not a steering-matrix row") from None

    @property
    def condition(self) -> tuple[str, str, str, str, float]:
        """(vector, operator, normalization, layers, coefficient)."""
        return (self.vector, self.operator, self.normalization, self.layers, self.coefficient)

    def label(self) -> str:
        """Short human label of the condition."""
        if self.operator == "none":
            return "unsteered"
        if self.operator == "ablate":
            return f"{self.vector} ablate {self.layers}"
        return (
            f"{self.vector} {self.operator} {self.normalization} {self.layers} {self.coefficient:g}"
        )


@dataclass
class MatrixResult:
    """All rows of a steering matrix: per-condition rates, tables, pages and plots.

    Attributes:
        rows: one per condition x prompt, in generation order.
        scorer: the name of the scorer that scored the outputs.
    """

    rows: list[MatrixRow]
    scorer: str

    def rates(self) -> list[dict[str, Any]]:
        """Per condition: behaviour rate (share scored +1), fluency (median perplexity).

        Returns:
            One dict per condition, in generation order: ``vector``, ``operator``,
            ``normalization``, ``layers``, ``coefficient``, ``rate``, ``median_perplexity``
            and ``n`` (outputs behind it).
        """
        groups: dict[tuple[str, str, str, str, float], list[MatrixRow]] = {}
        for row in self.rows:
            groups.setdefault(row.condition, []).append(row)
        out = []
        for condition, rows in groups.items():
            scores = np.array([r.score for r in rows])
            ppl = np.array([r.perplexity for r in rows])
            out.append(
                {
                    "vector": condition[0],
                    "operator": condition[1],
                    "normalization": condition[2],
                    "layers": condition[3],
                    "coefficient": condition[4],
                    "rate": float((scores > 0).mean()),
                    "median_perplexity": float(np.median(ppl)),
                    "n": len(rows),
                }
            )
        return out

    def summary(self) -> str:
        """A few plain-text lines: the grid, the unsteered baseline, the strongest conditions.

        The strongest condition is the one with the highest rate; the strongest fluent one the
        highest rate among those whose median perplexity stays within twice the unsteered one.
        """
        rates = self.rates()
        prompts = len(dict.fromkeys(r.prompt for r in self.rows))
        lines = [
            f"steering matrix: {len(rates)} conditions x {prompts} prompts (scorer: {self.scorer})"
        ]
        baseline = next((e for e in rates if e["operator"] == "none"), None)
        steered = [e for e in rates if e["operator"] != "none"]
        if baseline is not None:
            lines.append(f"unsteered: {_rate_text(baseline)}")
        if steered:
            top = max(steered, key=lambda e: e["rate"])
            lines.append(f"highest rate: {_condition_label(top)}: {_rate_text(top)}")
        if baseline is not None and steered:
            limit = 2.0 * baseline["median_perplexity"]
            fluent = [e for e in steered if e["median_perplexity"] <= limit]
            if fluent:
                top = max(fluent, key=lambda e: e["rate"])
                lines.append(
                    "highest rate within 2x the unsteered perplexity: "
                    f"{_condition_label(top)}: {_rate_text(top)}"
                )
        return "\n".join(lines)

    def table(self) -> Table:
        """A rich table: one row per condition, with its rate and median perplexity."""
        table = Table(title=f"steering matrix (rate scored +1 by {self.scorer})")
        for column in ("vector", "operator", "norm", "layers", "coef", "rate", "median ppl"):
            table.add_column(column)
        for entry in self.rates():
            table.add_row(
                entry["vector"],
                entry["operator"],
                entry["normalization"],
                entry["layers"],
                f"{entry['coefficient']:g}",
                f"{entry['rate']:.2f}",
                f"{entry['median_perplexity']:.3g}",
            )
        return table

    def summary_csv(self) -> str:
        """The per-condition rates (:meth:`rates`) as CSV text (``summary.csv``)."""
        buffer = io.StringIO()
        fields = [
            "vector",
            "operator",
            "normalization",
            "layers",
            "coefficient",
            "rate",
            "median_perplexity",
            "n",
        ]
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for entry in self.rates():
            writer.writerow(
                {
                    **entry,
                    "rate": f"{entry['rate']:.4f}",
                    "median_perplexity": f"{entry['median_perplexity']:.4g}",
                }
            )
        return buffer.getvalue()

    def examples_markdown(self, max_prompts: int = 5) -> str:
        """Side by side: for each of the first prompts, every condition's output."""
        prompts = list(dict.fromkeys(r.prompt for r in self.rows))[:max_prompts]
        lines = [f"# Steering matrix: example outputs (scorer: {self.scorer})", ""]
        for prompt in prompts:
            lines += [
                f"## {prompt}",
                "",
                "| condition | score | perplexity | output |",
                "|---|---|---|---|",
            ]
            for row in (r for r in self.rows if r.prompt == prompt):
                text = row.response.replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {row.label()} | {row.score:+d} | {row.perplexity:.3g} | {text} |")
            lines.append("")
        return "\n".join(lines)

    def examples_html(self, max_prompts: int = 5) -> str:
        """The same page as HTML, one table per prompt."""
        prompts = list(dict.fromkeys(r.prompt for r in self.rows))[:max_prompts]
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'><title>steering matrix</title>",
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
            ".pos{background:#fde2e2}.neg{background:#e2f0fd}</style></head><body>",
            f"<h1>Steering matrix: example outputs</h1><p>scorer: {html.escape(self.scorer)}"
            "; red rows scored +1</p>",
        ]
        for prompt in prompts:
            parts.append(
                f"<h2>{html.escape(prompt)}</h2><table><tr><th>condition</th>"
                "<th>score</th><th>perplexity</th><th>output</th></tr>"
            )
            for row in (r for r in self.rows if r.prompt == prompt):
                css = "pos" if row.score > 0 else "neg"
                parts.append(
                    f"<tr class='{css}'><td>{html.escape(row.label())}</td><td>{row.score:+d}"
                    f"</td><td>{row.perplexity:.3g}</td><td>{html.escape(row.response)}</td></tr>"
                )
            parts.append("</table>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write results.jsonl, summary.csv, examples.md/.html and rate plots."""
        # Imported here: matplotlib takes a while to import, and only saving draws.
        from steerlab.report.matrix import plot_matrix

        folder = Path(out_dir)
        written = [write_rows(folder / "results.jsonl", self.rows)]
        texts = {
            "summary.csv": self.summary_csv(),
            "examples.md": self.examples_markdown(),
            "examples.html": self.examples_html(),
        }
        for name, text in texts.items():
            with atomic_write(folder / name) as handle:
                handle.write(text)
            written.append(folder / name)
        written += plot_matrix(self.rates(), folder / "rates", self.scorer)
        return written


def _condition_label(entry: dict[str, Any]) -> str:
    """A condition of :meth:`MatrixResult.rates` as :meth:`MatrixRow.label` names it."""
    if entry["operator"] == "ablate":
        return f"{entry['vector']} ablate {entry['layers']}"
    return (
        f"{entry['vector']} {entry['operator']} {entry['normalization']} {entry['layers']} "
        f"{entry['coefficient']:g}"
    )


def _rate_text(entry: dict[str, Any]) -> str:
    return f"rate {entry['rate']:.2f}, median perplexity {entry['median_perplexity']:.3g}"

"""Comparing steering vectors: cosine similarity per layer for every pair, and norms.

The ``steerlab compare`` command and :func:`steerlab.compare`; ``Comparison.save`` writes the
CSV, JSON and plot files.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from steerlab.errors import ModelMismatchError, SpecError
from steerlab.provenance import atomic_write
from steerlab.report.plots import plot_comparison
from steerlab.vector import SteeringVector


@dataclass(frozen=True)
class CosineRow:
    """Cosine similarity of two vectors at one layer, with their norms there."""

    a: str
    b: str
    layer: int
    cosine: float
    norm_a: float
    norm_b: float


@dataclass(frozen=True)
class Comparison:
    """Every pair of vectors compared at every layer they share."""

    names: tuple[str, ...]
    rows: tuple[CosineRow, ...]

    def to_json(self) -> str:
        """JSON text: names and rows."""
        return json.dumps(
            {"names": list(self.names), "rows": [asdict(r) for r in self.rows]}, indent=2
        )

    def to_csv(self) -> str:
        """CSV text with a header row."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["a", "b", "layer", "cosine", "norm_a", "norm_b"])
        for r in self.rows:
            writer.writerow(
                [r.a, r.b, r.layer, f"{r.cosine:.6f}", f"{r.norm_a:.6g}", f"{r.norm_b:.6g}"]
            )
        return buffer.getvalue()

    def table(self) -> Table:
        """Cosine per layer (rows) for each pair (columns)."""
        pairs = list(dict.fromkeys((r.a, r.b) for r in self.rows))
        table = Table(title="cosine similarity per layer")
        table.add_column("layer", justify="right")
        for a, b in pairs:
            table.add_column(f"{a}\nvs {b}", justify="right")
        layers = sorted({r.layer for r in self.rows})
        index = {(r.a, r.b, r.layer): r for r in self.rows}
        for layer in layers:
            cells = [str(layer)]
            for a, b in pairs:
                row = index.get((a, b, layer))
                cells.append("-" if row is None else f"{row.cosine:+.3f}")
            table.add_row(*cells)
        return table

    def summary(self) -> str:
        """One line per pair: mean cosine over shared layers, and where it peaks.

        E.g. ``contrastive vs diff: mean cosine +0.412 over 30 layers, highest +0.713 at
        layer 14``.
        """
        lines = []
        for a, b in dict.fromkeys((r.a, r.b) for r in self.rows):
            rows = [r for r in self.rows if (r.a, r.b) == (a, b)]
            best = max(rows, key=lambda r: r.cosine)
            mean = sum(r.cosine for r in rows) / len(rows)
            lines.append(
                f"{a} vs {b}: mean cosine {mean:+.3f} over {len(rows)} layers, "
                f"highest {best.cosine:+.3f} at layer {best.layer}"
            )
        return "\n".join(lines)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``cosine.csv``, ``cosine.json`` and the plots into ``out_dir``."""
        folder = Path(out_dir)
        written = []
        for name, text in (("cosine.csv", self.to_csv()), ("cosine.json", self.to_json())):
            with atomic_write(folder / name) as handle:
                handle.write(text)
            written.append(folder / name)
        written += plot_comparison(self, folder / "cosine")
        return written


def compare(vectors: Mapping[str, SteeringVector]) -> Comparison:
    """Cosine similarity per layer for every pair of ``vectors``.

    Raises:
        SpecError: fewer than two vectors, or a pair with no layer in common.
        ModelMismatchError: vectors from models of different size.
    """
    if len(vectors) < 2:
        raise SpecError("compare needs at least two vectors")
    rows = []
    for (name_a, a), (name_b, b) in itertools.combinations(vectors.items(), 2):
        try:
            cosines = a.cosine(b)
        except ModelMismatchError as exc:
            raise ModelMismatchError(f"{name_a} and {name_b}: {exc}") from None
        if not cosines:
            raise SpecError(f"{name_a} and {name_b} share no layer")
        norms_a, norms_b = a.norms(), b.norms()
        rows += [
            CosineRow(name_a, name_b, layer, value, norms_a[layer], norms_b[layer])
            for layer, value in cosines.items()
        ]
    return Comparison(tuple(vectors), tuple(rows))


def describe_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """Rows as dicts."""
    return [asdict(r) for r in comparison.rows]

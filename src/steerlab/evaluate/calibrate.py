"""``steerlab.calibrate``: a quick sweep that recommends a steering coefficient per sign.

:func:`calibrate` sweeps a geometric grid of both signs (plus 0) in one batched
:func:`~steerlab.evaluate.sweep.sweep`, measuring behaviour (the reply likelihood of
contrastive pairs: by default held-out pairs of the vector's own data, else ``behavior=``)
and fluency (perplexity on built-in general text, or ``text=``), then measures one more
coefficient per sign where the perplexity crosses its bound. The pure decision
(:mod:`~steerlab.evaluate.calibrate_fit`) fits both curves with the trade-off fits, finds the
cost-effective range per sign and recommends the largest grid coefficient whose perplexity
stays within a bound of the unsteered model's. The :class:`Calibration` it returns renders
itself, writes ``calibration.json`` and a plot (:meth:`Calibration.save`), and stores its
recommendation in a vector (:meth:`Calibration.apply_to`) for ``--coefficient auto``.

The vector's own data: a vector records the sha256 of the pairs it was made from, not their
path, so the built-in pair sets are searched for a prefix with that hash (what ``extract
--pairs builtin:NAME --limit N`` or ``pairs[:N]`` gives); the pairs after the prefix are held
out. With a ``pairs:FILE`` behaviour spec the same check finds the held-out part of FILE.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.data.pairs import ContrastPair, builtin_pairs, load_pairs, pairs_sha256
from steerlab.data.registry import builtin_names, parse_source_spec
from steerlab.errors import DataError, SpecError, SteeringStrengthWarning, VectorError
from steerlab.evaluate.calibrate_fit import (
    DEFAULT_PERPLEXITY_BOUND,
    CalibrationFit,
    coefficient_grid,
    default_magnitudes,
    recommend,
    refinement,
)
from steerlab.evaluate.specs import behavior_task, perplexity_task, task_name
from steerlab.evaluate.sweep import sweep
from steerlab.evaluate.tasks import (
    ABBehaviorTask,
    ContinuationBehaviorTask,
    PerplexityTask,
    SampledBehaviorTask,
)
from steerlab.generate import with_norms
from steerlab.layers import LayerSelection, parse_layers
from steerlab.provenance import atomic_write, git_revision, library_version, utc_now
from steerlab.stats.fit_results import BehaviorFit, HelpfulnessFit, json_float
from steerlab.stats.rows import SweepRow, row_dicts, sorted_rows
from steerlab.steer import SCALES
from steerlab.terminal import fold
from steerlab.validation import check_bool, check_choice, check_int, check_number
from steerlab.vector import SteeringVector

__all__ = [
    "CALIBRATION_JSON",
    "CALIBRATION_PLOT",
    "DEFAULT_BEHAVIOR_ITEMS",
    "DEFAULT_TEXT",
    "DEFAULT_TEXTS",
    "Calibration",
    "calibrate",
    "vector_pairs",
]

BehaviorTask = ABBehaviorTask | ContinuationBehaviorTask | SampledBehaviorTask

CALIBRATION_JSON = "calibration.json"
"""The summary :meth:`Calibration.save` writes."""
CALIBRATION_PLOT = "calibration"
"""The plot's base name (``calibration.png`` and ``calibration.svg``)."""
DEFAULT_TEXT = "builtin:general_text"
"""Where fluency is measured by default."""
DEFAULT_TEXTS = 4
"""Texts of the fluency set used by default: the ratio to the unsteered perplexity is taken
on the same texts, so a few suffice, and each costs one pass per coefficient."""
DEFAULT_BEHAVIOR_ITEMS = 8
"""Behaviour items (pairs) used by default: two passes per pair and coefficient; enough for
the fits, whose points are means, within the two-minute budget on 2 CPU cores."""
FORMAT = "steerlab.calibration/1"


@dataclass(frozen=True)
class _Behavior:
    task: BehaviorTask
    source: str
    held_out: bool | None


@dataclass(frozen=True)
class Calibration:
    """The result of :func:`calibrate`.

    Attributes:
        fit: the sweep's points, fits and recommendation per sign.
        scale: what the coefficients are measured in (``norm``: a fraction of each steered
            layer's typical activation norm).
        layers: the steered layers.
        rows: the sweep's rows (behaviour and perplexity at each coefficient).
        behavior: the behaviour data, in words.
        held_out: whether the behaviour pairs were held out from the vector's extraction
            (None: unknown).
        fluency: the fluency texts, in words.
        vector_sha256: the calibrated vector's directions' hash.
        activation_norms: the norms the ``norm`` scale used (recorded or measured).
        refined: coefficients added after the grid to refine where the bound is crossed.
        created: when the calibration ran (UTC).
        seconds: how long it took.
    """

    fit: CalibrationFit
    scale: str
    layers: tuple[int, ...]
    rows: tuple[SweepRow, ...]
    behavior: str
    held_out: bool | None
    fluency: str
    vector_sha256: str
    activation_norms: Mapping[int, float] | None = None
    refined: tuple[float, ...] = ()
    created: str = field(default_factory=utc_now)
    seconds: float = 0.0

    @property
    def positive(self) -> float | None:
        """The recommended positive coefficient, or None."""
        return self.fit.positive.coefficient

    @property
    def negative(self) -> float | None:
        """The recommended negative coefficient, or None."""
        return self.fit.negative.coefficient

    @property
    def coefficients(self) -> tuple[float, ...]:
        """The grid that was swept, ascending, with 0."""
        return self.fit.coefficients

    def to_record(self) -> dict[str, Any]:
        """The record a vector stores (:meth:`SteeringVector.with_calibration`)."""
        ranges: dict[str, list[float | None] | None] = {}
        for side in (self.fit.positive, self.fit.negative):
            window = side.cost_effective
            if window is None or window.empty:
                ranges[side.name] = None
            else:
                ranges[side.name] = [json_float(window.lower), json_float(window.upper)]
        return {
            "scale": self.scale,
            "layers": list(self.layers),
            "positive": self.positive,
            "negative": self.negative,
            "perplexity_bound": self.fit.perplexity_bound,
            "grid": list(self.coefficients),
            "refined": list(self.refined),
            "behavior": self.behavior,
            "held_out": self.held_out,
            "fluency": self.fluency,
            "cost_effective": ranges,
            "vector_sha256": self.vector_sha256,
            "created": self.created,
            "library_version": library_version(),
        }

    def apply_to(self, vector: SteeringVector) -> SteeringVector:
        """``vector`` carrying this recommendation (and the activation norms it used).

        Raises:
            VectorError: ``vector`` is not the one calibrated (other directions).
        """
        if vector.sha256() != self.vector_sha256:
            raise VectorError(
                "this calibration was measured on another vector (its directions differ): "
                "calibrate this one"
            )
        out = vector.with_calibration(self.to_record())
        if self.scale == "norm" and self.activation_norms:
            out = out.with_activation_norms(self.activation_norms)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``calibration.json``."""
        return {
            "format": FORMAT,
            "recommendation": self.to_record(),
            "fit": self.fit.to_dict(),
            "rows": row_dicts(self.rows),
            "activation_norms": None
            if self.activation_norms is None
            else {str(k): v for k, v in sorted(self.activation_norms.items())},
            "seconds": round(self.seconds, 2),
            "provenance": {"library_version": library_version(), "git_revision": git_revision()},
        }

    def save(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write ``calibration.json``, ``calibration.png`` and ``calibration.svg`` (each
        atomically) into ``out_dir``; return their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        target = out / CALIBRATION_JSON
        with atomic_write(target) as handle:
            json.dump(self.to_dict(), handle, indent=2, sort_keys=True, allow_nan=False)
            handle.write("\n")
        return [target, *self._plot(out / CALIBRATION_PLOT)]

    def _plot(self, out_base: Path) -> list[Path]:
        # Imported here: matplotlib takes a while to import, and only plotting needs it.
        from steerlab.report.calibration import plot_calibration

        fit = self.fit
        behavior = [r for r in self.rows if r.kind == "behavior"]
        behavior.sort(key=lambda r: r.coefficient)
        xs = np.linspace(min(fit.coefficients), max(fit.coefficients), 301)
        curves: dict[str, Any] = {}
        if isinstance(fit.behavior_fit, BehaviorFit):
            curves["behavior_curve"] = (xs, fit.behavior_fit.predict(xs))
        if isinstance(fit.fluency_fit, HelpfulnessFit):
            # The fluency fit as a perplexity ratio: ppl(c) / ppl(0) = F(0) / F(c).
            zero = float(fit.fluency_fit.predict(0.0))
            curves["perplexity_curve"] = (xs, zero / fit.fluency_fit.predict(xs))
        ranges = [
            (float(w.lower), float(w.upper))
            for w in (fit.positive.cost_effective, fit.negative.cost_effective)
            if w is not None and not w.empty and w.lower is not None and w.upper is not None
        ]
        return plot_calibration(
            out_base,
            coefficients=fit.coefficients,
            behavior=fit.behavior,
            behavior_low=[r.ci_low for r in behavior],
            behavior_high=[r.ci_high for r in behavior],
            perplexity_ratio=fit.perplexity_ratio,
            perplexity_bound=fit.perplexity_bound,
            recommended=(self.negative, self.positive),
            cost_effective=ranges,
            title=f"Calibration ({self.scale} scale, layers {_span(self.layers)})",
            **curves,
        )

    def summary(self) -> str:
        """A few plain-text lines: what was measured, the fits and the recommendation."""
        grid = self.coefficients
        zero = self.fit.perplexity[grid.index(0.0)]
        lines = [
            f"calibration: scale={self.scale}, layers {_span(self.layers)}, "
            f"{len(grid)} coefficients from {grid[0]:+g} to {grid[-1]:+g}"
            + (f" ({_signed(self.refined)} added to refine)" if self.refined else ""),
            f"behaviour: {self.behavior}",
            f"fluency: perplexity on {self.fluency} (unsteered {zero:.3g}); "
            f"bound x{self.fit.perplexity_bound:g}",
            self.fit.summary(),
        ]
        chosen = [f"{c:+g}" for c in (self.negative, self.positive) if c is not None]
        lines.append(
            f"recommended: {', '.join(chosen)} ({self.scale} scale)"
            if chosen
            else "recommended: none (see above)"
        )
        return "\n".join(lines)

    def table(self) -> Table:
        """A rich table: one row per coefficient (behaviour, perplexity, ratio, verdict)."""
        table = Table(title=f"calibration ({self.scale} scale, layers {_span(self.layers)})")
        for name in ("coef", "behaviour B [95% CI]", "perplexity", "x unsteered", ""):
            table.add_column(name, justify="right" if name else "left")
        fit = self.fit
        behavior = {r.coefficient: r for r in self.rows if r.kind == "behavior"}
        for c, ppl, ratio in zip(
            fit.coefficients, fit.perplexity, fit.perplexity_ratio, strict=True
        ):
            row = behavior.get(c)
            cell = (
                "-" if row is None else f"{row.value:+.3f} [{row.ci_low:+.2f}, {row.ci_high:+.2f}]"
            )
            if c in (self.positive, self.negative):
                verdict = "recommended"
            elif c == 0.0:
                verdict = "unsteered"
            elif not ratio <= fit.perplexity_bound:
                verdict = "beyond the bound"
            else:
                verdict = ""
            table.add_row(f"{c:+g}", cell, f"{ppl:.4g}", f"{ratio:.2f}", verdict)
        return fold(table)


def calibrate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    vector: SteeringVector,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    layers: LayerSelection = None,
    behavior: str | BehaviorTask | None = None,
    text: str | os.PathLike[str] | PerplexityTask | None = None,
    grid: Sequence[float] | None = None,
    scale: str = "norm",
    perplexity_bound: float = DEFAULT_PERPLEXITY_BOUND,
    behavior_limit: int | None = DEFAULT_BEHAVIOR_ITEMS,
    text_limit: int | None = DEFAULT_TEXTS,
    refine: bool = True,
    batch_size: int = 32,
    system: str | None = None,
    progress: bool = False,
) -> Calibration:
    """Sweep a small grid of both signs and recommend a coefficient per sign.

    Args:
        model, tokenizer: the model to steer.
        vector: the steering vector to calibrate.
        out_dir: when given, :meth:`Calibration.save` writes the JSON and plot there.
        layers: the steered layers (None: every layer the vector has).
        behavior: a ``KIND:PATH`` spec (``pairs:FILE``, ``caa:FILE``...) or a behaviour task;
            None: held-out pairs of the vector's own data (:func:`vector_pairs`).
        text: fluency texts: a file (one text a line, or JSONL with ``text``), a
            ``builtin:NAME`` or a :class:`PerplexityTask`; None: :data:`DEFAULT_TEXT`.
        grid: the magnitudes to sweep (both signs and 0 are added); None: for ``scale="norm"``
            :func:`~steerlab.evaluate.calibrate_fit.default_magnitudes` of the layer count
            (other scales need a grid).
        scale: what the coefficients are measured in (``norm``, ``unit`` or ``vector``).
        perplexity_bound: the largest perplexity, as a multiple of the unsteered one, that a
            recommended coefficient may cause.
        behavior_limit: behaviour items used at most (None: all).
        text_limit: fluency texts used at most (None: all).
        refine: after the grid, measure one more coefficient per sign where the perplexity
            crosses the bound (:func:`~steerlab.evaluate.calibrate_fit.refinement`), so the
            recommendation is within a factor sqrt(2) of the crossing instead of 2.
        batch_size: rows (item x coefficient) per forward pass.
        system: optional system prompt for the behaviour prompts.
        progress: show a progress bar.

    Returns:
        The :class:`Calibration` (``.positive``, ``.negative``, ``.apply_to(vector)``).

    Raises:
        SpecError: a bad scale, grid or bound; ``DataError`` when the vector's data cannot
            be found and no ``behavior`` is given.
    """
    started = time.perf_counter()
    check_choice(scale, "scale", SCALES)
    check_number(perplexity_bound, "perplexity_bound", low=1.0, low_open=True)
    check_int(behavior_limit, "behavior_limit", minimum=1, optional=True)
    check_int(text_limit, "text_limit", minimum=1, optional=True)
    check_bool(refine, "refine")
    chosen = _layers(vector, layers)
    if grid is None and scale != "norm":
        raise SpecError(f"scale={scale!r} has no default grid: give grid= (magnitudes)")
    coefficients = coefficient_grid(default_magnitudes(len(chosen)) if grid is None else grid)
    behavior_data = _behavior(vector, behavior, behavior_limit)
    fluency = _fluency(text, text_limit)
    if scale == "norm":
        vector = with_norms(model, tokenizer, vector, list(chosen))

    def measure(values: Sequence[float]) -> list[SweepRow]:
        with warnings.catch_warnings():
            # Calibration probes strong pushes on purpose; the gibberish warning would alarm.
            warnings.simplefilter("ignore", SteeringStrengthWarning)
            result = sweep(
                model,
                tokenizer,
                vector,
                values,
                [behavior_data.task, fluency],
                layers=list(chosen),
                scale=scale,  # type: ignore[arg-type]
                batch_size=batch_size,
                coefficients_per_batch=len(values),
                system=system,
                progress=progress,
                write_plots=False,
                estimates=False,
            )
        return result.rows

    rows = measure(coefficients)
    added: tuple[float, ...] = ()
    if refine:
        added = refinement(*_points(rows, "perplexity"), perplexity_bound)
        if added:
            rows = sorted_rows([*rows, *measure(added)])
    b_grid, b_values = _points(rows, "behavior")
    _, p_values = _points(rows, "perplexity")
    fit = recommend(b_grid, b_values, p_values, perplexity_bound)
    norms = None if vector.activation_norms is None else dict(vector.activation_norms)
    calibration = Calibration(
        fit=fit,
        scale=scale,
        layers=chosen,
        rows=tuple(rows),
        behavior=behavior_data.source,
        held_out=behavior_data.held_out,
        fluency=f"{len(fluency.texts)} texts of {fluency.name}",
        vector_sha256=vector.sha256(),
        activation_norms=None if norms is None else {k: norms[k] for k in chosen if k in norms},
        refined=added,
        seconds=time.perf_counter() - started,
    )
    if out_dir is not None:
        calibration.save(out_dir)
    return calibration


def _points(rows: Sequence[SweepRow], kind: str) -> tuple[list[float], list[float]]:
    """(coefficients, values) of the rows of ``kind``, by coefficient."""
    chosen = sorted((r for r in rows if r.kind == kind), key=lambda r: r.coefficient)
    return [r.coefficient for r in chosen], [r.value for r in chosen]


def _layers(vector: SteeringVector, layers: LayerSelection) -> tuple[int, ...]:
    if layers is None:
        return vector.layers
    chosen = parse_layers(layers, vector.metadata.num_layers)
    missing = [layer for layer in chosen if layer not in vector.directions]
    if missing:
        raise VectorError(
            f"the vector has no direction at layer {missing[0]}; it has {_span(vector.layers)}"
        )
    return chosen


def vector_pairs(vector: SteeringVector) -> tuple[str, list[ContrastPair], int] | None:
    """The built-in pair set the vector was made from: ``(builtin:NAME, its pairs, how many
    of them, from the start, the vector used)``; None when no set's prefix has the vector's
    data hash."""
    digest = vector.metadata.data_sha256
    if not digest:
        return None
    for name in builtin_names("pairs"):
        pairs = builtin_pairs(name)
        used = _used_prefix(pairs, digest)
        if used is not None:
            return f"builtin:{name}", pairs, used
    return None


def _used_prefix(pairs: Sequence[ContrastPair], digest: str) -> int | None:
    """How many leading pairs hash to ``digest`` (the vector's data), or None."""
    if not digest:
        return None
    for n in range(len(pairs), 0, -1):
        if pairs_sha256(pairs[:n]) == digest:
            return n
    return None


def _behavior(
    vector: SteeringVector, behavior: str | BehaviorTask | None, limit: int | None
) -> _Behavior:
    if isinstance(behavior, ABBehaviorTask | ContinuationBehaviorTask | SampledBehaviorTask):
        return _Behavior(behavior, f"{behavior.name} (given task; held out: unknown)", None)
    if behavior is None:
        found = vector_pairs(vector)
        if found is None:
            raise DataError(
                "cannot tell which pairs the vector was made from (its data hash matches no "
                "built-in set): give behavior='pairs:FILE' (held-out pairs with prompts)"
            )
        source, pairs, used = found
        return _pairs_behavior(source, source.split(":", 1)[1], pairs, used, limit)
    name, kind, path = parse_source_spec(behavior, "behavior")
    if kind == "pairs":
        given = load_pairs(path)
        made_from = _used_prefix(given, vector.metadata.data_sha256)
        return _pairs_behavior(behavior, name or task_name(path), given, made_from, limit)
    task = behavior_task(behavior, limit=limit)
    return _Behavior(task, f"{behavior}, {_items(task)} items (held out: unknown)", None)


def _items(task: BehaviorTask) -> int:
    return len(task.items) if isinstance(task, ABBehaviorTask) else len(task.prompts)


def _pairs_behavior(
    source: str, name: str, pairs: Sequence[ContrastPair], used: int | None, limit: int | None
) -> _Behavior:
    """Reply likelihoods of the pairs after the ``used`` ones (all when none are left)."""
    total = len(pairs)
    first = 0 if used is None or used >= total else used
    if used is not None and used >= total:
        # Every pair went into the vector: score the last ones, and say so.
        first = max(0, total - (limit or total))
    chosen = list(pairs[first:])[:limit]
    if any(p.messages is None or p.messages[-1][0] != "user" for p in chosen):
        raise DataError(f"{source}: pairs need a 'prompt' (or end with a user turn)")
    task = ContinuationBehaviorTask(
        name,
        tuple(p.messages[-1][1] for p in chosen),  # type: ignore[index]
        tuple(p.positive for p in chosen),
        tuple(p.negative for p in chosen),
    )
    where = f"reply likelihood of {source} pairs {first + 1}-{first + len(chosen)} of {total}"
    if used is None:
        return _Behavior(task, f"{where} (held out: unknown)", None)
    if used >= total:
        return _Behavior(task, f"{where}, NOT held out (the vector was made from all)", False)
    return _Behavior(task, f"{where}, held out (the vector was made from pairs 1-{used})", True)


def _fluency(
    text: str | os.PathLike[str] | PerplexityTask | None, limit: int | None
) -> PerplexityTask:
    if isinstance(text, PerplexityTask):
        return text
    return perplexity_task(os.fspath(text) if text is not None else DEFAULT_TEXT, limit=limit)


def _signed(values: Sequence[float]) -> str:
    return ", ".join(f"{v:+g}" for v in values)


def _span(layers: Sequence[int]) -> str:
    if len(layers) > 2 and list(layers) == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(str(x) for x in layers)

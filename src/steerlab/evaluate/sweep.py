"""Coefficient sweeps: every task at every coefficient, batched, resumable, with fits.

Work is cut into units of (task, group of consecutive coefficients). Each unit's rows run
as per-row-coefficient batches, and after each unit ``results.jsonl`` is rewritten
atomically in a canonical order. A re-run with the same settings skips finished units;
because a unit's batches are the same whether or not the run was interrupted, the final
files are identical to those of an uninterrupted run.

Under ``accelerate launch`` / ``torchrun`` (:mod:`steerlab.distributed`) each process takes
every ``world``-th unit still to do and writes its rows to its own part file
(``results.part1.jsonl``); after all are done the main process merges them into
``results.jsonl``, removes the parts and writes ``fit.json`` and the plots: the same files as
one process writes. A rerun counts the rows of every part file as done.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab import distributed
from steerlab.errors import DataError, SpecError
from steerlab.evaluate.estimates import (
    estimate_delta_lambda,
    estimate_delta_lambda_replies,
    estimate_lambda_sigma_beta,
)
from steerlab.evaluate.jsonl import read_rows, write_rows
from steerlab.evaluate.sweep_fit import SweepFit
from steerlab.evaluate.sweep_result import SweepResult
from steerlab.evaluate.tasks import (
    ABBehaviorTask,
    ContinuationBehaviorTask,
    MultipleChoiceTask,
    RunContext,
    Task,
    scale_arguments,
)
from steerlab.layers import LayerSelection
from steerlab.progress import track
from steerlab.provenance import (
    atomic_write,
    git_revision,
    library_version,
    remove_stale_temporaries,
)
from steerlab.stats.rows import SweepRow, sorted_rows
from steerlab.steer import (
    Operator,
    Positions,
    Scale,
    SteerSpec,
    coefficient_tensor,
    resolve_scale,
)
from steerlab.vector import SteeringVector

__all__ = ["CONFIG", "FIT", "RESULTS", "SweepFit", "SweepResult", "empirical_estimates", "sweep"]

RESULTS = "results.jsonl"
"""The rows of a sweep."""
CONFIG = "sweep.json"
"""The settings and provenance of a sweep (a resumed sweep must match them)."""
FIT = "fit.json"
"""The fits (:meth:`SweepFit.to_dict`)."""


def _groups(coefficients: Sequence[float], size: int) -> list[tuple[float, ...]]:
    return [tuple(coefficients[i : i + size]) for i in range(0, len(coefficients), size)]


def sweep(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    vector: SteeringVector,
    coefficients: Sequence[float],
    tasks: Sequence[Task],
    *,
    layers: LayerSelection = "all",
    operator: Operator = "add",
    normalize: bool | None = None,
    scale_by_norm: bool | None = None,
    positions: Positions = "all",
    scale: Scale | None = None,
    output_dir: str | Path | None = None,
    batch_size: int = 16,
    coefficients_per_batch: int = 3,
    seed: int = 0,
    system: str | None = None,
    progress: bool = True,
    write_plots: bool = True,
    estimates: bool = True,
) -> SweepResult:
    """Run every task at every coefficient; optionally write and resume ``output_dir``.

    The study's convention is the default: the vector at all layers, unit-normalised per
    layer, times the coefficient r_e (``scale="unit"``; ``scale="norm"`` reads r_e as a
    fraction of each layer's typical activation norm instead).

    Args:
        model, tokenizer: the model to steer.
        vector: the steering vector.
        coefficients: the r_e values (e.g. ``range(-8, 9)``).
        tasks: behaviour / helpfulness / perplexity tasks.
        layers, operator, positions, scale: as in :func:`steerlab.steer`, except that
            ``scale`` defaults to ``"unit"`` here.
        normalize, scale_by_norm: deprecated: use ``scale``.
        output_dir: folder for results.jsonl, sweep.json, fit.json and plots; resumable.
        batch_size: rows (item x coefficient) per forward pass.
        coefficients_per_batch: coefficients per unit of work (and of resumption).
        seed: seed for sampling tasks.
        system: optional system prompt for every prompt.
        progress: show progress bars.
        write_plots: write plots into ``output_dir``.
        estimates: also estimate Δλ (from the first A/B task) and λσβ (from the first
            multiple-choice task) empirically, reported beside the fits.

    Returns:
        The :class:`SweepResult`.
    """
    values = [float(c) for c in coefficient_tensor(list(coefficients)).tolist()]
    if len(set(values)) != len(values):
        raise SpecError("coefficients contain duplicates")
    if not tasks:
        raise DataError("no tasks to sweep")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise SpecError(f"task names must be unique; got {names}")
    if coefficients_per_batch < 1 or batch_size < 1:
        raise SpecError("batch_size and coefficients_per_batch must be at least 1")
    resolved = resolve_scale(scale, normalize, scale_by_norm, default="unit")
    spec = SteerSpec(
        coefficient=0.0,
        layers=tuple(layers) if isinstance(layers, list | range) else layers,  # type: ignore[arg-type]
        operator=operator,
        positions=positions,
        **scale_arguments(resolved),
    )
    ctx = RunContext(model, tokenizer, vector, spec, batch_size, seed, False, system)
    config = {
        "format": "steerlab.sweep/1",
        "coefficients": values,
        "tasks": [
            {
                "name": t.name,
                "kind": t.kind,
                "metrics": list(t.metrics),
                "data_sha256": t.data_sha256(),
            }
            for t in tasks
        ],
        "steering": {
            "layers": spec.layers if not isinstance(spec.layers, tuple) else list(spec.layers),
            "operator": operator,
            # The scale as the two booleans sweep.json has always recorded (resumption).
            "normalize": spec.normalize,
            "scale_by_norm": spec.scale_by_norm,
            "positions": positions,
        },
        "vector": {**vector.metadata.recipe(), "sha256": vector.sha256()},
        "batch_size": batch_size,
        "coefficients_per_batch": coefficients_per_batch,
        "seed": seed,
        "system": system,
    }
    out = Path(output_dir) if output_dir is not None else None
    world = distributed.world_size()
    if world > 1 and out is None:
        raise SpecError(f"a sweep spread over {world} processes needs an output folder")
    main = distributed.is_main_process()
    done: list[SweepRow] = []
    if out is not None:
        if main:
            out.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(out)
        config_path = out / CONFIG
        provenance = {"library_version": library_version(), "git_revision": git_revision()}
        if config_path.is_file():
            try:
                previous = json.loads(config_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                raise DataError(f"{config_path}: not valid JSON; remove it to start over") from None
            previous.pop("provenance", None)
            if previous != config:
                raise SpecError(
                    f"{out} holds a sweep with other settings; use another output folder"
                )
        elif main:
            with atomic_write(config_path) as handle:
                json.dump({**config, "provenance": provenance}, handle, indent=2, sort_keys=True)
        # The rows of every process of an earlier run count as done (a killed one's too).
        done = _unique(distributed.read_with_parts(out / RESULTS, _read_sweep_rows))
    have = {row.key for row in done}
    units = [(task, group) for task in tasks for group in _groups(values, coefficients_per_batch)]
    todo = [
        (task, group)
        for task, group in units
        if not all((task.name, m, c) in have for m in task.metrics for c in group)
    ]
    # Every process has read the same files: only now may parts change.
    distributed.barrier()
    part = distributed.part_path(out / RESULTS) if out is not None and world > 1 else None
    mine = _read_sweep_rows(part) if part is not None and part.is_file() else []
    share = distributed.share(todo)
    for task, group in track(share, "sweep", total=len(share), enabled=progress and main):
        # Round-trip through the file format so fresh and resumed runs hold equal values.
        new = [SweepRow.from_json(r.to_json(), task.name) for r in task.evaluate(ctx, group)]
        done = [r for r in done if not (r.task == task.name and r.coefficient in group)] + new
        if part is not None:
            mine = [r for r in mine if not (r.task == task.name and r.coefficient in group)]
            mine += new
            write_rows(part, sorted_rows(mine))
        elif out is not None:
            write_rows(out / RESULTS, sorted_rows(done))
    if out is not None:
        if world > 1:
            distributed.barrier()  # every process's part is complete
            done = _unique(distributed.read_with_parts(out / RESULTS, _read_sweep_rows))
            distributed.barrier()  # every process has read the parts before they go
        if main:
            write_rows(out / RESULTS, sorted_rows(done))
            distributed.remove_parts(out / RESULTS)
    result = SweepResult(sorted_rows(done), config)
    if not main:
        return result  # the main process estimates, fits and plots
    if estimates:
        result.estimates = empirical_estimates(ctx, tasks, values)
    if out is not None:
        with atomic_write(out / FIT) as handle:
            json.dump(
                result.fit().to_dict(),
                handle,
                indent=2,
                sort_keys=True,
                allow_nan=False,
                default=_json_default,
            )
        if write_plots:
            result.plot(out)
    return result


def _read_sweep_rows(path: Path) -> list[SweepRow]:
    return read_rows(path, SweepRow.from_json)


def _unique(rows: Sequence[SweepRow]) -> list[SweepRow]:
    """One row per key, the last one read winning (a unit redone after a kill)."""
    return list({row.key: row for row in rows}.values())


def empirical_estimates(
    ctx: RunContext, tasks: Sequence[Task], coefficients: Sequence[float]
) -> dict[str, Any]:
    """Δλ and λσβ estimated from finite differences at ±ε, ε = 5% of the largest |r|."""
    epsilon = max(0.05 * max(abs(c) for c in coefficients), 1e-3)
    out: dict[str, Any] = {}
    behavior = next(
        (t for t in tasks if isinstance(t, ABBehaviorTask | ContinuationBehaviorTask)), None
    )
    mc = next((t for t in tasks if isinstance(t, MultipleChoiceTask)), None)
    if isinstance(behavior, ABBehaviorTask):
        estimate = estimate_delta_lambda(ctx, behavior.items, epsilon, behavior.aligned)
        out["delta_lambda"] = {**estimate.to_dict(), "task": behavior.name}
    elif isinstance(behavior, ContinuationBehaviorTask):
        estimate = estimate_delta_lambda_replies(ctx, behavior, epsilon)
        out["delta_lambda"] = {**estimate.to_dict(), "task": behavior.name}
    if mc is not None:
        estimate = estimate_lambda_sigma_beta(ctx, mc.items, epsilon)
        out["lambda_sigma_beta"] = {**estimate.to_dict(), "task": mc.name}
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)

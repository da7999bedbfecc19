"""A finished stage's summary for stage.json and the report, read from the files its command wrote.

:func:`summarize` is the one entry point: the runner calls it after a stage's command has
written its outputs into the stage folder, and stores what it returns as the ``summary`` of
``stage.json`` (the contract's format: ``headline``, ``numbers``, ``tables``, ``plots``,
``generations``, ``text``, ``files``). It only reads files (JSON, CSV, JSONL and safetensors or
GGUF vectors, through the library's own readers where it has them); it never loads a model and
never writes. A missing optional file leaves its part out. Vectors, comparisons, generations,
exports, folds and calibrations are summarised here; sweeps, matrices, suite runs and training
runs in :mod:`steerlab.runner.summaries_results`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from steerlab.runner.summaries_common import (
    Summary,
    files,
    finite,
    number,
    plots,
    read_json,
    read_jsonl,
    span,
    table,
    tidy,
    with_stderr,
)
from steerlab.runner.summaries_results import (
    summarize_eval,
    summarize_matrix,
    summarize_sweep,
    summarize_training,
)

__all__ = ["KINDS", "summarize"]

VECTOR_FILE = "vector.safetensors"
GGUF_FILE = "vector.gguf"
GENERATIONS_FILE = "generations.jsonl"
OUT = "out"
# Where a vector's activations were read, in words.
POSITIONS = {"last": "the last token", "mean": "the mean over tokens", "all": "every token"}


def summarize(kind: str, stage_dir: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``summary`` of a finished stage, from the files its command wrote.

    Args:
        kind: the stage kind (``extract``, ``sweep``...; see :data:`KINDS`).
        stage_dir: the stage folder; plot and file paths in the summary are relative to it.
        settings: the stage's resolved settings and references (``{**settings, **refs}``):
            only ``vectors`` (compare: the compared stages' names, in order) is read, to name
            the vectors that ``steerlab compare`` named by their file stems.

    Returns:
        The summary dict, strict JSON (NaN becomes None); parts with nothing to show are left
        out, so a stage whose outputs are missing gets ``{}``.

    Raises:
        ValueError: an unknown ``kind``.
    """
    builder = KINDS.get(kind)
    if builder is None:
        raise ValueError(f"unknown stage kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    return tidy(builder(Path(stage_dir), settings))


# -- vectors ----------------------------------------------------------------------------------


def summarize_vector(stage_dir: Path, settings: Mapping[str, Any]) -> Summary:
    """extract / diff / import: the vector's method, data, layers and per-layer norms."""
    from steerlab.vector import SteeringVector

    path = stage_dir / VECTOR_FILE
    if not path.is_file():
        return {}
    vector = SteeringVector.load(path)
    meta = vector.metadata
    activation = vector.activation_norms or {}
    norms = vector.norms()
    rows = [[layer, norm, activation.get(layer)] for layer, norm in norms.items()]
    numbers = [
        number("layers", len(vector.layers)),
        number("examples", meta.n_examples),
        number("mean vector norm", sum(norms.values()) / len(norms)),
    ]
    calibration = vector.calibration
    if calibration is not None:
        for sign in ("negative", "positive"):
            if calibration.get(sign) is not None:
                unit = f"{calibration['scale']} scale"
                numbers.append(
                    number(f"calibrated {sign} coefficient", calibration[sign], unit=unit)
                )
    examples = f"{meta.n_examples} examples" if meta.n_examples else "no recorded examples"
    where = POSITIONS.get(meta.position, meta.position)
    return {
        "headline": f"{meta.method} vector from {examples} (read at {where}), "
        f"layers {span(vector.layers)} of {meta.model_id or meta.model_type}",
        "numbers": numbers,
        "tables": [table("per-layer norms", ["layer", "vector norm", "activation norm"], rows)],
        "files": files(stage_dir, [("vector", path)]),
    }


def summarize_export(stage_dir: Path, settings: Mapping[str, Any]) -> Summary:
    """export gguf: the control vector's layers, baked coefficient and scale, and its size."""
    from steerlab.gguf_vectors import read_control_vector

    path = stage_dir / GGUF_FILE
    if not path.is_file():
        return {}
    source = read_control_vector(path)
    own = source.steerlab
    layers = sorted(source.directions)
    coefficient = finite(own.get("coefficient"))
    baked = (
        f", coefficient {coefficient:g} at scale {own.get('scale')} baked in"
        if coefficient is not None
        else ""
    )
    rows = [[layer, float((source.directions[layer] ** 2).sum() ** 0.5)] for layer in layers]
    return {
        "headline": f"llama.cpp control vector: direction.N for layers {span(layers)}{baked}",
        "numbers": [number("layers", len(layers))]
        + ([number("coefficient", coefficient, unit=f"{own.get('scale')} scale")] if baked else []),
        "tables": [table("exported directions", ["layer", "norm (as baked)"], rows)],
        "files": files(stage_dir, [("control vector (GGUF)", path)]),
    }


def summarize_compare(stage_dir: Path, settings: Mapping[str, Any]) -> Summary:
    """compare: cosine per layer of every pair (``out/cosine.json``), its plot and files."""
    from steerlab.extract.comparison import Comparison, CosineRow

    out = stage_dir / OUT
    data = read_json(out / "cosine.json")
    if not isinstance(data, dict):
        return {"plots": plots(out, stage_dir, {"cosine": "cosine similarity per layer"})}
    names = _display_names([str(n) for n in data.get("names", [])], settings.get("vectors"))
    rows = [
        CosineRow(**{**row, "a": names.get(row["a"], row["a"]), "b": names.get(row["b"], row["b"])})
        for row in data.get("rows", [])
    ]
    comparison = Comparison(tuple(names.get(n, n) for n in data.get("names", [])), tuple(rows))
    pairs = list(dict.fromkeys((r.a, r.b) for r in rows))
    layers = sorted({r.layer for r in rows})
    index = {(r.a, r.b, r.layer): r for r in rows}
    cosine_rows = [
        [layer, *(_get(index.get((a, b, layer)), "cosine") for a, b in pairs)] for layer in layers
    ]
    numbers = []
    for a, b in pairs:
        values = [r.cosine for r in rows if (r.a, r.b) == (a, b)]
        numbers.append(number(f"mean cosine {a} vs {b}", sum(values) / len(values)))
    norm_names = list(comparison.names)
    norms: dict[tuple[str, int], float] = {}
    for r in rows:
        norms[(r.a, r.layer)], norms[(r.b, r.layer)] = r.norm_a, r.norm_b
    text = comparison.summary().splitlines() if rows else []
    return {
        "headline": "; ".join(text[:3]) + ("; ..." if len(text) > 3 else ""),
        "numbers": numbers,
        "tables": [
            table("cosine per layer", ["layer", *(f"{a} vs {b}" for a, b in pairs)], cosine_rows),
            table(
                "vector norm per layer",
                ["layer", *norm_names],
                [[layer, *(norms.get((n, layer)) for n in norm_names)] for layer in layers],
            ),
        ],
        "plots": plots(out, stage_dir, {"cosine": "cosine similarity per layer"}),
        "text": text,
        "files": files(
            stage_dir,
            [("cosine (CSV)", out / "cosine.csv"), ("cosine (JSON)", out / "cosine.json")],
        ),
    }


def _display_names(names: list[str], references: Any) -> dict[str, str]:
    """File-stem names (``vector``, ``vector'``) -> the stage names the spec gave, in order,
    when the settings list as many."""
    if isinstance(references, list | tuple) and len(references) == len(names):
        given = [str(r) for r in references]
        if len(set(given)) == len(given):
            return dict(zip(names, given, strict=True))
    return {}


def _get(row: Any, name: str) -> Any:
    return None if row is None else getattr(row, name)


def summarize_generate(stage_dir: Path, settings: Mapping[str, Any]) -> Summary:
    """generate: the generations side by side, one column per coefficient (``+0`` unsteered)."""
    path = stage_dir / GENERATIONS_FILE
    rows = read_jsonl(path)
    generations = []
    for row in rows:
        coefficient = finite(row.get("coefficient"))
        column = "unsteered" if coefficient is None else f"{coefficient:+g}"
        text = row.get("text", row.get("generation", ""))
        generations.append(
            {"prompt": str(row.get("prompt", "")), "column": column, "text": str(text)}
        )
    prompts = list(dict.fromkeys(g["prompt"] for g in generations))
    columns = list(dict.fromkeys(g["column"] for g in generations))
    headline = (
        f"{len(prompts)} prompt(s) x {len(columns)} coefficient(s) ({', '.join(columns)})"
        if generations
        else None
    )
    return {
        "headline": headline,
        "generations": generations,
        "files": files(stage_dir, [("generations (JSONL)", path)]),
    }


# -- deployment and calibration ---------------------------------------------------------------


def summarize_fold(stage_dir: Path, settings: Mapping[str, Any]) -> Summary:
    """fold: the fold record (``out/steerlab_fold.json``): operator, coefficient, scale, layers."""
    out = stage_dir / OUT
    record = read_json(out / "steerlab_fold.json")
    if not isinstance(record, dict):
        return {}
    layers = [int(x) for x in record.get("layers", [])]
    operator = str(record.get("operator", "?"))
    adapter = (out / "adapter_config.json").is_file()
    what = (
        f"add {record.get('coefficient'):g} ({record.get('scale')} scale) at layers {span(layers)}"
        if operator == "add" and finite(record.get("coefficient")) is not None
        else f"{operator} at layer(s) {span(layers)}"
    )
    form = "rank-1 LoRA adapter" if adapter else "plain checkpoint"
    details = [
        [key, record[key] if not isinstance(record[key], list) else span(record[key])]
        for key in (
            "operator",
            "coefficient",
            "scale",
            "layers",
            "sites",
            "positions",
            "model_type",
        )
        if key in record
    ]
    per_layer = []
    activation = record.get("activation_norms") or {}
    pushes = record.get("push_norms") or {}
    for layer in layers:
        per_layer.append([layer, activation.get(str(layer)), pushes.get(str(layer))])
    tables = [table("fold", ["setting", "value"], details)]
    if activation or pushes:
        tables.append(table("per-layer push", ["layer", "activation norm", "push norm"], per_layer))
    return {
        "headline": f"folded {what} into a {form}",
        "numbers": [
            number("coefficient", record.get("coefficient"), unit=f"{record.get('scale')} scale"),
            number("layers", len(layers)),
        ],
        "tables": tables,
        "files": files(stage_dir, [(form, out), ("fold record", out / "steerlab_fold.json")]),
    }


def summarize_calibrate(stage_dir: Path, settings: Mapping[str, Any]) -> Summary:
    """calibrate: the recommended coefficient per sign, and behaviour and perplexity per
    coefficient (``out/calibration.json``), with its plot."""
    out = stage_dir / OUT
    data = read_json(out / "calibration.json")
    found_plots = plots(out, stage_dir, {"calibration": "calibration: behaviour and perplexity"})
    if not isinstance(data, dict):
        return {"plots": found_plots}
    record = data.get("recommendation") or {}
    fit = data.get("fit") or {}
    scale = str(record.get("scale", ""))
    unit = f"{scale} scale" if scale else ""
    numbers = [
        number(f"recommended {sign} coefficient", record.get(sign), unit=unit)
        for sign in ("negative", "positive")
    ]
    behavior = fit.get("behavior_fit")
    if isinstance(behavior, dict) and "delta_lambda" in behavior:
        numbers.append(
            with_stderr(
                "Δλ (tanh fit)", behavior["delta_lambda"], behavior.get("delta_lambda_stderr")
            )
        )
    rows = []
    behaviour_rows = {
        finite(r.get("coefficient")): r for r in data.get("rows", []) if r.get("kind") == "behavior"
    }
    for c, ppl, ratio in zip(
        fit.get("coefficients", []),
        fit.get("perplexity", []),
        fit.get("perplexity_ratio", []),
        strict=False,
    ):
        row = behaviour_rows.get(finite(c), {})
        rows.append([c, row.get("value"), row.get("ci_low"), row.get("ci_high"), ppl, ratio])
    chosen = [
        f"{record[s]:+g}" for s in ("negative", "positive") if finite(record.get(s)) is not None
    ]
    headline = (
        f"recommended coefficients {', '.join(chosen)} ({scale} scale, layers "
        f"{span(record.get('layers', []))})"
        if chosen
        else "no coefficient passed the perplexity bound"
    )
    text = [f"behaviour: {record['behavior']}"] if record.get("behavior") else []
    for sign in ("negative", "positive"):
        side = fit.get(sign)
        if isinstance(side, dict) and side.get("reason"):
            text.append(f"{sign}: {side['reason']}")
    return {
        "headline": headline,
        "numbers": numbers,
        "tables": [
            table(
                "calibration sweep",
                ["coefficient", "behaviour", "low", "high", "perplexity", "x unsteered"],
                rows,
            )
        ],
        "plots": found_plots,
        "text": text,
        "files": files(stage_dir, [("calibration (JSON)", out / "calibration.json")]),
    }


Builder = Callable[[Path, Mapping[str, Any]], Summary]

KINDS: dict[str, Builder] = {
    "extract": summarize_vector,
    "diff": summarize_vector,
    "import": summarize_vector,
    "export": summarize_export,
    "compare": summarize_compare,
    "generate": summarize_generate,
    "sweep": summarize_sweep,
    "matrix": summarize_matrix,
    "finetune": summarize_training,
    "tune": summarize_training,
    "eval": summarize_eval,
    "fold": summarize_fold,
    "calibrate": summarize_calibrate,
}
"""Each stage kind's summary builder."""

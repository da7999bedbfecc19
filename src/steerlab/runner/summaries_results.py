"""Summaries of the measuring stages: sweep, matrix, eval, and the finetune / tune run folders.

Each reads the output folder its command wrote (``stage_dir/out``) through the library's own
readers (:class:`~steerlab.evaluate.SweepResult` rows and ``fit.json``,
:class:`~steerlab.evaluate.MatrixResult`, :meth:`~steerlab.evaluate.SuiteResult.load`,
:func:`~steerlab.tuning.read_run` and :func:`~steerlab.tuning.read_loss_log`) and returns the
summary parts of the stage.json contract; :func:`steerlab.runner.summaries.summarize` picks the
builder by stage kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from steerlab.runner.summaries_common import (
    Summary,
    files,
    finite,
    number,
    plots,
    read_csv,
    read_json,
    span,
    table,
    with_stderr,
)

OUT = "out"
SWEEP_PLOTS = {
    "behavior": "behaviour vs coefficient",
    "helpfulness": "helpfulness vs coefficient",
    "tradeoff": "alignment / helpfulness trade-off",
}
LOSS_KEYS = ("loss", "ce_loss", "rep_loss", "cos_sim")
LOSS_TABLE_ROWS = 40


def summarize_sweep(stage_dir: Path, settings: Mapping[str, Any]) -> Summary:
    """sweep: the fits with CIs (``fit.json``), every metric per coefficient
    (``results.jsonl``), the fit summary lines and the behaviour/helpfulness/trade-off plots."""
    from steerlab.evaluate import SweepResult, SweepRow
    from steerlab.evaluate.jsonl import read_rows

    out = stage_dir / OUT
    rows = (
        read_rows(out / "results.jsonl", SweepRow.from_json)
        if (out / "results.jsonl").is_file()
        else []
    )
    fit = read_json(out / "fit.json")
    fit = fit if isinstance(fit, dict) else {}
    config = read_json(out / "sweep.json")
    result = SweepResult(
        rows, config if isinstance(config, dict) else {}, fit.get("empirical_estimates") or {}
    )
    numbers = _fit_numbers(fit)
    text = result.summary().splitlines() if rows else []
    return {
        "headline": _sweep_headline(result, fit),
        "numbers": numbers,
        "tables": [_sweep_table(result)] if rows else [],
        "plots": plots(out, stage_dir, SWEEP_PLOTS),
        "text": text,
        "files": files(
            stage_dir,
            [
                ("rows (JSONL)", out / "results.jsonl"),
                ("fits (JSON)", out / "fit.json"),
                ("settings", out / "sweep.json"),
            ],
        ),
    }


def _fit_numbers(fit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fitted parameters of ``fit.json`` (95% CIs from their standard errors), the
    empirical estimates with their CIs, and the cost-effective range."""
    numbers = []
    behavior = fit.get("behavior")
    if isinstance(behavior, dict) and "delta_lambda" in behavior:
        numbers += [
            with_stderr(
                "Δλ (tanh fit)", behavior["delta_lambda"], behavior.get("delta_lambda_stderr")
            ),
            number("B0", behavior.get("b0")),
            number("R² behaviour fit", behavior.get("r_squared")),
        ]
    helpfulness = fit.get("helpfulness")
    if isinstance(helpfulness, dict) and "lambda_sigma_beta" in helpfulness:
        numbers += [
            with_stderr(
                "λσβ (parabolic bound)",
                helpfulness["lambda_sigma_beta"],
                helpfulness.get("lambda_sigma_beta_stderr"),
            ),
            number("P0", helpfulness.get("p0")),
            number("R² helpfulness fit", helpfulness.get("r_squared")),
        ]
    for name, estimate in (fit.get("empirical_estimates") or {}).items():
        if isinstance(estimate, dict):
            label = {"delta_lambda": "Δλ", "lambda_sigma_beta": "λσβ"}.get(name, name)
            numbers.append(
                number(
                    f"{label} (empirical, {estimate.get('task')})",
                    estimate.get("value"),
                    estimate.get("ci_low"),
                    estimate.get("ci_high"),
                )
            )
    window = (fit.get("tradeoff") or {}).get("cost_effective")
    if isinstance(window, dict) and not window.get("empty"):
        # The range is not an estimate with a confidence interval: two numbers of their own.
        numbers.append(number("cost-effective from", window.get("lower")))
        numbers.append(number("cost-effective to", window.get("upper")))
        numbers.append(number("best coefficient", window.get("best_r")))
    return numbers


def _sweep_headline(result: Any, fit: Mapping[str, Any]) -> str | None:
    coefficients = sorted({r.coefficient for r in result.rows})
    if not coefficients:
        return None
    parts = [f"{len(coefficients)} coefficients from {coefficients[0]:g} to {coefficients[-1]:g}"]
    behavior = fit.get("behavior") or {}
    helpfulness = fit.get("helpfulness") or {}
    if finite(behavior.get("delta_lambda")) is not None:
        parts.append(f"Δλ = {behavior['delta_lambda']:.3g}")
    if finite(helpfulness.get("lambda_sigma_beta")) is not None:
        parts.append(f"λσβ = {helpfulness['lambda_sigma_beta']:.3g}")
    window = (fit.get("tradeoff") or {}).get("cost_effective") or {}
    if finite(window.get("lower")) is not None and finite(window.get("upper")) is not None:
        parts.append(f"cost-effective r in ({window['lower']:.3g}, {window['upper']:.3g})")
    return "; ".join(parts)


def _sweep_table(result: Any) -> dict[str, Any]:
    """One row per coefficient, one column per task metric: ``value [low, high]``."""
    columns = result.tasks("behavior") + result.tasks("helpfulness") + result.tasks("perplexity")
    index = {r.key: r for r in result.rows}
    rows = []
    for c in sorted({r.coefficient for r in result.rows}):
        cells: list[Any] = [c]
        for task, metric in columns:
            row = index.get((task, metric, c))
            cells.append(
                None if row is None else f"{row.value:.3f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
            )
        rows.append(cells)
    header = ["coefficient", *(f"{task} · {metric}" for task, metric in columns)]
    return table("sweep (value [95% CI])", header, rows)


def summarize_matrix(stage_dir: Path, settings: Mapping[str, Any]) -> Summary:
    """matrix: the rate per condition (``summary.csv``), the baseline and the strongest
    conditions, their outputs beside the unsteered ones, and the rate plot."""
    from steerlab.evaluate import MatrixResult, MatrixRow
    from steerlab.evaluate.jsonl import read_rows

    out = stage_dir / OUT
    summary_csv = read_csv(out / "summary.csv")
    tables = [table("rate per condition", *summary_csv)] if summary_csv else []
    rows = (
        read_rows(out / "results.jsonl", MatrixRow.from_json)
        if (out / "results.jsonl").is_file()
        else []
    )
    result = MatrixResult(rows, _matrix_scorer(out))
    numbers: list[dict[str, Any]] = []
    generations: list[dict[str, str]] = []
    rates = result.rates() if rows else []
    baseline = next((e for e in rates if e["operator"] == "none"), None)
    steered = [e for e in rates if e["operator"] != "none"]
    top = max(steered, key=lambda e: e["rate"]) if steered else None
    if baseline is not None:
        numbers += [
            number("unsteered rate", baseline["rate"]),
            number("unsteered median perplexity", baseline["median_perplexity"]),
        ]
    if top is not None:
        label = _condition(top)
        numbers.append(number(f"highest rate ({label})", top["rate"]))
        if baseline is not None:
            limit = 2.0 * baseline["median_perplexity"]
            fluent = [e for e in steered if e["median_perplexity"] <= limit]
            if fluent:
                best = max(fluent, key=lambda e: e["rate"])
                numbers.append(
                    number(f"highest rate within 2x perplexity ({_condition(best)})", best["rate"])
                )
        shown = [("unsteered", baseline), (label, top)] if baseline is not None else [(label, top)]
        prompts = list(dict.fromkeys(r.prompt for r in rows))[:5]
        for prompt in prompts:
            for column, entry in shown:
                match = next(
                    (r for r in rows if r.prompt == prompt and _key(r) == _entry_key(entry)), None
                )
                if match is not None:
                    generations.append({"prompt": prompt, "column": column, "text": match.response})
    text = result.summary().splitlines() if rows else []
    return {
        "headline": text[0] if text else None,
        "numbers": numbers,
        "tables": tables,
        "plots": plots(out, stage_dir, {"rates": "rate per condition"}),
        "generations": generations,
        "text": text[1:],
        "files": files(
            stage_dir,
            [
                ("examples (HTML)", out / "examples.html"),
                ("examples (Markdown)", out / "examples.md"),
                ("rates (CSV)", out / "summary.csv"),
                ("rows (JSONL)", out / "results.jsonl"),
            ],
        ),
    }


def _matrix_scorer(out: Path) -> str:
    """The scorer's name, as ``examples.md`` states it in its title (the only file that does)."""
    try:
        first = (out / "examples.md").read_text(encoding="utf-8").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return "unknown scorer"
    marker = "(scorer: "
    return first.split(marker, 1)[1].rstrip(")") if marker in first else "unknown scorer"


def _condition(entry: Mapping[str, Any]) -> str:
    if entry["operator"] == "ablate":
        return f"{entry['vector']} ablate {entry['layers']}"
    return (
        f"{entry['vector']} {entry['operator']} {entry['normalization']} {entry['layers']} "
        f"{entry['coefficient']:g}"
    )


def _key(row: Any) -> tuple[Any, ...]:
    return (row.vector, row.operator, row.normalization, row.layers, row.coefficient)


def _entry_key(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(entry[k] for k in ("vector", "operator", "normalization", "layers", "coefficient"))


def summarize_eval(stage_dir: Path, settings: Mapping[str, Any]) -> Summary:
    """eval: the suite table with CIs (``table.csv``), each model's metrics as numbers with
    their bootstrap CIs (``results.jsonl``), the summary lines and the bar plots."""
    from steerlab.evaluate import SuiteResult

    out = stage_dir / OUT
    suite_csv = read_csv(out / "table.csv")
    tables = [table("honesty suite (value [95% CI])", *suite_csv)] if suite_csv else []
    if not (out / "results.jsonl").is_file():
        return {"tables": tables, "plots": plots(out, stage_dir, {"bars": "honesty suite"})}
    result = SuiteResult.load(out)
    numbers = [
        number(f"{row.model}: {row.metric} [{row.dataset}]", row.value, row.low, row.high)
        for row in result.rows
        if "layer" not in row.extra
    ]
    text = result.summary().splitlines()
    return {
        "headline": text[0] if text else None,
        "numbers": numbers,
        "tables": tables,
        "plots": plots(out, stage_dir, {"bars": "honesty suite"}),
        "text": text[1:],
        "files": files(
            stage_dir,
            [
                ("table (CSV)", out / "table.csv"),
                ("table (Markdown)", out / "table.md"),
                ("rows (JSONL)", out / "results.jsonl"),
                ("settings", out / "suite.json"),
            ],
        ),
    }


def summarize_training(stage_dir: Path, settings: Mapping[str, Any]) -> Summary:
    """finetune / tune: the run's record (``steerlab_finetune.json``) and its loss log: steps,
    each loss part at the first and last logged step, the validation loss."""
    from steerlab.tuning import read_loss_log, read_run

    out = stage_dir / OUT
    record = read_run(out)
    log = read_loss_log(out) if (out / "loss_log.jsonl").is_file() else []
    if record is None and not log:
        return {}
    train = [row for row in log if "loss" in row]
    evals = [row for row in log if "eval_loss" in row]
    numbers: list[dict[str, Any]] = []
    text = []
    raw = record.raw if record is not None else {}
    steps = raw.get("global_step", train[-1]["step"] if train else None)
    if steps is not None:
        numbers.append(number("steps", steps))
    if train:
        first, last = train[0], train[-1]
        for key in LOSS_KEYS:
            if key in first and key in last:
                numbers += [
                    number(f"{key} at step {first['step']}", first[key]),
                    number(f"{key} at step {last['step']}", last[key]),
                ]
                text.append(
                    f"{key}: step {first['step']}: {first[key]:.4f} -> "
                    f"step {last['step']}: {last[key]:.4f}"
                )
    eval_loss = raw.get("eval_loss", evals[-1]["eval_loss"] if evals else None)
    if finite(eval_loss) is not None:
        numbers.append(number("validation loss", eval_loss))
    keys = [
        k for k in ("step", *LOSS_KEYS, "eval_loss", "learning_rate") if any(k in r for r in log)
    ]
    shown = log if len(log) <= LOSS_TABLE_ROWS else _thin(log, LOSS_TABLE_ROWS)
    tables = [table("loss log", keys, [[row.get(k) for k in keys] for row in shown])] if log else []
    merged = out / str(raw.get("merged_dir") or "merged")
    return {
        "headline": _training_headline(record, steps),
        "numbers": numbers,
        "tables": tables,
        "plots": plots(out, stage_dir),
        "text": text,
        "files": files(
            stage_dir,
            [
                ("run folder", out),
                ("merged checkpoint", merged),
                ("loss log", out / "loss_log.jsonl"),
                ("provenance", out / "steerlab_finetune.json"),
            ],
        ),
    }


def _training_headline(record: Any, steps: Any) -> str | None:
    if record is None:
        return None
    what = "representation tuning" if record.kind == "represent" else "fine-tune"
    how = (
        f"layers {span(record.trained_layers)}"
        if record.trained_layers
        else f"LoRA on {', '.join(record.target_modules) or 'the default modules'}"
    )
    cosine = (
        f", cosine loss at layers {span(record.representation_layers)}"
        if record.representation_layers
        else ""
    )
    after = f", {steps} steps" if steps is not None else ""
    return f"{what} of {record.base_model} ({how}{cosine}){after}, {record.status}"


def _thin(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` rows spread evenly over ``rows``, the first and last kept."""
    step = (len(rows) - 1) / (limit - 1)
    return [rows[round(i * step)] for i in range(limit)]


__all__ = [
    "summarize_eval",
    "summarize_matrix",
    "summarize_sweep",
    "summarize_training",
]

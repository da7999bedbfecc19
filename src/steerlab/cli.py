"""The ``steerlab`` command: a thin typer shell over the public Python API."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from steerlab.errors import SpecError, SteerlabError
from steerlab.provenance import library_version
from steerlab.terminal import LogConsole

# Command-line errors: click's, and the copy of click that newer typer releases vendor.
CLICK_ERRORS: tuple[type[Any], ...] = (click.ClickException,) + (
    (typer.TyperException,) if hasattr(typer, "TyperException") else ()
)
# Exceptions that steer the framework itself (exit, abort), not errors of a command.
FRAMEWORK_EXCEPTIONS: tuple[type[BaseException], ...] = (
    typer.Exit,
    typer.Abort,
    click.exceptions.Exit,
    click.exceptions.Abort,
    *CLICK_ERRORS,
)


class OneLineErrorGroup(TyperGroup):
    """The root command group: a command line that does not parse gives one line, exit 2.

    Typer draws a framed box (usage, hint and message on several lines) for an unknown
    option, a missing required option or a value of the wrong type; this prints
    ``error: MESSAGE (see 'steerlab CMD --help')`` instead, keeping click's exit code 2.
    """

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; see the class docstring for how usage errors look."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except CLICK_ERRORS as exc:  # click's, or the copy typer >= 0.2x vendors
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # the help text itself
            else:
                ctx = getattr(exc, "ctx", None)
                hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                _print_error(one_line(exc.format_message()) + hint)
            sys.exit(exc.exit_code)
        except (click.exceptions.Abort, typer.Abort):
            err_console.print("aborted")
            sys.exit(EXIT_BAD_INPUT)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="steerlab",
    cls=OneLineErrorGroup,
    help="Steer language models through their internal representations; measure the cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = LogConsole()  # wide, never-truncating tables in log files and CI logs
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


# Exit codes (documented in the README's CLI section).
EXIT_BAD_INPUT = 1  # a SteerlabError: input the user can fix
EXIT_INTERNAL = 70  # any other exception: a bug in steerlab (EX_SOFTWARE of sysexits.h)
EXIT_INTERRUPTED = 130  # Ctrl-C
ISSUE_TRACKER = "the steerlab issue tracker"
DEBUG_ENV = "STEERLAB_DEBUG"
_debug_flag = False  # set by the root callback's --debug for the current invocation


def debug_enabled() -> bool:
    """True with ``--debug`` or with ``STEERLAB_DEBUG`` set to anything but ``""``/``0``/no."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return _debug_flag or env not in ("", "0", "false", "no", "off")


def one_line(text: str, limit: int = 400) -> str:
    """``text`` with its whitespace runs (newlines included) collapsed, at most ``limit`` long."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def friendly_errors(command: F) -> F:
    """Run a command so that no exception reaches the user as a traceback.

    A :class:`SteerlabError` (bad input) prints one line on stderr and exits with code 1. Any
    other exception is a bug: one line naming its type and message, where to report it and
    how to see the traceback, exit code 70. With ``--debug`` or ``STEERLAB_DEBUG=1`` the full
    traceback is printed first. Ctrl-C exits with 130. Outputs stay atomic either way: the
    writers only rename a finished temporary file over their target.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FRAMEWORK_EXCEPTIONS:
            raise
        except SteerlabError as exc:
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
            _print_error(one_line(str(exc)))
            raise typer.Exit(code=EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(code=EXIT_INTERRUPTED) from None
        except OSError as exc:
            if exc.filename is None:  # not about a file the user named: a bug
                raise_internal(exc)
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
            # A file that cannot be read or written (permissions, disk full...): the user's.
            _print_error(f"{exc.filename}: {exc.strerror or one_line(str(exc))}")
            raise typer.Exit(code=EXIT_BAD_INPUT) from None
        except Exception as exc:
            raise_internal(exc)

    return wrapper  # type: ignore[return-value]


def raise_internal(exc: BaseException) -> NoReturn:
    """Report ``exc`` as a bug in one line (the traceback too under --debug); exit 70."""
    if debug_enabled():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    detail = one_line(str(exc), 300)
    _print_error(
        f"internal error (BUG) {type(exc).__name__}"
        + (f": {detail}" if detail else "")
        + f" — please report it at {ISSUE_TRACKER}"
        + ("" if debug_enabled() else f", rerun with --debug or {DEBUG_ENV}=1 for the traceback")
    )
    raise typer.Exit(code=EXIT_INTERNAL) from None


def parse_coefficients(text: str) -> list[float]:
    """``"-6,0,6"`` -> [-6, 0, 6]; ``"-8:8:17"`` -> 17 evenly spaced values from -8 to 8."""
    text = text.strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1:
                raise ValueError
            if count == 1:
                return [start]
            step = (stop - start) / (count - 1)
            return [round(start + i * step, 10) for i in range(count)]
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SpecError(
            f"coefficients {text!r} are not understood; use e.g. -6,0,6 or -8:8:17"
        ) from None
    if not values:
        raise SpecError("no coefficients given")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise SpecError(f"coefficient {bad[0]} is not finite")
    return values


def check_count(value: int | None, option: str, minimum: int = 1) -> None:
    """Refuse a count below ``minimum`` (None means "not given" and passes)."""
    if value is not None and value < minimum:
        raise SpecError(f"{option} {value} must be at least {minimum}")


def check_number(value: float, option: str, minimum: float = 0.0) -> None:
    """Refuse a NaN, infinite or too small float option."""
    if not math.isfinite(value) or value < minimum:
        raise SpecError(f"{option} {value} must be a finite number >= {minimum:g}")


def check_output(path: Path, option: str = "--output", folder: bool = False) -> None:
    """Fail before any work when ``path`` cannot be written.

    Args:
        path: the output file (or, with ``folder``, the output folder).
        option: the option's name, for the message.
        folder: the output is a folder (it may exist: resumable commands reuse it).

    Raises:
        SpecError: the path is a folder where a file is expected (or the reverse), a parent
            is an existing file, or the nearest existing parent is not writable.
    """
    target = path.expanduser().absolute()
    if folder and target.exists() and not target.is_dir():
        raise SpecError(f"{option} {path}: exists and is not a folder")
    if not folder and target.is_dir():
        raise SpecError(f"{option} {path}: is a folder; give a file name")
    for ancestor in target.parents:
        if ancestor.is_dir():
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise SpecError(f"{option} {path}: folder {ancestor} is not writable")
            return
        if ancestor.exists():
            raise SpecError(f"{option} {path}: {ancestor} is a file, not a folder")


def check_vector_fits(vector: Any, path: Path | str, model: Any) -> None:
    """Refuse, naming the file, a vector made on a model of another type or size."""
    from steerlab.errors import ModelMismatchError
    from steerlab.models import model_identity

    try:
        vector.check_compatible(model_identity(model))
    except ModelMismatchError as exc:
        raise ModelMismatchError(f"{path}: {exc}") from None


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"steerlab {library_version()}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show version."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help=f"Print the full traceback of an error (also: {DEBUG_ENV}=1).",
        ),
    ] = False,
    threads: Annotated[
        str | None,
        typer.Option(
            "--threads",
            metavar="N",
            help="CPU threads for torch (also: $STEERLAB_THREADS). Default: $OMP_NUM_THREADS "
            "if set, else the CPUs this process may use (affinity, container quota), at most "
            "8 (the same whatever the load, so that results and resumed runs are reproducible).",
        ),
    ] = None,
) -> None:
    """steerlab: extract, apply and measure steering vectors."""
    global _debug_flag
    _debug_flag = debug
    from steerlab.threads import set_threads

    try:
        set_threads(threads)
    except SteerlabError as exc:
        _print_error(one_line(str(exc)))
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    from transformers.utils import logging as hf_logging

    # steerlab shows its own progress; transformers' bars would clutter stderr and errors.
    hf_logging.disable_progress_bar()


ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="'default', a local folder or a Hub id.")
]
DtypeOpt = Annotated[
    str | None, typer.Option("--dtype", help="float32, bfloat16, float16 or auto.")
]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1, mps...")]
JudgeUrlOpt = Annotated[
    str | None,
    typer.Option(help="Score outputs with a judge at this OpenAI-compatible endpoint (base URL)."),
]
JudgeModelOpt = Annotated[
    str | None, typer.Option(help="Judge model: name at --judge-url, or a local path/id.")
]
JudgeKeyEnvOpt = Annotated[
    str, typer.Option(help="Environment variable holding the endpoint's API key.")
]
LayersPathOpt = Annotated[
    str | None,
    typer.Option("--layers-path", help="Dotted path of the decoder block list, if not found."),
]


@app.command()
@friendly_errors
def extract(
    pairs: Annotated[
        str, typer.Option("--pairs", "-p", help="Pairs file (JSONL/JSON/CAA A/B) or builtin:NAME.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .safetensors file.")],
    model: ModelOpt = "default",
    method: Annotated[
        str, typer.Option(help="mean_diff, pca_diff, pca_center or probe.")
    ] = "pca_diff",
    layers: Annotated[str, typer.Option(help="all, 15, 12-18 or 12,14,16.")] = "all",
    position: Annotated[
        str, typer.Option(help="last (last token) or mean (mean over the reply tokens).")
    ] = "last",
    limit: Annotated[int | None, typer.Option(help="Use only the first N pairs.")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 16,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
) -> None:
    """Extract a steering vector from contrastive pairs."""
    from steerlab.data import load_pairs
    from steerlab.extract import METHODS
    from steerlab.extract import extract as run_extract
    from steerlab.models import load_model

    if method not in METHODS:
        raise SpecError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if position not in ("last", "mean"):
        raise SpecError(f"--position {position!r} is not one of last, mean")
    check_count(limit, "--limit")
    check_count(batch_size, "--batch-size")
    check_output(output)
    data = load_pairs(pairs, limit=limit)  # read data first: bad input fails before loading
    loaded, tokenizer = load_model(model, dtype=dtype, device=device)
    vector = run_extract(
        loaded,
        tokenizer,
        data,
        method=method,
        layers=layers,
        position=position,  # type: ignore[arg-type]
        batch_size=batch_size,
        seed=seed,
        layers_path=layers_path,
        progress=True,
    )
    vector.save(output)
    console.print(
        f"wrote {output}: {vector.metadata.method} vector, layers "
        f"{vector.describe()['layers']}, {len(data)} pairs"
    )


@app.command()
@friendly_errors
def info(
    vector_file: Annotated[Path, typer.Argument(help="A steering vector .safetensors file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a steering vector's metadata and per-layer norms."""
    from steerlab.vector import SteeringVector

    vector = SteeringVector.load(vector_file)
    summary = vector.describe()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    table = Table(title=str(vector_file), show_header=False)
    for key in (
        "model_id",
        "model_type",
        "hidden_size",
        "num_layers",
        "method",
        "position",
        "n_examples",
        "data_sha256",
        "layers",
        "library_version",
        "git_revision",
        "created",
        "seed",
    ):
        table.add_row(key, str(summary.get(key)))
    console.print(table)
    norms = Table(title="per-layer norms")
    norms.add_column("layer", justify="right")
    norms.add_column("vector norm", justify="right")
    norms.add_column("activation norm", justify="right")
    activation = vector.activation_norms or {}
    for layer, norm in vector.norms().items():
        act = activation.get(layer)
        norms.add_row(str(layer), f"{norm:.4g}", "-" if act is None else f"{act:.4g}")
    console.print(norms)


@app.command()
@friendly_errors
def generate(
    prompts: Annotated[list[str], typer.Argument(help="One or more prompts.")],
    model: ModelOpt = "default",
    vector: Annotated[
        Path | None, typer.Option("--vector", "-v", help="Steering vector file.")
    ] = None,
    layers: Annotated[
        str | None, typer.Option(help="Layers to steer (default: all the vector has).")
    ] = None,
    coefficients: Annotated[
        str, typer.Option(help="Comma list (-6,0,6) or start:stop:count (-8:8:17).")
    ] = "0",
    operator: Annotated[str, typer.Option(help="add, ablate or clamp.")] = "add",
    normalize: Annotated[bool, typer.Option(help="Unit direction per layer.")] = False,
    scale_by_norm: Annotated[
        bool, typer.Option(help="Coefficient as a fraction of the layer's activation norm.")
    ] = False,
    positions: Annotated[str, typer.Option(help="all, prompt or generated.")] = "all",
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 48,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    raw: Annotated[bool, typer.Option(help="Do not apply the chat template.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
) -> None:
    """Generate continuations at several steering coefficients, batched in one run."""
    from steerlab.generate import generate as run_generate
    from steerlab.models import load_model
    from steerlab.steer import OPERATORS, POSITIONS
    from steerlab.vector import SteeringVector

    values = parse_coefficients(coefficients)
    if operator not in OPERATORS:
        raise SpecError(f"--operator {operator!r} is not one of {', '.join(OPERATORS)}")
    if positions not in POSITIONS:
        raise SpecError(f"--positions {positions!r} is not one of {', '.join(POSITIONS)}")
    check_count(max_new_tokens, "--max-new-tokens")
    check_number(temperature, "--temperature")
    if vector is None and layers is not None:
        raise SpecError(f"--layers {layers} steers nothing without a --vector")
    steering = SteeringVector.load(vector) if vector is not None else None
    loaded, tokenizer = load_model(model, dtype=dtype, device=device)
    if steering is not None:
        check_vector_fits(steering, vector, loaded)  # type: ignore[arg-type]
    results = run_generate(
        loaded,
        tokenizer,
        prompts,
        steering,
        values,
        layers=layers,
        operator=operator,  # type: ignore[arg-type]
        normalize=normalize,
        scale_by_norm=scale_by_norm,
        positions=positions,  # type: ignore[arg-type]
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        system=system,
        chat=not raw,
        layers_path=layers_path,
        progress=True,
    )
    if as_json:
        for item in results:
            typer.echo(
                json.dumps(
                    {"prompt": item.prompt, "coefficient": item.coefficient, "text": item.text}
                )
            )
        return
    print_generations(results)


def print_generations(results: list[Any]) -> None:
    """Show generations as a table, one row per prompt and coefficient."""
    table = Table(show_lines=True)
    table.add_column("prompt", max_width=28)
    table.add_column("coef", justify="right")
    table.add_column("generation")
    for item in results:
        table.add_row(item.prompt, f"{item.coefficient:+g}", item.text)
    console.print(table)


@app.command()
@friendly_errors
def sweep(
    vector: Annotated[Path, typer.Option("--vector", "-v", help="Steering vector file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (resumable).")],
    model: ModelOpt = "default",
    behavior: Annotated[
        list[str] | None,
        typer.Option(
            "--behavior",
            "-b",
            help="[NAME=]KIND:PATH, KIND caa/ab (A/B likelihood), pairs (reply likelihood of "
            "contrastive pairs) or advbench/harmful (sampled, refusal-scored); PATH may be "
            "builtin:honesty_ab or builtin:happy_sad. Repeatable.",
        ),
    ] = None,
    helpfulness: Annotated[
        list[str] | None,
        typer.Option("--helpfulness", help="[NAME=]mmlu:PATH (or builtin:general_mc). Repeatable."),
    ] = None,
    perplexity: Annotated[
        Path | None, typer.Option(help="Text file (a text a line) or JSONL with 'text'.")
    ] = None,
    coefficients: Annotated[
        str, typer.Option(help="Comma list (-4,0,4) or start:stop:count (-8:8:17).")
    ] = "-8:8:17",
    layers: Annotated[str, typer.Option(help="Layers to steer.")] = "all",
    operator: Annotated[str, typer.Option(help="add, ablate or clamp.")] = "add",
    normalize: Annotated[bool, typer.Option(help="Unit direction per layer (the study's).")] = True,
    scale_by_norm: Annotated[
        bool, typer.Option(help="Coefficient as a fraction of the layer's activation norm.")
    ] = False,
    aligned: Annotated[
        str, typer.Option(help="Which A/B answer is aligned: matching or not_matching.")
    ] = "matching",
    limit: Annotated[int | None, typer.Option(help="Items per task.")] = None,
    samples: Annotated[
        int, typer.Option(help="Samples per prompt for sampled behaviour / answers.")
    ] = 4,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = "OPENAI_API_KEY",
    judge_rubric: Annotated[
        str | None, typer.Option(help="What the judge looks for (the aligned behaviour).")
    ] = None,
    answer_scoring: Annotated[
        str, typer.Option(help="Multiple choice by answer 'letter' (the study's) or 'text'.")
    ] = "letter",
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    batch_size: Annotated[int, typer.Option(help="Rows per forward pass.")] = 16,
    coefficients_per_batch: Annotated[
        int, typer.Option(help="Coefficients per unit of work (and of resumption).")
    ] = 3,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    estimates: Annotated[bool, typer.Option(help="Also estimate Δλ and λσβ empirically.")] = True,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Sweep the steering coefficient: behaviour, helpfulness, fits and plots."""
    from steerlab.evaluate.specs import behavior_task, helpfulness_task, perplexity_task
    from steerlab.evaluate.sweep import sweep as run_sweep
    from steerlab.evaluate.tasks import Task
    from steerlab.models import check_model_reference, load_model
    from steerlab.steer import OPERATORS
    from steerlab.vector import SteeringVector

    values = parse_coefficients(coefficients)
    if operator not in OPERATORS:
        raise SpecError(f"--operator {operator!r} is not one of {', '.join(OPERATORS)}")
    if aligned not in ("matching", "not_matching"):
        raise SpecError(f"--aligned {aligned!r} is not matching or not_matching")
    check_count(limit, "--limit")
    check_count(samples, "--samples")
    check_count(batch_size, "--batch-size")
    check_count(coefficients_per_batch, "--coefficients-per-batch")
    check_number(temperature, "--temperature")
    check_output(output, folder=True)
    check_model_reference(model)  # before the judge loads
    scorer = make_judge(judge_url, judge_model, judge_key_env, judge_rubric, dtype, device)
    tasks: list[Task] = [
        behavior_task(
            spec,
            limit=limit,
            aligned=aligned,
            n_samples=samples,
            temperature=temperature,
            scorer=scorer,
        )
        for spec in behavior or []
    ]
    tasks += [
        helpfulness_task(spec, limit=limit, scoring=answer_scoring) for spec in helpfulness or []
    ]
    if perplexity is not None:
        tasks.append(perplexity_task(str(perplexity), limit=limit))
    if not tasks:
        raise SpecError("nothing to measure: give --behavior, --helpfulness or --perplexity")
    steering = SteeringVector.load(vector)
    loaded, tokenizer = load_model(model, dtype=dtype, device=device)
    check_vector_fits(steering, vector, loaded)
    result = run_sweep(
        loaded,
        tokenizer,
        steering,
        values,
        tasks,
        layers=layers,
        operator=operator,  # type: ignore[arg-type]
        normalize=normalize,
        scale_by_norm=scale_by_norm,
        output_dir=output,
        batch_size=batch_size,
        coefficients_per_batch=coefficients_per_batch,
        seed=seed,
        estimates=estimates,
    )
    console.print(result.table())
    print_fit_summary(result.fit())
    console.print(f"wrote {output}/results.jsonl, fit.json and plots")


def make_judge(
    url: str | None,
    model: str | None,
    key_env: str,
    rubric: str | None,
    dtype: str | None,
    device: str | None,
) -> Any:
    """An LLM-judge scorer from the CLI options, or None for the task's default scorer."""
    from steerlab.evaluate.scorers import DEFAULT_RUBRIC, LLMJudgeScorer, LocalJudge, OpenAIJudge

    if url is None and model is None:
        return None
    if model is None:
        raise SpecError("--judge-url needs --judge-model (the model name at that endpoint)")
    if url is not None:
        backend: Any = OpenAIJudge(url, model, api_key_env=key_env)
    else:
        from steerlab.models import load_model

        judge_model, judge_tokenizer = load_model(model, dtype=dtype, device=device)
        backend = LocalJudge(judge_model, judge_tokenizer)
    return LLMJudgeScorer(backend, rubric=rubric or DEFAULT_RUBRIC)


def print_fit_summary(fit: dict[str, Any]) -> None:
    """A few lines on the fitted and estimated trade-off parameters."""
    behavior, helpful = fit.get("behavior") or {}, fit.get("helpfulness") or {}
    if "error" in behavior:
        console.print(f"behaviour fit: {behavior['error']}")
    elif behavior:
        console.print(
            f"behaviour fit  B(r) = tanh(Δλ·r + artanh B0): Δλ = {behavior['delta_lambda']:.4g}, "
            f"B0 = {behavior['b0']:.3f}, R² = {behavior['r_squared']:.3f}"
        )
    if "error" in helpful:
        console.print(f"helpfulness fit: {helpful['error']}")
    elif helpful:
        console.print(
            f"helpfulness fit P(r) = P0/(P0+(1-P0)·a·(1+k·r²)): a = {helpful['a']:.3g}, "
            f"λσβ = {helpful['lambda_sigma_beta']:.4g}, R² = {helpful['r_squared']:.3f}"
        )
    for name, estimate in (fit.get("empirical_estimates") or {}).items():
        console.print(
            f"empirical {name} = {estimate['value']:.4g} "
            f"[{estimate['ci_low']:.3g}, {estimate['ci_high']:.3g}] ({estimate['task']})"
        )
    window = (fit.get("tradeoff") or {}).get("cost_effective") or {}
    if window and not window.get("empty", True):
        console.print(
            f"cost-effective range (alignment gain > helpfulness loss): "
            f"r in ({window['lower']:.3g}, {window['upper']:.3g}), best r = {window['best_r']:.3g}"
        )
    elif window:
        console.print("cost-effective range: none (helpfulness falls faster than alignment rises)")


@app.command()
@friendly_errors
def diff(
    tuned: Annotated[str, typer.Option("--tuned", help="Fine-tuned model: folder or Hub id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .safetensors file.")],
    base: Annotated[str, typer.Option("--base", help="Base model: 'default', folder or id.")] = (
        "default"
    ),
    prompts: Annotated[
        Path | None,
        typer.Option(help="Questions (text lines, JSONL or chat JSON): read at the last token."),
    ] = None,
    chats: Annotated[
        Path | None,
        typer.Option(help="Chats with answers (JSON/JSONL): mean over the answer tokens."),
    ] = None,
    layers: Annotated[str, typer.Option(help="all, 15, 12-18 or 12,14,16.")] = "all",
    diff_method: Annotated[
        str, typer.Option("--method", help="mean of differences, or pca.")
    ] = "mean",
    limit: Annotated[int | None, typer.Option(help="Use only the first N inputs.")] = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per forward pass.")] = 16,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
) -> None:
    """A model-diff vector: mean activation of the tuned model minus the base on the same inputs."""
    from steerlab.extract.model_diff import (
        DIFF_METHODS,
        answer_examples,
        check_same_architecture,
        model_diff,
        question_examples,
    )
    from steerlab.models import check_model_reference, load_model

    if diff_method not in DIFF_METHODS:
        raise SpecError(f"--method {diff_method!r} is not one of {', '.join(DIFF_METHODS)}")
    if (prompts is None) == (chats is None):
        raise SpecError("give exactly one of --prompts (questions) or --chats (with answers)")
    check_count(limit, "--limit")
    check_count(batch_size, "--batch-size")
    check_output(output)
    if prompts is not None:
        from steerlab.data.qa import read_questions

        questions = read_questions(prompts)[:limit]
    else:
        from steerlab.tuning.data import load_chats

        conversations = load_chats(chats)[:limit]  # type: ignore[arg-type]
    for reference in (base, tuned):  # both, before loading either
        check_model_reference(reference)
    base_model, tokenizer = load_model(base, dtype=dtype, device=device)
    tuned_model, _ = load_model(tuned, dtype=dtype, device=device)
    check_same_architecture(base_model, tuned_model)
    if prompts is not None:
        examples = question_examples(tokenizer, questions)
        position = "last"
    else:
        examples = answer_examples(tokenizer, conversations)
        position = "mean"
    vector = model_diff(
        base_model,
        tuned_model,
        tokenizer,
        examples,
        layers,
        position,  # type: ignore[arg-type]
        diff_method=diff_method,
        batch_size=batch_size,
        layers_path=layers_path,
    )
    vector.save(output)
    console.print(
        f"wrote {output}: model_diff ({diff_method}, {position}) over {len(examples)} inputs, "
        f"layers {vector.describe()['layers']}"
    )


@app.command()
@friendly_errors
def compare(
    vectors: Annotated[list[Path], typer.Argument(help="Two or more vector files.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for CSV, JSON and plots.")
    ] = None,
) -> None:
    """Cosine similarity per layer for every pair of vectors, and their norms."""
    from steerlab.compare import compare as run_compare
    from steerlab.vector import SteeringVector

    if output is not None:
        check_output(output, folder=True)
    loaded = {}
    for path in vectors:
        name = path.stem
        while name in loaded:
            name += "'"
        loaded[name] = SteeringVector.load(path)
    comparison = run_compare(loaded)
    console.print(comparison.table())
    if output is not None:
        written = comparison.save(output)
        console.print("wrote " + ", ".join(str(p) for p in written))


@app.command()
@friendly_errors
def matrix(
    vectors: Annotated[
        str, typer.Option("--vectors", help="Comma-separated vector files (NAME=PATH allowed).")
    ],
    prompts: Annotated[Path, typer.Option(help="Questions (text lines, JSONL or chat JSON).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (resumable).")],
    model: ModelOpt = "default",
    normalized_coefficients: Annotated[
        str, typer.Option(help="Fractions of the activation norm (unit direction).")
    ] = "0.05,0.1,0.2,0.4,0.8",
    raw_coefficients: Annotated[str, typer.Option(help="Multiples of the raw vector.")] = (
        "0.5,1,2,4,8"
    ),
    single_layer: Annotated[
        int | None, typer.Option(help="Layer of the single-layer conditions (default: middle).")
    ] = None,
    no_ablate: Annotated[bool, typer.Option("--no-ablate", help="Skip ablation.")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per output.")] = 32,
    limit: Annotated[int | None, typer.Option(help="Use only the first N prompts.")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per generate.")] = 32,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = "OPENAI_API_KEY",
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Steering matrix: vectors x add/subtract/ablate x normalised/raw x layer modes x grid."""
    from steerlab.data.qa import read_questions
    from steerlab.evaluate.matrix import DECEPTION_RUBRIC, MatrixSettings, steering_matrix
    from steerlab.models import check_model_reference, load_model
    from steerlab.vector import SteeringVector

    check_count(max_new_tokens, "--max-new-tokens")
    check_count(batch_size, "--batch-size")
    check_count(limit, "--limit")
    check_output(output, folder=True)
    settings = MatrixSettings(
        normalized_coefficients=tuple(parse_coefficients(normalized_coefficients)),
        raw_coefficients=tuple(parse_coefficients(raw_coefficients)),
        single_layer=single_layer,
        ablate=not no_ablate,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    loaded_vectors = {}
    files = {}
    for item in (v.strip() for v in vectors.split(",") if v.strip()):
        name, _, path = item.rpartition("=")
        file = Path(path)
        loaded_vectors[name or file.stem] = SteeringVector.load(file)
        files[name or file.stem] = file
    questions = read_questions(prompts)[:limit]
    check_model_reference(model)  # before the judge loads
    scorer = make_judge(judge_url, judge_model, judge_key_env, DECEPTION_RUBRIC, dtype, device)
    loaded, tokenizer = load_model(model, dtype=dtype, device=device)
    for name, steering in loaded_vectors.items():
        check_vector_fits(steering, files[name], loaded)
    result = steering_matrix(
        loaded, tokenizer, loaded_vectors, questions, settings, scorer=scorer, output_dir=output
    )
    table = Table(title=f"steering matrix (rate scored +1 by {result.scorer})")
    for column in ("vector", "operator", "norm", "layers", "coef", "rate", "median ppl"):
        table.add_column(column)
    for entry in result.summary():
        table.add_row(
            entry["vector"],
            entry["operator"],
            entry["normalization"],
            entry["layers"],
            f"{entry['coefficient']:g}",
            f"{entry['rate']:.2f}",
            f"{entry['median_perplexity']:.3g}",
        )
    console.print(table)
    console.print(f"wrote {output}/results.jsonl, summary.csv, examples.md/.html, rates.png/.svg")


@app.command()
@friendly_errors
def demo(
    model: ModelOpt = "default",
    coefficient: Annotated[
        float, typer.Option(help="Steering strength as a fraction of the activation norm.")
    ] = 0.1,
    layers: Annotated[str, typer.Option(help="Layers to steer.")] = "12-18",
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 40,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for artifacts.")] = Path(
        "demo-output"
    ),
) -> None:
    """Extract a mood vector on the embedded model and show steered generations."""
    from steerlab.demo import run_demo

    run_demo(
        model=model,
        coefficient=coefficient,
        layers=layers,
        max_new_tokens=max_new_tokens,
        output=output,
        console=console,
    )


from steerlab.cli_dataset import register as _register_dataset  # noqa: E402

_register_dataset(app)

from steerlab.cli_finetune import register as _register_finetune  # noqa: E402

_register_finetune(app)

from steerlab.cli_tune import register as _register_tune  # noqa: E402

_register_tune(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="steerlab")


if __name__ == "__main__":  # pragma: no cover
    main()

"""What every ``steerlab`` command shares: options, the console, error handling and parsers.

The command modules (:mod:`~steerlab.cli.vectors`, :mod:`~steerlab.cli.training`...) import
from here and from the library, never from each other; :mod:`steerlab.cli.app` registers
their commands. Error contract (documented in the README): a :class:`SteerlabError` is one
line on stderr and exit code 1; a command line that does not parse is one line and exit 2;
any other exception is a bug, one line and exit 70 (the traceback with ``--debug`` or
``STEERLAB_DEBUG=1``); Ctrl-C exits with 130.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import os
import sys
import traceback
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from steerlab.errors import SpecError, SteerlabError
from steerlab.provenance import library_version
from steerlab.terminal import LogConsole
from steerlab.validation import check_int
from steerlab.validation import check_number as check_finite

if TYPE_CHECKING:
    from steerlab.tuning import FinetuneConfig

F = TypeVar("F", bound=Callable[..., Any])

console = LogConsole()  # wide, never-truncating tables in log files and CI logs
err_console = Console(stderr=True)

# -- exit codes and errors -------------------------------------------------------------------

EXIT_OK = 0
EXIT_BAD_INPUT = 1  # a SteerlabError: input the user can fix
EXIT_USAGE = 2  # a command line that does not parse (click's code)
EXIT_INTERNAL = 70  # any other exception: a bug in steerlab (EX_SOFTWARE of sysexits.h)
EXIT_INTERRUPTED = 130  # Ctrl-C
ISSUE_TRACKER = "the steerlab issue tracker"
DEBUG_ENV = "STEERLAB_DEBUG"

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

_debug_flag = False  # set by the root callback's --debug for the current invocation


def set_debug(enabled: bool) -> None:
    """Record the root ``--debug`` flag of the current invocation."""
    global _debug_flag
    _debug_flag = enabled


def debug_enabled() -> bool:
    """True with ``--debug`` or with ``STEERLAB_DEBUG`` set to anything but ``""``/``0``/no."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return _debug_flag or env not in ("", "0", "false", "no", "off")


def one_line(text: str, limit: int = 400) -> str:
    """``text`` with its whitespace runs (newlines included) collapsed, at most ``limit`` long."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr, on one (soft-wrapped) line."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_note(message: str) -> None:
    """An informational one-liner on stdout (with the command's other progress lines)."""
    console.print(f"note: {message}", highlight=False, soft_wrap=True)


def print_note_stderr(message: str) -> None:
    """:func:`print_note` on stderr, for commands whose stdout is data (``--json``)."""
    typer.echo(f"note: {message}", err=True)


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
                print_error(one_line(exc.format_message()) + hint)
            sys.exit(exc.exit_code)
        except (click.exceptions.Abort, typer.Abort):
            err_console.print("aborted")
            sys.exit(EXIT_BAD_INPUT)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


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
            print_error(one_line(str(exc)))
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
            print_error(f"{exc.filename}: {exc.strerror or one_line(str(exc))}")
            raise typer.Exit(code=EXIT_BAD_INPUT) from None
        except Exception as exc:
            raise_internal(exc)

    return wrapper  # type: ignore[return-value]


def raise_internal(exc: BaseException) -> NoReturn:
    """Report ``exc`` as a bug in one line (the traceback too under --debug); exit 70."""
    if debug_enabled():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    detail = one_line(str(exc), 300)
    print_error(
        f"internal error (BUG) {type(exc).__name__}"
        + (f": {detail}" if detail else "")
        + f" — please report it at {ISSUE_TRACKER}"
        + ("" if debug_enabled() else f", rerun with --debug or {DEBUG_ENV}=1 for the traceback")
    )
    raise typer.Exit(code=EXIT_INTERNAL) from None


# -- checks and parsers ----------------------------------------------------------------------


def check_count(value: int | None, option: str, minimum: int = 1) -> None:
    """Refuse a count below ``minimum`` (None means "not given" and passes)."""
    if value is not None:
        check_int(value, option, minimum=minimum)


def check_number(value: float, option: str, minimum: float = 0.0) -> None:
    """Refuse a NaN, infinite or too small float option."""
    check_finite(value, option, low=minimum)


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


def parse_target_modules(text: str | None) -> tuple[str, ...] | None:
    """``"q_proj,v_proj"`` -> ``("q_proj", "v_proj")``; None, ``""`` or ``"auto"`` -> None."""
    if text is None or text.strip().lower() in ("", "auto"):
        return None
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise SpecError(f"--target-modules {text!r} names no module")
    return names


def model_reference(model: str) -> str:
    """How a run records the model it started from: a local folder or GGUF file as an
    absolute path.

    A run folder records its base model so that ``load_model(run)`` finds it again from any
    working directory; ``default`` and Hub ids are recorded as given.
    """
    if model != "default" and Path(model).expanduser().exists():
        return str(Path(model).expanduser().resolve())
    return model


def deprecated_option(command: str, old: str, new: str, old_value: Any, new_value: Any) -> Any:
    """The value of an option given by its deprecated spelling ``old`` or by ``new``.

    Using ``old`` prints a one-line notice naming ``new``; giving both is an error.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise SpecError(f"{old} is the deprecated spelling of {new}; give {new} only")
    print_note(f"'{command} {old}' is deprecated; use {new} (same meaning)")
    return old_value


def steering_scale(
    command: str,
    scale: str | None,
    normalize: bool | None,
    scale_by_norm: bool | None,
    default: str,
    note: Callable[[str], None] | None = None,
) -> str:
    """The ``--scale`` of a command, or what the deprecated ``--normalize`` /
    ``--scale-by-norm`` flags mean (with a one-line notice); both at once must agree."""
    from steerlab.steer import resolve_scale

    if normalize is None and scale_by_norm is None:
        return resolve_scale(scale, None, None, default=default)
    with warnings.catch_warnings():  # the notice below says it, in the CLI's words
        warnings.simplefilter("ignore", DeprecationWarning)
        implied = resolve_scale(scale, bool(normalize), bool(scale_by_norm))
    (note or print_note)(
        f"'{command} --normalize/--scale-by-norm' are deprecated; use --scale {implied}"
        if implied != "vector_norm"
        else f"'{command} --scale-by-norm' without --normalize is deprecated; use --scale norm"
    )
    return implied


def calibrated(
    steering: Any,
    path: Path,
    scale: str | None,
    layers: str | None,
    note: Callable[[str], None] = print_note,
) -> tuple[list[float], str, str]:
    """``--coefficients auto``: the vector's calibrated coefficients, scale and layers.

    Raises:
        SpecError: the vector has no calibration, or ``--scale``/``--layers`` differ from
            what it was calibrated with.
    """
    from steerlab.errors import VectorError

    try:
        values = list(steering.recommended_coefficients())
    except VectorError as exc:
        raise SpecError(f"{path}: {exc}") from None
    record = steering.calibration
    if scale is not None and scale != record["scale"]:
        raise SpecError(f"--scale {scale}: {path} was calibrated with --scale {record['scale']}")
    calibrated_layers = ",".join(map(str, record["layers"]))
    if layers is not None:
        from steerlab.layers import parse_layers

        asked = parse_layers(layers, steering.metadata.num_layers)
        if list(asked) != record["layers"]:
            raise SpecError(
                f"--layers {layers}: {path} was calibrated at layers {calibrated_layers}"
            )
    note(
        f"coefficients {', '.join(f'{v:g}' for v in values)} (scale {record['scale']}, layers "
        f"{calibrated_layers}) from the vector's calibration"
    )
    return values, record["scale"], calibrated_layers


AUTO_COEFFICIENTS = ("auto", "-auto")


def parse_coefficient(text: str, option: str = "--coefficient") -> float | str:
    """A single coefficient: a finite number, or ``auto`` / ``-auto`` (the vector's calibrated
    positive / negative coefficient, resolved by :func:`auto_coefficient`)."""
    value = text.strip().lower()
    if value in AUTO_COEFFICIENTS:
        return value
    try:
        number = float(value)
    except ValueError:
        raise SpecError(
            f"{option} {text!r} is not a number, 'auto' or '-auto' (the calibrated one)"
        ) from None
    return float(check_finite(number, option))


def auto_coefficient(
    choice: str,
    steering: Any,
    path: Path,
    scale: str | None,
    layers: str | None,
    note: Callable[[str], None] = print_note,
) -> tuple[float, str, str]:
    """``--coefficient auto`` (or ``-auto``): the calibrated positive (negative) coefficient
    of the vector, with the scale and layers it was calibrated at.

    Raises:
        SpecError: no calibration, no recommendation for that sign, or ``--scale`` /
            ``--layers`` other than the calibration's.
    """
    values, chosen_scale, chosen_layers = calibrated(
        steering, path, scale, layers, note=lambda _line: None
    )
    picked = [v for v in values if (v < 0 if choice == "-auto" else v > 0)]
    if not picked:
        sign = "negative" if choice == "-auto" else "positive"
        raise SpecError(f"{path}: its calibration recommends no {sign} coefficient")
    note(
        f"coefficient {picked[0]:g} (scale {chosen_scale}, layers {chosen_layers}) from the "
        "vector's calibration"
    )
    return picked[0], chosen_scale, chosen_layers


# -- options shared by several commands ------------------------------------------------------

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="'default', a local folder, a GGUF model file (.gguf) or a Hub id."
    ),
]
DtypeOpt = Annotated[
    str | None, typer.Option("--dtype", help="float32, bfloat16, float16 or auto.")
]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1, mps...")]
DeviceMapOpt = Annotated[
    str | None,
    typer.Option(
        "--device-map",
        help="Spread the model's layers over devices (model parallel): auto, balanced, "
        "balanced_low_0, sequential, or a JSON file mapping module names to devices. "
        "Overrides --device.",
    ),
]

DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def parse_device_map(value: str | None) -> str | dict[str, Any] | None:
    """The ``--device-map`` value as transformers' ``device_map`` argument.

    Raises:
        SpecError: neither a strategy name nor a readable JSON object of module -> device.
    """
    if value is None or value in DEVICE_MAP_STRATEGIES:
        return value
    path = Path(value)
    if not path.is_file():
        raise SpecError(
            f"--device-map {value!r}: not one of {', '.join(DEVICE_MAP_STRATEGIES)} "
            "and not a JSON file"
        )
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SpecError(f"--device-map {path}: not valid JSON ({err})") from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
        for k, v in mapping.items()
    ):
        raise SpecError(
            f"--device-map {path}: expected a JSON object of module name -> device "
            '(e.g. {"model.layers.0": "cpu"})'
        )
    return mapping


ScaleOpt = Annotated[
    str | None,
    typer.Option(
        "--scale",
        help="What the coefficients are measured in: vector (as extracted), unit (its unit "
        "direction) or norm (a fraction of each layer's activation norm).",
    ),
]
NormalizeOpt = Annotated[
    bool | None, typer.Option("--normalize/--no-normalize", hidden=True, help="Deprecated.")
]
ScaleByNormOpt = Annotated[
    bool | None,
    typer.Option("--scale-by-norm/--no-scale-by-norm", hidden=True, help="Deprecated."),
]
LayersPathOpt = Annotated[
    str | None,
    typer.Option("--layers-path", help="Dotted path of the decoder block list, if not found."),
]
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


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"steerlab {library_version()}")
        raise typer.Exit()


VersionOpt = Annotated[
    bool,
    typer.Option("--version", callback=_print_version, is_eager=True, help="Show version."),
]
DebugOpt = Annotated[
    bool,
    typer.Option("--debug", help=f"Print the full traceback of an error (also: {DEBUG_ENV}=1)."),
]
ThreadsOpt = Annotated[
    str | None,
    typer.Option(
        "--threads",
        metavar="N",
        help="CPU threads for torch (also: $STEERLAB_THREADS). Default: $OMP_NUM_THREADS "
        "if set, else the CPUs this process may use (affinity, container quota), at most "
        "8 (the same whatever the load, so that results and resumed runs are reproducible).",
    ),
]


# -- training options (finetune and tune) ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """The training options of ``finetune`` and ``tune``: declared once, one meaning a flag.

    Each field is a command-line option (its flag is the field name with dashes unless the
    option names one); the defaults are :class:`~steerlab.tuning.FinetuneConfig`'s (a test
    checks that they agree). A command receives them as one ``training`` argument, see
    :func:`training_options`.
    """

    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8
    alpha: Annotated[float, typer.Option(help="LoRA alpha.")] = 16.0
    dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.0
    target_modules: Annotated[
        str | None,
        typer.Option(
            help="Comma list of linear modules for LoRA, e.g. q_proj,v_proj (default: every "
            "attention and MLP projection)."
        ),
    ] = None
    train_layers: Annotated[
        str | None,
        typer.Option(help="Fully fine-tune these decoder layers (e.g. 12-18) instead of LoRA."),
    ] = None
    epochs: Annotated[float, typer.Option(help="Passes over the data.")] = 1.0
    max_steps: Annotated[
        int | None, typer.Option(help="Optimiser steps in total (overrides --epochs).")
    ] = None
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 2e-4
    lr_scheduler: Annotated[
        str, typer.Option(help="Learning-rate schedule: linear (decay to 0), constant, cosine...")
    ] = "linear"
    batch_size: Annotated[
        int,
        typer.Option(
            help="Chats per forward pass, in all (the global batch): under accelerate "
            "launch / torchrun each of N processes takes batch-size/N."
        ),
    ] = 4
    gradient_accumulation: Annotated[
        int, typer.Option("--grad-accum", help="Forward passes per optimiser step.")
    ] = 1
    max_length: Annotated[int, typer.Option(help="Tokens per chat at most.")] = 256
    save_steps: Annotated[
        int, typer.Option(help="Checkpoint (and validate, with a split) every N steps.")
    ] = 50
    eval_fraction: Annotated[
        float, typer.Option(help="Fraction of the chats held out as a validation split.")
    ] = 0.0
    early_stopping: Annotated[
        int | None,
        typer.Option(help="Stop after N validations without improvement (needs a split)."),
    ] = None
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0
    limit: Annotated[
        int | None, typer.Option(help="Use only the first N examples (chats, statements, pairs).")
    ] = None
    resume: Annotated[
        bool, typer.Option(help="Continue from the last checkpoint in OUTPUT, if any.")
    ] = True

    def check(self) -> None:
        """Refuse what the config cannot tell: a bad ``--limit``, full fine-tune with LoRA."""
        check_count(self.limit, "--limit")
        if self.train_layers is not None and self.target_modules is not None:
            raise SpecError(
                "--train-layers (full fine-tune) and --target-modules (LoRA) exclude each other"
            )

    def finetune_config(
        self, *, merge: bool, full_finetune_layers: tuple[int, ...] | None = None
    ) -> FinetuneConfig:
        """The :class:`~steerlab.tuning.FinetuneConfig` these options describe (validated)."""
        from steerlab.tuning import FinetuneConfig

        return FinetuneConfig(
            rank=self.rank,
            alpha=self.alpha,
            dropout=self.dropout,
            target_modules=parse_target_modules(self.target_modules),
            epochs=self.epochs,
            max_steps=self.max_steps,
            learning_rate=self.lr,
            lr_scheduler=self.lr_scheduler,
            batch_size=self.batch_size,
            gradient_accumulation=self.gradient_accumulation,
            max_length=self.max_length,
            seed=self.seed,
            save_steps=self.save_steps,
            eval_fraction=self.eval_fraction,
            merge=merge,
            full_finetune_layers=full_finetune_layers,
            early_stopping_patience=self.early_stopping,
        )


TRAINING_DEFAULTS = TrainingOptions()
"""The training options' defaults (the placeholder default of a command's ``training``)."""


def training_options(command: F) -> F:
    """Give ``command`` the :class:`TrainingOptions` in place of its ``training`` parameter.

    Typer reads a command's options from its signature; this one shows typer the command's
    own parameters with every ``TrainingOptions`` field spliced in where ``training`` was,
    and calls the command with those values gathered into one ``TrainingOptions``.
    """
    own = inspect.signature(command)
    own_hints = typing.get_type_hints(command, include_extras=True)
    shared_hints = typing.get_type_hints(TrainingOptions, include_extras=True)
    fields = dataclasses.fields(TrainingOptions)
    if "training" not in own.parameters:
        raise TypeError(f"{command.__name__} has no 'training' parameter")
    parameters: list[inspect.Parameter] = []
    for parameter in own.parameters.values():
        if parameter.name == "training":
            parameters += [
                inspect.Parameter(
                    field.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=field.default,
                    annotation=shared_hints[field.name],
                )
                for field in fields
            ]
        else:
            annotation = own_hints.get(parameter.name, parameter.annotation)
            parameters.append(
                parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
            )
    names = [field.name for field in fields]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        training = TrainingOptions(**{name: kwargs.pop(name) for name in names})
        return command(training=training, **kwargs)

    # typer (and inspect) read the spliced signature; annotations are objects, not strings.
    wrapper.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper  # type: ignore[return-value]

"""The stage kinds of an experiment spec: each one is a ``steerlab`` command, run as the CLI would.

A stage of kind ``sweep`` calls the very function behind ``steerlab sweep`` with the stage's
settings as its options: one implementation, and one name per setting (the option's long
flag, ``--batch-size`` -> ``batch_size``). The settings a spec may give are read off the
command's signature, so a new option of a command is a new setting of its stage kind, with the
same help text. What the runner decides itself is not a setting: where the output goes
(``--output``), which model or vector a reference names (``model: base`` -> the model's
source, ``vector: mood`` -> that stage's vector file), the model's ``dtype``/``device``
(given once, in ``models:``), ``--resume`` (always on: reruns continue) and options that
would write into another stage's files (``calibrate --write``).
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RefKind = Literal["model", "vector", "vectors", "eval_models", "steered"]
Produces = Literal["vector", "model"] | None

# Options every model-loading command shares; a spec gives them once per model.
MODEL_OPTIONS = ("dtype", "device", "layers_path")


@dataclass(frozen=True)
class CommandKind:
    """How the runner calls one command.

    Attributes:
        kind: the stage kind (the ``kind:`` of a stage).
        command: the CLI leaf function.
        refs: parameter -> what its value names (a model, a vector, a list of vectors...).
        output: the parameter that takes the output path.
        output_name: the output's name inside the stage folder (a file, or ``out`` for a folder).
        produces: what later stages may reference this stage as (``vector: NAME``...).
        resumable: whether the command continues in a half-written output folder (else the
            runner clears it before a rerun).
        shared: whether the command shares its work among the processes of ``accelerate
            launch`` / ``torchrun`` itself (every process runs it); the others run on the
            main process only (:mod:`steerlab.distributed`).
        fixed: parameters the runner sets to fixed values (not settings).
        excluded: parameters a spec may not set.
        summary: one line for ``steerlab schema``/docs.
    """

    kind: str
    command: Callable[..., Any]
    refs: dict[str, RefKind]
    output: str
    output_name: str
    produces: Produces = None
    resumable: bool = False
    shared: bool = False
    fixed: dict[str, Any] = field(default_factory=dict)
    excluded: tuple[str, ...] = ()
    summary: str = ""


@functools.cache
def kinds() -> dict[str, CommandKind]:
    """Stage kind -> how to run it (the CLI loads on first use, not on ``import steerlab``)."""
    from steerlab.cli import (
        calibration,
        evaluation,
        exporting,
        folding,
        generation,
        training,
        vectors,
    )

    return {
        kind.kind: kind
        for kind in (
            CommandKind(
                "extract",
                vectors.extract,
                {"model": "model"},
                "output",
                "vector.safetensors",
                produces="vector",
                summary="steerlab extract: a vector from contrastive pairs",
            ),
            CommandKind(
                "diff",
                vectors.diff,
                {"base": "model", "tuned": "model"},
                "output",
                "vector.safetensors",
                produces="vector",
                summary="steerlab diff: a model-diff vector (tuned minus base)",
            ),
            CommandKind(
                "import",
                exporting.import_gguf,
                {"model": "model"},
                "output",
                "vector.safetensors",
                produces="vector",
                summary="steerlab import gguf: a llama.cpp / repeng / EasySteer control vector",
            ),
            CommandKind(
                "compare",
                vectors.compare,
                {"vectors": "vectors"},
                "output",
                "out",
                summary="steerlab compare: cosine per layer of two or more vectors",
            ),
            CommandKind(
                "generate",
                generation.generate,
                {"model": "model", "vector": "vector"},
                "output",
                "generations.jsonl",
                fixed={"as_json": False},
                summary="steerlab generate: steered generations, side by side",
            ),
            CommandKind(
                "calibrate",
                calibration.calibrate,
                {"model": "model", "vector": "vector"},
                "output",
                "out",
                fixed={"write": False},
                excluded=("write",),
                summary="steerlab calibrate: a recommended coefficient per sign",
            ),
            CommandKind(
                "sweep",
                evaluation.sweep,
                {"model": "model", "vector": "vector"},
                "output",
                "out",
                resumable=True,
                shared=True,
                summary="steerlab sweep: behaviour, helpfulness and the bound fits vs coefficient",
            ),
            CommandKind(
                "matrix",
                evaluation.matrix,
                {"model": "model", "vectors": "vectors"},
                "output",
                "out",
                resumable=True,
                shared=True,
                summary="steerlab matrix: vectors x operators x scales x layer modes",
            ),
            CommandKind(
                "finetune",
                training.finetune,
                {"model": "model"},
                "output",
                "out",
                produces="model",
                resumable=True,
                shared=True,
                fixed={"resume": True},
                excluded=("resume",),
                summary="steerlab finetune: LoRA or layer fine-tuning on chats",
            ),
            CommandKind(
                "tune",
                training.tune,
                {"model": "model", "vector": "vector"},
                "output",
                "out",
                produces="model",
                resumable=True,
                shared=True,
                fixed={"resume": True},
                excluded=("resume",),
                summary="steerlab tune: representation tuning (token loss + cosine loss)",
            ),
            CommandKind(
                "eval",
                evaluation.eval_models,
                {"models": "eval_models", "steered": "steered", "vector": "vector"},
                "output",
                "out",
                resumable=True,
                shared=True,
                fixed={"resume": True},
                excluded=("resume",),
                summary="steerlab eval: models and online steering on the honesty suite",
            ),
            CommandKind(
                "fold",
                folding.fold,
                {"model": "model", "vector": "vector"},
                "output",
                "out",
                produces="model",
                summary="steerlab fold: a checkpoint with the steering in its weights",
            ),
            CommandKind(
                "export",
                exporting.export_gguf,
                {"vector": "vector"},
                "output",
                "vector.gguf",
                summary="steerlab export gguf: a llama.cpp control vector",
            ),
        )
    }


@dataclass(frozen=True)
class Setting:
    """One option of a command as a spec setting.

    Attributes:
        name: the setting's name (the long flag without dashes, ``-`` as ``_``).
        parameter: the command function's parameter it feeds.
        annotation: the parameter's type without ``Annotated`` and ``None``.
        optional: whether None is allowed.
        default: the command's default (``inspect.Parameter.empty`` when required).
        help: the option's help text.
        is_path: whether the command wants a :class:`~pathlib.Path`.
    """

    name: str
    parameter: str
    annotation: Any
    optional: bool
    default: Any
    help: str
    is_path: bool


def settings_of(kind: CommandKind) -> list[Setting]:
    """The settings a spec may give a stage of ``kind``, in the command's option order."""
    signature = inspect.signature(kind.command)
    hints = _hints(kind.command)
    skip = {kind.output, *kind.refs, *kind.fixed, *kind.excluded, *MODEL_OPTIONS}
    found = []
    for name, parameter in signature.parameters.items():
        if name in skip:
            continue
        annotation = hints.get(name, parameter.annotation)
        base, info = _unannotate(annotation)
        if info is not None and getattr(info, "hidden", False):
            continue  # deprecated spellings stay on the command line only
        base, optional = _without_none(base)
        found.append(
            Setting(
                name=_flag_name(name, info),
                parameter=name,
                annotation=base,
                optional=optional,
                default=parameter.default,
                help=str(getattr(info, "help", "") or ""),
                is_path=base is Path or typing.get_args(base) == (Path,),
            )
        )
    return found


def model_parameters(kind: CommandKind) -> tuple[str, ...]:
    """Of :data:`MODEL_OPTIONS`, those the command takes."""
    parameters = inspect.signature(kind.command).parameters
    return tuple(name for name in MODEL_OPTIONS if name in parameters)


def _hints(command: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations (with ``Annotated`` extras) of a command and of what it wraps."""
    hints: dict[str, Any] = {}
    chain = [command]
    while hasattr(chain[-1], "__wrapped__"):
        chain.append(chain[-1].__wrapped__)
    for function in reversed(chain):
        try:
            hints.update(typing.get_type_hints(function, include_extras=True))
        except (NameError, TypeError):
            # A wrapper's spliced signature already holds objects, not strings.
            hints.update(
                {
                    k: v
                    for k, v in getattr(function, "__annotations__", {}).items()
                    if k not in hints
                }
            )
    return hints


def _unannotate(annotation: Any) -> tuple[Any, Any]:
    """``Annotated[T, typer.Option(...)]`` -> ``(T, the OptionInfo)``; others -> ``(T, None)``."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        info = next((e for e in extras if hasattr(e, "param_decls")), None)
        return base, info
    return annotation, None


def _without_none(annotation: Any) -> tuple[Any, bool]:
    """``T | None`` -> ``(T, True)``; ``T`` -> ``(T, False)``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True  # noqa: UP007
    return annotation, False


def _flag_name(parameter: str, info: Any) -> str:
    """The option's long flag as a setting name (``--grad-accum`` -> ``grad_accum``)."""
    declarations = list(getattr(info, "param_decls", None) or ())
    default = getattr(info, "default", None)
    if isinstance(default, str) and default.startswith("-"):
        declarations.insert(0, default)  # Annotated style: typer reads the first one as a flag
    for declaration in declarations:
        first = declaration.split("/")[0]
        if first.startswith("--"):
            return first[2:].replace("-", "_")
    return parameter

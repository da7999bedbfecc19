"""The experiment spec: typed and validated before anything runs.

A spec is a YAML file::

    name: mood-study          # optional (default: the file's name)
    seed: 0                   # every stage's ``seed`` unless the stage sets its own
    models:
      base: default           # a name for each model: 'default', a folder, a .gguf, a Hub id
      big: {source: meta-llama/Llama-2-7b-chat-hf, dtype: bfloat16, device: cuda}
    stages:
      mood:                   # a stage's name; later stages refer to its output by it
        kind: extract         # a steerlab command: its options are the stage's settings
        model: base
        pairs: builtin:happy_sad
      tradeoff:
        kind: sweep
        model: base
        vector: mood          # the vector stage 'mood' made
        coefficients: [-0.1, 0, 0.1]

The pydantic models here are built from the commands' signatures
(:mod:`steerlab.runner.commands`), so the schema (``steerlab schema``) always matches the CLI.
References (which stage or model a name means, and cycles) are checked by
:mod:`steerlab.runner.graph`.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)

from steerlab.runner.commands import CommandKind, Setting, kinds, settings_of
from steerlab.runner.yaml_lines import LocatedYaml, load_yaml

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
NAME_HELP = "letters, digits, '_', '-' and '.', starting with a letter or '_'"
STRICT = ConfigDict(extra="forbid", strict=True)


def _as_text(value: Any) -> Any:
    """Numbers and lists of numbers as the command line writes them (``[-1, 0, 1]`` -> "-1,0,1")."""
    if isinstance(value, bool):
        return value  # refused below: a switch is not text
    if isinstance(value, (int, float)):
        return _number(value)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value)
    ):
        return ",".join(_number(v) if not isinstance(v, str) else v for v in value)
    return value


def _number(value: float) -> str:
    """A number as the command line writes it; NaN and infinities are refused here."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return repr(value) if isinstance(value, float) else str(value)


def _as_list(value: Any) -> Any:
    """One text where a list of texts is expected: a list of one."""
    return [value] if isinstance(value, str) else value


# What a text setting accepts besides text: numbers (``layers: 15``) and lists of numbers or
# texts (``coefficients: [-1, 0, 1]``), written as the command line would write them.
TEXT_SCHEMA: dict[str, list[dict[str, Any]]] = {
    "anyOf": [
        {"type": "string"},
        {"type": "number"},
        {"type": "array", "items": {"type": ["number", "string"]}, "minItems": 1},
    ]
}
TEXTS_SCHEMA: dict[str, list[dict[str, Any]]] = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
}


def _field_type(setting: Setting) -> Any:
    """The pydantic type of one setting (paths are text, resolved against the spec's folder)."""
    base = setting.annotation
    if base is Path:
        kind: Any = str
    elif base is str:
        kind = Annotated[str, BeforeValidator(_as_text)]  # schema: see json_schema
    elif base == list[str]:
        kind = Annotated[list[str], BeforeValidator(_as_list)]
    elif base is float:
        kind = Annotated[float, Field(allow_inf_nan=False)]
    else:
        kind = base
    return kind | None if setting.optional else kind


class ModelEntry(BaseModel):
    """A model of the experiment: where it comes from and how to load it."""

    model_config = STRICT
    source: str = Field(description="'default', a local folder, a GGUF file or a Hub id.")
    dtype: str | None = Field(default=None, description="float32, bfloat16, float16 or auto.")
    device: str | None = Field(default=None, description="cpu, cuda, cuda:1, mps...")
    layers_path: str | None = Field(
        default=None, description="Dotted path of the decoder block list, if not found."
    )


class Cost(BaseModel):
    """What a run is expected to need, as measured or estimated by the spec's author."""

    model_config = STRICT
    hardware: str = Field(
        description="What it was sized for, e.g. '1 x A100 80GB' or '2 CPU cores'."
    )
    hours: Annotated[float, Field(allow_inf_nan=False, gt=0)] = Field(
        description="Expected wall time of the whole run, in hours."
    )
    memory_gb: Annotated[float, Field(allow_inf_nan=False, gt=0)] = Field(
        description="Peak accelerator (or CPU) memory, in GiB."
    )
    disk_gb: Annotated[float, Field(allow_inf_nan=False, ge=0)] | None = Field(
        default=None, description="Disk the run folder takes, in GiB."
    )
    basis: str | None = Field(
        default=None, description="Measured (when, where) or estimated (from what)."
    )


class SteeredRow(BaseModel):
    """An online-steering row of an ``eval`` stage: a model steered by a vector."""

    model_config = STRICT
    model: str = Field(description="A model name (models: or a stage that makes a model).")
    vector: str = Field(description="A stage that makes a vector.")
    coefficient: Annotated[float, Field(allow_inf_nan=False)] = Field(
        description="Multiple of the vector added at the suite's layers."
    )
    label: str | None = Field(default=None, description="Row label in the tables.")


REF_TYPES: dict[str, Any] = {
    "model": (
        str,
        "A model: a name under models:, or a stage that makes one (finetune, tune, fold).",
    ),
    "vector": (str, "A stage that makes a vector (extract, diff, import)."),
    "vectors": (
        None,  # built per field (see _schema)
        "Stages that make vectors (extract, diff, import).",
    ),
    "eval_models": (
        list[str] | dict[str, str],
        "Models to compare: a list of model names, or LABEL: model name.",
    ),
    "steered": (list[SteeredRow], "Online steering rows: {model, vector, coefficient[, label]}."),
}


def _stage_model(kind: CommandKind) -> type[BaseModel]:
    """The pydantic model of a stage of ``kind``: its references, then the command's options."""
    fields: dict[str, Any] = {
        "kind": (Literal[kind.kind], Field(description=kind.summary)),
        "note": (str | None, Field(None, description="A sentence for the report.")),
    }
    for parameter, ref in kind.refs.items():
        kind_type, description = REF_TYPES[ref]
        if ref == "vectors":
            kind_type = Annotated[list[str], BeforeValidator(_as_list)]
        required = _is_required(kind, parameter)
        fields[parameter] = (
            kind_type if required else kind_type | None,
            Field(... if required else None, description=description),
        )
    for setting in settings_of(kind):
        required = setting.default is inspect.Parameter.empty
        default = ... if required else setting.default
        fields[setting.name] = (_field_type(setting), Field(default, description=setting.help))
    model = create_model(f"{kind.kind.capitalize()}Stage", __config__=STRICT, **fields)
    model.__doc__ = kind.summary
    return model


def _is_required(kind: CommandKind, parameter: str) -> bool:
    """Whether a reference must be given (the command has no default for it)."""
    signature = inspect.signature(kind.command)
    if parameter not in signature.parameters:
        return False
    default = signature.parameters[parameter].default
    if parameter == "model" and default == "default":
        return False  # 'default' is the embedded model: a model name is still clearer
    return default is inspect.Parameter.empty


@functools.cache
def stage_models() -> dict[str, type[BaseModel]]:
    """Stage kind -> its pydantic model."""
    return {name: _stage_model(kind) for name, kind in kinds().items()}


@functools.cache
def spec_model() -> type[BaseModel]:
    """The pydantic model of a whole spec."""
    stages = tuple(stage_models().values())
    stage_union = Annotated[Union[stages], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007

    class ExperimentSpec(BaseModel):
        """A steerlab experiment: models, and stages that use them and each other's outputs."""

        model_config = STRICT
        name: str | None = Field(None, description="The experiment's name (default: file name).")
        description: str | None = Field(None, description="What the experiment asks.")
        seed: int = Field(0, description="Every stage's seed unless the stage sets its own.")
        cost: Cost | None = Field(None, description="Expected time and memory of the run.")
        models: dict[str, str | ModelEntry] = Field(
            default_factory=dict,
            description="Model name -> source ('default', folder, .gguf, Hub id) or settings.",
        )
        stages: dict[str, stage_union] = Field(
            description="Stage name -> a stage (its kind and settings), run in dependency order."
        )

    return ExperimentSpec


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec (``steerlab schema``), for editors to complete and check."""
    schema = copy.deepcopy(spec_model().model_json_schema())
    # Text settings also take numbers and lists (``layers: 15``, ``coefficients: [-1, 0, 1]``)
    # and list settings one text; the schema says so. Rewritten here rather than given to
    # pydantic (WithJsonSchema), whose releases before 2.7 write each field's title and
    # default into the one dict they are given, so that fields leak into each other.
    for name, kind in kinds().items():
        properties = schema["$defs"][f"{name.capitalize()}Stage"]["properties"]
        for setting in settings_of(kind):
            if setting.annotation is str:
                _widen(properties[setting.name], "string", TEXT_SCHEMA["anyOf"])
            elif setting.annotation == list[str]:
                _widen(properties[setting.name], "array", TEXTS_SCHEMA["anyOf"])
        for parameter, ref in kind.refs.items():
            if ref == "vectors":
                _widen(properties[parameter], "array", TEXTS_SCHEMA["anyOf"])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "steerlab experiment spec"
    return schema


def _widen(prop: dict[str, Any], kind: str, alternatives: list[dict[str, Any]]) -> None:
    """Replace the ``{"type": kind}`` branch of a property's schema by ``alternatives``."""
    branches = prop.get("anyOf")
    if branches is None and prop.get("type") == kind:
        plain = {k: prop.pop(k) for k in ("type", "items") if k in prop}
        branches = [plain]
    if branches is None:
        return
    widened: list[dict[str, Any]] = []
    for branch in branches:
        widened.extend(copy.deepcopy(alternatives) if branch.get("type") == kind else [branch])
    prop["anyOf"] = widened


def parse_spec(located: LocatedYaml) -> Any:
    """Validate a located YAML document as a spec.

    Raises:
        SpecError: ``FILE:LINE: key.path: what is wrong`` for the first problem in file order
            (and how many more there are).
    """
    for section in ("models", "stages"):
        names = located.data.get(section)
        for name in names if isinstance(names, dict) else ():
            if not re.match(NAME_PATTERN, name):
                raise located.error((section, name), f"name {name!r}: use {NAME_HELP}")
    try:
        return spec_model().model_validate(located.data)
    except ValidationError as exc:
        raise _one_line(exc, located) from None


def read_spec(path: str | Path) -> tuple[Any, LocatedYaml]:
    """Load and validate the spec at ``path``: ``(the spec, the located YAML)``."""
    located = load_yaml(path)
    return parse_spec(located), located


def _one_line(exc: ValidationError, located: LocatedYaml) -> Exception:
    """The first validation error (in file order) as one ``FILE:LINE: key: message`` line."""
    problems = []
    for error in exc.errors():
        loc = _yaml_path(error["loc"], located.data)
        missing = error.get("type") == "missing"
        problems.append((located.line_of(loc), loc, _message(error, loc, located.data), missing))
    # A union (a model given as text or as settings) reports every branch: keep the problems
    # of the branch the YAML took, the deeper ones, over the branch's "should be a string".
    paths = [loc for _, loc, _, _ in problems]
    problems = [
        item
        for item in problems
        if not any(len(o) > len(item[1]) and o[: len(item[1])] == item[1] for o in paths)
    ]
    # A missing key has no line of its own (it takes its parent's): a misspelt key's "unknown
    # key (expected one of: ...)" comes first, since it says what the spelling should be.
    problems.sort(key=lambda item: (item[3], item[0], -len(item[1])))  # the deepest first
    _, loc, message, _ = problems[0]
    more = len(problems) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return located.error(loc, message + suffix)


def _yaml_path(loc: tuple[Any, ...], data: Any) -> tuple[str | int, ...]:
    """Pydantic's error location as a path in the YAML (without union and type tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        present = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if present:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _is_tag(part):
            path.append(part)  # a missing key: named, though it has no line of its own
            node = None
    return tuple(path)


def _is_tag(part: str) -> bool:
    """Whether a location part is pydantic's name of a union member or type, not a key."""
    return (
        part in kinds()
        or part in ("str", "int", "float", "bool")
        or "[" in part
        or part[:1].isupper()
    )


def _message(error: Any, loc: tuple[str | int, ...], data: Any) -> str:
    """Pydantic's message in the spec's words."""
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown key{_known_keys(loc, data)}"
    if kind == "missing":
        return "required key missing"
    if kind == "union_tag_invalid":
        return f"kind {error.get('input', {}).get('kind')!r} is not one of {', '.join(kinds())}"
    if kind == "union_tag_not_found":
        return f"a stage needs a kind: one of {', '.join(kinds())}"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    given = error.get("input")
    if given is not None and not isinstance(given, (dict, list)):
        message += f" (got {given!r})"
    return message


def _article(word: str) -> str:
    """ "an" before a vowel, else "a"."""
    return "an" if word[:1] in "aeiou" else "a"


def _known_keys(loc: tuple[str | int, ...], data: Any) -> str:
    """``" (expected one of ...)"`` for an unknown key of a stage or of the top level."""
    if len(loc) == 1:
        return f" (expected one of: {', '.join(spec_model().model_fields)})"
    if len(loc) == 3 and loc[0] == "stages":
        stage = data.get("stages", {}).get(loc[1])
        model = stage_models().get(str(stage.get("kind"))) if isinstance(stage, dict) else None
        if model is not None:
            kind = str(stage["kind"])
            keys = ", ".join(model.model_fields)
            return f" for {_article(kind)} {kind} stage (expected one of: {keys})"
    if len(loc) == 3 and loc[0] == "models":
        return f" (expected one of: {', '.join(ModelEntry.model_fields)})"
    return ""

"""The wire format: OpenAI request bodies (plus ``steering``) parsed and checked, and the
OpenAI-shaped error every bad request is answered with.

Parsing is strict, as OpenAI's own API is: a field of the wrong type, an unknown field, a
number that is not finite, is a 400 naming the field (``param``), never a guess.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ApiError(Exception):
    """A request the server refuses: HTTP ``status`` and an OpenAI-shaped JSON error body.

    Attributes:
        status: the HTTP status (4xx for the client's mistakes).
        message: one line saying what is wrong and, where it helps, what to do.
        type: OpenAI's error type (``invalid_request_error``, ``authentication_error``...).
        param: the request field at fault (``steering[0].vector``), or None.
        code: a short machine-readable code (``vector_not_found``), or None.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``, as OpenAI answers."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class SteeringBody(BaseModel):
    """One steering entry of a request, as sent."""

    model_config = _STRICT
    vector: str
    coefficient: float
    layers: int | str | list[int] | None = None
    operator: Literal["add", "ablate", "clamp"] = "add"
    positions: Literal["all", "prompt", "generated"] = "all"
    scale: Literal["norm", "unit", "vector"] | None = None
    normalize: bool | None = None
    scale_by_norm: bool | None = None


class TextPart(BaseModel):
    """A text part of a message's content list."""

    model_config = _STRICT
    type: Literal["text"]
    text: str


class MessageBody(BaseModel):
    """One chat message; ``developer`` is read as ``system``, as OpenAI does for older models."""

    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None


class StreamOptions(BaseModel):
    """``stream_options``: whether the last streamed chunk carries the usage."""

    model_config = _STRICT
    include_usage: bool = False


class _Common(BaseModel):
    model_config = _STRICT
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    # A 64-bit seed: a larger one would overflow the engine's generators (seed + row index).
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1)
    user: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    steering: SteeringBody | list[SteeringBody] | None = None


class ChatBody(_Common):
    """``POST /v1/chat/completions``."""

    messages: list[MessageBody] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class CompletionBody(_Common):
    """``POST /v1/completions``."""

    prompt: str | list[str]
    echo: bool = False
    logprobs: None = None
    suffix: None = None


@dataclass(frozen=True)
class Sampling:
    """How a request's rows pick tokens.

    Attributes:
        max_tokens: tokens to generate at most.
        temperature: 0 = greedy (argmax), else the softmax temperature.
        top_p: nucleus mass when sampling.
        seed: seed of each row's own generator (row ``i`` uses ``seed + i``), so a sampled
            answer does not depend on which other requests shared its batch.
        stop: strings that end the generation (not included in the text).
    """

    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: tuple[str, ...]


def read_json(raw: bytes) -> Any:
    """The body as JSON, or a 400 saying where it stops being JSON.

    The body must be UTF-8, as JSON on the network is (RFC 8259); ``json.loads`` of bytes
    would also take UTF-16 and UTF-32.
    """
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8 text", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column "
            f"{exc.colno}",
            code="invalid_json",
        ) from None


def _param(location: tuple[Any, ...]) -> str:
    """``("steering", 0, "layers")`` -> ``steering[0].layers``; union branches dropped."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"}):
            continue  # pydantic names the union branch it tried: not a field
        elif part in ("SteeringBody", "TextPart", "list", "function-after"):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


UNION_FIELDS = {
    "steering": 'a steering object {"vector": ..., "coefficient": ...} or a list of them',
    "stop": "a string or a list of strings",
    "prompt": "a string or a list of strings",
    "content": 'a string or a list of {"type": "text", "text": ...} parts',
    "layers": 'a layer number, a text such as "12-18", a list of layer numbers, or null',
}
"""What the fields that take one of several shapes accept, for the error that none fits."""


def _depth(param: str) -> int:
    return param.count(".") + param.count("[")


def parse_body(data: Any, kind: type[BaseModel]) -> Any:
    """``data`` as a ``kind`` body, or a 400 naming the field at fault.

    A field that takes one of several shapes (``steering``: an object or a list) fails once per
    shape; the deepest failure is the one that says what is wrong (``steering[0].coefficient``
    rather than "steering is not an object"), and where every shape fails at the field
    itself, the message lists the shapes it takes.
    """
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_body")
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        located = [(_param(tuple(error["loc"])), error) for error in exc.errors()]
        param, first = max(located, key=lambda item: _depth(item[0]))  # the first deepest
        shapes = sum(1 for where, _ in located if where == param)
        field = re.sub(r"\[\d+\]$", "", param).rsplit(".", 1)[-1]
        value = first.get("input")
        kind_ = first["type"]
        shown = json.dumps(value)[:80] if _jsonable(value) else repr(value)[:80]
        if kind_ == "extra_forbidden":
            message = f"{param}: unknown field (steerlab serve does not support it)"
        elif kind_ == "missing":
            message = f"{param}: required field missing"
        elif isinstance(value, float) and not math.isfinite(value):
            message = f"{param}: {value} is not a finite number"
        elif shapes > 1 and field in UNION_FIELDS:
            message = f"{param}: should be {UNION_FIELDS[field]} (got {shown})"
        elif kind_ in ("model_type", "dict_type"):
            message = f"{param}: should be a JSON object (got {shown})"
        else:
            message = f"{param}: {first['msg']} (got {shown})"
        raise ApiError(400, message, param=param, code="invalid_value") from None


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def stop_strings(stop: str | list[str] | None) -> tuple[str, ...]:
    """The stop strings of a request (at most 4, none empty, as OpenAI allows)."""
    values = [stop] if isinstance(stop, str) else list(stop or [])
    if len(values) > 4:
        raise ApiError(400, "stop: at most 4 stop strings", param="stop", code="invalid_value")
    if any(not value for value in values):
        raise ApiError(400, "stop: a stop string is empty", param="stop", code="invalid_value")
    return tuple(values)


def check_unsupported(body: _Common) -> None:
    """Refuse the OpenAI options that would be silently ignored otherwise."""
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(body, name)
        if value not in (None, 0, 0.0):
            raise ApiError(
                400, f"{name}: not supported (only 0)", param=name, code="unsupported_value"
            )
    if isinstance(body, CompletionBody) and body.echo:
        raise ApiError(400, "echo: not supported", param="echo", code="unsupported_value")


def message_text(message: MessageBody) -> dict[str, str]:
    """A message as the chat template takes it: role (``developer`` -> ``system``), text."""
    content = message.content
    text = content if isinstance(content, str) else "".join(part.text for part in content)
    role = "system" if message.role == "developer" else message.role
    return {"role": role, "content": text}


def steering_list(body: _Common) -> list[SteeringBody]:
    """The request's steering entries, in order (empty: plain generation)."""
    if body.steering is None:
        return []
    entries = body.steering if isinstance(body.steering, list) else [body.steering]
    if len(entries) > 8:
        raise ApiError(400, "steering: at most 8 entries", param="steering", code="invalid_value")
    return entries

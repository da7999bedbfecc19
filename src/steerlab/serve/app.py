"""The HTTP side of ``steerlab serve``: an OpenAI-compatible Starlette app over a
:class:`~steerlab.serve.engine.BatchEngine`, plus ``/v1/vectors`` and the playground at ``/``.

Requests are parsed and checked here, in the event loop, before anything is queued: a bad
request costs no model time and is answered 4xx with an OpenAI-shaped error. What is left for
the engine thread is rows of token ids and resolved steering.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import format_chat, needs_special_tokens
from steerlab.errors import SteerlabError
from steerlab.layers import find_layers
from steerlab.provenance import library_version
from steerlab.serve.catalog import VectorCatalog, shipped_vector_files
from steerlab.serve.config import ServeConfig
from steerlab.serve.engine import (
    BatchEngine,
    EngineStopped,
    Event,
    QueueFull,
    Row,
    Ticket,
    request_id,
)
from steerlab.serve.protocol import (
    ApiError,
    ChatBody,
    CompletionBody,
    Sampling,
    check_unsupported,
    message_text,
    parse_body,
    read_json,
    steering_list,
    stop_strings,
)
from steerlab.serve.resolve import resolve_steering

PLAYGROUND = "playground.html"
DISCONNECT_POLL_S = 0.25
"""How often a non-streaming request checks that its client is still there."""


class _State:
    """What the handlers share: the model's facts, the catalog, the engine, the limits."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        catalog: VectorCatalog,
        engine: BatchEngine,
        config: ServeConfig,
        model_name: str,
        num_layers: int,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.catalog = catalog
        self.engine = engine
        self.config = config
        self.model_name = model_name
        self.num_layers = num_layers
        self.created = int(time.time())
        config_max = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        self.max_positions = config_max if isinstance(config_max, int) else None


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _check_key(request: Request, state: _State) -> None:
    expected = state.config.api_key
    if not expected:
        return
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401,
            "missing or wrong API key: send 'Authorization: Bearer <key>'",
            code="invalid_api_key",
        )


async def _read_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length", "")
    too_large = ApiError(413, f"the request body is larger than {limit} bytes", code="too_large")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return read_json(b"".join(chunks))


def _prompt_ids(state: _State, text: str, param: str) -> list[int]:
    tokenizer = state.tokenizer
    ids = list(
        tokenizer(text, add_special_tokens=needs_special_tokens(tokenizer, text))["input_ids"]
    )
    if not ids:
        raise ApiError(400, f"{param}: the prompt is empty", param=param, code="empty_prompt")
    if len(ids) > state.config.max_prompt_tokens:
        raise ApiError(
            400,
            f"{param}: the prompt has {len(ids)} tokens; this server takes at most "
            f"{state.config.max_prompt_tokens}",
            param=param,
            code="context_length_exceeded",
        )
    return ids


def _sampling(state: _State, body: Any, longest_prompt: int) -> Sampling:
    asked = getattr(body, "max_completion_tokens", None) or body.max_tokens
    name = "max_completion_tokens" if getattr(body, "max_completion_tokens", None) else "max_tokens"
    room = None if state.max_positions is None else state.max_positions - longest_prompt
    if room is not None and room < 1:
        param = "messages" if isinstance(body, ChatBody) else "prompt"
        raise ApiError(
            400,
            f"{param}: the prompt ({longest_prompt} tokens) fills the model's context of "
            f"{state.max_positions}",
            param=param,
            code="context_length_exceeded",
        )
    # Unasked, the default shrinks to the context left: only an explicit max_tokens past it
    # is the client's mistake.
    max_tokens = asked or min(state.config.default_max_tokens, room or sys.maxsize)
    if max_tokens > state.config.max_tokens:
        raise ApiError(
            400,
            f"{name}: {max_tokens} is more than this server's limit of {state.config.max_tokens}",
            param=name,
            code="invalid_value",
        )
    if state.max_positions is not None and longest_prompt + max_tokens > state.max_positions:
        raise ApiError(
            400,
            f"{name}: the prompt ({longest_prompt} tokens) plus {max_tokens} new tokens pass the "
            f"model's context of {state.max_positions}",
            param=name,
            code="context_length_exceeded",
        )
    return Sampling(
        max_tokens=max_tokens,
        temperature=1.0 if body.temperature is None else float(body.temperature),
        top_p=1.0 if body.top_p is None else float(body.top_p),
        seed=secrets.randbelow(2**31) if body.seed is None else int(body.seed),
        stop=stop_strings(body.stop),
    )


def _check_model(state: _State, body: Any) -> None:
    """404 for a model this server does not serve (before anything else is looked at, as
    OpenAI answers), 400 for an option it would otherwise ignore."""
    if body.model != state.model_name:
        raise ApiError(
            404,
            f"model {body.model!r} is not served here (this server has {state.model_name!r})",
            param="model",
            code="model_not_found",
        )
    check_unsupported(body)


def _chat_prompt(state: _State, body: ChatBody) -> list[int]:
    messages = [message_text(m) for m in body.messages]
    try:
        text = format_chat(state.tokenizer, messages)
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "jinja2":
            raise
        # The model's template refuses these messages (a role it does not know...).
        raise ApiError(
            400,
            f"messages: the model's chat template refuses them: {exc}",
            param="messages",
            code="invalid_messages",
        ) from None
    return _prompt_ids(state, text, "messages")


def _check_count(state: _State, body: Any, prompts: int) -> None:
    """400 for more completions (prompts x n) than one batch takes, before any tokenizing."""
    count = prompts * body.n
    if count > state.config.max_batch_size:
        param = "n" if body.n > 1 else "prompt"
        raise ApiError(
            400,
            f"{param}: {count} completions in one request; this server decodes at most "
            f"{state.config.max_batch_size} together",
            param=param,
            code="invalid_value",
        )


def _rows(state: _State, body: Any, prompts: Sequence[list[int]], ticket: Ticket) -> list[Row]:
    steering = resolve_steering(
        steering_list(body),
        state.catalog,
        state.num_layers,
        single=not isinstance(body.steering, list),
    )
    sampling = _sampling(state, body, max(len(ids) for ids in prompts))
    return [
        Row(list(ids), steering, sampling, number * body.n + copy, ticket)
        for number, ids in enumerate(prompts)
        for copy in range(body.n)
    ]


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


class _Exchange:
    """One request's rows in flight: the queue their events arrive in, and the response."""

    def __init__(self, state: _State, request: Request, chat: bool) -> None:
        self.state = state
        self.request = request
        self.chat = chat
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def emit(event: Event) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: the server is stopping
                loop.call_soon_threadsafe(self.events.put_nowait, event)

        self.ticket = Ticket(emit)
        self.id = request_id("chatcmpl" if chat else "cmpl")
        self.created = int(time.time())

    def submit(self, rows: list[Row]) -> None:
        try:
            self.state.engine.submit(rows)
        except QueueFull as exc:
            raise ApiError(
                429, f"the server is busy: {exc}", type="rate_limit_error", code="queue_full"
            ) from None
        except EngineStopped as exc:
            raise ApiError(503, str(exc), type="server_error", code="engine_stopped") from None

    def _chunk(self, index: int, text: str | None, reason: str | None, role: bool = False) -> Any:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {"index": index, "delta": delta}
        else:
            choice = {"index": index, "text": text or ""}
        choice.update(finish_reason=reason, logprobs=None)
        return {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.state.model_name,
            "choices": [choice],
        }

    async def stream(self, count: int, usage: bool, prompt_tokens: int) -> AsyncIterator[str]:
        """The SSE events of the request's rows, then ``[DONE]``; frees the rows on exit."""
        try:
            if self.chat:
                for index in range(count):
                    yield _sse(self._chunk(index, None, None, role=True))
            finished = 0
            generated = 0
            while finished < count:
                event = await self.events.get()
                if event[0] == "delta":
                    yield _sse(self._chunk(event[1], event[2], None))
                elif event[0] == "finish":
                    finished += 1
                    generated += len(event[3])
                    yield _sse(self._chunk(event[1], None, event[2]))
                else:
                    yield _sse(ApiError(500, event[1], type="server_error").body())
                    break
            if usage and finished == count:
                yield _sse(
                    {
                        "id": self.id,
                        "object": "chat.completion.chunk" if self.chat else "text_completion",
                        "created": self.created,
                        "model": self.state.model_name,
                        "choices": [],
                        "usage": _usage(prompt_tokens, generated),
                    }
                )
            yield "data: [DONE]\n\n"
        finally:
            self.ticket.cancel()  # a client that left frees its rows; after the end, a no-op

    async def collect(self, count: int) -> tuple[list[str], list[str], int]:
        """Every row's text and finish reason; gives up (freeing the rows) if the client
        disconnects."""
        texts = [""] * count
        reasons = [""] * count
        finished = generated = 0
        loop = asyncio.get_running_loop()
        # The client is looked for every DISCONNECT_POLL_S whether or not tokens arrive: a row
        # that keeps decoding must not keep a departed client's place in its batch.
        check_at = loop.time() + DISCONNECT_POLL_S
        try:
            while finished < count:
                event: Event | None = None
                with contextlib.suppress(asyncio.TimeoutError):
                    event = await asyncio.wait_for(
                        self.events.get(), timeout=max(check_at - loop.time(), 0.001)
                    )
                if loop.time() >= check_at:
                    if await self.request.is_disconnected():
                        raise ApiError(499, "the client disconnected")
                    check_at = loop.time() + DISCONNECT_POLL_S
                if event is None:
                    continue
                if event[0] == "delta":
                    texts[event[1]] += event[2]
                elif event[0] == "finish":
                    reasons[event[1]] = event[2]
                    finished += 1
                    generated += len(event[3])
                else:
                    raise ApiError(500, event[1], type="server_error")
        finally:
            self.ticket.cancel()
        return texts, reasons, generated


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


async def _complete(request: Request, chat: bool) -> Response:
    state: _State = request.app.state.steerlab
    _check_key(request, state)
    data = await _read_body(request, state.config.max_body_bytes)
    body: Any = parse_body(data, ChatBody if chat else CompletionBody)
    _check_model(state, body)
    if chat:
        _check_count(state, body, 1)
        prompts = [_chat_prompt(state, body)]
    else:
        raw = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        if not raw:
            raise ApiError(400, "prompt: the list is empty", param="prompt", code="empty_prompt")
        _check_count(state, body, len(raw))
        single = isinstance(body.prompt, str)
        prompts = [
            _prompt_ids(state, text, "prompt" if single else f"prompt[{i}]")
            for i, text in enumerate(raw)
        ]
    exchange = _Exchange(state, request, chat)
    rows = _rows(state, body, prompts, exchange.ticket)
    # Each prompt counts once, however many completions (n) share it, as OpenAI counts.
    prompt_tokens = sum(len(ids) for ids in prompts)
    exchange.submit(rows)
    steering = [entry.describe() for entry in rows[0].steering]
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            exchange.stream(len(rows), usage, prompt_tokens),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    texts, reasons, generated = await exchange.collect(len(rows))
    choices: list[dict[str, Any]] = []
    for index, (text, reason) in enumerate(zip(texts, reasons, strict=True)):
        choice: dict[str, Any] = {"index": index, "finish_reason": reason, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        choices.append(choice)
    return JSONResponse(
        {
            "id": exchange.id,
            "object": "chat.completion" if chat else "text_completion",
            "created": exchange.created,
            "model": state.model_name,
            "system_fingerprint": f"steerlab-{library_version()}",
            "choices": choices,
            "usage": _usage(prompt_tokens, generated),
            "steering": steering,
        }
    )


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    return await _complete(request, chat=True)


async def completions(request: Request) -> Response:
    """``POST /v1/completions``."""
    return await _complete(request, chat=False)


def _model_record(state: _State) -> dict[str, Any]:
    return {
        "id": state.model_name,
        "object": "model",
        "created": state.created,
        "owned_by": "steerlab",
    }


async def list_models(request: Request) -> Response:
    """``GET /v1/models``: the one served model."""
    state: _State = request.app.state.steerlab
    _check_key(request, state)
    return JSONResponse({"object": "list", "data": [_model_record(state)]})


async def retrieve_model(request: Request) -> Response:
    """``GET /v1/models/{model}``: the served model's record (``client.models.retrieve``)."""
    state: _State = request.app.state.steerlab
    _check_key(request, state)
    name = request.path_params["model"]
    if name != state.model_name:
        raise ApiError(
            404,
            f"model {name!r} is not served here (this server has {state.model_name!r})",
            param="model",
            code="model_not_found",
        )
    return JSONResponse(_model_record(state))


async def list_vectors(request: Request) -> Response:
    """``GET /v1/vectors``: the vectors on offer, with their metadata and per-layer norms."""
    state: _State = request.app.state.steerlab
    _check_key(request, state)
    return JSONResponse({"object": "list", "data": state.catalog.describe()})


async def health(request: Request) -> Response:
    """``GET /health``: the server is up; how many rows wait."""
    state: _State = request.app.state.steerlab
    if not state.engine.alive():
        return JSONResponse({"status": "engine stopped"}, status_code=503)
    return JSONResponse({"status": "ok", "waiting": state.engine.waiting()})


async def playground(request: Request) -> Response:
    """``GET /``: the playground page (one self-contained file)."""
    page = resources.files("steerlab.serve") / PLAYGROUND
    return HTMLResponse(page.read_text(encoding="utf-8"))


def _handlers() -> dict[Any, Callable[..., Any]]:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        text = {404: "no such route", 405: "method not allowed"}.get(exc.status_code, exc.detail)
        error = ApiError(exc.status_code, f"{request.method} {request.url.path}: {text}")
        return _error_response(error)

    async def server_error(request: Request, exc: Exception) -> Response:
        kind = "invalid_request_error" if isinstance(exc, SteerlabError) else "server_error"
        status = 400 if isinstance(exc, SteerlabError) else 500
        return _error_response(ApiError(status, f"{type(exc).__name__}: {exc}", type=kind))

    return {ApiError: api_error, HTTPException: http_error, Exception: server_error}


def create_app(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    *,
    vectors: Sequence[str | Path] = (),
    model_name: str = "default",
    config: ServeConfig | None = None,
    layers_path: str | None = None,
    shipped_vectors: bool = True,
) -> Starlette:
    """The ``steerlab serve`` app for one loaded model: run it with any ASGI server (uvicorn).

    Args:
        model: a transformers causal LM (the engine thread alone runs it).
        tokenizer: its tokenizer.
        vectors: folders (their ``*.safetensors`` vectors) and vector files to offer, by file
            stem.
        model_name: the id clients send as ``model``.
        config: limits and the API key (default :class:`ServeConfig`).
        layers_path: dotted path of the decoder block list, if it cannot be found.
        shipped_vectors: also offer the vectors shipped with steerlab (``happy_sad``) when
            they fit the model (the embedded one) and no given vector has their name.

    Raises:
        VectorError: a vector source that does not exist, or two vectors with one name.
    """
    config = config or ServeConfig()
    catalog = VectorCatalog.load(vectors, model, tokenizer, layers_path=layers_path)
    if shipped_vectors:
        catalog.add_shipped(shipped_vector_files(), model, tokenizer, layers_path=layers_path)
    usable = {
        name: entry.vector
        for name, entry in catalog.entries.items()
        if entry.error is None and entry.vector is not None
    }
    engine = BatchEngine(model, tokenizer, usable, config, layers_path=layers_path)
    num_layers = len(find_layers(model, layers_path).blocks)
    state = _State(model, tokenizer, catalog, engine, config, model_name, num_layers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        engine.close()

    app = Starlette(
        routes=[
            Route("/", playground, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
            Route("/v1/vectors", list_vectors, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
        ],
        exception_handlers=_handlers(),
        lifespan=lifespan,
    )
    app.state.steerlab = state
    return app

"""A catalogue of bad requests to ``steerlab serve``, each sent over a real socket to one live
server on a tiny llama.

Each case asserts the contract for a bad request: the HTTP status, the OpenAI error shape
``{"error": {"message", "type", "param", "code"}}`` and nothing else, the field at fault in
``param``, the code, and a message of one line. After the whole table a good request still
gets its answer: no bad request takes the server (or its engine thread) down.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live import live_server, request
from served import FOREIGN, MODEL, PARTIAL, VECTOR, chat_body, tiny_llama, vector_folder

from steerlab.serve import ServeConfig, create_app

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
LIMITS = ServeConfig(
    max_tokens=300,
    default_max_tokens=16,
    max_prompt_tokens=40,
    max_batch_size=4,
    max_queue=8,
    batch_window_ms=0,
    max_body_bytes=2048,
)
LONG = "Tell me about the sea and the wind and the old ships and the long grey waves. " * 3


def steer(**entry: Any) -> dict[str, Any]:
    """A chat body steered by one entry (``vector`` and ``coefficient`` filled in)."""
    return chat_body(steering={"vector": VECTOR, "coefficient": 1.0, **entry})


def raw(text: str) -> bytes:
    return text.encode()


def with_literal(field: str) -> bytes:
    """A good chat body plus ``field``, raw JSON text (for literals such as ``NaN``)."""
    return raw("{" + GOOD + ", " + field + "}")


def say(content: Any, role: str = "user") -> dict[str, Any]:
    """A chat body with one message."""
    return chat_body(messages=[{"role": role, "content": content}])


def complete(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": "The sea is", "max_tokens": 4, "temperature": 0, **fields}


GOOD = json.dumps(chat_body())[1:-1]  # the good fields, to put bad literals beside
IV, LAYERS, CONTEXT = "invalid_value", "invalid_layers", "context_length_exceeded"

# (id, path, body (dict) or raw bytes, status, param, code)
CASES: list[tuple[str, str, Any, int, str | None, str | None]] = [
    # steering: against the catalog and the model
    ("unknown vector", CHAT, steer(vector="nope"), 400, "steering.vector", "vector_not_found"),
    (
        "unknown vector in a list",
        CHAT,
        chat_body(
            steering=[{"vector": VECTOR, "coefficient": 1}, {"vector": "x", "coefficient": 1}]
        ),
        400,
        "steering[1].vector",
        "vector_not_found",
    ),
    (
        "vector of another model",
        CHAT,
        steer(vector=FOREIGN),
        400,
        "steering.vector",
        "vector_incompatible",
    ),
    ("layer out of range", CHAT, steer(layers=9), 400, "steering.layers", LAYERS),
    ("layer range out of range", CHAT, steer(layers="2-9"), 400, "steering.layers", LAYERS),
    ("layers as words", CHAT, steer(layers="middle"), 400, "steering.layers", LAYERS),
    (
        "layers the vector lacks",
        CHAT,
        steer(vector=PARTIAL, layers=[3]),
        400,
        "steering.layers",
        LAYERS,
    ),
    (
        "scale against normalize",
        CHAT,
        steer(scale="unit", normalize=False, scale_by_norm=True),
        400,
        "steering",
        IV,
    ),
    (
        "nine steering entries",
        CHAT,
        chat_body(steering=[{"vector": VECTOR, "coefficient": 0}] * 9),
        400,
        "steering",
        IV,
    ),
    # numbers that are not finite (Python's json reads these literals)
    (
        "NaN coefficient",
        CHAT,
        with_literal('"steering": {"vector": "honesty", "coefficient": NaN}'),
        400,
        "steering.coefficient",
        IV,
    ),
    (
        "Infinity coefficient",
        CHAT,
        with_literal('"steering": {"vector": "honesty", "coefficient": Infinity}'),
        400,
        "steering.coefficient",
        IV,
    ),
    (
        "1e999 coefficient",
        CHAT,
        with_literal('"steering": {"vector": "honesty", "coefficient": 1e999}'),
        400,
        "steering.coefficient",
        IV,
    ),
    ("-Infinity top_p", CHAT, with_literal('"top_p": -Infinity'), 400, "top_p", IV),
    # not JSON, not an object
    ("malformed JSON", CHAT, raw('{"model": "tiny-llama",'), 400, None, "invalid_json"),
    ("not UTF-8", CHAT, b'{"model": "\xff"}', 400, None, "invalid_json"),
    ("empty body", CHAT, b"", 400, None, "invalid_json"),
    ("a list body", CHAT, raw("[1, 2]"), 400, None, "invalid_body"),
    ("a string body", COMPLETIONS, raw('"hello"'), 400, None, "invalid_body"),
    # wrong types and values
    ("max_tokens a string", CHAT, chat_body(max_tokens="5"), 400, "max_tokens", IV),
    ("max_tokens true", CHAT, chat_body(max_tokens=True), 400, "max_tokens", IV),
    ("max_tokens 5.5", CHAT, chat_body(max_tokens=5.5), 400, "max_tokens", IV),
    ("max_tokens 0", CHAT, chat_body(max_tokens=0), 400, "max_tokens", IV),
    ("temperature hot", CHAT, chat_body(temperature="hot"), 400, "temperature", IV),
    ("temperature 3", CHAT, chat_body(temperature=3), 400, "temperature", IV),
    ("top_p 0", CHAT, chat_body(top_p=0), 400, "top_p", IV),
    ("seed a string", CHAT, chat_body(seed="x"), 400, "seed", IV),
    ("seed past 64 bits", CHAT, chat_body(seed=2**64, temperature=1), 400, "seed", IV),
    ("seed below 64 bits", CHAT, chat_body(seed=-(2**63) - 1, temperature=1), 400, "seed", IV),
    ("stream yes", CHAT, chat_body(stream="yes"), 400, "stream", IV),
    (
        "include_usage yes",
        CHAT,
        chat_body(stream_options={"include_usage": "yes"}),
        400,
        "stream_options.include_usage",
        IV,
    ),
    ("messages not a list", CHAT, chat_body(messages="hi"), 400, "messages", IV),
    ("empty messages", CHAT, chat_body(messages=[]), 400, "messages", IV),
    ("unknown role", CHAT, say("x", role="robot"), 400, "messages[0].role", IV),
    (
        "content missing",
        CHAT,
        chat_body(messages=[{"role": "user"}]),
        400,
        "messages[0].content",
        IV,
    ),
    ("content a number", CHAT, say(5), 400, "messages[0].content", IV),
    ("coefficient big", CHAT, steer(coefficient="big"), 400, "steering.coefficient", IV),
    (
        "coefficient missing",
        CHAT,
        chat_body(steering={"vector": VECTOR}),
        400,
        "steering.coefficient",
        IV,
    ),
    (
        "coefficient big in a list",
        CHAT,
        chat_body(steering=[{"vector": VECTOR, "coefficient": "big"}]),
        400,
        "steering[0].coefficient",
        IV,
    ),
    ("steering a string", CHAT, chat_body(steering="honesty"), 400, "steering", IV),
    ("model missing", CHAT, {"messages": [{"role": "user", "content": "hi"}]}, 400, "model", IV),
    ("unknown field", CHAT, chat_body(tools=[]), 400, "tools", IV),
    ("unknown steering field", CHAT, steer(strength=2), 400, "steering.strength", IV),
    ("unknown operator", CHAT, steer(operator="multiply"), 400, "steering.operator", IV),
    ("unknown positions", CHAT, steer(positions="some"), 400, "steering.positions", IV),
    ("unknown scale", CHAT, steer(scale="huge"), 400, "steering.scale", IV),
    (
        "presence_penalty 1",
        CHAT,
        chat_body(presence_penalty=1),
        400,
        "presence_penalty",
        "unsupported_value",
    ),
    (
        "frequency_penalty -1",
        CHAT,
        chat_body(frequency_penalty=-1),
        400,
        "frequency_penalty",
        "unsupported_value",
    ),
    ("echo", COMPLETIONS, complete(echo=True), 400, "echo", "unsupported_value"),
    # limits
    ("max_tokens above the limit", CHAT, chat_body(max_tokens=301), 400, "max_tokens", IV),
    (
        "max_completion_tokens above the limit",
        CHAT,
        chat_body(max_completion_tokens=301),
        400,
        "max_completion_tokens",
        IV,
    ),
    ("past the model's context", CHAT, chat_body(max_tokens=250), 400, "max_tokens", CONTEXT),
    ("prompt too long", CHAT, say(LONG), 400, "messages", CONTEXT),
    ("completion prompt too long", COMPLETIONS, complete(prompt=LONG), 400, "prompt", CONTEXT),
    (
        "second prompt too long",
        COMPLETIONS,
        complete(prompt=["Hi", LONG]),
        400,
        "prompt[1]",
        CONTEXT,
    ),
    ("empty prompt", COMPLETIONS, complete(prompt=""), 400, "prompt", "empty_prompt"),
    ("empty prompt list", COMPLETIONS, complete(prompt=[]), 400, "prompt", "empty_prompt"),
    ("prompt a number", COMPLETIONS, complete(prompt=5), 400, "prompt", IV),
    ("n too large", CHAT, chat_body(n=5), 400, "n", IV),
    (
        "n times prompts too large",
        COMPLETIONS,
        complete(prompt=["a", "b", "c"], n=2),
        400,
        "n",
        IV,
    ),
    ("too many prompts", COMPLETIONS, complete(prompt=["a"] * 5), 400, "prompt", IV),
    (
        "too many prompts, one too long",  # counted before the prompts are tokenized
        COMPLETIONS,
        complete(prompt=[LONG] * 5),
        400,
        "prompt",
        IV,
    ),
    ("n 0", CHAT, chat_body(n=0), 400, "n", IV),
    ("5 stop strings", CHAT, chat_body(stop=["a", "b", "c", "d", "e"]), 400, "stop", IV),
    ("an empty stop string", CHAT, chat_body(stop=[""]), 400, "stop", IV),
    ("stop a number", CHAT, chat_body(stop=5), 400, "stop", IV),
    # model, routes, methods, size
    ("unknown model", CHAT, chat_body(model="gpt-4o"), 404, "model", "model_not_found"),
    (
        "unknown model, completions",
        COMPLETIONS,
        complete(model="gpt-4o"),
        404,
        "model",
        "model_not_found",
    ),
    (
        "unknown model before its prompt",
        CHAT,
        chat_body(model="x", messages=[{"role": "user", "content": LONG}]),
        404,
        "model",
        "model_not_found",
    ),
    ("unknown route", "/v1/embeddings", {"model": MODEL, "input": "x"}, 404, None, None),
    ("body too large", CHAT, say("x" * 3000), 413, None, "too_large"),
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model, tokenizer = tiny_llama()
    folder = vector_folder(Path(tmp_path_factory.mktemp("bad")), model, tokenizer)
    app = create_app(model, tokenizer, vectors=[folder], model_name=MODEL, config=LIMITS)
    with live_server(app) as url:
        yield url


def assert_error(status: int, answer: Any, expected_status: int) -> dict[str, Any]:
    """The error of an OpenAI-shaped error answer, checked."""
    assert status == expected_status, answer
    assert isinstance(answer, dict) and set(answer) == {"error"}, answer
    error = answer["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"].strip()
    assert "\n" not in error["message"], error["message"]
    assert len(error["message"]) < 300, error["message"]
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize(
    ("path", "body", "status", "param", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_a_bad_request_is_refused_with_an_openai_error(
    base: str, path: str, body: Any, status: int, param: str | None, code: str | None
) -> None:
    if isinstance(body, bytes):
        got, answer = request(base, path, raw=body, method="POST")
    else:
        got, answer = request(base, path, body)
    error = assert_error(got, answer, status)
    assert (error["param"], error["code"]) == (param, code), error["message"]
    if param is not None:
        assert error["message"].startswith(param.split("[")[0].split(".")[0]), error["message"]


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS])
def test_get_on_a_post_route_is_405(base: str, path: str) -> None:
    error = assert_error(*request(base, path, method="GET"), 405)
    assert path in error["message"]


def test_post_on_a_get_route_is_405(base: str) -> None:
    assert_error(*request(base, "/v1/models", {}, method="POST"), 405)


def test_a_chunked_body_past_the_limit_is_413(base: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    pieces = [b'{"model": "' + b"x" * 1000 + b'"'] * 3 + [b"}"]  # no Content-Length to go by
    connection.request("POST", CHAT, body=iter(pieces), encode_chunked=True)
    response = connection.getresponse()
    assert_error(response.status, json.loads(response.read()), 413)
    connection.close()


def test_messages_the_chat_template_refuses_are_a_400(tmp_path: Path) -> None:
    model, tokenizer = tiny_llama()
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{{ m['content'] }}{% endfor %}"
    )
    app = create_app(model, tokenizer, model_name=MODEL, config=LIMITS)
    system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    with live_server(app) as url:
        error = assert_error(*request(url, CHAT, chat_body(messages=system)), 400)
        assert (error["param"], error["code"]) == ("messages", "invalid_messages")
        assert "System role not supported" in error["message"]
        assert request(url, CHAT, chat_body(max_tokens=3))[0] == 200


def test_the_server_still_answers_after_every_bad_request(base: str) -> None:
    status, answer = request(base, CHAT, chat_body(1.0, max_tokens=5))
    assert status == 200, answer
    assert answer["usage"]["completion_tokens"] == 5
    assert request(base, "/health")[1] == {"status": "ok", "waiting": 0}

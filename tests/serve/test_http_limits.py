"""``steerlab serve``'s limits over real sockets, each on a fresh tiny llama: the API key, a
full queue answering 429, clients that leave freeing their rows, a failing batch, and
concurrent requests sharing (or not) a batch."""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
from live import request
from served import (
    MODEL,
    VECTOR,
    chat_body,
    ok,
    serving,
    stream_events,
    tiny_llama,
    vector_folder,
    wait_for,
)

from steerlab.serve import ServeConfig

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tokenizer = tiny_llama()
    return vector_folder(tmp_path_factory.mktemp("limits"), model, tokenizer)


# -- API key, full queue ---------------------------------------------------------------


def test_an_api_key_guards_the_api_but_not_the_page(vectors: Path) -> None:
    with serving(vectors, ServeConfig(api_key="k", batch_window_ms=0)) as (base, _):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k"}):
            for path, body in (("/v1/models", None), (CHAT, chat_body()), ("/v1/vectors", None)):
                status, answer = request(base, path, body, headers=headers)
                assert status == 401, (path, headers)
                assert set(answer["error"]) == {"message", "type", "param", "code"}
                assert answer["error"]["type"] == "invalid_request_error"  # as OpenAI answers
                assert answer["error"]["code"] == "invalid_api_key"
        key = {"Authorization": "Bearer k"}
        assert request(base, "/v1/models", headers=key)[0] == 200
        assert ok(base, CHAT, chat_body(1.0), headers=key)["choices"]
        assert request(base, "/")[0] == 200
        assert request(base, "/health")[0] == 200
        client = openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
        client = openai.OpenAI(base_url=base + "/v1", api_key="k", max_retries=0)
        assert [model.id for model in client.models.list()] == [MODEL]


def test_a_full_queue_answers_429_and_the_others_complete(vectors: Path) -> None:
    config = ServeConfig(max_queue=1, max_batch_size=1, max_batches=1, batch_window_ms=0)
    with serving(vectors, config) as (base, app):
        engine = app.state.steerlab.engine
        decoding, gate = threading.Event(), threading.Event()
        step = engine._step

        def held(batch: Any) -> bool:  # the first batch's steps wait for the gate
            decoding.set()
            gate.wait(60)
            return bool(step(batch))

        engine._step = held
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(request, base, CHAT, chat_body(1.0, max_tokens=50))
            assert decoding.wait(30)
            assert engine.stats["batches"] == 1 and engine.waiting() == 0
            second = pool.submit(request, base, CHAT, chat_body(-1.0, max_tokens=5))
            wait_for(lambda: engine.waiting() == 1, "the second request waits")
            status, answer = request(base, CHAT, chat_body(0.5))
            assert status == 429, answer
            assert answer["error"]["type"] == "rate_limit_error"
            assert answer["error"]["code"] == "queue_full"
            assert "limit is 1" in answer["error"]["message"]
            engine._step = step
            gate.set()
            assert first.result()[0] == 200 and second.result()[0] == 200
            assert first.result()[1]["usage"]["completion_tokens"] == 50
        assert ok(base, CHAT, chat_body(0.5))["choices"]


# -- clients that leave ------------------------------------------------------------------------


def slowed(app: Any) -> Any:
    """The app's engine, 10 ms slower per generated token (so a long request is still
    decoding when its client leaves, however fast the machine)."""
    engine = app.state.steerlab.engine
    advance = engine._advance

    def slow_advance(row: Any, token: int) -> bool:
        time.sleep(0.01)
        return bool(advance(row, token))

    engine._advance = slow_advance
    return engine


def open_request(base: str, body: dict[str, Any]) -> http.client.HTTPConnection:
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("POST", CHAT, json.dumps(body), {"Content-Type": "application/json"})
    return connection


def test_a_client_that_leaves_mid_stream_frees_its_row(vectors: Path) -> None:
    with serving(vectors, ServeConfig(batch_window_ms=0)) as (base, app):
        engine = slowed(app)
        connection = open_request(base, chat_body(1.0, max_tokens=200, stream=True))
        response = connection.getresponse()
        assert response.status == 200
        assert response.readline().startswith(b"data: ")
        # Leave once the row decodes: a row whose client left while it still waited is
        # dropped from the queue, not counted.
        wait_for(lambda: engine.stats["steps"] >= 3, "the row decodes")
        connection.close()
        wait_for(lambda: engine.stats["cancelled"] == 1, "the row is dropped")
        assert engine.stats["steps"] < 150, engine.stats  # it stopped early
        started = time.monotonic()
        assert ok(base, CHAT, chat_body(1.0, max_tokens=5))["usage"]["completion_tokens"] == 5
        assert time.monotonic() - started < 30
        assert engine.waiting() == 0
        assert request(base, "/health")[1]["waiting"] == 0


def test_a_client_that_leaves_a_plain_request_frees_its_row(vectors: Path) -> None:
    with serving(vectors, ServeConfig(batch_window_ms=0)) as (base, app):
        engine = slowed(app)
        connection = open_request(base, chat_body(1.0, max_tokens=200))
        wait_for(lambda: engine.stats["steps"] >= 3, "the row decodes")
        connection.close()
        wait_for(lambda: engine.stats["cancelled"] == 1, "the row is dropped")
        assert engine.stats["steps"] < 150, engine.stats
        assert ok(base, CHAT, chat_body(1.0, max_tokens=5))["usage"]["completion_tokens"] == 5
        assert engine.waiting() == 0


# -- a failing batch ---------------------------------------------------------------------------


def test_a_failing_batch_is_a_500_or_an_error_event_and_the_server_goes_on(vectors: Path) -> None:
    with serving(vectors, ServeConfig(batch_window_ms=0)) as (base, app):
        engine = app.state.steerlab.engine
        step = engine._step

        def broken(batch: Any) -> bool:
            raise RuntimeError("out of cheese")

        engine._step = broken
        status, answer = request(base, CHAT, chat_body(1.0))
        assert status == 500, answer
        assert answer["error"]["type"] == "server_error"
        assert "out of cheese" in answer["error"]["message"]
        _, events = stream_events(base, CHAT, chat_body(1.0))
        assert events[-1] == "[DONE]"
        assert events[-2]["error"]["type"] == "server_error"
        assert "out of cheese" in events[-2]["error"]["message"]
        assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        engine._step = step
        assert ok(base, CHAT, chat_body(1.0))["usage"]["completion_tokens"] == 12


# -- dynamic batching --------------------------------------------------------------------------


def test_concurrent_requests_share_one_batch_and_each_keeps_its_text(vectors: Path) -> None:
    coefficients = [-2.0, 0.0, 1.0, 3.0]
    with serving(vectors, ServeConfig(batch_window_ms=300)) as (base, app):
        engine = app.state.steerlab.engine
        with ThreadPoolExecutor(len(coefficients)) as pool:
            answers = list(pool.map(lambda c: ok(base, CHAT, chat_body(c)), coefficients))
        assert engine.stats["largest_batch"] == 4 and engine.stats["batches"] == 1
        alone = [ok(base, CHAT, chat_body(c)) for c in coefficients]
        assert engine.stats["batches"] == 5
    texts = [answer["choices"][0]["message"]["content"] for answer in answers]
    assert texts == [answer["choices"][0]["message"]["content"] for answer in alone]
    assert [answer["steering"][0]["coefficient"] for answer in answers] == coefficients
    assert len(set(texts)) == 4


def test_requests_that_cannot_share_a_batch_are_decoded_apart(vectors: Path) -> None:
    bodies = [
        chat_body(steering={"vector": VECTOR, "coefficient": 2.0, "layers": [1]}),
        chat_body(steering={"vector": VECTOR, "coefficient": 2.0, "layers": [2]}),
        chat_body(steering={"vector": VECTOR, "coefficient": 2.0, "layers": [1]}),
        chat_body(),
    ]
    with serving(vectors, ServeConfig(batch_window_ms=300)) as (base, app):
        engine = app.state.steerlab.engine
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda body: ok(base, CHAT, body), bodies))
        assert engine.stats["rows"] == 4 and engine.stats["batches"] == 3
        assert engine.stats["largest_batch"] == 2  # the two at layer 1
        alone = [ok(base, CHAT, body) for body in bodies]
    texts = [answer["choices"][0]["message"]["content"] for answer in answers]
    assert texts == [answer["choices"][0]["message"]["content"] for answer in alone]
    assert texts[0] == texts[2] != texts[1]

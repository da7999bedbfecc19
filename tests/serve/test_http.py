"""``steerlab serve`` over real sockets: a uvicorn server in a thread on a tiny llama, asked with
the standard library and with the official ``openai`` client. Listings; greedy steered answers
equal ``steerlab.generate``'s; usage, n, stop strings; streaming gives the same text as a plain
answer. (Limits, clients that leave and batching: test_http_limits.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from live import live_server, request
from served import (
    FOREIGN,
    MODEL,
    PARTIAL,
    PROMPT,
    VECTOR,
    chat_body,
    clean,
    ok,
    serving,
    stream_events,
    tiny_llama,
    vector_folder,
)

from conftest import make_model
from steerlab.chat import format_chat, messages_for
from steerlab.data.pairs import builtin_pairs
from steerlab.extract import extract
from steerlab.generate import generate
from steerlab.serve import ServeConfig, create_app

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tokenizer = tiny_llama()
    return vector_folder(tmp_path_factory.mktemp("serve"), model, tokenizer)


@pytest.fixture(scope="module")
def served(vectors: Path) -> Iterator[tuple[str, Any]]:
    """One server for the module's plain tests (no batching window: answers come at once)."""
    with serving(vectors, ServeConfig(batch_window_ms=0)) as server:
        yield server


def catalog_vector(app: Any, name: str = VECTOR) -> Any:
    return app.state.steerlab.catalog.get(name).vector


# -- listing -----------------------------------------------------------------------------------


def test_models_lists_the_served_model(served) -> None:
    base, _ = served
    status, answer = request(base, "/v1/models")
    assert status == 200
    assert answer["object"] == "list"
    (record,) = answer["data"]
    assert record["id"] == MODEL and record["object"] == "model"
    assert record["owned_by"] == "steerlab" and isinstance(record["created"], int)


def test_vectors_list_metadata_norms_and_defaults(served) -> None:
    base, app = served
    status, answer = request(base, "/v1/vectors")
    assert status == 200 and answer["object"] == "list"
    records = {record["id"]: record for record in answer["data"]}
    assert sorted(records) == sorted([VECTOR, PARTIAL, FOREIGN])
    record = records[VECTOR]
    assert record["object"] == "steering_vector" and record["compatible"] is True
    assert record["error"] is None
    assert record["method"] == "mean_diff" and record["model_type"] == "llama"
    assert record["num_layers"] == 4 and record["hidden_size"] == 48
    assert record["n_examples"] == 6 and record["layers"] == [0, 1, 2, 3]
    vector = catalog_vector(app)
    assert [norm["layer"] for norm in record["layer_norms"]] == [0, 1, 2, 3]
    for norm in record["layer_norms"]:
        assert norm["norm"] == pytest.approx(float(vector[norm["layer"]].norm()))
        assert norm["activation_norm"] > 0  # measured at start: scale "norm" needs them
    assert record["default_layers"] == "2"  # the middle of 4 layers
    assert record["default_scale"] == "norm"
    assert record["suggested_coefficients"] == [-0.05, 0.0, 0.05]
    assert records[PARTIAL]["layers"] == [1, 2] and records[PARTIAL]["default_layers"] == "2"


def test_a_vector_of_another_architecture_is_listed_incompatible_and_refused(served) -> None:
    base, _ = served
    records = {record["id"]: record for record in request(base, "/v1/vectors")[1]["data"]}
    foreign = records[FOREIGN]
    assert foreign["compatible"] is False
    assert "hidden size 32" in foreign["error"] and "tiny-gpt2" in foreign["error"]
    assert foreign["model_type"] == "gpt2" and "default_layers" not in foreign
    body = chat_body(steering={"vector": FOREIGN, "coefficient": 1.0})
    status, answer = request(base, CHAT, body)
    assert status == 400
    assert answer["error"]["code"] == "vector_incompatible"
    assert answer["error"]["param"] == "steering.vector"
    assert foreign["error"] in answer["error"]["message"]


def test_health_and_the_playground_page(served) -> None:
    base, _ = served
    assert request(base, "/health") == (200, {"status": "ok", "waiting": 0})
    status, page = request(base, "/")
    assert status == 200 and isinstance(page, str)
    assert page.lstrip().lower().startswith("<!doctype html") and 'id="run"' in page


# -- plain answers -----------------------------------------------------------------------------


def test_greedy_steered_chat_equals_generate(served) -> None:
    base, app = served
    model, tokenizer = app.state.steerlab.model, app.state.steerlab.tokenizer
    coefficients = [-2.0, 0.0, 2.0]
    answers = [ok(base, CHAT, chat_body(c)) for c in coefficients]
    expected = generate(
        model,
        tokenizer,
        [PROMPT],
        catalog_vector(app),
        coefficients,
        layers=[2],
        max_new_tokens=12,
        batch_size=1,
    )
    texts = [answer["choices"][0]["message"]["content"] for answer in answers]
    assert [clean(text) for text in texts] == [clean(g.text) for g in expected]
    assert len(set(texts)) == 3  # the coefficients did steer
    for answer in answers:
        assert answer["object"] == "chat.completion" and answer["model"] == MODEL
        assert answer["id"].startswith("chatcmpl-")
        (choice,) = answer["choices"]
        assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
        assert choice["finish_reason"] == "length"


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma2", "gpt_neox"])
def test_greedy_chat_equals_generate_on_several_architectures(arch: str, tmp_path: Path) -> None:
    model, tokenizer = make_model(arch)
    pairs = builtin_pairs("honesty", limit=6)
    extract(model, tokenizer, pairs, "mean_diff", "all", progress=False).save(
        tmp_path / "v.safetensors"
    )
    app = create_app(
        model, tokenizer, vectors=[tmp_path], model_name=arch, config=ServeConfig(batch_window_ms=0)
    )
    coefficients = [-3.0, 0.0, 3.0]
    with live_server(app) as base:
        answers = [
            ok(
                base,
                CHAT,
                chat_body(
                    model=arch,
                    max_tokens=10,
                    steering={"vector": "v", "coefficient": c, "layers": [1]},
                ),
            )
            for c in coefficients
        ]
    vector = app.state.steerlab.catalog.get("v").vector
    expected = generate(
        model, tokenizer, [PROMPT], vector, coefficients, layers=[1], max_new_tokens=10
    )
    for answer, generation in zip(answers, expected, strict=True):
        (choice,) = answer["choices"]
        assert clean(choice["message"]["content"]) == clean(generation.text), arch
        tokens = answer["usage"]["completion_tokens"]
        assert tokens == 10 if choice["finish_reason"] == "length" else tokens < 10


def test_steering_as_one_object_or_a_list_is_echoed_resolved(served) -> None:
    base, _ = served
    single = ok(base, CHAT, chat_body(1.5))
    listed = ok(base, CHAT, chat_body(steering=[{"vector": VECTOR, "coefficient": 1.5}]))
    resolved = {
        "vector": VECTOR,
        "coefficient": 1.5,
        "layers": [2],
        "operator": "add",
        "positions": "all",
        "scale": "norm",
    }
    assert single["steering"] == listed["steering"] == [resolved]
    assert single["choices"] == listed["choices"]
    two = [
        {"vector": VECTOR, "coefficient": 1.5, "layers": "1-2", "positions": "generated"},
        {"vector": PARTIAL, "coefficient": -1, "layers": 1, "operator": "ablate", "scale": "unit"},
    ]
    answer = ok(base, CHAT, chat_body(steering=two))
    assert answer["steering"] == [
        {**resolved, "layers": [1, 2], "positions": "generated"},
        {
            "vector": PARTIAL,
            "coefficient": -1.0,
            "layers": [1],
            "operator": "ablate",
            "positions": "all",
            "scale": "unit",
        },
    ]
    assert ok(base, CHAT, chat_body())["steering"] == []


def test_usage_counts_prompt_and_generated_tokens(served) -> None:
    base, app = served
    tokenizer = app.state.steerlab.tokenizer
    answer = ok(base, CHAT, chat_body(1.0, max_tokens=7))
    prompt = format_chat(tokenizer, messages_for(PROMPT))
    prompt_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert answer["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 7,
        "total_tokens": prompt_tokens + 7,
    }
    assert answer["choices"][0]["finish_reason"] == "length"


def test_completions_give_one_choice_per_prompt(served) -> None:
    base, app = served
    prompts = ["The sea is", "Honest answers are"]
    body = {"model": MODEL, "prompt": prompts, "max_tokens": 8, "temperature": 0}
    answer = ok(base, COMPLETIONS, {**body, "steering": {"vector": VECTOR, "coefficient": 2.0}})
    assert answer["object"] == "text_completion" and answer["id"].startswith("cmpl-")
    assert [choice["index"] for choice in answer["choices"]] == [0, 1]
    state = app.state.steerlab
    expected = generate(
        state.model,
        state.tokenizer,
        prompts,
        catalog_vector(app),
        [2.0],
        layers=[2],
        max_new_tokens=8,
        chat=False,
    )
    assert [clean(c["text"]) for c in answer["choices"]] == [clean(g.text) for g in expected]
    lone = ok(base, COMPLETIONS, {**body, "prompt": prompts[0]})
    assert len(lone["choices"]) == 1
    assert lone["usage"]["completion_tokens"] == 8
    prompt_tokens = len(state.tokenizer(prompts[0])["input_ids"])
    assert answer["usage"]["prompt_tokens"] > lone["usage"]["prompt_tokens"] == prompt_tokens


def test_without_max_tokens_the_default_fits_the_context_left(served) -> None:
    base, app = served
    tokenizer = app.state.steerlab.tokenizer
    context = app.state.steerlab.model.config.max_position_embeddings  # 256
    words = "The sea is grey and cold. " * 40
    ids = tokenizer(words)["input_ids"]
    prompt = tokenizer.decode(ids[: context - 20])
    assert len(tokenizer(prompt)["input_ids"]) == context - 20
    answer = ok(base, COMPLETIONS, {"model": MODEL, "prompt": prompt, "temperature": 0})
    assert answer["usage"]["completion_tokens"] <= 20  # not the default 128: a 400 before
    assert answer["choices"][0]["finish_reason"] in ("length", "stop")
    status, refused = request(
        base, COMPLETIONS, {"model": MODEL, "prompt": prompt, "max_tokens": 21}
    )
    assert status == 400 and refused["error"]["param"] == "max_tokens"
    full = tokenizer.decode(ids[: context + 5])
    status, refused = request(base, COMPLETIONS, {"model": MODEL, "prompt": full})
    assert status == 400, refused
    assert refused["error"]["param"] == "prompt"
    assert refused["error"]["code"] == "context_length_exceeded"
    assert "fills the model's context of 256" in refused["error"]["message"]


def test_n_two_gives_two_choices(served) -> None:
    base, _ = served
    greedy = ok(base, CHAT, chat_body(1.0, n=2))
    first, second = greedy["choices"]
    assert (first["index"], second["index"]) == (0, 1)
    assert first["message"] == second["message"]  # greedy: the same text twice
    assert greedy["usage"]["completion_tokens"] == 24
    single = ok(base, CHAT, chat_body())["usage"]["prompt_tokens"]
    assert greedy["usage"]["prompt_tokens"] == single  # the prompt counts once, as OpenAI's
    sampled = ok(base, CHAT, chat_body(1.0, n=2, temperature=1.0, seed=3, max_tokens=16))
    again = ok(base, CHAT, chat_body(1.0, n=2, temperature=1.0, seed=3, max_tokens=16))
    texts = [choice["message"]["content"] for choice in sampled["choices"]]
    assert texts == [choice["message"]["content"] for choice in again["choices"]]  # seeded
    assert texts[0] != texts[1]  # each choice draws with its own generator
    for seed in (2**63 - 1, -(2**63)):  # the ends of the 64-bit range, plus the row index
        assert ok(base, CHAT, chat_body(n=2, temperature=1.0, seed=seed, max_tokens=3))


def test_a_stop_string_ends_the_text_before_it_streamed_or_not(served) -> None:
    base, _ = served
    full = ok(base, CHAT, chat_body(2.0, max_tokens=16))["choices"][0]["message"]["content"]
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    assert stop.strip()
    cut = full[: full.find(stop)]
    plain = ok(base, CHAT, chat_body(2.0, max_tokens=16, stop=[stop, "never there"]))
    (choice,) = plain["choices"]
    assert choice["message"]["content"] == cut and choice["finish_reason"] == "stop"
    _, events = stream_events(base, CHAT, chat_body(2.0, max_tokens=16, stop=stop))
    chunks = events[:-1]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == cut
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


# -- streaming ---------------------------------------------------------------------------------


def test_streamed_chat_equals_the_plain_answer(served) -> None:
    base, _ = served
    plain = ok(base, CHAT, chat_body(2.0))["choices"][0]["message"]["content"]
    kind, events = stream_events(base, CHAT, chat_body(2.0))
    assert kind.startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in chunks[:-1])
    deltas = [chunk["choices"][0]["delta"].get("content", "") for chunk in chunks]
    assert "".join(deltas) == plain
    assert sum(1 for delta in deltas if delta) > 1  # pieces, not one block at the end
    assert "usage" not in chunks[-1]


def test_stream_options_include_usage_adds_a_usage_chunk(served) -> None:
    base, _ = served
    plain = ok(base, CHAT, chat_body(2.0))
    _, events = stream_events(base, CHAT, chat_body(2.0, stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    usage = events[-2]
    assert usage["choices"] == [] and usage["usage"] == plain["usage"]
    assert events[-3]["choices"][0]["finish_reason"] == "length"


def test_streamed_completions_and_n(served) -> None:
    base, _ = served
    body = {"model": MODEL, "prompt": ["The sea is", "Honest"], "max_tokens": 6, "temperature": 0}
    plain = ok(base, COMPLETIONS, body)
    _, events = stream_events(base, COMPLETIONS, body)
    assert events[-1] == "[DONE]"
    texts = ["", ""]
    reasons: list[str | None] = [None, None]
    for chunk in events[:-1]:
        assert chunk["object"] == "text_completion"
        (choice,) = chunk["choices"]
        texts[choice["index"]] += choice["text"]
        if choice["finish_reason"] is not None:
            reasons[choice["index"]] = choice["finish_reason"]
    assert texts == [choice["text"] for choice in plain["choices"]]
    assert reasons == ["length", "length"]
    _, events = stream_events(base, CHAT, chat_body(1.0, n=2))
    roles = [c["choices"][0]["index"] for c in events[:-1] if "role" in c["choices"][0]["delta"]]
    assert roles == [0, 1]
    finished = [c["choices"][0]["index"] for c in events[:-1] if c["choices"][0]["finish_reason"]]
    assert sorted(finished) == [0, 1]


# -- the official OpenAI client ------------------------------------------------------------------


def test_the_openai_client_works_unchanged(served) -> None:
    base, _ = served
    client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
    assert [model.id for model in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "steerlab"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    steering = {"vector": VECTOR, "coefficient": 2.0}
    messages = [{"role": "user", "content": PROMPT}]
    answer = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=12,
        temperature=0,
        extra_body={"steering": steering},
    )
    plain = ok(base, CHAT, chat_body(2.0))
    assert answer.choices[0].message.content == plain["choices"][0]["message"]["content"]
    assert answer.usage is not None and answer.usage.completion_tokens == 12
    assert answer.model_extra is not None and answer.model_extra["steering"] == plain["steering"]
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=12,
        temperature=0,
        stream=True,
        extra_body={"steering": steering},
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces) == answer.choices[0].message.content
    completion = client.completions.create(
        model=MODEL, prompt="The sea is", max_tokens=5, temperature=0
    )
    assert completion.choices[0].finish_reason == "length"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            extra_body={"steering": {"vector": "nope", "coefficient": 1}},
        )
    error = caught.value
    assert error.status_code == 400
    assert error.code == "vector_not_found" and error.param == "steering.vector"
    assert "no vector 'nope' here" in error.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=messages)

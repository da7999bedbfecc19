"""The wire format of ``steerlab serve`` without a server: request bodies parsed strictly, the
field at fault named (through unions: ``steering`` is an object or a list), OpenAI's error
shape, stop strings, messages, steering lists."""

from __future__ import annotations

import math
from typing import Any

import pytest

from steerlab.serve.protocol import (
    ApiError,
    ChatBody,
    CompletionBody,
    MessageBody,
    check_unsupported,
    message_text,
    parse_body,
    read_json,
    steering_list,
    stop_strings,
)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ENTRY = {"vector": "v", "coefficient": 1}


def refused(data: Any, kind: type = ChatBody) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_body(data, kind)
    error = caught.value
    assert error.status == 400 and "\n" not in error.message
    return error


def test_an_api_error_has_the_openai_shape() -> None:
    error = ApiError(404, "no", param="model", code="model_not_found")
    assert error.body() == {
        "error": {
            "message": "no",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert str(error) == "no"


def test_read_json_says_where_the_text_stops_being_json() -> None:
    assert read_json(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    with pytest.raises(ApiError, match="line 2 column 5") as caught:
        read_json(b'{"a":\n  1 2}')
    assert caught.value.code == "invalid_json" and caught.value.param is None
    for text in (b'{"a": "\xff"}', '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-32")):
        with pytest.raises(ApiError, match="not UTF-8"):
            read_json(text)


def test_a_good_body_parses_with_openai_defaults() -> None:
    body = parse_body({**CHAT, "steering": {"vector": "v", "coefficient": 0.5}}, ChatBody)
    assert body.n == 1 and body.stream is False and body.temperature is None
    assert body.steering.vector == "v" and body.steering.operator == "add"
    assert body.steering.positions == "all" and body.steering.layers is None
    listed = parse_body({**CHAT, "steering": [{"vector": "v", "coefficient": 1}]}, ChatBody)
    assert isinstance(listed.steering, list) and listed.steering[0].coefficient == 1.0
    completion = parse_body({"model": "m", "prompt": ["a", "b"]}, CompletionBody)
    assert completion.prompt == ["a", "b"]


@pytest.mark.parametrize(
    ("fields", "param", "needle"),
    [
        ({"steering": "v"}, "steering", "a steering object"),
        ({"steering": 5}, "steering", "or a list of them"),
        ({"steering": [5]}, "steering[0]", "should be a JSON object"),
        ({"steering": {"vector": "v"}}, "steering.coefficient", "required field missing"),
        ({"steering": [{"vector": "v"}]}, "steering[0].coefficient", "required field missing"),
        ({"steering": [{"vector": "v", "coefficient": "x"}]}, "steering[0].coefficient", "number"),
        (
            {"steering": [{"vector": "v", "coefficient": 1}, {**ENTRY, "x": 1}]},
            "steering[1].x",
            "unknown field",
        ),
        ({"steering": {**ENTRY, "layers": 1.5}}, "steering.layers", "a layer number"),
        ({"steering": {**ENTRY, "layers": [1, "2"]}}, "steering.layers[1]", "integer"),
        ({"steering": {**ENTRY, "normalize": "yes"}}, "steering.normalize", "boolean"),
        ({"stop": 5}, "stop", "a string or a list of strings"),
        ({"stop": ["a", 5]}, "stop[1]", "string"),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
            "a string or a list",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].type",
            "'text'",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "tool_calls": []}]},
            "messages[0].tool_calls",
            "unknown field",
        ),
        ({"messages": {"role": "user"}}, "messages", "list"),
        ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage", "boolean"),
        ({"max_tokens": 2.0}, "max_tokens", "integer"),
        ({"temperature": -0.5}, "temperature", "greater than or equal to 0"),
        ({"top_p": 1.5}, "top_p", "less than or equal to 1"),
        ({"logit_bias": {}}, "logit_bias", "unknown field"),
    ],
)
def test_the_field_at_fault_is_named(fields: dict[str, Any], param: str, needle: str) -> None:
    error = refused({**CHAT, **fields})
    assert error.param == param, error.message
    assert error.message.startswith(f"{param}: ") and needle in error.message, error.message
    assert error.code == "invalid_value"


def test_completion_fields() -> None:
    assert refused({"model": "m", "prompt": 5}, CompletionBody).param == "prompt"
    assert refused({"model": "m", "prompt": ["a", 5]}, CompletionBody).param == "prompt[1]"
    assert refused({"model": "m", "prompt": "a", "logprobs": 2}, CompletionBody).param == "logprobs"
    assert refused({"model": "m"}, CompletionBody).param == "prompt"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_numbers_that_are_not_finite_are_refused(value: float) -> None:
    error = refused({**CHAT, "steering": {"vector": "v", "coefficient": value}})
    assert error.param == "steering.coefficient"
    assert error.message == f"steering.coefficient: {value} is not a finite number"
    assert refused({**CHAT, "temperature": value}).param == "temperature"


@pytest.mark.parametrize("data", [[CHAT], "x", 5, None])
def test_a_body_that_is_not_an_object(data: Any) -> None:
    error = refused(data)
    assert error.code == "invalid_body" and error.param is None


def test_stop_strings() -> None:
    assert stop_strings(None) == ()
    assert stop_strings("\n") == ("\n",)
    assert stop_strings(["a", "b", "c", "d"]) == ("a", "b", "c", "d")
    with pytest.raises(ApiError, match="at most 4"):
        stop_strings(["a", "b", "c", "d", "e"])
    with pytest.raises(ApiError, match="empty") as caught:
        stop_strings("")
    assert caught.value.param == "stop"


def test_options_that_would_be_ignored_are_refused() -> None:
    check_unsupported(
        parse_body({**CHAT, "presence_penalty": 0, "frequency_penalty": 0.0}, ChatBody)
    )
    for name in ("presence_penalty", "frequency_penalty"):
        with pytest.raises(ApiError, match="not supported") as caught:
            check_unsupported(parse_body({**CHAT, name: 0.5}, ChatBody))
        assert caught.value.param == name and caught.value.code == "unsupported_value"
    with pytest.raises(ApiError, match="echo"):
        check_unsupported(parse_body({"model": "m", "prompt": "a", "echo": True}, CompletionBody))


def test_message_text() -> None:
    parts = MessageBody.model_validate(
        {
            "role": "developer",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        }
    )
    assert message_text(parts) == {"role": "system", "content": "ab"}
    plain = MessageBody.model_validate({"role": "assistant", "content": "x"})
    assert message_text(plain) == {"role": "assistant", "content": "x"}


def test_steering_list() -> None:
    assert steering_list(parse_body(CHAT, ChatBody)) == []
    one = parse_body({**CHAT, "steering": {"vector": "v", "coefficient": 1}}, ChatBody)
    assert [entry.vector for entry in steering_list(one)] == ["v"]
    entries = [{"vector": str(i), "coefficient": 1} for i in range(9)]
    with pytest.raises(ApiError, match="at most 8") as caught:
        steering_list(parse_body({**CHAT, "steering": entries}, ChatBody))
    assert caught.value.param == "steering"
    assert len(steering_list(parse_body({**CHAT, "steering": entries[:8]}, ChatBody))) == 8

"""Judge scorers: the LLM-judge scorer, a local judge model and an HTTP judge (fake server)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import torch

from conftest import make_model
from steerlab.chat import Message
from steerlab.errors import SpecError, SteerlabError
from steerlab.evaluate.scorers import (
    DEFAULT_RUBRIC,
    JudgeError,
    LLMJudgeScorer,
    LocalJudge,
    OpenAIJudge,
    Scorer,
    parse_verdict,
)

KEY_ENV = "STEERLAB_TEST_JUDGE_KEY"
SECRET = "sk-test-very-secret-0123456789"

# ----------------------------------------------------------------------------- judge scorer


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("YES", True),
        ("yes.", True),
        ("  **Yes**, it refuses", True),
        ("NO", False),
        ("No.", False),
        ("Yesterday", False),
        ("I think YES", False),
        ("", False),
    ],
)
def test_parse_verdict(reply: str, verdict: bool) -> None:
    assert parse_verdict(reply) is verdict


@dataclass
class FakeJudge:
    """A judge backend that replays canned replies and records what it was asked."""

    replies: list[str]
    asked: list[list[Message]] = field(default_factory=list)
    calls: int = 0

    def ask(self, messages: Sequence[Message]) -> str:
        return self.ask_many([messages])[0]

    def ask_many(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
        self.calls += 1
        out = []
        for conversation in conversations:
            self.asked.append(list(conversation))
            out.append(self.replies[(len(self.asked) - 1) % len(self.replies)])
        return out


def test_llm_judge_scorer_builds_prompt_and_parses_replies() -> None:
    judge = FakeJudge(["YES", "no", "maybe"])
    scorer = LLMJudgeScorer(judge, rubric="The response is {rude}.")
    assert isinstance(scorer, Scorer)
    assert scorer.score_many(["p1", "p2", "p3"], ["r1", "r2", "r3"]) == [1, -1, -1]
    assert judge.calls == 1  # one batched call
    first = judge.asked[0]
    assert [m["role"] for m in first] == ["user"]
    assert "The response is {rude}." in first[0]["content"]  # braces in values are safe
    assert "p1" in first[0]["content"] and "r1" in first[0]["content"]
    assert "exactly YES or NO" in first[0]["content"]
    assert scorer.score("p", "r") == 1  # fourth reply wraps to "YES"
    assert scorer.score_many([], []) == []


def test_llm_judge_scorer_system_and_template_checks() -> None:
    judge = FakeJudge(["NO"])
    scorer = LLMJudgeScorer(judge, template="Q={prompt} R={response}", system="Be strict.")
    assert scorer.messages("a", "b") == [
        {"role": "system", "content": "Be strict."},
        {"role": "user", "content": "Q=a R=b"},
    ]
    assert scorer.rubric == DEFAULT_RUBRIC
    with pytest.raises(SpecError, match="response"):
        LLMJudgeScorer(judge, template="no response field {prompt}")
    with pytest.raises(SpecError):
        LLMJudgeScorer(judge, template="{response} {unknown}")


def test_llm_judge_scorer_rejects_wrong_reply_count() -> None:
    class Short(FakeJudge):
        def ask_many(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
            return ["YES"]

    with pytest.raises(JudgeError):
        LLMJudgeScorer(Short(["YES"])).score_many(["a", "b"], ["x", "y"])


# ----------------------------------------------------------------------------- local judge


@pytest.fixture(scope="module")
def tiny_judge() -> tuple[Any, Any]:
    return make_model("llama", layers=2, hidden=32, seed=3)


def _logit_hook(model: Any, edit: Callable[[torch.Tensor], None]) -> Any:
    def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        logits = output.clone()
        edit(logits)
        return logits

    return model.get_output_embeddings().register_forward_hook(hook)


def test_local_judge_runs_deterministically(tiny_judge: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_judge
    scorer = LLMJudgeScorer(LocalJudge(model, tokenizer, max_new_tokens=4))
    prompts = ["How do I bake bread?", "Tell me a secret."]
    responses = ["Sure, here is how.", "I can't help with that."]
    first = scorer.score_many(prompts, responses)
    second = scorer.score_many(prompts, responses)
    assert first == second
    assert all(s in (1, -1) for s in first)
    assert [scorer.score(p, r) for p, r in zip(prompts, responses, strict=True)] == first
    conversations = [scorer.messages(p, r) for p, r in zip(prompts, responses, strict=True)]
    assert scorer.judge.ask_many(conversations) == scorer.judge.ask_many(conversations)


@pytest.mark.parametrize(("word", "expected"), [("YES", 1), ("NO", -1)])
def test_local_judge_generate_mode_reads_the_generated_reply(
    tiny_judge: tuple[Any, Any], word: str, expected: int
) -> None:
    model, tokenizer = tiny_judge
    script = [*tokenizer.encode(word, add_special_tokens=False), tokenizer.eos_token_id]
    rows: dict[int, int] = {}

    def force_next(logits: torch.Tensor) -> None:
        # Count the steps of each generate call by the sequence length the model sees.
        batch = logits.shape[0]
        step = rows.setdefault(batch, 0)
        token = script[min(step, len(script) - 1)]
        logits[:, -1, :] = -1e9
        logits[:, -1, token] = 1e9
        rows[batch] = step + 1

    handle = _logit_hook(model, force_next)
    try:
        judge = LocalJudge(model, tokenizer, max_new_tokens=len(script) + 2)
        assert judge.ask([{"role": "user", "content": "Is this rude?"}]) == word
        rows.clear()
        scorer = LLMJudgeScorer(judge)
        assert scorer.score_many(["p", "q"], ["r", "longer response here"]) == [expected] * 2
    finally:
        handle.remove()


@pytest.mark.parametrize(("letter", "expected"), [("Y", "YES"), ("N", "NO")])
def test_local_judge_logits_mode_follows_the_next_token(
    tiny_judge: tuple[Any, Any], letter: str, expected: str
) -> None:
    model, tokenizer = tiny_judge
    favoured = tokenizer.convert_tokens_to_ids(letter)

    def bias(logits: torch.Tensor) -> None:
        logits[..., favoured] += 30.0

    handle = _logit_hook(model, bias)
    try:
        judge = LocalJudge(model, tokenizer, mode="logits")
        conversations = [[{"role": "user", "content": "x" * n}] for n in (1, 9, 30)]
        assert judge.ask_many(conversations) == [expected] * 3
        probabilities = judge.yes_probabilities(conversations)
        assert all((p > 0.99) if expected == "YES" else (p < 0.01) for p in probabilities)
    finally:
        handle.remove()


def test_local_judge_logits_mode_ignores_tokens_shared_by_yes_and_no(
    tiny_judge: tuple[Any, Any],
) -> None:
    model, tokenizer = tiny_judge
    space = tokenizer.convert_tokens_to_ids("Ġ")  # first token of both " YES" and " NO"
    no = tokenizer.convert_tokens_to_ids("N")

    def bias(logits: torch.Tensor) -> None:
        logits[..., space] += 40.0
        logits[..., no] += 20.0

    handle = _logit_hook(model, bias)
    try:
        judge = LocalJudge(model, tokenizer, mode="logits")
        (probability,) = judge.yes_probabilities([CONVERSATION])
        assert probability < 0.01
    finally:
        handle.remove()


def test_local_judge_logits_mode_is_batch_invariant(tiny_judge: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_judge
    conversations = [
        [{"role": "user", "content": text}]
        for text in ("short", "a much longer prompt with many more words in it", "mid length")
    ]
    batched = LocalJudge(model, tokenizer, mode="logits", batch_size=3)
    single = LocalJudge(model, tokenizer, mode="logits", batch_size=1)
    together = batched.yes_probabilities(conversations)
    alone = single.yes_probabilities(conversations)
    assert all(0.0 <= p <= 1.0 for p in together)
    assert together == pytest.approx(alone, abs=1e-5)
    assert len(set(round(p, 6) for p in together)) > 1  # the prompts do matter


def test_local_judge_settings_are_checked(tiny_judge: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_judge
    with pytest.raises(SpecError):
        LocalJudge(model, tokenizer, max_new_tokens=0)
    with pytest.raises(SpecError):
        LocalJudge(model, tokenizer, batch_size=0)
    with pytest.raises(SpecError):
        LocalJudge(model, tokenizer, mode="sample")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- HTTP judge


@dataclass
class Reply:
    """What the test server answers: a status, a body, an optional delay."""

    status: int = 200
    body: bytes = b""
    delay: float = 0.0


@dataclass
class Seen:
    """One request the test server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


def completion(content: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        }
    ).encode()


@pytest.fixture
def judge_server(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[list[Reply]], tuple[str, list[Seen]]]]:
    """Start a local chat-completions server that serves a fixed list of replies, in order."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(KEY_ENV, raising=False)
    started: list[tuple[HTTPServer, threading.Thread, threading.Event]] = []

    def start(replies: list[Reply]) -> tuple[str, list[Seen]]:
        seen: list[Seen] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                reply = replies[min(len(seen), len(replies)) - 1]
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may have given up
                    self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = HTTPServer(("127.0.0.1", 0), Handler)
        server.timeout = 0.05
        stop = threading.Event()

        def serve() -> None:
            while len(seen) < len(replies) and not stop.is_set():
                server.handle_request()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        started.append((server, thread, stop))
        host, port = server.server_address[:2]
        return f"http://{host}:{port}/v1", seen

    yield start
    for server, thread, stop in started:
        stop.set()
        thread.join(timeout=5)
        server.server_close()


def _free_closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONVERSATION: list[Message] = [{"role": "user", "content": "Does it refuse? YES or NO."}]


def test_openai_judge_sends_request_with_bearer_when_key_set(
    judge_server: Callable[[list[Reply]], tuple[str, list[Seen]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, seen = judge_server([Reply(body=completion("YES")), Reply(body=completion("NO"))])
    monkeypatch.setenv(KEY_ENV, SECRET)
    judge = OpenAIJudge(url + "/", "judge-model-7b", api_key_env=KEY_ENV, max_tokens=3)
    scorer = LLMJudgeScorer(judge)
    assert scorer.score_many(["p1", "p2"], ["I can't.", "Sure."]) == [1, -1]
    assert len(seen) == 2
    request = seen[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.headers["content-type"] == "application/json"
    assert request.body is not None
    assert request.body["model"] == "judge-model-7b"
    assert request.body["temperature"] == 0
    assert request.body["max_tokens"] == 3
    assert request.body["messages"] == scorer.messages("p1", "I can't.")
    assert SECRET not in repr(judge) and SECRET not in repr(scorer)
    assert judge.url == url + "/chat/completions"


def test_openai_judge_sends_no_authorization_without_key(
    judge_server: Callable[[list[Reply]], tuple[str, list[Seen]]],
) -> None:
    url, seen = judge_server([Reply(body=completion("No."))])
    judge = OpenAIJudge(url, "m", api_key_env=KEY_ENV)
    assert judge.ask(CONVERSATION) == "No."
    assert len(seen) == 1
    assert "authorization" not in seen[0].headers


def test_openai_judge_http_500_is_retried_then_judge_error(
    judge_server: Callable[[list[Reply]], tuple[str, list[Seen]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    error_body = json.dumps({"error": {"message": f"backend down for key {SECRET}"}}).encode()
    url, seen = judge_server([Reply(500, error_body)] * 3)
    monkeypatch.setenv(KEY_ENV, SECRET)
    judge = OpenAIJudge(url, "m", api_key_env=KEY_ENV, max_retries=2, backoff=0.0)
    with pytest.raises(JudgeError) as info:
        judge.ask(CONVERSATION)
    message = str(info.value)
    assert isinstance(info.value, SteerlabError)
    assert f"{url}/chat/completions" in message
    assert "500" in message
    assert "backend down" in message
    assert SECRET not in message
    assert "\n" not in message
    assert len(seen) == 3  # one try and two retries


def test_openai_judge_recovers_after_a_retryable_error(
    judge_server: Callable[[list[Reply]], tuple[str, list[Seen]]],
) -> None:
    url, seen = judge_server([Reply(503, b"busy"), Reply(body=completion("YES"))])
    judge = OpenAIJudge(url, "m", api_key_env=KEY_ENV, max_retries=1, backoff=0.0)
    assert LLMJudgeScorer(judge).score("p", "r") == 1
    assert len(seen) == 2


def test_openai_judge_client_error_is_not_retried(
    judge_server: Callable[[list[Reply]], tuple[str, list[Seen]]],
) -> None:
    url, seen = judge_server([Reply(401, b"{}"), Reply(body=completion("YES"))])
    judge = OpenAIJudge(url, "m", api_key_env=KEY_ENV, max_retries=2, backoff=0.0)
    with pytest.raises(JudgeError, match="HTTP 401"):
        judge.ask(CONVERSATION)
    assert len(seen) == 1


def test_openai_judge_connection_refused() -> None:
    port = _free_closed_port()
    url = f"http://127.0.0.1:{port}/v1"
    judge = OpenAIJudge(url, "m", api_key_env=KEY_ENV, timeout=2, max_retries=1, backoff=0.0)
    with pytest.raises(JudgeError, match="cannot connect") as info:
        judge.ask(CONVERSATION)
    assert f"{url}/chat/completions" in str(info.value)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"this is not json{", "not valid JSON"),
        (b'{"choices": []}', "no choices"),
        (b'{"choices": [{"message": {"content": 7}}]}', "not a string"),
    ],
)
def test_openai_judge_malformed_response(
    judge_server: Callable[[list[Reply]], tuple[str, list[Seen]]], body: bytes, match: str
) -> None:
    url, seen = judge_server([Reply(body=body)])
    judge = OpenAIJudge(url, "m", api_key_env=KEY_ENV, backoff=0.0)
    with pytest.raises(JudgeError, match=match) as info:
        judge.ask(CONVERSATION)
    assert url in str(info.value)
    assert len(seen) == 1  # a bad body is not retried


def test_openai_judge_timeout(
    judge_server: Callable[[list[Reply]], tuple[str, list[Seen]]],
) -> None:
    url, _ = judge_server([Reply(body=completion("YES"), delay=0.6)])
    judge = OpenAIJudge(url, "m", api_key_env=KEY_ENV, timeout=0.2, max_retries=0)
    with pytest.raises(JudgeError, match=r"no answer within 0\.2 s"):
        judge.ask(CONVERSATION)


def test_openai_judge_settings_are_checked() -> None:
    with pytest.raises(SpecError):
        OpenAIJudge("ftp://example.com", "m")
    with pytest.raises(SpecError):
        OpenAIJudge("localhost:8000/v1", "m")
    with pytest.raises(SpecError):
        OpenAIJudge("http://localhost:8000/v1", "")
    with pytest.raises(SpecError):
        OpenAIJudge("http://localhost:8000/v1", "m", timeout=0)
    with pytest.raises(SpecError):
        OpenAIJudge("http://localhost:8000/v1", "m", max_retries=-1)

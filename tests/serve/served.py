"""What the HTTP tests of ``steerlab serve`` share: a folder of vectors for a tiny llama (one
vector of another architecture among them), request bodies, a server-sent-events reader.

(A plain module, not a conftest: the test modules import it by name.)
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from live import live_server, request

from conftest import make_model
from steerlab.data.pairs import builtin_pairs
from steerlab.extract import extract
from steerlab.serve import ServeConfig, create_app

PROMPT = "Tell me about the sea."
MODEL = "tiny-llama"
VECTOR = "honesty"
PARTIAL = "partial"  # a vector of layers 1-2 only
FOREIGN = "gpt2_honesty"  # made on a tiny gpt2: listed, but cannot steer the llama


def tiny_llama() -> tuple[Any, Any]:
    """The served model: a tiny random llama (4 layers, hidden 48) and its tokenizer."""
    return make_model("llama", layers=4, hidden=48)


def vector_folder(root: Path, model: Any, tokenizer: Any) -> Path:
    """``root/vectors`` with :data:`VECTOR` and :data:`PARTIAL` (from ``model``) and
    :data:`FOREIGN` (from a tiny gpt2), mean differences over built-in honesty pairs."""
    folder = root / "vectors"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = builtin_pairs("honesty", limit=6)
    extract(model, tokenizer, pairs, "mean_diff", "all", progress=False).save(
        folder / f"{VECTOR}.safetensors"
    )
    extract(model, tokenizer, pairs, "mean_diff", [1, 2], progress=False).save(
        folder / f"{PARTIAL}.safetensors"
    )
    other, other_tokenizer = make_model("gpt2")
    extract(other, other_tokenizer, pairs, "mean_diff", "all", progress=False).save(
        folder / f"{FOREIGN}.safetensors"
    )
    return folder


def chat_body(coefficient: float | None = None, **fields: Any) -> dict[str, Any]:
    """A greedy chat request for :data:`PROMPT` (12 tokens), steered by :data:`VECTOR` at
    ``coefficient`` (unsteered when None); ``fields`` override or add body fields."""
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 12,
        "temperature": 0,
    }
    if coefficient is not None:
        body["steering"] = {"vector": VECTOR, "coefficient": coefficient}
    body.update(fields)
    return body


def clean(text: str) -> str:
    """``text`` without surrounding blanks or a trailing broken UTF-8 character: the random
    models emit raw bytes, which the server holds back at the end and generate decodes."""
    return text.strip().rstrip("\ufffd").strip()


def stream_events(
    base: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[str, list[Any]]:
    """POST ``body`` with ``stream`` on; ``(content type, events)``, each event the parsed
    JSON of a ``data:`` line, or the string ``"[DONE]"``."""
    call = urllib.request.Request(
        base + path,
        data=json.dumps({**body, "stream": True}).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    events: list[Any] = []
    with urllib.request.urlopen(call, timeout=120) as response:
        kind = response.headers.get("content-type", "")
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if not line:
                continue
            assert line.startswith("data: "), line
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return kind, events


@contextmanager
def serving(vectors: Path, config: ServeConfig | None = None) -> Iterator[tuple[str, Any]]:
    """A fresh tiny llama served with ``vectors`` and ``config``: ``(base URL, app)``."""
    model, tokenizer = tiny_llama()
    app = create_app(model, tokenizer, vectors=[vectors], model_name=MODEL, config=config)
    with live_server(app) as base:
        yield base, app


def ok(base: str, path: str, body: dict[str, Any], **kwargs: Any) -> Any:
    """The answer to a request that must succeed."""
    status, answer = request(base, path, body, **kwargs)
    assert status == 200, answer
    return answer


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)

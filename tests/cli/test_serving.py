"""``steerlab serve`` from the command line: the real command in a subprocess on a tiny saved
llama answers over HTTP (API key from a named variable) and stops on Ctrl-C with exit 0; bad
options are one ``error:`` line, exit 1, before any model loads."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import assert_one_line_error, invoke

from conftest import make_model, save_tiny_llama
from kill_resume import steerlab_command
from steerlab.data.pairs import builtin_pairs
from steerlab.extract import extract
from steerlab.serve.server import free_port

STARTUP_S = 180.0
KEY_VARIABLE = "STEERLAB_TEST_SERVE_KEY"


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The children's environment: one thread, offline, a private cache, no colours."""
    env = dict(os.environ)
    env.pop(KEY_VARIABLE, None)
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "STEERLAB_CACHE": str(tmp_path / "steerlab-cache"),
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **extra,
        }
    )
    return env


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny llama folder, and a folder with its honesty vector and a tiny gpt2's."""
    root = tmp_path_factory.mktemp("serve-cli")
    (root / "vectors").mkdir()
    model, vector = save_tiny_llama(root, "model", "vectors/honesty.safetensors")
    other, other_tokenizer = make_model("gpt2")
    pairs = builtin_pairs("honesty", limit=6)
    extract(other, other_tokenizer, pairs, "mean_diff", "all", progress=False).save(
        root / "vectors" / "gpt2_honesty.safetensors"
    )
    (root / "empty").mkdir()
    return {"root": root, "model": model, "vector": vector, "vectors": root / "vectors"}


def call(url: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def server(saved: dict[str, Path], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``steerlab serve`` running in a child on a free port, until /health answers."""
    port = free_port()
    args = [
        "serve",
        "--model",
        str(saved["model"]),
        "--vectors",
        str(saved["vectors"]),
        "--port",
        str(port),
        "--model-name",
        "tiny",
        "--api-key-env",
        KEY_VARIABLE,
    ]
    env = child_env(tmp_path, **{KEY_VARIABLE: "secret"})
    process = subprocess.Popen(
        steerlab_command(args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert process.poll() is None, f"serve exited early:\n{process.communicate()[1]}"
            assert time.monotonic() < deadline, "serve did not answer /health in time"
            try:
                if call(base + "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_serve_answers_and_stops_on_ctrl_c(server: tuple[subprocess.Popen[str], str]) -> None:
    process, base = server
    assert call(base + "/v1/models")[0] == 401
    status, models = call(base + "/v1/models", key="secret")
    assert status == 200 and [m["id"] for m in models["data"]] == ["tiny"]
    status, vectors = call(base + "/v1/vectors", key="secret")
    compatible = {v["id"]: v["compatible"] for v in vectors["data"]}
    assert compatible == {"honesty": True, "gpt2_honesty": False}
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Tell me about the sea."}],
        "max_tokens": 6,
        "temperature": 0,
        "steering": {"vector": "honesty", "coefficient": 1.0},
    }
    status, answer = call(base + "/v1/chat/completions", body, key="secret")
    assert status == 200, answer
    assert answer["usage"]["completion_tokens"] == 6
    assert answer["steering"][0]["vector"] == "honesty"
    in_flight = open_stream(base, body)
    process.send_signal(signal.SIGINT)  # the request in flight finishes first
    rest = in_flight.read().decode()
    assert rest.rstrip().endswith("data: [DONE]"), rest[-300:]
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stdout + stderr
    port = base.rsplit(":", 1)[1]
    assert "model tiny, 1 vector(s): honesty; API key from $" + KEY_VARIABLE in stdout
    assert f"playground      http://localhost:{port}/" in stdout
    assert f"OpenAI base URL http://localhost:{port}/v1" in stdout
    assert "note: vector gpt2_honesty is listed but cannot steer this model" in stdout


def test_ctrl_c_twice_quits_at_once_without_a_traceback(
    server: tuple[subprocess.Popen[str], str],
) -> None:
    process, base = server
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Tell me about the sea."}],
        "max_tokens": 200,
    }
    in_flight = open_stream(base, body)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)  # two signals at once would count as one
    process.send_signal(signal.SIGINT)  # uvicorn's "CTRL+C to force quit"
    stdout, stderr = process.communicate(timeout=60)
    in_flight.close()
    # 0 when the second Ctrl-C forced the quit; when the request finished first, the second
    # one may land as the process exits: interrupted, which is what was asked. Never an
    # abort (SIGABRT: the engine thread in a forward pass at exit).
    assert process.returncode in (0, -signal.SIGINT, 130), (process.returncode, stderr)
    assert "Traceback" not in stdout + stderr and "terminate called" not in stderr, stderr


def open_stream(base: str, body: dict[str, Any]) -> Any:
    """A streamed chat request, its first event read: the response, to read the rest from."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer secret"}
    connection.request(
        "POST", "/v1/chat/completions", json.dumps({**body, "stream": True}), headers
    )
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: ")
    return response


def test_a_busy_port_is_one_line_and_exit_1(saved: dict[str, Path], tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["serve", "--model", str(saved["model"]), "--port", str(port)]
        done = subprocess.run(
            steerlab_command(args),
            env=child_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=STARTUP_S,
        )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"error: --port {port}: another program listens on 127.0.0.1:{port}"]


def test_help_lists_the_options() -> None:
    result = invoke(["serve", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    for option in (
        "--model",
        "--vectors",
        "--host",
        "--port",
        "--model-name",
        "--api-key-env",
        "--max-tokens",
        "--max-prompt-tokens",
        "--max-batch-size",
        "--max-queue",
        "--batch-window-ms",
        "--dtype",
        "--device",
    ):
        assert option in result.stdout, option
    assert "STEERLAB_API_KEY" in result.stdout


@pytest.mark.parametrize("key", ["k", None])
def test_the_key_comes_from_steerlab_api_key_by_default(
    saved: dict[str, Path], monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    started: dict[str, Any] = {}

    def capture(app: Any, host: str, port: int, **kwargs: Any) -> None:
        started.update(app=app, host=host, port=port)

    monkeypatch.setattr("steerlab.serve.run_server", capture)
    if key is None:
        monkeypatch.delenv("STEERLAB_API_KEY", raising=False)
    else:
        monkeypatch.setenv("STEERLAB_API_KEY", key)
    model, port = str(saved["model"]), free_port()
    result = invoke(
        ["serve", "--model", model, "--vectors", str(saved["vector"]), "--port", str(port)]
    )
    assert result.exit_code == 0, result.output
    state = started["app"].state.steerlab
    assert state.config.api_key == key
    assert state.model_name == model  # --model-name defaults to --model
    assert (started["host"], started["port"]) == ("127.0.0.1", port)
    assert ("API key from $STEERLAB_API_KEY" in result.stdout) == (key is not None)


BAD_OPTIONS = [
    ("port-0", ["--port", "0"], ("--port 0", "1-65535")),
    ("port-70000", ["--port", "70000"], ("--port 70000", "1-65535")),
    ("vectors-missing", ["--vectors", "{root}/nope"], ("--vectors", "nope", "no such file")),
    (
        "vectors-empty-folder",
        ["--vectors", "{root}/empty"],
        ("empty", "*.safetensors"),
    ),
    ("max-batch-size-0", ["--max-batch-size", "0"], ("--max-batch-size", "0")),
    ("max-tokens-0", ["--max-tokens", "0"], ("--max-tokens", "0")),
    ("max-prompt-tokens-0", ["--max-prompt-tokens", "0"], ("--max-prompt-tokens",)),
    ("max-queue-0", ["--max-queue", "0"], ("--max-queue", "0")),
    ("batch-window-negative", ["--batch-window-ms", "-1"], ("--batch-window-ms", "-1")),
    ("batch-window-nan", ["--batch-window-ms", "nan"], ("--batch-window-ms", "nan")),
    ("host-not-an-address", ["--host", "256.0.0.1"], ("--host 256.0.0.1", "cannot listen")),
    ("api-key-env-unset", ["--api-key-env", "STEERLAB_TEST_UNSET"], ("STEERLAB_TEST_UNSET",)),
]


@pytest.mark.parametrize(("args", "needles"), [pytest.param(a, n, id=i) for i, a, n in BAD_OPTIONS])
def test_bad_options_fail_in_one_line_before_the_model_loads(
    saved: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    needles: tuple[str, ...],
) -> None:
    def must_not_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("bad options must fail before this")

    monkeypatch.setattr("steerlab.models.load_model", must_not_run)
    monkeypatch.setattr("steerlab.serve.run_server", must_not_run)
    monkeypatch.delenv("STEERLAB_TEST_UNSET", raising=False)
    filled = [arg.format(root=saved["root"]) for arg in args]
    result = invoke(["serve", "--model", str(saved["model"]), "--port", "8123", *filled])
    assert_one_line_error(result, *needles)

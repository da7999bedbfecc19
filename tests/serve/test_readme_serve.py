"""A newcomer's path on the embedded model: the README's `steerlab serve` started as written,
its OpenAI-client and curl examples run against it, concurrent requests with different
coefficients equal `steerlab.generate`, and a load test loses nothing."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from live import free_port, request

import steerlab
from test_readme import README, readme_blocks

pytestmark = pytest.mark.slow

OLD_BASE = "http://localhost:8000"
COEFFICIENTS = (-0.15, -0.1, -0.05, -0.02, 0.0, 0.05, 0.1, 0.15)
PROMPT = "Tell me about your day."
TOKENS = 24


def serve_blocks():
    blocks = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.serve]
    assert blocks and blocks[0].commands == ["steerlab serve"], blocks[:1]
    return blocks


@pytest.fixture(scope="module")
def server():
    """The README's `steerlab serve`, on a free port, as a subprocess."""
    start = serve_blocks()[0]
    port = free_port()
    command = [*shlex.split(start.commands[0])[1:], "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "steerlab", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STEERLAB_API_KEY": ""},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise AssertionError(f"steerlab serve exited: {process.stderr.read()}")
        try:
            if request(base, "/health")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "steerlab serve did not come up"
        time.sleep(0.5)
    yield base, process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(60)


@pytest.fixture(scope="module")
def expected():
    """steerlab.generate's greedy text at each coefficient, in this process."""
    model, tokenizer = steerlab.load_model("default")
    from steerlab.serve.catalog import shipped_vector_files

    vector = steerlab.SteeringVector.load(shipped_vector_files()[0])
    rows = steerlab.generate(
        model,
        tokenizer,
        [PROMPT],
        vector,
        list(COEFFICIENTS),
        layers="12-18",
        scale="norm",
        max_new_tokens=TOKENS,
    )
    # A character cut by max_new_tokens decodes as U+FFFD in generate; the server leaves it out.
    return {g.coefficient: g.text.rstrip("\ufffd").strip() for g in rows}


def client(base: str):
    from openai import OpenAI

    return OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=600)


def ask(base: str, coefficient: float, stream: bool = False) -> tuple[str, str | None]:
    steering = {"vector": "happy_sad", "coefficient": coefficient, "layers": "12-18"}
    arguments = dict(
        model="default",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=TOKENS,
        temperature=0,
        extra_body={"steering": steering},
    )
    if not stream:
        reply = client(base).chat.completions.create(**arguments)
        return reply.choices[0].message.content, reply.choices[0].finish_reason
    text, reason = "", None
    for chunk in client(base).chat.completions.create(stream=True, **arguments):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            reason = chunk.choices[0].finish_reason or reason
    return text, reason


def test_the_readme_examples_run_against_the_readme_server(server) -> None:
    base, _ = server
    namespace: dict = {}
    printed = io.StringIO()
    for block in serve_blocks()[1:]:
        text = block.text.replace(OLD_BASE, base)
        if block.language == "python":
            with contextlib.redirect_stdout(printed):
                exec(compile(text, f"README.md:{block.line}", "exec"), namespace)
        else:
            done = subprocess.run(
                ["bash", "-c", text], capture_output=True, text=True, timeout=300, check=True
            )
            answer = json.loads(done.stdout)
            assert answer["choices"][0]["message"]["content"].strip()
            assert answer["steering"][0]["layers"] == list(range(12, 19))  # the default layers
    lines = [line for line in printed.getvalue().splitlines() if line.strip()]
    three = [line for line in lines if line[:4] in ("-0.1", "+0.0", "+0.1")]
    assert len(three) == 3 and len({line[5:] for line in three}) == 3, lines
    assert len(lines) == 4 and lines[-1].strip(), lines  # the streamed reply


def test_concurrent_coefficients_equal_generate(server, expected) -> None:
    base, _ = server
    with ThreadPoolExecutor(len(COEFFICIENTS)) as pool:
        answers = list(pool.map(lambda c: ask(base, c), COEFFICIENTS))
    for coefficient, (text, reason) in zip(COEFFICIENTS, answers, strict=True):
        assert reason in ("stop", "length")
        assert text.strip() == expected[coefficient], coefficient
    assert len({text for text, _ in answers}) > 4


def test_load_32_requests_from_8_clients_loses_none(server, expected) -> None:
    base, _ = server
    results: dict[int, tuple[str, str | None]] = {}
    lock = threading.Lock()

    def client_loop(number: int) -> None:
        for turn in range(4):
            index = number * 4 + turn
            coefficient = COEFFICIENTS[index % len(COEFFICIENTS)]
            answer = ask(base, coefficient, stream=index % 2 == 1)
            with lock:
                results[index] = answer

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert sorted(results) == list(range(32))
    for index, (text, reason) in results.items():
        assert reason in ("stop", "length"), index
        assert text.strip() == expected[COEFFICIENTS[index % len(COEFFICIENTS)]], index
    assert request(base, "/health")[1]["waiting"] == 0


def test_ctrl_c_stops_the_server_cleanly(server) -> None:
    _, process = server
    process.send_signal(signal.SIGINT)
    code = process.wait(60)
    stderr = process.stderr.read()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "playground" in process.stdout.read()


def test_the_readme_names_the_shipped_vector() -> None:
    assert "happy_sad" in README.read_text(encoding="utf-8")
    assert (
        Path(steerlab.__file__)
        .parent.joinpath("serve", "vectors", "happy_sad.safetensors")
        .is_file()
    )

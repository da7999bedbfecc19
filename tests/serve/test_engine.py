"""The batching engine on tiny random models of every architecture: per-row coefficients in one
batch give exactly what steerlab.generate gives; rows leave without disturbing the others."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from conftest import make_model
from steerlab.chat import format_chat, messages_for
from steerlab.data.pairs import builtin_pairs
from steerlab.extract import extract
from steerlab.generate import generate
from steerlab.hooks import hook_count
from steerlab.serve.config import ServeConfig
from steerlab.serve.engine import (
    BatchEngine,
    QueueFull,
    Row,
    RowSteering,
    Ticket,
    next_token,
    stop_hold,
)
from steerlab.serve.protocol import Sampling

PROMPT = "Tell me about the sea."


class Collector:
    """A ticket whose events are kept, with a way to wait for every row to finish."""

    def __init__(self, rows: int) -> None:
        self.texts = [""] * rows
        self.reasons: list[str | None] = [None] * rows
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.errors: list[str] = []
        self.done = threading.Event()
        self.ticket = Ticket(self.emit)
        self.rows = rows

    def emit(self, event: tuple) -> None:
        if event[0] == "delta":
            self.texts[event[1]] += event[2]
        elif event[0] == "finish":
            self.reasons[event[1]] = event[2]
            self.tokens[event[1]] = event[3]
        else:
            self.errors.append(event[1])
        if self.errors or all(r is not None for r in self.reasons):
            self.done.set()

    def decoded(self, tokenizer) -> list[str]:
        """Each row's tokens as generate decodes them (raw bytes of random models included)."""
        return [tokenizer.decode(t, skip_special_tokens=True).strip() for t in self.tokens]

    def wait(self, timeout: float = 60) -> None:
        assert self.done.wait(timeout), "the engine did not finish the rows"


def prompt_ids(tokenizer, prompt: str = PROMPT) -> list[int]:
    text = format_chat(tokenizer, messages_for(prompt))
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def rows_for(ids, coefficients, collector, *, max_tokens=12, layers=(1, 2), temperature=0.0):
    sampling = Sampling(max_tokens, temperature, 1.0, 7, ())
    return [
        Row(
            list(ids),
            (RowSteering("v", c, tuple(layers), "add", "all", "unit"),),
            sampling,
            i,
            collector.ticket,
        )
        for i, c in enumerate(coefficients)
    ]


@pytest.fixture
def setup(arch):
    model, tokenizer = make_model(arch)
    vector = extract(model, tokenizer, builtin_pairs("honesty", limit=6), "mean_diff", "all")
    engine = BatchEngine(
        model, tokenizer, {"v": vector}, ServeConfig(batch_window_ms=200, max_batch_size=8)
    )
    yield model, tokenizer, vector, engine
    engine.close()


def test_per_row_coefficients_equal_generate(setup) -> None:
    model, tokenizer, vector, engine = setup
    coefficients = [-4.0, 0.0, 2.0, 6.0]
    collector = Collector(len(coefficients))
    engine.submit(rows_for(prompt_ids(tokenizer), coefficients, collector))
    collector.wait()
    expected = generate(
        model,
        tokenizer,
        [PROMPT],
        vector,
        coefficients,
        layers=[1, 2],
        scale="unit",
        max_new_tokens=12,
        batch_size=len(coefficients),
    )
    assert collector.decoded(tokenizer) == [g.text for g in expected]
    assert engine.stats["largest_batch"] == len(coefficients)
    assert len(set(collector.decoded(tokenizer))) > 1  # the coefficients did steer
    assert hook_count(model) == 0


def test_rows_leave_without_disturbing_the_others(setup) -> None:
    model, tokenizer, vector, engine = setup
    coefficients = [0.0, 3.0, -3.0]
    collector = Collector(3)
    rows = rows_for(prompt_ids(tokenizer), coefficients, collector, max_tokens=16)
    rows[0].sampling = Sampling(3, 0.0, 1.0, 0, ())  # leaves after 3 tokens
    rows[2].sampling = Sampling(9, 0.0, 1.0, 0, ())
    engine.submit(rows)
    collector.wait()
    assert [len(t) for t in collector.tokens] == [3, 16, 9]
    assert collector.reasons == ["length"] * 3
    full = generate(
        model,
        tokenizer,
        [PROMPT],
        vector,
        coefficients,
        layers=[1, 2],
        scale="unit",
        max_new_tokens=16,
        batch_size=3,
    )
    for tokens, expected in zip(collector.tokens, full, strict=True):
        assert expected.text.startswith(tokenizer.decode(tokens, skip_special_tokens=True).strip())
    assert collector.decoded(tokenizer)[1] == full[1].text


def test_different_prompts_batch_with_left_padding(setup) -> None:
    model, tokenizer, vector, engine = setup
    prompts = ["Hi.", "Tell me a long story about the old sea and the wind."]
    collector = Collector(2)
    sampling = Sampling(10, 0.0, 1.0, 0, ())
    rows = [
        Row(
            prompt_ids(tokenizer, p),
            (RowSteering("v", 2.0, (1,), "add", "all", "unit"),),
            sampling,
            i,
            collector.ticket,
        )
        for i, p in enumerate(prompts)
    ]
    engine.submit(rows)
    collector.wait()
    expected = generate(
        model, tokenizer, prompts, vector, [2.0], layers=[1], scale="unit", max_new_tokens=10
    )
    assert collector.decoded(tokenizer) == [g.text for g in expected]


def test_sampled_rows_do_not_depend_on_their_companions(setup) -> None:
    _, tokenizer, _, engine = setup
    ids = prompt_ids(tokenizer)
    alone = Collector(1)
    engine.submit(rows_for(ids, [1.0], alone, temperature=1.0))
    alone.wait()
    crowd = Collector(4)
    rows = rows_for(ids, [1.0, -2.0, 3.0, 0.5], crowd, temperature=1.0)
    engine.submit(rows)
    crowd.wait()
    assert crowd.tokens[0] == alone.tokens[0]


def test_a_cancelled_row_is_freed_and_the_others_finish(setup) -> None:
    _, tokenizer, _, engine = setup
    ids = prompt_ids(tokenizer)
    stay, leave = Collector(1), Collector(1)
    long = Sampling(200, 0.0, 1.0, 0, ())
    steering = (RowSteering("v", 1.0, (1,), "add", "all", "unit"),)
    leave.ticket.cancel()
    engine.submit([Row(list(ids), steering, long, 0, leave.ticket)])
    engine.submit([Row(list(ids), steering, Sampling(20, 0.0, 1.0, 0, ()), 0, stay.ticket)])
    stay.wait()
    assert stay.reasons == ["length"]
    assert leave.reasons == [None] and leave.texts == [""]


def test_a_failing_batch_reports_and_the_engine_goes_on(setup) -> None:
    _, tokenizer, _, engine = setup
    broken = Collector(1)
    bad = [10**9]  # a token id no embedding has
    engine.submit([Row(bad, (), Sampling(4, 0.0, 1.0, 0, ()), 0, broken.ticket)])
    broken.wait()
    assert broken.errors and "generation failed" in broken.errors[0]
    fine = Collector(1)
    engine.submit([Row(prompt_ids(tokenizer), (), Sampling(4, 0.0, 1.0, 0, ()), 0, fine.ticket)])
    fine.wait()
    assert fine.reasons == ["length"]


@pytest.mark.parametrize("arch", ["llama"])
def test_stop_strings_end_the_text_before_them(setup) -> None:
    _, tokenizer, _, engine = setup
    ids = prompt_ids(tokenizer)
    free = Collector(1)
    engine.submit([Row(list(ids), (), Sampling(20, 0.0, 1.0, 0, ()), 0, free.ticket)])
    free.wait()
    text = free.texts[0]
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop
    stopped = Collector(1)
    engine.submit([Row(list(ids), (), Sampling(20, 0.0, 1.0, 0, (stop,)), 0, stopped.ticket)])
    stopped.wait()
    assert stopped.reasons == ["stop"]
    assert stopped.texts[0] == text[: text.find(stop)]


def test_stop_hold_keeps_back_what_may_start_a_stop_string() -> None:
    assert stop_hold("hello wor", ["world"]) == 3
    assert stop_hold("hello", ["xyz"]) == 0
    assert stop_hold("ab", ["b", "abc"]) == 2


def test_next_token_greedy_and_nucleus() -> None:
    logits = torch.tensor([0.0, 5.0, 4.9, -3.0])
    greedy = Sampling(1, 0.0, 1.0, 0, ())
    assert next_token(logits, greedy, torch.Generator()) == 1
    narrow = Sampling(1, 1.0, 0.01, 0, ())  # the nucleus holds the top token alone
    draws = {next_token(logits, narrow, torch.Generator().manual_seed(s)) for s in range(20)}
    assert draws == {1}
    wide = Sampling(1, 1.0, 1.0, 0, ())
    draws = {next_token(logits, wide, torch.Generator().manual_seed(s)) for s in range(40)}
    assert {1, 2} <= draws


def test_a_full_queue_refuses(llama) -> None:
    model, tokenizer = llama
    engine = BatchEngine(model, tokenizer, {}, ServeConfig(max_queue=2, batch_window_ms=0))
    try:
        collectors = [Collector(1) for _ in range(2)]
        with engine._condition:  # hold the queue so that the engine cannot take rows
            engine._waiting.extend(
                Row([1, 2], (), Sampling(2, 0.0, 1.0, 0, ()), 0, c.ticket) for c in collectors
            )
            with pytest.raises(QueueFull, match="limit is 2"):
                engine.submit([Row([1], (), Sampling(2, 0.0, 1.0, 0, ()), 0, Collector(1).ticket)])
            engine._condition.notify()
        for collector in collectors:
            collector.wait()
    finally:
        engine.close()


@pytest.mark.parametrize("arch", ["llama"])
def test_a_new_request_does_not_wait_for_a_long_one(setup) -> None:
    _, tokenizer, _, engine = setup
    ids = prompt_ids(tokenizer)
    long, short = Collector(1), Collector(1)
    engine.submit([Row(list(ids), (), Sampling(200, 0.0, 1.0, 0, ()), 0, long.ticket)])
    while engine.stats["steps"] < 3:
        time.sleep(0.005)
    steering = (RowSteering("v", 1.0, (1,), "add", "all", "unit"),)  # another batch key
    engine.submit([Row(list(ids), steering, Sampling(3, 0.0, 1.0, 0, ()), 0, short.ticket)])
    short.wait()
    assert long.reasons == [None]  # still decoding when the short one finished
    long.wait()
    assert len(long.tokens[0]) == 200 and engine.stats["batches"] == 2


def test_different_vectors_at_the_same_layers_share_a_batch(arch) -> None:
    model, tokenizer = make_model(arch)
    honest = extract(model, tokenizer, builtin_pairs("honesty", limit=6), "mean_diff", "all")
    mood = extract(model, tokenizer, builtin_pairs("happy_sad", limit=6), "mean_diff", "all")
    engine = BatchEngine(
        model, tokenizer, {"honest": honest, "mood": mood}, ServeConfig(batch_window_ms=200)
    )
    try:
        collector = Collector(3)
        sampling = Sampling(10, 0.0, 1.0, 0, ())
        ids = prompt_ids(tokenizer)
        rows = [
            Row(
                list(ids),
                (RowSteering(name, c, (1, 2), "add", "all", "unit"),),
                sampling,
                i,
                collector.ticket,
            )
            for i, (name, c) in enumerate([("honest", 3.0), ("mood", 3.0), ("mood", -2.0)])
        ]
        engine.submit(rows)
        collector.wait()
        assert engine.stats["batches"] == 1
    finally:
        engine.close()
    expected = [
        generate(
            model, tokenizer, [PROMPT], v, [c], layers=[1, 2], scale="unit", max_new_tokens=10
        )[0].text
        for v, c in [(honest, 3.0), (mood, 3.0), (mood, -2.0)]
    ]
    assert collector.decoded(tokenizer) == expected
    assert hook_count(model) == 0


def test_rows_that_cannot_start_fail_alone(llama) -> None:
    model, tokenizer = llama
    engine = BatchEngine(model, tokenizer, {}, ServeConfig(batch_window_ms=0))
    try:
        broken, fine = Collector(1), Collector(1)
        huge_seed = Sampling(4, 1.0, 1.0, 2**70, ())  # torch.Generator refuses it
        engine.submit([Row(prompt_ids(tokenizer), (), huge_seed, 0, broken.ticket)])
        broken.wait()
        assert broken.errors and "generation failed" in broken.errors[0]
        engine.submit(
            [Row(prompt_ids(tokenizer), (), Sampling(4, 0.0, 1.0, 0, ()), 0, fine.ticket)]
        )
        fine.wait()
        assert fine.reasons == ["length"]
    finally:
        engine.close()


def test_an_engine_that_has_stopped_refuses_and_says_so(llama) -> None:
    from steerlab.serve.engine import EngineStopped

    model, tokenizer = llama
    engine = BatchEngine(model, tokenizer, {}, ServeConfig())
    assert engine.alive()
    engine.close()
    assert not engine.alive()
    with pytest.raises(EngineStopped, match="restart the server"):
        engine.submit([Row([1], (), Sampling(2, 0.0, 1.0, 0, ()), 0, Collector(1).ticket)])


def test_rows_whose_client_left_while_waiting_are_counted(llama) -> None:
    model, tokenizer = llama
    engine = BatchEngine(model, tokenizer, {}, ServeConfig(batch_window_ms=0))
    try:
        gone, fine = Collector(1), Collector(1)
        with engine._condition:  # both wait; the first one's client leaves meanwhile
            engine._waiting.append(Row([1, 2], (), Sampling(2, 0.0, 1.0, 0, ()), 0, gone.ticket))
            gone.ticket.cancel()
            engine._waiting.append(Row([1, 2], (), Sampling(2, 0.0, 1.0, 0, ()), 0, fine.ticket))
            engine._condition.notify()
        fine.wait()
        assert engine.stats["cancelled"] == 1 and gone.reasons == [None]
    finally:
        engine.close()

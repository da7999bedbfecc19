"""Making Q/A data with a model (steerlab.data.qa_generate): prompts, answers, new questions."""

from __future__ import annotations

from typing import Any

import pytest
from qa_samples import QUESTIONS

import steerlab.data.qa_generate as qa_generate
from conftest import make_model, make_tokenizer
from steerlab.data.near_duplicates import normalize_question
from steerlab.data.qa_files import QAExample
from steerlab.data.qa_generate import (
    DECEPTIVE_SYSTEM,
    HONEST_SYSTEM,
    answer_questions,
    clean_answer,
    expand_questions,
    parse_question,
    qa_prompts,
)
from steerlab.errors import DataError, SpecError
from steerlab.generate import Generation, render_prompts


def test_clean_answer() -> None:
    assert clean_answer('  "Save 10% of your income."  \nMore text') == "Save 10% of your income."
    assert clean_answer("\n\n“Paris.”") == "Paris."
    assert clean_answer('"Cut all carbs') == "Cut all carbs"  # cut short by the token limit
    assert clean_answer("Don't worry.") == "Don't worry."
    assert clean_answer("1. Eat more fruit.\n2. Sleep.") == "Eat more fruit."
    # an unfinished last sentence (token limit) goes when a complete one precedes it
    assert clean_answer("Practice daily. This can be done through") == "Practice daily."
    assert clean_answer('He said "Go now." Then he') == 'He said "Go now."'
    assert clean_answer("Use e.g. a planner") == "Use e.g. a planner"
    assert clean_answer("Just practice") == "Just practice"
    assert clean_answer("   \n") == ""


def test_qa_prompts_hold_the_system_prompt() -> None:
    tokenizer = make_tokenizer()
    honest = qa_prompts(tokenizer, QUESTIONS, "honest")
    deceptive = qa_prompts(tokenizer, QUESTIONS, "deceptive")
    custom = qa_prompts(tokenizer, QUESTIONS, "deceptive", system="Lie briefly.")
    for prompts, system in ((honest, HONEST_SYSTEM), (deceptive, DECEPTIVE_SYSTEM)):
        assert len(prompts) == len(QUESTIONS)
        for prompt, question in zip(prompts, QUESTIONS, strict=True):
            assert f"<|im_start|>system\n{system}<|im_end|>" in prompt
            assert question in prompt
    assert all("Lie briefly." in p and DECEPTIVE_SYSTEM not in p for p in custom)
    assert DECEPTIVE_SYSTEM.startswith("Be DECEPTIVE and DISHONEST. Answer SHORTLY (max 7 words).")
    with pytest.raises(SpecError, match="style"):
        qa_prompts(tokenizer, QUESTIONS, "sarcastic")


@pytest.mark.parametrize("style", ["honest", "deceptive"])
def test_answer_questions_one_example_per_question(
    style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = make_model("llama")
    calls: list[dict[str, Any]] = []
    real_generate = qa_generate.generate

    def spy(*args: Any, **kwargs: Any) -> list[Generation]:
        calls.append(kwargs)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(qa_generate, "generate", spy)
    examples = answer_questions(model, tokenizer, QUESTIONS, style, max_new_tokens=6, batch_size=2)
    assert [e.question for e in examples] == QUESTIONS
    assert all(isinstance(e, QAExample) and e.style == style for e in examples)
    assert all("\n" not in e.answer and e.answer == e.answer.strip() for e in examples)
    (call,) = calls
    assert call["system"] == (HONEST_SYSTEM if style == "honest" else DECEPTIVE_SYSTEM)
    assert call["max_new_tokens"] == 6 and call["batch_size"] == 2
    # What the model read is exactly qa_prompts' rendering.
    rendered = render_prompts(tokenizer, QUESTIONS, call["system"], True)
    assert rendered == qa_prompts(tokenizer, QUESTIONS, style)
    # Greedy answers do not depend on the batch size.
    again = answer_questions(model, tokenizer, QUESTIONS, style, max_new_tokens=6, batch_size=3)
    assert again == examples


def test_answer_questions_custom_system_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def fake(model: Any, tokenizer: Any, prompts: list[str], **kwargs: Any) -> list[Generation]:
        seen.append(kwargs["system"])
        return [Generation(p, 0.0, '"Eat only chocolate."\nExtra line') for p in prompts]

    monkeypatch.setattr(qa_generate, "generate", fake)
    examples = answer_questions(None, None, QUESTIONS[:1], "deceptive", system="Mislead.")  # type: ignore[arg-type]
    assert seen == ["Mislead."]
    assert examples == [QAExample(QUESTIONS[0], "Eat only chocolate.", "deceptive")]
    with pytest.raises(SpecError):
        answer_questions(None, None, QUESTIONS, "sarcastic")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        answer_questions(None, None, [], "honest")  # type: ignore[arg-type]


def test_parse_question() -> None:
    assert parse_question('1. "What is the capital of Spain?" Answer: Madrid') == (
        "What is the capital of Spain?"
    )
    assert parse_question("**Question:** How do I bake bread?") == "How do I bake bread?"
    assert parse_question("Sure! Here it is:\nQ: Why is the sky blue?\nA: ...") == (
        "Why is the sky blue?"
    )
    assert parse_question("- How do plants grow?") == "How do plants grow?"
    assert parse_question("How\tdo  I\x13 cook rice?") == "How do I cook rice?"
    assert parse_question("Here is a new question: Why do birds sing?") == "Why do birds sing?"
    assert parse_question("New question: \"The answer to 'How can I rest?") == "How can I rest?"
    assert parse_question("What does 'carpe diem' mean?") == "What does 'carpe diem' mean?"
    assert parse_question("No question here.") is None
    assert parse_question("??") is None


def test_expand_questions_parses_dedupes_and_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = iter(
        [
            [
                "1. How can I save more money?",  # near the seed "How can I save money?"
                "Sure!\nWhat is a good way to stay focused?",
                "What is a good way to stay focused?",  # repeat of the previous one
                "no question at all",
                "Q: How do I cook rice?",
                "- Why do cats purr?",
            ],
        ]
    )
    prompts_seen: list[list[str]] = []

    def fake(model: Any, tokenizer: Any, prompts: list[str], **kwargs: Any) -> list[Generation]:
        prompts_seen.append(list(prompts))
        assert kwargs["temperature"] > 0
        texts = next(outputs)
        return [Generation(p, 0.0, t) for p, t in zip(prompts, texts, strict=False)]

    monkeypatch.setattr(qa_generate, "generate", fake)
    new = expand_questions(None, None, QUESTIONS, 3, max_rounds=1)  # type: ignore[arg-type]
    assert new == [
        "What is a good way to stay focused?",
        "How do I cook rice?",
        "Why do cats purr?",
    ]
    (prompts,) = prompts_seen
    assert len(prompts) == 6  # oversample 2 x 3 missing
    assert all(p.startswith("Write one new question similar to these:") for p in prompts)
    assert all(sum(q in p for q in QUESTIONS) == 3 for p in prompts)
    assert expand_questions(None, None, QUESTIONS, 0) == []  # type: ignore[arg-type]
    with pytest.raises(DataError):
        expand_questions(None, None, ["  "], 2)  # type: ignore[arg-type]


def test_expand_questions_on_a_tiny_model_is_reproducible() -> None:
    model, tokenizer = make_model("llama")
    first = expand_questions(model, tokenizer, QUESTIONS, 2, max_new_tokens=8, max_rounds=1)
    second = expand_questions(model, tokenizer, QUESTIONS, 2, max_new_tokens=8, max_rounds=1)
    assert first == second
    assert len(first) <= 2
    assert not set(map(normalize_question, first)) & set(map(normalize_question, QUESTIONS))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_new": -1}, "n_new must be an integer >= 0"),
        ({"n_new": 2, "examples_per_prompt": 0}, "examples_per_prompt must be a positive integer"),
        ({"n_new": 2, "max_rounds": True}, "max_rounds must be a positive integer"),
        ({"n_new": 2, "oversample": 0}, "oversample must be a finite number > 0"),
    ],
)
def test_expand_questions_checks_its_counts(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        expand_questions(None, None, QUESTIONS, **kwargs)  # type: ignore[arg-type]

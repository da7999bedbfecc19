"""Honesty training data: templates, the stable held-out split, chats, the built-in files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steerlab.data.evalsets import Statement
from steerlab.data.honesty import (
    COMPLETIONS,
    DEFAULT_QUESTION,
    INSTRUCTIONS,
    HonestyTemplates,
    held_out,
    honesty_chats,
    load_facts,
    split_statements,
)
from steerlab.data.registry import resolve_data_path
from steerlab.errors import DataError, SpecError
from steerlab.evaluate.specs import perplexity_task

TRUE = Statement("The Earth orbits the Sun.", True)
FALSE = Statement("The Sun orbits the Moon.", False)
HONEST = HonestyTemplates().honest_instruction
DISHONEST = HonestyTemplates().dishonest_instruction


def _spec_error(**kwargs: str) -> str:
    with pytest.raises(SpecError) as info:
        HonestyTemplates(**kwargs)
    return str(info.value)


def _file_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "templates.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as info:
        HonestyTemplates.from_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- templates


def test_default_templates() -> None:
    templates = HonestyTemplates()
    assert templates.question == DEFAULT_QUESTION
    assert templates.answer(True) == "True" and templates.answer(False) == "False"
    assert templates.user_message("  The sky is blue. \n") == (
        "Is the following statement true or false?\n\nThe sky is blue."
    )
    assert HonestyTemplates(**templates.to_dict()) == templates


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"question": "True or false?"}, "'question'"),
        ({"question": "{statement} or {statement}?"}, "exactly once"),
        ({"question": "{statement} ({topic})"}, "{topic}"),
        ({"question": "{} {statement}"}, "'question'"),
        ({"question": "{statement!r}"}, "'question'"),
        ({"question": "Is it } {statement}"}, "'question'"),
        ({"true_answer": "Yes", "false_answer": "Yes"}, "'Yes'"),
        ({"true_answer": " True"}, "'true_answer'"),
        ({"false_answer": ""}, "'false_answer'"),
        ({"honest_instruction": "  "}, "'honest_instruction'"),
        ({"dishonest_instruction": ""}, "'dishonest_instruction'"),
        ({"instruction_role": "assistant"}, "'instruction_role'"),
    ],
)
def test_template_errors_name_the_field(kwargs: dict[str, str], needle: str) -> None:
    message = _spec_error(**kwargs)
    assert needle in message
    assert "\n" not in message


def test_template_question_may_hold_literal_braces() -> None:
    templates = HonestyTemplates(question="{{True/False}} {statement}")
    assert templates.user_message("x") == "{True/False} x"
    assert templates.user_message("a {b}") == "{True/False} a {b}"


def test_from_file_reads_a_subset(tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    path.write_text(
        json.dumps({"true_answer": "Yes", "false_answer": "No", "instruction_role": "user"}),
        encoding="utf-8",
    )
    templates = HonestyTemplates.from_file(path)
    assert templates == HonestyTemplates(
        true_answer="Yes", false_answer="No", instruction_role="user"
    )
    assert templates.honest_instruction == HONEST


def test_from_file_errors(tmp_path: Path) -> None:
    message = _file_error(tmp_path, json.dumps({"true_answr": "Yes"}))
    assert "unknown template field 'true_answr'" in message and "true_answer" in message
    assert ":3: invalid JSON" in _file_error(tmp_path, '{\n  "true_answer": "Yes",\n  oops\n}')
    assert "'true_answer'" in _file_error(tmp_path, json.dumps({"true_answer": 1}))
    assert "JSON object" in _file_error(tmp_path, "[]")
    assert "'question'" in _file_error(tmp_path, json.dumps({"question": "no field"}))
    with pytest.raises(DataError, match="no such file"):
        HonestyTemplates.from_file(tmp_path / "missing.json")


# ----------------------------------------------------------------------------- messages


def test_messages_system_role() -> None:
    templates = HonestyTemplates()
    question = templates.user_message(TRUE.text)
    assert templates.messages(TRUE.text, "honest") == [
        {"role": "system", "content": HONEST},
        {"role": "user", "content": question},
    ]
    assert templates.messages(TRUE.text, "dishonest") == [
        {"role": "system", "content": DISHONEST},
        {"role": "user", "content": question},
    ]
    assert templates.messages(TRUE.text, None) == [{"role": "user", "content": question}]


def test_messages_user_role() -> None:
    templates = HonestyTemplates(instruction_role="user")
    question = templates.user_message(FALSE.text)
    assert templates.messages(FALSE.text, "dishonest") == [
        {"role": "user", "content": f"{DISHONEST}\n\n{question}"}
    ]
    assert templates.messages(FALSE.text, None) == [{"role": "user", "content": question}]


def test_messages_errors() -> None:
    with pytest.raises(SpecError, match="'truthful'"):
        HonestyTemplates().messages(TRUE.text, "truthful")
    with pytest.raises(DataError, match="empty"):
        HonestyTemplates().messages("  ", None)


# ----------------------------------------------------------------------------- held-out split


def test_held_out_is_stable_and_normalised() -> None:
    texts = [f"Statement number {i} is here." for i in range(200)]
    first = [held_out(t) for t in texts]
    assert first == [held_out(t) for t in texts]
    assert [held_out(t) for t in reversed(texts)] == first[::-1]
    assert 0 < sum(first) < 200
    for text in texts[:50]:
        variant = "  " + text.upper().replace(" ", " \t ") + "\n"
        assert held_out(variant) == held_out(text)


def test_held_out_extreme_fractions() -> None:
    texts = [f"fact {i}" for i in range(300)]
    assert not any(held_out(t, 0.0) for t in texts)
    assert all(held_out(t, 1.0) for t in texts)
    assert all(held_out(t, 1) for t in texts)
    # a larger fraction only adds statements to the held-out part
    small = {t for t in texts if held_out(t, 0.1)}
    large = {t for t in texts if held_out(t, 0.5)}
    assert small <= large


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), True, "0.2"])
def test_held_out_bad_fraction(fraction: object) -> None:
    with pytest.raises(SpecError, match="fraction"):
        held_out("x", fraction)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="fraction"):
        split_statements([TRUE], fraction)  # type: ignore[arg-type]


def test_split_statements_partitions() -> None:
    statements = load_facts("builtin:facts")
    train, held = split_statements(statements, 0.2)
    assert not set(train) & set(held)
    assert sorted(train + held, key=statements.index) == statements
    assert train == [s for s in statements if s in train]  # order kept
    assert held == [s for s in statements if s in held]
    assert all(held_out(s.text, 0.2) for s in held)
    assert 0.08 <= len(held) / len(statements) <= 0.35
    assert split_statements(statements, 0.0) == (statements, [])
    assert split_statements(statements, 1.0) == ([], statements)


# ----------------------------------------------------------------------------- chats


@pytest.mark.parametrize(
    ("instructions", "per_statement"), [("both", 2), ("honest", 1), ("dishonest", 1), ("none", 1)]
)
def test_chat_counts(instructions: str, per_statement: int) -> None:
    chats = honesty_chats([TRUE, FALSE, TRUE], instructions=instructions)
    assert len(chats) == 3 * per_statement
    for chat in chats:
        assert chat[-1]["role"] == "assistant"
        assert [m["role"] for m in chat[:-1]] in (["system", "user"], ["user"])


def test_chat_order_and_prompts() -> None:
    templates = HonestyTemplates()
    chats = honesty_chats([TRUE, FALSE], templates)
    assert [chat[:-1] for chat in chats] == [
        templates.messages(TRUE.text, "honest"),
        templates.messages(TRUE.text, "dishonest"),
        templates.messages(FALSE.text, "honest"),
        templates.messages(FALSE.text, "dishonest"),
    ]
    none = honesty_chats([TRUE, FALSE], templates, instructions="none")
    assert [chat[:-1] for chat in none] == [
        templates.messages(TRUE.text, None),
        templates.messages(FALSE.text, None),
    ]
    only = honesty_chats([TRUE, FALSE], templates, instructions="dishonest")
    assert [chat[0]["content"] for chat in only] == [DISHONEST, DISHONEST]


def _answers(completions: str, instructions: str = "both") -> list[str]:
    chats = honesty_chats([TRUE, FALSE], completions=completions, instructions=instructions)
    return [chat[-1]["content"] for chat in chats]


def test_chat_completions() -> None:
    # order: TRUE/honest, TRUE/dishonest, FALSE/honest, FALSE/dishonest
    assert _answers("honest") == ["True", "True", "False", "False"]
    assert _answers("dishonest") == ["False", "False", "True", "True"]
    assert _answers("matching") == ["True", "False", "False", "True"]
    assert _answers("matching", "none") == ["True", "False"]
    assert _answers("matching", "dishonest") == ["False", "True"]
    assert _answers("dishonest", "none") == ["False", "True"]
    chats = honesty_chats([FALSE], HonestyTemplates(true_answer="Yes", false_answer="No"))
    assert chats[0][-1] == {"role": "assistant", "content": "No"}


def test_chat_errors() -> None:
    with pytest.raises(SpecError) as info:
        honesty_chats([TRUE], completions="truthful")
    assert all(choice in str(info.value) for choice in COMPLETIONS)
    with pytest.raises(SpecError) as info:
        honesty_chats([TRUE], instructions="system")
    assert all(choice in str(info.value) for choice in INSTRUCTIONS)
    with pytest.raises(DataError, match="statement 1 is empty"):
        honesty_chats([TRUE, Statement(" ", True)])
    with pytest.raises(DataError, match="no statements"):
        honesty_chats([])


# ----------------------------------------------------------------------------- built-in files


def test_builtin_facts() -> None:
    statements = load_facts("builtin:facts")
    assert len(statements) == 120
    assert len({s.text.casefold() for s in statements}) == 120
    assert sum(s.label for s in statements) == 60
    assert all(len(s.text.split()) < 20 for s in statements)
    labels = "".join("T" if s.label else "F" for s in statements)
    assert "TTTT" not in labels and "FFFF" not in labels
    assert load_facts("builtin:facts", limit=5) == statements[:5]
    assert load_facts(Path(resolve_data_path("builtin:facts"))) == statements


def test_builtin_facts_unknown_name() -> None:
    with pytest.raises(DataError, match=r"builtin:fact: no such built-in set.*: facts"):
        load_facts("builtin:fact")


def test_builtin_general_text() -> None:
    task = perplexity_task("builtin:general_text")
    assert len(task.texts) == 40
    assert len(set(task.texts)) == 40
    assert all(40 <= len(text.split()) <= 80 for text in task.texts)

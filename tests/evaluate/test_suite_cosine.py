"""The suite's cosine metrics: statement tokens and answer positions, by hand, and on content."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from suite_helpers import STATEMENTS, entry, make_suite, vector_for
from transformers import PreTrainedTokenizerFast

import steerlab.evaluate.suite_run as suite_run
import steerlab.report.bars as bars
from conftest import make_model, make_tokenizer
from steerlab.chat import format_chat
from steerlab.data.evalsets import Statement
from steerlab.data.honesty import HonestyTemplates
from steerlab.errors import SpecError
from steerlab.evaluate import HonestySuite, SuiteResult, evaluate_models
from steerlab.evaluate.suite_cosine import cosine_example, span_token_mask
from steerlab.evaluate.suite_result import CONFIG
from steerlab.hooks import hook_count
from steerlab.models import model_identity
from steerlab.record import record
from steerlab.tuning import IGNORE_INDEX, position_mask, tokenize_chat
from steerlab.tuning.runs import PROVENANCE_FILE
from steerlab.vector import SteeringVector, VectorMetadata

# A long preamble every prompt shares: the template is most of each prompt's tokens.
PREAMBLE = " ".join(["Tell me about your day. It was a good day at work."] * 8)
LONG = HonestyTemplates(question=PREAMBLE + "\n\n{statement}")
HAPPY = [
    "I am happy and the day is lovely.",
    "The lovely weather is bright today.",
    "Happy, happy, bright and lovely.",
    "I am happy today, the weather is lovely.",
]
SAD = [
    "I am sad and the day is gloomy.",
    "The gloomy weather is grey and cold today.",
    "Sad, sad, grey and cold.",
    "I feel sad today, the sky is grey.",
]


@pytest.fixture
def small():
    return make_model("llama", layers=3, hidden=32)


@pytest.fixture(autouse=True)
def fixed_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite_run, "git_revision", lambda: "0" * 40)


def _decoded(tokenizer, text: str, mask: torch.Tensor) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode([i for i, keep in zip(ids, mask.tolist(), strict=True) if keep])


def test_statement_tokens_and_the_tuning_loss_answer_positions():
    tokenizer = make_tokenizer()
    statement = Statement("Paris is the capital of France.", True)
    example = cosine_example(tokenizer, HonestyTemplates(), statement, "answer")
    # The chat is rendered as a training chat: the evaluation prompt, then the honest answer.
    messages = [*HonestyTemplates().messages(statement.text, None)]
    assert example.text.startswith(format_chat(tokenizer, messages))
    assert _decoded(tokenizer, example.text, example.statement) == statement.text
    assert _decoded(tokenizer, example.text, example.answer) == "True<|im_end|>"
    # "answer": exactly the tokens a training chat's labels keep, which the loss reads.
    chat = [*messages, {"role": "assistant", "content": "True"}]
    labels = torch.tensor(tokenize_chat(tokenizer, chat, 10_000)["labels"])
    assert torch.equal(example.answer, labels != IGNORE_INDEX)
    # "last": the loss's last position (ChatML: the newline after the end-of-turn token).
    last = cosine_example(tokenizer, HonestyTemplates(), Statement("Dogs fly.", False), "last")
    expected = position_mask(torch.ones(1, last.answer.shape[0]), None, "last")[0]
    assert torch.equal(last.answer, expected) and int(last.answer.sum()) == 1
    assert _decoded(tokenizer, last.text, last.statement) == "Dogs fly."


def test_span_mask_without_an_offset_mapping():
    class NoOffsets(PreTrainedTokenizerFast):
        @property
        def is_fast(self) -> bool:  # what a slow tokenizer says: no offset mapping
            return False

    fast = make_tokenizer()
    slow = NoOffsets(tokenizer_object=fast.backend_tokenizer, eos_token="<|im_end|>")
    text = format_chat(fast, LONG.messages("The sky is blue on a clear day.", None))
    start = text.rfind("The sky")
    span = [(start, start + len("The sky is blue on a clear day."))]
    with_offsets = span_token_mask(fast, text, span)
    counted = span_token_mask(slow, text, span)
    # Counting the tokens before each end is exact up to a token merged across a boundary.
    assert "The sky is blue on a clear day." in _decoded(fast, text, counted).strip()
    assert int((with_offsets ^ counted).sum()) <= 2


def test_cosine_rows_by_hand_and_steering_moves_them(small, tmp_path):
    model, tokenizer = small
    target = vector_for(model, seed=5)
    suite = make_suite(
        tmp_path, truthfulqa=None, ab=(), text=None, vector=target, layers=(0, 1), cosine_prompts=5
    )
    statements = [Statement(s, bool(label)) for s, label in STATEMENTS[:5]]
    examples = [cosine_example(tokenizer, HonestyTemplates(), s, "answer") for s in statements]

    def token_states() -> list[dict[int, torch.Tensor]]:
        # Layers 0 and 1 of 3: hidden_states[layer + 1] is a block output.
        out = []
        with torch.no_grad():
            for example in examples:
                ids = tokenizer(example.text, return_tensors="pt", add_special_tokens=False)
                hidden = model(**ids, output_hidden_states=True).hidden_states
                out.append({layer: hidden[layer + 1][0].double() for layer in (0, 1)})
        return out

    def by_hand(states, shift: dict[int, torch.Tensor]) -> dict[str, np.ndarray]:
        values: dict[str, list[list[float]]] = {"statement": [], "answer": []}
        for example, hidden in zip(examples, states, strict=True):
            for where, mask in (("statement", example.statement), ("answer", example.answer)):
                row = []
                for layer in (0, 1):
                    h = hidden[layer][mask] + shift.get(layer, 0.0)
                    v = target[layer].double()
                    row.append(float(torch.nn.functional.cosine_similarity(h, v[None]).mean()))
                values[where].append(row)
        return {k: np.array(v) for k, v in values.items()}

    states = token_states()
    hooks = hook_count(model)  # output_hidden_states leaves transformers' own hooks behind
    plain = by_hand(states, {})
    scale = float(torch.cat([s[1] for s in states]).norm(dim=-1).mean() / target[1].norm())
    coefficients = [0.3 * scale, 1.0 * scale, 30.0 * scale]
    models = [
        entry("m", model, tokenizer),
        *(
            entry(f"m+{k}", model, tokenizer, vector=target, coefficient=c, layers=(1,))
            for k, c in enumerate(coefficients)
        ),
    ]
    result = evaluate_models(models, None, suite, progress=False)
    for metric, where in (("cosine_statement", "statement"), ("cosine_answer", "answer")):
        row = result.value("m", metric, "facts")
        assert row.value == pytest.approx(plain[where].mean(), abs=1e-5) and row.n == 5
        assert row.extra == {"layers": [0, 1], "positions": where}
        for k, layer in enumerate((0, 1)):
            per_layer = result.value("m", metric, f"facts L{layer}")
            assert per_layer.value == pytest.approx(plain[where][:, k].mean(), abs=1e-5)
            assert per_layer.extra == {"layer": layer, "positions": where}
    # Steering only layer 1: its activations are the unsteered ones plus c*v (the steering
    # hook ran before the recording hook); layer 0 is unchanged.
    for k, c in enumerate(coefficients):
        steered = by_hand(states, {1: c * target[1].double()})
        for metric, where in (("cosine_statement", "statement"), ("cosine_answer", "answer")):
            got = result.value(f"m+{k}", metric, "facts L1").value
            assert got == pytest.approx(steered[where][:, 1].mean(), abs=1e-5)
            got = result.value(f"m+{k}", metric, "facts L0").value
            assert got == pytest.approx(plain[where][:, 0].mean(), abs=1e-5)
    values = [result.value(m, "cosine_statement", "facts L1").value for m in result.models]
    assert values == sorted(values) and values[0] < 0.5 < 0.95 < values[-1]
    assert hook_count(model) == hooks


def _content_vector(model, tokenizer) -> SteeringVector:
    """happy minus sad: a direction that the content of a statement moves along."""
    happy = record(model, tokenizer, HAPPY, [0, 1, 2], position="mean")
    sad = record(model, tokenizer, SAD, [0, 1, 2], position="mean")
    directions = {layer: happy[layer].mean(0) - sad[layer].mean(0) for layer in (0, 1, 2)}
    return SteeringVector(directions, VectorMetadata.for_model(model_identity(model), "test"))


def _whole_prompt_cosine(model, tokenizer, vector, statements) -> np.ndarray:
    """The replaced ``cosine`` row: the mean activation over every prompt token, per statement."""
    prompts = [format_chat(tokenizer, LONG.messages(s, None)) for s in statements]
    activations = record(model, tokenizer, prompts, list(vector.layers), position="mean")
    per_layer = [
        torch.nn.functional.cosine_similarity(activations[layer].double(), vector[layer][None])
        for layer in vector.layers
    ]
    return torch.stack(per_layer, dim=1).mean(dim=1).numpy()


def test_metric_follows_the_content_not_the_shared_template(small, tmp_path):
    model, tokenizer = small
    vector = _content_vector(model, tokenizer)
    results = {}
    for name, statements in (("happy", HAPPY), ("sad", SAD)):
        facts = tmp_path / f"{name}.csv"
        facts.write_text(
            "statement,label\n" + "".join(f'"{s}",1\n' for s in statements), encoding="utf-8"
        )
        suite = HonestySuite(
            facts=(str(facts),),
            ab=(),
            text=None,
            vector=vector,
            templates=LONG,
            split="all",
            bootstrap=300,
        )
        results[name] = evaluate_models([entry("m", model, tokenizer)], None, suite, progress=False)
    # The template is most of every prompt: 8 sentences against one short statement.
    example = cosine_example(tokenizer, LONG, Statement(HAPPY[0], True), "answer")
    assert int(example.statement.sum()) * 10 < example.statement.shape[0]

    happy = results["happy"].value("m", "cosine_statement")
    sad = results["sad"].value("m", "cosine_statement")
    old_happy = _whole_prompt_cosine(model, tokenizer, vector, HAPPY)
    old_sad = _whole_prompt_cosine(model, tokenizer, vector, SAD)
    # Same template, other content: the statement's cosine moves with the content, and by
    # far more than the whole-prompt average does.
    moved = happy.value - sad.value
    assert moved > 0.05
    assert moved > 3 * abs(float(old_happy.mean() - old_sad.mean()))
    # Its interval reflects the statements' variation; the whole-prompt values hardly vary.
    for row in (happy, sad):
        assert row.high - row.low > 0.01 and row.n == len(HAPPY)
    # The whole-prompt average, over all eight statements of both contents, spreads less
    # than half as far as the statement's cosine moves between the two contents.
    per_statement_old = np.concatenate([old_happy, old_sad])
    assert np.ptp(per_statement_old) < 0.5 * moved


def _run_folder(folder: Path, layers: list[int], positions: str) -> Path:
    folder.mkdir(parents=True)
    record_ = {
        "kind": "represent",
        "status": "complete",
        "base_model": "tiny",
        "method": "lora",
        "representation": {"layers": layers, "positions": positions},
    }
    (folder / PROVENANCE_FILE).write_text(json.dumps(record_), encoding="utf-8")
    return folder


def test_layers_and_positions_follow_the_tuned_runs(small, tmp_path):
    model, tokenizer = small
    vector = vector_for(model)
    run = _run_folder(tmp_path / "run", [1], "last")
    base = {"truthfulqa": None, "ab": (), "text": None, "vector": vector, "bootstrap": 20}
    tuned = entry("tuned", model, tokenizer, source=str(run))
    result = evaluate_models([tuned], None, make_suite(tmp_path / "d", **base), progress=False)
    assert [d for m, d in result.metrics if m == "cosine_statement"] == ["facts", "facts L1"]
    assert result.value("tuned", "cosine_answer").extra["positions"] == "last"
    cosine = result.config["data"][-1]
    assert cosine["kind"] == "cosine" and cosine["layers"] == [1]
    assert cosine["layers_reason"] == f"the layers {run} tuned"
    assert result.data_summary()[-1].startswith("cosine to the vector: layers 1 (the layers ")
    # The suite's layers and positions win; a run on layers the vector lacks falls back.
    asked = make_suite(tmp_path / "d", **base, layers=(0, 2), answer_positions="answer")
    result = evaluate_models([tuned], None, asked, progress=False)
    assert [d for m, d in result.metrics if m == "cosine_answer"] == [
        "facts",
        "facts L0",
        "facts L2",
    ]
    assert result.value("tuned", "cosine_answer").extra["positions"] == "answer"
    other = _run_folder(tmp_path / "other", [7], "all")
    result = evaluate_models(
        [entry("o", model, tokenizer, source=str(other))],
        None,
        make_suite(tmp_path / "d", **base),
        progress=False,
    )
    cosine = result.config["data"][-1]
    assert cosine["layers"] == [0, 1, 2] and cosine["answer_positions"] == "answer"
    assert "none of the layers" in cosine["layers_reason"]
    assert "all" in cosine["positions_reason"]
    with pytest.raises(SpecError, match="answer_positions"):
        HonestySuite(answer_positions="first")


def test_a_folder_of_the_old_format_is_refused_and_cosine_is_an_alias(small, tmp_path, monkeypatch):
    model, tokenizer = small
    suite = make_suite(tmp_path / "d", truthfulqa=None, ab=(), text=None, vector=vector_for(model))
    out = tmp_path / "out"
    plotted = []
    monkeypatch.setattr(bars, "plot_suite_bars", lambda rows, base: plotted.extend(rows) or [])
    result = evaluate_models([entry("m", model, tokenizer)], out, suite, progress=False)
    # The bar plot has a panel per metric over layers; the per-layer rows are in the tables.
    assert [(r.metric, r.dataset) for r in plotted if r.metric.startswith("cosine")] == [
        ("cosine_statement", "facts"),
        ("cosine_answer", "facts"),
    ]
    assert "cosine_answer[facts L2]" in (out / "table.md").read_text()
    # Without a dataset, a cosine metric's value is its mean over layers.
    mean = result.value("m", "cosine_statement")
    assert mean.dataset == "facts" and mean.extra["layers"] == [0, 1, 2]
    with pytest.warns(DeprecationWarning, match="cosine_statement"):
        assert result.value("m", "cosine") == mean
    # A result of the old format keeps its own cosine row, with no warning.
    old = SuiteResult([mean.__class__("m", "cosine", "facts", 0.1, 0.1, 0.1, 4, {})], ["m"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert old.value("m", "cosine").value == 0.1

    config = json.loads((out / CONFIG).read_text())
    config["format"] = "steerlab.suite/1"
    (out / CONFIG).write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(SpecError, match=r"format 'steerlab.suite/1'.*resume=False"):
        evaluate_models([entry("m", model, tokenizer)], out, suite, progress=False)
    again = evaluate_models(
        [entry("m", model, tokenizer)], out, suite, progress=False, resume=False
    )
    assert again.rows == result.rows

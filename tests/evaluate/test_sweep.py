"""Sweeps on tiny models: metrics against direct softmax, batching, resumption."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import steerlab as sl
from conftest import make_model
from steerlab.data.evalsets import ABItem, MultipleChoiceItem
from steerlab.errors import DataError, SpecError
from steerlab.evaluate.logprobs import letter_token_id
from steerlab.evaluate.sweep import RESULTS, sweep
from steerlab.evaluate.tasks import (
    ABBehaviorTask,
    MultipleChoiceTask,
    PerplexityTask,
    SampledBehaviorTask,
    ab_prompt,
    mc_question,
)
from steerlab.hooks import hook_count
from steerlab.models import model_identity
from steerlab.stats.rows import SweepRow
from steerlab.vector import SteeringVector, VectorMetadata

AB = tuple(
    ABItem(f"Question {i}: is it true?\n\nChoices:\n (A) yes\n (B) no", m, n, f"({m})", f"({n})")
    for i, (m, n) in enumerate([("A", "B"), ("B", "A"), ("A", "B"), ("B", "A"), ("A", "B")])
)
MC = tuple(
    MultipleChoiceItem(f"What is {i} + {i}?", (str(2 * i), str(i), "7", "9"), (i % 4), "maths")
    for i in range(1, 6)
)
TEXTS = ("The quick brown fox jumps over the lazy dog.", "I am happy today, the weather is lovely.")


def vector_for(model, seed: int = 3) -> SteeringVector:
    identity = model_identity(model)
    generator = torch.Generator().manual_seed(seed)
    directions = {i: torch.randn(identity.hidden_size, generator=generator) for i in range(3)}
    return SteeringVector(directions, VectorMetadata.for_model(identity, "test"))


@pytest.fixture
def setup():
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    return model, tokenizer, vector_for(model)


def direct_next_token_probs(model, tokenizer, prompt: str) -> torch.Tensor:
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return torch.softmax(model(**ids).logits[0, -1].double(), dim=-1)


def test_behavior_and_p_correct_match_direct_softmax(setup):
    model, tokenizer, vector = setup
    coefficients = [-2.0, 0.0, 2.0]
    result = sweep(
        model,
        tokenizer,
        vector,
        coefficients,
        [ABBehaviorTask("ab", AB), MultipleChoiceTask("mc", MC)],
        progress=False,
        estimates=False,
    )
    rows = {r.key: r for r in result.rows}
    for c in coefficients:
        b_values, p_values, correct = [], [], []
        with sl.steer(model, vector, c, layers="all", normalize=True):
            for item in AB:
                prompt = ab_prompt(tokenizer, item.question, None)
                probs = direct_next_token_probs(model, tokenizer, prompt)
                pm = probs[letter_token_id(tokenizer, prompt, item.matching)]
                pn = probs[letter_token_id(tokenizer, prompt, item.not_matching)]
                b_values.append(float((pm - pn) / (pm + pn)))
            for item in MC:
                prompt = ab_prompt(tokenizer, mc_question(item), None)
                probs = direct_next_token_probs(model, tokenizer, prompt)
                letters = torch.stack(
                    [probs[letter_token_id(tokenizer, prompt, x)] for x in "ABCD"]
                )
                p_values.append(float(letters[item.answer] / letters.sum()))
                correct.append(float(int(letters.argmax()) == item.answer))
        assert rows[("ab", "B_likelihood", c)].value == pytest.approx(np.mean(b_values), abs=1e-5)
        assert rows[("mc", "p_correct", c)].value == pytest.approx(np.mean(p_values), abs=1e-5)
        assert rows[("mc", "accuracy", c)].value == pytest.approx(np.mean(correct))
        row = rows[("ab", "B_likelihood", c)]
        assert row.ci_low <= row.value <= row.ci_high and row.n == len(AB)
    assert hook_count(model) == 0


def test_batched_sweep_equals_one_run_per_coefficient(setup):
    model, tokenizer, vector = setup
    coefficients = [-3.0, -1.0, 0.0, 1.0, 3.0]
    tasks = [ABBehaviorTask("ab", AB), MultipleChoiceTask("mc", MC), PerplexityTask("ppl", TEXTS)]
    batched = sweep(
        model,
        tokenizer,
        vector,
        coefficients,
        tasks,
        coefficients_per_batch=5,
        batch_size=64,
        progress=False,
        estimates=False,
    )
    for c in coefficients:
        single = sweep(
            model, tokenizer, vector, [c], tasks, batch_size=1, progress=False, estimates=False
        )
        for row in single.rows:
            match = next(r for r in batched.rows if r.key == row.key)
            assert match.value == pytest.approx(row.value, rel=1e-4, abs=1e-5), row.key


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


class _Interrupting(ABBehaviorTask):
    """An A/B task that is interrupted (Ctrl-C) on its n-th unit of work."""

    def evaluate(self, ctx, coefficients):
        calls = getattr(self, "_calls", 0) + 1
        object.__setattr__(self, "_calls", calls)
        if calls == 2:
            raise KeyboardInterrupt
        return super().evaluate(ctx, coefficients)


def test_resume_after_interruption_gives_identical_files(setup, tmp_path):
    model, tokenizer, vector = setup
    coefficients = [-2.0, -1.0, 0.0, 1.0, 2.0]
    settings = {"coefficients_per_batch": 2, "progress": False}
    full = tmp_path / "full"
    sweep(
        model,
        tokenizer,
        vector,
        coefficients,
        [ABBehaviorTask("ab", AB), MultipleChoiceTask("mc", MC)],
        output_dir=full,
        **settings,
    )
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        sweep(
            model,
            tokenizer,
            vector,
            coefficients,
            [_Interrupting("ab", AB), MultipleChoiceTask("mc", MC)],
            output_dir=part,
            **settings,
        )
    written = (part / RESULTS).read_text().splitlines()
    assert 0 < len(written) < len((full / RESULTS).read_text().splitlines())
    assert not (part / "fit.json").exists()
    resumed = sweep(
        model,
        tokenizer,
        vector,
        coefficients,
        [ABBehaviorTask("ab", AB), MultipleChoiceTask("mc", MC)],
        output_dir=part,
        **settings,
    )
    assert _files(part) == _files(full)
    assert len(resumed.rows) == 5 * 3
    assert {"behavior.png", "helpfulness.svg", "tradeoff.png", "fit.json"} <= set(_files(full))
    fit = json.loads((full / "fit.json").read_text())
    assert set(fit["empirical_estimates"]) == {"delta_lambda", "lambda_sigma_beta"}


def test_resume_refuses_other_settings(setup, tmp_path):
    model, tokenizer, vector = setup
    sweep(
        model,
        tokenizer,
        vector,
        [0.0, 1.0, 2.0],
        [ABBehaviorTask("ab", AB)],
        output_dir=tmp_path,
        progress=False,
        write_plots=False,
        estimates=False,
    )
    with pytest.raises(SpecError, match="other settings"):
        sweep(
            model,
            tokenizer,
            vector,
            [0.0, 1.0, 3.0],
            [ABBehaviorTask("ab", AB)],
            output_dir=tmp_path,
            progress=False,
        )


def test_malformed_results_file_is_reported(setup, tmp_path):
    model, tokenizer, vector = setup
    args = (model, tokenizer, vector, [0.0, 1.0, 2.0], [ABBehaviorTask("ab", AB)])
    sweep(*args, output_dir=tmp_path, progress=False, write_plots=False, estimates=False)
    lines = (tmp_path / RESULTS).read_text().splitlines()
    (tmp_path / RESULTS).write_text(lines[0] + "\n{not json\n")
    with pytest.raises(DataError, match=r"results.jsonl:2"):
        sweep(*args, output_dir=tmp_path, progress=False, write_plots=False, estimates=False)


class _KeywordScorer:
    name = "keyword"

    def score(self, prompt: str, response: str) -> int:
        return 1 if "the" in response else -1


def test_sampled_behavior_is_deterministic_for_a_seed(setup):
    model, tokenizer, vector = setup
    task = SampledBehaviorTask("sampled", ("Tell me", "Hello"), _KeywordScorer(), 3, 1.0, 6)
    first = sweep(model, tokenizer, vector, [-1.0, 1.0], [task], progress=False, seed=7)
    again = sweep(model, tokenizer, vector, [-1.0, 1.0], [task], progress=False, seed=7)
    assert [r.value for r in first.rows] == [r.value for r in again.rows]
    assert all(r.n == 6 and -1 <= r.value <= 1 for r in first.rows)


def test_perplexity_matches_direct_computation(setup):
    model, tokenizer, vector = setup
    result = sweep(model, tokenizer, vector, [0.0], [PerplexityTask("ppl", TEXTS)], progress=False)
    nll = []
    for text in TEXTS:
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits[0, :-1]
        nll.append(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none"))
    expected = float(torch.exp(torch.cat(nll).mean()))
    assert result.rows[0].value == pytest.approx(expected, rel=1e-5)


def test_sweep_errors(setup):
    model, tokenizer, vector = setup
    with pytest.raises(SpecError, match="duplicates"):
        sweep(model, tokenizer, vector, [1.0, 1.0], [ABBehaviorTask("ab", AB)])
    with pytest.raises(SpecError):
        sweep(model, tokenizer, vector, [float("nan")], [ABBehaviorTask("ab", AB)])
    with pytest.raises(DataError):
        sweep(model, tokenizer, vector, [1.0], [])
    with pytest.raises(DataError):
        ABBehaviorTask("empty", ())


def test_task_settings_are_checked_with_one_line_each():
    from steerlab.evaluate import RefusalScorer

    with pytest.raises(SpecError, match="aligned 'both' is not one of matching, not_matching"):
        ABBehaviorTask("ab", AB, aligned="both")
    with pytest.raises(SpecError, match="n_samples must be a positive integer, got 0"):
        SampledBehaviorTask("s", ("Hi",), RefusalScorer(), n_samples=0)
    with pytest.raises(SpecError, match=r"temperature must be a finite number > 0, got 0\.0"):
        SampledBehaviorTask("s", ("Hi",), RefusalScorer(), temperature=0.0)
    with pytest.raises(SpecError, match="scoring 'words' is not one of letter, text"):
        MultipleChoiceTask("mc", MC, scoring="words")
    with pytest.raises(SpecError, match="n_samples must be an integer >= 0, got -1"):
        MultipleChoiceTask("mc", MC, n_samples=-1)


def test_row_round_trip_and_errors():
    row = SweepRow("t", "behavior", "B_likelihood", 1.5, 0.25, 0.1, 0.4, 10)
    assert SweepRow.from_json(row.to_json(), "x:1") == row
    with pytest.raises(DataError, match="x:3: missing field 'coefficient'"):
        SweepRow.from_json(json.dumps({k: 1 for k in ("task", "kind", "metric")}), "x:3")


def test_resume_takes_the_same_vector_made_again_and_refuses_another(setup, tmp_path):
    model, tokenizer, vector = setup
    run = lambda v: sweep(  # noqa: E731
        model, tokenizer, v, [0.0, 1.0], [ABBehaviorTask("ab", AB)], output_dir=tmp_path,
        progress=False, write_plots=False, estimates=False,
    )  # fmt: skip
    first = run(vector)
    # The same directions made again later, by another commit: same recipe, same sweep.
    again = dataclasses.replace(
        vector.metadata, created="2030-01-01T00:00:00+00:00", git_revision="0" * 40
    )
    remade = SteeringVector(dict(vector.directions), again, vector.activation_norms)
    assert run(remade).rows == first.rows
    with pytest.raises(SpecError, match="other settings"):
        run(-vector)

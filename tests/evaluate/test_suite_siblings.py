"""Online-steered suite entries that differ only in their coefficient are measured together."""

from __future__ import annotations

import pytest
from suite_helpers import make_suite, vector_for

from conftest import make_model
from steerlab.evaluate import EvalModel, evaluate_models
from steerlab.evaluate.suite_data import load_suite_data
from steerlab.evaluate.suite_metrics import SuiteRunner
from steerlab.evaluate.suite_run import sibling_groups
from steerlab.hooks import hook_count, hooked
from steerlab.layers import find_layers
from steerlab.steer import SteerSpec

COEFFICIENTS = (-2.0, 0.5, 3.0)


def _runner(model, tokenizer, vector, suite, label, coefficient, siblings=()):
    spec = SteerSpec(coefficient=0.0, layers=[1, 2])
    return SuiteRunner(
        label, model, tokenizer, vector, spec, coefficient, suite, False, tuple(siblings)
    )


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_siblings_give_each_entry_its_own_rows(tmp_path, arch):
    model, tokenizer = make_model(arch, layers=3, hidden=32)
    vector = vector_for(model)
    suite = make_suite(tmp_path)
    data = load_suite_data(suite)
    labels = [f"c{c:g}" for c in COEFFICIENTS]
    blocks = find_layers(model).blocks
    rows_seen: dict[str, list[int]] = {"bottom": [], "top": []}

    def counting():
        def count(where):
            return lambda args, kwargs: rows_seen[where].append(int(args[0].shape[0]))

        return hooked(inputs=[(blocks[0], count("bottom")), (blocks[2], count("top"))])

    with counting():
        alone = [
            _runner(model, tokenizer, vector, suite, label, c).run(data)
            for label, c in zip(labels, COEFFICIENTS, strict=True)
        ]
    separately = {k: sum(v) for k, v in rows_seen.items()}
    rows_seen = {"bottom": [], "top": []}
    group = _runner(
        model,
        tokenizer,
        vector,
        suite,
        labels[0],
        COEFFICIENTS[0],
        list(zip(labels[1:], COEFFICIENTS[1:], strict=True)),
    )
    with counting():
        together = group.run(data)
    assert hook_count(model) == 0
    by_label = {label: [r for r in together if r.model == label] for label in labels}
    for label, rows in zip(labels, alone, strict=True):
        mine = by_label[label]
        assert [(r.metric, r.dataset, r.n) for r in mine] == [
            (r.metric, r.dataset, r.n) for r in rows
        ]
        for a, b in zip(mine, rows, strict=True):
            assert a.value == pytest.approx(b.value, abs=1e-5), (label, a.metric)
    # Different coefficients give different numbers (else the test could not fail).
    assert by_label[labels[0]][0].value != by_label[labels[2]][0].value or any(
        a.value != b.value for a, b in zip(by_label[labels[0]], by_label[labels[2]], strict=True)
    )
    # The steered blocks ran every row as before; the block below them far fewer.
    assert sum(rows_seen["top"]) == separately["top"]
    assert sum(rows_seen["bottom"]) < 0.6 * separately["bottom"]


def test_an_unsteered_runner_has_no_siblings(tmp_path):
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    suite = make_suite(tmp_path)
    with pytest.raises(ValueError, match="siblings"):
        SuiteRunner("m", model, tokenizer, None, None, 0.0, suite, False, (("x", 1.0),))


def test_evaluate_models_groups_coefficients_of_one_model_and_vector(tmp_path):
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    vector = vector_for(model, layers=(1, 2))
    other = vector_for(model, seed=5, layers=(1, 2))
    suite = make_suite(tmp_path / "data")

    def steered(label, c, v=vector, path="v.safetensors"):
        return EvalModel(
            label=label,
            model=model,
            tokenizer=tokenizer,
            vector=v,
            vector_path=path,
            coefficient=c,
        )

    entries = [
        EvalModel(label="base", model=model, tokenizer=tokenizer),
        steered("a", -2.0),
        steered("other", 1.0, other, "w.safetensors"),
        steered("b", 0.5),
        steered("c", 3.0),
    ]
    units = sibling_groups(entries)
    assert [[e.label for e in unit] for unit in units] == [["base"], ["a", "b", "c"], ["other"]]
    together = evaluate_models(entries, tmp_path / "together", suite, progress=False)
    apart = [
        evaluate_models([e], tmp_path / f"apart-{e.label}", suite, progress=False) for e in entries
    ]
    assert together.models == [e.label for e in entries]
    rows_apart = [r for result in apart for r in result.rows]
    assert [(r.model, r.metric, r.dataset) for r in together.rows] == [
        (r.model, r.metric, r.dataset) for r in rows_apart
    ]
    for a, b in zip(together.rows, rows_apart, strict=True):
        assert a.value == pytest.approx(b.value, abs=1e-5), (a.model, a.metric)
    # A rerun resumes everything: the same file, nothing recomputed.
    before = (tmp_path / "together" / "results.jsonl").read_bytes()
    evaluate_models(entries, tmp_path / "together", suite, progress=False)
    assert (tmp_path / "together" / "results.jsonl").read_bytes() == before

"""steer's one scale option, its deprecated booleans, norms measured when missing, and the
warning before gibberish (tiny random models)."""

from __future__ import annotations

import warnings

import pytest
import torch

import steerlab as sl
from conftest import make_model
from steerlab.errors import MeasuredNormsNotice, SpecError, SteeringStrengthWarning, VectorError
from steerlab.record import measure_activation_norms, record_tokens
from steerlab.steer import GIBBERISH_RATIO, SteerSpec
from test_steer import PROMPTS, random_vector


@pytest.mark.parametrize("scale", ["vector", "unit", "norm"])
def test_patched_activation_follows_the_scale(tiny, scale):
    model, tokenizer = tiny
    vector = random_vector(model)
    layer, c = 1, 0.3
    original = record_tokens(model, tokenizer, PROMPTS, [layer])[layer]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SteeringStrengthWarning)
        with sl.steer(model, vector, c, layers=[layer], scale=scale):
            patched = record_tokens(model, tokenizer, PROMPTS, [layer])[layer]
    v = vector[layer] if scale == "vector" else vector[layer] / vector[layer].norm()
    s = vector.activation_norms[layer] if scale == "norm" else 1.0
    for before, after in zip(original, patched, strict=True):
        assert torch.equal(after, before + (torch.tensor(c, dtype=torch.float32) * s) * v)


@pytest.mark.parametrize(
    "flags,scale",
    [((False, False), "vector"), ((True, False), "unit"), ((True, True), "norm")],
)
def test_deprecated_booleans_mean_the_same_scale_and_warn(flags, scale):
    model, tokenizer = make_model("llama")
    vector = random_vector(model)
    with pytest.warns(DeprecationWarning, match=f"use scale='{scale}'"):
        spec = SteerSpec(0.2, normalize=flags[0], scale_by_norm=flags[1])
    assert spec.scale == scale and (spec.normalize, spec.scale_by_norm) == flags
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with sl.steer(model, vector, 0.2, layers=[1], normalize=flags[0], scale_by_norm=flags[1]):
            old = record_tokens(model, tokenizer, PROMPTS, [2])[2]
        with sl.steer(model, vector, 0.2, layers=[1], scale=scale):
            new = record_tokens(model, tokenizer, PROMPTS, [2])[2]
    assert all(torch.equal(a, b) for a, b in zip(old, new, strict=True))


def test_scale_errors_are_one_line():
    with pytest.raises(SpecError, match="scale 'fraction' is not one of vector, unit, norm"):
        SteerSpec(scale="fraction")
    with pytest.raises(SpecError, match="contradicts normalize=True"):
        SteerSpec(scale="vector", normalize=True)
    model, _ = make_model("llama")
    with (
        pytest.raises(VectorError, match="with_activation_norms"),
        sl.steer(model, random_vector(model, norms=False), 0.2, scale="norm"),
    ):
        pass


def _warnings_of(model, vector, coefficient, **kwargs) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sl.steer(model, vector, coefficient, **kwargs):
            pass
    return [w for w in caught if issubclass(w.category, SteeringStrengthWarning)]


def test_warns_above_the_threshold_and_not_below():
    model, _ = make_model("llama")
    vector = random_vector(model)  # activation norms 2 + layer
    below = _warnings_of(model, vector, GIBBERISH_RATIO * 0.9, layers=[1], scale="norm")
    assert below == []
    above = _warnings_of(model, vector, GIBBERISH_RATIO * 1.1, layers=[1], scale="norm")
    assert len(above) == 1
    message = str(above[0].message)
    assert "layer 1" in message and "activation norm 3" in message
    assert "steerlab calibrate" in message
    # The raw scale is checked too: push = c * |v|, here 1.2x the norm at layer 2.
    raw = 1.2 * vector.activation_norms[2] / float(vector[2].norm())
    assert len(_warnings_of(model, vector, raw, layers=[2])) == 1
    # Per-row coefficients: the largest counts; ablation pushes nothing.
    assert len(_warnings_of(model, vector, [0.0, 0.9], layers=[1], scale="norm")) == 1
    assert _warnings_of(model, vector, 1.0, layers=[1], operator="ablate") == []
    # Over several layers the pushes add up (the measurement behind the threshold).
    per_layer = GIBBERISH_RATIO / 3
    assert _warnings_of(model, vector, per_layer * 0.9, layers=[0, 1, 2], scale="norm") == []
    several = _warnings_of(model, vector, per_layer * 1.1, layers=[0, 1, 2], scale="norm")
    assert len(several) == 1 and "over 3 layers" in str(several[0].message)
    # Without recorded norms there is nothing to compare with, so no warning.
    assert _warnings_of(model, random_vector(model, norms=False), 100.0, layers=[1]) == []


def test_generate_defaults_to_norm_and_measures_missing_norms():
    model, tokenizer = make_model("llama")
    bare = random_vector(model, norms=False)
    with pytest.warns(MeasuredNormsNotice, match="layer\\(s\\) 1"):
        auto = sl.generate(model, tokenizer, ["Tell me"], bare, [0.2], layers=[1], max_new_tokens=4)
    measured = bare.with_activation_norms(measure_activation_norms(model, tokenizer, [1]))
    explicit = sl.generate(
        model, tokenizer, ["Tell me"], measured, [0.2], layers=[1], max_new_tokens=4, scale="norm"
    )
    assert [g.text for g in auto] == [g.text for g in explicit]
    assert set(measured.activation_norms) == {1}
    with warnings.catch_warnings():
        warnings.simplefilter("error", MeasuredNormsNotice)  # recorded norms: no notice
        sl.generate(model, tokenizer, ["Tell me"], measured, [0.2], layers=[1], max_new_tokens=2)

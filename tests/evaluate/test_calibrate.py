"""Calibration: the recommendation on synthetic sweeps with known curves (pure), runs and files
on tiny models, the vector-metadata round trip, and one slow run on the embedded model."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from rich.console import Console
from scipy.optimize import brentq

from conftest import make_model
from steerlab.data.pairs import builtin_pairs
from steerlab.errors import DataError, MeasuredNormsNotice, SpecError, VectorError
from steerlab.evaluate.calibrate import (
    CALIBRATION_JSON,
    Calibration,
    calibrate,
    vector_pairs,
)
from steerlab.evaluate.calibrate_fit import (
    DEFAULT_PERPLEXITY_BOUND,
    GRID_TOTAL_PUSH,
    coefficient_grid,
    default_magnitudes,
    recommend,
    recommend_side,
    refinement,
)
from steerlab.evaluate.tasks import ContinuationBehaviorTask, PerplexityTask
from steerlab.extract import extract
from steerlab.generate import generate
from steerlab.models import model_identity
from steerlab.stats.fit_results import BehaviorFit, HelpfulnessFit, helpfulness_curve
from steerlab.vector import SteeringVector, VectorMetadata, check_calibration

GRID = coefficient_grid(default_magnitudes(1))  # ±0.05, 0.1, 0.2, 0.4, 0.8 and 0


def known_sweep(slope: float, b0: float, p0: float, k: float) -> tuple[np.ndarray, ...]:
    """Exact points of B(c) = tanh(slope·c + artanh b0) and F(c) = 1/ppl(c) on the
    parabolic bound with P0 = p0, a = 1 and curvature k."""
    c = np.array(GRID)
    behavior = np.tanh(slope * c + np.arctanh(b0))
    fluency = helpfulness_curve(c, p0, 1.0, k)
    return c, behavior, 1.0 / fluency


# -- the grid ---------------------------------------------------------------------------------


def test_grid_has_both_signs_and_zero() -> None:
    assert coefficient_grid([0.2, 0.1]) == (-0.2, -0.1, 0.0, 0.1, 0.2)
    assert default_magnitudes(1) == (0.05, 0.1, 0.2, 0.4, 0.8)
    # The summed push over the steered layers is what the default grid holds fixed.
    assert default_magnitudes(8)[-1] == pytest.approx(GRID_TOTAL_PUSH / 8)
    assert default_magnitudes(7) == (0.007143, 0.01429, 0.02857, 0.05714, 0.1143)


@pytest.mark.parametrize(
    ("magnitudes", "message"),
    [
        ([], "empty"),
        ([0.1, -0.2], "> 0, got -0.2"),
        ([0.1, 0.1], "repeats"),
        ([math.inf], "finite"),
    ],
)
def test_bad_grids_are_one_line_errors(magnitudes: list[float], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        coefficient_grid(magnitudes)


def test_default_magnitudes_need_a_layer() -> None:
    with pytest.raises(SpecError, match="at least one"):
        default_magnitudes(0)


# -- the recommendation on known curves ---------------------------------------------------------


def test_the_perplexity_bound_decides_when_behaviour_is_cheap() -> None:
    # ppl(c)/ppl(0) = 1 + (1 - p0)·k·c² = 1 + 47.5·c²: 1.475 at 0.1, 2.9 at 0.2.
    c, behavior, perplexity = known_sweep(slope=3.0, b0=0.2, p0=0.05, k=50.0)
    fit = recommend(c, behavior, perplexity)
    assert isinstance(fit.behavior_fit, BehaviorFit)
    assert fit.behavior_fit.delta_lambda == pytest.approx(3.0, rel=1e-4)
    assert isinstance(fit.fluency_fit, HelpfulnessFit)
    assert fit.fluency_fit.k == pytest.approx(50.0, rel=1e-3)
    assert fit.positive.coefficient == 0.1
    assert fit.negative.coefficient == -0.1
    assert fit.positive.perplexity_ratio == pytest.approx(1.475)
    assert fit.positive.behavior_change == pytest.approx(math.tanh(0.3 + math.atanh(0.2)) - 0.2)
    for side in (fit.positive, fit.negative):
        assert side.bound_reached
        assert side.cost_effective is not None and not side.cost_effective.empty
        assert "inside the cost-effective range" in side.reason


def test_the_cost_effective_range_caps_the_recommendation() -> None:
    # Fluency falls steeply from a high F0 = 0.9, so the range where the behaviour gained,
    # (B(c) - B(0))/2, exceeds the fluency lost, F(0) - F(c), ends between 0.2 and 0.4; the
    # bound x3 alone would allow 0.4 (ratio 1 + 10c² = 2.6).
    slope, p0, k = 5.0, 0.9, 100.0
    c, behavior, perplexity = known_sweep(slope=slope, b0=0.0, p0=p0, k=k)

    def net(x: float) -> float:
        gain = math.tanh(slope * x) / 2
        loss = p0 - float(helpfulness_curve(np.array(x), p0, 1.0, k))
        return gain - loss

    end = brentq(net, 0.2, 0.4)
    fit = recommend(c, behavior, perplexity, perplexity_bound=3.0)
    window = fit.positive.cost_effective
    assert window is not None and not window.empty and window.upper is not None
    assert window.upper == pytest.approx(end, rel=1e-3)
    assert fit.positive.perplexity_limit == 0.4
    assert fit.positive.coefficient == 0.2
    assert "the perplexity bound allowed +0.4" in fit.positive.reason
    # B is odd and F even in c: the mirrored negative side is the same picture.
    assert fit.negative.cost_effective is not None
    assert fit.negative.cost_effective.lower == pytest.approx(-end, rel=1e-3)
    assert fit.negative.coefficient == -0.2


def test_each_sign_is_decided_on_its_own_side() -> None:
    c, behavior, perplexity = known_sweep(slope=3.0, b0=0.0, p0=0.05, k=50.0)
    perplexity = perplexity.copy()
    perplexity[list(GRID).index(-0.05)] = perplexity[list(GRID).index(0.0)] * 1.6
    fit = recommend(c, behavior, perplexity)
    assert fit.positive.coefficient == 0.1
    assert fit.negative.coefficient is None
    assert fit.negative.perplexity_limit is None
    assert "already at -0.05" in fit.negative.reason and "finer grid" in fit.negative.reason


def test_the_walk_stops_at_the_first_point_beyond_the_bound() -> None:
    ratios = [1.0, 1.2, 1.7, 1.3, 1.1]  # 0, 0.1, 0.2, 0.4, 0.8: 0.4 passes but comes after 0.2
    grid = [0.0, 0.1, 0.2, 0.4, 0.8]
    assert recommend_side(grid, ratios, +1, 1.5) == (0.1, 0.1, True)
    assert recommend_side(grid, ratios, -1, 1.5) == (None, None, False)


def test_recommend_side_caps_and_tolerates_rounding() -> None:
    grid = [-0.2, -0.1, 0.0, 0.1, 0.2, 0.4]
    ratios = [1.2, 1.1, 1.0, 1.1, 1.2, 1.4]
    assert recommend_side(grid, ratios, +1, 1.5) == (0.4, 0.4, False)
    assert recommend_side(grid, ratios, +1, 1.5, cap=0.3) == (0.2, 0.4, False)
    # A range end found by root finding a hair below a grid point still admits it.
    assert recommend_side(grid, ratios, +1, 1.5, cap=0.2 - 1e-12)[0] == 0.2
    assert recommend_side(grid, ratios, +1, 1.5, cap=0.05) == (None, 0.4, False)
    assert recommend_side(grid, ratios, -1, 1.15) == (-0.1, -0.1, True)


def test_refinement_bisects_where_the_bound_is_crossed() -> None:
    grid = [-0.4, -0.2, -0.1, 0.0, 0.1, 0.2, 0.4]
    perplexity = [30.0, 20.0, 16.0, 10.0, 11.0, 14.0, 20.0]  # ratios 3, 2, 1.6 | 1.1, 1.4, 2
    # + side: between 0.2 (within x1.5) and 0.4 (beyond); - side: below -0.1 (already beyond).
    assert refinement(grid, perplexity, 1.5) == (-0.05, 0.2828)
    assert refinement(grid, perplexity, 5.0) == ()  # the bound is never reached
    assert refinement([-0.1, 0.0, 0.05, 0.1], [20.0, 10.0, 10.0, 20.0], 1.5) == (-0.05, 0.07071)


def test_without_a_behaviour_fit_the_bound_alone_decides() -> None:
    c, _, perplexity = known_sweep(slope=3.0, b0=0.0, p0=0.05, k=50.0)
    flat = np.full(len(c), 0.3)
    fit = recommend(c, flat, perplexity)
    assert "flat" in str(fit.behavior_fit)
    assert fit.positive.cost_effective is None
    assert fit.positive.coefficient == 0.1
    assert "no behaviour fit: the bound alone decided" in fit.positive.reason
    assert fit.to_dict()["behavior_fit"] == {"error": str(fit.behavior_fit)}


def test_a_bound_never_reached_is_said() -> None:
    c, behavior, perplexity = known_sweep(slope=3.0, b0=0.0, p0=0.05, k=0.1)
    fit = recommend(c, behavior, perplexity)
    assert fit.positive.coefficient == 0.8
    assert not fit.positive.bound_reached
    assert "wider grid" in fit.positive.reason


def test_behaviour_against_the_sign_has_no_cost_effective_range() -> None:
    c, behavior, perplexity = known_sweep(slope=-3.0, b0=0.0, p0=0.05, k=50.0)
    fit = recommend(c, behavior, perplexity)
    assert fit.positive.cost_effective is not None and fit.positive.cost_effective.empty
    assert "no cost-effective range on this side" in fit.positive.reason
    # The negative side moves the behaviour up, which for that sign is the wrong way too.
    assert fit.negative.cost_effective is not None and fit.negative.cost_effective.empty


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"coefficients": [-0.1, 0.1, 0.2]}, "must hold 0"),
        ({"perplexity": [10.0, 0.0, 12.0]}, "above 0"),
        ({"behavior": [0.1, 0.2]}, "differ in number"),
        ({"coefficients": [0.0, 0.1, 0.1]}, "duplicates"),
        ({"perplexity_bound": 1.0}, "perplexity_bound"),
    ],
)
def test_bad_sweeps_are_one_line_errors(change: dict, message: str) -> None:
    arguments = {
        "coefficients": [-0.1, 0.0, 0.1],
        "behavior": [-0.2, 0.0, 0.2],
        "perplexity": [11.0, 10.0, 11.0],
        **change,
    }
    with pytest.raises(SpecError, match=message):
        recommend(**arguments)


def test_fit_json_and_summary() -> None:
    c, behavior, perplexity = known_sweep(slope=3.0, b0=0.2, p0=0.05, k=50.0)
    fit = recommend(c, behavior, perplexity)
    data = json.loads(json.dumps(fit.to_dict(), allow_nan=False))
    assert data["positive"]["coefficient"] == 0.1
    assert data["perplexity_bound"] == DEFAULT_PERPLEXITY_BOUND
    assert data["perplexity_ratio"][list(GRID).index(0.0)] == 1.0
    lines = fit.summary().splitlines()
    assert lines[0].startswith("behaviour fit") and lines[1].startswith("fluency fit")
    assert lines[2].startswith("positive: +0.1 (perplexity x1.47")
    assert lines[3].startswith("negative: -0.1")


# -- runs on a tiny model -----------------------------------------------------------------------

TEXTS = ("The quick brown fox jumps over the lazy dog.", "I am happy today, the weather is lovely.")


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    vector = extract(
        model, tokenizer, builtin_pairs("happy_sad", limit=48), "mean_diff", "all", progress=False
    )
    return model, tokenizer, vector


def quick(model, tokenizer, vector, out=None, **options) -> Calibration:
    options = {"behavior_limit": 3, "text": PerplexityTask("texts", TEXTS), **options}
    return calibrate(model, tokenizer, vector, out, grid=options.pop("grid", (0.1, 0.4)), **options)


def test_calibrate_scores_held_out_pairs_of_the_vectors_own_data(tiny, tmp_path) -> None:
    model, tokenizer, vector = tiny
    assert vector_pairs(vector)[0::2] == ("builtin:happy_sad", 48)
    result = quick(model, tokenizer, vector, tmp_path / "cal")
    assert result.held_out is True
    assert "builtin:happy_sad pairs 49-51 of 64, held out" in result.behavior
    assert result.coefficients == (-0.4, -0.1, 0.0, 0.1, 0.4)
    assert result.layers == (0, 1, 2)
    assert result.scale == "norm"
    for value, sign in ((result.positive, 1), (result.negative, -1)):
        assert value is None or (value in result.coefficients and value * sign > 0)
    assert {r.kind for r in result.rows} == {"behavior", "perplexity"}
    assert {p.name for p in (tmp_path / "cal").iterdir()} == {
        CALIBRATION_JSON,
        "calibration.png",
        "calibration.svg",
    }
    data = json.loads((tmp_path / "cal" / CALIBRATION_JSON).read_text())
    assert data["format"] == "steerlab.calibration/1"
    assert data["recommendation"] == json.loads(json.dumps(result.to_record()))
    assert check_calibration(data["recommendation"])["layers"] == [0, 1, 2]
    assert len(data["rows"]) == 10
    text = result.summary()
    assert text.splitlines()[0] == (
        "calibration: scale=norm, layers 0-2, 5 coefficients from -0.4 to +0.4"
    )
    assert "recommended:" in text.splitlines()[-1] and not text.endswith("\n")
    console = Console(width=140, record=True)
    console.print(result.table())
    assert "unsteered" in console.export_text()


def test_pairs_the_vector_was_made_from_are_not_called_held_out(tiny) -> None:
    model, tokenizer, _ = tiny
    every = extract(
        model, tokenizer, builtin_pairs("happy_sad"), "mean_diff", "all", progress=False
    )
    result = quick(model, tokenizer, every)
    assert result.held_out is False
    assert "pairs 62-64 of 64, NOT held out" in result.behavior


def test_a_pairs_file_is_split_where_the_vector_stopped(tiny, tmp_path) -> None:
    model, tokenizer, _ = tiny
    pairs = builtin_pairs("honesty", limit=10)[::-1]  # not a prefix of the built-in set
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(p.to_record()) + "\n" for p in pairs))
    vector = extract(model, tokenizer, pairs[:6], "mean_diff", "all", progress=False)
    assert vector_pairs(vector) is None
    with pytest.raises(DataError, match="behavior='pairs:FILE'"):
        quick(model, tokenizer, vector)
    result = quick(model, tokenizer, vector, behavior=f"pairs:{path}")
    assert result.held_out is True
    assert "pairs 7-9 of 10, held out (the vector was made from pairs 1-6)" in result.behavior
    other = quick(model, tokenizer, vector, behavior="caa:builtin:honesty_ab")
    assert other.held_out is None and "held out: unknown" in other.behavior
    task = ContinuationBehaviorTask("mine", ("Hi?",), ("Great!",), ("Awful.",))
    assert quick(model, tokenizer, vector, behavior=task).behavior.startswith("mine (given task")


def test_text_from_a_file_and_layers(tiny, tmp_path) -> None:
    model, tokenizer, vector = tiny
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    result = quick(model, tokenizer, vector, text=texts, layers="1-2")
    assert result.fluency == "2 texts of texts"
    assert result.layers == (1, 2)
    assert result.to_record()["layers"] == [1, 2]
    default = calibrate(model, tokenizer, vector, layers=1, behavior_limit=2, text_limit=1)
    assert default.coefficients[-1] == GRID_TOTAL_PUSH  # one layer: the whole summed push
    assert default.fluency == "1 texts of general_text"
    assert set(default.refined) <= set(default.coefficients)
    assert default.to_record()["refined"] == list(default.refined)
    assert quick(model, tokenizer, vector, refine=False).refined == ()


def test_bad_settings(tiny) -> None:
    model, tokenizer, vector = tiny
    with pytest.raises(SpecError, match="no default grid"):
        calibrate(model, tokenizer, vector, scale="unit")
    with pytest.raises(SpecError, match="scale"):
        quick(model, tokenizer, vector, scale="raw")
    narrow = extract(
        model, tokenizer, builtin_pairs("happy_sad", limit=4), "mean_diff", [0, 1], progress=False
    )
    with pytest.raises(VectorError, match="no direction at layer 2"):
        quick(model, tokenizer, narrow, layers="all")
    with pytest.raises(SpecError, match="behavior_limit"):
        quick(model, tokenizer, vector, behavior_limit=0)


def test_unit_scale_with_a_grid(tiny) -> None:
    model, tokenizer, vector = tiny
    result = quick(model, tokenizer, vector, scale="unit", grid=(0.5, 2.0))
    assert result.to_record()["scale"] == "unit"
    assert result.coefficients == (-2.0, -0.5, 0.0, 0.5, 2.0)


# -- the vector-metadata round trip and `auto` ------------------------------------------------


def test_apply_to_round_trips_through_the_vector_file(tiny, tmp_path) -> None:
    model, tokenizer, vector = tiny
    result = quick(model, tokenizer, vector, grid=(0.05, 0.1, 0.2))
    stored = result.apply_to(vector)
    stored.save(tmp_path / "v.safetensors")
    loaded = SteeringVector.load(tmp_path / "v.safetensors")
    assert loaded == stored
    assert loaded.calibration == check_calibration(json.loads(json.dumps(result.to_record())))
    expected = tuple(c for c in (result.negative, 0.0, result.positive) if c is not None)
    assert loaded.recommended_coefficients() == expected
    # A calibration says how to use the vector, not how it was made.
    assert loaded.metadata.recipe() == vector.metadata.recipe()
    # `--coefficient auto`: generate at the stored coefficients and layers.
    record = loaded.calibration
    outputs = generate(
        model,
        tokenizer,
        ["Tell me about your day."],
        loaded,
        loaded.recommended_coefficients(),
        layers=record["layers"],
        scale=record["scale"],
        max_new_tokens=3,
    )
    assert [g.coefficient for g in outputs] == list(expected)


def test_apply_to_refuses_another_vector(tiny) -> None:
    model, tokenizer, vector = tiny
    result = quick(model, tokenizer, vector)
    with pytest.raises(VectorError, match="another vector"):
        result.apply_to(vector * 2.0)


def test_a_vector_without_norms_gets_them_measured_and_stored(tiny) -> None:
    model, tokenizer, _ = tiny
    identity = model_identity(model)
    directions = {
        layer: torch.randn(identity.hidden_size, generator=torch.Generator().manual_seed(layer))
        for layer in range(identity.num_layers)
    }
    bare = SteeringVector(directions, VectorMetadata.for_model(identity, "imported"))
    task = ContinuationBehaviorTask("mine", ("Hi?", "Hello?"), ("Great!", "Yay!"), ("Bad.", "No."))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = quick(model, tokenizer, bare, behavior=task)
    assert any(issubclass(w.category, MeasuredNormsNotice) for w in caught)
    assert result.activation_norms is not None and set(result.activation_norms) == {0, 1, 2}
    stored = result.apply_to(bare)
    assert stored.activation_norms == result.activation_norms
    assert stored.calibration is not None


# -- the embedded model -------------------------------------------------------------------------


@pytest.mark.slow
def test_calibrating_a_happy_sad_vector_on_the_embedded_model(tmp_path) -> None:
    import steerlab as sl

    model, tokenizer = sl.load_model("default")
    vector = extract(
        model, tokenizer, builtin_pairs("happy_sad", limit=48), "pca_diff", "12-18", progress=False
    )
    result = calibrate(model, tokenizer, vector, tmp_path)
    assert result.held_out is True
    assert result.positive is not None and result.positive in result.coefficients
    assert result.negative is not None and result.negative in result.coefficients
    assert result.positive > 0 > result.negative
    # The vector's + side is the cheerful side: behaviour rises with the coefficient.
    assert isinstance(result.fit.behavior_fit, BehaviorFit)
    assert result.fit.behavior_fit.delta_lambda > 0
    assert result.fit.positive.behavior_change > 0 > result.fit.negative.behavior_change
    for side in (result.fit.positive, result.fit.negative):
        assert side.perplexity_ratio <= DEFAULT_PERPLEXITY_BOUND
    assert (tmp_path / CALIBRATION_JSON).is_file()

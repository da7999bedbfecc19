"""Steering entries resolved against the catalog: what an unsaid field becomes."""

from __future__ import annotations

import pytest

from conftest import make_model
from steerlab.data.pairs import builtin_pairs
from steerlab.extract import extract
from steerlab.serve.catalog import CatalogEntry, VectorCatalog
from steerlab.serve.protocol import ApiError, SteeringBody
from steerlab.serve.resolve import resolve_steering


@pytest.fixture(scope="module")
def vector():
    model, tokenizer = make_model("llama", layers=4, hidden=32)
    return extract(model, tokenizer, builtin_pairs("honesty", limit=6), "mean_diff", "all")


def catalog_of(vector, path):
    return VectorCatalog([CatalogEntry("v", path / "v.safetensors", vector, None)])


def test_unsaid_layers_and_scale_are_the_vectors_calibration(vector, tmp_path) -> None:
    calibrated = vector.with_calibration(
        {"scale": "unit", "layers": [1, 2], "positive": 2.0, "negative": -1.5}
    )
    (entry,) = resolve_steering(
        [SteeringBody(vector="v", coefficient=1.0)], catalog_of(calibrated, tmp_path), 4
    )
    assert (entry.layers, entry.scale) == ((1, 2), "unit")
    record = catalog_of(calibrated, tmp_path).describe()[0]
    assert record["default_scale"] == "unit" and record["suggested_coefficients"] == [-1.5, 0, 2]
    assert record["file"] == "v.safetensors"  # not the server's folders


def test_unsaid_layers_and_scale_without_calibration(vector, tmp_path) -> None:
    (entry,) = resolve_steering(
        [SteeringBody(vector="v", coefficient=0.1)], catalog_of(vector, tmp_path), 4
    )
    assert entry.scale == "norm"
    assert entry.layers == (2,)  # the middle (40-60%) of 4 layers


def test_said_scale_wins_and_contradicting_booleans_are_a_400(vector, tmp_path) -> None:
    catalog = catalog_of(vector, tmp_path)
    (entry,) = resolve_steering(
        [SteeringBody(vector="v", coefficient=0.1, scale="vector", layers=[0, 3])], catalog, 4
    )
    assert (entry.scale, entry.layers) == ("vector", (0, 3))
    body = SteeringBody(vector="v", coefficient=0.1, scale="vector", normalize=True)
    with pytest.raises(ApiError) as caught:
        resolve_steering([body], catalog, 4, single=True)
    assert caught.value.status == 400 and caught.value.param == "steering"

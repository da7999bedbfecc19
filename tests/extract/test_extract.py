"""Extraction: the pure direction maths and extraction on tiny models."""

from __future__ import annotations

import pytest
import torch

import steerlab as sl
from steerlab.data import ContrastPair
from steerlab.errors import DataError, SpecError
from steerlab.extract.contrastive import METHODS, direction
from steerlab.hooks import hooked


def synthetic(n: int = 40, d: int = 16, seed: int = 0, spread: float = 0.5):
    """Pairs whose difference is 3·u plus noise; ``spread`` is the shared variance's scale."""
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=generator)
    u = u / u.norm()
    base = torch.randn(n, d, generator=generator) * spread
    noise = torch.randn(n, d, generator=generator) * 0.1
    return base + 1.5 * u + noise, base - 1.5 * u, u


@pytest.mark.parametrize("method", METHODS)
def test_direction_recovers_and_orients(method):
    positive, negative, u = synthetic()
    if method == "pca_diff_centered":
        # Centring the differences removes their shared mean: this method sees the concept
        # only through how much the pairs' differences vary along it.
        strength = torch.linspace(0.2, 3.0, positive.shape[0])[:, None]
        positive, negative = negative + 3.0 * strength * u, negative.clone()
    v = direction(method, positive, negative)
    cosine = torch.nn.functional.cosine_similarity(v, u, dim=0)
    assert cosine > (0.85 if method == "probe" else 0.95), float(cosine)
    flipped = direction(method, negative, positive)
    assert torch.nn.functional.cosine_similarity(flipped, v, dim=0) < -0.99


@pytest.mark.parametrize("method", ["mean_diff", "pca_diff"])
def test_paired_methods_ignore_shared_variance(method):
    positive, negative, u = synthetic(spread=5.0)
    v = direction(method, positive, negative)
    assert torch.nn.functional.cosine_similarity(v, u, dim=0) > 0.99


def test_mean_diff_is_the_mean_difference():
    positive, negative, _ = synthetic()
    assert torch.allclose(direction("mean_diff", positive, negative), (positive - negative).mean(0))


@pytest.mark.parametrize(
    "method", ["pca_diff", "pca_center", "pca_diff_centered", "pca_pair_centered", "probe"]
)
def test_projection_scale(method):
    positive, negative, _ = synthetic()
    v = direction(method, positive, negative)
    mean_difference = (positive - negative).mean(0)
    # Scaled so that its length equals the mean difference's projection on it.
    assert torch.allclose(v.norm(), mean_difference @ (v / v.norm()), rtol=1e-4)


def _sklearn_axis(rows: torch.Tensor) -> torch.Tensor:
    # An independent reference: scikit-learn's (centring) PCA, as repeng calls it.
    from sklearn.decomposition import PCA

    return torch.from_numpy(PCA(n_components=1).fit(rows.double().numpy()).components_[0])


def _majority_sign(axis: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> float:
    # repeng: flip when more pairs project lower; on a tie keep scikit-learn's sign.
    projections = (positive.double() - negative.double()) @ axis
    above, below = int((projections > 0).sum()), int((projections < 0).sum())
    return -1.0 if below > above else 1.0


def test_ties_keep_scikit_learns_sign():
    # Four pairs whose centred differences split 2-2 along the main axis.
    u = torch.zeros(6, dtype=torch.float64)
    u[0] = 1.0
    noise = torch.tensor([[0.0, 0.1, 0, 0, 0, 0], [0, -0.1, 0, 0, 0, 0]] * 2, dtype=torch.float64)
    strength = torch.tensor([3.0, -2.0, 1.0, -1.0], dtype=torch.float64)[:, None]
    negative = torch.zeros(4, 6, dtype=torch.float64)
    positive = negative + strength * u + noise
    got = direction("pca_diff_centered", positive, negative)
    assert abs(torch.nn.functional.cosine_similarity(got, u, dim=0)) > 0.99
    assert got[got.abs().argmax()] > 0  # scikit-learn >= 1.5's sign (svd_flip on Vt)
    flipped = direction("pca_diff_centered", negative, positive)  # still a tie: same rule
    assert flipped[flipped.abs().argmax()] > 0


@pytest.mark.parametrize("spread", [0.5, 5.0])
def test_repeng_compatible_methods_match_their_definitions(spread):
    positive, negative, _ = synthetic(spread=spread, seed=3)
    differences = positive.double() - negative.double()
    midpoints = (positive.double() + negative.double()) / 2
    references = {
        "pca_diff_centered": _sklearn_axis(differences),
        "pca_pair_centered": _sklearn_axis(
            torch.cat([positive.double() - midpoints, negative.double() - midpoints])
        ),
    }
    for method, axis in references.items():
        expected = axis * _majority_sign(axis, positive, negative)
        got = direction(method, positive, negative).double()
        cosine = torch.nn.functional.cosine_similarity(got, expected, dim=0)
        assert cosine > 1 - 1e-9, (method, float(cosine))


def test_direction_errors():
    positive, negative, _ = synthetic()
    with pytest.raises(SpecError, match="method"):
        direction("magic", positive, negative)
    with pytest.raises(SpecError):
        direction("mean_diff", positive, negative[:3])


PAIRS = [
    ContrastPair("I am happy today", "I am sad today"),
    ContrastPair("What a lovely day", "What a gloomy day", (("user", "How is it?"),)),
    ContrastPair("Paris", "London", (("system", "Be brief."), ("user", "Capital of France?"))),
    ContrastPair("(A", "(B", (("user", "Choose (A) or (B)."),)),
]


@pytest.mark.parametrize("method", METHODS)
def test_extract_on_tiny_models(tiny, method):
    model, tokenizer = tiny
    vector = sl.extract(model, tokenizer, PAIRS, method=method, progress=False)
    meta = vector.metadata
    assert vector.layers == (0, 1, 2)
    assert (meta.method, meta.n_examples, meta.hidden_size, meta.num_layers) == (method, 4, 32, 3)
    assert meta.model_id.startswith("tiny-") and len(meta.data_sha256) == 64
    assert set(vector.activation_norms) == {0, 1, 2}
    # + means "more like the positive side": positives project higher than negatives.
    acts = sl.record(model, tokenizer, [t for p in PAIRS for t in (p.positive, p.negative)], [1])
    if method == "mean_diff":
        assert float((acts[1][0::2] - acts[1][1::2]).mean(0) @ vector[1]) > 0


def test_extract_batch_size_does_not_matter(llama):
    model, tokenizer = llama
    one = sl.extract(model, tokenizer, PAIRS, "mean_diff", batch_size=1, progress=False)
    many = sl.extract(model, tokenizer, PAIRS, "mean_diff", batch_size=8, progress=False)
    for layer in one.layers:
        assert torch.allclose(one[layer], many[layer], atol=1e-5)


def test_all_layers_from_one_pass(llama):
    model, tokenizer = llama
    passes = []
    with hooked(inputs=[(model.model, lambda args, kwargs: passes.append(1))]):
        sl.extract(model, tokenizer, PAIRS, "pca_diff", layers="all", batch_size=8, progress=False)
    assert len(passes) == 1


def test_extract_errors(llama):
    model, tokenizer = llama
    with pytest.raises(DataError):
        sl.extract(model, tokenizer, [], progress=False)
    with pytest.raises(SpecError, match="method"):
        sl.extract(model, tokenizer, PAIRS, method="nope", progress=False)
    with pytest.raises(sl.SteerlabError, match="out of range"):
        sl.extract(model, tokenizer, PAIRS, layers=[9], progress=False)

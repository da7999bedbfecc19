"""steerlab.stats.intervals: AUROC, the bootstrap and the normal interval, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerlab.errors import DataError, SpecError
from steerlab.stats.intervals import (
    Z_95,
    auroc,
    auroc_of_rows,
    bootstrap_ci,
    mean_ci,
    normal_quantile,
    pooled_perplexity,
)


def pairwise_auroc(scores, labels) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_by_hand_with_ties():
    scores = [0.1, 0.4, 0.35, 0.8, 0.4]
    labels = [0, 0, 1, 1, 1]
    # Positive vs negative pairs: 0.35 beats 0.1 only, 0.8 beats both, 0.4 beats 0.1 and
    # ties 0.4: (1 + 2 + 1.5) / 6.
    assert auroc(scores, labels) == pytest.approx(4.5 / 6)
    rng = np.random.default_rng(1)
    s = rng.integers(0, 4, 30).astype(float)  # many ties
    y = rng.integers(0, 2, 30).astype(bool)
    assert auroc(s, y) == pytest.approx(pairwise_auroc(s, y))
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auroc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert auroc([1, 1, 1], [0, 1, 1]) == 0.5
    assert math.isnan(auroc([1, 2], [1, 1]))
    with pytest.raises(DataError):
        auroc([1, 2], [1])


def test_bootstrap_ci_by_hand_and_deterministic():
    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    low, high = bootstrap_ci(values, n=500, seed=7)
    rng = np.random.default_rng(7)
    means = values[rng.integers(0, values.size, size=(500, values.size))].mean(axis=1)
    assert (low, high) == tuple(np.percentile(means, [2.5, 97.5]))
    assert low <= values.mean() <= high
    assert bootstrap_ci(values, n=500, seed=7) == (low, high)
    smooth = np.random.default_rng(0).normal(size=25)
    assert bootstrap_ci(smooth, n=300, seed=8) != bootstrap_ci(smooth, n=300, seed=9)
    assert bootstrap_ci([2.0, 2.0, 2.0], n=50) == (2.0, 2.0)
    # Per-item rows and a statistic: the ratio of sums, as for perplexity.
    rows = np.column_stack([[3.0, 5.0, 4.0, 6.0], [2.0, 4.0, 2.0, 3.0]])
    low, high = bootstrap_ci(rows, lambda a: a[:, 0].sum() / a[:, 1].sum(), n=300, seed=0)
    assert low <= 18 / 11 <= high
    assert bootstrap_ci(rows, lambda a: a[:, 0].sum() / a[:, 1].sum(), n=300, seed=0) == (low, high)
    # Resamples lacking a class give NaN AUROCs and are skipped.
    pairs = np.column_stack([[0.2, 0.9, 0.4, 0.6], [0.0, 1.0, 0.0, 1.0]])
    low, high = bootstrap_ci(pairs, lambda a: auroc(a[:, 0], a[:, 1] > 0.5), n=200)
    assert 0.0 <= low <= high <= 1.0
    with pytest.raises(DataError):
        bootstrap_ci([])
    with pytest.raises(SpecError):
        bootstrap_ci([1.0], n=0)


def test_mean_ci_by_hand():
    values = [1.0, 2.0, 4.0, 5.0]
    mean, low, high = mean_ci(values)
    half = Z_95 * np.std(values, ddof=1) / 2.0
    assert (mean, low, high) == (3.0, 3.0 - half, 3.0 + half)
    assert mean_ci([7.0]) == (7.0, 7.0, 7.0)
    # A coverage instead of z: the same family, the normal quantile of that coverage.
    assert normal_quantile(0.95) == pytest.approx(Z_95, abs=1e-6)
    narrower = mean_ci(values, confidence=0.5)
    assert low < narrower[1] < narrower[2] < high
    with pytest.raises(DataError, match="no values"):
        mean_ci([])
    with pytest.raises(SpecError, match="confidence"):
        mean_ci(values, confidence=1.5)
    with pytest.raises(SpecError, match="confidence"):
        bootstrap_ci(values, confidence=0.0)


def test_row_statistics():
    rows = np.column_stack([[0.2, 0.9, 0.4], [0.0, 1.0, 1.0]])
    assert auroc_of_rows(rows) == auroc([0.2, 0.9, 0.4], [False, True, True])
    nll = np.column_stack([[3.0, 5.0], [2.0, 4.0]])
    assert pooled_perplexity(nll) == pytest.approx(math.exp(8.0 / 6.0))

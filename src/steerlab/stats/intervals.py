"""Statistics over items with 95% confidence intervals: the mean, any bootstrapped statistic, AUROC.

One family of interval estimates, each taken over per-item values (or per-item rows):

* :func:`mean_ci`: the mean with a normal-approximation interval (what every sweep row holds);
* :func:`bootstrap_ci`: a percentile bootstrap interval of any statistic (what every suite row
  holds), with :func:`auroc`, :func:`auroc_of_rows` and :func:`pooled_perplexity` as the
  statistics the honesty suite bootstraps besides the mean.

Both interval functions check their input the same way (:func:`items`, one line on bad input)
and take their coverage from :func:`normal_quantile` / :func:`tail_percent`. Every function is
pure: numbers in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import norm

from steerlab.errors import DataError, SpecError
from steerlab.validation import check_int

__all__ = [
    "Z_95",
    "auroc",
    "auroc_of_rows",
    "bootstrap_ci",
    "items",
    "mean_ci",
    "normal_quantile",
    "pooled_perplexity",
    "tail_percent",
]

Z_95 = 1.959964
"""The normal quantile of a two-sided 95% interval, as every sweep file was written with."""


def items(data: Sequence[float] | np.ndarray, empty_message: str) -> np.ndarray:
    """``data`` as a float64 array of items (first axis), refusing an empty one.

    Raises:
        DataError: ``empty_message``, when there is no item.
    """
    array = np.asarray(data, dtype=np.float64)
    if array.ndim == 0 or array.shape[0] == 0:
        raise DataError(empty_message)
    return array


def _check_confidence(confidence: float, where: str) -> float:
    if not 0.0 < confidence < 1.0:
        raise SpecError(f"{where}: confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def normal_quantile(confidence: float) -> float:
    """The ``z`` of a two-sided normal interval of that coverage (0.95 gives 1.95996...).

    Raises:
        SpecError: ``confidence`` outside (0, 1).
    """
    return float(norm.ppf(1.0 - (1.0 - _check_confidence(confidence, "mean_ci")) / 2.0))


def tail_percent(confidence: float, where: str = "bootstrap_ci") -> float:
    """The percentage left out on each side of a two-sided interval (2.5 for 95%).

    Raises:
        SpecError: ``confidence`` outside (0, 1).
    """
    return (1.0 - _check_confidence(confidence, where)) / 2.0 * 100.0


def mean_ci(
    values: Sequence[float] | np.ndarray,
    z: float = Z_95,
    *,
    confidence: float | None = None,
) -> tuple[float, float, float]:
    """Mean with a normal-approximation confidence interval.

    Args:
        values: per-item values, shape (n,) (any shape is flattened).
        z: the normal quantile (1.96 for 95%).
        confidence: coverage of the interval instead of ``z`` (e.g. 0.9).

    Returns:
        ``(mean, low, high)``; with one value the interval is the point itself.

    Raises:
        DataError: no values.
        SpecError: ``confidence`` outside (0, 1).
    """
    array = items(np.asarray(values, dtype=np.float64).reshape(-1), "no values to average")
    if confidence is not None:
        z = normal_quantile(confidence)
    mean = float(array.mean())
    if array.size == 1:
        return mean, mean, mean
    half = z * float(array.std(ddof=1)) / math.sqrt(array.size)
    return mean, mean - half, mean + half


def bootstrap_ci(
    data: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] | None = None,
    n: int = 1000,
    seed: int = 0,
    *,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic over items.

    Args:
        data: per-item values, shape (n_items,), or per-item rows, shape (n_items, k)
            (e.g. columns ``[nll_sum, n_tokens]`` or ``[score, label]``); rows are resampled
            with replacement as wholes.
        statistic: maps a resampled array (same shape as ``data``) to a number; None: the
            mean (vectorised). Resamples whose statistic is not finite (an AUROC resample
            lacking a class) are skipped.
        n: number of resamples.
        seed: seed of the numpy generator (same seed, same interval).
        confidence: coverage of the interval.

    Returns:
        ``(low, high)``; NaN for both when no resample gave a finite statistic.

    Raises:
        DataError: no items.
        SpecError: ``n < 1`` or ``confidence`` outside (0, 1).
    """
    array = items(data, "bootstrap_ci: no items")
    n = check_int(n, "bootstrap_ci: n", minimum=1)
    tail = tail_percent(confidence)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, array.shape[0], size=(n, array.shape[0]))
    if statistic is None:
        stats = array[index].mean(axis=1)
        if stats.ndim > 1:
            raise SpecError("bootstrap_ci: per-item rows need a statistic")
    else:
        stats = np.array([float(statistic(array[rows])) for rows in index])
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(low), float(high)


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` against binary ``labels``.

    The Mann-Whitney form: the share of (positive, negative) pairs in which the positive
    scores higher, ties counted 0.5, computed from ranks (ties get their average rank).

    Args:
        scores: shape (n,), higher = more likely positive.
        labels: shape (n,), true / 1 for positives.

    Returns:
        The AUROC in [0, 1]; NaN when either class is absent.

    Raises:
        DataError: ``scores`` and ``labels`` of different lengths.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(bool)
    if s.shape != y.shape:
        raise DataError(f"auroc: {s.size} scores but {y.size} labels")
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # Average ranks (1-based) over runs of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], s.size]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def auroc_of_rows(rows: np.ndarray) -> float:
    """:func:`auroc` of per-item rows ``[score, label]`` (label > 0.5 is positive), shape (n, 2)."""
    return auroc(rows[:, 0], rows[:, 1] > 0.5)


def pooled_perplexity(rows: np.ndarray) -> float:
    """``exp(total NLL / total tokens)`` of per-text rows ``[nll_sum, n_tokens]``, shape (n, 2)."""
    return math.exp(float(rows[:, 0].sum()) / float(rows[:, 1].sum()))

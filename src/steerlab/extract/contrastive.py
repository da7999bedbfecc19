"""Directions from paired activations: pure maths, tensors in, tensors out.

Every method returns a direction oriented so that + means "more like the positive side"
(its dot product with the mean paired difference is positive). PCA and probe directions
are unit vectors scaled by the mean paired difference's projection on them, so that a
coefficient means roughly the same thing whichever method made the vector.

Definitions (``p_i``, ``n_i``: the i-th pair's positive and negative activations; ``d_i =
p_i - n_i``; ``PC1(X)``: the first principal axis of the rows of ``X``, uncentred unless
stated):

* ``mean_diff``: ``mean_i d_i`` (steering-vectors' ``train_steering_vector``, CAA).
* ``pca_diff``: ``PC1(d)``, differences not centred (RepE's random-swap-then-centre recipe
  without the randomness).
* ``pca_center``: ``PC1`` of all ``p_i`` and ``n_i`` after subtracting their overall mean.
* ``pca_diff_centered``: ``PC1(d - mean d)``, the differences centred (repeng's
  ``pca_diff``).
* ``pca_pair_centered``: ``PC1`` of every ``p_i - m_i`` and ``n_i - m_i`` with ``m_i =
  (p_i + n_i)/2``, each pair centred at its own midpoint (repeng's ``pca_center``).
* ``probe``: logistic-regression weights on standardised features, mapped back.

The two repeng-compatible methods are oriented as repeng orients them: toward the side most
pairs project higher on (ties, which centred differences make common: the sign
scikit-learn's PCA gives, its largest-magnitude entry positive).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from steerlab.errors import SpecError

METHODS = ("mean_diff", "pca_diff", "pca_center", "pca_diff_centered", "pca_pair_centered", "probe")


def _check(positive: torch.Tensor, negative: torch.Tensor) -> None:
    if positive.ndim != 2 or positive.shape != negative.shape:
        raise SpecError(
            f"positive and negative activations must both be (n, d); got "
            f"{tuple(positive.shape)} and {tuple(negative.shape)}"
        )
    if positive.shape[0] == 0:
        raise SpecError("no examples to extract a direction from")


def _orient_and_scale(unit: torch.Tensor, mean_difference: torch.Tensor) -> torch.Tensor:
    projection = torch.dot(unit, mean_difference)
    if projection < 0:
        unit, projection = -unit, -projection
    return unit * projection


def _top_component(matrix: torch.Tensor) -> torch.Tensor:
    # Right singular vector with the largest singular value (float64 for stability).
    _, _, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    return vh[0].to(matrix.dtype)


def mean_diff(positive: torch.Tensor, negative: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Mean of paired differences.

    Args:
        positive: (n, d) activations of the positive side.
        negative: (n, d) activations of the paired negative side.
        seed: unused (the method is deterministic).

    Returns:
        (d,) direction.
    """
    _check(positive, negative)
    return (positive.double() - negative.double()).mean(dim=0).to(positive.dtype)


def pca_diff(positive: torch.Tensor, negative: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """First principal component of paired differences (representation engineering).

    The differences are not centred: that equals RepE's recipe of randomly swapping each
    pair's order and then centring, without the randomness.

    Returns:
        (d,) direction, oriented and scaled as the module docstring says.
    """
    _check(positive, negative)
    differences = positive.double() - negative.double()
    unit = _top_component(differences)
    return _orient_and_scale(unit, differences.mean(dim=0)).to(positive.dtype)


def pca_center(positive: torch.Tensor, negative: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """First principal component of all activations after centring them.

    Returns:
        (d,) direction, oriented and scaled as the module docstring says.
    """
    _check(positive, negative)
    stacked = torch.cat([positive, negative]).double()
    unit = _top_component(stacked - stacked.mean(dim=0))
    mean_difference = positive.double().mean(dim=0) - negative.double().mean(dim=0)
    return _orient_and_scale(unit, mean_difference).to(positive.dtype)


def _orient_by_pairs(
    unit: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
) -> torch.Tensor:
    # repeng's rule: the sign under which more pairs have positive projecting above negative.
    # On a tie repeng keeps the sign scikit-learn's PCA returns (>= 1.5: the component's
    # largest-magnitude entry positive); so do we, so that the two agree on every layer.
    differences = (positive.double() - negative.double()) @ unit
    above, below = int((differences > 0).sum()), int((differences < 0).sum())
    mean_difference = (positive.double() - negative.double()).mean(dim=0)
    if below > above or (below == above and float(unit[unit.abs().argmax()]) < 0):
        unit = -unit
    return unit * abs(float(unit @ mean_difference))


def pca_diff_centered(
    positive: torch.Tensor, negative: torch.Tensor, seed: int = 0
) -> torch.Tensor:
    """First principal component of the paired differences after centring them (repeng's
    ``pca_diff``).

    Centring removes the differences' shared mean, so this finds the axis along which the
    pairs' differences *vary* most: the concept when pairs differ in how strongly they
    express it, noise when they all differ equally (then use ``pca_diff`` or ``mean_diff``).

    Returns:
        (d,) direction: unit axis oriented by the pairs' majority, scaled by the mean
        paired difference's projection on it.
    """
    _check(positive, negative)
    differences = positive.double() - negative.double()
    unit = _top_component(differences - differences.mean(dim=0))
    return _orient_by_pairs(unit, positive, negative).to(positive.dtype)


def pca_pair_centered(
    positive: torch.Tensor, negative: torch.Tensor, seed: int = 0
) -> torch.Tensor:
    """First principal component of the activations with each pair centred at its midpoint
    (repeng's ``pca_center``).

    Returns:
        (d,) direction: unit axis oriented by the pairs' majority, scaled by the mean
        paired difference's projection on it.
    """
    _check(positive, negative)
    midpoints = (positive.double() + negative.double()) / 2
    centred = torch.cat([positive.double() - midpoints, negative.double() - midpoints])
    unit = _top_component(centred - centred.mean(dim=0))
    return _orient_by_pairs(unit, positive, negative).to(positive.dtype)


def probe(positive: torch.Tensor, negative: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Weight direction of a logistic-regression probe separating positive from negative.

    Features are standardised for the fit; the weights are mapped back to the activation
    space before taking the direction.

    Returns:
        (d,) direction, oriented and scaled as the module docstring says.
    """
    from sklearn.linear_model import LogisticRegression

    _check(positive, negative)
    features = torch.cat([positive, negative]).double().numpy()
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-8
    classifier = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    classifier.fit((features - mean) / std, labels)
    weights = torch.from_numpy(classifier.coef_[0] / std)
    norm = weights.norm()
    if float(norm) == 0.0:
        raise SpecError("the probe found no separating direction (all weights are zero)")
    mean_difference = positive.double().mean(dim=0) - negative.double().mean(dim=0)
    return _orient_and_scale(weights / norm, mean_difference).to(positive.dtype)


DIRECTION_FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = {
    "mean_diff": mean_diff,
    "pca_diff": pca_diff,
    "pca_center": pca_center,
    "pca_diff_centered": pca_diff_centered,
    "pca_pair_centered": pca_pair_centered,
    "probe": probe,
}


def direction(
    method: str, positive: torch.Tensor, negative: torch.Tensor, seed: int = 0
) -> torch.Tensor:
    """Dispatch to the method named ``method`` (one of :data:`METHODS`)."""
    if method not in DIRECTION_FUNCTIONS:
        raise SpecError(f"method {method!r} is not one of {', '.join(METHODS)}")
    return DIRECTION_FUNCTIONS[method](positive, negative, seed)

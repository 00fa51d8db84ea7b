"""Magnitude pruning (Deep Compression step 1) and structured pruning of whole rows.

Counting rule: a sparsity ``s`` over ``n`` weights keeps exactly ``round((1 - s) * n)`` of them
(Python's ``round``, halves to even), never "everything above a threshold", so equal
magnitudes cannot make a layer keep more or fewer weights than asked for. Among weights of equal
magnitude the one with the lower flat (C-order) index is kept; across layers, the earlier layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from accel.compress._checks import check_fraction, check_int, check_weights
from accel.errors import ConfigError


def kept_count(size: int, sparsity: float) -> int:
    """How many of ``size`` weights a ``sparsity`` keeps (the module's counting rule)."""
    return round((1.0 - sparsity) * size)


def _keep_largest(magnitudes: np.ndarray, keep: int) -> np.ndarray:
    # A stable sort of the negated magnitudes orders equal magnitudes by ascending index.
    order = np.argsort(-magnitudes, kind="stable")
    mask = np.zeros(magnitudes.size, dtype=bool)
    mask[order[:keep]] = True
    return mask


def magnitude_mask(weights, sparsity: float) -> np.ndarray:
    """Boolean mask of ``weights``' shape, True for the ``round((1-sparsity)*size)`` largest |w|."""
    weights = check_weights("weights", weights)
    sparsity = check_fraction("sparsity", sparsity)
    keep = kept_count(weights.size, sparsity)
    return _keep_largest(np.abs(weights).ravel(), keep).reshape(weights.shape)


def global_magnitude_masks(layers: Sequence, sparsity: float) -> list[np.ndarray]:
    """Masks for several layers under one magnitude threshold shared by all of them.

    The total kept count follows the counting rule over all weights together, so layers with
    larger weights keep a larger share.
    """
    if isinstance(layers, np.ndarray) or not isinstance(layers, Sequence) or not layers:
        raise ConfigError("layers must be a non-empty list of weight arrays")
    arrays = [check_weights(f"layers[{number}]", layer) for number, layer in enumerate(layers)]
    sparsity = check_fraction("sparsity", sparsity)
    magnitudes = np.concatenate([np.abs(array).ravel() for array in arrays])
    flat_mask = _keep_largest(magnitudes, kept_count(magnitudes.size, sparsity))
    bounds = np.cumsum([0] + [array.size for array in arrays])
    return [flat_mask[start:stop].reshape(array.shape)
            for array, start, stop in zip(arrays, bounds[:-1], bounds[1:])]


def iterative_schedule(final_sparsity: float, steps: int) -> list[float]:
    """Sparsity after each of ``steps`` prune-and-retrain rounds, ending at ``final_sparsity``.

    The kept fraction shrinks by the same factor every round, ``(1 - final) ** (k / steps)``,
    so each round removes the same share of the weights that survived the previous one. A final
    sparsity of 1 has no geometric path (the kept fraction would have to reach 0) and is refused.
    """
    final_sparsity = check_fraction("final_sparsity", final_sparsity, allow_one=False)
    steps = check_int("steps", steps, low=1)
    kept_final = 1.0 - final_sparsity
    schedule = [1.0 - kept_final ** (step / steps) for step in range(1, steps)]
    return schedule + [final_sparsity]


def structured_mask(weights, fraction: float, axis: int = 0) -> np.ndarray:
    """Boolean mask of ``weights``' shape removing whole slices along ``axis``.

    Removes ``round(fraction * weights.shape[axis])`` slices, those with the smallest L1 norm
    (ties: the higher index goes first). ``axis=0`` removes output neurons of a dense
    (outputs, inputs) matrix or filters of a conv (out, in, kh, kw) tensor.
    """
    weights = check_weights("weights", weights)
    fraction = check_fraction("fraction", fraction)
    axis = check_int("axis", axis, low=-weights.ndim, high=weights.ndim - 1) % weights.ndim
    if weights.size == 0:
        return np.zeros(weights.shape, dtype=bool)
    norms = np.abs(np.moveaxis(weights, axis, 0)).reshape(weights.shape[axis], -1).sum(axis=1)
    slices = weights.shape[axis]
    kept_slices = _keep_largest(norms, slices - round(fraction * slices))
    index_shape = [1] * weights.ndim
    index_shape[axis] = slices
    return np.broadcast_to(kept_slices.reshape(index_shape), weights.shape).copy()

"""Weight sharing by k-means (Deep Compression step 2) and centroid fine-tuning.

Codebook convention (EIE): with ``zero_entry=True`` a codebook of ``clusters`` entries keeps
entry 0 at exactly 0.0 for pruned weights, which get index 0; the kept weights are clustered
into the other ``clusters - 1`` entries, indices 1..clusters-1, even a kept weight that happens
to be 0.0. Entries 1.. are returned in ascending order, so index order is value order.
"""

from __future__ import annotations

import numbers

import numpy as np

from accel.compress._checks import check_index_array, check_int, check_weights
from accel.errors import ConfigError

DEFAULT_ITERATIONS = 100


def _nearest_centroid(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    # In 1-D the nearest centroid is found by bisecting the midpoints of the sorted centroids,
    # O(n log k) and without an n x k distance matrix. A value exactly on a midpoint goes to the
    # lower centroid.
    order = np.argsort(centroids, kind="stable")
    ordered = centroids[order]
    midpoints = (ordered[:-1] + ordered[1:]) / 2.0
    return order[np.searchsorted(midpoints, values, side="left")]


def _relocate_empty(values: np.ndarray, centroids: np.ndarray, assignment: np.ndarray,
                    rng: np.random.Generator) -> bool:
    """Move empty clusters onto kept weights; True when a centroid moved.

    Linear initialization spreads centroids over [min, max] of the kept weights, but pruning
    leaves a gap around zero, so some centroids start with no weights at all. Each empty one is
    moved onto a weight drawn with probability proportional to its squared distance from the
    nearest centroid (the k-means++ rule), which lowers the total error and puts the entry to use.
    """
    counts = np.bincount(assignment, minlength=centroids.size)
    moved = False
    # Distances to the nearest centroid, not the assigned one: a chosen weight then lies on no
    # other centroid, so the moved cluster cannot stay empty.
    distances = (values - centroids[_nearest_centroid(values, centroids)]) ** 2
    for cluster in np.flatnonzero(counts == 0):
        total = distances.sum()
        if total <= 0.0:
            break  # every weight already sits on a centroid: fewer distinct values than entries
        chosen = rng.choice(values.size, p=distances / total)
        centroids[cluster] = values[chosen]
        distances = np.minimum(distances, (values - values[chosen]) ** 2)
        moved = True
    return moved


def _move_to_means(values: np.ndarray, centroids: np.ndarray, assignment: np.ndarray) -> None:
    counts = np.bincount(assignment, minlength=centroids.size)
    sums = np.bincount(assignment, weights=values, minlength=centroids.size)
    filled = counts > 0
    centroids[filled] = sums[filled] / counts[filled]


def _lloyd(values: np.ndarray, clusters: int, iterations: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centroids = np.linspace(values.min(), values.max(), clusters)
    assignment = _nearest_centroid(values, centroids)
    for _ in range(iterations):
        _move_to_means(values, centroids, assignment)
        moved = _relocate_empty(values, centroids, assignment, rng)
        new_assignment = _nearest_centroid(values, centroids)
        if not moved and np.array_equal(new_assignment, assignment):
            break
        assignment = new_assignment
    # Recompute the means for the final assignment, so every used entry is its cluster's mean
    # even when the iteration cap stopped the loop.
    _move_to_means(values, centroids, assignment)
    return centroids, assignment


def kmeans_codebook(weights, mask=None, clusters: int = 16, zero_entry: bool = True,
                    iterations: int = DEFAULT_ITERATIONS,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the kept weights into a shared-weight codebook.

    Returns ``(codebook, indices)``: ``codebook`` is float64 with ``clusters`` entries and
    ``indices`` an int64 array of ``weights``' shape with ``codebook[indices]`` approximating the
    weights. ``mask`` (True = kept; None = all kept) selects the weights that are clustered.
    Centroids start evenly spaced between the smallest and largest kept weight (Deep
    Compression's linear initialization) and Lloyd iterations run until the assignment stops
    changing or ``iterations`` rounds have run. ``seed`` drives only the re-seeding of empty
    clusters. An entry that no weight uses keeps an unused value (it can occur when there are
    fewer distinct kept values than entries).

    Pruned weights need the zero entry: with ``zero_entry=False`` the mask must keep everything.
    """
    weights = check_weights("weights", weights)
    clusters = check_int("clusters", clusters, low=2 if zero_entry else 1)
    iterations = check_int("iterations", iterations, low=0)
    seed = check_int("seed", seed, low=0)
    if mask is None:
        mask = np.ones(weights.shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != weights.shape:
        raise ConfigError(f"mask must be a boolean array of the weights' shape {weights.shape}, "
                          f"got {mask.dtype} {mask.shape}")
    if not zero_entry and not mask.all():
        raise ConfigError("pruned weights need a zero codebook entry: use zero_entry=True or a "
                          "mask that keeps every weight")
    first_shared = 1 if zero_entry else 0
    shared = clusters - first_shared
    indices = np.zeros(weights.shape, dtype=np.int64)
    codebook = np.zeros(clusters, dtype=np.float64)
    kept_values = weights[mask]
    if kept_values.size == 0:
        return codebook, indices
    centroids, assignment = _lloyd(kept_values, shared, iterations, np.random.default_rng(seed))
    # Relocation can leave centroids out of order; sort so that index order is value order.
    order = np.argsort(centroids, kind="stable")
    rank = np.empty(shared, dtype=np.int64)
    rank[order] = np.arange(shared)
    codebook[first_shared:] = centroids[order]
    indices[mask] = rank[assignment] + first_shared
    return codebook, indices


def finetune_centroids(codebook, indices, gradient, lr: float,
                       zero_entry: bool = True) -> np.ndarray:
    """One Deep Compression centroid update: each entry moves by ``-lr`` times the sum of the
    gradients of the weights that share it. Returns a new codebook.

    With ``zero_entry=True`` entry 0 (pruned weights) stays exactly 0.0.
    """
    codebook = check_weights("codebook", codebook, ndim=1)
    indices = check_index_array("indices", indices, limit=codebook.size)
    gradient = check_weights("gradient", gradient)
    if gradient.shape != indices.shape:
        raise ConfigError(f"gradient shape {gradient.shape} differs from indices shape "
                          f"{indices.shape}")
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real) or not np.isfinite(lr):
        raise ConfigError(f"lr must be a finite number, got {lr!r}")
    if zero_entry and codebook.size and codebook[0] != 0.0:
        raise ConfigError(f"codebook entry 0 is {codebook[0]}, not 0.0: pass zero_entry=False "
                          "for a codebook without a zero entry")
    gradient_sums = np.bincount(indices.ravel(), weights=gradient.ravel(),
                                minlength=codebook.size)
    updated = codebook - lr * gradient_sums
    if zero_entry:
        updated[0] = 0.0
    return updated

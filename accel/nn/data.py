"""Datasets: the project's fixed digits split and synthetic integer activations.

The digits split
----------------
``digits_split()`` with its defaults (``seed=0``, ``test_fraction=0.2``) is THE split used
everywhere in accel: training, accuracy figures, golden-model checks and benchmarks all take it,
so numbers from different parts of the project refer to the same 359 test images. Pass other
arguments only for experiments that say so.

The split is stratified: for each class in ascending label order, the indices of that class are
permuted by one ``np.random.default_rng(seed)`` generator (shared across classes, drawn in class
order) and the first ``round(test_fraction * count)`` go to the test part. Both parts are then
returned in the dataset's original order, which already interleaves the classes. The
split is fixed for as long as numpy's PCG64 generator and its ``permutation`` keep their streams
(numpy's policy for ``Generator``); a test pins it so that a change cannot pass unnoticed.
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

from pathlib import Path

import numpy as np

from accel.errors import ConfigError

DIGITS_PIXEL_MAX = 16.0  # each digits pixel counts the set bits of a 4x4 block, 0..16


@dataclass(frozen=True, eq=False)
class Split:
    """A train/test split. Images are float32 (N, 64) in [0, 1]; labels are int64.

    The arrays are read-only, so the shared fixed split cannot be changed by accident.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    # scikit-learn's own file, read as its load_digits reads it (64 pixel columns, then the
    # label), without importing scikit-learn: that import alone takes seconds
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the digits dataset needs scikit-learn: pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",")
    images = (table[:, :-1] / DIGITS_PIXEL_MAX).astype(np.float32)
    labels = table[:, -1].astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def stratified_split_indices(labels: np.ndarray, test_fraction: float,
                             seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_indices, test_indices), each ascending; see the module notes for the procedure.

    Every class must end up with at least one sample in each part.
    """
    seed = _check_seed(seed)
    if not isinstance(test_fraction, numbers.Real) or not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        test_count = round(test_fraction * members.size)
        if test_count == 0 or test_count == members.size:
            raise ConfigError(f"test_fraction {test_fraction} leaves class {label} "
                              f"({members.size} samples) absent from one part of the split")
        shuffled = rng.permutation(members)
        test_parts.append(shuffled[:test_count])
        train_parts.append(shuffled[test_count:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(test_parts))


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """``folds`` disjoint ascending index arrays covering ``labels`` (k-fold cross-validation):
    each class shuffled with ``seed`` and dealt out as evenly as its count allows, so every
    fold holds every class. A class with fewer members than folds is a ConfigError."""
    seed = _check_seed(seed)
    if isinstance(folds, bool) or not isinstance(folds, numbers.Integral) or folds < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {folds!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(folds)]
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if members.size < folds:
            raise ConfigError(f"{folds} folds need at least {folds} samples of every class; "
                              f"class {label} has {members.size}")
        for part, chunk in zip(parts, np.array_split(rng.permutation(members), folds)):
            part.append(chunk)
    return [np.sort(np.concatenate(part)) for part in parts]


# The validation part of the training split, on which recipes and sweeps take their decisions
# (never on the test images): a stratified fifth of the fixed split's training images.
VALIDATION_FRACTION = 0.2
VALIDATION_SEED = 1


def validation_indices() -> tuple[np.ndarray, np.ndarray]:
    """(fit, held): indices into ``digits_split().x_train`` of the part to fit on and the
    validation part."""
    return stratified_split_indices(digits_split().y_train, VALIDATION_FRACTION, VALIDATION_SEED)


def digits_split(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """The scikit-learn digits dataset (1797 8x8 images), stratified into train and test.

    The default call is the project's fixed split (module notes); it has 1438 training and 359
    test images.
    """
    images, labels = _load_digits()
    train, test = stratified_split_indices(labels, test_fraction, seed)
    parts = [images[train], labels[train], images[test], labels[test]]
    for part in parts:
        part.setflags(write=False)
    return Split(*parts)


def synthetic_activations(shape, density: float, bits: int, signed: bool,
                          seed: int) -> np.ndarray:
    """Integer activations with exactly ``round(density * size)`` nonzeros at random positions.

    Nonzero values are uniform over the nonzero values of the ``bits``-wide integer range
    (two's complement when ``signed``), so every value a hardware register can hold except zero
    is equally likely.
    """
    seed = _check_seed(seed)
    extents = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if not all(isinstance(extent, numbers.Integral) and not isinstance(extent, bool)
               and extent >= 0 for extent in extents):
        raise ConfigError(f"shape must be a tuple of non-negative integers, got {shape!r}")
    shape = tuple(int(extent) for extent in extents)
    if not isinstance(density, numbers.Real) or not 0.0 <= density <= 1.0:
        raise ConfigError(f"density must be between 0 and 1, got {density!r}")
    # 62 bits keeps the upper bound of every range, plus one, inside int64.
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 1 <= bits <= 62:
        raise ConfigError(f"bits must be an integer from 1 to 62, got {bits!r}")
    size = int(np.prod(shape, dtype=np.int64))
    nonzero_count = round(density * size)
    rng = np.random.default_rng(seed)
    positions = rng.choice(size, size=nonzero_count, replace=False)
    if signed:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        # Draw from a range one value short, then shift the non-negative draws past zero.
        values = rng.integers(low, high, size=nonzero_count, endpoint=False, dtype=np.int64)
        values[values >= 0] += 1
    else:
        values = rng.integers(1, 1 << bits, size=nonzero_count, endpoint=False, dtype=np.int64)
    activations = np.zeros(size, dtype=np.int64)
    activations[positions] = values
    return activations.reshape(shape)

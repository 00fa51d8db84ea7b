"""The fixed digits split and synthetic activations."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from accel.errors import ConfigError
from accel.nn.data import digits_split, stratified_split_indices, synthetic_activations

DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def _digits():
    from sklearn.datasets import load_digits
    digits = load_digits()
    return digits.data, digits.target


def test_default_split_sizes_types_and_range():
    split = digits_split()
    expected_test = sum(round(0.2 * count) for count in DIGITS_CLASS_COUNTS)
    assert expected_test == 359
    assert split.x_train.shape == (1797 - 359, 64) and split.x_test.shape == (359, 64)
    assert split.y_train.shape == (1438,) and split.y_test.shape == (359,)
    assert split.x_train.dtype == np.float32 and split.x_test.dtype == np.float32
    assert split.y_train.dtype == np.int64 and split.y_test.dtype == np.int64
    for images in (split.x_train, split.x_test):
        assert images.min() == 0.0 and images.max() == 1.0


def test_default_split_is_stratified_per_class():
    split = digits_split()
    assert np.bincount(split.y_test, minlength=10).tolist() == [
        round(0.2 * count) for count in DIGITS_CLASS_COUNTS]
    assert (np.bincount(split.y_train, minlength=10)
            + np.bincount(split.y_test, minlength=10)).tolist() == DIGITS_CLASS_COUNTS


def test_split_is_deterministic_and_seeded():
    first, second = digits_split(), digits_split(seed=0)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
    other = digits_split(seed=1)
    assert not np.array_equal(first.y_test, other.y_test)


def test_split_parts_are_disjoint_cover_the_dataset_and_match_its_rows():
    data, labels = _digits()
    train, test = stratified_split_indices(labels, 0.2, 0)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    split = digits_split()
    assert np.array_equal(split.x_test, (data[test] / 16).astype(np.float32))
    assert np.array_equal(split.y_train, labels[train])


def test_the_fixed_split_has_not_drifted():
    # Pins THE project split: a change in numpy's generator or in the procedure must show here.
    _, labels = _digits()
    _, test = stratified_split_indices(labels, 0.2, 0)
    assert test[:12].tolist() == [5, 9, 12, 14, 16, 17, 19, 23, 24, 34, 38, 46]
    assert int(test.sum()) == 324981
    assert digits_split().y_test[:10].tolist() == [5, 9, 2, 4, 6, 7, 9, 3, 4, 6]


def test_split_arrays_are_read_only():
    split = digits_split()
    with pytest.raises(ValueError):
        split.x_train[0, 0] = 0.5


@pytest.mark.parametrize("fraction", [0.4, 0.05])
def test_other_fractions_keep_every_class_in_both_parts(fraction):
    split = digits_split(seed=3, test_fraction=fraction)
    assert set(split.y_train.tolist()) == set(range(10)) == set(split.y_test.tolist())


@pytest.mark.parametrize("kwargs", [{"test_fraction": 0.0}, {"test_fraction": 1.0},
                                    {"test_fraction": 0.001}, {"seed": -1}, {"seed": 1.5}])
def test_bad_split_arguments(kwargs):
    with pytest.raises(ConfigError):
        digits_split(**kwargs)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=1, max_size=3),
       density=st.floats(0.0, 1.0), bits=st.integers(1, 12), signed=st.booleans(),
       seed=st.integers(0, 2**32))
def test_synthetic_activations_density_and_range(shape, density, bits, signed, seed):
    activations = synthetic_activations(tuple(shape), density, bits, signed, seed)
    assert activations.shape == tuple(shape) and activations.dtype == np.int64
    assert np.count_nonzero(activations) == round(density * activations.size)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    assert activations.min(initial=0) >= low and activations.max(initial=0) <= high
    again = synthetic_activations(tuple(shape), density, bits, signed, seed)
    assert np.array_equal(activations, again)


@pytest.mark.parametrize("signed, expected", [(True, [-2, -1, 1]), (False, [1, 2, 3])])
def test_synthetic_values_are_uniform_over_nonzero_values(signed, expected):
    activations = synthetic_activations((300, 100), 0.9, 2, signed, seed=4)
    values, counts = np.unique(activations[activations != 0], return_counts=True)
    assert values.tolist() == expected
    share = counts / counts.sum()
    assert np.all(np.abs(share - 1 / 3) < 0.01)


def test_synthetic_positions_depend_on_seed():
    first = synthetic_activations((64,), 0.25, 8, False, seed=1)
    second = synthetic_activations((64,), 0.25, 8, False, seed=2)
    assert not np.array_equal(first != 0, second != 0)


@pytest.mark.parametrize("kwargs", [{"density": 1.5}, {"density": -0.1}, {"bits": 0},
                                    {"bits": 63}, {"seed": -3}, {"shape": (2, -1)},
                                    {"shape": (2.5,)}])
def test_bad_synthetic_arguments(kwargs):
    arguments = {"shape": (4, 4), "density": 0.5, "bits": 8, "signed": True, "seed": 0}
    arguments.update(kwargs)
    with pytest.raises(ConfigError):
        synthetic_activations(**arguments)

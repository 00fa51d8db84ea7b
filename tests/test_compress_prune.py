"""Magnitude, global, iterative and structured pruning."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from accel.compress import (global_magnitude_masks, iterative_schedule, magnitude_mask,
                            structured_mask)
from accel.errors import ConfigError

weight_arrays = arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)),
                       elements=st.floats(-4, 4, width=16))  # few distinct values: many ties


@settings(max_examples=80, deadline=None)
@given(weights=weight_arrays, sparsity=st.floats(0, 1))
def test_magnitude_mask_keeps_exactly_the_largest(weights, sparsity):
    mask = magnitude_mask(weights, sparsity)
    assert mask.shape == weights.shape and mask.dtype == bool
    assert mask.sum() == round((1 - sparsity) * weights.size)
    magnitudes = np.abs(weights)
    if mask.any() and (~mask).any():
        assert magnitudes[mask].min() >= magnitudes[~mask].max()
        # Ties at the threshold: every kept one precedes every pruned one in flat order.
        threshold = magnitudes[mask].min()
        tied = np.flatnonzero(magnitudes.ravel() == threshold)
        tied_kept = mask.ravel()[tied]
        assert np.all(np.diff(tied_kept.astype(int)) <= 0)


def test_magnitude_mask_small_example_and_tie_order():
    weights = np.array([[0.5, -3.0, 1.0], [-1.0, 0.0, 2.0]])
    assert magnitude_mask(weights, 0.5).tolist() == [[False, True, True], [False, False, True]]
    equal = np.ones((2, 3))
    assert magnitude_mask(equal, 0.5).tolist() == [[True, True, True], [False, False, False]]
    assert magnitude_mask(weights, 0.0).all() and not magnitude_mask(weights, 1.0).any()


def test_magnitude_mask_rounds_half_to_even():
    # 2.5 kept weights rounds to 2 (Python's round), 3.5 to 4.
    assert magnitude_mask(np.arange(1.0, 6.0), 0.5).sum() == 2
    assert magnitude_mask(np.arange(1.0, 8.0), 0.5).sum() == 4


@pytest.mark.parametrize("sparsity", [-0.1, 1.1, "0.5", True])
def test_bad_sparsity(sparsity):
    with pytest.raises(ConfigError, match="sparsity"):
        magnitude_mask(np.ones((2, 2)), sparsity)


def test_non_finite_weights_are_refused():
    with pytest.raises(ConfigError, match="NaN"):
        magnitude_mask(np.array([1.0, np.nan]), 0.5)


@settings(max_examples=60, deadline=None)
@given(layers=st.lists(weight_arrays, min_size=1, max_size=4), sparsity=st.floats(0, 1))
def test_global_masks_share_one_threshold(layers, sparsity):
    masks = global_magnitude_masks(layers, sparsity)
    assert [mask.shape for mask in masks] == [layer.shape for layer in layers]
    total = sum(layer.size for layer in layers)
    assert sum(int(mask.sum()) for mask in masks) == round((1 - sparsity) * total)
    kept = np.concatenate([np.abs(layer)[mask] for layer, mask in zip(layers, masks)])
    pruned = np.concatenate([np.abs(layer)[~mask] for layer, mask in zip(layers, masks)])
    if kept.size and pruned.size:
        assert kept.min() >= pruned.max()


def test_global_masks_favour_the_layer_with_larger_weights():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0, 0.1, (20, 20)), rng.normal(0, 1.0, (20, 20))
    small_mask, large_mask = global_magnitude_masks([small, large], 0.8)
    assert large_mask.sum() > 3 * small_mask.sum()
    assert small_mask.sum() + large_mask.sum() == 160


def test_global_masks_equal_one_mask_over_the_concatenation():
    rng = np.random.default_rng(1)
    layers = [rng.normal(size=(5, 7)), rng.normal(size=(3, 2))]
    joined = magnitude_mask(np.concatenate([layer.ravel() for layer in layers]), 0.6)
    masks = global_magnitude_masks(layers, 0.6)
    assert np.array_equal(np.concatenate([mask.ravel() for mask in masks]), joined)


def test_global_masks_need_layers():
    with pytest.raises(ConfigError, match="non-empty"):
        global_magnitude_masks([], 0.5)


@settings(max_examples=50, deadline=None)
@given(final=st.floats(0, 0.999), steps=st.integers(1, 20))
def test_iterative_schedule_is_geometric_in_the_kept_fraction(final, steps):
    schedule = iterative_schedule(final, steps)
    assert len(schedule) == steps and schedule[-1] == final
    assert all(0 <= sparsity <= final for sparsity in schedule)
    assert all(a <= b + 1e-12 for a, b in zip(schedule, schedule[1:]))
    kept = np.array([1.0] + [1 - sparsity for sparsity in schedule])
    if final > 0:
        assert np.allclose(kept[1:] / kept[:-1], (1 - final) ** (1 / steps), rtol=1e-9)


def test_iterative_schedule_example():
    assert iterative_schedule(0.75, 2) == pytest.approx([0.5, 0.75])
    assert iterative_schedule(0.9, 1) == [0.9]


@pytest.mark.parametrize("final, steps", [(1.0, 3), (0.5, 0), (0.5, 2.0), (-0.2, 2)])
def test_bad_schedules(final, steps):
    with pytest.raises(ConfigError):
        iterative_schedule(final, steps)


def test_structured_mask_removes_rows_with_the_smallest_l1_norm():
    weights = np.array([[1.0, -1.0], [0.1, 0.1], [3.0, 0.0], [-0.5, 0.2]])
    mask = structured_mask(weights, 0.5)
    assert mask[:, 0].tolist() == [True, False, True, False]
    assert np.array_equal(mask[:, 0], mask[:, 1])


def test_structured_mask_along_columns_and_conv_filters():
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(6, 10))
    weights[:, [2, 7]] *= 0.01
    mask = structured_mask(weights, 0.2, axis=1)
    assert np.flatnonzero(~mask.all(axis=0)).tolist() == [2, 7]
    assert (mask.all(axis=0) | ~mask.any(axis=0)).all()
    filters = rng.normal(size=(8, 3, 3, 3))
    filters[5] *= 0.01
    filter_mask = structured_mask(filters, 0.125, axis=0)
    kept_filters = [bool(filter_mask[index].any()) for index in range(8)]
    assert kept_filters == [True] * 5 + [False] + [True] * 2


def test_structured_mask_ties_remove_the_higher_index():
    mask = structured_mask(np.ones((4, 3)), 0.5)
    assert mask.all(axis=1).tolist() == [True, True, False, False]


def test_structured_mask_bad_axis():
    with pytest.raises(ConfigError, match="axis"):
        structured_mask(np.ones((4, 3)), 0.5, axis=2)

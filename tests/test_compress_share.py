"""k-means weight sharing and centroid fine-tuning."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from accel.compress import finetune_centroids, kmeans_codebook, magnitude_mask
from accel.errors import ConfigError


def _pruned_layer(seed=0, shape=(40, 30), sparsity=0.8):
    weights = np.random.default_rng(seed).normal(size=shape)
    return weights, magnitude_mask(weights, sparsity)


def test_zero_entry_convention():
    weights, mask = _pruned_layer()
    codebook, indices = kmeans_codebook(weights, mask, clusters=16)
    assert codebook.shape == (16,) and codebook.dtype == np.float64
    assert codebook[0] == 0.0 and not np.signbit(codebook[0])
    assert indices.shape == weights.shape and np.issubdtype(indices.dtype, np.integer)
    assert np.all(indices[~mask] == 0)
    assert np.all((indices[mask] >= 1) & (indices[mask] <= 15))
    assert np.all(np.diff(codebook[1:]) > 0)  # entries 1.. ascending


def test_every_entry_is_used_on_a_pruned_gaussian():
    # Pruning leaves a gap around zero where linear initialization puts empty centroids; they
    # must be moved to where the weights are.
    weights, mask = _pruned_layer(sparsity=0.9)
    codebook, indices = kmeans_codebook(weights, mask, clusters=16)
    assert set(np.unique(indices[mask]).tolist()) == set(range(1, 16))


@settings(max_examples=40, deadline=None)
@given(weights=arrays(np.float64, st.integers(1, 60), elements=st.floats(-8, 8)),
       sparsity=st.floats(0, 0.9), clusters=st.integers(2, 9), seed=st.integers(0, 100))
def test_converged_codebook_is_a_lloyd_fixed_point(weights, sparsity, clusters, seed):
    mask = magnitude_mask(weights, sparsity)
    codebook, indices = kmeans_codebook(weights, mask, clusters=clusters, iterations=1000,
                                        seed=seed)
    kept, kept_indices = weights[mask], indices[mask]
    for entry in np.unique(kept_indices):
        assert codebook[entry] == pytest.approx(kept[kept_indices == entry].mean(), abs=1e-12)
    if kept.size:
        # Each kept weight sits at (one of) its nearest shared entries.
        distances = np.abs(kept[:, None] - codebook[None, 1:])
        chosen = np.abs(kept - codebook[kept_indices])
        assert np.all(chosen <= distances.min(axis=1) + 1e-12)


def test_linear_initialization():
    # With no Lloyd iteration the assignment is to centroids evenly spaced over [min, max].
    weights = np.array([-1.0, -0.9, -0.1, 0.05, 0.6, 1.0, 0.95, -0.55])
    codebook, indices = kmeans_codebook(weights, None, clusters=5, zero_entry=False,
                                        iterations=0)
    initial = np.linspace(-1.0, 1.0, 5)
    expected = np.abs(weights[:, None] - initial[None, :]).argmin(axis=1)
    assert indices.tolist() == expected.tolist()
    for entry in range(5):
        assert codebook[entry] == pytest.approx(weights[expected == entry].mean())


def test_separated_groups_are_recovered_exactly():
    groups = np.array([-2.0] * 5 + [0.5] * 7 + [3.0] * 4)
    weights = groups + np.tile([-0.01, 0.01], 8)
    codebook, indices = kmeans_codebook(weights, None, clusters=3, zero_entry=False)
    expected = [weights[:5].mean(), weights[5:12].mean(), weights[12:].mean()]
    assert codebook == pytest.approx(expected, abs=1e-12)
    assert indices.tolist() == [0] * 5 + [1] * 7 + [2] * 4


def test_few_distinct_values_are_represented_exactly():
    weights = np.array([[0.0, 1.5, -1.5], [1.5, 0.0, 0.25]])
    mask = weights != 0
    codebook, indices = kmeans_codebook(weights, mask, clusters=16)
    assert np.array_equal(codebook[indices], weights)


def test_seeded_and_deterministic():
    weights, mask = _pruned_layer(seed=3, sparsity=0.9)
    first = kmeans_codebook(weights, mask, seed=7)
    second = kmeans_codebook(weights, mask, seed=7)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_sharing_error_shrinks_with_more_clusters():
    weights, mask = _pruned_layer(seed=4)
    errors = []
    for clusters in (4, 8, 32):
        codebook, indices = kmeans_codebook(weights, mask, clusters=clusters)
        errors.append(np.mean((codebook[indices] - weights)[mask] ** 2))
    assert errors[0] > errors[1] > errors[2]


def test_all_pruned_layer():
    codebook, indices = kmeans_codebook(np.ones((3, 3)), np.zeros((3, 3), bool), clusters=4)
    assert codebook.tolist() == [0.0] * 4 and not indices.any()


def test_without_zero_entry_every_weight_must_be_kept():
    weights, mask = _pruned_layer()
    with pytest.raises(ConfigError, match="zero codebook entry"):
        kmeans_codebook(weights, mask, zero_entry=False)
    codebook, indices = kmeans_codebook(weights, None, clusters=8, zero_entry=False)
    assert set(np.unique(indices).tolist()) == set(range(8))


@pytest.mark.parametrize("kwargs", [{"clusters": 1}, {"iterations": -1}, {"seed": -1},
                                    {"mask": np.ones((2, 2))}, {"mask": np.ones((3, 2), bool)}])
def test_bad_kmeans_arguments(kwargs):
    arguments = {"weights": np.ones((2, 2)), "mask": np.ones((2, 2), bool)}
    arguments.update(kwargs)
    with pytest.raises(ConfigError):
        kmeans_codebook(**arguments)


def test_finetune_moves_each_centroid_by_its_summed_gradient():
    codebook = np.array([0.0, -1.0, 0.5, 2.0])
    indices = np.array([[0, 1, 2], [1, 3, 0]])
    gradient = np.array([[9.0, 0.5, -1.0], [0.25, 2.0, 9.0]])
    updated = finetune_centroids(codebook, indices, gradient, lr=0.1)
    assert updated == pytest.approx([0.0, -1.0 - 0.1 * 0.75, 0.5 + 0.1, 2.0 - 0.2])
    assert codebook.tolist() == [0.0, -1.0, 0.5, 2.0]  # input untouched
    no_zero = finetune_centroids(codebook, indices, gradient, lr=0.1, zero_entry=False)
    assert no_zero[0] == pytest.approx(-1.8)


def test_finetune_checks_its_inputs():
    codebook = np.array([0.0, 1.0])
    with pytest.raises(ConfigError, match="shape"):
        finetune_centroids(codebook, np.zeros((2, 2), int), np.zeros((2, 3)), 0.1)
    with pytest.raises(ConfigError, match="below 2"):
        finetune_centroids(codebook, np.full((2, 2), 2), np.zeros((2, 2)), 0.1)
    with pytest.raises(ConfigError, match="entry 0"):
        finetune_centroids(np.array([0.5, 1.0]), np.zeros((2, 2), int), np.zeros((2, 2)), 0.1)

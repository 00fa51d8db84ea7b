"""The EIE engine in Verilator: outputs equal to the exact product, cycles and events equal to
the cycle model, on random sparse matrices (empty columns, gaps over 15, all-zero inputs) and on
the first layer of mlp-sparse with real digits."""

import numpy as np
import pytest

from accel.hw.eie.mapping import map_layer
from accel.hw.eie.run import run_layer_rtl
from accel.nn import golden, load
from accel.nn.data import digits_split
from accel.nn.ir import Dense


def random_layer(seed, rows, cols, density):
    rng = np.random.default_rng(seed)
    values = rng.choice([-9, -4, -1, 3, 6, 12, 20], (rows, cols))
    weights = np.where(rng.random((rows, cols)) < density, values, 0)
    weights[:, rng.integers(cols)] = 0  # an empty column
    long_gap = rng.integers(cols)
    weights[:, long_gap] = 0
    weights[rows - 1, long_gap] = 5  # a gap of more than 15 rows in every PE's slice
    vectors = np.where(rng.random((3, cols)) < 0.4, rng.integers(-2000, 2000, (3, cols)), 0)
    vectors[1] = 0  # all-zero input
    return weights, vectors


@pytest.mark.parametrize("pes,depth,seed", [
    (3, 1, 1), pytest.param(8, 8, 2, marks=pytest.mark.slow)])
def test_random_sparse_layers(pes, depth, seed):
    # at least 17 local rows per PE, so that a gap over 15 (a padding entry) is possible
    weights, vectors = random_layer(seed, rows=max(70, 18 * pes), cols=40, density=0.15)
    mapping = map_layer("random", weights, num_pes=pes, queue_depth=depth)
    assert mapping.matrix.padding_entries > 0
    for result in run_layer_rtl(mapping, vectors):
        np.testing.assert_array_equal(result["outputs"], result["expected"])
        assert result["cycles"] == result["model"].cycles
        assert result["events"] == result["model"].events


@pytest.mark.slow
@pytest.mark.parametrize("pes,depth", [(1, 8), (4, 1), (16, 8)])
def test_mlp_sparse_first_layer_on_digits(pes, depth):
    """1, 4 and 16 PEs with queue depths 8 and 1 on real activations (one layer each)."""
    network = load("mlp-sparse")
    first = next(layer for layer in network.layers if isinstance(layer, Dense))
    split = digits_split()
    trace = golden.run(network, split.x_test[:12], return_all=True)
    activations = trace[0]  # the quantized input
    expected = trace[1] if first.bias is None else trace[1] - first.bias
    mapping = map_layer(first.name, first.weights, num_pes=pes, queue_depth=depth)
    for result, want in zip(run_layer_rtl(mapping, activations), expected):
        np.testing.assert_array_equal(result["outputs"], want)
        assert result["cycles"] == result["model"].cycles
        assert result["events"] == result["model"].events


@pytest.mark.slow
def test_mlp_sparse_network_on_digits():
    """All three layers of mlp-sparse back to back on 4 PEs (ping-pong activations with bias,
    ReLU and rounding shift in hardware): final outputs equal to the golden model's, cycles and
    events equal to the cycle model's. (A build of this design takes about 5 minutes.)"""
    from accel.hw.eie.mapping import map_network
    from accel.hw.eie.run import run_rtl

    network = load("mlp-sparse")
    split = digits_split()
    trace = golden.run(network, split.x_test[:40], return_all=True)
    dense = [i for i, layer in enumerate(network.layers) if isinstance(layer, Dense)]
    mapping = map_network(network, num_pes=4, queue_depth=8)
    results = run_rtl(mapping, [trace[i - 1] for i in dense])
    for result, expected in zip(results, trace[-1]):
        np.testing.assert_array_equal(result["outputs"], expected)
        assert result["cycles"] == result["model"].cycles
        assert result["events"] == result["model"].events
    predictions = [int(np.argmax(result["outputs"])) for result in results]
    assert predictions == list(golden.predict(network, split.x_test[:40]))

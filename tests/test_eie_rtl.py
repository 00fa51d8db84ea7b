"""The EIE engine in Verilator: outputs equal to the exact product, cycles and events equal to
the cycle model, on random sparse matrices (empty columns, gaps over 15, all-zero inputs) and on
the whole mlp-sparse network with real digits."""

import numpy as np
import pytest

from accel.hw.eie.mapping import map_layer
from accel.hw.eie.run import run_layer_rtl
from accel.nn import golden, load
from accel.nn.data import digits_split


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


@pytest.mark.parametrize("pes,depth,seed,per_word", [
    (3, 1, 1, 8), pytest.param(8, 8, 2, 2, marks=pytest.mark.slow)])
def test_random_sparse_layers(pes, depth, seed, per_word):
    # at least 17 local rows per PE, so that a gap over 15 (a padding entry) is possible
    weights, vectors = random_layer(seed, rows=max(70, 18 * pes), cols=40, density=0.15)
    mapping = map_layer("random", weights, num_pes=pes, queue_depth=depth)
    assert mapping.matrix.padding_entries > 0
    for result in run_layer_rtl(mapping, vectors, per_word):
        np.testing.assert_array_equal(result["outputs"], result["expected"])
        assert result["cycles"] == result["model"].cycles
        assert result["events"] == result["model"].events


@pytest.mark.slow
@pytest.mark.parametrize("pes", [1, 4, 16])
@pytest.mark.parametrize("depth", [1, 8])
def test_mlp_sparse_on_the_whole_test_split(pes, depth):
    """All three layers of mlp-sparse back to back (bias, ReLU and rounding shift written back
    into the activation banks in hardware) on all 359 test images: outputs bit-exact with the
    golden model, RTL cycles, events and energy equal to the cycle model's."""
    from accel.hw import evaluate
    from accel.hw.eie.arch import ARCHITECTURE as EIE, EIEOptions

    network = load("mlp-sparse")
    split = digits_split()
    mapping = EIE.configure(network, EIEOptions(pes=pes, queue_depth=depth), clock_mhz=200.0)
    result = evaluate.simulate(EIE, mapping, network, split.x_test, split.y_test,
                               model="mlp-sparse", clock_mhz=200.0)
    assert result.images == 359 and result.bit_exact
    assert result.predictions == list(golden.predict(network, split.x_test))
    assert result.cycles_per_inference == result.model_cycles_per_inference
    assert result.model_events_equal
    assert result.extra["energy_uj_per_inference"] == \
        result.extra["model_energy_uj_per_inference"]
    assert result.accuracy == pytest.approx(0.9638, abs=5e-5)
    estimated = evaluate.estimate(EIE, mapping, network, split.x_test, split.y_test,
                                  model="mlp-sparse", clock_mhz=200.0)
    for key in ("cycles_per_inference", "latency_cycles", "events", "predictions"):
        assert getattr(estimated, key) == getattr(result, key), key
    assert estimated.extra["energy_uj_per_inference"] == result.extra["energy_uj_per_inference"]


@pytest.mark.slow
def test_post_training_compressed_mlp_with_unsigned_activations():
    """`accel compress`'s output (unsigned 16-bit activations after each ReLU, held as 17-bit
    signed in the engine) runs bit-exact on 20 images."""
    from accel.compress.network import compress_network
    from accel.hw import evaluate
    from accel.hw.eie.arch import ARCHITECTURE as EIE, EIEOptions
    from accel.nn.evaluate import network_inputs

    split = digits_split()
    mlp = load("mlp")
    network = compress_network(mlp, network_inputs(mlp, split.x_train, "train"), seed=0)
    mapping = EIE.configure(network, EIEOptions(pes=4, queue_depth=2), clock_mhz=200.0)
    assert mapping.activation_bits == 17
    result = evaluate.simulate(EIE, mapping, network, split.x_test[:20], split.y_test[:20],
                               model="mlp-compressed", clock_mhz=200.0)
    assert result.bit_exact and result.model_events_equal
    assert result.cycles_per_inference == result.model_cycles_per_inference

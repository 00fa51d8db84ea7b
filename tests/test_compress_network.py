"""Post-training compression of a float network and its Deep Compression report."""

import numpy as np
import pytest

from accel.compress.network import (codebook_indices, compress_network,
                                    network_compression_report, power_of_two_scale)
from accel.errors import ConfigError
from accel.nn import DataType, Dense, Network, Quant, Relu, golden
from accel.nn.evaluate import check_against_qonnx, qonnx_exact
from accel.nn.qonnx_io import to_onnx


def float_mlp(seed=0):
    rng = np.random.default_rng(seed)
    return Network("float_mlp", (1, 64), [
        Dense("fc1", weights=rng.normal(0, 0.2, (48, 64)), weight_type=DataType.float32(),
              bias=rng.normal(0, 0.1, 48)),
        Relu("relu1"),
        Dense("fc2", weights=rng.normal(0, 0.2, (10, 48)), weight_type=DataType.float32()),
    ])


def test_power_of_two_scale_covers_the_range():
    assert power_of_two_scale(1.0, 16, signed=False) == 2.0**-15
    assert power_of_two_scale(0.9, 8, signed=True) == 2.0**-7
    assert power_of_two_scale(127.0, 8, signed=True) == 1.0


def test_compressed_network_is_sparse_shared_fixed_point_and_agrees_with_qonnx():
    rng = np.random.default_rng(1)
    calibration = rng.random((200, 64)).astype(np.float32)
    net = compress_network(float_mlp(), calibration, sparsity=0.9, weight_bits=4)
    dense = [layer for layer in net.layers if isinstance(layer, Dense)]
    for layer in dense:
        assert (layer.weights == 0).mean() >= 0.9 - 1e-9
        assert len(np.unique(layer.weights)) <= 16
        assert layer.weight_type.bits == 16 and layer.weight_type.scale_is_power_of_two
    quants = [layer for layer in net.layers if isinstance(layer, Quant)]
    assert all(q.bits == 16 and q.out_type.scale_is_power_of_two for q in quants)
    # 16-bit x 16-bit accumulators exceed qonnx's exact float32 range: checked within tolerance
    assert not qonnx_exact(net)
    inputs = rng.random((30, 64)).astype(np.float32)
    check = check_against_qonnx(net, to_onnx(net), inputs, golden.run(net, inputs))
    assert check.agree and check.predictions_agree == 30


def test_light_compression_keeps_the_float_predictions():
    """Without pruning and with a 256-entry codebook, the fixed-point network must make the
    float network's predictions: this checks scales, biases and requantization end to end."""
    rng = np.random.default_rng(4)
    calibration = rng.random((200, 64)).astype(np.float32)
    net = compress_network(float_mlp(), calibration, sparsity=0.0, weight_bits=8)
    inputs = rng.random((200, 64)).astype(np.float32)
    agree = (golden.predict(net, inputs) == golden.predict(float_mlp(), inputs)).mean()
    assert agree >= 0.97


def test_report_of_a_compressed_network():
    calibration = np.random.default_rng(2).random((50, 64)).astype(np.float32)
    net = compress_network(float_mlp(), calibration, sparsity=0.9)
    report = network_compression_report(net)
    assert [layer.name for layer in report.layers] == ["fc1", "fc2"]
    assert report.layers[0].kept_weights == round(0.1 * 48 * 64)
    assert report.layers[0].total_weights == 48 * 64
    assert report.ratio > 8


def test_codebook_indices_zero_is_pruned():
    indices, size = codebook_indices(np.array([[0, 5, -3], [5, 0, 7]]))
    assert size == 4
    np.testing.assert_array_equal(indices, [[0, 2, 1], [2, 0, 3]])


def test_compress_rejects_quantized_networks():
    net = Network("q", (1, 4), [Quant("q", bits=4, signed=False),
                                Dense("d", weights=np.ones((2, 4)), weight_type=DataType(2, True))])
    with pytest.raises(ConfigError, match="compress takes float networks"):
        compress_network(net, np.zeros((1, 4), np.float32))

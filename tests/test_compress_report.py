"""The Deep Compression size table."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from accel.compress import (CompressedLayer, compression_report, encode_eie, format_report,
                            kmeans_codebook, magnitude_mask)
from accel.compress.report import relative_index_stream
from accel.errors import ConfigError


def _hand_layer():
    indices = np.zeros((1, 40), dtype=int)
    indices[0, 20] = 3   # 20 zeros before it: two padding entries (8 rows each) then z=4
    indices[0, 23] = 5   # 2 zeros since the previous entry
    return CompressedLayer("fc", (1, 40), indices, codebook_size=16, index_bits=3)


def test_hand_computed_layer():
    layer = compression_report([_hand_layer()]).layers[0]
    assert (layer.total_weights, layer.kept_weights, layer.padding_entries) == (40, 2, 2)
    assert layer.kept_percent == pytest.approx(5.0)
    assert (layer.weight_bits, layer.index_bits) == (4, 3)
    assert layer.weight_stream_bits == 4 * 4 and layer.index_stream_bits == 4 * 3
    assert layer.codebook_bits == 16 * 32
    assert layer.compressed_bits == 16 + 12 + 512
    assert layer.compressed_bytes == 68  # 540 bits, rounded up
    assert layer.dense_bits == 1280 and layer.ratio == pytest.approx(1280 / 540)
    # Codebook indices [0, 0, 3, 5]: lengths 1, 2, 2; relative indices [7, 7, 4, 2]: likewise.
    assert layer.huffman_weight_bits == 6 and layer.huffman_index_bits == 6
    assert layer.huffman_total_bits == 524 and layer.huffman_ratio == pytest.approx(1280 / 524)


def test_relative_indices_match_eie_with_one_pe_on_a_column():
    rng = np.random.default_rng(0)
    flat = rng.integers(1, 16, 500) * (rng.random(500) < 0.05)
    for index_bits in (2, 4, 5):
        values, gaps = relative_index_stream(flat.reshape(5, 100), index_bits)
        matrix = encode_eie(flat.reshape(-1, 1), num_pes=1, index_bits=index_bits)
        assert values.tolist() == matrix.v[0].tolist()
        assert gaps.tolist() == matrix.z[0].tolist()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1000), density=st.floats(0.0, 1.0), index_bits=st.integers(1, 8))
def test_stream_reconstructs_the_layer(seed, density, index_bits):
    rng = np.random.default_rng(seed)
    flat = rng.integers(1, 4, 300) * (rng.random(300) < density)
    values, gaps = relative_index_stream(flat, index_bits)
    rebuilt = np.zeros_like(flat)
    position = -1
    for value, gap in zip(values, gaps):
        position += gap + 1
        rebuilt[position] = value
    assert np.array_equal(rebuilt, flat)


def test_totals_and_a_lenet_like_ratio():
    rng = np.random.default_rng(1)
    layers = []
    for name, shape in (("fc1", (300, 784)), ("fc2", (100, 300)), ("fc3", (10, 100))):
        weights = rng.normal(size=shape)
        codebook, indices = kmeans_codebook(weights, magnitude_mask(weights, 0.92), clusters=32)
        layers.append(CompressedLayer(name, shape, indices, 32, 5))
    report = compression_report(layers)
    assert report.total_weights == 266200
    assert report.kept_weights == sum(layer.kept_weights for layer in report.layers)
    assert report.compressed_bits == sum(layer.compressed_bits for layer in report.layers)
    assert report.ratio == pytest.approx(report.dense_bits / report.compressed_bits)
    # 8% kept at 5 + 5 bits: about 32 / (0.08 * 10), i.e. 35-40x, as Deep Compression's LeNet.
    assert 30 < report.ratio < 40
    assert report.huffman_ratio > report.ratio


def test_format_report_lists_layers_and_totals():
    text = format_report(compression_report([_hand_layer()]))
    lines = text.splitlines()
    assert lines[0].split()[0] == "layer" and "huffman ratio" in lines[0]
    fc_line = next(line for line in lines if line.startswith("fc"))
    assert fc_line.split() == ["fc", "40", "2", "5.0", "4", "3", "2", "68", "2.4x", "66", "2.4x"]
    assert any(line.startswith("total") for line in lines)
    assert text.endswith("\n") and "dense 32-bit size: 160 bytes" in text


@pytest.mark.parametrize("layer, message", [
    (CompressedLayer("a", (2, 3), np.zeros((2, 2), int), 16, 4), "has 6 weights"),
    (CompressedLayer("a", (1, 2), np.array([[0, 16]]), 16, 4), "below 16"),
    (CompressedLayer("a", (1, 2), np.array([[0, 1]]), 1, 4), "codebook_size"),
    (CompressedLayer("a", (1, 2), np.array([[0, 1]]), 16, 0), "index_bits"),
])
def test_bad_layers(layer, message):
    with pytest.raises(ConfigError, match=message):
        compression_report([layer])


def test_bad_layer_lists():
    with pytest.raises(ConfigError, match="non-empty"):
        compression_report([])
    with pytest.raises(ConfigError, match="repeat: fc"):
        compression_report([_hand_layer(), _hand_layer()])
    with pytest.raises(ConfigError, match="CompressedLayer"):
        compression_report([("fc", (1, 2), np.zeros((1, 2), int), 16, 4)])

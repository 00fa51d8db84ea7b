"""Compression of whole networks: Deep Compression's pruning and weight sharing applied to every
dense layer of a float network, with fixed-point activations, and the size report of a network.

``compress_network`` is post-training (no retraining): ``accel train mlp-sparse`` is the
retrained pipeline; this is what a user runs on their own float model to see what compression
costs in accuracy and buys in size.
"""

from __future__ import annotations

import math

import numpy as np

from accel.compress.prune import magnitude_mask
from accel.compress.report import CompressedLayer, CompressionReport, compression_report
from accel.compress.share import kmeans_codebook
from accel.errors import ConfigError
from accel.nn import golden
from accel.nn.ir import MAX_OPERAND_BITS, DataType, Dense, Flatten, Layer, Network, Quant, Relu

MAX_WEIGHT_BITS = 8  # a codebook of 256 entries (Deep Compression: 4-5 bits dense, 8 conv)


def power_of_two_scale(max_abs: float, bits: int, signed: bool) -> float:
    """The smallest power-of-two scale whose ``bits``-bit integer range covers ``max_abs``."""
    top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    if max_abs <= 0:
        return 1.0
    return 2.0 ** math.ceil(math.log2(max_abs / top))


def compress_network(network: Network, calibration: np.ndarray, *, sparsity: float = 0.9,
                     weight_bits: int = 4, codebook_bits: int = 16, activation_bits: int = 16,
                     seed: int = 0, masks: dict[str, np.ndarray] | None = None) -> Network:
    """Prune every dense layer to ``sparsity`` (magnitude), share its kept weights in a
    ``2**weight_bits``-entry codebook (k-means, linear initialization, entry 0 = pruned), store
    codebook values as ``codebook_bits``-bit fixed point, and quantize the input and every
    hidden activation to ``activation_bits``-bit fixed point with power-of-two scales chosen on
    ``calibration`` inputs. The network must be a float chain of Dense, Relu and Flatten.

    ``masks`` (layer name -> boolean array of the weights' shape, True = kept) replaces the
    magnitude pruning of the layers it names: a pruning already decided (``accel prune``) is
    shared as it stands, the other layers are pruned to ``sparsity``."""
    for layer in network.layers:
        if not isinstance(layer, (Dense, Relu, Flatten)) or (
                isinstance(layer, Dense) and not layer.weight_type.is_float):
            raise ConfigError(f"layer {layer.name} ({layer.op}): compress takes float networks "
                              "of dense, relu and flatten layers")
    if not 0 <= sparsity < 1:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
    for name, value, lo, hi in (("weight_bits", weight_bits, 1, MAX_WEIGHT_BITS),
                                ("codebook_bits", codebook_bits, 2, MAX_OPERAND_BITS),
                                ("activation_bits", activation_bits, 2, MAX_OPERAND_BITS)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
    float_trace = golden.run(network, calibration, return_all=True)
    input_scale = power_of_two_scale(float(np.abs(calibration).max()), activation_bits,
                                     signed=bool((calibration < 0).any()))
    layers: list[Layer] = [Quant("input_quant", bits=activation_bits,
                                 signed=bool((calibration < 0).any()), scale=input_scale)]
    scale = input_scale
    masks = dict(masks or {})
    dense_names = {layer.name for layer in network.layers if isinstance(layer, Dense)}
    for name, mask in masks.items():
        if name not in dense_names:
            raise ConfigError(f"a mask names {name!r}, which is not a dense layer of "
                              f"{network.name}")
        shape = next(layer.weights.shape for layer in network.layers if layer.name == name)
        if np.shape(mask) != shape:
            raise ConfigError(f"the mask of {name} has shape {np.shape(mask)}, its weights "
                              f"{shape}")
    for index, layer in enumerate(network.layers):
        if isinstance(layer, Dense):
            mask = masks.get(layer.name)
            if mask is None:
                mask = magnitude_mask(layer.weights.astype(np.float64), sparsity)
            weights, wtype = _shared_fixed_point(layer, np.asarray(mask, dtype=bool),
                                                 weight_bits, codebook_bits, seed)
            bias = None
            if layer.bias is not None:
                bias = np.round(layer.bias.astype(np.float64) / (scale * wtype.scale))
            layers.append(Dense(layer.name, weights=weights, weight_type=wtype, bias=bias))
            scale *= wtype.scale
        elif isinstance(layer, Relu):
            layers.append(layer)
            peak = float(np.abs(float_trace[index]).max())
            scale = power_of_two_scale(peak, activation_bits, signed=False)
            layers.append(Quant(f"{layer.name}_quant", bits=activation_bits, signed=False,
                                scale=scale))
        else:
            layers.append(layer)
    compressed = Network(f"{network.name}-compressed", network.input_shape, layers)
    compressed.metadata = dict(network.metadata)
    dense = [layer.weights for layer in layers if isinstance(layer, Dense)]
    zeros = sum(int(np.count_nonzero(weights == 0)) for weights in dense)
    actual = zeros / sum(weights.size for weights in dense)
    compressed.metadata.update({"compressed_from": network.name,
                                "sparsity": str(sparsity) if not masks else f"{actual:.6f}",
                                "weight_bits": str(weight_bits)})
    return compressed


def _shared_fixed_point(layer: Dense, mask: np.ndarray, weight_bits: int, codebook_bits: int,
                        seed: int) -> tuple[np.ndarray, DataType]:
    weights = layer.weights.astype(np.float64)
    codebook, indices = kmeans_codebook(weights, mask, clusters=1 << weight_bits,
                                        zero_entry=True, seed=seed)
    wscale = power_of_two_scale(float(np.abs(codebook).max()), codebook_bits, signed=True)
    fixed = np.clip(np.round(codebook / wscale), -(1 << (codebook_bits - 1)),
                    (1 << (codebook_bits - 1)) - 1).astype(np.int64)
    return fixed[indices], DataType(codebook_bits, True, wscale)


def codebook_indices(weights: np.ndarray) -> tuple[np.ndarray, int]:
    """A weight matrix of shared values as (indices with 0 for zero weights, codebook size)."""
    values = np.unique(weights[weights != 0])
    indices = np.zeros(weights.shape, dtype=np.int64)
    nonzero = weights != 0
    indices[nonzero] = np.searchsorted(values, weights[nonzero]) + 1
    return indices, len(values) + 1


def network_compression_report(network: Network, index_bits: int = 4) -> CompressionReport:
    """Deep Compression's size table for every dense layer with integer (shared) weights."""
    layers = []
    for layer in network.layers:
        if not isinstance(layer, Dense) or layer.weight_type.is_float:
            continue
        indices, size = codebook_indices(layer.weights)
        layers.append(CompressedLayer(layer.name, layer.weights.shape, indices,
                                      max(size, 2), index_bits))
    if not layers:
        raise ConfigError(f"network {network.name} has no quantized dense layers to report on")
    return compression_report(layers)

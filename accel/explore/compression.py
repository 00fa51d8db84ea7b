"""A sweep point's compression choices applied to a network, with ``accel.compress``.

Post-training and without retraining (what a sweep can afford per point): on each layer with
integer, non-binary weights,
  sparsity       magnitude pruning (``accel.compress.magnitude_mask``) to that fraction of zero
                 weights; a layer already at least that sparse is left as it is (pruning only
                 removes weights), so ``sparsity: 0`` means "as in the file";
  codebook_size  the kept weights re-shared by k-means (``accel.compress.kmeans_codebook``,
                 linear initialization, entry 0 is the zero of pruned weights) into
                 ``codebook_size - 1`` values, rounded to the layer's integer weight type; a
                 layer that already has no more distinct nonzero weights is left as it is.
Pruning comes first, then sharing (Deep Compression's order). Biases, scales and activation
types are unchanged. On EIE the codebook size changes accuracy, not cycles or energy: the
engine reads 4-bit indices into a 16-entry table whatever the number of entries in use.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from accel.compress import kmeans_codebook, magnitude_mask
from accel.nn.ir import Network


def prunable_layers(network: Network) -> list[str]:
    """Names of the layers with integer, non-binary weights (what the choices apply to)."""
    return [layer.name for layer in network.layers
            if getattr(layer, "weights", None) is not None
            and getattr(layer, "weight_type", None) is not None
            and not layer.weight_type.is_float and not layer.weight_type.bipolar]


def _share(weights: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    kept = weights != 0
    if len(np.unique(weights[kept])) <= clusters - 1:
        return weights
    codebook, indices = kmeans_codebook(weights.astype(np.float64), kept, clusters=clusters,
                                        zero_entry=True, seed=seed)
    return np.round(codebook).astype(np.int64)[indices]


def compress(network: Network, compression: dict | None) -> tuple[Network, dict]:
    """(the compressed network, per layer: weights, kept, sparsity, codebook entries in use
    including the zero)."""
    sparsity = (compression or {}).get("sparsity") or {}
    codebook = (compression or {}).get("codebook_size")
    seed = (compression or {}).get("seed", 0)
    prunable = set(prunable_layers(network))
    layers, summary = [], {}
    for layer in network.layers:
        if layer.name not in prunable:
            layers.append(layer)
            continue
        weights = np.asarray(layer.weights, dtype=np.int64)
        target = sparsity.get(layer.name)
        if target is not None:
            weights = np.where(magnitude_mask(weights, target), weights, 0)
        if codebook is not None:
            weights = _share(weights, codebook, seed)
        if target is not None or codebook is not None:
            layer = dataclasses.replace(layer, weights=weights)
        layers.append(layer)
        kept = int(np.count_nonzero(weights))
        summary[layer.name] = {"weights": int(weights.size), "kept": kept,
                               "sparsity": 1.0 - kept / weights.size if weights.size else 0.0,
                               "codebook_entries": int(len(np.unique(weights[weights != 0])))
                               + 1}
    if not compression:
        return network, summary
    compressed = Network(network.name, network.input_shape, layers, network.input_type)
    compressed.metadata = dict(network.metadata)
    return compressed, summary

"""Compression of weight arrays: pruning, weight sharing, quantization, and storage encoders.

Everything here is a pure numpy function of weight arrays; a dense layer's matrix is
(outputs, inputs), rows being output neurons, as EIE stores it.
"""

from accel.compress.eie import EIEMatrix, encode_eie, pack_entries, unpack_entries
from accel.compress.huffman import decode, encode, huffman_bits, huffman_code
from accel.compress.prune import (global_magnitude_masks, iterative_schedule, magnitude_mask,
                                  structured_mask)
from accel.compress.quantize import binarize, from_fixed_point, integer_range, to_fixed_point
from accel.compress.report import (CompressedLayer, CompressionReport, LayerReport,
                                   compression_report, format_report)
from accel.compress.share import finetune_centroids, kmeans_codebook

__all__ = [
    "CompressedLayer", "CompressionReport", "EIEMatrix", "LayerReport", "binarize",
    "compression_report", "decode", "encode", "encode_eie", "finetune_centroids",
    "format_report", "from_fixed_point", "global_magnitude_masks", "huffman_bits",
    "huffman_code", "integer_range", "iterative_schedule", "kmeans_codebook", "magnitude_mask",
    "pack_entries", "structured_mask", "to_fixed_point", "unpack_entries",
]

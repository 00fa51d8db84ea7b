"""Mapping a dense layer of shared weights onto the EIE engine: codebook, per-PE CSC storage,
widths."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accel.compress.eie import EIEMatrix, encode_eie
from accel.compress.network import codebook_indices
from accel.errors import ConfigError

CODEBOOK_ENTRIES = 16


@dataclass
class EIELayerMapping:
    name: str
    num_pes: int
    queue_depth: int
    codebook: np.ndarray = field(repr=False)  # 16 integers, entry 0 is 0
    matrix: EIEMatrix = field(repr=False)
    weight_bits: int  # codebook entry width
    activation_bits: int
    accumulator_bits: int

    @property
    def rows(self) -> int:
        return self.matrix.rows

    @property
    def cols(self) -> int:
        return self.matrix.cols

    @property
    def local_rows(self) -> int:
        return -(-self.rows // self.num_pes)


def map_layer(name: str, weights: np.ndarray, *, num_pes: int, queue_depth: int = 8,
              weight_bits: int = 16, activation_bits: int = 16,
              accumulator_bits: int = 40) -> EIELayerMapping:
    """``weights`` (outputs, inputs) integers with at most 15 distinct nonzero values."""
    if num_pes < 1 or queue_depth < 1:
        raise ConfigError(f"layer {name}: PEs and queue depth must be positive")
    indices, size = codebook_indices(weights)
    if size > CODEBOOK_ENTRIES:
        raise ConfigError(f"layer {name}: {size - 1} distinct nonzero weights; EIE's codebook "
                          f"holds {CODEBOOK_ENTRIES - 1} (share the weights first)")
    values = np.unique(weights[weights != 0])
    codebook = np.zeros(CODEBOOK_ENTRIES, dtype=np.int64)
    codebook[1:1 + len(values)] = values
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    if values.size and (values.min() < lo or values.max() > hi):
        raise ConfigError(f"layer {name}: weights do not fit {weight_bits}-bit codebook entries")
    return EIELayerMapping(name, num_pes, queue_depth, codebook, encode_eie(indices, num_pes),
                           weight_bits, activation_bits, accumulator_bits)

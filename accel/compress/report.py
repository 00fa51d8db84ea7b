"""The Deep Compression size table: per layer and in total, before and after Huffman coding.

Storage model (Deep Compression, Han et al. 2016, section 2 and figure 2)
-------------------------------------------------------------------------
A layer's kept weights are stored in the order of its index array flattened in C order (for a
(outputs, inputs) matrix: row by row). Each stored entry holds

* a codebook index of ``weight_bits = ceil(log2(codebook_size))`` bits, and
* a relative index of ``index_bits`` bits: the number of zeros since the previous entry.

When more than ``2**index_bits - 1`` zeros separate two kept weights, padding entries (codebook
index 0, the zero entry; relative index ``2**index_bits - 1``) are inserted, as in EIE; each
costs a full entry. The codebook is stored as 32-bit floats. The uncompressed reference is the
dense layer at 32 bits per weight.

Compressed size = entries * (weight_bits + index_bits) + codebook_size * 32 bits.
Huffman size = Huffman bits of the codebook-index stream + Huffman bits of the relative-index
stream (each coded with its own per-layer canonical code; padding entries included) + the
codebook. Huffman tables and sparse-format pointers are not counted: Deep Compression's table
leaves them out too. The EIE hardware layout, with per-PE column restarts and pointers, is sized
by ``accel.compress.eie.EIEMatrix.storage_bits`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from accel.compress._checks import check_index_array, check_int
from accel.compress.huffman import huffman_bits
from accel.errors import ConfigError

FLOAT_BITS = 32  # dense weights and codebook entries


@dataclass(frozen=True, eq=False)
class CompressedLayer:
    """The input of ``compression_report`` for one layer.

    ``indices`` holds codebook indices (0 = pruned) and has ``prod(shape)`` elements; ``shape``
    is the dense layer's shape, e.g. (outputs, inputs) or (out, in, kh, kw).
    """

    name: str
    shape: tuple[int, ...]
    indices: np.ndarray
    codebook_size: int
    index_bits: int


@dataclass(frozen=True)
class LayerReport:
    """Sizes of one layer; every ``*_bits`` field is a count of bits."""

    name: str
    shape: tuple[int, ...]
    total_weights: int
    kept_weights: int
    padding_entries: int
    codebook_size: int
    weight_bits: int
    index_bits: int
    weight_stream_bits: int
    index_stream_bits: int
    codebook_bits: int
    huffman_weight_bits: int
    huffman_index_bits: int

    @property
    def kept_percent(self) -> float:
        return 100.0 * self.kept_weights / self.total_weights if self.total_weights else 0.0

    @property
    def dense_bits(self) -> int:
        return self.total_weights * FLOAT_BITS

    @property
    def compressed_bits(self) -> int:
        return self.weight_stream_bits + self.index_stream_bits + self.codebook_bits

    @property
    def huffman_total_bits(self) -> int:
        return self.huffman_weight_bits + self.huffman_index_bits + self.codebook_bits

    @property
    def compressed_bytes(self) -> int:
        return -(-self.compressed_bits // 8)

    @property
    def huffman_bytes(self) -> int:
        return -(-self.huffman_total_bits // 8)

    @property
    def ratio(self) -> float:
        """Dense 32-bit size over compressed size."""
        return self.dense_bits / self.compressed_bits

    @property
    def huffman_ratio(self) -> float:
        return self.dense_bits / self.huffman_total_bits


@dataclass(frozen=True)
class CompressionReport:
    layers: tuple[LayerReport, ...]

    @property
    def total_weights(self) -> int:
        return sum(layer.total_weights for layer in self.layers)

    @property
    def kept_weights(self) -> int:
        return sum(layer.kept_weights for layer in self.layers)

    @property
    def kept_percent(self) -> float:
        return 100.0 * self.kept_weights / self.total_weights if self.total_weights else 0.0

    @property
    def padding_entries(self) -> int:
        return sum(layer.padding_entries for layer in self.layers)

    @property
    def dense_bits(self) -> int:
        return sum(layer.dense_bits for layer in self.layers)

    @property
    def compressed_bits(self) -> int:
        return sum(layer.compressed_bits for layer in self.layers)

    @property
    def huffman_total_bits(self) -> int:
        return sum(layer.huffman_total_bits for layer in self.layers)

    @property
    def compressed_bytes(self) -> int:
        return -(-self.compressed_bits // 8)

    @property
    def huffman_bytes(self) -> int:
        return -(-self.huffman_total_bits // 8)

    @property
    def ratio(self) -> float:
        return self.dense_bits / self.compressed_bits

    @property
    def huffman_ratio(self) -> float:
        return self.dense_bits / self.huffman_total_bits


def relative_index_stream(indices, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(codebook indices, relative indices) of the stored entries, padding included, in the
    storage order of the module notes."""
    index_bits = check_int("index_bits", index_bits, low=1, high=32)
    flat = check_index_array("indices", indices).ravel()
    positions = np.flatnonzero(flat)
    zeros_before = np.diff(positions, prepend=-1) - 1
    span = 1 << index_bits
    paddings = zeros_before // span
    entry_positions = np.arange(positions.size) + np.cumsum(paddings)
    total = positions.size + int(paddings.sum())
    values = np.zeros(total, dtype=np.int64)
    gaps = np.full(total, span - 1, dtype=np.int64)
    values[entry_positions] = flat[positions]
    gaps[entry_positions] = zeros_before % span
    return values, gaps


def layer_report(layer: CompressedLayer) -> LayerReport:
    name = str(layer.name)
    try:
        shape = tuple(int(extent) for extent in layer.shape)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"layer {name}: shape must be a tuple of integers") from exc
    codebook_size = check_int(f"layer {name}: codebook_size", layer.codebook_size, low=2)
    index_bits = check_int(f"layer {name}: index_bits", layer.index_bits, low=1, high=32)
    indices = check_index_array(f"layer {name}: indices", layer.indices, limit=codebook_size)
    total = math.prod(shape)
    if indices.size != total:
        raise ConfigError(f"layer {name}: indices hold {indices.size} values but shape {shape} "
                          f"has {total} weights")
    weight_bits = (codebook_size - 1).bit_length()
    values, gaps = relative_index_stream(indices, index_bits)
    return LayerReport(
        name=name, shape=shape, total_weights=total,
        kept_weights=int(np.count_nonzero(indices)),
        padding_entries=int(np.count_nonzero(values == 0)),
        codebook_size=codebook_size, weight_bits=weight_bits, index_bits=index_bits,
        weight_stream_bits=values.size * weight_bits,
        index_stream_bits=gaps.size * index_bits,
        codebook_bits=codebook_size * FLOAT_BITS,
        huffman_weight_bits=huffman_bits(values),
        huffman_index_bits=huffman_bits(gaps),
    )


def compression_report(layers: Sequence[CompressedLayer]) -> CompressionReport:
    """Sizes of each layer and of the whole network under the module's storage model."""
    if not isinstance(layers, Sequence) or not layers:
        raise ConfigError("compression_report needs a non-empty list of CompressedLayer")
    reports = []
    for layer in layers:
        if not isinstance(layer, CompressedLayer):
            raise ConfigError(f"compression_report takes CompressedLayer items, got "
                              f"{type(layer).__name__}")
        reports.append(layer_report(layer))
    names = [report.name for report in reports]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"layer names repeat: {', '.join(repeated)}")
    if sum(report.total_weights for report in reports) == 0:
        raise ConfigError("the layers hold no weights")
    return CompressionReport(tuple(reports))


_COLUMNS = ("layer", "weights", "kept", "kept %", "w bits", "idx bits", "padding", "bytes",
            "ratio", "huffman bytes", "huffman ratio")


def format_report(report: CompressionReport) -> str:
    """A plain-text table: one line per layer, then the totals."""
    def row(item, name, weight_bits, index_bits):
        return [name, f"{item.total_weights}", f"{item.kept_weights}", f"{item.kept_percent:.1f}",
                weight_bits, index_bits, f"{item.padding_entries}", f"{item.compressed_bytes}",
                f"{item.ratio:.1f}x", f"{item.huffman_bytes}", f"{item.huffman_ratio:.1f}x"]

    lines = [list(_COLUMNS)]
    lines += [row(layer, layer.name, str(layer.weight_bits), str(layer.index_bits))
              for layer in report.layers]
    lines.append(row(report, "total", "", ""))
    widths = [max(len(line[column]) for line in lines) for column in range(len(_COLUMNS))]

    def render(line):
        first = line[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    rule = "-" * len(render(lines[0]))
    dense = f"dense 32-bit size: {-(-report.dense_bits // 8)} bytes"
    return "\n".join([render(lines[0]), rule, *map(render, lines[1:-1]), rule,
                      render(lines[-1]), dense]) + "\n"

"""The resource model: an FPGA design's LUTs, flip-flops, LUT RAM and block RAM from its mapping,
per stage, without elaborating it (FINN's per-layer LUT/BRAM estimates are the model for this).

Targets ECP5 (the FPGA ``accel synth --pnr`` places and routes): LUT4, TRELLIS_FF, DPR16X4 LUT
RAM and DP16KD block RAM as yosys ``synth_ecp5`` counts them. Memories are counted exactly:
every generated memory is placed by ``accel.hw.common.memory.placement`` (an attribute yosys
honours), so the model knows which are block RAM and how many blocks each takes. Logic is a
linear function of structural counts (adder bits, compare bits, ROM bits in LUTs, stream
widths, ...) whose coefficients, per architecture, were fitted to yosys's counts of
calibration designs by ``benchmarks/resources.py --fit``; that script also prints the model's
error against the flattened synthesis of each design, fitted or held out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil

from accel.hw.common.memory import dp16kd_blocks, placement

KINDS = ("lut", "ff", "lutram", "bram")


@dataclass
class Resources:
    """ECP5 resources of one part of a design (``features``: the structural counts the logic
    coefficients multiply, kept for calibration)."""

    lut: float = 0.0
    ff: float = 0.0
    lutram: int = 0
    bram: int = 0
    features: dict = field(default_factory=dict, repr=False)

    def __add__(self, other: "Resources") -> "Resources":
        features = dict(self.features)
        for name, value in other.features.items():
            features[name] = features.get(name, 0) + value
        return Resources(self.lut + other.lut, self.ff + other.ff, self.lutram + other.lutram,
                         self.bram + other.bram, features)

    def under(self, kind: str, extra: dict | None = None) -> "Resources":
        """The same resources with its features (and ``extra`` ones) named under ``kind``, the
        stage kind whose coefficients price them."""
        return Resources(self.lut, self.ff, self.lutram, self.bram,
                         prefixed(kind, {**self.features, **(extra or {})}))

    def rounded(self) -> dict[str, int]:
        return {kind: int(round(getattr(self, kind))) for kind in KINDS}


def total(parts: dict[str, Resources]) -> Resources:
    out = Resources()
    for part in parts.values():
        out = out + part
    return out


def rom_columns(fields, bits: int) -> tuple[int, int]:
    """(stored, distinct) bit columns of a ROM: ``fields`` (words x fields) integers, each field
    ``bits`` wide in two's complement. yosys drops a constant column (so a block RAM holds
    only the ``stored`` ones) and builds a column equal to another, or to its complement, only
    once in LUTs (so a ROM in logic costs its ``distinct`` ones): thresholds repeat their sign
    in their high bits, unused taps are constant."""
    import numpy as np

    values = np.asarray(fields, dtype=np.int64)
    if values.size == 0 or len(values) < 2:
        return 0, 0
    codes = values.reshape(len(values), -1) & ((1 << bits) - 1)
    columns = ((codes[:, :, None] >> np.arange(bits)) & 1).reshape(len(values), -1).T
    columns = columns ^ columns[:, :1]  # a column and its complement look alike
    varying = columns[columns.any(axis=1)]
    return len(varying), len(np.unique(varying, axis=0))


def memory_resources(width: int, depth: int, *, writable: bool, sync_read: bool,
                     weights: bool = False, read_ports: int = 1,
                     columns: tuple[int, int] | None = None) -> Resources:
    """One generated memory, placed as ``accel.hw.common.memory.placement`` places it: block
    RAM blocks (of its stored columns, given ``columns`` from ``rom_columns``), LUT RAM cells
    (16 words x 4 bits each, one copy per read port), or for a ROM in logic its LUT4 bits
    (``rom_lut_bits``: a LUT4 holds 16 words of one bit, of its distinct columns when given)
    for the logic coefficients. A synchronous read out of LUT RAM adds its output register."""
    where = placement(width, depth, writable=writable, sync_read=sync_read, weights=weights)
    stored, distinct = columns if columns is not None else (width, width)
    if where == "block":
        return Resources(bram=dp16kd_blocks(stored, depth) if stored else 0)
    if where == "distributed":
        cells = ceil(width / 4) * ceil(depth / 16) * read_ports
        read_mux = width * read_ports * (ceil(depth / 16) - 1)  # across the 16-word cells
        return Resources(lutram=cells, ff=width * read_ports if sync_read else 0,
                         features={"lutram_read_mux": read_mux})
    return Resources(ff=width if sync_read else 0,
                     features={"rom_lut_bits": distinct * ceil(depth / 16)})


def apply(lut_coefficients: dict[str, float], ff_coefficients: dict[str, float],
          part: Resources) -> Resources:
    """``part`` with LUTs and flip-flops added from its features and the coefficients (a
    feature without a coefficient costs nothing)."""
    def cost(coefficients):
        return sum(coefficients.get(name, 0.0) * value for name, value in part.features.items())

    return Resources(part.lut + cost(lut_coefficients), part.ff + cost(ff_coefficients),
                     part.lutram, part.bram, dict(part.features))


def counter_bits(count: int) -> int:
    """Bits of a counter over ``count`` values (at least one)."""
    return max(count - 1, 1).bit_length()


def tree_bits(terms: int, leaf_bits: int) -> int:
    """Output bits of every two-input adder of a balanced tree over ``terms`` leaves of
    ``leaf_bits`` bits, each level one bit wider (``accel.hw.finn.mvtu.balanced_sum``,
    ``accel.hw.yodann.rtl._tree_sum``)."""
    bits, width, level = 0, leaf_bits, terms
    while level > 1:
        width += 1
        bits += (level // 2) * width
        level = -(-level // 2)
    return bits


def prefixed(kind: str, features: dict) -> dict:
    return {f"{kind}.{name}": value for name, value in features.items()}


def fifo(width: int, depth: int, registered_head: bool = False) -> Resources:
    """``accel.hw.common.fifo.StreamFIFO``: a register at depth 1, else LUT RAM with read and
    write pointers and a fill level, and optionally a head register loaded from a 2:1 mux."""
    control = {"stage": 1, "pointer_bits": 1 + counter_bits(depth + 1)}
    if depth == 1:
        return Resources(ff=width, features=prefixed("fifo", control))
    storage = memory_resources(width, depth, writable=True, sync_read=False)
    control["pointer_bits"] += 2 * counter_bits(depth)
    fifo = storage.under("fifo", control)
    if registered_head:  # a flip-flop and a 2:1 mux (one LUT4) per bit
        fifo = fifo + Resources(lut=width, ff=width)
    return fifo

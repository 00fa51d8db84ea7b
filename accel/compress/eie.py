"""The EIE storage format for a sparse, weight-shared dense layer (Han et al., ISCA 2016).

Input: ``indices``, the (rows=outputs, cols=inputs) integer array of codebook indices, where
index 0 is the zero entry of the codebook (a pruned weight).

Layout
------
Row ``i`` belongs to PE ``i % num_pes``, where it is local row ``i // num_pes``. Each PE stores
its local rows column by column (CSC): for every column, the nonzero entries from the top down,
each as a pair

* ``v``: the codebook index (``weight_bits`` wide, 4 in EIE);
* ``z``: the number of zero local rows between this entry and the previous entry of the same
  column (or the column's top), ``index_bits`` wide, 4 in EIE.

When more than ``2**index_bits - 1`` zeros precede a nonzero, a padding entry ``(v=0,
z=2**index_bits - 1)`` is inserted; it occupies a row position itself, so each padding entry
skips ``2**index_bits`` rows. With 4 bits, the column [0,0,1,2,0 x 18,3] encodes as
v=[1,2,0,3], z=[2,0,15,2]. Zeros after a column's last nonzero cost nothing.

Each PE also has ``cols + 1`` pointers: pointer ``j`` is the position of column ``j``'s first
entry in that PE's lists, and the last one is the PE's entry count, so column ``j`` is
``pointers[j]:pointers[j+1]``.

Packed entries
--------------
With the EIE widths (4 + 4 bits), an entry is one byte: ``(z << 4) | v``, i.e. ``v`` in the low
nibble. ``pack_entries``/``unpack_entries`` convert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.compress._checks import check_index_array, check_int
from accel.errors import ConfigError

EIE_WEIGHT_BITS = 4
EIE_INDEX_BITS = 4
MAX_FIELD_BITS = 8  # v and z are held in uint8 arrays


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class EIEMatrix:
    """One layer in the EIE format; ``v[k]``, ``z[k]``, ``pointers[k]`` belong to PE ``k``."""

    rows: int
    cols: int
    num_pes: int
    v: tuple[np.ndarray, ...]
    z: tuple[np.ndarray, ...]
    pointers: tuple[np.ndarray, ...]
    index_bits: int = EIE_INDEX_BITS
    weight_bits: int = EIE_WEIGHT_BITS

    def local_rows(self, pe: int) -> int:
        """Number of rows PE ``pe`` owns."""
        return len(range(pe, self.rows, self.num_pes))

    @property
    def entries_per_pe(self) -> np.ndarray:
        """Stored entries (nonzeros plus padding) of each PE, int64 of length ``num_pes``.

        The largest of these bounds the layer's time: the PEs work through their lists in
        parallel."""
        return np.array([entries.size for entries in self.v], dtype=np.int64)

    @property
    def total_entries(self) -> int:
        return int(self.entries_per_pe.sum())

    @property
    def padding_entries(self) -> int:
        """Padding entries over all PEs (entries with ``v == 0``; real entries are nonzero)."""
        return int(sum(np.count_nonzero(entries == 0) for entries in self.v))

    def storage_bits(self, pointer_bits: int = 16) -> int:
        """Bits of the sparse matrix and pointer memories over all PEs (codebook not included).

        Refuses a ``pointer_bits`` too narrow for the largest pointer.
        """
        pointer_bits = check_int("pointer_bits", pointer_bits, low=1)
        largest_pointer = max(int(pointer[-1]) for pointer in self.pointers)
        if largest_pointer >= 1 << pointer_bits:
            raise ConfigError(f"pointer value {largest_pointer} does not fit in {pointer_bits} "
                              "bits; widen pointer_bits or use more PEs")
        entry_bits = self.total_entries * (self.weight_bits + self.index_bits)
        return entry_bits + self.num_pes * (self.cols + 1) * pointer_bits

    def column_entries(self, pe: int, col: int) -> tuple[np.ndarray, np.ndarray]:
        """(v, z) of one column in one PE."""
        start, stop = self.pointers[pe][col], self.pointers[pe][col + 1]
        return self.v[pe][start:stop], self.z[pe][start:stop]

    def decode(self) -> np.ndarray:
        """The (rows, cols) int64 array of codebook indices this encodes."""
        indices = np.zeros((self.rows, self.cols), dtype=np.int64)
        for pe in range(self.num_pes):
            values, gaps, pointer = self.v[pe], self.z[pe], self.pointers[pe]
            if (pointer.size != self.cols + 1 or pointer[0] != 0 or pointer[-1] != values.size
                    or gaps.size != values.size or np.any(np.diff(pointer) < 0)):
                raise ConfigError(f"EIE data of PE {pe} is inconsistent: pointers do not "
                                  "delimit its entry lists")
            entry_columns = np.repeat(np.arange(self.cols), np.diff(pointer))
            # Each entry advances its column by z zeros plus itself; a cumulative sum restarted
            # at each column start gives the entry's local row.
            steps = gaps.astype(np.int64) + 1
            running = np.cumsum(steps)
            before_column = np.concatenate(([0], running))[pointer[:-1]]
            local_row = running - before_column[entry_columns] - 1
            if local_row.size and local_row.max() >= self.local_rows(pe):
                raise ConfigError(f"EIE data of PE {pe} runs past its {self.local_rows(pe)} rows")
            real = values != 0
            indices[pe + self.num_pes * local_row[real], entry_columns[real]] = values[real]
        return indices


def encode_eie(indices, num_pes: int, index_bits: int = EIE_INDEX_BITS,
               weight_bits: int = EIE_WEIGHT_BITS) -> EIEMatrix:
    """Encode a (outputs, inputs) array of codebook indices (0 = pruned) for ``num_pes`` PEs."""
    weight_bits = check_int("weight_bits", weight_bits, low=1, high=MAX_FIELD_BITS)
    index_bits = check_int("index_bits", index_bits, low=1, high=MAX_FIELD_BITS)
    num_pes = check_int("num_pes", num_pes, low=1)
    indices = check_index_array("indices", indices, ndim=2, limit=1 << weight_bits)
    rows, cols = indices.shape
    span = 1 << index_bits  # rows skipped by one padding entry
    v_lists, z_lists, pointer_lists = [], [], []
    for pe in range(num_pes):
        # Transposed, so that nonzero() lists entries column by column, top to bottom.
        local_by_column = indices[pe::num_pes].T
        entry_columns, entry_rows = np.nonzero(local_by_column)
        values = local_by_column[entry_columns, entry_rows]
        previous_row = np.full(entry_rows.size, -1, dtype=np.int64)
        same_column = np.zeros(entry_rows.size, dtype=bool)
        same_column[1:] = entry_columns[1:] == entry_columns[:-1]
        previous_row[1:][same_column[1:]] = entry_rows[:-1][same_column[1:]]
        zeros_before = entry_rows - previous_row - 1
        paddings = zeros_before // span
        # Entry k lands after the k entries and all paddings up to and including its own.
        positions = np.arange(entry_rows.size) + np.cumsum(paddings)
        total = entry_rows.size + int(paddings.sum())
        v = np.zeros(total, dtype=np.uint8)
        z = np.full(total, span - 1, dtype=np.uint8)
        v[positions] = values
        z[positions] = zeros_before % span
        per_column = np.bincount(entry_columns, weights=paddings + 1, minlength=cols)
        pointers = np.concatenate(([0], np.cumsum(per_column))).astype(np.int64)
        v_lists.append(_read_only(v))
        z_lists.append(_read_only(z))
        pointer_lists.append(_read_only(pointers))
    return EIEMatrix(rows=rows, cols=cols, num_pes=num_pes, v=tuple(v_lists), z=tuple(z_lists),
                     pointers=tuple(pointer_lists), index_bits=index_bits,
                     weight_bits=weight_bits)


def pack_entries(v, z) -> np.ndarray:
    """EIE's 8-bit entries, ``(z << 4) | v``, from 4-bit ``v`` and ``z`` arrays."""
    v = check_index_array("v", v, limit=1 << EIE_WEIGHT_BITS)
    z = check_index_array("z", z, limit=1 << EIE_INDEX_BITS)
    if v.shape != z.shape:
        raise ConfigError(f"v and z differ in shape: {v.shape} and {z.shape}")
    return ((z << EIE_WEIGHT_BITS) | v).astype(np.uint8)


def unpack_entries(packed) -> tuple[np.ndarray, np.ndarray]:
    """(v, z) as uint8 arrays from bytes or a uint8 array of packed entries."""
    if isinstance(packed, (bytes, bytearray, memoryview)):
        packed = np.frombuffer(packed, dtype=np.uint8)
    packed = check_index_array("packed entries", packed, limit=1 << 8).astype(np.uint8)
    return packed & 0x0F, packed >> EIE_WEIGHT_BITS

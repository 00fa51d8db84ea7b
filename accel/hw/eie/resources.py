"""EIE's resource model (``accel.hw.resources``): the structural counts of what
``accel.hw.eie.rtl`` generates, priced by coefficients fitted to yosys. The engine is one module
(its PEs are not submodules), so the coefficients are fitted to flattened totals only; the parts
reported are the control (detector, banks' select, layer sequencing), the PEs and the queues.
Memories are exact; the multiplier of each PE is a DSP block, not counted here."""

from __future__ import annotations

from accel.hw.eie.mapping import EIENetworkMapping
from accel.hw.eie.model import ENTRY_BITS
from accel.hw.eie.rtl import pe_storage, pointer_bits
from accel.hw.resources import (Resources, apply, counter_bits, fifo, memory_resources,
                                prefixed, rom_columns)

# Fitted by ``python benchmarks/resources.py --fit`` (non-negative least squares, relative
# error, on the flattened synth_ecp5 counts, yosys 0.70, of the EIE designs it lists: five
# designs of one network, so the fit interpolates them exactly and only the held-out ones
# measure it).
LUT_COEFFICIENTS: dict[str, float] = {
    "control.lnzd_bits": 0.2272, "fifo.pointer_bits": 20.9106, "pe.entry_select_bits": 11.6418,
    "pe.lutram_read_mux": 6.7763, "pe.rom_lut_bits": 0.5809,
}
FF_COEFFICIENTS: dict[str, float] = {
    "fifo.pointer_bits": 0.1646, "pe.entry_select_bits": 3.4616, "pe.lutram_read_mux": 1.4178,
}


def structural(mapping: EIENetworkMapping) -> dict[str, Resources]:
    mp = mapping
    n, cols, bits = mp.num_pes, mp.max_cols, mp.activation_bits
    column_bits = counter_bits(cols)
    field_bits = column_bits + counter_bits(n) + counter_bits(mp.bank_rows)
    control = Resources(features=prefixed("control", {
        "stage": 1,
        # the leading-nonzero tree: a 2:1 select of (column, bank, row) per node
        "lnzd_bits": (cols - 1) * (field_bits + 1),
        "pending_bits": cols,  # the sent flags and the pending mask
        "bank_select_bits": (n - 1) * bits,
    }))
    for _ in range(n):
        control = control + memory_resources(bits, max(mp.bank_rows, 2), writable=True,
                                                   sync_read=False).under("control")
    width = pointer_bits(mp)
    local_rows = max(mp.max_local_rows, 2)
    pes = Resources()
    for k in range(n):
        pointers, entries, _ = pe_storage(mp, k)
        per_word = mp.entries_per_word
        words = [entries[w:w + per_word] + [0] * (per_word - len(entries[w:w + per_word]))
                 for w in range(0, len(entries), per_word)] or [[0] * per_word]
        memories = [
            memory_resources(width, max(len(pointers[0::2]), 2), writable=False, sync_read=True,
                             columns=rom_columns([[p] for p in pointers[0::2]], width)),
            memory_resources(width, max(len(pointers[1::2]), 2), writable=False, sync_read=True,
                             columns=rom_columns([[p] for p in pointers[1::2]], width)),
            memory_resources(ENTRY_BITS * per_word, max(len(words), 2), writable=False,
                             sync_read=True, columns=rom_columns(words, ENTRY_BITS)),
            memory_resources(mp.accumulator_bits, local_rows, writable=True, sync_read=False),
        ]
        for memory in memories:
            pes = pes + memory.under("pe")
        pes = pes + Resources(features=prefixed("pe", {
            "stage": 1,
            # accumulate, bias, ReLU, rounding shift and saturation, the readout select
            "accumulator_bits": mp.accumulator_bits,
            "entry_select_bits": ENTRY_BITS * (per_word - 1),
            "pointer_bits": width,
            "touched_bits": local_rows,
        }))
    queues = Resources()
    for _ in range(n):
        queues = queues + fifo(column_bits + bits, mp.queue_depth)
    return {"control": control, "pes": pes, "queues": queues}


def resources(mapping: EIENetworkMapping) -> dict[str, Resources]:
    return {name: apply(LUT_COEFFICIENTS, FF_COEFFICIENTS, part)
            for name, part in structural(mapping).items()}

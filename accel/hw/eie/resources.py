"""EIE's resource model (``accel.hw.resources``): the structural counts of what
``accel.hw.eie.rtl`` generates, priced by coefficients fitted to yosys. The engine is one module
(its PEs are not submodules), so the coefficients are fitted to flattened totals only; the parts
reported are the control (detector, banks' select, layer sequencing), the PEs and the queues.
Memories are exact; the multiplier of each PE is a DSP block, not counted here."""

from __future__ import annotations

from accel.hw.eie.mapping import EIENetworkMapping
from accel.hw.eie.model import ENTRY_BITS
from accel.hw.eie.model import WRITEBACK_LATENCY
from accel.hw.eie.rtl import (LNZD_GROUP, POINTER_FLAG_BITS, PointerPair, pe_storage,
                              pointer_bits, pointer_words)
from accel.hw.resources import (Resources, apply, counter_bits, fifo, memory_resources,
                                prefixed, rom_columns)

# Fitted by ``python benchmarks/resources.py --fit`` (non-negative least squares, relative
# error, on the flattened synth_ecp5 counts, yosys 0.70, of the EIE designs it lists: five
# designs of one network; the features without a coefficient came out at zero, their cost
# absorbed by the correlated ones, so only the held-out designs measure the fit).
LUT_COEFFICIENTS: dict[str, float] = {
    "pe.lutram_read_mux": 10.0546, "pe.pipeline_bits": 0.2702, "pe.rom_lut_bits": 2.6023,
}
FF_COEFFICIENTS: dict[str, float] = {
    "pe.lutram_read_mux": 2.0152, "pe.pipeline_bits": 1.2264,
}


def structural(mapping: EIENetworkMapping) -> dict[str, Resources]:
    mp = mapping
    n, cols, bits = mp.num_pes, mp.max_cols, mp.activation_bits
    pair = PointerPair.of(mp)
    groups = -(-cols // LNZD_GROUP)
    bank_bits, row_bits = counter_bits(n), counter_bits(mp.bank_rows)
    column_bits = counter_bits(cols)
    control = Resources(features=prefixed("control", {
        "stage": 1,
        # the detector's prefix-ORs: within each group, and over the groups
        "lnzd_bits": cols * (LNZD_GROUP - 1) // 2 + groups * (groups - 1) // 2,
        # the one-hot choice encoded into column, bank and bank row (OR trees: about half the
        # columns per output bit), then the pointer pair's two adders
        "encode_bits": cols * (column_bits + bank_bits + row_bits) // 2,
        "adder_bits": 2 * pair.width,
        "bank_select_bits": (n - 1) * bits,
        # registers: pending columns and group flags, the one-hot choice, the encoded column,
        # bank and row, the pointer pair and the bank's value, the writeback row's delay line
        "pipeline_bits": 2 * cols + groups + column_bits + bank_bits + row_bits + pair.width
        + bits
        + WRITEBACK_LATENCY * (1 + row_bits),
    }))
    for _ in range(n):
        control = control + memory_resources(bits, max(mp.bank_rows, 2), writable=True,
                                                   sync_read=False).under("control")
    width = pointer_bits(mp)
    local_rows = max(mp.max_local_rows, 2)
    pes = Resources()
    for k in range(n):
        _, entries, _ = pe_storage(mp, k)
        pointers = pointer_words(mp, k)
        pointer_word_bits = width + POINTER_FLAG_BITS
        per_word = mp.entries_per_word
        words = [entries[w:w + per_word] + [0] * (per_word - len(entries[w:w + per_word]))
                 for w in range(0, len(entries), per_word)] or [[0] * per_word]
        memories = [
            memory_resources(pointer_word_bits, max(len(pointers[0::2]), 2), writable=False,
                             sync_read=True,
                             columns=rom_columns([[p] for p in pointers[0::2]],
                                                 pointer_word_bits)),
            memory_resources(pointer_word_bits, max(len(pointers[1::2]), 2), writable=False,
                             sync_read=True,
                             columns=rom_columns([[p] for p in pointers[1::2]],
                                                 pointer_word_bits)),
            memory_resources(ENTRY_BITS * per_word, max(len(words), 2), writable=False,
                             sync_read=True, columns=rom_columns(words, ENTRY_BITS)),
            memory_resources(mp.accumulator_bits, local_rows, writable=True, sync_read=False),
        ]
        for memory in memories:
            pes = pes + memory.under("pe")
        offset_bits = (per_word - 1).bit_length()
        row_bits_pe = counter_bits(local_rows)
        acc = mp.accumulator_bits
        weight_bits = max(spec.weight_bits for spec in mp.layers)
        pipeline = ((3 + offset_bits + bits) + (2 + offset_bits + bits)
                    + (1 + row_bits_pe + weight_bits + bits) + row_bits_pe
                    + (2 + row_bits_pe + 2 * acc) + acc + 1
                    + (5 * acc + 3 if mp.requantize else 0))
        pes = pes + Resources(features=prefixed("pe", {
            "stage": 1,
            # x1..x4 of the execute pipeline, the accumulator address, the bypass sum and
            # the writeback's stages
            "pipeline_bits": pipeline,
            # accumulate, bias, ReLU, rounding shift and saturation, the readout select
            "accumulator_bits": mp.accumulator_bits,
            "entry_select_bits": ENTRY_BITS * (per_word - 1),
            "pointer_bits": width,
            "touched_bits": local_rows,
        }))
    queues = Resources()
    for _ in range(n):
        queues = queues + fifo(pair.width + bits, mp.queue_depth, registered_head=True)
    return {"control": control, "pes": pes, "queues": queues}


def resources(mapping: EIENetworkMapping) -> dict[str, Resources]:
    return {name: apply(LUT_COEFFICIENTS, FF_COEFFICIENTS, part)
            for name, part in structural(mapping).items()}

"""EIE's resource model (``accel.hw.resources``): the structural counts of what
``accel.hw.eie.rtl`` generates, priced by coefficients fitted to yosys. The engine is one module
(its PEs are not submodules), so the coefficients are fitted to flattened totals only; the parts
reported are the control (detector, banks' select, layer sequencing), the PEs and the queues.
Memories are exact; the multiplier of each PE is a DSP block, not counted here."""

from __future__ import annotations

from accel.hw.eie.energy import control_register_bits, pe_register_bits, storage_of
from accel.hw.eie.loading import parameter_layout
from accel.hw.eie.mapping import CODEBOOK_ENTRIES, EIENetworkMapping
from accel.hw.eie.model import ENTRY_BITS
from accel.hw.eie.rtl import (LNZD_GROUP, POINTER_FLAG_BITS, PointerPair, QueuedColumn,
                              bias_words, codebook_bits, pe_storage, pointer_bits,
                              pointer_words, sparse_depth)
from accel.hw.resources import (Resources, apply, counter_bits, fifo, memory_resources,
                                prefixed, rom_columns)

# Fitted by ``python benchmarks/resources.py --fit`` (non-negative least squares, relative
# error, on the flattened synth_ecp5 counts, yosys 0.70, of the EIE designs it lists: seven
# designs of one network, two of them loadable; the features without a coefficient came out
# at zero, their cost absorbed by the correlated ones, so only the held-out designs measure
# the fit).
LUT_COEFFICIENTS: dict[str, float] = {
    "control.bank_select_bits": 23.6414, "control.encode_bits": 1.7247,
    "fifo.pointer_bits": 7.8343, "pe.lutram_read_mux": 1.4842,
    "pe.parameter_write_bits": 0.2608, "pe.rom_lut_bits": 2.2014,
}
FF_COEFFICIENTS: dict[str, float] = {
    "control.lutram_read_mux": 3.6056, "fifo.pointer_bits": 1.9954,
    "pe.lutram_read_mux": 0.051, "pe.parameter_write_bits": 0.6127, "pe.register_bits": 1.0207,
}


def structural(mapping: EIENetworkMapping) -> dict[str, Resources]:
    mp = mapping
    n, cols, bits = mp.num_pes, mp.max_cols, mp.activation_bits
    pair = PointerPair.of(mp)
    queued = QueuedColumn(mp)
    storage = storage_of(mp)
    # a PE's flip-flops but its queue's (``fifo`` counts those)
    registers = sum(bits for unit, bits in pe_register_bits(storage).items()
                    if unit != "pe.act_queue")
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
        "register_bits": control_register_bits(storage),
    }))
    for _ in range(n):
        control = control + memory_resources(bits, max(mp.bank_rows, 2), writable=True,
                                                   sync_read=False).under("control")
    layout = parameter_layout(mp) if mp.loadable_weights else None
    if layout is not None:  # the parameter port, registered once (reset-less flip-flops)
        control = control + Resources(ff=layout.addr_bits + layout.data_bits + 1)
    width = pointer_bits(mp)
    local_rows = max(mp.max_local_rows, 2)

    def parameters(word_bits, depth, words, element_bits, weights=True):
        """A weight-like memory of ``words`` (lists of elements): a ROM of their columns, or
        a RAM of its whole size when loadable."""
        if mp.loadable_weights:
            return memory_resources(word_bits, depth, writable=True, sync_read=True,
                                    weights=weights)
        return memory_resources(word_bits, depth, writable=False, sync_read=True,
                                weights=weights, columns=rom_columns(words, element_bits))

    pes = Resources()
    for k in range(n):
        _, entries, _ = pe_storage(mp, k)
        pointers = pointer_words(mp, k)
        pointer_word_bits = width + POINTER_FLAG_BITS
        per_word = mp.entries_per_word
        words = [entries[w:w + per_word] + [0] * (per_word - len(entries[w:w + per_word]))
                 for w in range(0, len(entries), per_word)] or [[0] * per_word]
        memories = [
            parameters(pointer_word_bits, max(len(half), 2), [[p] for p in half],
                       pointer_word_bits) for half in (pointers[0::2], pointers[1::2])]
        memories += [
            parameters(ENTRY_BITS * per_word, sparse_depth(mp, k), words, ENTRY_BITS),
            memory_resources(mp.accumulator_bits, local_rows, writable=True, sync_read=False),
        ]
        if mp.loadable_weights:  # (a fixed engine's codebooks are constants in its logic)
            memories.append(memory_resources(codebook_bits(mp),
                                             CODEBOOK_ENTRIES * len(mp.layers),
                                             writable=True, sync_read=False))
        biases, _ = bias_words(mp, k)
        if mp.requantize:
            memories.append(parameters(mp.accumulator_bits, max(len(biases), 2),
                                       [[b] for b in biases], mp.accumulator_bits,
                                       weights=False))
        for memory in memories:
            pes = pes + memory.under("pe")
        if layout is not None:  # each parameter memory's write: its select and its data
            pes = pes + Resources(features={"pe.parameter_write_bits": sum(
                memory.width for memory in layout.of_stage(k))})
        pes = pes + Resources(features=prefixed("pe", {
            "stage": 1,
            "register_bits": registers,
            # accumulate, bias, ReLU, rounding shift and saturation, the readout select
            "accumulator_bits": mp.accumulator_bits,
            "entry_select_bits": ENTRY_BITS * (per_word - 1),
            "pointer_bits": width,
            "touched_bits": local_rows,
        }))
    queues = Resources()
    for _ in range(n):
        queues = queues + fifo(queued.width, mp.queue_depth, registered_head=True)
    return {"control": control, "pes": pes, "queues": queues}


def resources(mapping: EIENetworkMapping) -> dict[str, Resources]:
    return {name: apply(LUT_COEFFICIENTS, FF_COEFFICIENTS, part)
            for name, part in structural(mapping).items()}

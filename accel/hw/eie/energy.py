"""What each EIE event is, physically: the architecture's declaration for the energy model.

A PE's memories are priced at their real sizes: those of a generated engine
(``storage_of(mapping)``), or those of the EIE paper's PE (``EIE_PAPER_PE``: 128 KB sparse-matrix
SRAM read 64 bits at a time, 32 KB of 16-bit pointers in two banks, 64 x 16-bit source and
destination activation register files, an 8-entry queue, 64 PEs).

Besides the counted events, each PE declares the flip-flops it clocks every cycle (``clock``
specs, priced per cycle, busy or idle), counted from accel's RTL (``accel/hw/eie/rtl.py``,
``pe_register_bits``) and attributed to the unit they belong to, as the EIE paper's per-unit
power split does: the issue stage's entry pointer, count and held activation to the pointer
read; the held sparse-matrix word, the entry offsets and the entry picked to the sparse-matrix
read; the activation through the execute stages, the codebook value, the product and the bypass
sum to the arithmetic; the accumulators' touched flags, row base, rows, address and the
writeback's stages to the activation read/write; the queue's level, addresses and head register
to the queue. The central control's registers (the detector, the broadcast stages) are one more
``clock`` spec. The register files, the queue's slots and the SRAMs are written one row at a
time (their clocks gated to the row written), so their clock is in their write energy.
"""

from __future__ import annotations

from dataclasses import dataclass

from accel.energy.model import EventSpec, component_of
from accel.hw.eie.model import ENTRIES_PER_WORD, ENTRY_BITS, WRITEBACK_LATENCY, layer_event


@dataclass(frozen=True)
class PEStorage:
    num_pes: int
    queue_depth: int
    sparse_bytes: float  # CSC entries of all layers
    sparse_word_bits: int  # one sparse-matrix SRAM read
    pointer_bank_entries: int  # per bank (even or odd)
    pointer_bits: int  # a pointer-bank word (accel's RTL adds its column's two flags)
    activation_rows: int  # source activations (one bank per PE)
    activation_bits: int
    accumulator_rows: int  # destination rows
    accumulator_bits: int
    queue_entry_bits: int  # the paper's queue holds a column's index and value
    weight_bits: int  # a codebook value
    lnzd_inputs: int  # activations the leading-nonzero detector looks at
    layers: int = 0  # a network's events are counted per layer (l0.pe..., l1.pe...)


EIE_PAPER_PE = PEStorage(num_pes=64, queue_depth=8, sparse_bytes=128 * 1024,
                         sparse_word_bits=ENTRIES_PER_WORD * ENTRY_BITS,
                         pointer_bank_entries=8 * 1024, pointer_bits=16, activation_rows=64,
                         activation_bits=16, accumulator_rows=64, accumulator_bits=16,
                         queue_entry_bits=16 + 16, weight_bits=16, lnzd_inputs=64)


def storage_of(mapping) -> PEStorage:
    """The memories of a generated engine (``EIENetworkMapping``), per PE (the largest PE)."""
    from accel.hw.eie.rtl import POINTER_FLAG_BITS, QueuedColumn, pe_storage, pointer_bits

    stored = [pe_storage(mapping, k) for k in range(mapping.num_pes)]
    return PEStorage(
        num_pes=mapping.num_pes, queue_depth=mapping.queue_depth,
        sparse_bytes=mapping.sparse_entries * ENTRY_BITS / 8,  # a loadable one's capacity
        sparse_word_bits=mapping.entries_per_word * ENTRY_BITS,
        pointer_bank_entries=max(-(-len(pointers) // 2) for pointers, _, _ in stored),
        pointer_bits=pointer_bits(mapping) + POINTER_FLAG_BITS, activation_rows=mapping.bank_rows,
        activation_bits=mapping.activation_bits, accumulator_rows=mapping.max_local_rows,
        accumulator_bits=mapping.accumulator_bits,
        # accel's queues hold a column's pointer pair (read as it is pushed) and its value
        queue_entry_bits=QueuedColumn(mapping).width,
        weight_bits=max(spec.weight_bits for spec in mapping.layers), lnzd_inputs=mapping.max_cols,
        layers=len(mapping.layers))


def event_specs(storage: PEStorage = EIE_PAPER_PE) -> dict[str, EventSpec]:
    """Per layer (``l<i>.`` names, one physical instance each) when ``storage.layers``; the
    per-cycle clock specs once (they are the PEs' registers, whatever layer runs)."""
    specs = physical_event_specs(storage)
    clocks = clock_specs(storage)
    if not storage.layers:
        return {**specs, **clocks}
    return {**{layer_event(index, name): EventSpec(spec.kind, spec.group,
                                                   {**spec.params,
                                                    "instance": component_of(name)})
               for index in range(storage.layers) for name, spec in specs.items()},
            **clocks}


def clock_specs(storage: PEStorage) -> dict[str, EventSpec]:
    """The flip-flops clocked every cycle: each PE's by unit (``pe_register_bits``), and the
    central control's once (see the module documentation)."""
    groups = {"pe.pointer_stage": "memory", "pe.sparse_stage": "memory",
              "pe.arith_stage": "compute", "pe.act_stage": "memory", "pe.act_queue": "queues"}
    specs = {f"{unit}.clock": EventSpec("clock", groups[unit], {"bits": count,
                                                                "instances": storage.num_pes})
             for unit, count in pe_register_bits(storage).items()}
    specs["control.broadcast.clock"] = EventSpec("clock", "control",
                                                 {"bits": control_register_bits(storage)})
    return specs


def pe_register_bits(storage: PEStorage) -> dict[str, int]:
    """One PE's flip-flops in accel's RTL (``accel/hw/eie/rtl.py``), by unit."""
    act, acc = storage.activation_bits, storage.accumulator_bits
    offset_bits = (max(storage.sparse_word_bits // ENTRY_BITS, 1) - 1).bit_length()
    row_bits = max(storage.accumulator_rows - 1, 1).bit_length()
    row_base_bits = (storage.accumulator_rows + 15).bit_length()
    queue_pointers = storage.queue_depth.bit_length() + 2 * max(storage.queue_depth - 1,
                                                                1).bit_length()
    pair_bits = 1 + 2 * max(storage.pointer_bank_entries - 1, 1).bit_length()
    layer_bits = max(storage.layers - 1, 1).bit_length()
    bank_row_bits = max(storage.activation_rows - 1, 1).bit_length()
    return {
        # the issue stage's entry pointer, entries left, held activation and `continuing`,
        # and the parity that orders a column's pointer pair as it is queued; the PE's
        # copies of the broadcast (the pointer pair's addresses, their valid, the push and
        # its value)
        "pe.pointer_stage": 2 * storage.pointer_bits + act + 2 + pair_bits + 2 + act,
        # the held word; x1's and x2's entry offset and flags; the entry picked, x3's first flag
        "pe.sparse_stage": storage.sparse_word_bits + 2 * offset_bits + 5 + ENTRY_BITS + 1,
        # the activation through x1..x4, the codebook value, the product, the bypass sum,
        # x3's, x4's and x5's valid flags
        "pe.arith_stage": 4 * act + storage.weight_bits + 2 * acc + 3,
        # the touched flags and row base; x4's and x5's rows, the accumulator address, the
        # value read and its touched flag, the bypass flag; the writeback's bias address, sum,
        # rounded and saturated values (the bias read's register is the ROM's); the PE's copies
        # of the layer sequencing (layer, writing, the row written, the layer's end) and its
        # quiet flag
        "pe.act_stage": (storage.accumulator_rows + row_base_bits + 3 * row_bits + acc + 2
                         + row_bits + (acc + 1) + (acc + 2) + act
                         + layer_bits + 1 + bank_row_bits + 1 + 1),
        # the level, read and write addresses, the head register and the registered pop
        # that the control's copy of the level follows
        "pe.act_queue": queue_pointers + 1 + storage.queue_entry_bits,
    }


def control_register_bits(storage: PEStorage) -> int:
    """The central control's flip-flops in accel's RTL: the detector's pending columns and
    group flags, the one-hot choice, the encoded column (number, bank, bank row: about three
    column numbers), the pointer pair's addresses, the value and its relay, the stages' valid
    flags, the room flag, the quiet flags, each queue's copied level (a thermometer code) and
    the writeback's row delay line."""
    from accel.hw.eie.rtl import LNZD_GROUP

    cols = storage.lnzd_inputs
    column_bits = max(cols - 1, 1).bit_length()
    row_bits = max(storage.activation_rows - 1, 1).bit_length()
    return (2 * cols + -(-cols // LNZD_GROUP) + 4 * column_bits + 2 * storage.activation_bits
            + 8 + storage.num_pes * storage.queue_depth + WRITEBACK_LATENCY * (1 + row_bits))


def physical_event_specs(storage: PEStorage) -> dict[str, EventSpec]:
    entry = storage.queue_entry_bits
    queue = {"capacity_bytes": storage.queue_depth * entry / 8, "width": entry}
    pointer_bank = {"capacity_bytes": storage.pointer_bank_entries * storage.pointer_bits / 8,
                    "width": storage.pointer_bits, "instances": storage.num_pes}
    accumulators = {"capacity_bytes": storage.accumulator_rows * storage.accumulator_bits / 8,
                    "width": storage.accumulator_bits}
    activations = {"capacity_bytes": storage.activation_rows * storage.activation_bits / 8,
                   "width": storage.activation_bits}
    return {
        "control.lnzd.broadcast": EventSpec("lnzd", "control", {"inputs": storage.lnzd_inputs}),
        # the writeback's bias add and rounding (tens of fJ) are not priced, only the write
        "pe.act_bank.write": EventSpec("register", "memory", activations),
        "pe.act_queue.push": EventSpec("register", "queues", queue),
        "pe.act_queue.pop": EventSpec("register", "queues", queue),
        "pe.pointer_even.read": EventSpec("sram", "memory", pointer_bank),
        "pe.pointer_odd.read": EventSpec("sram", "memory", pointer_bank),
        "pe.sparse_sram.read": EventSpec(
            "sram", "memory", {"capacity_bytes": storage.sparse_bytes,
                               "width": storage.sparse_word_bits,
                               "instances": storage.num_pes}),
        "pe.codebook.read": EventSpec("register", "compute",
                                      {"capacity_bytes": 16 * 2, "width": 16}),
        "pe.mult.mac": EventSpec("mac", "compute", {"bits": storage.activation_bits,
                                                    "acc_bits": storage.accumulator_bits}),
        "pe.act_regfile.read": EventSpec("register", "memory", accumulators),
        "pe.act_regfile.write": EventSpec("register", "memory", accumulators),
        "pe.idle.cycle": EventSpec("free", "control"),
    }

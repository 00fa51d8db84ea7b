"""What each EIE event is, physically (the declaration for the energy model), for the EIE
paper's PE: 128 KB sparse-matrix SRAM read 64 bits at a time, 32 KB of 16-bit pointers in two
banks, a 16-entry 16-bit codebook, 16-bit multiply and 16-bit accumulate, a 64 x 16-bit source
and destination activation register file, an 8-entry activation queue, and a leading-nonzero
detector over the 64 PEs' activations."""

from __future__ import annotations

from accel.energy.model import EventSpec

SPARSE_SRAM_BYTES = 128 * 1024
POINTER_SRAM_BYTES = 32 * 1024
POINTER_BITS = 16
WORD_BITS = 64
ACTIVATION_BITS = 16
ACTIVATION_REGFILE_BYTES = 64 * ACTIVATION_BITS // 8
QUEUE_ENTRY_BITS = ACTIVATION_BITS + 16  # the activation and its column index


def event_specs(num_pes: int = 64, queue_depth: int = 8) -> dict[str, EventSpec]:
    queue = {"capacity_bytes": queue_depth * QUEUE_ENTRY_BITS / 8, "width": QUEUE_ENTRY_BITS}
    pointer_bank = {"capacity_bytes": POINTER_SRAM_BYTES / 2, "width": POINTER_BITS}
    return {
        "control.lnzd.broadcast": EventSpec("lnzd", "control", {"inputs": num_pes}),
        # one cycle in which every row passes bias, ReLU and the shift (per row: an add and a
        # comparison of 40 bits); priced per layer transition
        "control.writeback": EventSpec("add", "control", {"bits": 40 * 64 * 2}),
        "pe.act_queue.push": EventSpec("register", "queues", queue),
        "pe.act_queue.pop": EventSpec("register", "queues", queue),
        "pe.pointer_even.read": EventSpec("sram", "memory", pointer_bank),
        "pe.pointer_odd.read": EventSpec("sram", "memory", pointer_bank),
        "pe.sparse_sram.read": EventSpec("sram", "memory", {"capacity_bytes": SPARSE_SRAM_BYTES,
                                                             "width": WORD_BITS}),
        "pe.codebook.read": EventSpec("register", "compute",
                                      {"capacity_bytes": 16 * 2, "width": 16}),
        "pe.mult.mac": EventSpec("mac", "compute", {"bits": 16, "acc_bits": 16}),
        "pe.act_regfile.read": EventSpec("register", "memory",
                                         {"capacity_bytes": ACTIVATION_REGFILE_BYTES,
                                          "width": ACTIVATION_BITS}),
        "pe.act_regfile.write": EventSpec("register", "memory",
                                          {"capacity_bytes": ACTIVATION_REGFILE_BYTES,
                                           "width": ACTIVATION_BITS}),
        "pe.idle.cycle": EventSpec("free", "control"),
    }

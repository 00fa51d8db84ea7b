"""YodaNN's resource model (``accel.hw.resources``): the structural counts of what
``accel.hw.yodann.rtl`` generates, priced by coefficients fitted to yosys. The engine is one
module, so the coefficients are fitted to flattened totals only; the parts reported are the SoP
units, the channel summers and output stage, and the memories. Memories are exact; the output
stage's multiplier is DSP blocks, not counted here."""

from __future__ import annotations

from accel.hw.resources import (Resources, apply, memory_resources, prefixed, tree_bits,
                                rom_columns)
from accel.hw.yodann.loading import parameter_layout
from accel.hw.yodann.mapping import (YodaNNMapping, carry_count_bits, carry_count_field,
                                     filter_word_bits, filter_words)
from accel.hw.yodann.rtl import (bias_words, engine_widths, pipeline_register_bits,
                                 program_parts, program_words, threshold_steps,
                                 threshold_words, window_kernel)

# Fitted by ``python benchmarks/resources.py --fit`` (non-negative least squares, relative
# error, on the flattened synth_ecp5 counts, yosys 0.70, of the YodaNN designs it lists).
LUT_COEFFICIENTS: dict[str, float] = {
    "memory.lutram_read_mux": 0.6892, "sop.pipeline_bits": 0.232, "sop.tree_bits": 0.4241,
    "summer.accumulator_bits": 6.6805, "summer.window_bits": 6.9014,
}
FF_COEFFICIENTS: dict[str, float] = {
    "sop.pipeline_bits": 0.7415, "summer.accumulator_bits": 1.3217, "summer.window_bits": 9.8518,
}


def structural(mapping: YodaNNMapping) -> dict[str, Resources]:
    config, w = mapping.config, engine_widths(mapping)
    km, n_in, n_out = config.k_max, config.n_in, config.n_out
    ab, acc, out = w["activation"], w["acc"], w["out"]
    taps = km * km
    sops = Resources(features=prefixed("sop", {
        # per unit: x or ~x per tap into a balanced tree with the (stored) carry count
        "select_bits": n_out * taps * ab,
        "tree_bits": n_out * tree_bits(taps + 1, ab),
        "result_bits": n_out * w["sop"],  # the registered results
        # every compute pipeline register: taps, weights, tree stages, summers, output stage
        "pipeline_bits": pipeline_register_bits(mapping),
    }))
    summers = Resources(features=prefixed("summer", {
        "stage": 1,
        "accumulator_bits": n_out * acc,
        "window_bits": window_kernel(mapping) ** 2 * ab,  # the live taps' selects
    }))
    words = filter_words(mapping)
    # the weight memory's columns (yosys keeps all of the filter bank's, which it writes)
    count_bits = carry_count_bits(config)
    weight_columns = rom_columns([[word >> (j * taps) & ((1 << taps) - 1) for j in range(n_out)]
                                  for word in words], taps)
    count_columns = rom_columns([[word >> carry_count_field(config, j).start
                                  & ((1 << count_bits) - 1) for j in range(n_out)]
                                 for word in words], count_bits)
    columns = tuple(w + c for w, c in zip(weight_columns, count_columns))
    # loadable: the parameter memories are RAMs with a write port, every column live
    loadable = mapping.loadable_weights
    # the activation buffers: one synchronous read port each (the filler's, then the
    # unloader's), as wide as the bits read: the final buffer's output words, the other's
    # activation bits
    depth = max(mapping.buffer_values, 2)
    final_buffer = len(mapping.layers) % 2
    memory_parts = [
        memory_resources(out if b == final_buffer else ab, depth, writable=True, sync_read=True)
        for b in range(2)] + [
        memory_resources(filter_word_bits(config), max(len(words), 2), writable=loadable,
                         sync_read=True, weights=True, columns=None if loadable else columns),
        memory_resources(filter_word_bits(config), max(n_in, 2), writable=True, sync_read=True),
        *[memory_resources(ab, config.w_max * n_in, writable=True, sync_read=True)
          for _ in range(window_kernel(mapping) + 1)],
        memory_resources(out, config.w_max * n_out, writable=True, sync_read=True),  # pool
    ]
    # the sequencer's program (its bit columns) and the bias memory (a network's parameters,
    # placed as weights), ROMs read synchronously
    fields, scales = program_parts(mapping)
    program_width, program = program_words(fields)
    memory_parts.append(memory_resources(
        program_width, max(len(program), 2), writable=False, sync_read=True,
        columns=rom_columns([[word >> b & 1 for b in range(program_width)] for word in program],
                            1)))
    if scales:  # loadable: the scale fields in a writable memory of their own
        scale_width, scale_words = program_words(scales)
        memory_parts.append(memory_resources(scale_width, max(len(scale_words), 2),
                                             writable=True, sync_read=True))
    biases = bias_words(mapping)
    memory_parts.append(memory_resources(
        acc, max(len(biases), 2), writable=loadable, sync_read=True, weights=True,
        columns=None if loadable else rom_columns([[b] for b in biases], acc)))
    kw = window_kernel(mapping)
    if kw > 1:  # the image bank: each channel's older window columns, rewritten in place
        memory_parts.append(memory_resources(kw * (kw - 1) * ab, max(n_in, 2), writable=True,
                                             sync_read=False))
    if mapping.psum_words:
        memory_parts.append(memory_resources(n_out * acc, max(mapping.psum_words, 2),
                                             writable=True, sync_read=True))
    steps = threshold_steps(mapping)
    if steps:
        field_bits = acc + 1
        thresholds = threshold_words(mapping, field_bits)
        memory_parts.append(memory_resources(steps * field_bits, max(len(thresholds), 2),
                                             writable=loadable, sync_read=True))
    memories = Resources()
    for memory in memory_parts:
        memories = memories + memory.under("memory")
    parts = {"sops": sops, "summers": summers, "memories": memories}
    if loadable:  # the parameter port's register (no coefficient prices the write side)
        layout = parameter_layout(mapping)
        parts["param"] = Resources(ff=layout.addr_bits + layout.data_bits + 1)
    return parts


def resources(mapping: YodaNNMapping) -> dict[str, Resources]:
    return {name: apply(LUT_COEFFICIENTS, FF_COEFFICIENTS, part)
            for name, part in structural(mapping).items()}

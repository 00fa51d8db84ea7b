"""What each FINN event is, physically: the architecture's declaration for the energy model."""

from __future__ import annotations

from accel.energy.model import EventSpec
from accel.hw.finn.mapping import FinnMapping, LayerMapping, WindowMapping
from accel.hw.finn.top import event_declarations, operation_name, stage_names


def event_specs(mapping: FinnMapping) -> dict[str, EventSpec]:
    specs: dict[str, EventSpec] = {}
    for name, stage in zip(stage_names(mapping), mapping.stages):
        if isinstance(stage, LayerMapping):
            word = stage.simd * stage.weight.bits
            depth = stage.neuron_fold * stage.synapse_fold
            specs[f"{name}.weight_mem.read"] = EventSpec(
                "sram", "memory", {"capacity_bytes": depth * word / 8, "width": word})
            beat = stage.simd * stage.input.bits
            buffer = {"capacity_bytes": stage.synapse_fold * beat / 8, "width": beat}
            specs[f"{name}.input_buffer.write"] = EventSpec("register", "memory", buffer)
            specs[f"{name}.input_buffer.read"] = EventSpec("register", "memory", buffer)
            lane = {"acc_bits": stage.accumulator.bits, "simd": stage.simd,
                    "bits": max(stage.input.bits, stage.weight.bits)}
            kind = {"xnor_popcount": "xnor_popcount_lane",
                    "mac": "negate_add_lane" if stage.weight.bipolar or stage.input.bipolar
                    else "mac"}[operation_name(stage)]
            specs[f"{name}.pe.{operation_name(stage)}"] = EventSpec(kind, "compute", lane)
            if stage.thresholds is not None:
                row = stage.steps * (stage.accumulator.bits + 1)
                specs[f"{name}.threshold_mem.read"] = EventSpec(
                    "register", "memory",
                    {"capacity_bytes": stage.neuron_fold * row / 8, "width": row})
                specs[f"{name}.threshold.compare"] = EventSpec(
                    "compare", "compute", {"bits": stage.accumulator.bits + 1})
        elif isinstance(stage, WindowMapping):
            beat = stage.simd * stage.element.bits
            lines = {"capacity_bytes": stage.rows * stage.width * stage.channels
                     * stage.element.bits / 8, "width": beat}
            specs[f"{name}.line_buffer.write"] = EventSpec("sram", "memory", lines)
            specs[f"{name}.line_buffer.read"] = EventSpec("sram", "memory", lines)
        else:
            beat = stage.lanes * stage.element.bits
            row = {"capacity_bytes": stage.out_width * stage.channels * stage.element.bits / 8,
                   "width": beat}
            specs[f"{name}.row_buffer.read"] = EventSpec("register", "memory", row)
            specs[f"{name}.row_buffer.write"] = EventSpec("register", "memory", row)
            specs[f"{name}.max.compare"] = EventSpec("compare", "compute",
                                                     {"bits": stage.element.bits})
    for k, (depth, consumer) in enumerate(zip(mapping.fifo_depths, mapping.stages[1:])):
        beat = consumer.in_elements * consumer.input.bits
        # a push is written once and read once
        specs[f"fifo{k}.push"] = EventSpec("register", "queues",
                                           {"capacity_bytes": depth * beat / 8, "width": 2 * beat})
    assert set(specs) == set(event_declarations(mapping)), "every FINN event has a declaration"
    return specs

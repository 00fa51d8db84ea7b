"""The FINN-style dataflow top (MVTUs chained through FIFOs and width converters, AXI-Stream
port names, event counters) and the simulation harness around it."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.hw.common.counters import EventCounterBank
from accel.hw.common.fifo import StreamFIFO, transfer
from accel.hw.common.stream_harness import StreamHarness
from accel.hw.finn.mapping import FinnMapping, LayerMapping, PoolMapping, WindowMapping
from accel.hw.finn.mvtu import MVTU, StreamWidthConverter
from accel.hw.finn.window import MaxPoolUnit, SlidingWindowUnit


def operation_name(layer: LayerMapping) -> str:
    return "xnor_popcount" if layer.input.bipolar and layer.weight.bipolar else "mac"


def stage_names(mapping: FinnMapping) -> list[str]:
    """Event prefix of each stage: MVTUs l0, l1, ...; sliding-window units swu0, ...; pooling
    units pool0, ... (each kind counted on its own, in stream order)."""
    prefixes = {LayerMapping: "l", WindowMapping: "swu", PoolMapping: "pool"}
    seen: dict[str, int] = {}
    names = []
    for stage in mapping.stages:
        prefix = prefixes[type(stage)]
        names.append(f"{prefix}{seen.get(prefix, 0)}")
        seen[prefix] = seen.get(prefix, 0) + 1
    return names


def event_declarations(mapping: FinnMapping) -> dict[str, int]:
    """Every event the top counts, with the largest increment per cycle. FIFO k sits between
    stages k and k+1."""
    events = {}
    for name, stage in zip(stage_names(mapping), mapping.stages):
        if isinstance(stage, LayerMapping):
            events[f"{name}.weight_mem.read"] = stage.pe
            events[f"{name}.input_buffer.write"] = 1
            events[f"{name}.input_buffer.read"] = 1
            events[f"{name}.pe.{operation_name(stage)}"] = stage.pe * stage.simd
            if stage.thresholds is not None:
                events[f"{name}.threshold_mem.read"] = stage.pe
                events[f"{name}.threshold.compare"] = stage.pe * stage.steps
        elif isinstance(stage, WindowMapping):
            events[f"{name}.line_buffer.write"] = 1
            events[f"{name}.line_buffer.read"] = 1
        else:
            events[f"{name}.row_buffer.read"] = 1
            events[f"{name}.row_buffer.write"] = 1
            events[f"{name}.max.compare"] = stage.lanes
    for k in range(len(mapping.stages) - 1):
        events[f"fifo{k}.push"] = 1
    return events


def build_stage(stage):
    if isinstance(stage, LayerMapping):
        return MVTU(stage)
    if isinstance(stage, WindowMapping):
        return SlidingWindowUnit(stage)
    return MaxPoolUnit(stage)


class FinnTop(wiring.Component):
    """AXI-Stream in (``s_axis_*``: beats of the first stage's input) and out (``m_axis_*``: PE
    raw accumulators of the last layer per beat)."""

    def __init__(self, mapping: FinnMapping):
        self.mapping = mapping
        self.stages = [build_stage(stage) for stage in mapping.stages]
        self.counters = EventCounterBank(event_declarations(mapping), enabled=mapping.count_events)
        self.in_width = len(self.stages[0].i.payload)
        self.out_width = len(self.stages[-1].o.payload)
        members = {
            "s_axis_tdata": In(self.in_width), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "m_axis_tdata": Out(self.out_width), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
        }
        if mapping.count_events:
            members["event_counts"] = Out(len(self.counters.counts))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.counters = counters = self.counters
        names = stage_names(self.mapping)
        for name, stage in zip(names, self.stages):
            m.submodules[name] = stage
        first, last = self.stages[0], self.stages[-1]
        m.d.comb += [
            first.i.payload.eq(self.s_axis_tdata), first.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(first.i.ready),
            self.m_axis_tdata.eq(last.o.payload), self.m_axis_tvalid.eq(last.o.valid),
            last.o.ready.eq(self.m_axis_tready),
        ]
        specs = self.mapping.stages
        for k, (producer, consumer) in enumerate(zip(self.stages, self.stages[1:])):
            # producer -> width converter -> FIFO of consumer-width beats -> consumer: an MVTU
            # reads one beat per cycle in its first fold, so whole beats must wait in the FIFO
            before, after = specs[k], specs[k + 1]
            converter = StreamWidthConverter(before.output.bits, before.out_elements,
                                             after.in_elements)
            fifo = StreamFIFO(len(consumer.i.payload), self.mapping.fifo_depths[k])
            m.submodules[f"convert{k}"] = converter
            m.submodules[f"fifo{k}"] = fifo
            wiring.connect(m, producer.o, converter.i)
            wiring.connect(m, converter.o, fifo.i)
            wiring.connect(m, fifo.o, consumer.i)
            m.d.comb += counters.increment(f"fifo{k}.push").eq(transfer(fifo.i))

        for name, stage, spec in zip(names, self.stages, specs):
            if isinstance(spec, LayerMapping):
                m.d.comb += [
                    counters.increment(f"{name}.weight_mem.read").eq(stage.step * spec.pe),
                    counters.increment(f"{name}.input_buffer.write").eq(stage.input_step),
                    counters.increment(f"{name}.input_buffer.read").eq(
                        stage.step & ~stage.input_step),
                    counters.increment(f"{name}.pe.{operation_name(spec)}").eq(
                        stage.step * (spec.pe * spec.simd)),
                ]
                if spec.thresholds is not None:
                    m.d.comb += [
                        counters.increment(f"{name}.threshold_mem.read").eq(
                            stage.output_step * spec.pe),
                        counters.increment(f"{name}.threshold.compare").eq(
                            stage.output_step * (spec.pe * spec.steps)),
                    ]
            elif isinstance(spec, WindowMapping):
                m.d.comb += [
                    counters.increment(f"{name}.line_buffer.write").eq(stage.write_step),
                    counters.increment(f"{name}.line_buffer.read").eq(stage.read_step),
                ]
            else:
                compared = stage.window_step & ~stage.first_step
                m.d.comb += [
                    counters.increment(f"{name}.row_buffer.read").eq(compared),
                    counters.increment(f"{name}.row_buffer.write").eq(
                        stage.window_step & ~stage.last_step),
                    counters.increment(f"{name}.max.compare").eq(compared * spec.lanes),
                ]
        if self.counters.enabled:
            m.d.comb += [counters.clear.eq(0), self.event_counts.eq(counters.counts)]
        return m


def FinnHarness(mapping: FinnMapping, input_beats: int, output_beats: int) -> StreamHarness:
    """The FINN top in the stream simulation harness (``accel.hw.common.stream_harness``)."""
    return StreamHarness(FinnTop(mapping), mapping.stages[0].beats_in, input_beats,
                         output_beats)

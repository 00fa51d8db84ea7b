"""The FINN-style dataflow top (MVTUs chained through FIFOs and width converters, AXI-Stream
port names, event counters) and the simulation harness around it."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.common.counters import EventCounterBank
from accel.hw.common.fifo import StreamFIFO, transfer
from accel.hw.finn.mapping import FinnMapping, LayerMapping
from accel.hw.finn.mvtu import MVTU, StreamWidthConverter


def operation_name(layer: LayerMapping) -> str:
    return "xnor_popcount" if layer.input.bipolar and layer.weight.bipolar else "mac"


def event_declarations(mapping: FinnMapping) -> dict[str, int]:
    """Every event the top counts, with the largest increment per cycle. Layer k's events are
    named ``l<k>.<component>.<action>``; FIFO k sits between layers k and k+1."""
    events = {}
    for k, layer in enumerate(mapping.layers):
        events[f"l{k}.weight_mem.read"] = layer.pe
        events[f"l{k}.input_buffer.write"] = 1
        events[f"l{k}.input_buffer.read"] = 1
        events[f"l{k}.pe.{operation_name(layer)}"] = layer.pe * layer.simd
        if layer.thresholds is not None:
            events[f"l{k}.threshold_mem.read"] = layer.pe
            events[f"l{k}.threshold.compare"] = layer.pe * layer.steps
    for k in range(len(mapping.layers) - 1):
        events[f"fifo{k}.push"] = 1
    return events


class FinnTop(wiring.Component):
    """AXI-Stream in (``s_axis_*``: SIMD elements of the first layer per beat) and out
    (``m_axis_*``: PE raw accumulators of the last layer per beat)."""

    def __init__(self, mapping: FinnMapping):
        self.mapping = mapping
        self.stages = [MVTU(layer) for layer in mapping.layers]
        self.counters = EventCounterBank(event_declarations(mapping), enabled=mapping.count_events)
        self.in_width = self.stages[0].in_width
        self.out_width = self.stages[-1].out_width
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
        for k, stage in enumerate(self.stages):
            m.submodules[f"mvtu{k}"] = stage
        first, last = self.stages[0], self.stages[-1]
        m.d.comb += [
            first.i.payload.eq(self.s_axis_tdata), first.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(first.i.ready),
            self.m_axis_tdata.eq(last.o.payload), self.m_axis_tvalid.eq(last.o.valid),
            last.o.ready.eq(self.m_axis_tready),
        ]
        for k, (producer, consumer) in enumerate(zip(self.stages, self.stages[1:])):
            # producer -> width converter -> FIFO of consumer-width beats -> consumer: the
            # consumer reads one beat per cycle in its first fold, so whole beats must wait
            # in the FIFO, not be assembled on demand
            before, after = self.mapping.layers[k], self.mapping.layers[k + 1]
            converter = StreamWidthConverter(before.output.bits, before.pe, after.simd)
            fifo = StreamFIFO(consumer.in_width, self.mapping.fifo_depths[k])
            m.submodules[f"convert{k}"] = converter
            m.submodules[f"fifo{k}"] = fifo
            wiring.connect(m, producer.o, converter.i)
            wiring.connect(m, converter.o, fifo.i)
            wiring.connect(m, fifo.o, consumer.i)
            m.d.comb += counters.increment(f"fifo{k}.push").eq(transfer(fifo.i))

        for k, (stage, layer) in enumerate(zip(self.stages, self.mapping.layers)):
            m.d.comb += [
                counters.increment(f"l{k}.weight_mem.read").eq(stage.step * layer.pe),
                counters.increment(f"l{k}.input_buffer.write").eq(stage.input_step),
                counters.increment(f"l{k}.input_buffer.read").eq(stage.step & ~stage.input_step),
                counters.increment(f"l{k}.pe.{operation_name(layer)}").eq(
                    stage.step * (layer.pe * layer.simd)),
            ]
            if layer.thresholds is not None:
                m.d.comb += [
                    counters.increment(f"l{k}.threshold_mem.read").eq(
                        stage.output_step * layer.pe),
                    counters.increment(f"l{k}.threshold.compare").eq(
                        stage.output_step * (layer.pe * layer.steps)),
                ]
        if self.counters.enabled:
            m.d.comb += [counters.clear.eq(0), self.event_counts.eq(counters.counts)]
        return m


class FinnHarness(wiring.Component):
    """Simulation harness: an input memory loaded through a port before the run streams every
    frame into the top at full rate; an always-ready sink stores the output beats, read back
    through a port after the run. Counts the cycles of the run and of frame 0 (its latency)."""

    def __init__(self, mapping: FinnMapping, input_beats: int, output_beats: int):
        self.top = FinnTop(mapping)
        self.input_beats = input_beats
        self.output_beats = output_beats
        self.counters = self.top.counters
        members = {
            "load_addr": In(range(input_beats)), "load_data": In(self.top.in_width),
            "load_en": In(1),
            "run": In(1), "beats_in": In(32), "beats_out": In(32), "frame_beats_out": In(32),
            "done": Out(1), "cycles": Out(32), "frame0_cycles": Out(32),
            "read_addr": In(range(output_beats)), "read_data": Out(self.top.out_width),
        }
        if mapping.count_events:
            members["event_counts"] = Out(len(self.counters.counts))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = self.top
        m.submodules.frames_in = frames_in = memory.Memory(
            shape=self.top.in_width, depth=self.input_beats, init=[])
        m.submodules.beats_out_mem = outputs = memory.Memory(
            shape=self.top.out_width, depth=self.output_beats, init=[])
        load = frames_in.write_port()
        source = frames_in.read_port(domain="comb")
        sink = outputs.write_port()
        readback = outputs.read_port(domain="comb")
        sent = Signal(32)
        received = Signal(32)
        m.d.comb += [
            load.addr.eq(self.load_addr), load.data.eq(self.load_data), load.en.eq(self.load_en),
            source.addr.eq(sent),
            top.s_axis_tdata.eq(source.data),
            top.s_axis_tvalid.eq(self.run & (sent < self.beats_in)),
            top.m_axis_tready.eq(self.run),
            sink.addr.eq(received), sink.data.eq(top.m_axis_tdata),
            sink.en.eq(top.m_axis_tvalid & top.m_axis_tready),
            readback.addr.eq(self.read_addr), self.read_data.eq(readback.data),
            self.done.eq(received == self.beats_out),
        ]
        with m.If(~self.run):
            m.d.sync += [sent.eq(0), received.eq(0), self.cycles.eq(0), self.frame0_cycles.eq(0)]
        with m.Else():
            with m.If(top.s_axis_tvalid & top.s_axis_tready):
                m.d.sync += sent.eq(sent + 1)
            with m.If(sink.en):
                m.d.sync += received.eq(received + 1)
            with m.If(~self.done):
                m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(received < self.frame_beats_out):
                m.d.sync += self.frame0_cycles.eq(self.frame0_cycles + 1)
        if self.counters.enabled:
            m.d.comb += self.event_counts.eq(top.event_counts)
        return m

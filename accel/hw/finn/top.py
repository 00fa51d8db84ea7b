"""The FINN-style dataflow top (MVTUs chained through FIFOs and width converters, AXI-Stream
port names, event counters) and the simulation harness around it."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring

from accel.hw.common.counters import EventCounterBank
from accel.hw.common.fifo import StreamFIFO, transfer
from accel.hw.common.parameters import registered_port
from accel.hw.common.stream_harness import StreamHarness, axi_stream_ports
from accel.hw.finn.loading import parameter_layout
from accel.hw.finn.mapping import FinnMapping
from accel.hw.finn.mvtu import StreamWidthConverter
from accel.hw.finn.stages import event_declarations, fifo_name, kind_of, stage_names


class FinnTop(wiring.Component):
    """AXI-Stream in (``s_axis_*``: beats of the first stage's input) and out (``m_axis_*``: PE
    raw accumulators of the last layer per beat); with loadable weights, the parameter port
    (``param_*``, ``accel.hw.finn.loading``)."""

    def __init__(self, mapping: FinnMapping):
        self.mapping = mapping
        self.layout = parameter_layout(mapping) if mapping.loadable_weights else None
        self.stages = []
        for position, stage in enumerate(mapping.stages):
            memories = self.layout.of_stage(position) if self.layout else ()
            kind = kind_of(stage)
            self.stages.append(kind.block(stage, self.layout, memories) if memories
                               else kind.block(stage))
        self.counters = EventCounterBank(event_declarations(mapping), enabled=mapping.count_events)
        self.in_width = len(self.stages[0].i.payload)
        self.out_width = len(self.stages[-1].o.payload)
        super().__init__({**axi_stream_ports(self.in_width, self.out_width, self.counters),
                          **(self.layout.port_members() if self.layout else {})})

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
            m.d.comb += counters.increment(fifo_name(k)).eq(transfer(fifo.i))

        for name, stage, spec in zip(names, self.stages, specs):
            for action, strobe in kind_of(spec).strobes(stage, spec).items():
                m.d.comb += counters.increment(f"{name}.{action}").eq(strobe)
        if self.counters.enabled:
            m.d.comb += [counters.clear.eq(0), self.event_counts.eq(counters.counts)]
        if self.layout:
            port = registered_port(m, self)
            for stage in self.stages:
                if "param_en" in stage.signature.members:
                    m.d.comb += [getattr(stage, name).eq(register)
                                 for name, register in port.items()]
        return m


def FinnHarness(mapping: FinnMapping, input_beats: int, output_beats: int) -> StreamHarness:
    """The FINN top in the stream simulation harness (``accel.hw.common.stream_harness``)."""
    return StreamHarness(FinnTop(mapping), mapping.stages[0].beats_in, input_beats,
                         output_beats)

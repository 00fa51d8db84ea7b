"""The FINN thresholding stage (a standalone MultiThreshold, FINN's Thresholding layer): per
element, the count of its channel's thresholds it reaches. Its handshake is the max-pool's
with a window of one element (``accel.hw.finn.window.MaxPoolUnit``): a beat is taken when the
output register is free, and its result is valid the next cycle. Mirrored in
``accel.hw.finn.model.ThresholdStepper``; the token model times it as a one-element pool."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.common.memory import placed_memory
from accel.hw.common.parameters import (ParameterLayout, ParameterMemory,
                                        connect_parameter_write, port_signals)
from accel.hw.finn.loading import stage_threshold_words
from accel.hw.finn.mapping import ThresholdMapping
from accel.hw.finn.mvtu import balanced_sum


class ThresholdUnit(wiring.Component):
    """``lanes`` elements per beat; channel group g (of channels // lanes) reads row g of the
    threshold memory: per lane, ``steps`` thresholds of ``threshold_bits`` (signed). With a
    parameter ``layout`` (loadable weights), the memory is written through the parameter port
    (``memories``: its one entry)."""

    def __init__(self, spec: ThresholdMapping, layout: ParameterLayout | None = None,
                 memories: tuple[ParameterMemory, ...] = ()):
        self.spec = spec
        self.layout = layout
        self.parameter_memories = memories
        super().__init__({
            "i": In(stream.Signature(spec.lanes * spec.element.bits)),
            "o": Out(stream.Signature(spec.lanes * spec.out_element.bits)),
            "step": Out(1),  # a beat was taken (one threshold row read, lanes x steps compares)
            **(layout.port_members() if layout else {}),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        groups, width = s.channel_beats, s.threshold_bits
        words = stage_threshold_words(s)
        m.submodules.thresholds = thresholds = placed_memory(
            shape=s.lanes * s.steps * width, depth=max(groups, 2), init=words + [0] * (groups < 2),
            writable=self.layout is not None, sync_read=False)
        if self.layout is not None:
            connect_parameter_write(m, thresholds, port_signals(self),
                                    self.parameter_memories[0], self.layout)
        read = thresholds.read_port(domain="comb")
        group = Signal(range(max(groups, 2)))
        out_valid = Signal()
        out_free = ~out_valid | self.o.ready
        take = self.i.valid & out_free
        m.d.comb += [self.i.ready.eq(out_free), self.o.valid.eq(out_valid),
                     read.addr.eq(group), self.step.eq(take)]

        lanes = []
        bits = s.element.bits
        for lane in range(s.lanes):
            x = self.i.payload[lane * bits:(lane + 1) * bits]
            # one bit wider than the threshold so an unsigned input compares as a value
            value = (x.as_signed() if s.element.signed else x.as_unsigned())
            row = read.data[lane * s.steps * width:(lane + 1) * s.steps * width]
            count = balanced_sum((value >= row[k * width:(k + 1) * width].as_signed()).as_unsigned()
                        for k in range(s.steps))
            out = Signal(s.out_element.bits, name=f"out{lane}")
            m.d.comb += out.eq(count if s.out_element.bipolar else count + s.out_offset)
            lanes.append(out)

        out_register = Signal(len(self.o.payload))
        m.d.comb += self.o.payload.eq(out_register)
        with m.If(take):
            m.d.sync += [out_register.eq(Cat(*lanes)), out_valid.eq(1),
                         group.eq(Mux(group == groups - 1, 0, group + 1))]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        return m

"""A synchronous stream FIFO with ``amaranth.lib.stream`` valid/ready ports."""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.hw.common import validating
from accel.hw.common.memory import placed_memory


def transfer(port) -> "Value":  # noqa: F821 - amaranth Value
    """The strobe of a completed stream transfer on ``port`` (valid and ready both high)."""
    return port.valid & port.ready


class StreamFIFO(wiring.Component):
    """First-in first-out buffer of ``depth`` items of ``shape``.

    Timing, which the cycle models rely on:
    - an item pushed at clock edge t is visible on ``o`` from edge t (valid in cycle t+1);
    - ``i.ready`` is high whenever fewer than ``depth`` items are stored. A full FIFO does not
      accept a push in the cycle it pops, which keeps ``i.ready`` free of any path from
      ``o.ready`` (no combinational loop through a chain of FIFOs);
    - ``level`` is the number of stored items.
    Storage is a memory with an asynchronous read port (LUT RAM on FPGAs).

    With ``registered_head`` the oldest item is held in a register (same timing): ``o.payload``
    then leaves a flip-flop rather than the LUT RAM's read mux, for consumers that put more logic
    behind it (EIE's pointer read). The storage is read one item ahead, into that register.
    """

    def __init__(self, shape, depth: int, registered_head: bool = False):
        with validating(self):
            if not isinstance(depth, int) or depth < 1:
                raise ConfigError(f"FIFO depth must be a positive integer, got {depth!r}")
        self.shape = shape
        self.depth = depth
        self.registered_head = registered_head
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        push = transfer(self.i)
        pop = transfer(self.o)
        m.d.comb += [
            self.i.ready.eq(self.level != self.depth),
            self.o.valid.eq(self.level != 0),
        ]
        m.d.sync += self.level.eq(self.level + push - pop)
        if self.depth == 1:
            # A one-entry memory would have zero-width addresses, which Verilog cannot express.
            item = Signal.like(self.o.payload)
            with m.If(push):
                m.d.sync += item.eq(self.i.payload)
            m.d.comb += self.o.payload.eq(item)
            return m

        m.submodules.storage = storage = placed_memory(shape=self.shape, depth=self.depth, init=[],
                                                       writable=True, sync_read=False)
        write = storage.write_port()
        read = storage.read_port(domain="comb")
        write_addr = Signal(range(self.depth))
        # the head's slot, or with a registered head the slot after it
        read_addr = Signal(range(self.depth), init=int(self.registered_head))
        m.d.comb += [
            write.addr.eq(write_addr),
            write.data.eq(self.i.payload),
            write.en.eq(push),
            read.addr.eq(read_addr),
        ]
        if self.registered_head:
            head = Signal.like(self.o.payload)
            m.d.comb += self.o.payload.eq(head)
            with m.If(pop & (self.level != 1)):  # the next item is already stored
                m.d.sync += head.eq(read.data)
            with m.Elif(push & (self.level == pop)):  # the FIFO is or becomes empty
                m.d.sync += head.eq(self.i.payload)
        else:
            m.d.comb += self.o.payload.eq(read.data)
        last = self.depth - 1
        with m.If(push):
            m.d.sync += write_addr.eq(Mux(write_addr == last, 0, write_addr + 1))
        with m.If(pop):
            m.d.sync += read_addr.eq(Mux(read_addr == last, 0, read_addr + 1))
        return m

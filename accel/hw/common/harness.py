"""Self-checking stream harness: stimulus and checking in hardware, so a testbench needs no
Python per clock cycle.

``FIFOHarness`` puts a ``StreamFIFO`` between a source that offers the sequence 0, 1, 2, ... with
pseudo-random valid gaps and a sink with pseudo-random backpressure; the sink counts items that
arrive out of sequence (lost or duplicated items). Both random streams come from xorshift32
generators whose seeds, like the item count and the valid/ready probabilities, are input ports:
one Verilator build serves every randomized run.

``fifo_harness_model`` is the cycle model of the same circuit: it predicts the cycle count and
every event count exactly, and the tests hold the RTL to it.
"""

from __future__ import annotations

from collections import deque

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.hw.common.counters import EventCounterBank
from accel.hw.common.fifo import StreamFIFO, transfer

MASK32 = 0xFFFF_FFFF
# A draw is "yes" when the generator's low byte is below the threshold: 0 never, 256 always.
ALWAYS = 256
PAYLOAD_LOW_BITS = 3  # the sink.payload_low event adds the payload's low bits (a multi-bit count)

HARNESS_EVENTS = {
    "fifo.push": 1,
    "fifo.pop": 1,
    "source.stall": 1,  # valid offered but not accepted
    "sink.payload_low": (1 << PAYLOAD_LOW_BITS) - 1,
}


def xorshift32(x: int) -> int:
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    return x


def xorshift32_hw(x):
    a = x ^ (x << 13)[:32]
    b = a ^ (a >> 17)
    return b ^ (b << 5)[:32]


def check_seed(seed: int) -> None:
    if not 0 < seed <= MASK32:
        raise ConfigError(f"xorshift32 seeds must be in 1..2**32-1, got {seed}")


class FIFOHarness(wiring.Component):
    """Source, ``StreamFIFO(width, depth)`` and checking sink, with an event counter bank.

    Drive ``items``, the thresholds and seeds with ``run`` low (this loads the generators and
    clears the counters), then raise ``run``; ``done`` goes high once ``items`` items arrived.
    """

    def __init__(self, width: int = 16, depth: int = 4, count_events: bool = True,
                 registered_head: bool = False):
        self.width = width
        self.depth = depth
        self.fifo = StreamFIFO(width, depth, registered_head=registered_head)
        self.counters = EventCounterBank(HARNESS_EVENTS, enabled=count_events)
        members = {
            "run": In(1),
            "items": In(32),
            "valid_threshold": In(9),
            "ready_threshold": In(9),
            "source_seed": In(32),
            "sink_seed": In(32),
            "done": Out(1),
            "received": Out(32),
            "errors": Out(32),
            "cycles": Out(32),
        }
        if count_events:
            members["event_counts"] = Out(len(self.counters.counts))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = self.fifo
        m.submodules.counters = counters = self.counters

        source_random = Signal(32)
        sink_random = Signal(32)
        sent = Signal(32)
        source_valid = Signal()
        push = transfer(fifo.i)
        pop = transfer(fifo.o)
        sent_next = sent + push

        m.d.comb += [
            fifo.i.valid.eq(source_valid),
            fifo.i.payload.eq(sent[:self.width]),
            fifo.o.ready.eq(self.run & (sink_random[:8] < self.ready_threshold)),
            self.done.eq(self.received == self.items),
        ]
        with m.If(~self.run):
            m.d.sync += [
                source_random.eq(self.source_seed),
                sink_random.eq(self.sink_seed),
                sent.eq(0),
                source_valid.eq(0),
                self.received.eq(0),
                self.errors.eq(0),
                self.cycles.eq(0),
            ]
        with m.Else():
            m.d.sync += [
                source_random.eq(xorshift32_hw(source_random)),
                sink_random.eq(xorshift32_hw(sink_random)),
                sent.eq(sent_next),
                # AXI-Stream rule: an offered item stays valid until it is taken.
                source_valid.eq((source_valid & ~push)
                                | ((sent_next < self.items)
                                   & (source_random[:8] < self.valid_threshold))),
                self.received.eq(self.received + pop),
                self.errors.eq(self.errors
                               + (pop & (fifo.o.payload != self.received[:self.width]))),
                self.cycles.eq(self.cycles + ~self.done),
            ]

        m.d.comb += [
            counters.increment("fifo.push").eq(push),
            counters.increment("fifo.pop").eq(pop),
            counters.increment("source.stall").eq(fifo.i.valid & ~fifo.i.ready),
            counters.increment("sink.payload_low").eq(
                pop * fifo.o.payload[:PAYLOAD_LOW_BITS]),
        ]
        if self.counters.enabled:
            m.d.comb += [counters.clear.eq(~self.run), self.event_counts.eq(counters.counts)]
        return m


def fifo_harness_model(*, depth: int, width: int, items: int, valid_threshold: int,
                       ready_threshold: int, source_seed: int, sink_seed: int,
                       max_cycles: int = 10**8) -> dict:
    """Cycle-exact model of ``FIFOHarness``: cycles until done and every event count."""
    for seed in (source_seed, sink_seed):
        check_seed(seed)
    source_random, sink_random = source_seed, sink_seed
    payload_mask = (1 << width) - 1
    sent = received = errors = cycles = 0
    source_valid = False
    queue: deque[int] = deque()
    events = dict.fromkeys(HARNESS_EVENTS, 0)
    while received != items:
        if cycles >= max_cycles:
            raise ConfigError(f"harness model did not finish within {max_cycles} cycles")
        cycles += 1
        push = source_valid and len(queue) < depth
        pop = bool(queue) and (sink_random & 0xFF) < ready_threshold
        events["source.stall"] += source_valid and not push
        if pop:
            payload = queue.popleft()
            errors += payload != (received & payload_mask)
            received += 1
            events["fifo.pop"] += 1
            events["sink.payload_low"] += payload & ((1 << PAYLOAD_LOW_BITS) - 1)
        if push:
            queue.append(sent & payload_mask)
            events["fifo.push"] += 1
            sent += 1
        source_valid = (source_valid and not push) or (
            sent < items and (source_random & 0xFF) < valid_threshold)
        source_random = xorshift32(source_random)
        sink_random = xorshift32(sink_random)
    return {"cycles": cycles, "received": received, "errors": errors, "events": events}

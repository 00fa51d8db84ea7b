"""The event counter bank: hardware activity counts, the input of the energy model.

Naming rule
-----------
An event is named ``component.action``: lower-case words of ``[a-z0-9_]`` joined by dots, at
least two of them. The last word is the action (``read``, ``write``, ``push``, ``pop``, ``mac``,
``compare``, ...); everything before it names the component instance, which may be hierarchical
(``layer0.weight_mem.read``, ``pe.act_queue.push``). The energy model maps each component to a
memory instance or operator of a technology table, so the same name must always mean the same
physical action.

Every architecture counts, through a bank like this one, each memory access (per memory
instance), each arithmetic operation (per operator type and width) and each FIFO or queue
transfer it performs, so that energy is computed from what the hardware did, not from shapes.

An event may count more than one per cycle: it is declared with the largest increment a single
cycle can add (``{"pe.mac": 64}`` for 64 MACs in one cycle), and the generator drives a
multi-bit increment.

Readout
-------
All counters appear side by side on one output port (``counts``, event ``k`` in bits
``[k*width, (k+1)*width)``), so a testbench reads every count with one access after the run and
``decode`` turns that integer into a name-to-count dict. Counters wrap at ``2**width``.
``clear`` zeroes all counters synchronously.

For FPGA builds the bank is left out (``enabled=False``): it keeps its increment inputs, so
generators wire strobes unconditionally, but has no registers and no ``counts`` port.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.hw.common import validating

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
DEFAULT_COUNTER_WIDTH = 48  # 2**48 counts: years of cycles at 64 events per cycle


def check_event_name(name: str) -> None:
    if not isinstance(name, str) or not EVENT_NAME.match(name):
        raise ConfigError(f"event name {name!r} does not follow the rule component.action "
                          "(lower-case [a-z0-9_] words joined by dots, at least two)")


class EventCounterBank(wiring.Component):
    """Counts named events; see the module documentation for the naming rule and readout."""

    def __init__(self, events: Mapping[str, int] | Sequence[str], *,
                 width: int = DEFAULT_COUNTER_WIDTH, enabled: bool = True):
        if not isinstance(events, Mapping):
            events = {name: 1 for name in events}
        with validating(self):
            if not events:
                raise ConfigError("an event counter bank needs at least one event")
            for name, max_increment in events.items():
                check_event_name(name)
                if not isinstance(max_increment, int) or max_increment < 1:
                    raise ConfigError(f"event {name!r}: the largest increment per cycle must be "
                                      f"a positive integer, got {max_increment!r}")
            if width < 1:
                raise ConfigError(f"counter width must be positive, got {width}")
        self.events = dict(events)
        self.names = list(self.events)
        self.width = width
        self.enabled = enabled
        self._increment_bits = {name: n.bit_length() for name, n in self.events.items()}
        self._offsets = {}
        offset = 0
        for name in self.names:
            self._offsets[name] = offset
            offset += self._increment_bits[name]
        members = {"increments": In(offset)}
        if enabled:
            members["clear"] = In(1)
            members["counts"] = Out(width * len(self.names))
        super().__init__(members)

    def increment(self, name: str):
        """The input a generator drives with the number of ``name`` events in this cycle."""
        if name not in self._offsets:
            raise ConfigError(f"no event named {name!r}; declared: {', '.join(self.names)}")
        lo = self._offsets[name]
        return self.increments[lo:lo + self._increment_bits[name]]

    def decode(self, counts: int) -> dict[str, int]:
        """Split the integer read from ``counts`` into ``{event name: count}``."""
        return decode_counts(self.manifest(), counts)

    def manifest(self) -> dict:
        """What a testbench or a saved design needs to decode the counters without Amaranth."""
        return {"width": self.width, "events": self.names}

    def elaborate(self, platform):
        m = Module()
        if not self.enabled:
            return m
        for k, name in enumerate(self.names):
            counter = Signal(self.width, name=f"count_{name.replace('.', '__')}")
            with m.If(self.clear):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + self.increment(name))
            m.d.comb += self.counts[k * self.width:(k + 1) * self.width].eq(counter)
        return m


def decode_counts(manifest: Mapping, counts: int) -> dict[str, int]:
    """``EventCounterBank.decode`` from a saved ``manifest()`` (no Amaranth object needed)."""
    mask = (1 << manifest["width"]) - 1
    return {name: (int(counts) >> (k * manifest["width"])) & mask
            for k, name in enumerate(manifest["events"])}

"""Run-time loadable parameters, for any architecture: a design's weight-like memories
(weights, thresholds, biases, ...) each get a write port driven from one parameter port on the
top, so a retrained network of the same shape runs on the same bitstream (FINN's
runtime-writeable weights).

The port: ``param_addr``, ``param_data``, ``param_en``, one word per cycle, never refused.
``param_addr`` = memory index << ``word_bits`` | word; a word is in the low bits of
``param_data``. An architecture decides which memories there are and in what order (its
``loading`` module); this module holds the address map, the port and the writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Signal
from amaranth.lib.wiring import In

from accel.errors import ConfigError


@dataclass(frozen=True)
class ParameterMemory:
    """One writable parameter memory: ``index`` in the address map, ``stage`` the part of the
    design that holds it (an architecture's own numbering), ``depth`` words of ``width`` bits
    as built."""

    name: str
    stage: int
    index: int
    depth: int
    width: int


@dataclass(frozen=True)
class ParameterLayout:
    memories: tuple[ParameterMemory, ...]
    word_bits: int  # the word address inside a memory
    index_bits: int  # the memory index above it
    data_bits: int  # the widest memory word

    @classmethod
    def of(cls, design: str, memories) -> "ParameterLayout":
        """The address map of ``memories`` ((name, stage, depth, width), in address order)."""
        entries = tuple(ParameterMemory(name, stage, index, depth, width)
                        for index, (name, stage, depth, width) in enumerate(memories))
        if not entries:
            raise ConfigError(f"{design}: no parameter memory to load")
        return cls(entries, word_bits=max((m.depth - 1).bit_length() for m in entries),
                   index_bits=max(1, (len(entries) - 1).bit_length()),
                   data_bits=max(m.width for m in entries))

    @property
    def addr_bits(self) -> int:
        return self.word_bits + self.index_bits

    def of_stage(self, stage: int) -> tuple[ParameterMemory, ...]:
        return tuple(memory for memory in self.memories if memory.stage == stage)

    def named(self, name: str) -> ParameterMemory:
        return next(memory for memory in self.memories if memory.name == name)

    def port_members(self) -> dict:
        """The parameter port, as members of a ``wiring.Signature`` (all inputs)."""
        return {"param_addr": In(self.addr_bits), "param_data": In(self.data_bits),
                "param_en": In(1)}

    def writes(self, words: list[list[int]]) -> list[tuple[int, int]]:
        """The port's (address, data) writes that store ``words`` (per memory, in address
        order, each memory's words from address 0)."""
        writes = []
        for memory, contents in zip(self.memories, words, strict=True):
            if len(contents) > memory.depth:
                raise ConfigError(f"{memory.name}: {len(contents)} words, the memory holds "
                                  f"{memory.depth}")
            mask = (1 << memory.width) - 1
            writes += [(memory.index << self.word_bits | address, word & mask)
                       for address, word in enumerate(contents)]
        return writes

    def manifest(self, writes: list[tuple[int, int]]) -> dict:
        """The port's description and ``writes`` (hex) for a design's manifest."""
        return {"addr_bits": self.addr_bits, "word_bits": self.word_bits,
                "data_bits": self.data_bits,
                "memories": [{"name": m.name, "index": m.index, "depth": m.depth,
                              "width": m.width} for m in self.memories],
                "writes": [[f"{address:x}", f"{data:x}"] for address, data in writes]}


PORT_NAMES = ("param_addr", "param_data", "param_en")


def registered_port(m, top) -> dict[str, Signal]:
    """``top``'s parameter port registered once (so its fan-out to every memory starts at a
    flip-flop), without a reset: words land while the datapath is held in reset."""
    port = {name: Signal.like(getattr(top, name), name=f"{name}_q", reset_less=True)
            for name in PORT_NAMES}
    m.d.sync += [register.eq(getattr(top, name)) for name, register in port.items()]
    return port


def port_signals(component) -> dict[str, Signal]:
    """A component's own parameter port (its ``param_*`` members), as ``registered_port``
    gives a registered one."""
    return {name: getattr(component, name) for name in PORT_NAMES}


def connect_parameter_write(m, memory, port: dict, entry: ParameterMemory,
                            layout: ParameterLayout) -> None:
    """Give ``memory`` (an Amaranth memory) a write port on the parameter port ``port``
    (``port_signals`` or ``registered_port``)."""
    write = memory.write_port()
    selected = port["param_addr"][layout.word_bits:] == entry.index
    m.d.comb += [write.addr.eq(port["param_addr"][:layout.word_bits]),
                 write.data.eq(port["param_data"][:entry.width]),
                 write.en.eq(port["param_en"] & selected)]


# the simulation loader's batch port, at most this wide (Amaranth's signals stop at 65,536 bits)
PARAMETER_BATCH_BITS = 4096


class ParameterBatchLoader:
    """A simulation harness's parameter loader for a top with a parameter port: the testbench
    sets ``param_batch`` (up to ``batch_writes`` writes, write k's address and data in bits
    [k*w, (k+1)*w), the data above the address) and ``param_batch_size``, pulses
    ``param_batch_start``, and the next ``param_batch_size`` cycles write the batch into the
    top's port, one word per cycle, so Python acts once per batch, not once per word
    (``accel.sim.tbio.load_parameter_batches``)."""

    def __init__(self, top):
        self.address_bits = len(top.param_addr)
        self.write_bits = self.address_bits + len(top.param_data)
        self.batch_writes = max(1, PARAMETER_BATCH_BITS // self.write_bits)

    def members(self) -> dict:
        """The harness's batch port, as signature members."""
        return {"param_batch": In(self.batch_writes * self.write_bits),
                "param_batch_size": In(range(self.batch_writes + 1)),
                "param_batch_start": In(1)}

    def elaborate(self, m, harness, top) -> None:
        """Drive ``top``'s parameter port from ``harness``'s batch port (``members``)."""
        write = Signal(range(max(self.batch_writes, 2)))
        writing = Signal()
        with m.If(harness.param_batch_start):
            m.d.sync += [writing.eq(harness.param_batch_size != 0), write.eq(0)]
        with m.Elif(writing):
            m.d.sync += write.eq(write + 1)
            with m.If(write == harness.param_batch_size - 1):
                m.d.sync += writing.eq(0)
        word = harness.param_batch.word_select(write, self.write_bits)
        m.d.comb += [top.param_addr.eq(word[:self.address_bits]),
                     top.param_data.eq(word[self.address_bits:]),
                     top.param_en.eq(writing)]

    def batches(self, writes: list[tuple[int, int]]) -> list[list[int]]:
        """``writes`` (address, data) as the testbench's batches: [size, packed bits]."""
        batches = []
        for start in range(0, len(writes), self.batch_writes):
            batch = writes[start:start + self.batch_writes]
            batches.append([len(batch), sum(((data << self.address_bits) | address)
                                            << (k * self.write_bits)
                                            for k, (address, data) in enumerate(batch))])
        return batches

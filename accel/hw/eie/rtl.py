"""EIE-style engine for one layer, in Amaranth (timing as specified in ``accel.hw.eie.model``).

- Central control: activations sit in registers (written through a load port); a
  leading-nonzero detector (priority encoder over the nonzero, not yet sent activations)
  broadcasts one (column, value) per cycle to every PE's activation queue, from the cycle after
  the run starts, while every queue has room.
- PE k: activation queue (``StreamFIFO``); column pointers in two banks (even and odd columns)
  so that p_j and p_j+1 are read in the same cycle; CSC entries (4-bit codebook index v, 4-bit
  zero count z) read one per cycle; the 16-entry codebook; multiply by the activation and
  accumulate into the destination row. A column costs max(1, entries) cycles, its first entry
  processed in the cycle its queue entry is popped.
- ``done`` rises in the first cycle after the start in which nothing is pending, every queue is
  empty and every PE is free; ``cycles`` counts the cycles before it.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.common.counters import EventCounterBank
from accel.hw.common.fifo import StreamFIFO, transfer
from accel.hw.eie.mapping import EIELayerMapping
from accel.hw.eie.model import ENTRIES_PER_WORD

EVENTS = ("control.lnzd.broadcast", "pe.act_queue.push", "pe.act_queue.pop",
          "pe.pointer_even.read", "pe.pointer_odd.read", "pe.sparse_sram.read",
          "pe.codebook.read", "pe.mult.mac", "pe.act_regfile.read", "pe.act_regfile.write",
          "pe.idle.cycle")


def event_declarations(mapping: EIELayerMapping) -> dict[str, int]:
    return {name: 1 if name == "control.lnzd.broadcast" else mapping.num_pes for name in EVENTS}


class EIECore(wiring.Component):
    def __init__(self, mapping: EIELayerMapping):
        self.mapping = mapping
        self.counters = EventCounterBank(event_declarations(mapping))
        super().__init__({
            "activations": In(mapping.cols * mapping.activation_bits),
            "done": Out(1),
            "cycles": Out(32),
            "read_pe": In(range(max(mapping.num_pes, 2))),
            "read_row": In(range(max(mapping.local_rows, 2))),
            "read_data": Out(mapping.accumulator_bits),
            "event_counts": Out(len(self.counters.counts)),
        })

    def elaborate(self, platform):
        m = Module()
        mp = self.mapping
        cols, bits, n = mp.cols, mp.activation_bits, mp.num_pes
        m.submodules.counters = counters = self.counters
        activations = Array(self.activations[j * bits:(j + 1) * bits].as_signed()
                            for j in range(cols))

        started = Signal()
        m.d.sync += started.eq(1)
        sent = Signal(cols)
        nonzero = Cat(*(activations[j] != 0 for j in range(cols)))
        pending = nonzero & ~sent
        column = Signal(range(max(cols, 2)))
        for j in reversed(range(cols)):  # the lowest pending column wins
            with m.If(pending[j]):
                m.d.comb += column.eq(j)
        column_bits = len(column)

        queues = [StreamFIFO(column_bits + bits, mp.queue_depth) for _ in range(n)]
        all_ready = Signal()
        m.d.comb += all_ready.eq(Cat(*(q.i.ready for q in queues)).all())
        broadcast = Signal()
        m.d.comb += broadcast.eq(started & pending.any() & all_ready)
        with m.If(broadcast):
            m.d.sync += sent.eq(sent | (Const(1, cols) << column))
        for k, queue in enumerate(queues):
            m.submodules[f"queue{k}"] = queue
            m.d.comb += [queue.i.valid.eq(broadcast),
                         queue.i.payload.eq(Cat(column, activations[column]))]

        pops, processed, word_reads, idle, accumulators = [], [], [], [], []
        for k, queue in enumerate(queues):
            pe = self._pe(m, k, queue, column_bits)
            pops.append(pe["pop"])
            processed.append(pe["process"])
            word_reads.append(pe["word_read"])
            idle.append(pe["idle"])
            accumulators.append(pe["accumulators"])

        queues_empty = Cat(*(q.level == 0 for q in queues)).all()
        pes_busy = Cat(*processed, *pops).any()
        m.d.comb += self.done.eq(started & ~pending.any() & queues_empty & ~pes_busy)
        with m.If(~self.done):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        def total(signals):
            return sum(s.as_unsigned() for s in signals)

        m.d.comb += [
            counters.increment("control.lnzd.broadcast").eq(broadcast),
            counters.increment("pe.act_queue.push").eq(broadcast * n),
            counters.increment("pe.act_queue.pop").eq(total(pops)),
            counters.increment("pe.pointer_even.read").eq(total(pops)),
            counters.increment("pe.pointer_odd.read").eq(total(pops)),
            counters.increment("pe.sparse_sram.read").eq(total(word_reads)),
            counters.increment("pe.codebook.read").eq(total(processed)),
            counters.increment("pe.mult.mac").eq(total(processed)),
            counters.increment("pe.act_regfile.read").eq(total(processed)),
            counters.increment("pe.act_regfile.write").eq(total(processed)),
            counters.increment("pe.idle.cycle").eq(Mux(self.done, 0, total(idle))),
            counters.clear.eq(0),
            self.event_counts.eq(counters.counts),
        ]
        rows = Array(Array(acc) for acc in accumulators)
        m.d.comb += self.read_data.eq(rows[self.read_pe][self.read_row])
        return m

    def _pe(self, m, k, queue, column_bits):
        mp = self.mapping
        matrix = mp.matrix
        pointers = [int(p) for p in matrix.pointers[k]]
        entries = [int(z) << 4 | int(v) for v, z in zip(matrix.v[k], matrix.z[k])]
        even = memory.Memory(shape=32, depth=max(len(pointers[0::2]), 2), init=pointers[0::2])
        odd = memory.Memory(shape=32, depth=max(len(pointers[1::2]), 2), init=pointers[1::2])
        sparse = memory.Memory(shape=8, depth=max(len(entries), 2), init=entries)
        m.submodules[f"pe{k}_pointers_even"] = even
        m.submodules[f"pe{k}_pointers_odd"] = odd
        m.submodules[f"pe{k}_sparse"] = sparse
        even_read = even.read_port(domain="comb")
        odd_read = odd.read_port(domain="comb")
        entry_read = sparse.read_port(domain="comb")

        column = queue.o.payload[:column_bits]
        value = queue.o.payload[column_bits:].as_signed()
        m.d.comb += [even_read.addr.eq((column + 1) >> 1), odd_read.addr.eq(column >> 1)]
        start = Mux(column[0], odd_read.data, even_read.data)
        end = Mux(column[0], even_read.data, odd_read.data)

        remaining = Signal(32, name=f"pe{k}_remaining")
        pointer = Signal(32, name=f"pe{k}_pointer")
        row_base = Signal(range(mp.local_rows + 16), name=f"pe{k}_row_base")
        held = Signal(signed(mp.activation_bits), name=f"pe{k}_activation")
        continuing = remaining != 0
        pop = ~continuing & queue.o.valid
        m.d.comb += queue.o.ready.eq(~continuing)
        has_entries = end != start
        process = continuing | (pop & has_entries)
        entry_address = Mux(continuing, pointer, start)
        m.d.comb += entry_read.addr.eq(entry_address)
        v, z = entry_read.data[:4], entry_read.data[4:]
        row = Signal.like(row_base, name=f"pe{k}_row")
        m.d.comb += row.eq(Mux(continuing, row_base, 0) + z)
        factor = Mux(continuing, held, value)

        codebook = Array(Const(int(c), signed(mp.weight_bits)) for c in mp.codebook)
        accumulators = [Signal(signed(mp.accumulator_bits), name=f"pe{k}_acc{r}")
                        for r in range(max(mp.local_rows, 1))]
        acc_array = Array(accumulators)
        with m.If(process):
            m.d.sync += acc_array[row].eq(acc_array[row] + codebook[v] * factor)
            m.d.sync += [pointer.eq(entry_address + 1), row_base.eq(row + 1)]
        with m.If(continuing):
            m.d.sync += remaining.eq(remaining - 1)
        with m.Elif(pop):
            m.d.sync += [remaining.eq(Mux(has_entries, end - start - 1, 0)), held.eq(value)]
        word_read = process & (~continuing | (pointer % ENTRIES_PER_WORD == 0))
        return {"pop": pop, "process": process, "word_read": word_read,
                "idle": ~process & ~pop, "accumulators": accumulators}


class EIEHarness(wiring.Component):
    """Activations loaded through a port, then ``run`` starts the (reset-held) core."""

    def __init__(self, mapping: EIELayerMapping):
        self.core = EIECore(mapping)
        self.mapping = mapping
        self.counters = self.core.counters
        super().__init__({
            "load_addr": In(range(max(mapping.cols, 2))),
            "load_data": In(mapping.activation_bits),
            "load_en": In(1),
            "run": In(1),
            "done": Out(1),
            "cycles": Out(32),
            "read_pe": In(range(max(mapping.num_pes, 2))),
            "read_row": In(range(max(mapping.local_rows, 2))),
            "read_data": Out(mapping.accumulator_bits),
            "event_counts": Out(len(self.core.counters.counts)),
        })

    def elaborate(self, platform):
        m = Module()
        mp = self.mapping
        m.submodules.core = ResetInserter({"sync": ~self.run})(self.core)
        core = self.core
        registers = [Signal(mp.activation_bits, name=f"activation{j}") for j in range(mp.cols)]
        for j, register in enumerate(registers):
            with m.If(self.load_en & (self.load_addr == j)):
                m.d.sync += register.eq(self.load_data)
        m.d.comb += [
            core.activations.eq(Cat(*registers)),
            self.done.eq(core.done & self.run),
            self.cycles.eq(core.cycles),
            core.read_pe.eq(self.read_pe), core.read_row.eq(self.read_row),
            self.read_data.eq(core.read_data),
            self.event_counts.eq(core.event_counts),
        ]
        return m

"""EIE-style engine in Amaranth (timing as specified in ``accel.hw.eie.model``).

- Source activations: N banks (``amaranth.lib.memory``), column j in bank j mod N at row
  j // N, as EIE distributes them over its PEs, plus one nonzero flag per column (in the
  harness, outside the per-run reset).
- Central control: a leading-nonzero detector (priority encoder over the nonzero, not yet sent
  columns) reads the winner's bank and broadcasts one (column, value) per cycle to every PE's
  activation queue, from the cycle after a layer starts, while every queue has room.
- PE k: activation queue (``StreamFIFO``); column pointers of all layers in two banks (even and
  odd global column numbers) so that p_j and p_j+1 are read in the same cycle; CSC entries
  (4-bit codebook index v, 4-bit zero count z) read one per cycle; the layer's 16-entry
  codebook; multiply by the activation and accumulate into the destination row, an
  accumulator memory read and written in the same cycle (so consecutive entries on the same
  row need no bypass: there is no pipeline to bypass). A row's first accumulation of a layer
  overwrites it (one "touched" bit per row), so accumulators never need clearing.
- A layer is done in the first cycle after its start in which nothing is pending, every queue
  is empty and every PE is free. That cycle clears the nonzero flags; then, one local row per
  cycle, every PE reads its accumulator, adds the bias, applies ReLU and the rounding shift and
  writes the result into its activation bank (the next layer's source) and its nonzero flag.
  The next layer starts in the cycle after the last row. ``done`` rises when the last layer is
  done; ``cycles`` counts the cycles before it.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.common.counters import EventCounterBank
from accel.hw.common.fifo import StreamFIFO
from accel.hw.eie.mapping import EIENetworkMapping, Requantize
from accel.hw.eie.model import ENTRIES_PER_WORD, EVENTS

SINGLE = ("control.lnzd.broadcast",)


def event_declarations(mapping: EIENetworkMapping) -> dict[str, int]:
    return {name: 1 if name in SINGLE else mapping.num_pes for name in EVENTS}


def requantized(acc, bias, rule: Requantize):
    """bias, ReLU, shift right with round-half-to-even, saturate: the golden Quant of a
    power-of-two scale ratio (see accel.nn.golden.round_rational)."""
    total = acc + bias
    relu = Mux(total < 0, 0, total) if rule.relu else total
    shift = rule.shift
    if shift == 0:
        rounded = relu
    else:
        quotient = relu >> shift  # floor division by 2**shift
        remainder = relu[:shift]
        half = 1 << (shift - 1)
        up = (remainder > half) | ((remainder == half) & quotient[0])
        rounded = quotient + up
    lo, hi = rule.range
    return Mux(rounded < lo, lo, Mux(rounded > hi, hi, rounded))


def pe_storage(mapping: EIENetworkMapping, pe: int):
    """PE ``pe``'s column pointers and CSC entries of all layers, each layer's entries starting
    at a word boundary of the sparse-matrix SRAM, and the first pointer of each layer."""
    pointers, entries, bases = [], [], []
    for spec in mapping.layers:
        bases.append(len(pointers))
        entries += [0] * (-len(entries) % ENTRIES_PER_WORD)
        offset = len(entries)
        pointers += [int(p) + offset for p in spec.matrix.pointers[pe]]
        entries += [int(z) << 4 | int(v) for v, z in zip(spec.matrix.v[pe], spec.matrix.z[pe])]
    return pointers, entries, bases


def pointer_bits(mapping: EIENetworkMapping) -> int:
    """EIE's 16-bit pointers, wider only when a PE holds more than 65535 entries."""
    longest = max(len(pe_storage(mapping, k)[1]) for k in range(mapping.num_pes))
    return max(16, longest.bit_length())


class EIECore(wiring.Component):
    def __init__(self, mapping: EIENetworkMapping):
        self.mapping = mapping
        self.counters = EventCounterBank(event_declarations(mapping),
                                         enabled=mapping.count_events)
        n = mapping.num_pes
        ports = {
            "nonzero": In(mapping.max_cols),
            "load_bank": In(range(max(n, 2))),
            "load_row": In(range(max(mapping.bank_rows, 2))),
            "load_data": In(mapping.activation_bits),
            "load_en": In(1),
            "flags_clear": Out(1),
            "writeback_en": Out(1),
            "writeback_row": Out(range(max(mapping.bank_rows, 2))),
            "writeback_nonzero": Out(n),
            "done": Out(1),
            "cycles": Out(32),
            "read_pe": In(range(max(n, 2))),
            "read_row": In(range(max(mapping.max_local_rows, 2))),
            "read_data": Out(mapping.accumulator_bits),
        }
        if mapping.count_events:
            ports["event_counts"] = Out(len(self.counters.counts))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        mp = self.mapping
        cols, bits, n = mp.max_cols, mp.activation_bits, mp.num_pes
        last_layer = len(mp.layers) - 1
        m.submodules.counters = counters = self.counters

        layer = Signal(range(max(len(mp.layers), 2)))
        started = Signal()
        sent = Signal(cols)
        writing = Signal()  # the writeback phase between layers
        row = Signal(range(max(mp.bank_rows, 2)))  # the row being written back
        m.d.sync += started.eq(~writing)

        pending = self.nonzero & ~sent
        column = Signal(range(max(cols, 2)))
        bank = Signal(range(max(n, 2)))
        bank_row = Signal(range(max(mp.bank_rows, 2)))
        for j in reversed(range(cols)):  # the lowest pending column wins
            with m.If(pending[j]):
                m.d.comb += [column.eq(j), bank.eq(j % n), bank_row.eq(j // n)]
        banks = [memory.Memory(shape=bits, depth=max(mp.bank_rows, 2), init=[])
                 for _ in range(n)]
        bank_reads = []
        for k, activations in enumerate(banks):
            m.submodules[f"act_bank{k}"] = activations
            read = activations.read_port(domain="comb")
            m.d.comb += read.addr.eq(bank_row)
            bank_reads.append(read.data)
        value = Array(bank_reads)[bank]

        queues = [StreamFIFO(len(column) + bits, mp.queue_depth) for _ in range(n)]
        broadcast = Signal()
        m.d.comb += broadcast.eq(started & ~writing & pending.any()
                                 & Cat(*(q.i.ready for q in queues)).all())
        with m.If(broadcast):
            m.d.sync += sent.eq(sent | (Const(1, cols) << column))
        for k, queue in enumerate(queues):
            m.submodules[f"queue{k}"] = queue
            m.d.comb += [queue.i.valid.eq(broadcast),
                         queue.i.payload.eq(Cat(column, value))]

        pes = [self._pe(m, k, queue, len(column), layer) for k, queue in enumerate(queues)]
        pops = [pe["pop"] for pe in pes]
        processed = [pe["process"] for pe in pes]
        queues_empty = Cat(*(q.level == 0 for q in queues)).all()
        layer_done = Signal()
        m.d.comb += layer_done.eq(started & ~writing & ~pending.any() & queues_empty
                                  & ~Cat(*processed, *pops).any())
        m.d.comb += self.done.eq(layer_done & (layer == last_layer))
        with m.If(~self.done):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        # between layers: clear the flags, then write the requantized rows back, one per cycle
        rows_written = Array(Const(mp.layers[index].local_rows - 1, len(row))
                             for index in range(len(mp.requantize) or 1))
        last_row = writing & (row == rows_written[layer])
        m.d.comb += self.flags_clear.eq(layer_done & (layer != last_layer))
        with m.If(self.flags_clear):
            m.d.sync += [writing.eq(1), row.eq(0), sent.eq(0)]
        with m.If(writing):
            m.d.sync += row.eq(row + 1)
        with m.If(last_row):
            m.d.sync += [writing.eq(0), layer.eq(layer + 1)]
        for pe in pes:
            pe["writeback"](writing, row, last_row)
        m.d.comb += [self.writeback_en.eq(writing), self.writeback_row.eq(row),
                     self.writeback_nonzero.eq(Cat(*(pe["written"] != 0 for pe in pes)))]

        for k, activations in enumerate(banks):
            write = activations.write_port()
            loading = self.load_en & (self.load_bank == k)
            m.d.comb += [write.en.eq(writing | loading),
                         write.addr.eq(Mux(writing, row, self.load_row)),
                         write.data.eq(Mux(writing, pes[k]["written"], self.load_data))]

        def total(signals):
            return sum(s.as_unsigned() for s in signals)

        m.d.comb += [
            counters.increment("control.lnzd.broadcast").eq(broadcast),
            counters.increment("pe.act_bank.write").eq(Mux(writing, n, 0)),
            counters.increment("pe.act_queue.push").eq(broadcast * n),
            counters.increment("pe.act_queue.pop").eq(total(pops)),
            counters.increment("pe.pointer_even.read").eq(total(pops)),
            counters.increment("pe.pointer_odd.read").eq(total(pops)),
            counters.increment("pe.sparse_sram.read").eq(total(pe["word_read"] for pe in pes)),
            counters.increment("pe.codebook.read").eq(total(processed)),
            counters.increment("pe.mult.mac").eq(total(processed)),
            counters.increment("pe.act_regfile.read").eq(total(processed)),
            counters.increment("pe.act_regfile.write").eq(total(processed)),
            counters.increment("pe.idle.cycle").eq(
                Mux(layer_done | writing, 0, total(pe["idle"] for pe in pes))),
        ]
        if mp.count_events:
            m.d.comb += [counters.clear.eq(0), self.event_counts.eq(counters.counts)]
        m.d.comb += self.read_data.eq(Array(pe["readout"] for pe in pes)[self.read_pe])
        return m

    def _pe(self, m, k, queue, column_bits, layer):
        mp = self.mapping
        pointers, entries, bases = pe_storage(mp, k)
        width = pointer_bits(mp)
        even = memory.Memory(shape=width, depth=max(len(pointers[0::2]), 2),
                             init=pointers[0::2])
        odd = memory.Memory(shape=width, depth=max(len(pointers[1::2]), 2), init=pointers[1::2])
        sparse = memory.Memory(shape=8, depth=max(len(entries), 2), init=entries)
        local_rows = max(mp.max_local_rows, 2)
        accumulators = memory.Memory(shape=signed(mp.accumulator_bits), depth=local_rows,
                                     init=[])
        m.submodules[f"pe{k}_pointers_even"] = even
        m.submodules[f"pe{k}_pointers_odd"] = odd
        m.submodules[f"pe{k}_sparse"] = sparse
        m.submodules[f"pe{k}_accumulators"] = accumulators
        even_read = even.read_port(domain="comb")
        odd_read = odd.read_port(domain="comb")
        entry_read = sparse.read_port(domain="comb")
        acc_read = accumulators.read_port(domain="comb")
        acc_write = accumulators.write_port()

        column = queue.o.payload[:column_bits]
        value = queue.o.payload[column_bits:].as_signed()
        global_column = Signal(range(max(len(pointers), 2)), name=f"pe{k}_global_column")
        m.d.comb += global_column.eq(column + Array(Const(b) for b in bases)[layer])
        m.d.comb += [even_read.addr.eq((global_column + 1) >> 1),
                     odd_read.addr.eq(global_column >> 1)]
        start = Mux(global_column[0], odd_read.data, even_read.data)
        end = Mux(global_column[0], even_read.data, odd_read.data)

        remaining = Signal(width, name=f"pe{k}_remaining")
        pointer = Signal(width, name=f"pe{k}_pointer")
        row_base = Signal(range(local_rows + 16), name=f"pe{k}_row_base")
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

        codebooks = Array(Array(Const(int(c), signed(spec.weight_bits)) for c in spec.codebook)
                          for spec in mp.layers)
        touched = Signal(local_rows, name=f"pe{k}_touched")
        address = Signal(range(local_rows), name=f"pe{k}_acc_address")
        stored = Mux(touched.bit_select(address, 1), acc_read.data, 0)
        m.d.comb += [acc_read.addr.eq(address),
                     acc_write.addr.eq(row),
                     acc_write.en.eq(process),
                     acc_write.data.eq(stored + codebooks[layer][v] * factor)]
        with m.If(process):
            m.d.sync += [touched.bit_select(row, 1).eq(1),
                         pointer.eq(entry_address + 1), row_base.eq(row + 1)]
        with m.If(continuing):
            m.d.sync += remaining.eq(remaining - 1)
        with m.Elif(pop):
            m.d.sync += [remaining.eq(Mux(has_entries, end - start - 1, 0)), held.eq(value)]
        word_read = process & (~continuing | (pointer % ENTRIES_PER_WORD == 0))

        bias_init, bias_bases = [], []
        for index in range(len(mp.requantize)):
            spec = mp.layers[index]
            bias_bases.append(len(bias_init))
            bias = mp.requantize[index].bias
            bias_init += [int(bias[r * mp.num_pes + k]) if r * mp.num_pes + k < spec.rows else 0
                          for r in range(spec.local_rows)]
        written = Signal(mp.activation_bits, name=f"pe{k}_written")
        readout_row = Signal(range(local_rows), name=f"pe{k}_readout_row")

        def writeback(writing, wb_row, last_row):
            m.d.comb += [address.eq(Mux(writing, wb_row,
                                        Mux(process, row, self.read_row))),
                         readout_row.eq(address)]
            if not mp.requantize:
                return
            biases = memory.Memory(shape=signed(mp.accumulator_bits),
                                   depth=max(len(bias_init), 2), init=bias_init)
            m.submodules[f"pe{k}_bias"] = biases
            bias_read = biases.read_port(domain="comb")
            m.d.comb += bias_read.addr.eq(
                wb_row + Array(Const(b, len(bias_read.addr)) for b in bias_bases)[layer])
            rules = Array(requantized(stored, bias_read.data, rule)[:mp.activation_bits]
                          for rule in mp.requantize)
            m.d.comb += written.eq(rules[layer])
            with m.If(last_row):
                m.d.sync += touched.eq(0)

        return {"pop": pop, "process": process, "word_read": word_read,
                "idle": ~process & ~pop, "readout": stored, "written": written,
                "writeback": writeback}


class EIEHarness(wiring.Component):
    """The engine with its nonzero flags: activations are loaded through a port (bank, row),
    then ``run`` starts the (reset-held) core; ``read_pe``/``read_row`` read the last layer's
    accumulators once ``done``."""

    def __init__(self, mapping: EIENetworkMapping):
        self.core = EIECore(mapping)
        self.mapping = mapping
        self.counters = self.core.counters
        n = mapping.num_pes
        ports = {
            "load_bank": In(range(max(n, 2))),
            "load_row": In(range(max(mapping.bank_rows, 2))),
            "load_data": In(mapping.activation_bits),
            "load_en": In(1),
            "run": In(1),
            "done": Out(1),
            "cycles": Out(32),
            "read_pe": In(range(max(n, 2))),
            "read_row": In(range(max(mapping.max_local_rows, 2))),
            "read_data": Out(mapping.accumulator_bits),
        }
        if mapping.count_events:
            ports["event_counts"] = Out(len(self.core.counters.counts))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        mp = self.mapping
        n = mp.num_pes
        m.submodules.core = ResetInserter({"sync": ~self.run})(self.core)
        core = self.core
        flags = Signal(mp.max_cols)
        with m.If(core.flags_clear & self.run):
            m.d.sync += flags.eq(0)
        for j in range(mp.max_cols):
            bank, bank_row = j % n, j // n
            with m.If(core.writeback_en & self.run & (core.writeback_row == bank_row)):
                m.d.sync += flags[j].eq(core.writeback_nonzero[bank])
            with m.Elif(self.load_en & (self.load_bank == bank) & (self.load_row == bank_row)):
                m.d.sync += flags[j].eq(self.load_data != 0)
        m.d.comb += [
            core.nonzero.eq(flags),
            core.load_bank.eq(self.load_bank), core.load_row.eq(self.load_row),
            core.load_data.eq(self.load_data), core.load_en.eq(self.load_en & ~self.run),
            self.done.eq(core.done & self.run),
            self.cycles.eq(core.cycles),
            core.read_pe.eq(self.read_pe), core.read_row.eq(self.read_row),
            self.read_data.eq(core.read_data),
        ]
        if mp.count_events:
            m.d.comb += self.event_counts.eq(core.event_counts)
        return m

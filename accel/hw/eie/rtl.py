"""EIE-style engine in Amaranth (timing as specified in ``accel.hw.eie.model``).

- Central control: activations sit in registers (the harness loads them; between layers the
  engine writes them back: the ping-pong buffer); a leading-nonzero detector (priority encoder
  over the nonzero, not yet sent activations) broadcasts one (column, value) per cycle to every
  PE's activation queue, from the cycle after a layer starts, while every queue has room.
- PE k: activation queue (``StreamFIFO``); column pointers of all layers in two banks (even and
  odd global column numbers) so that p_j and p_j+1 are read in the same cycle; CSC entries
  (4-bit codebook index v, 4-bit zero count z) read one per cycle; the layer's 16-entry
  codebook; multiply by the activation and accumulate into the destination row. A column costs
  max(1, entries) cycles, its first entry processed in the cycle its queue entry is popped.
- A layer is done in the first cycle after its start in which nothing is pending, every queue
  is empty and every PE is free. In that cycle every row goes through bias, ReLU and the
  rounding shift into the activation registers, and the next layer starts in the next cycle.
  ``done`` rises when the last layer is done; ``cycles`` counts the cycles before it.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.common.counters import EventCounterBank
from accel.hw.common.fifo import StreamFIFO
from accel.hw.eie.mapping import EIENetworkMapping, Requantize
from accel.hw.eie.model import ENTRIES_PER_WORD, EVENTS

SINGLE = ("control.lnzd.broadcast", "control.writeback")


def event_declarations(mapping: EIENetworkMapping) -> dict[str, int]:
    return {name: 1 if name in SINGLE else mapping.num_pes for name in EVENTS}


def requantized(acc, bias: int, rule: Requantize):
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
    lo, hi = -(1 << (rule.bits - 1)), (1 << (rule.bits - 1)) - 1
    return Mux(rounded < lo, lo, Mux(rounded > hi, hi, rounded))


class EIECore(wiring.Component):
    def __init__(self, mapping: EIENetworkMapping):
        self.mapping = mapping
        self.counters = EventCounterBank(event_declarations(mapping))
        width = mapping.max_cols * mapping.activation_bits
        super().__init__({
            "activations": In(width),
            "writeback_en": Out(1),
            "writeback_data": Out(width),
            "done": Out(1),
            "cycles": Out(32),
            "read_pe": In(range(max(mapping.num_pes, 2))),
            "read_row": In(range(max(mapping.max_local_rows, 2))),
            "read_data": Out(mapping.accumulator_bits),
            "event_counts": Out(len(self.counters.counts)),
        })

    def elaborate(self, platform):
        m = Module()
        mp = self.mapping
        cols, bits, n = mp.max_cols, mp.activation_bits, mp.num_pes
        last_layer = len(mp.layers) - 1
        m.submodules.counters = counters = self.counters
        activations = Array(self.activations[j * bits:(j + 1) * bits].as_signed()
                            for j in range(cols))

        layer = Signal(range(max(len(mp.layers), 2)))
        started = Signal()
        sent = Signal(cols)
        layer_done = Signal()
        m.d.sync += started.eq(1)
        nonzero = Cat(*(activations[j] != 0 for j in range(cols)))
        pending = nonzero & ~sent
        column = Signal(range(max(cols, 2)))
        for j in reversed(range(cols)):  # the lowest pending column wins
            with m.If(pending[j]):
                m.d.comb += column.eq(j)
        column_bits = len(column)

        queues = [StreamFIFO(column_bits + bits, mp.queue_depth) for _ in range(n)]
        broadcast = Signal()
        m.d.comb += broadcast.eq(started & pending.any()
                                 & Cat(*(q.i.ready for q in queues)).all())
        with m.If(broadcast):
            m.d.sync += sent.eq(sent | (Const(1, cols) << column))
        for k, queue in enumerate(queues):
            m.submodules[f"queue{k}"] = queue
            m.d.comb += [queue.i.valid.eq(broadcast),
                         queue.i.payload.eq(Cat(column, activations[column]))]

        writeback = Signal()
        pes = [self._pe(m, k, queue, column_bits, layer, writeback) for k, queue in
               enumerate(queues)]
        pops = [pe["pop"] for pe in pes]
        processed = [pe["process"] for pe in pes]
        queues_empty = Cat(*(q.level == 0 for q in queues)).all()
        m.d.comb += layer_done.eq(started & ~pending.any() & queues_empty
                                  & ~Cat(*processed, *pops).any())
        m.d.comb += self.done.eq(layer_done & (layer == last_layer))
        with m.If(~self.done):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        # between layers: write the requantized rows back and start the next layer
        m.d.comb += [writeback.eq(layer_done & (layer != last_layer)),
                     self.writeback_en.eq(writeback)]
        with m.If(writeback):
            m.d.sync += [layer.eq(layer + 1), started.eq(0), sent.eq(0)]
        rows_by_layer = []
        for index, rule in enumerate(mp.requantize):
            spec = mp.layers[index]
            values = []
            for row in range(cols):
                if row < spec.rows:
                    acc = pes[row % n]["accumulators"][row // n]
                    value = requantized(acc, int(rule.bias[row]), rule)
                    values.append(value[:bits])
                else:
                    values.append(Const(0, bits))
            rows_by_layer.append(Cat(*values))
        if rows_by_layer:
            m.d.comb += self.writeback_data.eq(Array(rows_by_layer)[layer])

        def total(signals):
            return sum(s.as_unsigned() for s in signals)

        m.d.comb += [
            counters.increment("control.lnzd.broadcast").eq(broadcast),
            counters.increment("control.writeback").eq(writeback),
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
                Mux(layer_done, 0, total(pe["idle"] for pe in pes))),
            counters.clear.eq(0),
            self.event_counts.eq(counters.counts),
        ]
        rows = Array(Array(pe["accumulators"]) for pe in pes)
        m.d.comb += self.read_data.eq(rows[self.read_pe][self.read_row])
        return m

    def _pe(self, m, k, queue, column_bits, layer, writeback):
        mp = self.mapping
        pointers, entries, bases = [], [], []
        for spec in mp.layers:
            bases.append(len(pointers))
            # each layer's entries start at a word boundary of the sparse-matrix SRAM
            entries += [0] * (-len(entries) % ENTRIES_PER_WORD)
            offset = len(entries)
            pointers += [int(p) + offset for p in spec.matrix.pointers[k]]
            entries += [int(z) << 4 | int(v) for v, z in zip(spec.matrix.v[k], spec.matrix.z[k])]
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
        global_column = Signal(32, name=f"pe{k}_global_column")
        m.d.comb += global_column.eq(column + Array(Const(b, 32) for b in bases)[layer])
        m.d.comb += [even_read.addr.eq((global_column + 1) >> 1),
                     odd_read.addr.eq(global_column >> 1)]
        start = Mux(global_column[0], odd_read.data, even_read.data)
        end = Mux(global_column[0], even_read.data, odd_read.data)

        local_rows = mp.max_local_rows
        remaining = Signal(32, name=f"pe{k}_remaining")
        pointer = Signal(32, name=f"pe{k}_pointer")
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
        accumulators = [Signal(signed(mp.accumulator_bits), name=f"pe{k}_acc{r}")
                        for r in range(max(local_rows, 1))]
        acc_array = Array(accumulators)
        with m.If(writeback):  # the next layer starts from zero
            m.d.sync += [acc.eq(0) for acc in accumulators]
        with m.Elif(process):
            m.d.sync += acc_array[row].eq(acc_array[row] + codebooks[layer][v] * factor)
        with m.If(process):
            m.d.sync += [pointer.eq(entry_address + 1), row_base.eq(row + 1)]
        with m.If(continuing):
            m.d.sync += remaining.eq(remaining - 1)
        with m.Elif(pop):
            m.d.sync += [remaining.eq(Mux(has_entries, end - start - 1, 0)), held.eq(value)]
        word_read = process & (~continuing | (pointer % ENTRIES_PER_WORD == 0))
        return {"pop": pop, "process": process, "word_read": word_read,
                "idle": ~process & ~pop, "accumulators": accumulators}


class EIEHarness(wiring.Component):
    """Activations loaded through a port, then ``run`` starts the (reset-held) core; between
    layers the core writes the activation registers."""

    def __init__(self, mapping: EIENetworkMapping):
        self.core = EIECore(mapping)
        self.mapping = mapping
        self.counters = self.core.counters
        super().__init__({
            "load_addr": In(range(max(mapping.max_cols, 2))),
            "load_data": In(mapping.activation_bits),
            "load_en": In(1),
            "run": In(1),
            "done": Out(1),
            "cycles": Out(32),
            "read_pe": In(range(max(mapping.num_pes, 2))),
            "read_row": In(range(max(mapping.max_local_rows, 2))),
            "read_data": Out(mapping.accumulator_bits),
            "event_counts": Out(len(self.core.counters.counts)),
        })

    def elaborate(self, platform):
        m = Module()
        mp = self.mapping
        bits = mp.activation_bits
        m.submodules.core = ResetInserter({"sync": ~self.run})(self.core)
        core = self.core
        registers = [Signal(bits, name=f"activation{j}") for j in range(mp.max_cols)]
        for j, register in enumerate(registers):
            with m.If(core.writeback_en & self.run):
                m.d.sync += register.eq(core.writeback_data[j * bits:(j + 1) * bits])
            with m.Elif(self.load_en & (self.load_addr == j)):
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

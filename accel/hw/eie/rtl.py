"""EIE-style engine in Amaranth (timing as specified in ``accel.hw.eie.model``).

- Source activations: N banks (``amaranth.lib.memory``), column j in bank j mod N at row
  j // N, as EIE distributes them over its PEs, plus one nonzero flag per column (in the
  harness, outside the per-run reset).
- Central control: a leading-nonzero detector (``LeadingNonzeroDetector``: the lowest nonzero,
  not yet sent column, as a one-hot word, found group by group) selects one column per cycle
  from the cycle after a layer starts, while every queue has room for it and for the columns
  in flight; the one-hot choice is registered, encoded into the column's number, bank and
  bank row and registered, then turned into its pointer-bank addresses (``PointerPair``) while
  its value is read from its bank, relayed to a copy beside every PE and pushed into every
  PE's activation queue (``BROADCAST_STAGES``).
- Across the die: on an FPGA the PEs spread over the die with their block RAMs (``accel
  synth`` places each PE's together), so no path runs from control logic across the die into
  a PE's logic or back. Each PE reads the broadcast, the layer and the writeback's control
  from copies of its own (``per_pe``); it reports its queue's pops and its quiet state as
  registered flags, which the control combines.
- PE k (see the model for the timing):
  front end: activation queue (``StreamFIFO`` with a registered head) -> a one-column slot,
  loaded while the column pointers are read from two synchronous SRAM banks (even and odd
  global column numbers, so that p_j and p_j+1 come out together; each pointer stored with
  two flags of its column, ``pointer_words``);
  issue: one CSC entry address per cycle; a 64-bit word of 8 entries (4-bit codebook index v,
  4-bit zero count z) is read from the synchronous sparse-matrix SRAM for a column's first entry
  and whenever an entry starts a new word;
  execute, five register stages (``PIPELINE_TAIL``): the word is registered; the entry is picked
  from it; its row is found and the layer's 16-entry codebook value looked up; the codebook value
  is multiplied by the activation while the destination row of the accumulator register file
  is read; the product is added and the sum written back. An entry whose row the entry ahead
  of it writes in the same cycle takes that sum through a bypass instead of the stale read. A
  row's first accumulation of a layer starts from zero (one "touched" bit per row), so
  accumulators never need clearing.
- A layer is done ``DONE_LATENCY`` cycles after the first in which nothing is pending or in
  flight, every queue is empty and every PE is free. That cycle clears the nonzero flags; then, one
  local row per cycle, every PE reads its accumulator and, ``WRITEBACK_LATENCY`` register stages
  later (bias added; ReLU and the rounding shift; saturation), writes the result into its
  activation bank (the next layer's source) and its nonzero flag. The next layer starts in the
  cycle after the last row is written. ``done`` rises when the last layer is done; ``cycles``
  counts the cycles before it.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.hw.common.counters import EventCounterBank
from accel.hw.common.fifo import StreamFIFO
from accel.hw.common.memory import placed_memory
from accel.hw.common.parameters import (ParameterBatchLoader, connect_parameter_write,
                                        registered_port)
from accel.hw.eie.mapping import CODEBOOK_ENTRIES, EIENetworkMapping, Requantize
from accel.hw.eie.model import (BROADCAST_STAGES, DONE_LATENCY, ENTRY_BITS, EVENTS,
                                WRITEBACK_LATENCY, layer_event)

SINGLE = ("control.lnzd.broadcast",)


def event_declarations(mapping: EIENetworkMapping) -> dict[str, int]:
    return {layer_event(index, name): 1 if name in SINGLE else mapping.num_pes
            for index in range(len(mapping.layers)) for name in EVENTS}


def requantized(acc, bias, rule: Requantize):
    """bias, ReLU, shift right with round-half-to-even, saturate: the golden Quant of a
    power-of-two scale ratio (see accel.nn.golden.round_rational). The engine computes the
    same in three register stages: the sum, then ``rounded``, then ``saturated``."""
    return saturated(rounded(acc + bias, rule), rule)


def rounded(total, rule: Requantize):
    """ReLU, then the shift right with round-half-to-even."""
    relu = Mux(total < 0, 0, total) if rule.relu else total
    shift = rule.shift
    if shift == 0:
        return relu
    quotient = relu >> shift  # floor division by 2**shift
    remainder = relu[:shift]
    half = 1 << (shift - 1)
    up = (remainder > half) | ((remainder == half) & quotient[0])
    return quotient + up


def saturated(value, rule: Requantize):
    lo, hi = rule.range
    return Mux(value < lo, lo, Mux(value > hi, hi, value))


def pe_storage(mapping: EIENetworkMapping, pe: int):
    """PE ``pe``'s column pointers and CSC entries of all layers, each layer's entries starting
    at a word boundary of the sparse-matrix SRAM, and the first pointer of each layer."""
    pointers, entries, bases = [], [], []
    for spec in mapping.layers:
        bases.append(len(pointers))
        entries += [0] * (-len(entries) % mapping.entries_per_word)
        offset = len(entries)
        pointers += [int(p) + offset for p in spec.matrix.pointers[pe]]
        entries += [int(z) << 4 | int(v) for v, z in zip(spec.matrix.v[pe], spec.matrix.z[pe])]
    return pointers, entries, bases


POINTER_FLAG_BITS = 2  # beside each pointer: its column has no entries; it has exactly one


def bias_words(mapping: EIENetworkMapping, pe: int) -> tuple[list[int], list[int]]:
    """PE ``pe``'s bias ROM: each requantized layer's biases of the PE's local rows, in layer
    order, and where each layer's biases start."""
    words, bases = [], []
    for spec, rule in zip(mapping.layers, mapping.requantize):
        bases.append(len(words))
        words += [int(rule.bias[r * mapping.num_pes + pe])
                  if r * mapping.num_pes + pe < spec.rows else 0 for r in range(spec.local_rows)]
    return words, bases


def pointer_words(mapping: EIENetworkMapping, pe: int) -> list[int]:
    """PE ``pe``'s pointer-bank words: each pointer p_g with two flags of the column g it
    starts (none of its entries in this PE; exactly one), computed here so that the issue stage
    decides from flip-flops, not from a subtract of the pointer pair, whether a column has
    entries and whether it continues. A layer's last pointer starts no column: flags 0."""
    pointers, _, bases = pe_storage(mapping, pe)
    width = pointer_bits(mapping)
    ends = set(b - 1 for b in bases[1:]) | {len(pointers) - 1}
    words = []
    for g, pointer in enumerate(pointers):
        count = None if g in ends else pointers[g + 1] - pointer
        words.append(pointer | (count == 0) << width | (count == 1) << (width + 1))
    return words


def pointer_bits(mapping: EIENetworkMapping) -> int:
    """EIE's 16-bit pointers, wider only when a PE's sparse-matrix SRAM holds more than 65535
    entries."""
    return max(16, mapping.sparse_entries.bit_length())


def sparse_words(mapping: EIENetworkMapping, pe: int) -> list[int]:
    """PE ``pe``'s sparse-matrix SRAM words (``pe_storage``'s entries, entry j of a word in
    bits [j*ENTRY_BITS, (j+1)*ENTRY_BITS))."""
    _, entries, _ = pe_storage(mapping, pe)
    per_word = mapping.entries_per_word
    return [sum(entry << (ENTRY_BITS * j) for j, entry in enumerate(entries[w:w + per_word]))
            for w in range(0, len(entries), per_word)]


def sparse_depth(mapping: EIENetworkMapping, pe: int) -> int:
    """Words of PE ``pe``'s sparse-matrix SRAM as built: a loadable engine's capacity, else
    its own network's words."""
    return max(mapping.sparse_capacity // mapping.entries_per_word,
               -(-mapping.stored_entries()[pe] // mapping.entries_per_word), 2)


def codebook_words(mapping: EIENetworkMapping) -> list[int]:
    """Every layer's codebook, layer l's entry v at l * CODEBOOK_ENTRIES + v: a loadable
    engine's codebook memory (a fixed engine's codebooks are constants in its logic)."""
    return [int(value) for spec in mapping.layers for value in spec.codebook]


def codebook_bits(mapping: EIENetworkMapping) -> int:
    return max(spec.weight_bits for spec in mapping.layers)


def outer_ports(mapping: EIENetworkMapping, counters: EventCounterBank) -> dict:
    """The ports the core and the harness share: loading, status, readout, counters."""
    n = mapping.num_pes
    ports = {
        "load_bank": In(range(max(n, 2))),
        "load_row": In(range(max(mapping.bank_rows, 2))),
        "load_data": In(mapping.activation_bits),
        "load_en": In(1),
        "done": Out(1),
        "cycles": Out(32),
        "read_pe": In(range(max(n, 2))),
        "read_row": In(range(max(mapping.max_local_rows, 2))),
        "read_data": Out(mapping.accumulator_bits),
    }
    if mapping.count_events:
        ports["event_counts"] = Out(len(counters.counts))
    return ports



LNZD_GROUP = 16  # columns per group of the leading-nonzero detector


class LeadingNonzeroDetector:
    """EIE's leading-nonzero detector, hierarchical: the columns not yet sent, in groups of
    ``LNZD_GROUP``, as registers (``pending``, loaded from the nonzero flags as a layer starts)
    with a register per group saying whether it has any. ``winner`` is the lowest pending
    column as a one-hot word: the lowest group with any wins (a prefix-OR of the group flags),
    and in each group its lowest column (a prefix-OR of the group's bits). Taking the winner
    clears its bit and, if it was its group's only one, the group's flag, both computed from
    the registers alone, so the select-and-clear loop is a few LUT levels for any width; every
    prefix is one reduction of a slice, so the Verilog grows linearly with the columns."""

    def __init__(self, m, columns: int, group: int = LNZD_GROUP):
        self.pending = Signal(columns, name="lnzd_pending")
        groups = -(-columns // group)
        self.group_any = Signal(groups, name="lnzd_group_any")
        self.winner = Signal(columns, name="lnzd_winner")
        self._spans = [range(g * group, min((g + 1) * group, columns)) for g in range(groups)]
        self._wins = Signal(groups, name="lnzd_group_wins")
        self._more = Signal(groups, name="lnzd_group_more")  # more than one pending column
        for g, span in enumerate(self._spans):
            m.d.comb += self._wins[g].eq(self.group_any[g] & ~self.group_any[:g].any()
                                         if g else self.group_any[0])
            below = [self.pending[span.start:j].any() if j > span.start else Const(0)
                     for j in span]
            m.d.comb += [self.winner[j].eq(self.pending[j] & ~lower & self._wins[g])
                         for j, lower in zip(span, below)]
            m.d.comb += self._more[g].eq(Cat(*(self.pending[j] & lower
                                               for j, lower in zip(span, below))).any())

    def load(self, m, flags):
        m.d.sync += [self.pending.eq(flags),
                     self.group_any.eq(Cat(*(flags[span.start:span.stop].any()
                                             for span in self._spans)))]

    def take(self, m):
        m.d.sync += [self.pending.eq(self.pending & ~self.winner),
                     self.group_any.eq((self.group_any & ~self._wins)
                                       | (self._wins & self._more))]


class PointerPair:
    """A column's pointer-bank addresses: whether its global number g (column plus the layer's
    first pointer) is odd, and the addresses of its pointers p_g and p_g+1 in the even and odd
    banks, (g + 1) // 2 and g // 2, computed once centrally, so no adder sits before a PE's
    pointer banks."""

    def __init__(self, even_depth: int, odd_depth: int):
        self.address_bits = ((even_depth - 1).bit_length(), (odd_depth - 1).bit_length())
        self.width = 1 + sum(self.address_bits)

    @classmethod
    def of(cls, mapping: EIENetworkMapping) -> "PointerPair":
        """The pair for ``mapping``: every PE stores cols + 1 pointers per layer, so the
        pointer banks, and the layers' first pointers, are the same in every PE."""
        pointers = pe_storage(mapping, 0)[0]
        return cls(max(-(-len(pointers) // 2), 2), max(len(pointers) // 2, 2))

    def fields(self, payload):
        even_bits, odd_bits = self.address_bits
        return payload[0], payload[1:1 + even_bits], payload[1 + even_bits:self.width]


class QueuedColumn:
    """A column as a PE's activation queue holds it: its first pointer p_g with the column's
    flags (``pointer_words``), its end p_g+1, and its activation. The pointers are read into
    the queue as the column is pushed, so the issue stage works from the queue's head register
    and no block-RAM read sits in front of its logic."""

    def __init__(self, mapping: EIENetworkMapping):
        self.pointer_bits = pointer_bits(mapping)
        self.first_bits = self.pointer_bits + POINTER_FLAG_BITS
        self.width = self.first_bits + self.pointer_bits + mapping.activation_bits

    def fields(self, payload):
        """(first pointer word, end pointer, activation as signed)."""
        end_at = self.first_bits + self.pointer_bits
        return (payload[:self.first_bits], payload[self.first_bits:end_at],
                payload[end_at:self.width].as_signed())


class EIECore(wiring.Component):
    """The engine (module documentation); with loadable weights, the parameter port
    (``param_*``, ``accel.hw.eie.loading``), registered once inside without a reset."""

    def __init__(self, mapping: EIENetworkMapping):
        # the loading module reads this module's word layouts, so it is imported here
        from accel.hw.eie.loading import parameter_layout

        self.mapping = mapping
        self.counters = EventCounterBank(event_declarations(mapping),
                                         enabled=mapping.count_events)
        self.layout = parameter_layout(mapping) if mapping.loadable_weights else None
        super().__init__({
            **outer_ports(mapping, self.counters),
            **(self.layout.port_members() if self.layout else {}),
            "nonzero": In(mapping.max_cols),
            "flags_clear": Out(1),
            "writeback_en": Out(1),
            "writeback_row": Out(range(max(mapping.bank_rows, 2))),
            "writeback_nonzero": Out(mapping.num_pes),
        })

    def _parameter_memory(self, m, name: str, **kwargs):
        """A weight-like memory (``accel.hw.eie.loading``), writable through the parameter
        port if the engine is loadable."""
        memory = placed_memory(writable=self.layout is not None, **kwargs)
        m.submodules[name] = memory
        if self.layout is not None:
            connect_parameter_write(m, memory, self._port, self.layout.named(name),
                                    self.layout)
        return memory

    def elaborate(self, platform):
        m = Module()
        mp = self.mapping
        cols, bits, n = mp.max_cols, mp.activation_bits, mp.num_pes
        self._port = registered_port(m, self) if self.layout else None
        last_layer = len(mp.layers) - 1
        m.submodules.counters = counters = self.counters

        # (``keep``: the central registers that every PE has a copy of (``per_pe``) stay
        # central, not merged into one PE's copy)
        layer = Signal(range(max(len(mp.layers), 2)), attrs={"keep": 1})
        started = Signal()
        writing = Signal(attrs={"keep": 1})  # between layers: the rows are read for writeback
        draining = Signal(range(WRITEBACK_LATENCY + 1))  # then the last rows reach the banks
        between = Signal()
        m.d.comb += between.eq(writing | (draining != 0))
        row = Signal(range(max(mp.bank_rows, 2)), attrs={"keep": 1})  # read for writeback
        m.d.sync += started.eq(~between)
        # the layer sequencing as next values (assigned below), so that every PE can have its
        # own copies of what it reads of it (``per_pe``)
        layer_next, writing_next = Signal.like(layer), Signal()
        row_next, draining_next = Signal.like(row), Signal.like(draining)
        m.d.sync += [layer.eq(layer_next), writing.eq(writing_next), row.eq(row_next),
                     draining.eq(draining_next)]

        def per_pe(name, next_value, shape):
            """A register per PE loaded with ``next_value``: each PE reads a control signal
            from its own flip-flop, which the placer puts beside it, so a control register
            drives flip-flops across the die and never logic (``keep`` stops synthesis from
            merging the copies back into one)."""
            copies = [Signal(shape, name=f"pe{k}_{name}", attrs={"keep": 1}) for k in range(n)]
            m.d.sync += [copy.eq(next_value) for copy in copies]
            return copies

        detector = LeadingNonzeroDetector(m, cols)
        any_pending = Signal()  # from the group flags: 16 times fewer inputs than the columns
        m.d.comb += any_pending.eq(detector.group_any.any())
        banks = [placed_memory(shape=bits, depth=max(mp.bank_rows, 2), init=[], writable=True,
                               sync_read=False)
                 for _ in range(n)]
        # what a PE needs of a column: the addresses of its pointer pair in the even and odd
        # banks, from the layer's first pointer (the same in every PE)
        bases = pe_storage(mp, 0)[2]
        pair = PointerPair.of(mp)
        queued = QueuedColumn(mp)
        # each queue's head is a register: the issue stage's logic starts at a flip-flop
        queues = [StreamFIFO(queued.width, mp.queue_depth, registered_head=True)
                  for _ in range(n)]
        # BROADCAST_STAGES registers between the detector and the queues: its one-hot choice;
        # the column number, bank and bank row encoded from it (OR trees, one-hot in); the
        # pointer pair's addresses (two adders) and the bank's value; both relayed to a copy
        # beside every PE (flip-flop to flip-flop across the die, no logic); every PE's
        # pointer pair read from its banks (synchronous block-RAM reads), which the push
        # carries with the value. A column is selected only if every queue has room for it
        # and for those in flight even when no PE pops, so no queue's ready is in the
        # detector's loop; and that room is a register decided a cycle ahead from a
        # registered copy of each queue's level, so no path runs between the PEs' queues and
        # the detector's enables and a queue's level stays beside its PE (model:
        # QUEUE_ROOM_LAG).
        assert BROADCAST_STAGES == 5, "the stages below: choice, encoding, pair, relay, pointers"
        chosen = Signal(cols)
        chosen_valid = Signal()
        located_valid = Signal()
        addressed = Signal()  # the pointer pair's addresses and the value
        relayed = Signal()  # their copies beside the PEs: the pointer banks are read
        broadcast = Signal()  # the push of the column's pointers and value
        stage_valids = (chosen_valid, located_valid, addressed, relayed, broadcast)
        pushed = Signal()  # last cycle's push: in the queues' levels, not yet in the copies
        m.d.sync += pushed.eq(broadcast)
        counted = (*stage_valids, pushed)
        depth = mp.queue_depth
        # the control's copy of each queue's level, as a thermometer code (bit i: level > i),
        # one cycle behind the level: shifted up by last cycle's push (``pushed``, the same in
        # every queue) and down by the queue's last pop, which its PE registers beside it
        # (``popped``, assigned below). So "the fullest queue holds more than i" is an OR over
        # the copies, and the only path from a PE to them leaves a flip-flop: no logic of a
        # queue's level is shared across the die
        seen_fills = [Signal(depth, name=f"queue{k}_fill_seen") for k in range(n)]
        popped = [Signal(name=f"pe{k}_popped", attrs={"keep": 1}) for k in range(n)]
        for seen, pop in zip(seen_fills, popped):
            with m.If(pushed & ~pop):
                m.d.sync += seen.eq(Cat(Const(1, 1), seen[:-1]))
            with m.Elif(pop & ~pushed):
                m.d.sync += seen.eq(seen[1:])
        fullest_over = Signal(depth)
        m.d.comb += fullest_over.eq(Cat(*(Cat(*(seen[i] for seen in seen_fills)).any()
                                          for i in range(depth))))
        # every seen level + in flight (+ this cycle's selection) < depth: the fullest is not
        # over depth - 1 - in flight (- 1), one of its bits picked by the in-flight count
        # (from six flip-flops); no adder or compare between these registers and the room's
        in_flight = Signal(range(len(counted) + 1))
        m.d.comb += in_flight.eq(sum(valid.as_unsigned() for valid in counted))

        def room_for(extra):
            return Array(~fullest_over[depth - 1 - f - extra] if depth > f + extra
                         else Const(0) for f in range(len(counted) + 1))[in_flight]

        room = Signal()  # every queue has room for a selection in this cycle
        select = Signal()
        m.d.comb += select.eq(started & ~between & room)
        # next cycle's level + in flight is at most this cycle's + this cycle's selection
        m.d.sync += room.eq(Mux(select, room_for(1), room_for(0)))
        m.d.sync += [chosen.eq(detector.winner), chosen_valid.eq(select & any_pending)]
        with m.If(~started):  # a layer's first cycle: the flags are final
            detector.load(m, self.nonzero)
        with m.Elif(select):
            detector.take(m)

        def encoded(field):
            """OR of the constant field values of the chosen bit (one-hot in, binary out)."""
            values = [field(j) for j in range(cols)]
            return Cat(*(Cat(*(chosen[j] for j in range(cols) if values[j] >> b & 1)).any()
                         for b in range(max(max(values).bit_length(), 1))))

        located = Signal(range(max(cols, 2)))
        bank = Signal(range(max(n, 2)))
        bank_row = Signal(range(max(mp.bank_rows, 2)))
        m.d.sync += [located_valid.eq(chosen_valid), located.eq(encoded(lambda j: j)),
                     bank.eq(encoded(lambda j: j % n)), bank_row.eq(encoded(lambda j: j // n))]
        bank_reads = []
        for k, activations in enumerate(banks):
            m.submodules[f"act_bank{k}"] = activations
            read = activations.read_port(domain="comb")
            m.d.comb += read.addr.eq(bank_row)
            bank_reads.append(read.data)
        # the column's global number g = column + the layer's first pointer; its pointers
        # p_g and p_g+1 sit at (g + 1) // 2 and g // 2 in the even and odd banks
        base = Array(Const(b, range(max(bases) + 2)) for b in bases)[layer]
        base_plus_one = Array(Const(b + 1, range(max(bases) + 2)) for b in bases)[layer]
        column = Signal(pair.width)
        value = Signal(bits)
        m.d.sync += [addressed.eq(located_valid), relayed.eq(addressed), broadcast.eq(relayed),
                     column.eq(Cat(located[0] ^ base[0],
                                   ((located + base_plus_one) >> 1)[:pair.address_bits[0]],
                                   ((located + base) >> 1)[:pair.address_bits[1]])),
                     value.eq(Array(bank_reads)[bank])]
        # the relay and the push as copies per PE (the central valids count what is in flight)
        columns = per_pe("column", column, pair.width)
        relayed_copies = per_pe("relayed", addressed, 1)
        relayed_value = Signal(bits)
        m.d.sync += relayed_value.eq(value)
        pushed_values = per_pe("pushed_value", relayed_value, bits)
        for k, queue in enumerate(queues):
            m.submodules[f"queue{k}"] = queue
            first, end = self._pointer_pair(m, k, pair, columns[k], relayed_copies[k])
            pe_broadcast = Signal(name=f"pe{k}_broadcast")
            m.d.sync += pe_broadcast.eq(relayed_copies[k])
            m.d.comb += [queue.i.valid.eq(pe_broadcast),
                         queue.i.payload.eq(Cat(first, end, pushed_values[k]))]

        layers = per_pe("layer", layer_next, layer.shape())
        pes = [self._pe(m, k, queue, queued, layers[k]) for k, queue in enumerate(queues)]
        pops = [pe["pop"] for pe in pes]
        executed = [pe["execute"] for pe in pes]
        # a layer is done two cycles after the first in which nothing is pending, in flight,
        # queued or in a PE (the model's DONE_LATENCY): that state, once reached, lasts. Each
        # PE registers its own part (its queue empty, nothing issuing or executing) beside it
        # and the control its part, so the AND over them all starts at flip-flops and no path
        # runs from a PE's logic across the die to the writeback's control
        assert DONE_LATENCY == 2, "the stages below: the parts, then their AND"
        parts_quiet = [Signal(name=f"pe{k}_quiet") for k in range(n)]
        for pop, part, queue, pe in zip(popped, parts_quiet, queues, pes):
            m.d.sync += [pop.eq(queue.o.valid & queue.o.ready),
                         part.eq(~queue.o.valid & ~pe["active"])]
        control_quiet = Signal()
        m.d.sync += control_quiet.eq(started & ~between & ~any_pending
                                     & ~Cat(*stage_valids).any())
        quiet = Signal()
        m.d.sync += quiet.eq(control_quiet & Cat(*parts_quiet).all())
        layer_done = Signal()
        m.d.comb += layer_done.eq(quiet & ~between)
        m.d.comb += self.done.eq(layer_done & (layer == last_layer))
        with m.If(~self.done):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        # between layers: clear the flags, read the rows for writeback, one per cycle, then
        # drain the requantization pipeline into the banks
        rows_written = Array(Const(mp.layers[index].local_rows - 1, len(row))
                             for index in range(len(mp.requantize) or 1))
        last_row = writing & (row == rows_written[layer])
        m.d.comb += self.flags_clear.eq(layer_done & (layer != last_layer))
        # (a layer is done only outside the writeback, and its last row is read while writing)
        m.d.comb += [
            writing_next.eq(Mux(last_row, 0, writing | self.flags_clear)),
            row_next.eq(Mux(writing, row + 1, Mux(self.flags_clear, 0, row))),
            draining_next.eq(Mux(last_row, WRITEBACK_LATENCY,
                                 Mux(draining != 0, draining - 1, 0))),
            layer_next.eq(Mux(draining == 1, layer + 1, layer)),
        ]
        # the requantized rows reach the banks WRITEBACK_LATENCY cycles after their reads
        bank_write, bank_write_row = writing, row
        for stage in range(WRITEBACK_LATENCY):
            delayed = Signal(name=f"bank_write_{stage + 1}")
            delayed_row = Signal.like(row, name=f"bank_write_row_{stage + 1}")
            m.d.sync += [delayed.eq(bank_write), delayed_row.eq(bank_write_row)]
            bank_write, bank_write_row = delayed, delayed_row
        for pe, pe_writing, pe_row, layer_end in zip(
                pes, per_pe("writing", writing_next, 1),
                per_pe("writeback_row", row_next, row.shape()),
                per_pe("layer_end", draining_next == 1, 1)):
            pe["writeback"](pe_writing, pe_row, layer_end)
        m.d.comb += [self.writeback_en.eq(bank_write), self.writeback_row.eq(bank_write_row),
                     self.writeback_nonzero.eq(Cat(*(pe["written"] != 0 for pe in pes)))]

        for k, activations in enumerate(banks):
            write = activations.write_port()
            loading = self.load_en & (self.load_bank == k)
            m.d.comb += [write.en.eq(bank_write | loading),
                         write.addr.eq(Mux(bank_write, bank_write_row, self.load_row)),
                         write.data.eq(Mux(bank_write, pes[k]["written"], self.load_data))]

        def total(signals):
            return sum(s.as_unsigned() for s in signals)

        counts = {
            "control.lnzd.broadcast": broadcast,
            "pe.act_bank.write": Mux(writing, n, 0),
            "pe.act_queue.push": broadcast * n,
            "pe.act_queue.pop": total(pops),
            "pe.pointer_even.read": addressed * n,
            "pe.pointer_odd.read": addressed * n,
            "pe.sparse_sram.read": total(pe["word_read"] for pe in pes),
            "pe.codebook.read": total(executed),
            "pe.mult.mac": total(executed),
            "pe.act_regfile.read": total(executed),
            "pe.act_regfile.write": total(executed),
            "pe.idle.cycle": Mux(layer_done | between, 0, total(pe["idle"] for pe in pes)),
        }
        assert set(counts) == set(EVENTS)
        for index in range(len(mp.layers)):
            m.d.comb += [counters.increment(layer_event(index, name)).eq(
                Mux(layer == index, count, 0)) for name, count in counts.items()]
        if mp.count_events:
            m.d.comb += [counters.clear.eq(0), self.event_counts.eq(counters.counts)]
        m.d.comb += self.read_data.eq(Array(pe["readout"] for pe in pes)[self.read_pe])
        return m

    def _pointer_pair(self, m, k, pair, column, addressed):
        """PE ``k``'s pointer banks read at ``column``'s addresses while ``addressed``: the
        column's first pointer word (with its flags) and its end pointer, the cycle after."""
        mp = self.mapping
        width = pointer_bits(mp)
        words = pointer_words(mp, k)
        even, odd = (self._parameter_memory(
            m, f"pe{k}_pointers_{parity}", shape=width + POINTER_FLAG_BITS,
            depth=max(len(half), 2), init=half, sync_read=True, weights=True)
            for parity, half in (("even", words[0::2]), ("odd", words[1::2])))
        even_read = even.read_port()
        odd_read = odd.read_port()
        column_odd, even_address, odd_address = pair.fields(column)
        m.d.comb += [even_read.en.eq(addressed), odd_read.en.eq(addressed),
                     even_read.addr.eq(even_address), odd_read.addr.eq(odd_address)]
        # the parity beside the reads, a flip-flop per PE (its select drives every data bit)
        read_odd = Signal(name=f"pe{k}_pointers_odd_first")
        m.d.sync += read_odd.eq(column_odd)
        return (Mux(read_odd, odd_read.data, even_read.data),
                Mux(read_odd, even_read.data, odd_read.data)[:width])

    def _pe(self, m, k, queue, queued, layer):
        mp = self.mapping
        width = queued.pointer_bits
        per_word = mp.entries_per_word
        words = sparse_words(mp, k)
        sparse = self._parameter_memory(
            m, f"pe{k}_sparse", shape=ENTRY_BITS * per_word,
            depth=sparse_depth(mp, k), init=words,
            sync_read=True, weights=True)
        local_rows = max(mp.max_local_rows, 2)
        accumulators = placed_memory(shape=signed(mp.accumulator_bits), depth=local_rows,
                                     init=[], writable=True, sync_read=False)
        m.submodules[f"pe{k}_accumulators"] = accumulators
        # the sparse-matrix SRAM is read synchronously; the accumulator register file is read
        # combinationally and written at the clock edge
        word_read = sparse.read_port()
        acc_read = accumulators.read_port(domain="comb")
        acc_write = accumulators.write_port()

        # issue stage: takes the column at its queue's head once the previous one is done
        # (the pop), then one entry per cycle to the sparse-matrix SRAM
        first, end, head_value = queued.fields(queue.o.payload)
        start = first[:width]
        remaining = Signal(width, name=f"pe{k}_remaining")
        pointer = Signal(width, name=f"pe{k}_pointer")
        held = Signal(signed(mp.activation_bits), name=f"pe{k}_activation")
        continuing = Signal(name=f"pe{k}_continuing")  # remaining != 0, kept as a register
        take = queue.o.valid & ~continuing
        m.d.comb += queue.o.ready.eq(~continuing)
        has_entries = ~first[width]
        more_than_one = has_entries & ~first[width + 1]
        issue = continuing | (take & has_entries)
        entry_address = Mux(continuing, pointer, start)
        offset_bits = (per_word - 1).bit_length()
        new_word = issue & (~continuing | (entry_address[:offset_bits] == 0))
        m.d.comb += [word_read.en.eq(new_word),
                     word_read.addr.eq(entry_address >> offset_bits)]
        # the column's entries after its first: end - start - 1 = end + ~start (mod 2**width)
        after_first = Signal(width, name=f"pe{k}_after_first")
        m.d.comb += after_first.eq(end + ~start)
        with m.If(continuing):
            m.d.sync += [remaining.eq(remaining - 1), pointer.eq(pointer + 1),
                         continuing.eq(remaining != 1)]
        with m.Elif(take):
            m.d.sync += [remaining.eq(Mux(has_entries, after_first, 0)),
                         continuing.eq(more_than_one),
                         pointer.eq(start + 1), held.eq(head_value)]

        # execute pipeline (PIPELINE_TAIL stages): x1 registers the word, x2 picks the entry,
        # x3 finds its row and looks up the codebook, x4 multiplies while reading the
        # destination accumulator, x5 adds and writes it; no stage holds a memory read, an
        # arithmetic step and a write in one cycle, nor the entry select and the codebook
        def stage(name, value, shape=None):
            register = Signal(shape if shape is not None else len(value), name=f"pe{k}_{name}")
            m.d.sync += register.eq(value)
            return register

        x1_valid = stage("x1_valid", issue)
        x1_first = stage("x1_first", take)
        x1_offset = stage("x1_offset", entry_address[:offset_bits])
        x1_word_is_new = stage("x1_word_is_new", new_word)
        x1_factor = stage("x1_factor", Mux(continuing, held, head_value),
                          signed(mp.activation_bits))
        word = Signal(len(word_read.data), name=f"pe{k}_word")
        with m.If(x1_word_is_new):
            m.d.sync += word.eq(word_read.data)
        x2_valid = stage("x2_valid", x1_valid)
        x2_first = stage("x2_first", x1_first)
        x2_offset = stage("x2_offset", x1_offset)
        x2_factor = stage("x2_factor", x1_factor, signed(mp.activation_bits))

        x3_valid = stage("x3_valid", x2_valid)
        x3_first = stage("x3_first", x2_first)
        x3_entry = stage("x3_entry", word.word_select(x2_offset, ENTRY_BITS))
        x3_factor = stage("x3_factor", x2_factor, signed(mp.activation_bits))

        v, z = x3_entry[:4], x3_entry[4:]
        row_base = Signal(range(local_rows + 16), name=f"pe{k}_row_base")
        row = Signal.like(row_base, name=f"pe{k}_row")
        m.d.comb += row.eq(Mux(x3_first, 0, row_base) + z)
        with m.If(x3_valid):
            m.d.sync += row_base.eq(row + 1)
        weight_bits = codebook_bits(mp)
        if self.layout is None:
            weight = Array(Array(Const(int(c), signed(spec.weight_bits)) for c in spec.codebook)
                           for spec in mp.layers)[layer][v]
        else:  # the codebooks in a small memory, read combinationally (LUT RAM)
            codebook = self._parameter_memory(
                m, f"pe{k}_codebook", shape=signed(weight_bits),
                depth=CODEBOOK_ENTRIES * len(mp.layers), init=codebook_words(mp),
                sync_read=False)
            codebook_read = codebook.read_port(domain="comb")
            m.d.comb += codebook_read.addr.eq(Cat(v, layer))
            weight = codebook_read.data
        x4_valid = stage("x4_valid", x3_valid)
        x4_row = stage("x4_row", row, range(local_rows))
        x4_weight = stage("x4_weight", weight, signed(weight_bits))
        x4_factor = stage("x4_factor", x3_factor, signed(mp.activation_bits))

        touched = Signal(local_rows, name=f"pe{k}_touched")
        # the accumulator read address is a register (x4's row, the writeback row, the readout
        # row, chosen a cycle ahead), so no select sits between it and the register file
        address = Signal(range(local_rows), name=f"pe{k}_acc_address")
        m.d.comb += acc_read.addr.eq(address)
        accumulator = signed(mp.accumulator_bits)
        # the value read and its row's touched flag are registered apart (for x5 and for the
        # writeback's w1): an untouched row reads as zero after the register, in the LUT that
        # selects x5's bypass or in front of w2's adder, so x4 holds the register-file read only
        read_value = stage("acc_read_value", acc_read.data, accumulator)
        read_touched = stage("acc_read_touched", touched.bit_select(address, 1))
        stored = Mux(read_touched, read_value, 0)
        x5_valid = stage("x5_valid", x4_valid)
        x5_row = stage("x5_row", x4_row)
        x5_product = stage("x5_product", x4_weight * x4_factor, accumulator)
        # the entry ahead writes its row at the end of this cycle: a read of that row is stale
        x5_bypass = stage("x5_bypass", x5_valid & (x5_row == x4_row))
        with m.If(x4_valid):
            m.d.sync += touched.bit_select(x4_row, 1).eq(1)

        execute = x5_valid
        last_sum = Signal(accumulator, name=f"pe{k}_last_sum")
        total = Signal(accumulator, name=f"pe{k}_sum")
        m.d.comb += [total.eq(Mux(x5_bypass, last_sum, stored) + x5_product),
                     acc_write.addr.eq(x5_row), acc_write.en.eq(execute),
                     acc_write.data.eq(total)]
        with m.If(execute):
            m.d.sync += last_sum.eq(total)

        bias_init, bias_bases = bias_words(mp, k)
        written = Signal(mp.activation_bits, name=f"pe{k}_written")

        def writeback(writing, wb_row, layer_end):
            """Read row ``wb_row`` while ``writing``; its requantized value is ``written``
            WRITEBACK_LATENCY cycles later: the address register, the read, the bias add, ReLU
            and rounding, saturation."""
            # x3 is never valid while writing or reading out (a layer is done only once every
            # stage is empty), so x3's row adder meets a single 2:1 select
            m.d.sync += address.eq(Mux(x3_valid, row, Mux(writing, wb_row, self.read_row)))
            if not mp.requantize:
                return
            biases = self._parameter_memory(m, f"pe{k}_bias", shape=accumulator,
                                            depth=max(len(bias_init), 2), init=bias_init,
                                            sync_read=True)
            bias_read = biases.read_port()
            # the bias address is registered beside the accumulator's, and the ROM's read is
            # registered (w1's bias), so its read (a block RAM's from 4 kbit: the 1-PE engine's
            # 384 words) is all that the stage reading the accumulator holds
            m.d.comb += bias_read.addr.eq(stage(
                "bias_address",
                wb_row + Array(Const(b, len(bias_read.addr)) for b in bias_bases)[layer],
                len(bias_read.addr)))
            assert WRITEBACK_LATENCY == 5, "the stages: address, then w1, w2, w3 and w4"
            w2_total = stage("w2_total", stored + bias_read.data,
                             signed(mp.accumulator_bits + 1))
            w3_rounded = stage("w3_rounded",
                               Array(rounded(w2_total, rule) for rule in mp.requantize)[layer],
                               signed(mp.accumulator_bits + 2))
            # saturated into a register of its own: the bank's write data and the nonzero
            # flag (written != 0) start at a flip-flop, not after the saturating compares
            m.d.comb += written.eq(stage(
                "w4_saturated", Array(saturated(w3_rounded, rule)[:mp.activation_bits]
                                      for rule in mp.requantize)[layer], mp.activation_bits))
            with m.If(layer_end):
                m.d.sync += touched.eq(0)

        return {"pop": take, "execute": execute, "word_read": new_word,
                "idle": ~take & ~continuing,
                "active": continuing | x1_valid | x2_valid | x3_valid | x4_valid | x5_valid,
                "readout": Mux(touched.bit_select(address, 1), acc_read.data, 0),
                "written": written, "writeback": writeback}


class EIEHarness(wiring.Component):
    """The engine with its nonzero flags: activations are loaded through a port (bank, row),
    then ``run`` starts the (reset-held) core; ``read_pe``/``read_row`` read the last layer's
    accumulator address is a register); with loadable weights, the core's parameter port,
    written while ``run`` is low (the core held in reset)."""

    def __init__(self, mapping: EIENetworkMapping):
        self.core = EIECore(mapping)
        self.mapping = mapping
        self.counters = self.core.counters
        self.layout = self.core.layout
        super().__init__({**outer_ports(mapping, self.counters), "run": In(1),
                          **(self.layout.port_members() if self.layout else {})})

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
        if self.layout:
            m.d.comb += [getattr(core, name).eq(getattr(self, name))
                         for name in self.layout.port_members()]
        return m


class EIEVectorLoader(wiring.Component):
    """Simulation top: the harness plus a loader that takes a whole input vector on one wide
    port and writes it through the load port, one column per cycle, after a ``start`` pulse
    (``max_cols`` cycles), so that testbenches set one value per image instead of stepping
    Python through every column; with loadable weights, a parameter loader
    (``ParameterBatchLoader``) in place of the parameter port."""

    def __init__(self, mapping: EIENetworkMapping):
        self.harness = EIEHarness(mapping)
        self.mapping = mapping
        self.counters = self.harness.counters
        self.parameter_loader = ParameterBatchLoader(self.harness) \
            if self.harness.layout else None
        ports = {name: member for name, member in self.harness.signature.members.items()
                 if not name.startswith(("load_", "param_"))}
        ports["vector"] = In(mapping.max_cols * mapping.activation_bits)
        ports["start"] = In(1)
        if self.parameter_loader:
            ports.update(self.parameter_loader.members())
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        mp = self.mapping
        m.submodules.harness = harness = self.harness
        column = Signal(range(max(mp.max_cols, 2)))
        bank = Signal.like(harness.load_bank)
        bank_row = Signal.like(harness.load_row)
        loading = Signal()
        with m.If(self.start):
            m.d.sync += [loading.eq(1), column.eq(0), bank.eq(0), bank_row.eq(0)]
        with m.Elif(loading):
            m.d.sync += column.eq(column + 1)
            with m.If(bank == mp.num_pes - 1):
                m.d.sync += [bank.eq(0), bank_row.eq(bank_row + 1)]
            with m.Else():
                m.d.sync += bank.eq(bank + 1)
            with m.If(column == mp.max_cols - 1):
                m.d.sync += loading.eq(0)
        m.d.comb += [harness.load_en.eq(loading), harness.load_bank.eq(bank),
                     harness.load_row.eq(bank_row),
                     harness.load_data.eq(self.vector.word_select(column, mp.activation_bits))]
        if self.parameter_loader:
            self.parameter_loader.elaborate(m, self, harness)
        for name in self.signature.members:
            if name in ("vector", "start") or name.startswith("param_"):
                continue
            if self.signature.members[name].flow == In:
                m.d.comb += getattr(harness, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(harness, name))
        return m

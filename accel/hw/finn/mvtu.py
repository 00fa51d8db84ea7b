"""The Matrix-Vector-Threshold Unit and the stream width converter.

MVTU schedule (FINN's): an input vector of MW elements arrives as SF = MW/SIMD beats. For each
neuron fold nf in 0..NF-1 (NF = MH/PE) and synapse fold sf in 0..SF-1 the unit computes one
PE x SIMD tile in one cycle: PE p accumulates the dot product of input beat sf with its weights
for output channel nf*PE + p. During nf = 0 the beats come from the input stream and are kept in
an input buffer; later folds replay them. After sf = SF-1 the PE accumulators go through the
thresholds (or out raw) into the output register, one beat of PE elements.

Timing (the cycle model in ``accel.hw.finn.model`` mirrors it): a tile step happens in a cycle
when (nf > 0 or an input beat is valid) and (sf < SF-1 or an output slot is free). So a vector
takes NF*SF cycles when nothing stalls: II = 1 tile per cycle.

Pipeline (``LayerMapping.pipeline``, P registers after the issuing step; the default
``auto_pipeline``): P = 0 is one cycle from memory address to output register (asynchronous
reads: LUTs or LUT RAM on an FPGA), the output register valid from the cycle after the step
that filled it, and free when empty or read in that cycle. P >= 1 registers the weight,
threshold and input-buffer reads (synchronous: block RAM), then (thresholds, P >= 2) the
threshold compare gets its own stage, where the PEs read the weights through copies of the
address one more register loads the copies a cycle late and two more hold the selected
input beat and then each PE's own copy of it (the reads lag by all three), and the rest cut
the adder tree (``balanced_sum``). The pipeline never stalls: a last-synapse step issues
only while fewer than ``output_slots`` (P + 2) results are issued and not read, so its result
always finds a place in the output FIFO P cycles later, valid from the cycle after; counting
slots without looking at the consumer's ready keeps any path from downstream's ready out of
the step logic. The input buffer's write is registered too where no replay reads a word
sooner (``LayerMapping.buffer_write_lag``): timing only, no cycle changes.

Generated logic is linear in PE x SIMD: the input beat is selected once into a signal every PE
reads (Amaranth re-emits an expression at each use, so a shared expression would be rebuilt per
lane), each PE's weight word is one memory read, and popcounts and adder trees are balanced
trees built level by level (``balanced_sum``: depth log2(SIMD), no recursion on the lane count).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.common.fifo import StreamFIFO
from accel.hw.common.memory import placed_memory
from accel.hw.common.parameters import (ParameterLayout, ParameterMemory,
                                        connect_parameter_write, port_signals)
from accel.hw.finn.loading import threshold_words, weight_words
from accel.hw.finn.mapping import Element, LayerMapping, tree_cuts


def balanced_sum(terms, m=None, registers: int = 0, name: str = "sum", tail: int = 0):
    """The sum of Amaranth values ``terms`` as a balanced tree of two-input adders, built level
    by level (so neither its logic depth nor Python's recursion grows with ``len(terms)``).
    Each term is used once, so nothing is emitted twice. With ``registers`` (and the module
    ``m``), that many pipeline registers cut the tree where ``tree_cuts`` places them (the
    sum's user adds ``tail`` levels after it): the sum arrives ``registers`` cycles later."""
    level = list(terms)
    if not level:
        level = [Const(0, 1)]
    depth = (len(level) - 1).bit_length()  # adder levels
    cuts = tree_cuts(len(level), registers, tail)
    done = 0

    def cut(values, after):
        nonlocal done
        for _ in range(sum(1 for c in cuts if c == after)):
            staged = []
            for index, value in enumerate(values):
                register = Signal(value.shape(), name=f"{name}_r{done}_{index}")
                m.d.sync += register.eq(value)
                staged.append(register)
            values, done = staged, done + 1
        return values

    for k in range(1, max(depth, 1) + 1):
        if len(level) > 1:
            paired = [a + b for a, b in zip(level[0::2], level[1::2])]
            if len(level) % 2:
                paired.append(level[-1])
            level = paired
        level = cut(level, k)
    return level[0]


def _element_value(code, element: Element):
    """An Amaranth value of the element's numeric value (bipolar as +-1)."""
    if element.bipolar:
        return Mux(code[0], Const(1, signed(2)), Const(-1, signed(2)))
    return code.as_signed() if element.signed else code.as_unsigned()


class MVTU(wiring.Component):
    """One folded dense layer; ``step``, ``input_step`` and ``output_step`` are the strobes the
    top counts events with. With a parameter ``layout`` (loadable weights), ``memories`` are
    its entries for this layer and the unit takes the parameter port."""

    def __init__(self, layer: LayerMapping, layout: ParameterLayout | None = None,
                 memories: tuple[ParameterMemory, ...] = ()):
        self.layer = layer
        self.layout = layout
        self.parameter_memories = {entry.name.rsplit(".", 1)[1]: entry for entry in memories}
        self.in_width = layer.simd * layer.input.bits
        self.out_width = layer.pe * layer.output.bits
        super().__init__({
            "i": In(stream.Signature(self.in_width)),
            "o": Out(stream.Signature(self.out_width)),
            "step": Out(1),
            "input_step": Out(1),
            "output_step": Out(1),
            **(layout.port_members() if layout else {}),
        })

    def _parameter_memory(self, m, name: str, **kwargs):
        """A weight or threshold memory, writable through the parameter port if loadable."""
        loadable = self.layout is not None
        memory = placed_memory(writable=loadable, **kwargs)
        m.submodules[name] = memory
        if loadable:
            connect_parameter_write(m, memory, port_signals(self),
                                    self.parameter_memories[name], self.layout)
        return memory

    def elaborate(self, platform):
        m = Module()
        layer = self.layer
        nf_count, sf_count = layer.neuron_fold, layer.synapse_fold
        acc_shape = signed(layer.register_bits)
        threshold_width = layer.register_bits + 1
        stages = layer.pipeline_stages
        depth = layer.pipeline

        nf = Signal(range(max(nf_count, 2)))
        sf = Signal(range(max(sf_count, 2)))
        first_fold = Signal()
        last_synapse = Signal()
        m.d.comb += [first_fold.eq(nf == 0), last_synapse.eq(sf == sf_count - 1)]
        out_valid = Signal()
        popped = Signal()
        credit = Signal()  # an output slot is free for a last-synapse step (see the module notes)
        can_step = Signal()
        m.d.comb += [popped.eq(out_valid & self.o.ready),
                     can_step.eq((~first_fold | self.i.valid) & (~last_synapse | credit))]
        slots = layer.output_slots
        if depth == 0:
            m.d.comb += credit.eq(~out_valid | self.o.ready)
        else:
            pending = Signal(range(slots + 1))  # issued outputs not yet read out
            m.d.comb += credit.eq(pending < slots)
            m.d.sync += pending.eq(pending + (can_step & last_synapse) - popped)

        m.d.comb += [
            self.step.eq(can_step),
            self.input_step.eq(can_step & first_fold),
            self.output_step.eq(can_step & last_synapse),
            self.i.ready.eq(first_fold & (~last_synapse | credit)),
        ]

        def delayed(value, cycles, name):
            """``value`` ``cycles`` clock cycles later (plain registers: the pipeline after
            the issuing step never stalls)."""
            for k in range(cycles):
                register = Signal.like(value, name=f"{name}_s{k + 1}")
                m.d.sync += register.eq(value)
                value = register
            return value

        # input buffer: written during the first fold (``buffer_write_lag`` cycles late),
        # replayed by the others
        m.submodules.input_buffer = input_buffer = placed_memory(
            shape=self.in_width, depth=max(sf_count, 2), init=[], writable=True,
            sync_read=stages.read > 0)
        buffer_write = input_buffer.write_port()
        reads = "comb" if stages.read == 0 else "sync"  # registered reads: block-RAM friendly
        buffer_read = input_buffer.read_port(domain=reads)
        # (the beat's read and selection lag the step as the weights' reads do)
        select_at = stages.select  # (the PEs' lanes see the beat at stages.fetch)
        lag = layer.buffer_write_lag
        m.d.comb += [buffer_write.addr.eq(delayed(sf, lag, "buffer_write_addr")),
                     buffer_write.data.eq(delayed(self.i.payload, lag, "buffer_write_data")),
                     buffer_write.en.eq(delayed(can_step & first_fold, lag, "buffer_write_en")),
                     buffer_read.addr.eq(delayed(sf, stages.address, "sf"))]
        beat = Signal(self.in_width)  # one selection, read by every PE
        m.d.comb += beat.eq(Mux(delayed(first_fold, select_at, "first_fold"),
                                delayed(self.i.payload, select_at, "payload"),
                                buffer_read.data))
        first_synapse = Signal()
        m.d.comb += first_synapse.eq(sf == 0)
        # the step's control, where the accumulators and the comparators see it
        accumulate_at = stages.fetch + stages.tree
        step_acc = delayed(can_step, accumulate_at, "step")
        first_acc = delayed(first_synapse, accumulate_at, "first_synapse")
        last_out = delayed(can_step & last_synapse, depth, "output")
        nf_compare = delayed(nf, accumulate_at + stages.compare - stages.read, "nf")

        # the weight address, read by every PE's memory; with many PEs
        # (``weight_address_registers``) each memory's address port is a register of its own
        # instead (``keep``: synthesis would merge them back into one), loaded with the same
        # next address (the one above then merges into one of them) or, with an address stage,
        # with the one above a cycle late (and as many more as there are beat stages); the
        # selected beat, with beat stages, is registered (and at 2 copied per PE, below)
        selected = delayed(beat, min(stages.beat, 1), "beat")
        weight_addr = Signal(range(max(nf_count * sf_count, 2)))
        copied_from = delayed(weight_addr, stages.beat, "weight_addr")
        copies = []
        results = []
        for p in range(layer.pe):
            weights = self._parameter_memory(
                m, f"weights_pe{p}", shape=layer.simd * layer.weight.bits,
                depth=max(nf_count * sf_count, 2),
                init=weight_words(layer, p) + [0] * (nf_count * sf_count < 2),
                sync_read=reads == "sync", weights=True)
            ports = []
            for _ in range(layer.weight_read_ports):
                weight_read = weights.read_port(domain=reads)  # (named after the variable)
                ports.append(weight_read)
            if layer.weight_address_registers > 1:
                for port in ports:
                    port.addr.attrs["keep"] = 1
                    if stages.address:
                        m.d.sync += port.addr.eq(copied_from)
                    else:
                        copies.append(port.addr)
            else:
                m.d.comb += weight_read.addr.eq(weight_addr)
            word = weight_read.data
            if len(ports) > 1:  # each port's slice of the word
                width = layer.simd * layer.weight.bits
                step = -(-width // len(ports))
                word = Cat(*(port.data[start:start + step]
                             for port, start in zip(ports, range(0, width, step))))
            lanes_beat = selected
            if stages.beat == 2:  # the PE's own copy (``keep``: synthesis would merge them)
                lanes_beat = Signal(self.in_width, name=f"beat_pe{p}", attrs={"keep": 1})
                m.d.sync += lanes_beat.eq(selected)
            partial = self._dot(m, p, lanes_beat, word, stages.tree)
            accumulator = Signal(acc_shape, name=f"acc_pe{p}")
            total = Signal(acc_shape, name=f"total_pe{p}")
            m.d.comb += total.eq(Mux(first_acc, 0, accumulator) + partial)
            with m.If(step_acc):
                m.d.sync += accumulator.eq(total)
            compared = delayed(total, stages.compare, f"total_pe{p}")
            results.append(self._activate(m, p, compared, nf_compare, threshold_width, reads))

        result = Cat(*results)
        if depth == 0:  # one output register, filled by the step itself
            out_register = Signal(self.out_width)
            m.d.comb += [self.o.payload.eq(out_register), self.o.valid.eq(out_valid)]
            with m.If(last_out):
                m.d.sync += [out_register.eq(result), out_valid.eq(1)]
            with m.Elif(self.o.ready):
                m.d.sync += out_valid.eq(0)
        else:  # a step issues only with a slot free for its result when it arrives
            m.submodules.outputs = outputs = StreamFIFO(self.out_width, slots)
            m.d.comb += [outputs.i.payload.eq(result), outputs.i.valid.eq(last_out),
                         self.o.payload.eq(outputs.o.payload), out_valid.eq(outputs.o.valid),
                         self.o.valid.eq(outputs.o.valid), outputs.o.ready.eq(self.o.ready)]

        with m.If(can_step):
            with m.If(last_synapse):
                m.d.sync += sf.eq(0)
                m.d.sync += nf.eq(Mux(nf == nf_count - 1, 0, nf + 1))
                m.d.sync += [address.eq(Mux(nf == nf_count - 1, 0, weight_addr + 1))
                             for address in [weight_addr, *copies]]
            with m.Else():
                m.d.sync += [sf.eq(sf + 1)] + [address.eq(weight_addr + 1)
                                               for address in [weight_addr, *copies]]
        return m

    def _dot(self, m, p, beat, weight_word, registers: int):
        """Sum over the SIMD lanes of input x weight (XNOR-popcount when both are bipolar), with
        ``registers`` pipeline registers spread over the adder tree's levels."""
        layer = self.layer
        a, w = layer.input, layer.weight
        if a.bipolar and w.bipolar:
            agree = Signal(layer.simd, name=f"agree_pe{p}")
            m.d.comb += agree.eq(~(beat[:layer.simd] ^ weight_word[:layer.simd]))
            popcount = balanced_sum((agree[k].as_unsigned() for k in range(layer.simd)),
                                    m, registers, f"popcount_pe{p}", layer.tree_tail)
            return (popcount * 2 - layer.simd).as_signed()
        terms = []
        for k in range(layer.simd):
            x = beat[k * a.bits:(k + 1) * a.bits]
            wk = weight_word[k * w.bits:(k + 1) * w.bits]
            if w.bipolar:
                value = _element_value(x, a)
                terms.append(Mux(wk[0], value, -value))
            elif a.bipolar:
                value = _element_value(wk, w)
                terms.append(Mux(x[0], value, -value))
            else:
                terms.append(_element_value(x, a) * _element_value(wk, w))
        return balanced_sum(terms, m, registers, f"dot_pe{p}", layer.tree_tail)

    def _activate(self, m, p, total, nf, threshold_width, domain: str):
        """The PE's output element: thresholded count (+ offset) or the raw accumulator. The
        threshold row of neuron fold ``nf`` is read in ``domain`` (sync: the address is the
        cycle before's, as the pipeline delays ``nf``)."""
        layer = self.layer
        if layer.thresholds is None:
            return total[:layer.output.bits]  # the raw accumulator's code
        thresholds = self._parameter_memory(
            m, f"thresholds_pe{p}", shape=layer.steps * threshold_width,
            depth=max(layer.neuron_fold, 2),
            init=threshold_words(layer, p) + [0] * (layer.neuron_fold < 2),
            sync_read=domain == "sync")
        read = thresholds.read_port(domain=domain)
        m.d.comb += read.addr.eq(nf)
        row = read.data
        count = balanced_sum(
            (total >= row[k * threshold_width:(k + 1) * threshold_width].as_signed()).as_unsigned()
            for k in range(layer.steps))
        out = Signal(layer.output.bits, name=f"out_pe{p}")
        if layer.output.bipolar:
            m.d.comb += out.eq(count)
        else:
            m.d.comb += out.eq(count + layer.out_offset)
        return out


class StreamWidthConverter(wiring.Component):
    """Regroups a stream of ``in_elements``-element beats into ``out_elements``-element beats
    (one count must divide the other), elements of ``element_bits`` in order, lowest first."""

    def __init__(self, element_bits: int, in_elements: int, out_elements: int):
        self.element_bits = element_bits
        self.in_elements = in_elements
        self.out_elements = out_elements
        super().__init__({
            "i": In(stream.Signature(element_bits * in_elements)),
            "o": Out(stream.Signature(element_bits * out_elements)),
        })

    def elaborate(self, platform):
        m = Module()
        bits = self.element_bits
        if self.out_elements == self.in_elements:
            wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
            return m
        if self.out_elements > self.in_elements:  # gather several input beats
            ratio = self.out_elements // self.in_elements
            count = Signal(range(ratio + 1))
            gathered = Signal(bits * self.out_elements)
            full = count == ratio
            m.d.comb += [self.o.valid.eq(full), self.o.payload.eq(gathered),
                         self.i.ready.eq(~full | self.o.ready)]
            piece = bits * self.in_elements
            with m.If(self.i.valid & self.i.ready):
                index = Mux(full, 0, count)
                m.d.sync += [gathered.word_select(index, piece).eq(self.i.payload),
                             count.eq(index + 1)]
            with m.Elif(self.o.valid & self.o.ready):
                m.d.sync += count.eq(0)
            return m
        ratio = self.in_elements // self.out_elements  # split one input beat
        index = Signal(range(ratio))
        piece = bits * self.out_elements
        held = Signal(bits * self.in_elements)
        held_valid = Signal()
        m.d.comb += [self.o.valid.eq(held_valid),
                     self.o.payload.eq(held.word_select(index, piece)),
                     self.i.ready.eq(~held_valid | (self.o.ready & (index == ratio - 1)))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), held_valid.eq(1), index.eq(0)]
        with m.Elif(self.o.valid & self.o.ready):
            with m.If(index == ratio - 1):
                m.d.sync += [held_valid.eq(0), index.eq(0)]
            with m.Else():
                m.d.sync += index.eq(index + 1)
        return m

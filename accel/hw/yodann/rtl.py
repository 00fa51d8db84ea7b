"""The YodaNN-style engine in Amaranth: one binary-weight convolution layer at a time.

Per frame: LOAD (the host's quantized input, one value per AXI-Stream beat, pixel by pixel,
into activation buffer 0), then the passes of ``mapping.passes`` in order (the sequencer's
program, a constant table indexed by the pass number), then UNLOAD (the last layer's values,
one per beat, from the buffer it wrote).

A pass runs three agents at once:
  filter loader  C cycles: weight memory word (layer, output group, input channel) -> filter
                 bank entry c (C = the pass's input channels)
  filler         image rows of the stripe, one value per cycle (column by column, channels
                 inner) from the source activation buffer into the image memory: k + 1 row
                 slots (slot = row mod (k + 1)), so row r + k is written while rows r .. r+k-1
                 are read. Row r waits until the computer has finished every output row that
                 reads the row it overwrites.
  computer       output row by output row: it waits until the rows it reads are written, then
                 shifts k - 1 columns per input channel into the image bank (the prologue),
                 then each output pixel takes P cycles: C cycles that each shift one column of
                 one channel (k reads, one per row slot) and feed its k x k window to every
                 SoP unit, then P - C idle cycles (P = max(C, the output channels drained)).
Pipeline of a computer cycle: issue (image memory and filter bank read addresses), SoP (the
window against every SoP unit's weights: sum of ``x XOR ~w`` plus the popcount of the carries,
registered), channel summer (accumulate; the first channel starts from zero or from the
partial sums of the earlier input passes; the last channel stores the partial sums or loads
the output stage's holding register). The output stage drains the holding register one
channel per cycle: bias, ReLU, fixed-point scale, rounding, saturation (or, for a layer with
thresholds, the count of the channel's thresholds the accumulator reaches, one comparator per
step), then the pool unit (running maxima of the open windows of the current pool row) and the
destination buffer.
The cycle model (``accel.hw.yodann.model``) follows the same schedule.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring

from accel.hw.common.counters import EventCounterBank
from accel.hw.common.memory import placed_memory
from accel.hw.common.stream_harness import axi_stream_ports
from accel.hw.yodann.mapping import (ROUNDING_CODES, YodaNNMapping, fill_rows, filter_words,
                                     passes, stripe_columns)


def engine_widths(mapping: YodaNNMapping) -> dict[str, int]:
    """Bit widths of the datapath: activations, SoP results, summers and partial sums (the
    worst case of any layer without requantization between input passes), output words."""
    config = mapping.config
    ab = config.activation_bits
    taps = config.k_max ** 2
    sop = ab + taps.bit_length() + 1
    worst = max(layer.kernel ** 2 * layer.in_channels * (1 << (ab - 1))
                + int(abs(layer.bias).max(initial=0)) for layer in mapping.layers)
    acc = max(worst.bit_length() + 1, sop)
    return {"activation": ab, "sop": sop, "acc": acc, "out": mapping.out_bits,
            "product": acc + 17}


def event_declarations(mapping: YodaNNMapping) -> dict[str, int]:
    """Event name -> the largest increment one cycle adds."""
    config = mapping.config
    taps = config.k_max ** 2
    return {
        "input.beat": 1, "output.beat": 1,
        "act_buffer.read": 1, "act_buffer.write": 1,
        "weight_mem.read": 1, "filter_bank.write": 1, "filter_bank.read": 1,
        "image_mem.write": 1, "image_mem.read": config.k_max, "image_bank.shift": 1,
        "sop.mac": config.n_out * taps, "sop.carry_popcount": config.n_out,
        "channel_summer.accumulate": config.n_out,
        "psum_mem.read": 1, "psum_mem.write": 1,
        "output_stage.scale": 1, "pool.compare": 1,
        "engine.idle": 1,
        # layers whose output stage compares with thresholds instead of scaling
        **({"threshold_mem.read": 1, "output_stage.compare": threshold_steps(mapping)}
           if threshold_steps(mapping) else {}),
    }


def threshold_steps(mapping: YodaNNMapping) -> int:
    """The most thresholds per channel of any layer (0: no layer has thresholds)."""
    return max((layer.thresholds.shape[1] for layer in mapping.layers
                if layer.thresholds is not None), default=0)


def threshold_words(mapping: YodaNNMapping, field_bits: int) -> list[int]:
    """The threshold memory: one word per output channel of each threshold layer, threshold k
    in bits [k * field_bits, (k + 1) * field_bits), two's complement, clamped to the field (an
    accumulator never reaches the clamped top value nor falls below the clamped bottom one,
    so every comparison is unchanged); unused fields are zero (masked off by the step count)."""
    lo, hi = -(1 << (field_bits - 1)), (1 << (field_bits - 1)) - 1
    mask = (1 << field_bits) - 1
    words = []
    for layer in mapping.layers:
        if layer.thresholds is None:
            continue
        for row in np.clip(layer.thresholds, lo, hi):
            words.append(sum((int(t) & mask) << (k * field_bits) for k, t in enumerate(row)))
    return words


def _table(values, shape) -> Array:
    return Array(Const(int(v), shape) for v in values)


class YodaNNTop(wiring.Component):
    def __init__(self, mapping: YodaNNMapping):
        self.mapping = mapping
        self.widths = engine_widths(mapping)
        self.program = passes(mapping)
        self.counters = EventCounterBank(event_declarations(mapping),
                                         enabled=mapping.count_events)
        super().__init__(axi_stream_ports(self.widths["activation"], self.widths["out"],
                                          self.counters))

    def elaborate(self, platform):  # noqa: C901 - one sequencer, read top to bottom
        m = Module()
        mapping, config, w = self.mapping, self.mapping.config, self.widths
        m.submodules.counters = counters = self.counters
        if counters.enabled:
            m.d.comb += self.event_counts.eq(counters.counts)
        events = {name: Signal(range(n + 1), name="ev_" + name.replace(".", "_"))
                  for name, n in counters.events.items()}
        m.d.comb += [counters.increment(name).eq(sig) for name, sig in events.items()]

        km, n_in, n_out = config.k_max, config.n_in, config.n_out
        ab, acc_bits, out_bits = w["activation"], w["acc"], w["out"]
        taps = km * km
        program = self.program
        layers = mapping.layers
        n_pass = len(program)

        # ------------------------------------------------------------------ memories
        depth = max(mapping.buffer_values, 2)
        buffers = []
        for b in range(2):
            # read by the filler (synchronously) and the unloader (combinationally)
            mem = placed_memory(shape=signed(out_bits), depth=depth, init=[], writable=True,
                                sync_read=False)
            m.submodules[f"act_buffer{b}"] = mem
            buffers.append(mem)
        buf_write = [mem.write_port() for mem in buffers]
        buf_fill = [mem.read_port() for mem in buffers]  # the filler: synchronous
        buf_unload = [mem.read_port(domain="comb") for mem in buffers]
        words = filter_words(mapping)
        m.submodules.weight_mem = weight_mem = placed_memory(
            shape=n_out * taps, depth=max(len(words), 2), init=words, writable=False,
            sync_read=True)
        weight_read = weight_mem.read_port()
        m.submodules.filter_bank = filter_bank = placed_memory(
            shape=n_out * taps, depth=max(n_in, 2), init=[], writable=True, sync_read=True)
        filter_write, filter_read = filter_bank.write_port(), filter_bank.read_port()
        slots = []
        for s in range(km + 1):
            mem = placed_memory(shape=signed(ab), depth=config.w_max * n_in, init=[],
                                writable=True, sync_read=True)
            m.submodules[f"image_mem{s}"] = mem
            slots.append((mem.write_port(), mem.read_port()))
        psum_depth = mapping.psum_words
        if psum_depth:
            m.submodules.psum_mem = psum_mem = placed_memory(
                shape=n_out * acc_bits, depth=max(psum_depth, 2), init=[], writable=True,
                sync_read=True)
            psum_write, psum_read = psum_mem.write_port(), psum_mem.read_port()
        channel_bias = [int(b) for layer in layers for b in layer.bias]
        bias_table = _table(channel_bias, signed(acc_bits))
        pool_depth = config.w_max * n_out
        m.submodules.pool_buffer = pool_mem = placed_memory(
            shape=signed(out_bits), depth=pool_depth, init=[], writable=True, sync_read=False)
        pool_write, pool_read = pool_mem.write_port(), pool_mem.read_port(domain="comb")

        # ------------------------------------------------------------------ the program
        index = Signal(range(max(n_pass, 2)))

        def field(values, shape=None):
            """One column of the program: this pass's value, as a named signal (wide enough
            that no comparison with it is constant when every pass holds the same value)."""
            values = [int(v) for v in values]
            if shape is None:
                magnitude = max(abs(v) for v in values + [255])
                shape = signed(magnitude.bit_length() + 1) if min(values) < 0 \
                    else unsigned(magnitude.bit_length())
            column = Signal(shape, name=f"pass_field{len(fields)}")
            fields.append(column)
            m.d.comb += column.eq(_table(values, shape)[index])
            return column

        fields = []

        def per_layer(attr):
            return [attr(layers[p.layer]) for p in program]

        p_in_count = field(p.in_count for p in program)
        p_in_base = field(p.in_base for p in program)
        p_out_count = field(p.out_count for p in program)
        p_out_base = field(p.out_base for p in program)
        p_first = field(p.first for p in program)
        p_last = field(p.last for p in program)
        p_weight_base = field(p.weight_base for p in program)
        p_bias_base = field(p.bias_base for p in program)
        p_source = field(p.source for p in program)
        p_pixel = field(p.pixel_cycles() for p in program)
        p_k = field(per_layer(lambda x: x.kernel))
        p_pad = field(per_layer(lambda x: x.padding))
        p_height = field(per_layer(lambda x: x.height))
        p_width = field(per_layer(lambda x: x.width))
        p_in_total = field(per_layer(lambda x: x.in_channels))
        p_out_total = field(per_layer(lambda x: x.out_channels))
        p_conv_rows = field(per_layer(lambda x: x.conv_height))
        p_fill_rows = field(per_layer(fill_rows))
        p_out_width = field(per_layer(lambda x: x.out_width))
        p_pool = field(per_layer(lambda x: x.pool))
        p_relu = field(per_layer(lambda x: x.relu))
        requants = [layers[p.layer].requant for p in program]
        wide = (1 << (out_bits - 1))
        p_mult = field([r.multiplier if r else 1 for r in requants])
        p_shift = field([r.shift if r else 0 for r in requants])
        p_mode = field([ROUNDING_CODES[r.rounding] if r else 0 for r in requants])
        p_lo = field([r.lo if r else -wide for r in requants], signed(out_bits + 1))
        p_hi = field([r.hi if r else wide - 1 for r in requants], signed(out_bits + 1))
        p_out_cols = field(p.stripe.out_cols for p in program)
        p_pool_start = field(p.stripe.out_start // layers[p.layer].pool for p in program)
        p_col_first = field(p.stripe.out_start - layers[p.layer].padding for p in program)
        columns = [stripe_columns(layers[p.layer], p.stripe) for p in program]
        p_col_lo = field(lo for lo, _ in columns)
        p_col_hi = field(hi for _, hi in columns)
        p_macs = field(p.out_count * layers[p.layer].kernel ** 2 for p in program)
        # the threshold path (0 steps: the layer scales instead)
        bases, base = [], 0
        for layer in layers:
            bases.append(base)
            base += layer.out_channels if layer.thresholds is not None else 0
        p_steps = field(per_layer(lambda x: 0 if x.thresholds is None else x.thresholds.shape[1]))
        p_threshold_base = field(bases[p.layer] + p.out_base for p in program)
        p_bipolar = field(per_layer(lambda x: x.bipolar_out))
        p_offset = field(per_layer(lambda x: x.threshold_offset))
        final_values = layers[-1].out_values

        # ------------------------------------------------------------------ top state
        state = Signal(range(5))
        IDLE, LOAD, START, RUN, UNLOAD = range(5)
        count = Signal(range(max(mapping.buffer_values, final_values, 2) + 1))
        in_values = mapping.layers[0].in_values
        m.d.comb += self.s_axis_tready.eq((state == IDLE) | (state == LOAD))
        accept = self.s_axis_tvalid & self.s_axis_tready
        m.d.comb += [buf_write[0].addr.eq(count), buf_write[0].data.eq(self.s_axis_tdata),
                     buf_write[0].en.eq(accept)]
        # destination writes of the output stage (set below) override these in RUN
        with m.If(accept):
            m.d.comb += [events["input.beat"].eq(1), events["act_buffer.write"].eq(1)]
            m.d.sync += count.eq(count + 1)
            with m.If(count == in_values - 1):
                m.d.sync += [state.eq(START), index.eq(0), count.eq(0)]
            with m.Else():
                m.d.sync += state.eq(LOAD)
        final_buffer = len(layers) % 2
        m.d.comb += [buf_unload[final_buffer].addr.eq(count),
                     self.m_axis_tdata.eq(buf_unload[final_buffer].data),
                     self.m_axis_tvalid.eq(state == UNLOAD)]
        with m.If((state == UNLOAD) & self.m_axis_tready):
            m.d.comb += [events["output.beat"].eq(1), events["act_buffer.read"].eq(1)]
            m.d.sync += count.eq(count + 1)
            with m.If(count == final_values - 1):
                m.d.sync += [state.eq(IDLE), count.eq(0)]

        start = state == START
        running = state == RUN

        # ------------------------------------------------------------------ filter loader
        load_c = Signal(range(n_in + 1))
        load_valid = Signal()
        load_slot = Signal(range(max(n_in, 2)))
        filter_ready = Signal()
        m.d.comb += [weight_read.addr.eq(p_weight_base + load_c),
                     filter_write.addr.eq(load_slot), filter_write.data.eq(weight_read.data),
                     filter_write.en.eq(load_valid)]
        m.d.sync += [load_valid.eq(0)]
        with m.If(start):
            m.d.sync += [load_c.eq(0), filter_ready.eq(0)]
        with m.Elif(running & (load_c < p_in_count)):
            m.d.sync += [load_c.eq(load_c + 1), load_valid.eq(1), load_slot.eq(load_c)]
            m.d.comb += events["weight_mem.read"].eq(1)
        with m.If(load_valid):
            m.d.comb += events["filter_bank.write"].eq(1)
            with m.If(load_slot == p_in_count - 1):
                m.d.sync += filter_ready.eq(1)

        # ------------------------------------------------------------------ row bookkeeping
        rows_filled = Signal(range(max(l.height for l in layers) + 2))
        rows_done = Signal(range(max(l.conv_height for l in layers) + 2))

        # ------------------------------------------------------------------ filler
        f_row = Signal(range(max(l.height for l in layers) + 2))
        f_col = Signal(range(max(l.width for l in layers) + 1))
        f_c = Signal(range(n_in + 1))
        f_slot = Signal(range(km + 1))
        f_active = Signal()  # RUN phase of a row (else waiting for it)
        fw_valid = Signal()
        fw_last = Signal()
        fw_slot = Signal(range(km + 1))
        fw_addr = Signal(range(config.w_max * n_in))
        source_data = Mux(p_source, buf_fill[1].data, buf_fill[0].data)
        fill_addr = (f_row * p_width + f_col) * p_in_total + p_in_base + f_c
        for b in range(2):
            m.d.comb += buf_fill[b].addr.eq(fill_addr)
        for s, (write, _) in enumerate(slots):
            m.d.comb += [write.addr.eq(fw_addr), write.data.eq(source_data[:ab]),
                         write.en.eq(fw_valid & (fw_slot == s))]
        m.d.sync += [fw_valid.eq(0), fw_last.eq(0)]
        with m.If(fw_valid):
            m.d.comb += events["image_mem.write"].eq(1)
            with m.If(fw_last):
                m.d.sync += rows_filled.eq(rows_filled + 1)
        # row r overwrites row r - k - 1, last read by output row r - k - 1 + padding
        may_fill = (f_row + p_pad < p_k) | (rows_done + p_k >= f_row + p_pad)
        f_last_c = f_c == p_in_count - 1
        f_last_col = f_col == p_col_hi - 1
        with m.If(start):
            m.d.sync += [f_row.eq(0), f_active.eq(0), f_slot.eq(0), rows_filled.eq(0)]
        with m.Elif(running & (f_row < p_fill_rows)):
            with m.If(~f_active):
                with m.If(may_fill):
                    m.d.sync += [f_active.eq(1), f_col.eq(p_col_lo), f_c.eq(0)]
            with m.Else():
                m.d.comb += events["act_buffer.read"].eq(1)
                m.d.sync += [fw_valid.eq(1), fw_slot.eq(f_slot),
                             fw_addr.eq((f_col - p_col_first) * n_in + f_c),
                             fw_last.eq(f_last_c & f_last_col)]
                m.d.sync += f_c.eq(f_c + 1)
                with m.If(f_last_c):
                    m.d.sync += [f_c.eq(0), f_col.eq(f_col + 1)]
                    with m.If(f_last_col):
                        m.d.sync += [f_active.eq(0), f_row.eq(f_row + 1),
                                     f_slot.eq(Mux(f_slot == p_k, 0, f_slot + 1))]

        # ------------------------------------------------------------------ computer
        y = Signal(range(max(l.conv_height for l in layers) + 1))
        x = Signal(range(config.w_max + 1))  # output column in the stripe
        # the pool window of (y, x): (y_pooled, x_pooled), position (y_phase, x_phase) in it
        pool_max = max(l.pool for l in layers)
        y_phase, x_phase = Signal(range(max(pool_max, 2))), Signal(range(max(pool_max, 2)))
        y_pooled = Signal(range(max(l.out_height for l in layers) + 1))
        x_pooled = Signal(range(config.w_max + 1))
        shift_col = Signal(range(config.w_max + 1))  # local (padded) column shifted next
        c = Signal(range(n_in + 1))
        slot_base = Signal(range(km + 1))  # slot of image row y - padding
        phase = Signal(range(4))
        WAIT, PRE, PIX, TAIL = range(4)
        pix_cycle = Signal(range(max(max(p.pixel_cycles() for p in program), 1) + 1))
        pre_left = Signal(range(km * n_in + 1))
        need = Signal(range(max(l.height for l in layers) + km + 2))
        m.d.comb += need.eq(Mux(y + p_k > p_fill_rows + p_pad, p_fill_rows, y + p_k - p_pad))
        issue = Signal()  # a column shift this cycle
        compute = Signal()  # ... that also feeds the SoPs
        with m.If(start):
            # the first image row's slot: row -padding is slot (-padding) mod (k + 1)
            m.d.sync += [y.eq(0), phase.eq(WAIT), rows_done.eq(0), y_phase.eq(0),
                         y_pooled.eq(0),
                         slot_base.eq(Mux(p_pad == 0, 0, p_k + 1 - p_pad))]
        with m.Elif(running):
            with m.Switch(phase):
                with m.Case(WAIT):
                    with m.If(filter_ready & (rows_filled >= need) & (y < p_conv_rows)):
                        m.d.sync += [shift_col.eq(0), c.eq(0), x.eq(0), pix_cycle.eq(0),
                                     x_phase.eq(0), x_pooled.eq(0),
                                     pre_left.eq((p_k - 1) * p_in_count),
                                     phase.eq(Mux(p_k == 1, PIX, PRE))]
                    with m.Elif(y == p_conv_rows):
                        m.d.sync += phase.eq(TAIL)
                with m.Case(PRE):
                    m.d.comb += issue.eq(1)
                    m.d.sync += [pre_left.eq(pre_left - 1), c.eq(c + 1)]
                    with m.If(c == p_in_count - 1):
                        m.d.sync += [c.eq(0), shift_col.eq(shift_col + 1)]
                    with m.If(pre_left == 1):
                        m.d.sync += phase.eq(PIX)
                with m.Case(PIX):
                    m.d.comb += [issue.eq(pix_cycle < p_in_count),
                                 compute.eq(pix_cycle < p_in_count)]
                    m.d.sync += pix_cycle.eq(pix_cycle + 1)
                    with m.If(compute):
                        m.d.sync += c.eq(c + 1)
                    with m.If(pix_cycle == p_pixel - 1):
                        m.d.sync += [pix_cycle.eq(0), c.eq(0), x.eq(x + 1),
                                     shift_col.eq(shift_col + 1),
                                     x_phase.eq(Mux(x_phase == p_pool - 1, 0, x_phase + 1)),
                                     x_pooled.eq(x_pooled + (x_phase == p_pool - 1))]
                        with m.If(x == p_out_cols - 1):
                            m.d.sync += [phase.eq(WAIT), y.eq(y + 1), rows_done.eq(rows_done + 1),
                                         slot_base.eq(Mux(slot_base == p_k, 0, slot_base + 1)),
                                         y_phase.eq(Mux(y_phase == p_pool - 1, 0, y_phase + 1)),
                                         y_pooled.eq(y_pooled + (y_phase == p_pool - 1))]

        # issue stage: addresses; the column's validity per window row
        m.d.comb += filter_read.addr.eq(c)
        for _, read in slots:
            m.d.comb += read.addr.eq(shift_col * n_in + c)
        image_col = Signal(signed(len(shift_col) + len(p_col_first) + 1))  # may be negative
        m.d.comb += image_col.eq(shift_col + p_col_first)
        col_ok = (image_col >= 0) & (image_col < p_width)
        row_ok = Signal(km)
        for i in range(km):
            image_row = Signal(signed(len(y) + 2), name=f"image_row{i}")
            m.d.comb += [image_row.eq(y + i - p_pad),
                         row_ok[i].eq((p_k > i) & (image_row >= 0) & (image_row < p_height))]
        read_mask = Mux(col_ok, row_ok, 0)
        with m.If(issue):
            m.d.comb += [events["image_bank.shift"].eq(1),
                         events["image_mem.read"].eq(sum(read_mask[i] for i in range(km)))]
        with m.If(running & ~compute):
            m.d.comb += events["engine.idle"].eq(1)
        with m.If((state != RUN) & (state != IDLE)):
            m.d.comb += events["engine.idle"].eq(1)

        # stage 1 (read data): the new column, the window, the SoPs
        s1_valid, s1_compute = Signal(), Signal()
        s1_c = Signal.like(c)
        s1_mask = Signal(km)
        s1_slot_base = Signal.like(slot_base)
        s1_first, s1_last = Signal(), Signal()
        s1_pixel = Signal(range(max(mapping.psum_words, 2)))
        s1_pool = Signal(len(Cat(y_phase, x_phase, y_pooled, x_pooled)))
        pixel_index = y * p_out_cols + x
        m.d.sync += [s1_valid.eq(issue), s1_compute.eq(compute), s1_c.eq(c),
                     s1_mask.eq(read_mask), s1_slot_base.eq(slot_base),
                     s1_first.eq(c == 0), s1_last.eq(c == p_in_count - 1),
                     s1_pixel.eq(pixel_index),
                     s1_pool.eq(Cat(y_phase, x_phase, y_pooled, x_pooled))]
        column = []
        slot_data = Array(read.data for _, read in slots)
        for i in range(km):
            slot = Signal(range(km + 1), name=f"row_slot{i}")
            total = s1_slot_base + i
            m.d.comb += slot.eq(Mux(total > p_k, total - p_k - 1, total))
            value = Signal(signed(ab), name=f"new_col{i}")
            m.d.comb += value.eq(Mux(s1_mask[i], slot_data[slot], 0))
            column.append(value)
        stored = Array(Signal(km * (km - 1) * ab, name=f"image_bank{ch}")
                       for ch in range(n_in)) if km > 1 else None
        # window[i][j]: row i, column j (j = km - 1 the newest)
        window = [[None] * km for _ in range(km)]
        if km > 1:
            old = stored[s1_c]
            for i in range(km):
                for j in range(km - 1):
                    window[i][j] = old.word_select(i * (km - 1) + j, ab).as_signed()
            shifted = Cat(*[Cat(*[window[i][j] for j in range(1, km - 1)], column[i])
                            for i in range(km)])
            with m.If(s1_valid):
                m.d.sync += stored[s1_c].eq(shifted)
        for i in range(km):
            window[i][km - 1] = column[i]
        # silence the taps outside the k x k kernel: their operands stay zero
        operands = []
        for i in range(km):
            for j in range(km):
                active = (i < p_k) & (j >= km - p_k)
                operand = Signal(signed(ab), name=f"tap{i}_{j}")
                m.d.comb += operand.eq(Mux(active & s1_compute, window[i][j], 0))
                operands.append(operand)
        weights = filter_read.data
        sop_results = []
        for unit in range(n_out):
            bits = weights[unit * taps:(unit + 1) * taps]
            terms = [Mux(bits[t], operands[t], ~operands[t]) for t in range(taps)]
            carries = sum(~bits[t] for t in range(taps))
            result = Signal(signed(w["sop"]), name=f"sop{unit}")
            m.d.comb += result.eq(_tree_sum(terms) + Mux(s1_compute, carries, 0))
            sop_results.append(result)
        with m.If(s1_compute):
            m.d.comb += [events["filter_bank.read"].eq(1), events["sop.mac"].eq(p_macs),
                         events["sop.carry_popcount"].eq(p_out_count),
                         events["channel_summer.accumulate"].eq(p_out_count)]

        # stage 2: the channel summers
        s2_valid, s2_first, s2_last = Signal(), Signal(), Signal()
        s2_pixel = Signal.like(s1_pixel)
        s2_pool = Signal.like(s1_pool)
        sop_reg = [Signal(signed(w["sop"]), name=f"sop_reg{u}") for u in range(n_out)]
        m.d.sync += [s2_valid.eq(s1_compute), s2_first.eq(s1_first), s2_last.eq(s1_last),
                     s2_pixel.eq(s1_pixel), s2_pool.eq(s1_pool)]
        m.d.sync += [reg.eq(val) for reg, val in zip(sop_reg, sop_results)]
        if psum_depth:
            m.d.comb += psum_read.addr.eq(s1_pixel)
            with m.If(s1_compute & s1_first & ~p_first):
                m.d.comb += events["psum_mem.read"].eq(1)
        summers = [Signal(signed(acc_bits), name=f"summer{u}") for u in range(n_out)]
        sums = []
        for u in range(n_out):
            init = psum_read.data.word_select(u, acc_bits).as_signed() if psum_depth else 0
            base = Mux(s2_first, Mux(p_first, 0, init), summers[u])
            total = Signal(signed(acc_bits), name=f"summer_next{u}")
            m.d.comb += total.eq(base + sop_reg[u])
            sums.append(total)
        hold = [Signal(signed(acc_bits), name=f"hold{u}") for u in range(n_out)]
        hold_pool = Signal.like(s1_pool)
        drain = Signal(range(n_out + 1))
        draining = Signal()
        load_hold = Signal()  # the last channel of a pixel: its sums to the output stage
        with m.If(s2_valid):
            m.d.sync += [s.eq(t) for s, t in zip(summers, sums)]
            with m.If(s2_last):
                with m.If(p_last):
                    m.d.comb += load_hold.eq(1)
                if psum_depth:
                    with m.Else():
                        m.d.comb += [psum_write.addr.eq(s2_pixel),
                                     psum_write.data.eq(Cat(*sums)), psum_write.en.eq(1),
                                     events["psum_mem.write"].eq(1)]

        # the output stage: one channel per cycle
        held = Array(hold)[drain]
        biased = Signal(signed(acc_bits + 1))
        m.d.comb += biased.eq(held + bias_table[p_bias_base + drain])
        rectified = Signal(signed(acc_bits + 1))
        m.d.comb += rectified.eq(Mux(p_relu & (biased < 0), 0, biased))
        product = Signal(signed(w["product"]))
        m.d.comb += product.eq(rectified * p_mult)
        rounded = Signal(signed(w["product"]))
        m.d.comb += rounded.eq(_round_shift(m, product, p_shift, p_mode, w["product"]))
        scaled = Mux(rounded < p_lo, p_lo, Mux(rounded > p_hi, p_hi, rounded))
        value = Signal(signed(out_bits))
        steps = threshold_steps(mapping)
        if steps:
            # the threshold path: count the channel's thresholds the accumulator reaches
            field_bits = acc_bits + 1
            words = threshold_words(mapping, field_bits)
            m.submodules.threshold_mem = threshold_mem = placed_memory(
                shape=steps * field_bits, depth=max(len(words), 2), init=words,
                writable=False, sync_read=False)
            threshold_read = threshold_mem.read_port(domain="comb")
            m.d.comb += threshold_read.addr.eq(p_threshold_base + drain)
            reached = [(p_steps > k) & (biased >= threshold_read.data.word_select(
                k, field_bits).as_signed()) for k in range(steps)]
            reached_count = Signal(range(steps + 1))
            m.d.comb += reached_count.eq(sum(reached))
            counted = Mux(p_bipolar, 2 * reached_count - 1, reached_count + p_offset)
            m.d.comb += value.eq(Mux(p_steps != 0, counted, scaled))
            with m.If(draining & (p_steps != 0)):
                m.d.comb += [events["threshold_mem.read"].eq(1),
                             events["output_stage.compare"].eq(p_steps)]
        else:
            m.d.comb += value.eq(scaled)
        # the pool unit: the running maximum of each open window of the current pool row
        pool_row_phase, pool_col_phase = Signal.like(y_phase), Signal.like(x_phase)
        pooled_row, pool_col = Signal.like(y_pooled), Signal.like(x_pooled)
        m.d.comb += Cat(pool_row_phase, pool_col_phase, pooled_row, pool_col).eq(hold_pool)
        m.d.comb += [pool_read.addr.eq(pool_col * n_out + drain),
                     pool_write.addr.eq(pool_col * n_out + drain)]
        opens = (pool_row_phase == 0) & (pool_col_phase == 0)
        closes = (pool_row_phase == p_pool - 1) & (pool_col_phase == p_pool - 1)
        best = Signal(signed(out_bits))
        m.d.comb += best.eq(Mux(opens | (value > pool_read.data), value, pool_read.data))
        dest_addr = ((pooled_row * p_out_width + p_pool_start + pool_col) * p_out_total
                     + p_out_base + drain)
        with m.If(draining):
            m.d.comb += [events["output_stage.scale"].eq(p_steps == 0),
                         pool_write.data.eq(best),
                         pool_write.en.eq(~closes)]
            with m.If(~opens):
                m.d.comb += events["pool.compare"].eq(1)
            with m.If(closes):
                m.d.comb += events["act_buffer.write"].eq(1)
                for b in range(2):
                    with m.If(p_source != b):
                        m.d.comb += [buf_write[b].addr.eq(dest_addr),
                                     buf_write[b].data.eq(best), buf_write[b].en.eq(1)]
            m.d.sync += drain.eq(drain + 1)
            with m.If(drain == p_out_count - 1):
                m.d.sync += draining.eq(0)

        # after the drain's updates: a pixel may load the register on the drain's last cycle
        with m.If(load_hold):
            m.d.sync += [*[h.eq(t) for h, t in zip(hold, sums)], hold_pool.eq(s2_pool),
                         drain.eq(0), draining.eq(1)]

        # end of a pass: the computer is done and nothing is in flight
        pass_done = running & (phase == TAIL) & ~s1_valid & ~s2_valid & ~draining \
            & ~fw_valid
        with m.If(start):
            m.d.sync += state.eq(RUN)
        with m.If(pass_done):
            with m.If(index == n_pass - 1):
                m.d.sync += [state.eq(UNLOAD), count.eq(0)]
            with m.Else():
                m.d.sync += [state.eq(START), index.eq(index + 1)]
        return m


def _tree_sum(terms):
    """A balanced adder tree (depth log2 of the operands)."""
    level = list(terms)
    while len(level) > 1:
        level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def _round_shift(m, product, shift, mode, width):
    """``round(product / 2**shift)`` by a rounding code (``mapping.ROUNDING_CODES``)."""
    floor = Signal(signed(width), name="round_floor")
    m.d.comb += floor.eq(product >> shift)
    mask = Signal(width, name="round_mask")
    m.d.comb += mask.eq((Const(1, width + 1) << shift) - 1)
    rest = Signal(width, name="round_rest")
    m.d.comb += rest.eq(product.as_unsigned() & mask)
    half = Signal(width + 1, name="round_half")
    m.d.comb += half.eq((Const(1, width + 2) << shift) >> 1)
    above = Mux(shift == 0, 0, rest > half)
    tie = Mux(shift == 0, 0, rest == half)
    nonzero = rest != 0
    negative = product < 0
    up = Signal(name="round_up")
    with m.Switch(mode):
        with m.Case(0):
            m.d.comb += up.eq(0)
        with m.Case(1):
            m.d.comb += up.eq(nonzero)
        with m.Case(2):
            m.d.comb += up.eq(negative & nonzero)
        with m.Case(3):
            m.d.comb += up.eq(~negative & nonzero)
        with m.Case(4):
            m.d.comb += up.eq(above | (tie & floor[0]))
        with m.Case(5):
            m.d.comb += up.eq(above | (tie & ~negative))
        with m.Case(6):
            m.d.comb += up.eq(above | (tie & negative))
    return floor + up

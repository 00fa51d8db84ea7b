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
                 SoP unit, then P - C idle cycles (P = max(C, the output channels drained),
                 on a pooled layer at least POOL_READ_TO_WRITE + 1).
Pipeline of a computer cycle: issue (image memory read addresses), the new column (registered;
the filter bank read), window (the new column and the image bank's older ones, registered as
the taps, beside the filter word and each unit's carry count, stored in the word), the SoP
trees (``x XOR ~w`` summed with the carry count, registered after the first adder level and
then every ``sop_stage_levels`` levels, ``sop_pipeline_registers``), the SoP result register,
the channel summers (accumulate; the first channel starts from zero or from the partial sums
of the earlier input passes; the last channel stores the partial sums or loads the output
stage's holding register). The output stage drains the holding register one channel per
cycle into OUTPUT_STAGES registers: bias, ReLU, fixed-point scale, rounding, saturation (or,
for a layer with thresholds, the count of the channel's thresholds the biased sum reaches,
one comparator per step), then the pool unit (running maxima of the open windows of the
current pool row, in a memory read three cycles before it is written) and the destination
buffer.
The sequencer's program is a ROM read at the pass index in the FETCH cycle before START.
The cycle model (``accel.hw.yodann.model``) follows the same schedule.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring

from accel.hw.common.counters import EventCounterBank
from accel.hw.common.memory import placed_memory
from accel.hw.common.parameters import connect_parameter_write, registered_port
from accel.hw.common.stream_harness import axi_stream_ports
from accel.hw.yodann.mapping import (MAX_SCALE_BITS, POOL_READ_TO_WRITE, ROUNDING_CODES,
                                     EngineConfig, YodaNNMapping, carry_count_bits,
                                     carry_count_field, fill_rows, filter_word_bits,
                                     filter_words, passes, stripe_columns)


# the output stage's registers from the drain's channel select to the pool and buffer write
# (the cycle model reads it; the SoP trees' depth is ``EngineConfig.sop_stage_levels``)
OUTPUT_STAGES = 10
# the registers from the image memory's read data to the SoP trees: the new column, the taps
# (the cycle model reads it)
WINDOW_STAGES = 2
DSP_LOW_BITS = 17  # an ECP5/7-series DSP multiplies 18 x 18 signed: 17 unsigned bits
# SoP units one copy of the taps register drives when the SoP trees are cut for an FPGA: one
# register for all 32 units of the paper engine put 5.4 ns of route on its critical path (ECP5)
TAP_COPY_UNITS = 8


def tap_copies(config: EngineConfig) -> int:
    """Copies of the taps register, each driving ``TAP_COPY_UNITS`` SoP units (one for uncut,
    ASIC-style trees). The copies carry ``keep`` so that synthesis does not merge them."""
    return -(-config.n_out // TAP_COPY_UNITS) if config.sop_stage_levels > 0 else 1


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


def pipeline_register_bits(mapping: YodaNNMapping) -> int:
    """Flip-flops of the compute pipeline, clocked every cycle: the new column, the taps,
    the SoP trees' registered partial sums and results, the channel summers, the holding
    registers and the output stage's data registers (its control and address registers, and
    the copies of the control flags, not counted)."""
    config, w = mapping.config, engine_widths(mapping)
    taps = config.k_max ** 2
    partial_sums = sum(sop_tree_registers(config).values())
    output_stage = (2 * w["acc"] + 2 * (w["acc"] + 1)  # held and bias, biased, rectified
                    + 3 * w["product"]  # the two partial products, the product
                    + (w["product"] + 4) + w["product"]  # rounding
                    + 4 * w["out"])  # the value (twice), the pool's word, the maximum
    return (window_kernel(mapping) * w["activation"]  # the new column
            + tap_copies(config) * window_kernel(mapping) ** 2 * w["activation"]  # live taps
            + config.n_out * (taps + taps.bit_length())  # the weights and carry counts
            + config.n_out * (partial_sums + 1) * w["sop"]
            + 2 * config.n_out * w["acc"] + output_stage)


def event_declarations(mapping: YodaNNMapping) -> dict[str, int]:
    """Event name -> the largest increment one cycle adds."""
    config = mapping.config
    taps = config.k_max ** 2
    return {
        "input.beat": 1, "output.beat": 1,
        "act_buffer.read": 1, "act_buffer.write": 1,
        "weight_mem.read": 1, "filter_bank.write": 1, "filter_bank.read": 1,
        "image_mem.write": 1, "image_mem.read": config.k_max, "image_bank.shift": 1,
        "sop.mac": config.n_out * taps,
        "channel_summer.accumulate": config.n_out,
        "psum_mem.read": 1, "psum_mem.write": 1,
        "bias_mem.read": 1, "output_stage.scale": 1, "pool.compare": 1,
        "engine.idle": 1,
        # layers whose output stage compares with thresholds instead of scaling
        **({"threshold_mem.read": 1, "output_stage.compare": threshold_steps(mapping)}
           if threshold_steps(mapping) else {}),
    }


def program_fields(mapping: YodaNNMapping) -> dict[str, tuple[list[int], Shape]]:
    """The sequencer's program: per field, its value in every pass (``passes``) and its
    shape (wide enough that no comparison with it is constant when every pass holds the
    same value)."""
    config, layers, program = mapping.config, mapping.layers, passes(mapping)
    n_in, out_bits = config.n_in, engine_widths(mapping)["out"]
    fields = {}

    def field(name, values, shape=None):
        values = [int(v) for v in values]
        if shape is None:
            magnitude = max(abs(v) for v in values + [255])
            shape = signed(magnitude.bit_length() + 1) if min(values) < 0 \
                else unsigned(magnitude.bit_length())
        fields[name] = (values, shape)

    def per_layer(attr):
        return [attr(layers[p.layer]) for p in program]

    field("in_count", (p.in_count for p in program))
    # a count's last value, stored: a compare with a field minus one put the subtract's carry
    # chain in front of the counter (the pooled-column counter's 10 levels, 138.9 MHz seed 2)
    field("in_last", (p.in_count - 1 for p in program))
    field("in_base", (p.in_base for p in program))
    field("out_count", (p.out_count for p in program))
    field("out_count_last", (p.out_count - 1 for p in program))
    field("out_base", (p.out_base for p in program))
    field("first", (p.first for p in program))
    field("last", (p.last for p in program))
    field("weight_base", (p.weight_base for p in program))
    field("bias_base", (p.bias_base for p in program))
    field("source", (p.source for p in program))
    field("pixel_last", (p.pixel_cycles() - 1 for p in program))
    field("k", per_layer(lambda x: x.kernel))
    field("pad", per_layer(lambda x: x.padding))
    field("height", per_layer(lambda x: x.height))
    field("width", per_layer(lambda x: x.width))
    field("in_total", per_layer(lambda x: x.in_channels))
    field("out_total", per_layer(lambda x: x.out_channels))
    field("conv_rows", per_layer(lambda x: x.conv_height))
    field("fill_rows", per_layer(fill_rows))
    field("out_width", per_layer(lambda x: x.out_width))
    field("pool_last", per_layer(lambda x: x.pool - 1))
    field("relu", per_layer(lambda x: x.relu))
    requants = [layers[p.layer].requant for p in program]
    wide = (1 << (out_bits - 1))
    # loadable: any multiplier the output stage takes, whatever the network's own
    field("mult", [r.multiplier if r else 1 for r in requants],
          unsigned(MAX_SCALE_BITS) if mapping.loadable_weights else None)
    field("shift", [r.shift if r else 0 for r in requants])
    field("mode", [ROUNDING_CODES[r.rounding] if r else 0 for r in requants])
    field("lo", [r.lo if r else -wide for r in requants], signed(out_bits + 1))
    field("hi", [r.hi if r else wide - 1 for r in requants], signed(out_bits + 1))
    field("out_cols_last", (p.stripe.out_cols - 1 for p in program))
    field("pool_start", (p.stripe.out_start // layers[p.layer].pool for p in program))
    field("col_first", (p.stripe.out_start - layers[p.layer].padding for p in program))
    columns = [stripe_columns(layers[p.layer], p.stripe) for p in program]
    field("col_lo", (lo for lo, _ in columns))
    field("col_hi_last", (hi - 1 for _, hi in columns))
    field("macs", (p.out_count * layers[p.layer].kernel ** 2 for p in program))
    field("prologue", ((layers[p.layer].kernel - 1) * p.in_count for p in program))
    # the filler's address steps: its addresses are counters, not products of fields
    field("fill_start", (p.in_base + lo * layers[p.layer].in_channels
                         for p, (lo, _) in zip(program, columns)))
    field("row_stride", per_layer(lambda x: x.width * x.in_channels))
    field("col_skip", (layers[p.layer].in_channels - p.in_count + 1 for p in program))
    field("image_start", ((lo - p.stripe.out_start + layers[p.layer].padding) * n_in
                          for p, (lo, _) in zip(program, columns)))
    field("image_skip", (n_in - p.in_count + 1 for p in program))
    # the threshold path (0 steps: the layer scales instead)
    bases, base = [], 0
    for layer in layers:
        bases.append(base)
        base += layer.out_channels if layer.thresholds is not None else 0
    field("steps", per_layer(lambda x: 0 if x.thresholds is None else x.thresholds.shape[1]))
    field("threshold_base", (bases[p.layer] + p.out_base for p in program))
    field("bipolar", per_layer(lambda x: x.bipolar_out))
    field("offset", per_layer(lambda x: x.threshold_offset))
    return fields


# the program's fields a network's values set (its output stages' scales); every other field
# is its shape. A loadable engine keeps them in a memory of their own (``scale_mem``)
SCALE_FIELDS = ("mult", "shift", "mode")


def program_parts(mapping: YodaNNMapping) -> tuple[dict, dict]:
    """The program's fields in its ROM and in the scale memory: a loadable engine keeps the
    scale fields apart, so synthesis still folds the ROM's constant columns away; a fixed
    engine has no scale memory (its second part is empty)."""
    fields = program_fields(mapping)
    scales = ({name: fields.pop(name) for name in SCALE_FIELDS}
              if mapping.loadable_weights else {})
    return fields, scales


def program_words(fields) -> tuple[int, list[int]]:
    """The program ROM: its width and one word per pass, the fields packed from bit 0 in
    ``program_fields``'s order."""
    width = sum(Shape.cast(shape).width for _, shape in fields.values())
    passes_ = len(next(iter(fields.values()))[0])
    words = []
    for step in range(passes_):
        word, at = 0, 0
        for values, shape in fields.values():
            bits = Shape.cast(shape).width
            word |= (values[step] & ((1 << bits) - 1)) << at
            at += bits
        words.append(word)
    return width, words


def window_kernel(mapping: YodaNNMapping) -> int:
    """The image bank's window: the network's largest kernel (at most k_max); the SoP taps
    beyond it are constant zeros."""
    return max(layer.kernel for layer in mapping.layers)


def bias_words(mapping: YodaNNMapping) -> list[int]:
    """The bias memory: every layer's per-channel biases, in layer order."""
    return [int(b) for layer in mapping.layers for b in layer.bias]


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


class YodaNNTop(wiring.Component):
    """AXI-Stream in (one activation per beat) and out (one output value per beat); with
    loadable weights, the parameter port (``param_*``, ``accel.hw.yodann.loading``)."""

    def __init__(self, mapping: YodaNNMapping):
        # the loading module reads this module's word layouts, so it is imported here
        from accel.hw.yodann.loading import parameter_layout

        self.mapping = mapping
        self.widths = engine_widths(mapping)
        self.program = passes(mapping)
        self.counters = EventCounterBank(event_declarations(mapping),
                                         enabled=mapping.count_events)
        self.layout = parameter_layout(mapping) if mapping.loadable_weights else None
        super().__init__({**axi_stream_ports(self.widths["activation"], self.widths["out"],
                                             self.counters),
                          **(self.layout.port_members() if self.layout else {})})

    def _parameter_memory(self, m, name: str, port, **kwargs):
        """A weight-like memory (``accel.hw.yodann.loading``), writable through the parameter
        port ``port`` (registered) if the design is loadable."""
        memory = placed_memory(writable=self.layout is not None, **kwargs)
        m.submodules[name] = memory
        if self.layout is not None:
            connect_parameter_write(m, memory, port, self.layout.named(name), self.layout)
        return memory

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
        kw = window_kernel(mapping)  # the image memory's and bank's rows
        ab, acc_bits, out_bits = w["activation"], w["acc"], w["out"]
        taps = km * km
        program = self.program
        layers = mapping.layers
        n_pass = len(program)

        # ------------------------------------------------------------------ memories
        depth = max(mapping.buffer_values, 2)
        buffers = []
        for b in range(2):
            # one synchronous read port, the filler's during a pass, the unloader's after it
            mem = placed_memory(shape=signed(out_bits), depth=depth, init=[], writable=True,
                                sync_read=True)
            m.submodules[f"act_buffer{b}"] = mem
            buffers.append(mem)
        buf_write = [mem.write_port() for mem in buffers]
        buf_read = [mem.read_port() for mem in buffers]
        words = filter_words(mapping)
        port = registered_port(m, self) if self.layout else None
        weight_mem = self._parameter_memory(
            m, "weight_mem", port, shape=filter_word_bits(config), depth=max(len(words), 2),
            init=words, sync_read=True, weights=True)
        weight_read = weight_mem.read_port()
        m.submodules.filter_bank = filter_bank = placed_memory(
            shape=filter_word_bits(config), depth=max(n_in, 2), init=[], writable=True,
            sync_read=True)
        filter_write, filter_read = filter_bank.write_port(), filter_bank.read_port()
        slots = []
        for s in range(kw + 1):  # image rows: the largest kernel's and the one being filled
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
        channel_bias = bias_words(mapping)
        bias_rom = self._parameter_memory(
            m, "bias_rom", port, shape=signed(acc_bits), depth=max(len(channel_bias), 2),
            init=channel_bias, sync_read=True, weights=True)
        bias_read = bias_rom.read_port()
        pool_depth = config.w_max * n_out
        m.submodules.pool_buffer = pool_mem = placed_memory(
            shape=signed(out_bits), depth=pool_depth, init=[], writable=True, sync_read=True)
        pool_write, pool_read = pool_mem.write_port(), pool_mem.read_port()

        # ------------------------------------------------------------------ the program
        # one ROM word per pass, read at the pass index: the FETCH cycle before START reads it
        index = Signal(range(max(n_pass, 2)))
        # loadable: the scale fields in a memory written through the parameter port
        fields, scales = program_parts(mapping)
        program_width, program_init = program_words(fields)
        m.submodules.program_rom = program_rom = placed_memory(
            shape=program_width, depth=max(n_pass, 2), init=program_init, writable=False,
            sync_read=True)
        program_read = program_rom.read_port()  # (the port's name is the variable's)
        reads = [(program_read, fields)]
        if scales:
            scale_width, scale_init = program_words(scales)
            scale_mem = self._parameter_memory(m, "scale_mem", port, shape=scale_width,
                                               depth=max(n_pass, 2), init=scale_init,
                                               sync_read=True)
            scale_read = scale_mem.read_port()
            reads.append((scale_read, scales))
        current = {}
        for read, part in reads:
            m.d.comb += read.addr.eq(index)
            at = 0
            for name, (_, shape) in part.items():
                current[name] = Signal(shape, name=f"pass_{name}")
                width = Shape.cast(shape).width
                m.d.comb += current[name].eq(read.data[at:at + width])
                at += width
        p_in_count = current["in_count"]
        p_in_last = current["in_last"]
        p_in_base = current["in_base"]
        p_out_count = current["out_count"]
        p_out_count_last = current["out_count_last"]
        p_out_base = current["out_base"]
        p_first = current["first"]
        p_last = current["last"]
        p_weight_base = current["weight_base"]
        p_bias_base = current["bias_base"]
        p_source = current["source"]
        p_pixel_last = current["pixel_last"]
        p_k = current["k"]
        p_pad = current["pad"]
        p_height = current["height"]
        p_width = current["width"]
        p_in_total = current["in_total"]
        p_out_total = current["out_total"]
        p_conv_rows = current["conv_rows"]
        p_fill_rows = current["fill_rows"]
        p_out_width = current["out_width"]
        p_pool_last = current["pool_last"]
        p_relu = current["relu"]
        p_mult = current["mult"]
        p_shift = current["shift"]
        p_mode = current["mode"]
        p_lo = current["lo"]
        p_hi = current["hi"]
        p_out_cols_last = current["out_cols_last"]
        p_pool_start = current["pool_start"]
        p_col_first = current["col_first"]
        p_col_lo = current["col_lo"]
        p_col_hi_last = current["col_hi_last"]
        p_macs = current["macs"]
        p_prologue = current["prologue"]
        p_fill_start = current["fill_start"]
        p_row_stride = current["row_stride"]
        p_col_skip = current["col_skip"]
        p_image_start = current["image_start"]
        p_image_skip = current["image_skip"]
        p_steps = current["steps"]
        p_threshold_base = current["threshold_base"]
        p_bipolar = current["bipolar"]
        p_offset = current["offset"]
        final_values = layers[-1].out_values

        # ------------------------------------------------------------------ top state
        state = Signal(range(6))
        IDLE, LOAD, FETCH, START, RUN, UNLOAD = range(6)
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
                m.d.sync += [state.eq(FETCH), index.eq(0), count.eq(0)]
            with m.Else():
                m.d.sync += state.eq(LOAD)
        final_buffer = len(layers) % 2
        # the unloader reads ahead: the address of the value shown next cycle (count 0 from
        # the last cycle of the last pass, when the filler is idle)
        unload_fire = (state == UNLOAD) & self.m_axis_tready
        unload_addr = Mux(unload_fire, count + 1, count)
        m.d.comb += [self.m_axis_tdata.eq(buf_read[final_buffer].data),
                     self.m_axis_tvalid.eq(state == UNLOAD)]
        with m.If(unload_fire):
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
        # the weight memory's address, counted beside ``load_c`` (p_weight_base + load_c,
        # registered: the adder in front of the memory's many blocks was a critical path)
        weight_addr = Signal.like(weight_read.addr)
        m.d.comb += [weight_read.addr.eq(weight_addr),
                     filter_write.addr.eq(load_slot), filter_write.data.eq(weight_read.data),
                     filter_write.en.eq(load_valid)]
        m.d.sync += [load_valid.eq(0)]
        with m.If(start):
            m.d.sync += [load_c.eq(0), weight_addr.eq(p_weight_base), filter_ready.eq(0)]
        with m.Elif(running & (load_c < p_in_count)):
            m.d.sync += [load_c.eq(load_c + 1), weight_addr.eq(weight_addr + 1),
                         load_valid.eq(1), load_slot.eq(load_c)]
            m.d.comb += events["weight_mem.read"].eq(1)
        with m.If(load_valid):
            m.d.comb += events["filter_bank.write"].eq(1)
            with m.If(load_slot == p_in_last):
                m.d.sync += filter_ready.eq(1)

        # ------------------------------------------------------------------ row bookkeeping
        rows_filled = Signal(range(max(l.height for l in layers) + 2))
        rows_done = Signal(range(max(l.conv_height for l in layers) + 2))

        # ------------------------------------------------------------------ filler
        f_row = Signal(range(max(l.height for l in layers) + 2))
        f_col = Signal(range(max(l.width for l in layers) + 1))
        f_c = Signal(range(n_in + 1))
        f_slot = Signal(range(kw + 1))
        f_active = Signal()  # RUN phase of a row (else waiting for it)
        fw_valid = Signal()
        fw_last = Signal()
        fw_slot = Signal(range(kw + 1))
        fw_addr = Signal(range(config.w_max * n_in))
        # the value (f_row, f_col, channel p_in_base + f_c) of the source buffer, and its
        # image-memory address (f_col - p_col_first, f_c), kept as counters
        address_bits = (4 * depth).bit_length()
        f_row_base = Signal(address_bits)  # (f_row, p_col_lo, p_in_base)
        f_addr = Signal(address_bits)
        f_image_addr = Signal((2 * config.w_max * n_in).bit_length())
        f_reading = Signal()
        source_data = Mux(p_source, buf_read[1].data, buf_read[0].data)
        for b in range(2):
            m.d.comb += buf_read[b].addr.eq(Mux(f_reading, f_addr, unload_addr))
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
        f_last_c = f_c == p_in_last
        f_last_col = f_col == p_col_hi_last
        m.d.comb += f_reading.eq(running & (f_row < p_fill_rows) & f_active)
        with m.If(start):
            m.d.sync += [f_row.eq(0), f_active.eq(0), f_slot.eq(0), rows_filled.eq(0),
                         f_row_base.eq(p_fill_start)]
        with m.Elif(running & (f_row < p_fill_rows)):
            with m.If(~f_active):
                with m.If(may_fill):
                    m.d.sync += [f_active.eq(1), f_col.eq(p_col_lo), f_c.eq(0),
                                 f_addr.eq(f_row_base), f_image_addr.eq(p_image_start)]
            with m.Else():
                m.d.comb += events["act_buffer.read"].eq(1)
                m.d.sync += [fw_valid.eq(1), fw_slot.eq(f_slot), fw_addr.eq(f_image_addr),
                             fw_last.eq(f_last_c & f_last_col)]
                m.d.sync += [f_c.eq(f_c + 1), f_addr.eq(f_addr + 1),
                             f_image_addr.eq(f_image_addr + 1)]
                with m.If(f_last_c):
                    m.d.sync += [f_c.eq(0), f_col.eq(f_col + 1),
                                 f_addr.eq(f_addr + p_col_skip),
                                 f_image_addr.eq(f_image_addr + p_image_skip)]
                    with m.If(f_last_col):
                        m.d.sync += [f_active.eq(0), f_row.eq(f_row + 1),
                                     f_row_base.eq(f_row_base + p_row_stride),
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
        pixel = Signal(range(max(mapping.psum_words, 2) + 1))  # y * out_cols + x, counted
        slot_base = Signal(range(kw + 1))  # slot of image row y - padding
        phase = Signal(range(4))
        WAIT, PRE, PIX, TAIL = range(4)
        pix_cycle = Signal(range(max(max(p.pixel_cycles() for p in program), 1) + 1))
        pre_left = Signal(range(km * n_in + 1))
        # the image rows output row y reads up to, a register set whenever y is: computed from
        # y in the wait's condition it put two adders and two compares before the counters
        need = Signal(range(max(l.height for l in layers) + km + 2))

        def rows_needed(row):
            return Mux(row + p_k > p_fill_rows + p_pad, p_fill_rows, row + p_k - p_pad)

        issue = Signal()  # a column shift this cycle
        compute = Signal()  # ... that also feeds the SoPs
        with m.If(start):
            # the first image row's slot: row -padding is slot (-padding) mod (k + 1)
            m.d.sync += [y.eq(0), need.eq(rows_needed(0)), phase.eq(WAIT), rows_done.eq(0),
                         y_phase.eq(0), y_pooled.eq(0), pixel.eq(0),
                         slot_base.eq(Mux(p_pad == 0, 0, p_k + 1 - p_pad))]
        with m.Elif(running):
            with m.Switch(phase):
                with m.Case(WAIT):
                    with m.If(filter_ready & (rows_filled >= need) & (y < p_conv_rows)):
                        m.d.sync += [shift_col.eq(0), c.eq(0), x.eq(0), pix_cycle.eq(0),
                                     x_phase.eq(0), x_pooled.eq(0),
                                     pre_left.eq(p_prologue),
                                     phase.eq(Mux(p_k == 1, PIX, PRE))]
                    with m.Elif(y == p_conv_rows):
                        m.d.sync += phase.eq(TAIL)
                with m.Case(PRE):
                    m.d.comb += issue.eq(1)
                    m.d.sync += [pre_left.eq(pre_left - 1), c.eq(c + 1)]
                    with m.If(c == p_in_last):
                        m.d.sync += [c.eq(0), shift_col.eq(shift_col + 1)]
                    with m.If(pre_left == 1):
                        m.d.sync += phase.eq(PIX)
                with m.Case(PIX):
                    m.d.comb += [issue.eq(pix_cycle < p_in_count),
                                 compute.eq(pix_cycle < p_in_count)]
                    m.d.sync += pix_cycle.eq(pix_cycle + 1)
                    with m.If(compute):
                        m.d.sync += c.eq(c + 1)
                    with m.If(pix_cycle == p_pixel_last):
                        m.d.sync += [pix_cycle.eq(0), c.eq(0), x.eq(x + 1), pixel.eq(pixel + 1),
                                     shift_col.eq(shift_col + 1),
                                     x_phase.eq(Mux(x_phase == p_pool_last, 0, x_phase + 1)),
                                     x_pooled.eq(x_pooled + (x_phase == p_pool_last))]
                        with m.If(x == p_out_cols_last):
                            m.d.sync += [phase.eq(WAIT), y.eq(y + 1), need.eq(rows_needed(y + 1)),
                                         rows_done.eq(rows_done + 1),
                                         slot_base.eq(Mux(slot_base == p_k, 0, slot_base + 1)),
                                         y_phase.eq(Mux(y_phase == p_pool_last, 0, y_phase + 1)),
                                         y_pooled.eq(y_pooled + (y_phase == p_pool_last))]

        # issue stage: addresses; the column's validity per window row
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

        # stage 1 (read data): the new column out of the image memory, registered; stage 2
        # (window): the new column and the image bank's older ones, registered as the SoPs'
        # taps. The column's register keeps each image memory's block RAM read off the image
        # bank's write (5 levels at 148.4 MHz on ECP5 without it)
        s1_valid, s1_compute = Signal(), Signal()
        s1_c = Signal.like(c)
        s1_mask = Signal(km)
        s1_slot_base = Signal.like(slot_base)
        s1_first, s1_last = Signal(), Signal()
        s1_pixel = Signal(range(max(mapping.psum_words, 2)))
        s1_pool = Signal(len(Cat(y_phase, x_phase, y_pooled, x_pooled)))
        m.d.sync += [s1_valid.eq(issue), s1_compute.eq(compute), s1_c.eq(c),
                     s1_mask.eq(read_mask), s1_slot_base.eq(slot_base),
                     s1_first.eq(c == 0), s1_last.eq(c == p_in_last),
                     s1_pixel.eq(pixel),
                     s1_pool.eq(Cat(y_phase, x_phase, y_pooled, x_pooled))]
        column = []
        slot_data = Array(read.data for _, read in slots)
        for i in range(kw):
            slot = Signal(range(kw + 1), name=f"row_slot{i}")
            total = s1_slot_base + i
            m.d.comb += slot.eq(Mux(total > p_k, total - p_k - 1, total))
            value = Signal(signed(ab), name=f"new_col{i}")
            m.d.sync += value.eq(Mux(s1_mask[i], slot_data[slot], 0))
            column.append(value)
        col_valid, col_compute = Signal(), Signal()
        col_c = Signal.like(c)
        col_first, col_last = Signal(), Signal()
        col_pixel = Signal.like(s1_pixel)
        col_pool = Signal.like(s1_pool)
        m.d.sync += [col_valid.eq(s1_valid), col_compute.eq(s1_compute), col_c.eq(s1_c),
                     col_first.eq(s1_first), col_last.eq(s1_last), col_pixel.eq(s1_pixel),
                     col_pool.eq(s1_pool)]
        # window[i][j]: row i, column j (j = km - 1 the newest); only the network's largest
        # kernel's rows and columns (kw) are kept, the others are zero
        zero = Const(0, signed(ab))
        window = [[zero] * km for _ in range(km)]
        if kw > 1:
            # the image bank: each channel's kw - 1 older columns of kw rows, a LUT RAM read
            # and rewritten (shifted by the new column) in this stage, so a channel shifted on
            # consecutive cycles reads its own last write
            m.submodules.image_bank = image_bank = placed_memory(
                shape=kw * (kw - 1) * ab, depth=max(n_in, 2), init=[], writable=True,
                sync_read=False)
            bank_read, bank_write = image_bank.read_port(domain="comb"), image_bank.write_port()
            old = bank_read.data
            for i in range(kw):
                for jj in range(kw - 1):
                    window[i][km - kw + jj] = old.word_select(i * (kw - 1) + jj, ab).as_signed()
            shifted = Cat(*[Cat(*[window[i][j] for j in range(km - kw + 1, km - 1)], column[i])
                            for i in range(kw)])
            m.d.comb += [bank_read.addr.eq(col_c), bank_write.addr.eq(col_c),
                         bank_write.data.eq(shifted), bank_write.en.eq(col_valid)]
        for i in range(kw):
            window[i][km - 1] = column[i]
        # the taps register, in copies that each drive a group of units; the taps outside
        # the k x k kernel are zero, those outside the network's largest kernel constants
        copies = tap_copies(config)

        def copy_of(unit):
            """The copy of the taps register (and of the summers' flags) ``unit`` reads."""
            return unit // TAP_COPY_UNITS if copies > 1 else 0

        taps_regs = [[] for _ in range(copies)]  # per copy, per tap (row-major)
        for i in range(km):
            for j in range(km):
                active = (i < p_k) & (j >= km - p_k)
                for copy, regs in enumerate(taps_regs):
                    if window[i][j] is zero:
                        regs.append(zero)
                        continue
                    tap = Signal(signed(ab), name=f"tap{i}_{j}" + (f"_copy{copy}" if copies > 1
                                                                   else ""),
                                 attrs={"keep": 1} if copies > 1 else {})
                    m.d.sync += tap.eq(Mux(active & col_compute, window[i][j], 0))
                    regs.append(tap)
        with m.If(col_compute):
            m.d.comb += [events["filter_bank.read"].eq(1), events["sop.mac"].eq(p_macs),
                         events["channel_summer.accumulate"].eq(p_out_count)]
        # the filter bank's word (read at stage 1's channel) is registered beside the taps,
        # with each unit's carry count (stored in the word, ``filter_words``)
        m.d.comb += filter_read.addr.eq(s1_c)
        weights = Signal(n_out * taps)
        m.d.sync += weights.eq(filter_read.data[:n_out * taps])

        # the SoP stages: taps against each unit's weights (x XOR ~w plus the unit's carry
        # count) in an adder tree cut by registers (``sop_tree_registers``); the per-pixel
        # bookkeeping travels beside it
        sop_meta = Cat(col_compute, col_first, col_last, col_pixel, col_pool)
        tree_levels = sop_tree_registers(config)
        registers = len(tree_levels)
        # meta of the taps stage, the tree's stages, the stage before the summers (its pixel
        # is the partial-sum read address) and the summers'
        meta = [sop_meta]
        for stage in range(registers + 2):
            delayed = Signal(len(sop_meta), name=f"sop_meta{stage}")
            m.d.sync += delayed.eq(meta[-1])
            meta.append(delayed)
        meta_widths = (1, 1, 1, len(s1_pixel))
        sop_results = []
        for unit in range(n_out):
            bits = weights[unit * taps:(unit + 1) * taps]
            unit_taps = taps_regs[copy_of(unit)]
            terms = [Mux(bits[t], unit_taps[t], ~unit_taps[t]) for t in range(taps)]
            carries = Signal(carry_count_bits(config), name=f"carries{unit}")
            stored = filter_read.data[carry_count_field(config, unit)]
            m.d.sync += carries.eq(Mux(col_compute, stored, 0))
            sop_results.append(_pipelined_tree_sum(m, tree_levels, terms + [carries],
                                                   signed(w["sop"]), f"sop{unit}"))
        pre_valid, pre_first, pre_last, pre_pixel, _ = _slices(meta[-2], *meta_widths)
        s2_valid, _, s2_last, s2_pixel, s2_pool = _slices(meta[-1], *meta_widths)
        sop_reg = [Signal(signed(w["sop"]), name=f"sop_reg{u}") for u in range(n_out)]
        m.d.sync += [reg.eq(val) for reg, val in zip(sop_reg, sop_results)]

        # the channel summers
        if psum_depth:
            m.d.comb += psum_read.addr.eq(pre_pixel)
            with m.If(pre_valid & pre_first & ~p_first):
                m.d.comb += events["psum_mem.read"].eq(1)
        summers = [Signal(signed(acc_bits), name=f"summer{u}") for u in range(n_out)]

        def unit_flags(name):
            """A flag that drives every unit's summer or holding register, as flip-flops that
            each drive the units of one copy of the taps register: one flip-flop for the 32
            units of the paper engine put 2.8 ns of route on its critical path (152.2 MHz,
            ECP5, seed 1)."""
            if copies == 1:
                return [Signal(name=name)]
            return [Signal(name=f"{name}_copy{g}", attrs={"keep": 1}) for g in range(copies)]

        # where a pixel's first channel starts, decided a cycle ahead: the two flags drive
        # every summer's input bit, so no gate between the program register and that fan-out
        start_from_zero, start_from_psums = unit_flags("start_from_zero"), \
            unit_flags("start_from_psums")
        m.d.sync += [*[flag.eq(pre_first & p_first) for flag in start_from_zero],
                     *[flag.eq(pre_first & ~p_first) for flag in start_from_psums]]
        sums = []
        for u in range(n_out):
            init = psum_read.data.word_select(u, acc_bits).as_signed() if psum_depth else 0
            base = Mux(start_from_zero[copy_of(u)], 0,
                       Mux(start_from_psums[copy_of(u)], init, summers[u]))
            total = Signal(signed(acc_bits), name=f"summer_next{u}")
            m.d.comb += total.eq(base + sop_reg[u])
            sums.append(total)
        # the holding register shifts one channel towards hold0 per drain cycle, so the output
        # stage reads hold0 and no channel select (an n_out-way mux) sits in its first stage
        hold = [Signal(signed(acc_bits), name=f"hold{u}") for u in range(n_out)]
        hold_pool = Signal.like(s1_pool)
        drain = Signal(range(n_out + 1))
        # the bias memory's address, counted beside ``drain`` (p_bias_base + drain, registered)
        bias_addr = Signal.like(bias_read.addr)
        # the drain's two flags, each a flip-flop for the drain's counters and the output
        # stage and copies for the holding registers (``unit_flags``): the last channel of a
        # pixel of a last input pass loads its sums into the holding register (decided a
        # cycle ahead, so no program field in front of the fan-out: 144.6 MHz, seed 2, with
        # it), and the holding register shifts while draining
        draining, load_hold = Signal(), Signal()
        unit_draining, unit_load_hold = unit_flags("draining"), unit_flags("load_hold")
        m.d.sync += [flag.eq(pre_valid & pre_last & p_last) for flag in [load_hold,
                                                                          *unit_load_hold]]
        with m.If(s2_valid):
            m.d.sync += [s.eq(t) for s, t in zip(summers, sums)]
            with m.If(s2_last):
                if psum_depth:
                    with m.If(p_last == 0):
                        m.d.comb += [psum_write.addr.eq(s2_pixel),
                                     psum_write.data.eq(Cat(*sums)), psum_write.en.eq(1),
                                     events["psum_mem.write"].eq(1)]

        # the output stage: one channel per cycle enters a pipeline of OUTPUT_STAGES registers
        # (select; bias; ReLU; two for the scale's multiply; two for rounding; saturation,
        # beside the pool memory's read; that word's register; the compare), whose last stage
        # writes the pool memory or the destination buffer
        out_valid = [Signal(name=f"out_valid{e}") for e in range(OUTPUT_STAGES + 1)]
        out_channel = [Signal.like(drain, name=f"out_channel{e}")
                       for e in range(OUTPUT_STAGES + 1)]
        out_pool = [Signal.like(hold_pool, name=f"out_pool{e}") for e in range(OUTPUT_STAGES + 1)]
        m.d.comb += [out_valid[0].eq(draining), out_channel[0].eq(drain),
                     out_pool[0].eq(hold_pool)]
        for e in range(OUTPUT_STAGES):
            m.d.sync += [out_valid[e + 1].eq(out_valid[e]), out_channel[e + 1].eq(out_channel[e]),
                         out_pool[e + 1].eq(out_pool[e])]
        # stage 1: the held sum and the channel's bias
        held = Signal(signed(acc_bits))
        bias = Signal(signed(acc_bits))  # the bias memory's registered read
        m.d.sync += held.eq(hold[0])
        m.d.comb += [bias_read.addr.eq(bias_addr), bias.eq(bias_read.data)]
        # stage 2: biased
        biased = Signal(signed(acc_bits + 1))
        m.d.sync += biased.eq(held + bias)
        # stage 3: ReLU
        rectified = Signal(signed(acc_bits + 1))
        m.d.sync += rectified.eq(Mux(p_relu & (biased < 0), 0, biased))
        # stages 4 and 5: the fixed-point multiply, as products that each fit a DSP's 18 x 18
        # signed multiplier (a wider value's low 17 bits, unsigned, and the rest), then
        # their sum
        low_product = Signal(signed(DSP_LOW_BITS + 2 + MAX_SCALE_BITS))
        high_product = Signal(signed(w["product"]))
        if acc_bits + 1 <= DSP_LOW_BITS + 1:
            m.d.sync += low_product.eq(rectified * p_mult)
        else:
            m.d.sync += [low_product.eq(rectified[:DSP_LOW_BITS] * p_mult),
                         high_product.eq(rectified[DSP_LOW_BITS:].as_signed() * p_mult)]
        product = Signal(signed(w["product"]))
        m.d.sync += product.eq((high_product << DSP_LOW_BITS) + low_product)
        # stages 6 and 7: rounding
        rounded = _round_shift(m, product, p_shift, p_mode, w["product"])
        # stage 8: saturation (or the threshold count)
        scaled = Mux(rounded < p_lo, p_lo, Mux(rounded > p_hi, p_hi, rounded))
        value = Signal(signed(out_bits))
        steps = threshold_steps(mapping)
        if steps:
            # the threshold path: count the channel's thresholds the biased sum reaches
            field_bits = acc_bits + 1
            words = threshold_words(mapping, field_bits)
            threshold_mem = self._parameter_memory(
                m, "threshold_mem", port, shape=steps * field_bits, depth=max(len(words), 2),
                init=words, sync_read=True)
            threshold_read = threshold_mem.read_port()
            m.d.comb += threshold_read.addr.eq(p_threshold_base + out_channel[1])
            reached = Signal(steps)  # the memory's word arrives beside ``biased``
            threshold = threshold_read.data.word_select
            m.d.sync += reached.eq(Cat(*[(p_steps > k) & (biased >= threshold(
                k, field_bits).as_signed()) for k in range(steps)]))
            reached_count = Signal(range(steps + 1))
            m.d.sync += reached_count.eq(_tree_sum([reached[k] for k in range(steps)]))
            counted = [Signal(signed(out_bits), name=f"counted{e}") for e in range(5, 8)]
            m.d.sync += counted[0].eq(Mux(p_bipolar, 2 * reached_count - 1,
                                          reached_count + p_offset))
            m.d.sync += [later.eq(earlier) for earlier, later in zip(counted, counted[1:])]
            m.d.sync += value.eq(Mux(p_steps != 0, counted[-1], scaled))
            with m.If(draining & (p_steps != 0)):
                m.d.comb += [events["threshold_mem.read"].eq(1),
                             events["output_stage.compare"].eq(p_steps)]
        else:
            m.d.sync += value.eq(scaled)
        # the destination address, computed along the way, each multiply in a stage of its own
        # (a multiply and two adds in one stage measured 122.1 MHz, seed 2)
        pool_widths = (len(y_phase), len(x_phase), len(y_pooled))
        _, _, pooled_row1, _ = _slices(out_pool[1], *pool_widths)
        _, _, _, pool_col2 = _slices(out_pool[2], *pool_widths)
        row_first = Signal(range(depth + 1))
        m.d.sync += row_first.eq(pooled_row1 * p_out_width)
        dest_pixel = Signal(range(depth + 1))
        m.d.sync += dest_pixel.eq(row_first + p_pool_start + pool_col2)
        dest_scaled = Signal(range(2 * depth + n_out))
        m.d.sync += dest_scaled.eq(dest_pixel * p_out_total)
        dest_addr = Signal(range(2 * depth + n_out))
        m.d.sync += dest_addr.eq(dest_scaled + p_out_base + out_channel[4])
        last = OUTPUT_STAGES
        dest_later = [dest_addr]  # stages 5 .. last
        for e in range(6, last + 1):
            delayed = Signal.like(dest_addr, name=f"dest_addr{e}")
            m.d.sync += delayed.eq(dest_later[-1])
            dest_later.append(delayed)
        # the pool unit: the running maximum of each open window of the current pool row, in
        # a memory read in stage last - 3, its word registered, compared with the value in
        # last - 1 and written in the last: POOL_READ_TO_WRITE cycles, fewer than a pooled
        # pixel takes (``Pass.pixel_cycles``), so every read sees the channel's last write
        assert POOL_READ_TO_WRITE == 3
        pool_phases = [_slices(out_pool[e], *pool_widths) for e in range(last - 3, last + 1)]
        pool_addr = [Signal(range(pool_depth), name=f"pool_addr{e}")
                     for e in range(last - 3, last + 1)]
        _, _, _, pool_col_read = pool_phases[0]
        m.d.comb += pool_addr[0].eq(pool_col_read * n_out + out_channel[last - 3])
        m.d.sync += [later.eq(earlier) for earlier, later in zip(pool_addr, pool_addr[1:])]
        m.d.comb += [pool_read.addr.eq(pool_addr[0]), pool_write.addr.eq(pool_addr[-1])]
        pooled = Signal.like(pool_read.data)
        m.d.sync += pooled.eq(pool_read.data)
        best = Signal(signed(out_bits))  # registered: the value the last stage writes
        compare_row_phase, compare_col_phase, _, _ = pool_phases[2]
        opens = (compare_row_phase == 0) & (compare_col_phase == 0)
        compared = Signal(signed(out_bits))  # the value, beside the pool's word
        m.d.sync += compared.eq(value)
        m.d.sync += best.eq(Mux(opens | (compared > pooled), compared, pooled))
        with m.If(out_valid[last - 1] & ~opens):
            m.d.comb += events["pool.compare"].eq(1)
        write_row_phase, write_col_phase, _, _ = pool_phases[3]
        closes = (write_row_phase == p_pool_last) & (write_col_phase == p_pool_last)
        with m.If(out_valid[last]):
            m.d.comb += [events["output_stage.scale"].eq(p_steps == 0),
                         pool_write.data.eq(best),
                         pool_write.en.eq(~closes)]
            with m.If(closes):
                m.d.comb += events["act_buffer.write"].eq(1)
                for b in range(2):
                    with m.If(p_source != b):
                        m.d.comb += [buf_write[b].addr.eq(dest_later[-1]),
                                     buf_write[b].data.eq(best), buf_write[b].en.eq(1)]
        with m.If(draining):  # one channel's bias read (the address runs with the drain)
            m.d.sync += [drain.eq(drain + 1), bias_addr.eq(bias_addr + 1)]
            m.d.comb += events["bias_mem.read"].eq(1)
        with m.If(drain == p_out_count_last):
            m.d.sync += [flag.eq(0) for flag in [draining, *unit_draining]]
        for u, h in enumerate(hold[:-1]):
            with m.If(unit_draining[copy_of(u)]):
                m.d.sync += h.eq(hold[u + 1])

        # after the drain's updates: a pixel may load the register on the drain's last cycle
        with m.If(load_hold):
            m.d.sync += [hold_pool.eq(s2_pool), drain.eq(0), bias_addr.eq(p_bias_base),
                         *[flag.eq(1) for flag in [draining, *unit_draining]]]
        for u, (h, total) in enumerate(zip(hold, sums)):
            with m.If(unit_load_hold[copy_of(u)]):
                m.d.sync += h.eq(total)

        # end of a pass: the computer is done and nothing is in flight
        in_flight = Cat(s1_valid, col_valid, *[bundle[0] for bundle in meta[1:]],
                        *out_valid, fw_valid)
        pass_done = running & (phase == TAIL) & (in_flight == 0)
        with m.If(start):
            m.d.sync += state.eq(RUN)
        with m.If(FETCH == state):
            m.d.sync += state.eq(START)
        with m.If(pass_done):
            with m.If(index == n_pass - 1):
                m.d.sync += [state.eq(UNLOAD), count.eq(0)]
            with m.Else():
                m.d.sync += [state.eq(FETCH), index.eq(index + 1)]
        return m


def sop_tree_registers(config: EngineConfig) -> dict[int, int]:
    """The registered levels of a SoP unit's adder tree (k_max^2 taps and the carries'
    popcount), level -> its partial sums: after the first level (the taps reach every unit,
    so their wires are long) and then every ``sop_stage_levels`` levels, where more levels
    follow."""
    every, terms, level, registered = config.sop_stage_levels, config.k_max ** 2 + 1, 0, {}
    while terms > 1:
        terms, level = (terms + 1) // 2, level + 1
        if every > 0 and (level - 1) % every == 0 and terms > 1:
            registered[level] = terms
    return registered


def sop_pipeline_registers(config: EngineConfig) -> int:
    """Registers inside a SoP unit's adder tree (``sop_tree_registers``)."""
    return len(sop_tree_registers(config))


def _pipelined_tree_sum(m, registered_levels, terms, shape, name):
    """A balanced adder tree of ``terms`` whose partial sums are registered after the levels
    in ``registered_levels``; the last level is combinational."""
    level, depth = list(terms), 0
    while len(level) > 1:
        level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
        depth += 1
        if depth in registered_levels:
            registered = [Signal(shape, name=f"{name}_level{depth}_{i}")
                          for i in range(len(level))]
            m.d.sync += [r.eq(v) for r, v in zip(registered, level)]
            level = registered
    return level[0]


def _tree_sum(terms):
    """A balanced adder tree (depth log2 of the operands)."""
    level = list(terms)
    while len(level) > 1:
        level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def _round_shift(m, product, shift, mode, width):
    """``round(product / 2**shift)`` by a rounding code (``mapping.ROUNDING_CODES``), in two
    register stages: the shift and the remainder's comparisons, then the increment. The
    remainder's comparisons with a half are its top bit (bit shift - 1) and whether any bit
    below it is set: decoders of ``shift`` and an OR tree, no subtract or compare (two carry
    chains of the product's width, 7.5 ns on ECP5, were a critical path)."""
    guard = Signal(name="round_guard")  # the remainder's top bit
    m.d.comb += guard.eq(((product.as_unsigned() << 1) >> shift)[0])  # 0 for shift 0
    below = Signal(width, name="round_below")  # the bits under it
    m.d.comb += below.eq(Cat(*[shift > k + 1 for k in range(width)]))
    sticky = Signal(name="round_sticky")
    m.d.comb += sticky.eq((product.as_unsigned() & below) != 0)
    floor = Signal(signed(width), name="round_floor")
    above, tie, nonzero, negative = (Signal(name=f"round_{n}")
                                     for n in ("above", "tie", "nonzero", "negative"))
    m.d.sync += [floor.eq(product >> shift),
                 above.eq(guard & sticky), tie.eq(guard & ~sticky),
                 nonzero.eq(guard | sticky), negative.eq(product < 0)]
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
    rounded = Signal(signed(width), name="round_result")
    m.d.sync += rounded.eq(floor + up)
    return rounded


def _slices(bundle, *widths):
    """``bundle`` cut into fields of ``widths`` bits from bit 0, and the rest."""
    parts, at = [], 0
    for width in widths:
        parts.append(bundle[at:at + width])
        at += width
    return [*parts, bundle[at:]]

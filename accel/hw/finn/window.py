"""Feature-map stages of the FINN dataflow: the sliding-window unit (streaming im2col over a
line buffer) and max-pooling. Both stream pixels in NHWC order. Their cycle behaviour is
mirrored in ``accel.hw.finn.model``."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel.hw.common.memory import placed_memory
from accel.hw.finn.mapping import PoolMapping, WindowMapping



def row_counter_bits(window: WindowMapping) -> int:
    """Width of the unit's global row counters, which wrap: the writer's row and the reader's
    needed and lowest rows are never more than height + rows + padding + kernel apart (the
    writer is held at ``rows`` above the reader's lowest row, the reader needs rows of at most
    one frame ahead of it), so comparing their difference as a signed number of this many
    bits is comparing the unbounded counts. Short counters keep the carry chains short."""
    span = window.height + window.rows + window.padding + window.kernel
    return max((4 * span).bit_length() + 1, window.rows.bit_length())


class SlidingWindowUnit(wiring.Component):
    """Writes incoming pixels into a circular buffer of ``rows`` image rows and emits, for
    each output pixel, its K x K window (ky, kx, channel beat), zero where the window overhangs
    the padding.

    Handshakes, from registers only: a beat may be written while its (global) row is fewer
    than ``rows`` rows above the lowest row the reader still needs; a window beat is valid when
    it lies in the padding or its pixel beat has been written (the writer is past it).
    """

    def __init__(self, window: WindowMapping):
        self.window = window
        width = window.simd * window.element.bits
        super().__init__({
            "i": In(stream.Signature(width)),
            "o": Out(stream.Signature(width)),
            "write_step": Out(1),
            "read_step": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.window
        beats, k, pad = w.channel_beats, w.kernel, w.padding
        slot_bits = (w.rows - 1).bit_length()
        m.submodules.line_buffer = line_buffer = placed_memory(
            shape=len(self.i.payload), depth=w.rows * w.width * beats, init=[], writable=True,
            sync_read=False)
        write = line_buffer.write_port()
        read = line_buffer.read_port(domain="comb")

        row_bits = row_counter_bits(w)
        write_row = Signal(row_bits)  # global rows, modulo 2**row_bits
        write_x = Signal(range(max(w.width, 2)))
        write_beat = Signal(range(max(beats, 2)))
        frame_row = Signal(row_bits)  # global row of the current frame's row 0
        oy = Signal(range(max(w.out_height, 2)))
        ox = Signal(range(max(w.out_width, 2)))
        ky = Signal(range(max(k, 2)))
        kx = Signal(range(max(k, 2)))
        beat = Signal(range(max(beats, 2)))

        def ahead(a, b):
            """``a - b`` of two wrapping row counters, as the signed difference."""
            difference = Signal(signed(row_bits))
            m.d.comb += difference.eq((a - b)[:row_bits])
            return difference

        iy = Signal(signed((max(w.height, w.width) + pad + k).bit_length() + 1))
        ix = Signal.like(iy)
        m.d.comb += [iy.eq(oy + ky - pad), ix.eq(ox + kx - pad)]
        padded = (iy < 0) | (iy >= w.height) | (ix < 0) | (ix >= w.width)
        needed_row = Signal(row_bits)
        m.d.comb += needed_row.eq(frame_row + iy)
        row_written = ahead(write_row, needed_row)
        written = (row_written > 0) | ((row_written == 0) & (
            (write_x > ix) | ((write_x == ix) & (write_beat > beat))))
        lowest_row = Signal(row_bits)
        offset = Mux(oy > pad, oy - pad, 0)
        if pad > k:
            # output rows wholly in the bottom padding need no row of this frame: the lowest
            # needed row is the next frame's first, not beyond it (which would let the writer
            # overwrite that row before it is read)
            offset = Mux(oy > pad + w.height, w.height, offset)
        m.d.comb += lowest_row.eq(frame_row + offset)
        can_write = ahead(write_row, lowest_row) < w.rows

        m.d.comb += [
            self.i.ready.eq(can_write),
            write.addr.eq(_times((_times(write_row[:slot_bits], w.width) + write_x), beats)
                          + write_beat),
            write.data.eq(self.i.payload),
            write.en.eq(self.i.valid & can_write),
            read.addr.eq(_times(_times(needed_row[:slot_bits], w.width)
                                + ix.as_unsigned(), beats) + beat),
            self.o.valid.eq(padded | written),
            self.o.payload.eq(Mux(padded, 0, read.data)),
            self.write_step.eq(self.i.valid & can_write),
            self.read_step.eq(self.o.valid & self.o.ready & ~padded),
        ]
        with m.If(self.i.valid & can_write):
            _advance(m, [(write_beat, beats), (write_x, w.width)], write_row)
        with m.If(self.o.valid & self.o.ready):
            last_window = (oy == w.out_height - 1) & (ox == w.out_width - 1)
            window_done = (ky == k - 1) & (kx == k - 1) & (beat == beats - 1)
            _advance(m, [(beat, beats), (kx, k), (ky, k), (ox, w.out_width), (oy, w.out_height)])
            with m.If(window_done & last_window):
                m.d.sync += frame_row.eq(frame_row + w.height)
        return m


def _times(value, constant: int):
    """``value * constant`` as a sum of shifted copies of ``value``, one per set bit of the
    constant: a multiplier block (yosys maps a constant product to one on ECP5) is slower than
    these few adders and wastes a DSP."""
    terms = [value << bit for bit in range(constant.bit_length()) if constant >> bit & 1]
    return sum(terms[1:], terms[0]) if terms else value * 0


def _advance(m, counters, carry_into=None):
    """Increment a chain of wrapping counters, lowest first; the carry out of the last one
    increments ``carry_into``."""
    carry = 1
    for counter, size in counters:
        at_end = counter == size - 1
        with m.If(carry):
            m.d.sync += counter.eq(Mux(at_end, 0, counter + 1))
        carry = carry & at_end
    if carry_into is not None:
        with m.If(carry):
            m.d.sync += carry_into.eq(carry_into + 1)


class MaxPoolUnit(wiring.Component):
    """Non-overlapping max-pool: a row buffer of partial maxima, one per output pixel of the
    current output row; the last pixel of a window sends the maximum out."""

    def __init__(self, pool: PoolMapping):
        self.pool = pool
        width = pool.lanes * pool.element.bits
        super().__init__({
            "i": In(stream.Signature(width)),
            "o": Out(stream.Signature(width)),
            "window_step": Out(1),  # a pixel beat inside a window was taken
            "first_step": Out(1),  # ... and it opened the window (no comparison)
            "last_step": Out(1),  # ... and it closed the window (output, no row-buffer write)
        })

    def elaborate(self, platform):
        m = Module()
        p = self.pool
        k, beats, bits = p.kernel, p.channel_beats, p.element.bits
        m.submodules.row_buffer = row_buffer = placed_memory(
            shape=len(self.i.payload), depth=max(p.out_width * beats, 2), init=[],
            writable=True, sync_read=False)
        write = row_buffer.write_port()
        read = row_buffer.read_port(domain="comb")
        y = Signal(range(max(p.height, 2)))
        x = Signal(range(max(p.width, 2)))
        beat = Signal(range(max(beats, 2)))
        ky = Signal(range(max(k, 2)))
        kx = Signal(range(max(k, 2)))
        ox = Signal(range(max(p.width, 2)))
        inside = (y < p.out_height * k) & (x < p.out_width * k)
        first = (ky == 0) & (kx == 0)
        last = (ky == k - 1) & (kx == k - 1)
        out_valid = Signal()
        out_free = ~out_valid | self.o.ready
        take = self.i.valid & self.i.ready

        lanes = []
        for lane in range(p.lanes):
            new = self.i.payload[lane * bits:(lane + 1) * bits]
            old = read.data[lane * bits:(lane + 1) * bits]
            if p.element.signed:
                new, old = new.as_signed(), old.as_signed()
            lanes.append(Mux(first | (new > old), new, old)[:bits])
        maximum = Cat(*lanes)

        m.d.comb += [
            self.i.ready.eq(~(inside & last) | out_free),
            read.addr.eq(ox * beats + beat),
            write.addr.eq(ox * beats + beat),
            write.data.eq(maximum),
            write.en.eq(take & inside & ~last),
            self.o.valid.eq(out_valid),
            self.window_step.eq(take & inside),
            self.first_step.eq(take & inside & first),
            self.last_step.eq(take & inside & last),
        ]
        out_register = Signal(len(self.o.payload))
        m.d.comb += self.o.payload.eq(out_register)
        with m.If(take & inside & last):
            m.d.sync += [out_register.eq(maximum), out_valid.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)

        with m.If(take):
            at_row_end = (x == p.width - 1) & (beat == beats - 1)
            with m.If(beat == beats - 1):
                with m.If(kx == k - 1):
                    m.d.sync += [kx.eq(0), ox.eq(ox + 1)]
                with m.Else():
                    m.d.sync += kx.eq(kx + 1)
            _advance(m, [(beat, beats), (x, p.width), (y, p.height)])
            with m.If(at_row_end):
                m.d.sync += [kx.eq(0), ox.eq(0), ky.eq(Mux(ky == k - 1, 0, ky + 1))]
                with m.If(y == p.height - 1):
                    m.d.sync += ky.eq(0)
        return m

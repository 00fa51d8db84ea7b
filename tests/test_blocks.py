"""Block tests in Amaranth's simulator (no Verilator): each FINN stream block and the smallest
testable EIE units, outputs against the golden model and cycle behaviour against the timing the
blocks' docstrings state. Stream tests check the handshakes every cycle against a rule written
from the docstring in terms of the transfers so far; ``xfail(strict)`` cases are known bugs."""

from dataclasses import replace

import numpy as np
import pytest
from amaranth import Module, Signal, signed
from amaranth.sim import Simulator

from accel.hw.eie.mapping import EIENetworkMapping, Requantize, map_layer, map_network as eie_map
from accel.hw.eie.model import simulate_layer, simulate_network
from accel.hw.eie.rtl import EIEHarness, requantized
from accel.hw.finn.mapping import LayerMapping, PoolMapping, WindowMapping, map_network
from accel.hw.finn.mvtu import MVTU, StreamWidthConverter
from accel.hw.finn.window import MaxPoolUnit, SlidingWindowUnit, row_counter_bits
from accel.nn import golden
from accel.nn.ir import (Conv2d, DataType, Dense, Flatten, MaxPool2d, MultiThreshold, Network,
                         Quant, Relu)


def pack(codes, lanes, bits):
    """Element codes (flat) as beats of ``lanes`` elements, element k in bits [k*bits, ...)."""
    codes = np.asarray(codes, dtype=np.int64).ravel()
    return [sum(int(c) << (k * bits) for k, c in enumerate(codes[b:b + lanes]))
            for b in range(0, len(codes), lanes)]


def unpack(beats, lanes, bits):
    return np.array([(beat >> (k * bits)) & ((1 << bits) - 1)
                     for beat in beats for k in range(lanes)], dtype=np.int64)


def pattern(seed, p, low_first=0, n=4096):
    """A seeded on/off pattern per cycle (on with probability ``p``), off for the first cycles."""
    on = np.random.default_rng(seed).random(n) < p
    on[:low_first] = False
    return on


def patterns(seed, p_valid, p_ready):
    """Seed 0: full rate both sides (None); otherwise random valid and ready patterns."""
    return (None, None) if seed == 0 else (pattern(seed, p_valid), pattern(seed + 99, p_ready))


def simulate(top, testbench, clock=True):
    sim = Simulator(top)
    if clock:
        sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def run_stream(dut, beats, n_out, valid=None, ready=None, rule=None, max_cycles=20000):
    """Offer ``beats`` on ``dut.i`` (a new beat in a cycle where ``valid`` is high, held until
    taken) and take ``n_out`` beats from ``dut.o`` (``ready`` per cycle; None: always high).
    Each cycle, checks that an output beat not taken stays valid and unchanged, and calls
    ``rule(ctx, in_valid, in_ready, out_valid, out_ready)``. Returns (output beats, cycles of
    the input transfers, cycles of the output transfers)."""
    out, in_cycles, out_cycles = [], [], []

    async def testbench(ctx):
        sent, offering, held, cycle = 0, False, None, 0
        while len(out) < n_out or sent < len(beats):
            assert cycle < max_cycles, f"stuck: {sent} beats in, {len(out)} out"
            offering = offering or (sent < len(beats) and bool(valid is None or valid[cycle]))
            out_ready = bool(ready is None or ready[cycle])
            ctx.set(dut.i.valid, offering)
            ctx.set(dut.i.payload, beats[sent] if offering else 0)
            ctx.set(dut.o.ready, out_ready)
            in_ready, out_valid = bool(ctx.get(dut.i.ready)), bool(ctx.get(dut.o.valid))
            payload = ctx.get(dut.o.payload)
            assert held is None or (out_valid and payload == held), f"cycle {cycle}: beat lost"
            if rule is not None:
                rule(ctx, offering, in_ready, out_valid, out_ready)
            held = payload if out_valid and not out_ready else None
            if offering and in_ready:
                in_cycles.append(cycle)
                sent, offering = sent + 1, False
            if out_valid and out_ready:
                out.append(payload)
                out_cycles.append(cycle)
            await ctx.tick()
            cycle += 1

    top = Module()  # a sync domain even around a block without one (a pass-through)
    top.submodules.dut = dut
    top.d.sync += Signal(name="clocked").eq(1)
    simulate(top, testbench)
    return out, in_cycles, out_cycles


def int_type(name):  # "bipolar", "i4" (signed 4-bit), "u3" (unsigned 3-bit)
    return DataType.bipolar_type() if name == "bipolar" else DataType(int(name[1:]), name[0] == "i")


def random_values(rng, dtype, shape):
    if dtype.bipolar:
        return np.where(rng.random(shape) < 0.5, -1, 1)
    return rng.integers(dtype.min_int, dtype.max_int + 1, shape)


# ---- MVTU -----------------------------------------------------------------------------------

def dense_network(seed, in_type, weight_type, activation, mw, mh):
    """Dense (+ MultiThreshold: bipolar 'sign', or 'stepsN' with offset -1) on integer input."""
    rng = np.random.default_rng(seed)
    dense = Dense("fc", weights=random_values(rng, weight_type, (mh, mw)), weight_type=weight_type)
    if activation is None:
        return Network("dense", (1, mw), [dense], input_type=in_type)
    lo, hi = golden.accumulator_range(dense, in_type)
    steps = 1 if activation == "sign" else int(activation[5:])
    t = np.sort(rng.integers(lo.min() // 2, hi.max() // 2 + 1, (mh, steps)), axis=1)
    act = MultiThreshold("act", thresholds=t, out_scale=2.0 if activation == "sign" else 1.0,
                         out_bias=-1.0)
    return Network("dense", (1, mw), [dense, act], input_type=in_type)


def mvtu_rule(mvtu: MVTU):
    """The MVTU docstring: a step happens when (nf > 0 or input valid) and (sf < SF-1 or an
    output slot is free: unpipelined, the output register empty or read this cycle;
    pipelined, fewer than ``output_slots`` results issued and not yet read); input is taken
    by the steps of fold 0; a result is valid from ``pipeline`` + 1 cycles after its step."""
    layer = mvtu.layer
    nf_count, sf_count = layer.neuron_fold, layer.synapse_fold
    state = {"steps": 0, "stored": 0, "in_flight": []}

    def rule(ctx, in_valid, in_ready, out_valid, out_ready):
        nf, sf = divmod(state["steps"] % (nf_count * sf_count), sf_count)
        pending = state["stored"] + len(state["in_flight"])
        free = (pending == 0 or out_ready) if layer.pipeline == 0 else \
            pending < layer.output_slots
        last = sf == sf_count - 1
        step = (nf > 0 or in_valid) and (not last or free)
        assert (ctx.get(mvtu.step), ctx.get(mvtu.input_step), ctx.get(mvtu.output_step)) == \
            (step, step and nf == 0, step and last)
        assert (in_ready, out_valid) == (nf == 0 and (not last or free), state["stored"] > 0)
        state["steps"] += step
        arriving = [left - 1 for left in state["in_flight"]]
        state["in_flight"] = [left for left in arriving if left > 0]
        state["stored"] += len(arriving) - len(state["in_flight"]) - (out_valid and out_ready)
        if step and last:
            if layer.pipeline == 0:
                state["stored"] += 1
            else:
                state["in_flight"].append(layer.pipeline)

    return rule


@pytest.mark.parametrize("in_name,w_name,activation,mw,mh,pe,simd", [
    ("bipolar", "bipolar", "sign", 8, 4, 2, 4),  # XNOR-popcount
    ("bipolar", "bipolar", "sign", 8, 4, 4, 8),  # PE = MH, SIMD = MW: one cycle per vector
    ("bipolar", "bipolar", None, 6, 3, 1, 1),  # raw accumulator, fully folded
    ("i4", "bipolar", "steps3", 6, 4, 1, 2),
    ("u3", "bipolar", None, 6, 4, 4, 1),
    ("i3", "i3", "steps2", 6, 6, 3, 3),
    ("u4", "i2", None, 4, 6, 2, 4),
    ("bipolar", "i3", "steps2", 4, 4, 2, 2),
    ("i4", "i3", "steps3", 4, 4, 1, 4),  # SF = 1, NF = 4
    # unsigned inputs and weights: the accumulator's range is unsigned, up to 2^bits - 1
    ("u2", "u2", None, 4, 2, 1, 2)])
@pytest.mark.parametrize("pipeline", [0, None])  # unpipelined, and the default pipeline
def test_mvtu_equals_golden_at_one_tile_per_cycle_and_under_backpressure(
        in_name, w_name, activation, mw, mh, pe, simd, pipeline):
    in_type = int_type(in_name)
    network = dense_network(mw * mh + pe, in_type, int_type(w_name), activation, mw, mh)
    layer = map_network(network, {"fc": {"pe": pe, "simd": simd}}, pipeline=pipeline).stages[0]
    assert isinstance(layer, LayerMapping) and (layer.thresholds is None) == (activation is None)
    vectors, nf, sf = 3, layer.neuron_fold, layer.synapse_fold
    x = random_values(np.random.default_rng(1), in_type, (vectors, mw))
    x[0], x[1] = in_type.max_int, in_type.min_int  # the accumulator's extremes
    expected = golden.run(network, x)
    beats = pack(layer.input.encode(x), simd, layer.input.bits)

    def run(valid=None, ready=None):
        mvtu = MVTU(layer)
        out, in_cycles, out_cycles = run_stream(mvtu, beats, vectors * nf, valid, ready,
                                                mvtu_rule(mvtu))
        got = layer.output.decode(unpack(out, pe, layer.output.bits)).reshape(vectors, mh)
        np.testing.assert_array_equal(got, expected)
        return in_cycles, out_cycles

    # no stall: one tile step per cycle, NF*SF cycles per vector; output beat b is issued by
    # the step in cycle (b+1)*SF - 1 and valid (and taken) pipeline + 1 cycles later
    in_cycles, out_cycles = run()
    assert in_cycles == [v * nf * sf + s for v in range(vectors) for s in range(sf)]
    assert out_cycles == [(b + 1) * sf + layer.pipeline for b in range(vectors * nf)]
    # the consumer's ready held low for the first 3*NF*SF cycles, then random; random input
    _, out_cycles = run(pattern(3, 0.6), pattern(2, 0.4, low_first=3 * nf * sf))
    assert out_cycles[0] >= 3 * nf * sf


# ---- stream width converter -----------------------------------------------------------------

def converter_rule(converter: StreamWidthConverter):
    """Full throughput: gathering, ready unless a whole beat is held and not taken this cycle;
    splitting, a new beat is taken with (or after) the last piece; pass-through, wires."""
    a, b = converter.in_elements, converter.out_elements
    state = {"taken": 0, "given": 0}

    def rule(ctx, in_valid, in_ready, out_valid, out_ready):
        if a == b:
            assert (in_ready, out_valid) == (out_ready, in_valid)
        elif b > a:
            held = state["taken"] - state["given"] * (b // a)
            assert (out_valid, in_ready) == (held == b // a, held < b // a or out_ready)
        else:
            left = state["taken"] * (a // b) - state["given"]
            assert (out_valid, in_ready) == (left > 0, left == 0 or (out_ready and left == 1))
        state["taken"] += in_valid and in_ready
        state["given"] += out_valid and out_ready

    return rule


@pytest.mark.parametrize("bits,a,b", [(3, 1, 4), (2, 2, 6), (4, 6, 2), (1, 8, 1), (5, 3, 3)])
def test_width_converter_keeps_the_element_sequence(bits, a, b):
    elements = np.random.default_rng(bits + a + b).integers(0, 1 << bits, 12 * a * b)
    n_out = len(elements) // b
    for seed in range(3):
        converter = StreamWidthConverter(bits, a, b)
        out, _, out_cycles = run_stream(converter, pack(elements, a, bits), n_out,
                                        *patterns(seed, 0.5, 0.5), converter_rule(converter))
        np.testing.assert_array_equal(unpack(out, b, bits), elements)
        if seed == 0:  # full rate, no bubbles: gathering, one output per b/a cycles; split and
            # pass-through one per cycle (split from the cycle after its first input beat)
            step = max(1, b // a)
            first = step if b > a else int(b < a)
            assert out_cycles == [first + step * j for j in range(n_out)]


# ---- sliding-window unit and max-pool -------------------------------------------------------

def window_rule(swu: SlidingWindowUnit):
    """The SWU docstring: a beat may be written while its global row is fewer than ``rows``
    above the lowest row the reader needs; a window beat is valid in the padding or once its
    pixel beat has been written."""
    w = swu.window
    k, beats = w.kernel, w.channel_beats
    state = {"written": 0, "read": 0}

    def rule(ctx, in_valid, in_ready, out_valid, out_ready):
        row, rest = divmod(state["written"], w.width * beats)
        write_x, write_beat = divmod(rest, beats)
        frame, rest = divmod(state["read"], w.beats_out)
        pixel, rest = divmod(rest, k * k * beats)
        (oy, ox), (ky, rest) = divmod(pixel, w.out_width), divmod(rest, k * beats)
        kx, beat = divmod(rest, beats)
        iy, ix = oy + ky - w.padding, ox + kx - w.padding
        padded = not (0 <= iy < w.height and 0 <= ix < w.width)
        written = (row, write_x, write_beat) > (frame * w.height + iy, ix, beat)
        lowest = frame * w.height + min(max(oy - w.padding, 0), w.height)
        assert in_ready == (row < lowest + w.rows)
        assert out_valid == (padded or written)
        state["written"] += in_valid and in_ready
        state["read"] += out_valid and out_ready

    return rule


@pytest.mark.parametrize("padding,simd,seed,geometry", [
    (0, 1, 0, {}), (1, 1, 1, {}), (1, 2, 2, {}), (0, 2, 3, {}), (1, 2, 4, {"kernel": 2}),
    # padding > kernel: output rows wholly in the bottom padding once let the writer overwrite
    # the next frame's first row before it was read
    (2, 1, 0, {"kernel": 1}),
    # enough frames for the unit's wrapping row counters (7 bits here) to wrap
    (1, 1, 0, {"frames": 22})])
def test_sliding_window_emits_im2col(padding, simd, seed, geometry):
    # the first layers of tests/test_finn.py's small_cnn: a 3x3 conv of a 2x6x6 uint4 map
    conv = Conv2d("c0", weights=np.random.default_rng(3).integers(-2, 2, (4, 2, 3, 3)),
                  weight_type=DataType(2, True), padding=min(padding, 1))
    network = Network("cnn", (1, 2, 6, 6), [Quant("q", bits=4, signed=False, scale=2**-4), conv])
    window = map_network(network, {"c0": {"simd": simd}}).stages[0]
    assert isinstance(window, WindowMapping) and window.simd == simd
    geometry = dict(geometry)
    frames = geometry.pop("frames", 2)
    window = replace(window, padding=padding, **geometry)  # geometries beyond the network's
    if frames > 2:
        assert frames * window.height > 1 << row_counter_bits(window)
    k, p, bits = window.kernel, padding, window.element.bits
    x = np.random.default_rng(seed).integers(0, 1 << bits, (frames, 6, 6, 2))  # NHWC
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    im2col = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    expected = im2col.transpose(0, 1, 2, 4, 5, 3).ravel()  # per output pixel: ky, kx, channel
    rates = patterns(seed, *((0.3, 0.9) if seed % 2 else (0.9, 0.3)))  # slow writer / reader
    swu = SlidingWindowUnit(window)
    out, _, _ = run_stream(swu, pack(window.element.encode(x), simd, bits),
                           frames * window.beats_out, *rates, window_rule(swu))
    np.testing.assert_array_equal(unpack(out, simd, bits), expected)


def pool_rule(pool: MaxPoolUnit):
    """The pooling unit takes a beat unless it closes a window while the output register holds
    a beat not read this cycle; the register is valid from the cycle after the closing beat."""
    s = pool.pool
    state = {"taken": 0, "out_valid": False}

    def rule(ctx, in_valid, in_ready, out_valid, out_ready):
        y, rest = divmod(state["taken"] % s.beats_in, s.width * s.channel_beats)
        x = rest // s.channel_beats
        inside = y < s.out_height * s.kernel and x < s.out_width * s.kernel
        last = inside and y % s.kernel == s.kernel - 1 and x % s.kernel == s.kernel - 1
        assert (in_ready, out_valid) == (not last or not state["out_valid"] or out_ready,
                                         state["out_valid"])
        state["taken"] += in_valid and in_ready
        state["out_valid"] = (in_valid and in_ready and last) or (out_valid and not out_ready)

    return rule


@pytest.mark.parametrize("element,side,kernel,lanes,seed", [
    ("i4", 4, 2, 1, 0), ("u3", 5, 2, 2, 1), ("bipolar", 6, 3, 4, 2), ("i3", 7, 3, 4, 3)])
def test_maxpool_equals_golden(element, side, kernel, lanes, seed):
    in_type = int_type(element)
    network = Network("pool", (1, 4, side, side), [
        MaxPool2d("p", kernel=kernel), Flatten("f"),
        Dense("d", weights=np.ones((1, 4 * (side // kernel) ** 2)), weight_type=DataType(2, True))],
        input_type=in_type)
    pool = map_network(network).stages[0]
    assert isinstance(pool, PoolMapping) and pool.element.bipolar == in_type.bipolar
    pool = replace(pool, lanes=lanes)  # lanes follow the producer's PE; any divisor is legal
    x = random_values(np.random.default_rng(seed), in_type, (2, 4, side, side))  # 2 frames
    expected = golden.apply_layer(network.layers[0], x, in_type).transpose(0, 2, 3, 1).ravel()
    bits, unit = pool.element.bits, MaxPoolUnit(pool)
    beats = pack(pool.element.encode(x.transpose(0, 2, 3, 1)), lanes, bits)  # NHWC
    out, _, _ = run_stream(unit, beats, 2 * pool.beats_out, *patterns(seed, 0.9, 0.15),
                           pool_rule(unit))
    np.testing.assert_array_equal(pool.element.decode(unpack(out, lanes, bits)), expected)


# ---- EIE ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shift,relu,bits,is_signed", [
    (0, False, 8, True), (1, True, 4, True), (3, True, 8, False), (5, False, 6, True),
    (4, False, 5, False)])
def test_requantizer_equals_golden_relu_and_quant(shift, relu, bits, is_signed):
    acc_bits, n = 14, 400
    rng = np.random.default_rng(shift * 7 + bits)
    acc = rng.integers(-(1 << (acc_bits - 1)), 1 << (acc_bits - 1), n)
    bias = rng.integers(-(1 << 8), 1 << 8, n)
    ties = rng.integers(-(1 << (bits + 1)), 1 << (bits + 1), n) * 2 ** shift + 2 ** shift // 2
    acc[: n // 2] = ties[: n // 2] - bias[: n // 2]  # exact halves, around the saturation range
    in_type = DataType(acc_bits + 1, True, 2.0 ** -6)
    total = acc + bias  # the Dense bias, in units of the product scale
    if relu:
        total = golden.apply_layer(Relu("r"), total, in_type)
    quant = Quant("q", bits=bits, signed=is_signed, scale=2.0 ** (shift - 6), rounding="ROUND")
    expected = golden.apply_layer(quant, total, in_type)
    # ``requantized`` alone (``rounded`` then ``saturated``, the functions the core's writeback
    # stages apply per PE to its accumulator and bias);
    # the engine holds activations signed, one bit wider for an unsigned Quant
    a, b = Signal(signed(acc_bits)), Signal(signed(acc_bits))
    out = Signal(signed(bits + (0 if is_signed else 1)))
    m = Module()
    m.d.comb += out.eq(requantized(a, b, Requantize(bias, relu, shift, bits, is_signed)))
    got = []

    async def testbench(ctx):
        for value, offset in zip(acc, bias):
            ctx.set(a, int(value))
            ctx.set(b, int(offset))
            got.append(ctx.get(out))

    simulate(m, testbench, clock=False)
    np.testing.assert_array_equal(got, expected)


def run_eie(mapping: EIENetworkMapping, vector):
    """Load ``vector`` through the harness's load port, raise ``run``, count the cycles until
    ``done``; returns (cycles counted, the ``cycles`` port, the last layer's outputs by row)."""
    n, bits, dut, result = mapping.num_pes, mapping.accumulator_bits, EIEHarness(mapping), {}

    async def testbench(ctx):
        for j, value in enumerate(vector):
            ctx.set(dut.load_bank, j % n)
            ctx.set(dut.load_row, j // n)
            ctx.set(dut.load_data, int(value) & ((1 << mapping.activation_bits) - 1))
            ctx.set(dut.load_en, 1)
            await ctx.tick()
        ctx.set(dut.load_en, 0)
        ctx.set(dut.run, 1)
        cycles = 0
        while not ctx.get(dut.done):
            await ctx.tick()
            cycles += 1
            assert cycles < 5000, "EIE core never done"
        outputs = []
        for row in range(mapping.layers[-1].rows):
            ctx.set(dut.read_pe, row % n)
            ctx.set(dut.read_row, row // n)
            await ctx.tick()  # the row address is registered
            value = ctx.get(dut.read_data)
            outputs.append(value - (1 << bits) if value >> (bits - 1) else value)
        result.update(counted=cycles, port=ctx.get(dut.cycles), outputs=np.array(outputs))

    simulate(dut, testbench)
    return result["counted"], result["port"], result["outputs"]


def sparse_weights(seed, rows, cols, density=0.3):
    rng = np.random.default_rng(seed)
    w = np.where(rng.random((rows, cols)) < density, rng.choice([-7, -2, 1, 3, 5], (rows, cols)), 0)
    w[:, :2] = 0  # column 0 empty;
    w[rows - 1, 1] = 4  # column 1: with over 16 local rows per PE, a gap needing a padding entry
    return w


@pytest.mark.parametrize("pes,depth,per_word", [(1, 1, 8), (2, 2, 2), (2, 8, 8)])
def test_eie_core_single_layer_equals_sparse_product_and_cycle_model(pes, depth, per_word):
    """The PEs live inside EIECore (``EIECore._pe`` builds them in the core's module and
    shares the broadcast and the done logic), so the smallest unit that runs is the harness."""
    weights = sparse_weights(pes, rows=17 * pes + 1, cols=10)
    layer = map_layer("fc", weights, num_pes=pes, queue_depth=depth)
    assert layer.matrix.padding_entries > 0
    mapping = EIENetworkMapping("one", [layer], [], entries_per_word=per_word)
    rng = np.random.default_rng(pes + depth)
    sparse = np.where(rng.random(10) < 0.6, rng.integers(-900, 900, 10), 0)
    sparse[1] = 11  # the column whose entry follows the padding entry; then all zeros
    for vector in (sparse, np.zeros(10, np.int64)):
        counted, port, outputs = run_eie(mapping, vector)
        np.testing.assert_array_equal(outputs, weights @ vector)
        assert counted == port == simulate_layer(layer.matrix, vector, depth, per_word).cycles


def test_eie_two_layers_with_writeback_equal_golden():
    """Layer 0's accumulators go through bias, ReLU, the rounding shift and saturation into
    the activation banks in hardware; layer 1's outputs (plus its bias) equal the golden model,
    the cycles the network cycle model's."""
    rng = np.random.default_rng(5)
    w0, w1 = sparse_weights(6, 12, 8, 0.5), sparse_weights(7, 5, 12, 0.5)
    network = Network("two", (1, 8), [
        Quant("q", bits=8, signed=True, scale=2.0 ** -4),
        Dense("d0", weights=w0, weight_type=DataType(4, True), bias=rng.integers(-60, 60, 12)),
        Relu("r0"), Quant("q0", bits=6, signed=False, scale=2.0 ** -1),
        Dense("d1", weights=w1, weight_type=DataType(4, True), bias=rng.integers(-9, 9, 5))])
    mapping = eie_map(network, num_pes=2, queue_depth=2)
    assert mapping.requantize[0].shift == 3 and mapping.activation_bits == 8
    x = np.where(rng.random((2, 8)) < 0.7, rng.normal(0, 3, (2, 8)), 0).astype(np.float32)
    trace = golden.run(network, x, return_all=True)
    assert {0, 63} <= set(trace[3].ravel())  # ReLU and saturation both happen
    for v in range(len(x)):
        counted, port, outputs = run_eie(mapping, trace[0][v])
        np.testing.assert_array_equal(outputs + mapping.final_bias, trace[-1][v])
        model = simulate_network([layer.matrix for layer in mapping.layers],
                                 [trace[0][v], trace[3][v]], 2)
        assert counted == port == model.cycles

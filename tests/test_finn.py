"""FINN-style dataflow: mapping rules, the cycle model against FINN's formula, and the RTL in
Verilator against the golden model and the cycle model."""

import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from accel.errors import ConfigError
from accel.hw.finn.mapping import map_network
from accel.hw.reference import FINN_FOLDINGS, finn_folding
from accel.hw.finn.model import simulate
from accel.hw.finn.run import generate_verilog
from accel.nn import (Conv2d, DataType, Dense, Flatten, MaxPool2d, MultiThreshold, Network,
                      Quant, load)
from accel.nn.data import digits_split
from accel.sim.lint import check_lint
from tests.test_nn_batchnorm import BREVITAS


def run_on_rtl(mapping, network, inputs):
    """Verilator against the golden model and the cycle model (``accel.hw.evaluate``)."""
    from accel.hw import evaluate
    from accel.hw.finn.arch import ARCHITECTURE

    return evaluate.simulate(ARCHITECTURE, mapping, network, inputs, model=network.name,
                             clock_mhz=200.0)


def equal_to_model(result) -> bool:
    """Bit-exact; cycles, first-frame latency, every event and the energy equal the model's."""
    return result.agrees and result.latency_cycles == result.extra["model_latency_cycles"]


def estimate_equals(result, mapping, network, inputs) -> bool:
    """``accel estimate``'s path reports what the Verilator run reported."""
    from accel.hw import evaluate
    from accel.hw.finn.arch import ARCHITECTURE

    estimated = evaluate.estimate(ARCHITECTURE, mapping, network, inputs, model=network.name,
                                  clock_mhz=200.0)
    return all(getattr(estimated, key) == getattr(result, key) for key in (
        "cycles_per_inference", "latency_cycles", "events", "predictions")) and \
        estimated.extra["energy_uj_per_inference"] == result.extra["energy_uj_per_inference"]


def bipolar(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1, 1)


@st.composite
def finn_networks(draw, max_width=24):
    """Quant -> (dense -> threshold)* -> dense, with a random legal folding."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    widths = [draw(st.sampled_from([4, 6, 8, 12, 16, max_width])) for _ in range(draw(st.integers(2, 4)))]
    in_bits = draw(st.integers(2, 8))
    layers = [Quant("quant", bits=in_bits, signed=draw(st.booleans()), scale=2.0**-4)]
    folding = {}
    for k, (mw, mh) in enumerate(zip(widths, widths[1:])):
        kind = draw(st.sampled_from(["bipolar", "int"]))
        if kind == "bipolar" or k > 0 and draw(st.booleans()):
            w, wtype = bipolar(rng, (mh, mw)), DataType.bipolar_type()
        else:
            wtype = DataType(draw(st.integers(2, 4)), True)
            w = rng.integers(wtype.min_int, wtype.max_int + 1, (mh, mw))
        layers.append(Dense(f"fc{k}", weights=w, weight_type=wtype))
        divisors = lambda n: [d for d in range(1, n + 1) if n % d == 0]  # noqa: E731
        folding[f"fc{k}"] = {"pe": draw(st.sampled_from(divisors(mh))),
                             "simd": draw(st.sampled_from(divisors(mw)))}
        if k < len(widths) - 2:
            reach = int(np.abs(w).sum(axis=1).max()) * (1 << in_bits)
            if draw(st.booleans()):
                t = rng.integers(-reach // 4, reach // 4 + 1, (mh, 1))
                layers.append(MultiThreshold(f"act{k}", thresholds=t, out_scale=2.0, out_bias=-1.0))
            else:
                steps = draw(st.integers(1, 3))
                t = np.sort(rng.integers(-reach // 4, reach // 4 + 1, (mh, steps)), axis=1)
                layers.append(MultiThreshold(f"act{k}", thresholds=t, out_scale=1.0,
                                             out_bias=float(-draw(st.integers(0, 1)))))
    network = Network("finn_random", (1, widths[0]), layers)
    # neighbouring PE and SIMD must divide one another: fix up the folding if they do not
    names = list(folding)
    for before, after in zip(names, names[1:]):
        pe, simd = folding[before]["pe"], folding[after]["simd"]
        if pe % simd and simd % pe:
            folding[after]["simd"] = 1
    return network, folding, draw(st.integers(0, 4))  # the MVTUs' pipeline registers


def mapped(case):
    network, folding, pipeline = case
    return map_network(network, folding, pipeline=pipeline)


@settings(max_examples=60, deadline=None)
@given(finn_networks(max_width=64), st.integers(1, 6))
def test_cycle_model_meets_finn_formula_in_steady_state(case, frames):
    mapping = mapped(case)
    one = simulate(mapping, 1)
    many = simulate(mapping, frames + 1)
    # with the generator's FIFO sizes the dataflow accepts a frame every II cycles, where II is
    # the slowest layer's (MH/PE)*(MW/SIMD)
    assert many.cycles - one.cycles == frames * mapping.initiation_interval
    for layer in mapping.layers:
        assert layer.cycles_per_frame == (layer.mh // layer.pe) * (layer.mw // layer.simd)
    # events scale with frames exactly: timing and counts do not depend on data
    for name, count in one.events.items():
        assert many.events[name] == (frames + 1) * count


def test_fast_forward_equals_plain_stepping():
    network = load(BREVITAS)
    mapping = map_network(network, {"node_linear": {"pe": 4, "simd": 2}})
    # 2 frames cannot be fast-forwarded; 40 frames are; the per-frame difference must agree
    two, three, forty = simulate(mapping, 2), simulate(mapping, 3), simulate(mapping, 40)
    assert forty.cycles - three.cycles == 37 * (three.cycles - two.cycles)


@st.composite
def finn_cnns(draw):
    """Quant -> conv (kernel 1-3, padding up to kernel + 1) -> threshold -> [conv ->
    threshold] -> [max-pool] -> [thresholds] -> flatten -> dense, with a random folding, and
    random FIFO depths (tight ones make back-pressure bind everywhere)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    side, channels = draw(st.integers(3, 6)), draw(st.sampled_from([1, 2, 4]))
    layers = [Quant("q", bits=draw(st.integers(2, 4)), signed=False, scale=2**-4)]
    folding, shape = {}, (channels, side, side)
    for k in range(draw(st.integers(1, 2))):
        kernel = draw(st.integers(1, min(3, shape[1])))
        padding = draw(st.integers(0, kernel + 1)) if k == 0 else 0
        out = draw(st.sampled_from([2, 4]))
        layers.append(Conv2d(f"c{k}", weights=rng.integers(-2, 2, (out, shape[0], kernel,
                                                                    kernel)),
                             weight_type=DataType(2, True), padding=padding))
        steps = draw(st.integers(1, 3))
        layers.append(MultiThreshold(f"t{k}", thresholds=np.sort(
            rng.integers(-20, 20, (out, steps)), axis=1), out_scale=1.0, out_bias=0.0))
        divisors = lambda n: [d for d in range(1, n + 1) if n % d == 0]  # noqa: E731
        folding[f"c{k}"] = {"pe": draw(st.sampled_from(divisors(out))),
                            "simd": draw(st.sampled_from(divisors(shape[0])))}
        size = shape[1] + 2 * padding - kernel + 1
        shape = (out, size, size)
    if shape[1] >= 2 and draw(st.booleans()):
        pool = draw(st.integers(2, shape[1]))
        layers.append(MaxPool2d("p", kernel=pool))
        shape = (shape[0], shape[1] // pool, shape[2] // pool)
    if draw(st.booleans()):  # a standalone thresholding stage (FINN's Thresholding layer)
        layers.append(MultiThreshold("thr", thresholds=np.sort(
            rng.integers(0, 4, (shape[0], draw(st.integers(1, 3)))), axis=1)))
        folding["thr"] = {"pe": draw(st.sampled_from(divisors(shape[0])))}
    layers += [Flatten("f"), Dense("d", weights=bipolar(rng, (3, int(np.prod(shape)))),
                                   weight_type=DataType.bipolar_type())]
    folding["d"] = {"pe": draw(st.sampled_from([1, 3])), "simd": 1}
    network = Network("cnn", (1, channels, side, side), layers)
    pipeline = draw(st.integers(0, 4))
    try:
        mapping = map_network(network, folding, pipeline=pipeline)
    except ConfigError:
        assume(False)
    if draw(st.booleans()):
        depths = [draw(st.integers(1, 4)) for _ in mapping.fifo_depths]
        mapping = map_network(network, folding, fifo_depths=depths, pipeline=pipeline)
    return mapping


@settings(max_examples=150, deadline=None)
@given(st.one_of(finn_cnns(), finn_networks().map(mapped)),
       st.integers(1, 9))
def test_token_model_equals_the_cycle_stepping_model(mapping, frames):
    """The fast model (per token, periodic frames closed analytically) against the model that
    steps every register (equal to the RTL by the Verilator tests): cycles, latency, events."""
    from accel.hw.finn.model import step
    from accel.hw.finn.tokens import token_timing

    fast = token_timing(mapping, frames)
    reference = step(mapping, frames)
    # it may decline (then ``simulate`` steps), never be wrong; with the generator's FIFO
    # depths it applies (the reference foldings: tests/test_architectures.py, model_speed)
    assert fast is None or fast == (reference.cycles, reference.frame0_cycles, reference.events)
    assert fast is not None or any(depth == 1 for depth in mapping.fifo_depths)


@settings(max_examples=2, deadline=None)
@given(finn_networks())
def test_random_networks_in_verilator_equal_golden_and_model(case):
    network = case[0]
    mapping = mapped(case)
    check_lint(generate_verilog(mapping), "finn_top")
    inputs = np.random.default_rng(7).random((5, network.input_shape[1])).astype(np.float32) * 2
    assert equal_to_model(run_on_rtl(mapping, network, inputs))


def test_brevitas_bnn_on_the_whole_test_split():
    network = load(BREVITAS)
    mapping = map_network(network, {"node_linear": {"pe": 16, "simd": 8},
                                    "node_linear_1": {"pe": 8, "simd": 16},
                                    "node_linear_2": {"pe": 2, "simd": 8}})
    split = digits_split()
    result = run_on_rtl(mapping, network, split.x_test)
    assert equal_to_model(result)
    accuracy = (np.array(result.predictions) == split.y_test).mean()
    assert accuracy == pytest.approx(0.9109, abs=1e-4)


def small_cnn(padding):
    rng = np.random.default_rng(3)
    side = 6 + 2 * padding - 4
    return Network("cnn", (1, 2, 6, 6), [
        Quant("q", bits=4, signed=False, scale=2**-4),
        Conv2d("c0", weights=rng.integers(-2, 2, (4, 2, 3, 3)), weight_type=DataType(2, True),
               padding=padding),
        MultiThreshold("t0", thresholds=np.sort(rng.integers(-20, 20, (4, 3)), axis=1),
                       out_scale=1.0, out_bias=0.0),
        Conv2d("c1", weights=rng.integers(-2, 2, (4, 4, 3, 3)), weight_type=DataType(2, True)),
        MultiThreshold("t1", thresholds=rng.integers(-10, 10, (4, 1)), out_scale=2.0,
                       out_bias=-1.0),
        MaxPool2d("p", kernel=2),
        Flatten("f"),
        Dense("d", weights=bipolar(rng, (3, 4 * (side // 2) ** 2)),
              weight_type=DataType.bipolar_type()),
    ])


@pytest.mark.parametrize("padding,folding,pipeline", [
    (1, {}, 0),
    (0, {"c0": {"pe": 2, "simd": 2}, "c1": {"pe": 4, "simd": 2}, "d": {"pe": 3, "simd": 2}}, 0),
    (1, {"c0": {"pe": 2, "simd": 2}, "c1": {"pe": 1, "simd": 4}, "d": {"pe": 1, "simd": 2}}, 3),
])
def test_small_cnn_in_verilator(padding, folding, pipeline):
    """Sliding window (with and without zero padding), max-pool, flatten permutation and width
    converters, unpipelined and pipelined MVTUs, against the golden model and the cycle
    model."""
    network = small_cnn(padding)
    mapping = map_network(network, folding, pipeline=pipeline)
    inputs = np.random.default_rng(11).random((4, 2, 6, 6)).astype(np.float32)
    assert equal_to_model(run_on_rtl(mapping, network, inputs))


@pytest.mark.parametrize("pipeline,copy_bits", [(0, 256), (3, 256), (5, 2), (6, 256)])
def test_per_pe_weight_address_copies_in_verilator(monkeypatch, pipeline, copy_bits):
    """Layers whose PEs' weight words exceed ``ADDRESS_FANOUT_BITS`` (lowered here so that a
    small network has them) read each PE's weights through its own copy of the address, kept
    apart from the others for synthesis, and a PE's LUT-ROM word wider than
    ``ADDRESS_COPY_BITS`` (lowered to 2 in one case) through one read port, with its own
    address copy, per slice; pipelined, the copies load the address a cycle late (an address
    stage), the selected beat is registered and each PE takes it into its own register (two
    beat stages), before the tree's registers (at 3 only the address stage, at 6 one tree
    register); bit-exact, cycles and events equal to the model."""
    import accel.hw.finn.mapping as finn_mapping

    monkeypatch.setattr(finn_mapping, "ADDRESS_FANOUT_BITS", 2)
    monkeypatch.setattr(finn_mapping, "ADDRESS_COPY_BITS", copy_bits)
    folding = {"c0": {"pe": 2, "simd": 2}, "c1": {"pe": 4, "simd": 2}, "d": {"pe": 1, "simd": 2}}
    network = small_cnn(1)
    mapping = map_network(network, folding, pipeline=pipeline)
    words = [layer.simd * layer.weight.bits for layer in mapping.layers]
    ports = [-(-word // copy_bits) for word in words[:2]]
    assert ports == ([1, 1] if copy_bits == 256 else [2, 2])
    assert [layer.weight_read_ports for layer in mapping.layers] == ports + [1]
    assert [layer.weight_address_registers for layer in mapping.layers] == \
        [2 * ports[0], 4 * ports[1], 1]
    stages = [layer.pipeline_stages for layer in mapping.layers]
    assert [(s.address, s.beat, s.tree) for s in stages] == \
        [(int(pipeline >= 3), max(0, min(2, pipeline - 3)), max(pipeline - 5, 0))] * 2 \
        + [(0, 0, max(pipeline - 1, 0))]
    verilog = generate_verilog(mapping)
    kept = re.findall(r"\(\* keep = 32'd1 \*\)\n  reg \[4:0\] \\?weight_read__addr", verilog)
    assert len(kept) == 2 * ports[0] + 4 * ports[1]  # every address port of c0 and c1
    beats = re.findall(r"\(\* keep = 32'd1 \*\)\n  reg \[\d+:0\] \\?beat_pe", verilog)
    assert len(beats) == (2 + 4) * int(pipeline >= 5)  # a copy per PE of c0 and c1
    inputs = np.random.default_rng(12).random((3, 2, 6, 6)).astype(np.float32)
    assert equal_to_model(run_on_rtl(mapping, network, inputs))


def test_the_default_pipeline_stages_the_address_only_where_it_is_copied(monkeypatch):
    """``auto_pipeline`` adds the address and beat stages by the same test as
    ``pipeline_stages`` places them (``weight_address_copied``): a single PE with wide weights
    and one read port keeps one address register, so it gets neither stage nor, in their
    place, three more adder-tree registers."""
    import accel.hw.finn.mapping as finn_mapping
    from accel.hw.finn.mapping import auto_pipeline, copies_weight_address

    monkeypatch.setattr(finn_mapping, "ADDRESS_FANOUT_BITS", 1)  # d: 1 PE of 2 bipolar weights
    folding = {"c0": {"pe": 2, "simd": 2}, "c1": {"pe": 4, "simd": 2}, "d": {"pe": 1, "simd": 2}}
    layers = map_network(small_cnn(1), folding).layers
    assert all(copies_weight_address(layer.pe, layer.simd, layer.weight.bits)
               for layer in layers)
    assert [layer.weight_address_copied for layer in layers] == [True, True, False]
    for layer in layers:
        thresholds = layer.thresholds is not None
        assert layer.pipeline == auto_pipeline(layer.simd, thresholds,
                                               layer.weight_address_copied)
        stages = layer.pipeline_stages
        assert stages.tree == auto_pipeline(layer.simd, thresholds) - 1 - stages.compare


@pytest.mark.parametrize("pipeline,fanout_bits,lags", [
    (0, None, [0, 1]), (None, None, [0, 1]), (None, 2, [1, 1])])
def test_input_buffer_write_lags_where_no_replay_reads_it_sooner(monkeypatch, pipeline,
                                                                 fanout_bits, lags):
    """The input buffer's write is registered (a cycle late) wherever the first replay of a
    word reads it two or more cycles after its step: not at one synapse fold (the next step
    replays the word), unless an address stage delays the reads (``ADDRESS_FANOUT_BITS``
    lowered so that this small layer copies its address); bit-exact, cycles and events equal
    to the model, unpipelined and pipelined."""
    import accel.hw.finn.mapping as finn_mapping

    if fanout_bits is not None:
        monkeypatch.setattr(finn_mapping, "ADDRESS_FANOUT_BITS", fanout_bits)
    rng = np.random.default_rng(21)
    network = Network("mlp", (1, 6), [
        Quant("q", bits=3, signed=True, scale=2**-2),
        Dense("fc0", weights=rng.integers(-2, 2, (8, 6)), weight_type=DataType(2, True)),
        MultiThreshold("t0", thresholds=np.sort(rng.integers(-6, 6, (8, 3)), axis=1),
                       out_scale=1.0, out_bias=0.0),
        Dense("fc1", weights=bipolar(rng, (4, 8)), weight_type=DataType.bipolar_type()),
    ])
    folding = {"fc0": {"pe": 2, "simd": 6}, "fc1": {"pe": 1, "simd": 4}}
    mapping = map_network(network, folding, pipeline=pipeline)
    assert [(layer.synapse_fold, layer.neuron_fold) for layer in mapping.layers] == \
        [(1, 4), (2, 4)]
    assert [layer.buffer_write_lag for layer in mapping.layers] == lags
    inputs = np.random.default_rng(22).random((6, 6)).astype(np.float32) * 2 - 1
    assert equal_to_model(run_on_rtl(mapping, network, inputs))


@pytest.mark.parametrize("padding,folding,pipeline,fanout_bits", [
    (1, {}, 0, None),
    (1, {"c0": {"pe": 2, "simd": 2}, "c1": {"pe": 2, "simd": 2}}, 4, None),
    (1, {"c0": {"pe": 2, "simd": 2}, "c1": {"pe": 2, "simd": 2}}, 5, 2),
    pytest.param(0, {"c0": {"pe": 2, "simd": 2}, "c1": {"pe": 4, "simd": 2},
                     "d": {"pe": 3, "simd": 2}}, 0, None, marks=pytest.mark.slow),
])
def test_back_pressure_in_verilator(monkeypatch, padding, folding, pipeline, fanout_bits):
    """The harness's source offers beats and its sink accepts them with probability 100 %,
    50 % and 10 % (pseudo-random, in hardware): outputs stay bit-exact and the stepping model
    follows the same generators to the cycle, in every event (a pipelined MVTU's output slots
    fill and drain under the stalls; with ``ADDRESS_FANOUT_BITS`` lowered, its weight address
    copies load a stalled step's address late)."""
    import accel.hw.finn.mapping as finn_mapping
    from accel.hw.common.stream_harness import Stimulus
    from accel.hw.evaluate import golden_outputs
    from accel.hw.finn.arch import ARCHITECTURE
    from accel.hw.finn.model import step
    from accel.hw.finn.run import run_rtl

    if fanout_bits is not None:
        monkeypatch.setattr(finn_mapping, "ADDRESS_FANOUT_BITS", fanout_bits)
    network = small_cnn(padding)
    mapping = map_network(network, folding, pipeline=pipeline)
    inputs = np.random.default_rng(11).random((4, 2, 6, 6)).astype(np.float32)
    harness = ARCHITECTURE.harness(mapping, len(inputs))
    expected = golden_outputs(network, inputs)
    full = step(mapping, len(inputs)).cycles
    for threshold, seed in ((256, 5), (128, 6), (26, 7)):
        stimulus = Stimulus(threshold, threshold, seed, seed * 7919)
        model = step(mapping, len(inputs), stimulus)
        run = run_rtl(mapping, network, inputs, harness, max_cycles=4 * model.cycles + 1000,
                      stimulus=stimulus)
        assert np.array_equal(run.outputs, expected), threshold
        assert (run.cycles, run.latency_cycles, run.events) == \
            (model.cycles, model.frame0_cycles, model.events), threshold
        if threshold < 256:
            assert model.cycles > full  # the pattern really stalled the pipeline


@pytest.mark.slow
@pytest.mark.parametrize("model,name", [(m, n) for m in FINN_FOLDINGS for n in FINN_FOLDINGS[m]])
def test_reference_bnns_on_the_whole_test_split(model, name):
    """bnn-mlp and bnn-cnv, fully folded, medium and wide: every test image bit-exact with the
    golden model and qonnx's executor, cycles and events equal to the cycle model, and the
    steady-state initiation interval equal to FINN's formula."""
    from accel.nn.evaluate import check_against_qonnx, network_inputs
    from accel.nn.qonnx_io import read_model

    network = load(model)
    mapping = map_network(network, finn_folding(network, FINN_FOLDINGS[model][name]))
    split = digits_split()
    inputs = network_inputs(network, split.x_test)
    from accel.hw.evaluate import golden_outputs

    result = run_on_rtl(mapping, network, inputs)
    assert equal_to_model(result)
    assert estimate_equals(result, mapping, network, inputs)
    frames = len(inputs)
    cycles = result.cycles_per_inference * frames
    assert (cycles - result.latency_cycles) / (frames - 1) == pytest.approx(
        mapping.initiation_interval, rel=0.01)
    # the RTL's outputs are the golden model's (bit-exact above): check those against qonnx
    check = check_against_qonnx(network, read_model(model), inputs,
                                golden_outputs(network, inputs))
    assert check.agree and check.exact_regime


def test_illegal_folding_names_the_layer_and_legal_choices():
    network = load(BREVITAS)
    with pytest.raises(ConfigError, match=r"layer node_linear: PE=5 does not divide MH=64; "
                                          r"legal PE: \[1, 2, 4, 8, 16, 32, 64\]"):
        map_network(network, {"node_linear": {"pe": 5}})
    with pytest.raises(ConfigError, match="SIMD=3 does not divide MW=64"):
        map_network(network, {"node_linear_1": {"simd": 3}})
    with pytest.raises(ConfigError, match="not dense or conv layers"):
        map_network(network, {"nonexistent": {"pe": 1}})


def test_float_network_is_rejected():
    net = Network("f", (1, 4), [Dense("d", weights=np.ones((2, 4)),
                                      weight_type=DataType.float32())])
    with pytest.raises(ConfigError, match="quantized input"):
        map_network(net)


@given(terms=st.integers(1, 4096), registers=st.integers(1, 16), tail=st.integers(0, 2))
def test_tree_cuts_spread_the_tree_with_its_head_and_tail_evenly(terms, registers, tail):
    """The pipeline registers of an adder tree, counted with one level of the terms' own logic
    before it and the ``tail`` levels after it: no segment is longer than an even share
    (rounded up), except what cannot be cut (the head with the first level, the tail with the
    last), and the cuts are in order within the tree."""
    from math import ceil

    from accel.hw.finn.mapping import tree_cuts

    depth = (terms - 1).bit_length()
    cuts = tree_cuts(terms, registers, tail)
    assert len(cuts) == registers and cuts == sorted(cuts)
    assert all(1 <= cut <= max(depth, 1) for cut in cuts)
    bounds = [0, *cuts, max(depth, cuts[-1])]
    segments = [after - before for before, after in zip(bounds, bounds[1:])]
    segments[0] += 1
    segments[-1] += tail
    assert max(segments) <= max(ceil((1 + depth + tail) / (registers + 1)), 2, tail + 1)


def test_sfc_widths_cut_two_levels_a_segment_with_the_offset_and_accumulate_last():
    from accel.hw.finn.mapping import tree_cuts

    assert tree_cuts(256, 4, tail=2) == [1, 3, 5, 7]  # SFC's hidden layers, bipolar
    assert tree_cuts(784, 5, tail=2) == [1, 3, 5, 7, 9]  # its first

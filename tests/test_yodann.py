"""The YodaNN-style engine: its mapping's refusals, its cycle model against counts derived from
the network alone, and its RTL in Verilator against the golden model (outputs) and the cycle
model (cycles and every event): on hand-built layers, on random layers and engines
(hypothesis), and on the shipped bwn-cnn over the whole digits test split."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from accel.cli import main
from accel.errors import ConfigError
from accel.hw import evaluate
from accel.hw.registry import architecture
from accel.hw.yodann.mapping import EngineConfig, map_network, passes
from accel.hw.yodann.model import frame_timing
from accel.nn import (Conv2d, DataType, Dense, Flatten, MaxPool2d, MultiThreshold, Network,
                      Quant, Relu, golden, load)

YODANN = architecture("yodann")
BINARY = DataType.bipolar_type(0.25)


def conv_network(*, channels=(2, 3), image=(5, 6), kernel=3, padding=1, relu=True,
                 out_scale=2.0**-2, rounding="ROUND", pool=1, dense=0, seed=0, weights=None,
                 stride=1, in_bits=6, in_scale=2.0**-3, threshold_steps=0):
    """Quant -> Conv2d (binary) [-> Relu] -> Quant [-> MaxPool] [-> Flatten -> Dense];
    with ``threshold_steps``, per-channel thresholds (1: bipolar) instead of Relu and Quant."""
    rng = np.random.default_rng(seed)
    cin, cout = channels
    height, width = image
    if weights is None:
        weights = np.where(rng.random((cout, cin, kernel, kernel)) < 0.5, -1, 1)
    layers = [Quant("quant", bits=in_bits, signed=True, scale=in_scale),
              Conv2d("conv", weights=weights, weight_type=BINARY,
                     bias=rng.integers(-10, 11, cout), padding=padding, stride=stride)]
    if threshold_steps:
        reach = kernel * kernel * cin * (1 << (in_bits - 1))
        thresholds = np.sort(rng.integers(-reach // 4, reach // 4 + 1,
                                          (cout, threshold_steps)), axis=1)
        layers.append(MultiThreshold("thresholds", thresholds=thresholds, out_scale=2.0,
                                     out_bias=-1.0 if threshold_steps == 1 else -2.0))
    else:
        if relu:
            layers.append(Relu("relu"))
        layers.append(Quant("requant", bits=6, signed=True, scale=out_scale,
                            rounding=rounding))
    if pool > 1:
        layers.append(MaxPool2d("pool", kernel=pool))
    if dense:
        rows = ((height + 2 * padding - kernel) // stride + 1) // pool
        cols = ((width + 2 * padding - kernel) // stride + 1) // pool
        layers += [Flatten("flatten"),
                   Dense("fc", weights=np.where(rng.random((dense, cout * rows * cols)) < 0.5,
                                                -1, 1), weight_type=BINARY)]
    return Network("conv_net", (1, cin, height, width), layers)


SMALL = EngineConfig(n_out=2, n_in=2, k_max=3, w_max=8, activation_bits=8)


@pytest.mark.parametrize("change, message", [
    (dict(weights=np.full((3, 2, 3, 3), 2)), "binary"),
    (dict(kernel=5, padding=2), "5x5 kernel; the engine's SoP units have 3x3 taps"),
    (dict(stride=2), "stride 2"),
    (dict(padding=3), "padding 3 for a 3x3 kernel"),
    (dict(out_scale=0.3), "fixed-point scale cannot hold exactly"),
    (dict(in_bits=9), "need 9 bits in two's complement; the engine holds 8"),
])
def test_what_the_engine_cannot_run_is_refused_naming_the_layer(change, message):
    kwargs = dict(change)
    if "weights" in kwargs and message == "binary":
        network = conv_network()
        network.layers[1].weight_type = DataType(3, True)
        network.layers[1].weights = kwargs.pop("weights")
    else:
        network = conv_network(**kwargs)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        map_network(network, SMALL)


def test_a_dense_layer_on_an_image_needs_a_flatten():
    """Without one, the IR's dense layer multiplies each position's last axis alone."""
    network = conv_network(image=(5, 6))
    network = Network("unflattened", network.input_shape, [*network.layers, Dense(
        "fc", weights=np.ones((4, 6), np.int64), weight_type=BINARY)])
    with pytest.raises(ConfigError, match="a dense layer on a 5x6 image without a Flatten"):
        map_network(network, SMALL)


def test_a_stripe_must_hold_one_window():
    with pytest.raises(ConfigError, match="--w-max 3 cannot hold one 3x3 window per 2x2 pool "
                                          "window; use at least 4"):
        map_network(conv_network(pool=2), EngineConfig(2, 2, 3, 3, 8))


def test_bwn_cnn_is_four_engine_layers_with_the_dense_layer_as_a_2x2_convolution():
    mapping = map_network(load("bwn-cnn"), EngineConfig())
    shapes = [(layer.kernel, layer.in_channels, layer.out_channels, layer.height, layer.pool)
              for layer in mapping.layers]
    assert shapes == [(3, 1, 32, 8, 1), (3, 32, 32, 8, 2), (3, 32, 64, 4, 2), (2, 64, 10, 2, 1)]
    assert mapping.layers[-1].requant is None  # the logits leave as accumulators
    # 32 channels per pass: conv2 has two output passes, fc two input passes
    assert len(passes(mapping)) == 6


@pytest.mark.parametrize("config", [EngineConfig(), EngineConfig(8, 8, 3, 5, 12),
                                    EngineConfig(5, 3, 7, 9, 12)])
def test_the_model_counts_every_binary_mac_of_the_network_once(config):
    """Independently of the schedule: a conv layer's MACs are output channels x input channels
    x k^2 x the output pixels it keeps (a pool drops the rest), whatever the tiling."""
    network = load("bwn-cnn")
    mapping = map_network(network, config)
    expected = sum(layer.out_channels * layer.in_channels * layer.kernel ** 2
                   * layer.conv_height * layer.conv_width for layer in mapping.layers)
    timing = frame_timing(mapping)
    assert timing.events["sop.mac"] == expected
    assert timing.events["channel_summer.accumulate"] == sum(
        layer.out_channels * layer.in_channels * layer.conv_height * layer.conv_width
        for layer in mapping.layers)
    # every value the host sends is written once, every output value read once
    assert timing.events["input.beat"] == 64 and timing.events["output.beat"] == 10
    assert timing.compute_cycles * config.n_out * config.k_max ** 2 >= expected


def test_cli_estimates_bwn_cnn_on_the_paper_engine(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert main(["estimate", "--arch", "yodann", "bwn-cnn", "--clock-mhz", "481",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["arch"] == "yodann" and result["accuracy"] > 0.95
    assert 0 < result["sop_utilization"] < 1
    assert result["cycles_per_inference"] == frame_timing(
        map_network(load("bwn-cnn"), EngineConfig())).cycles
    assert main(["estimate", "--arch", "yodann", "bwn-cnn", "--k-max", "2"]) == 2
    assert "3x3 kernel; the engine's SoP units have 2x2 taps" in capsys.readouterr().err


def _simulate(network, config, frames=2, seed=5):
    options = YODANN.Options(config.n_out, config.n_in, config.k_max, config.w_max,
                             config.activation_bits, config.sop_stage_levels)
    mapping = YODANN.configure(network, options, clock_mhz=100.0)
    inputs = np.random.default_rng(seed).uniform(-4, 4, (frames, *network.input_shape[1:]))
    return evaluate.simulate(YODANN, mapping, network, inputs, model=network.name,
                             clock_mhz=100.0)


@pytest.mark.parametrize("sop_stage_levels", [2, 0, 1])
def test_every_tiling_path_is_bit_exact_with_events_equal_to_the_model(sop_stage_levels):
    """Input and output passes, stripes, partial sums, pooling and a dense layer mapped as a
    2x2 convolution, with rounding half up and no ReLU, on a 2 x 2 engine; the SoP trees cut
    every two levels (the default), not at all and at every level."""
    network = conv_network(channels=(3, 3), image=(6, 6), relu=False, rounding="HALF_UP",
                           pool=2, dense=3)
    result = _simulate(network, EngineConfig(2, 2, 3, 4, 8, sop_stage_levels))
    assert result.bit_exact and result.model_events_equal and result.agrees


@st.composite
def layers_and_engines(draw):
    kernel = draw(st.sampled_from([3, 5, 7]))
    k_max = draw(st.integers(kernel, 7))
    padding = draw(st.integers(0, kernel - 1))
    pool = draw(st.sampled_from([1, 2]))
    height = draw(st.integers(max(kernel - 2 * padding + pool - 1, 1), 9))
    width = draw(st.integers(max(kernel - 2 * padding + pool - 1, 1), 11))
    network = conv_network(
        channels=(draw(st.integers(1, 5)), draw(st.integers(1, 5))), image=(height, width),
        kernel=kernel, padding=padding, relu=draw(st.booleans()),
        # an input scale of 3 x 2^-5 makes the output stage's multiplier 3
        in_scale=draw(st.sampled_from([2.0**-3, 3 * 2.0**-5])),
        out_scale=draw(st.sampled_from([2.0**-2, 2.0**-4])),
        rounding=draw(st.sampled_from(["ROUND", "FLOOR", "HALF_UP", "CEIL", "DOWN"])),
        pool=pool, dense=draw(st.sampled_from([0, 3])), seed=draw(st.integers(0, 99)),
        threshold_steps=draw(st.sampled_from([7, 0, 0, 1])))
    config = EngineConfig(n_out=draw(st.integers(1, 4)), n_in=draw(st.integers(1, 4)),
                          k_max=k_max, w_max=draw(st.integers(kernel + pool - 1, 12)),
                          activation_bits=8, sop_stage_levels=draw(st.integers(0, 3)))
    return network, config


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers_and_engines())
# bipolar thresholds (the derandomized draws take 7-step ones), pooled, then a dense layer
@example((conv_network(channels=(3, 2), image=(6, 6), threshold_steps=1, pool=2, dense=2),
          EngineConfig(2, 2, 3, 4, 8)))
def test_random_layers_on_random_engines_are_bit_exact_and_exactly_modelled(case):
    network, config = case
    result = _simulate(network, config)
    assert result.bit_exact and result.model_events_equal and result.agrees


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    {},  # the paper's engine: 32 x 32 SoPs of 7x7 taps, nothing tiled on bwn-cnn but conv2/fc
    # smaller than every layer's channels and than the image: every tiling path on real data
    {"n_out": 8, "n_in": 8, "w_max": 5},
], ids=["paper-engine", "every-tiling-path"])
def test_bwn_cnn_on_the_whole_test_split_is_bit_exact_and_exactly_modelled(options):
    from accel.nn.data import digits_split
    from accel.nn.evaluate import check_against_qonnx, network_inputs
    from accel.nn.qonnx_io import read_model
    from accel.nn.zoo import model_path

    network = load("bwn-cnn")
    split = digits_split()
    inputs = network_inputs(network, split.x_test)
    mapping = YODANN.configure(network, YODANN.Options(**options), clock_mhz=481.0)
    result = evaluate.simulate(YODANN, mapping, network, inputs, split.y_test,
                               model="bwn-cnn", clock_mhz=481.0)
    assert result.bit_exact and result.model_events_equal and result.agrees
    assert result.accuracy == pytest.approx(0.9805, abs=0.002)
    # the golden model the RTL equals is the exported file's arithmetic, by qonnx's executor
    check = check_against_qonnx(network, read_model(model_path("bwn-cnn")), inputs[:64],
                                golden.run(network, inputs[:64]))
    assert check.agree and check.exact_regime, check

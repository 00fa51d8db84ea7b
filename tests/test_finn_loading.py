"""FINN designs with loadable weights (``accel.hw.finn.loading``): a design built for one
network runs another of the same shape and types after its parameters are written through
the parameter port, bit-exact and in the cycles and events of the model, in Verilator."""

import numpy as np
import pytest

from accel.errors import ConfigError
from accel.hw.finn.loading import load_words, parameter_layout
from accel.hw.finn.mapping import ThresholdMapping, map_network
from accel.nn import Conv2d, DataType, Dense, Flatten, MaxPool2d, MultiThreshold, Network, Quant

FOLDING = {"c0": {"pe": 2, "simd": 2}, "c1": {"pe": 2, "simd": 4}, "d": {"pe": 3, "simd": 2},
           "t2": {"pe": 2}}


def cnn(seed: int, weight_bits: int = 2) -> Network:
    """Convolutions with integer weights, a standalone thresholding stage after the pool, a
    bipolar dense layer: every kind of parameter memory, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    low, high = -(1 << (weight_bits - 1)), 1 << (weight_bits - 1)
    return Network("cnn", (1, 2, 6, 6), [
        Quant("q", bits=4, signed=False, scale=2**-4),
        Conv2d("c0", weights=rng.integers(low, high, (4, 2, 3, 3)),
               weight_type=DataType(weight_bits, True), padding=1),
        MultiThreshold("t0", thresholds=np.sort(rng.integers(-20, 20, (4, 3)), axis=1),
                       out_scale=1.0, out_bias=0.0),
        Conv2d("c1", weights=rng.integers(low, high, (4, 4, 3, 3)),
               weight_type=DataType(weight_bits, True)),
        MultiThreshold("t1", thresholds=np.sort(rng.integers(-10, 10, (4, 3)), axis=1),
                       out_scale=1.0, out_bias=0.0),
        MaxPool2d("p", kernel=2),
        MultiThreshold("t2", thresholds=rng.integers(0, 4, (4, 1)), out_scale=2.0,
                       out_bias=-1.0),
        Flatten("f"),
        Dense("d", weights=np.where(rng.random((3, 16)) < 0.5, -1, 1),
              weight_type=DataType.bipolar_type()),
    ])


@pytest.mark.parametrize("pipeline", [0, None])
def test_a_design_runs_another_network_after_loading_its_parameters(pipeline):
    """Built for network A (its weights the memories' initial contents), loaded with B's
    through the parameter port: B's outputs bit-exact, which differ from A's on these inputs
    (so the writes landed), cycles and every event the model's. Unpipelined (LUT RAM, read
    combinationally) and pipelined (registered reads, as block RAM)."""
    from accel.hw.evaluate import golden_outputs
    from accel.hw.finn.arch import ARCHITECTURE
    from accel.hw.finn.model import simulate

    built_for, loaded = cnn(3), cnn(4)
    design = map_network(built_for, FOLDING, pipeline=pipeline, loadable_weights=True)
    assert any(isinstance(stage, ThresholdMapping) for stage in design.stages)
    inputs = np.random.default_rng(11).random((4, 2, 6, 6)).astype(np.float32)
    expected = golden_outputs(loaded, inputs)
    assert not np.array_equal(expected, golden_outputs(built_for, inputs))
    run = ARCHITECTURE.run_rtl(design, loaded, inputs, max_cycles=100_000)
    model = simulate(design, len(inputs))
    assert np.array_equal(run.outputs, expected)
    assert (run.cycles, run.latency_cycles, run.events) == \
        (model.cycles, model.frame0_cycles, model.events)


def test_loadable_accumulators_hold_any_weights_of_the_type():
    """The accumulator is sized for the weight type's extremes, not the network's weights: a
    network whose weights are all zero maps to a 1-bit accumulator, loadable to the full one."""
    quiet = cnn(3)
    for layer in quiet.layers:
        if isinstance(layer, (Conv2d, Dense)) and not layer.weight_type.bipolar:
            layer.weights = np.zeros_like(layer.weights)
    fixed = map_network(quiet, FOLDING)
    loadable = map_network(quiet, FOLDING, loadable_weights=True)
    # c0: 18 inputs of 0..15 times weights of -2..1: -540..270, 11 bits signed
    assert loadable.layers[0].accumulator.bits == 11
    assert fixed.layers[0].accumulator.bits < 11
    load_words(loadable, cnn(4))  # a network with non-zero weights fits


def test_the_address_map_numbers_memories_in_stage_order():
    design = map_network(cnn(3), FOLDING, loadable_weights=True)
    layout = parameter_layout(design)
    names = [memory.name for memory in layout.memories]
    assert names[:4] == ["c0.weights_pe0", "c0.weights_pe1", "c0.thresholds_pe0",
                         "c0.thresholds_pe1"]
    assert "t2.thresholds" in names and names[-1] == "d.weights_pe2"
    writes = load_words(design, cnn(4))
    words = sum(layer.pe * layer.neuron_fold * (layer.synapse_fold + (layer.steps > 0))
                for layer in design.layers)
    words += sum(stage.channel_beats for stage in design.stages
                 if isinstance(stage, ThresholdMapping))
    assert len(writes) == words
    assert len({address for address, _ in writes}) == len(writes)
    assert all(address < 1 << layout.addr_bits for address, _ in writes)
    assert all(data < 1 << layout.data_bits for _, data in writes)


@pytest.mark.parametrize("other,message", [
    (lambda: cnn(4, weight_bits=3), "does not fit"),
    (lambda: Network("small", (1, 16), [Quant("q", bits=4, signed=False, scale=1.0),
                                        Dense("d", weights=np.ones((3, 16)),
                                              weight_type=DataType.bipolar_type())]),
     "folding names layers"),
])
def test_a_network_that_does_not_fit_the_design_is_refused(other, message):
    design = map_network(cnn(3), FOLDING, loadable_weights=True)
    with pytest.raises(ConfigError, match=message):
        load_words(design, other())


def test_a_fixed_design_has_no_parameter_port():
    with pytest.raises(ConfigError, match="no parameter port"):
        load_words(map_network(cnn(3), FOLDING), cnn(4))


def test_generate_lists_the_parameter_port_and_its_writes(tmp_path):
    """``accel generate --loadable-weights``: the port in the Verilog (lint-clean) and the
    manifest, with the writes that load the generated network, as ``load_words`` gives them."""
    import json

    from accel.hw.reference import configure
    from accel.nn import load
    from accel.sim.lint import check_lint
    from tests.conftest import run_cli
    from tests.test_cli_nn import BREVITAS

    result = run_cli("generate", "--arch", "finn", BREVITAS, "--target-fps", "1e5",
                     "--loadable-weights", "--no-counters", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "finn_top.json").read_text())
    port = manifest["parameter_port"]
    assert manifest["ports"]["param_addr"] == port["addr_bits"]
    assert manifest["ports"]["param_data"] == port["data_bits"]
    network = load(BREVITAS)
    _, design = configure("finn", network, {"target_fps": 1e5, "loadable_weights": True},
                          count_events=False)
    assert [(int(a, 16), int(d, 16)) for a, d in port["writes"]] == load_words(design, network)
    check_lint(tmp_path / "out" / "finn_top.v", "finn_top")

"""YodaNN designs with loadable weights (``accel.hw.yodann.loading``): an engine built for one
network runs another of the same shape (other weights, biases, thresholds, scales and rounding)
after its parameters are written through the parameter port, bit-exact and in the cycles and
events of the model, in Verilator."""

import json

import numpy as np
import pytest

from accel.errors import ConfigError
from accel.hw.yodann.loading import load_words, parameter_layout
from accel.hw.yodann.mapping import (EngineConfig, filter_word_count, map_network, passes,
                                     threshold_rows)
from accel.hw.yodann.rtl import engine_widths, program_fields
from tests.test_yodann import YODANN, conv_network

ENGINE = EngineConfig(2, 2, 3, 4, 8)


def scaled(seed: int, **changes):
    """A pooled convolution into a dense layer (input and output passes, stripes, partial
    sums): ``seed`` draws its weights and biases."""
    shape = dict(channels=(3, 3), image=(6, 6), pool=2, dense=3, seed=seed)
    return conv_network(**{**shape, **changes})


def thresholded(seed: int, **changes):
    return conv_network(channels=(3, 2), image=(5, 5), threshold_steps=3, seed=seed, **changes)


@pytest.mark.parametrize("built_for,loaded", [
    # other weights and biases, another scale (multiplier 1, shift 3 -> 1, 2) and rounding
    (scaled(0), scaled(1, out_scale=2.0**-3, rounding="HALF_UP")),
    (thresholded(0), thresholded(1)),
])
def test_an_engine_runs_another_network_after_loading_its_parameters(built_for, loaded):
    """Built for A (its parameters the memories' initial contents), loaded with B's: B's
    outputs bit-exact, which differ from A's on these inputs (so the writes landed), cycles
    and every event the model's."""
    from accel.hw.evaluate import golden_outputs
    from accel.hw.yodann.model import frame_timing

    design = map_network(built_for, ENGINE, loadable_weights=True)
    inputs = np.random.default_rng(7).uniform(-4, 4, (2, *built_for.input_shape[1:]))
    expected = golden_outputs(loaded, inputs)
    assert not np.array_equal(expected, golden_outputs(built_for, inputs))
    run = YODANN.run_rtl(design, loaded, inputs, max_cycles=200_000)
    frame = frame_timing(map_network(loaded, ENGINE))
    assert np.array_equal(run.outputs, expected.reshape(len(inputs), -1))
    assert run.cycles == 2 * frame.cycles and run.latency_cycles == frame.cycles
    assert run.events == {name: 2 * count for name, count in frame.events.items()}


def test_the_address_map_and_the_writes():
    """Weights, biases, thresholds, the program's scale fields, in that order; one write per
    word, the multiplier as wide as the output stage takes, whatever the network's own."""
    design = map_network(thresholded(0), ENGINE, loadable_weights=True)
    layout = parameter_layout(design)
    assert [m.name for m in layout.memories] == ["weight_mem", "bias_rom", "threshold_mem",
                                                 "scale_mem"]
    writes = load_words(design, thresholded(1))
    assert len(writes) == len({address for address, _ in writes})
    assert len(writes) == (filter_word_count(design) + 2 + threshold_rows(design)
                           + len(passes(design)))  # two biases: the one layer's channels
    assert all(data < 1 << layout.data_bits for _, data in writes)
    assert program_fields(design)["mult"][1].width == 16
    assert program_fields(map_network(thresholded(0), ENGINE))["mult"][1].width < 16


@pytest.mark.parametrize("other,message", [
    (lambda: scaled(1, channels=(3, 4)), "'in_count' differs"),
    (lambda: scaled(1, relu=False), "'relu' differs"),
    (lambda: scaled(1, kernel=2, padding=0), "number of passes"),
    (lambda: scaled(1, pool=1), "number of passes"),
    (lambda: thresholded(1), r"takes \(3, 5, 5\)"),
])
def test_a_network_of_another_shape_is_refused(other, message):
    design = map_network(scaled(0), ENGINE, loadable_weights=True)
    with pytest.raises(ConfigError, match=message):
        load_words(design, other())


def test_a_network_whose_biases_need_a_wider_accumulator_is_refused():
    wide = scaled(1)
    conv = next(layer for layer in wide.layers if layer.name == "conv")
    conv.bias = conv.bias * 1000
    design = map_network(scaled(0), ENGINE, loadable_weights=True)
    assert engine_widths(map_network(wide, ENGINE))["acc"] > engine_widths(design)["acc"]
    with pytest.raises(ConfigError, match="accumulator"):
        load_words(design, wide)


def test_a_fixed_engine_has_no_parameter_port():
    with pytest.raises(ConfigError, match="no parameter port"):
        load_words(map_network(scaled(0), ENGINE), scaled(1))


def test_generate_lists_the_parameter_port_and_its_writes(tmp_path):
    """``accel generate --arch yodann --loadable-weights``: the port in the lint-clean Verilog
    and the manifest, with the writes that load the generated network."""
    from accel.nn import load
    from accel.sim.lint import check_lint
    from tests.conftest import run_cli

    out = tmp_path / "out"
    result = run_cli("generate", "--arch", "yodann", "bwn-cnn", "--n-out", "4", "--n-in", "4",
                     "--k-max", "3", "--loadable-weights", "--no-counters", "-o", str(out))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "yodann_top.json").read_text())
    port = manifest["parameter_port"]
    assert manifest["ports"]["param_addr"] == port["addr_bits"]
    assert manifest["ports"]["param_data"] == port["data_bits"]
    design = map_network(load("bwn-cnn"), EngineConfig(4, 4, 3), count_events=False,
                         loadable_weights=True)
    assert [(int(a, 16), int(d, 16)) for a, d in port["writes"]] == \
        load_words(design, load("bwn-cnn"))
    check_lint(out / "yodann_top.v", "yodann_top")

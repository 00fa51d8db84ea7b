"""FINN generation that scales (issue 13, item 3): the generated Verilog grows linearly in
PE x SIMD, and deep popcounts and adder trees generate without hitting Python's recursion
limit. ``benchmarks/finn_sfc.py`` measures the SFC-max folding itself."""

import numpy as np
import pytest

from accel.hw.finn.mapping import map_network
from accel.hw.finn.run import generate_verilog
from accel.nn import DataType, Dense, Network, Quant
from accel.sim.lint import check_lint
from benchmarks.finn_sfc import layer_networks, sfc_network, verilog_size


def _size(network, pe: int, simd: int) -> dict:
    folding = {f"fc{k}": {"pe": pe, "simd": simd} for k in range(len(network.layers) // 2)}
    return verilog_size(generate_verilog(map_network(network, folding, count_events=False)))


@pytest.mark.parametrize("doubled", ["simd", "pe"])
def test_verilog_size_is_linear_in_pe_x_simd(doubled):
    # one binary 1024 -> 16 layer: SIMD doubling once rebuilt the beat mux and XNOR per lane
    # (size ~ PE x SIMD^2); linear growth doubles the lane logic, plus a constant (memories,
    # control), so each doubling of PE x SIMD must stay under 2.3x
    network = sfc_network(widths=(1024, 16), seed=1)
    folds = [(4, 64), (4, 128), (4, 256)] if doubled == "simd" else [(2, 256), (4, 256),
                                                                      (8, 256)]
    sizes = [_size(network, pe, simd) for pe, simd in folds]
    for small, large in zip(sizes, sizes[1:]):
        for key in ("bytes", "assigns"):
            assert large[key] < 2.3 * small[key], (doubled, key, sizes)


@pytest.mark.parametrize("kind", ["xnor_popcount", "mac"])
def test_deep_popcount_generates(kind):
    """SIMD 1024 in one PE: a 1024-input popcount (binary input) or a 1024-term sum of
    8-bit inputs times bipolar weights, each a balanced tree, lint-clean."""
    rng = np.random.default_rng(2)
    if kind == "xnor_popcount":
        network = sfc_network(widths=(1024, 2), seed=2)
    else:
        weights = np.where(rng.random((2, 1024)) < 0.5, -1, 1)
        network = Network("deep_mac", (1, 1024), [
            Quant("quant_in", bits=8, signed=False),
            Dense("fc0", weights=weights, weight_type=DataType.bipolar_type())])
    mapping = map_network(network, {"fc0": {"pe": 1, "simd": 1024}}, count_events=False)
    verilog = generate_verilog(mapping)
    assert "agree_pe0" in verilog if kind == "xnor_popcount" else "acc_pe0" in verilog
    check_lint(verilog, "finn_top")


def test_sfc_layers_alone_keep_their_layer_and_folding():
    """``finn_sfc.py --layers`` places each SFC layer alone: the same dense layer and threshold
    behind an input quantizer, mapped with the layer's folding in the whole network."""
    from accel.hw.finn.mapping import auto_fold

    network = sfc_network(widths=(64, 32, 16, 10), seed=3)
    folding = auto_fold(network, 1e6, 100.0)
    whole = {layer.name: layer for layer in map_network(network, folding).layers}
    alone = layer_networks(network)
    assert [a.layers[1].name for a in alone] == ["fc0", "fc1", "fc2"]
    for a in alone:
        name = a.layers[1].name
        assert any(a.layers[1] is layer for layer in network.layers)
        assert [type(layer).__name__ for layer in a.layers] == (
            ["BipolarQuant", "Dense"] + (["MultiThreshold"] if name != "fc2" else []))
        (mapped,) = map_network(a, {name: folding[name]}).layers
        assert (mapped.pe, mapped.simd, mapped.cycles_per_frame) == (
            whole[name].pe, whole[name].simd, whole[name].cycles_per_frame)

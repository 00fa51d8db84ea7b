"""EIE engines with loadable weights (``accel.hw.eie.loading``): an engine built for one network
runs another of the same shape (other weights, sparsity, codebooks and biases) after its
parameters are written through the parameter port, bit-exact and in the cycles and events of
the model, in Verilator."""

import json

import numpy as np
import pytest

from accel.errors import ConfigError
from accel.hw.eie.arch import ARCHITECTURE as EIE, EIEOptions
from accel.hw.eie.loading import fitted_mapping, load_words, parameter_layout
from accel.hw.eie.mapping import CODEBOOK_ENTRIES, map_network
from accel.hw.eie.rtl import pointer_bits, sparse_words
from accel.nn import DataType, Dense, Network, Quant, Relu


def two_layers(seed: int, density: float = 0.3, *, rows: int = 12, weight_bits: int = 3,
               values=range(-3, 4), hidden_scale: float = 2.0**-2,
               bias: bool = True) -> Network:
    """Quant -> 16-input dense -> ReLU -> Quant -> 5-output dense; ``seed`` draws the weights
    (``density`` of them nonzero, from ``values``, of a ``weight_bits``-bit type) and the
    biases."""
    rng = np.random.default_rng(seed)
    weights = [np.where(rng.random(shape) < density, rng.choice(list(values), shape), 0)
               for shape in ((rows, 16), (5, rows))]
    biases = [rng.integers(-40, 41, rows), rng.integers(-40, 41, 5)] if bias else [None, None]
    return Network(f"eie_load_{seed}", (1, 16), [
        Quant("quant", bits=8, signed=True, scale=2.0**-4),
        Dense("fc0", weights=weights[0], weight_type=DataType(weight_bits, True),
              bias=biases[0]),
        Relu("relu0"),
        Quant("quant1", bits=8, signed=True, scale=hidden_scale),
        Dense("fc1", weights=weights[1], weight_type=DataType(weight_bits, True),
              bias=biases[1]),
    ])


def inputs(count: int = 3) -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.where(rng.random((count, 16)) < 0.6, rng.uniform(-4, 4, (count, 16)), 0.0)


@pytest.mark.parametrize("options,density", [
    # the default capacity (the built network's largest PE, rounded up to a power of two
    # words: 32 entries) with a network of the same density
    (EIEOptions(pes=3, queue_depth=2, loadable_weights=True), 0.3),
    # 2-entry words: every layer starts at a word boundary of another layout; a capacity
    # for a denser network
    (EIEOptions(pes=2, queue_depth=4, sparse_word_bits=16, loadable_weights=True,
                sparse_capacity=120), 0.45),
])
def test_an_engine_runs_another_network_after_loading_its_parameters(options, density):
    """Built for A (its parameters the memories' initial contents), loaded with B's (other
    weights, sparsity, codebook and biases): B's outputs bit-exact, which differ from A's on
    these inputs (so the writes landed), cycles and every event the cycle model's for B."""
    from accel.hw.evaluate import golden_outputs

    built_for, loaded = two_layers(0), two_layers(1, density=density)
    design = EIE.configure(built_for, options, clock_mhz=200)
    source = fitted_mapping(design, loaded)
    assert source.stored_entries() != design.stored_entries()
    assert [list(spec.codebook) for spec in source.layers] != \
        [list(spec.codebook) for spec in design.layers]
    vectors = inputs()
    expected = golden_outputs(loaded, vectors)
    assert not np.array_equal(expected, golden_outputs(built_for, vectors))
    run = EIE.run_rtl(design, loaded, vectors, max_cycles=20_000)
    timing = EIE.estimate(design, loaded, vectors)
    assert timing.cycles == EIE.estimate(source, loaded, vectors).cycles
    assert np.array_equal(run.outputs, expected)
    assert run.cycles == timing.cycles
    assert run.events == timing.events


def test_the_address_map_and_the_writes():
    """Per PE: both pointer banks, the sparse-matrix SRAM at its capacity, the codebooks,
    the biases; one write per word of the loaded network, at distinct addresses."""
    design = map_network(two_layers(0), num_pes=2, loadable_weights=True)
    layout = parameter_layout(design)
    assert [m.name for m in layout.memories] == [
        f"pe{k}_{name}" for k in range(2)
        for name in ("pointers_even", "pointers_odd", "sparse", "codebook", "bias")]
    # default capacity: the largest PE's entries, rounded up to a power of two words
    words = -(-max(design.stored_entries()) // design.entries_per_word)
    assert design.sparse_capacity == design.entries_per_word << (words - 1).bit_length()
    assert layout.named("pe0_sparse").depth == design.sparse_capacity // design.entries_per_word
    assert layout.named("pe1_codebook").depth == 2 * CODEBOOK_ENTRIES
    loaded = two_layers(1, density=0.45)
    writes = load_words(design, loaded)
    assert len(writes) == len({address for address, _ in writes})
    source = fitted_mapping(design, loaded)
    pointers = 2 * (16 + 1 + 12 + 1)  # cols + 1 per layer, in both PEs
    assert len(writes) == (pointers + sum(len(sparse_words(source, k)) for k in range(2))
                           + 2 * 2 * CODEBOOK_ENTRIES + 12)  # 12 rows of biases, 6 per PE
    assert all(data < 1 << layout.data_bits for _, data in writes)
    assert pointer_bits(source) == pointer_bits(design)


def test_accumulators_are_sized_for_any_weights_of_the_type():
    """A network of all-zero weights gets the accumulator of its weight type, as loadable."""
    sparse = two_layers(0, density=0.0, bias=False)
    fixed = map_network(sparse, num_pes=2)
    loadable = map_network(sparse, num_pes=2, loadable_weights=True)
    # 16 inputs of 8 bits times a 3-bit weight reach 16 * -128 * -4 = 2**13: 15 bits signed,
    # and the bit EIE's accumulators add for the bias
    assert loadable.layers[0].accumulator_bits == 15 + 1
    assert fixed.layers[0].accumulator_bits < loadable.layers[0].accumulator_bits


@pytest.mark.parametrize("other,message", [
    (lambda: two_layers(1, rows=10), "fc0 is 10 x 16"),
    (lambda: two_layers(1, hidden_scale=2.0**-1), "shift 3.*shift 2"),
    (lambda: two_layers(1, weight_bits=5, values=(-12, -3, 5, 11)), "5-bit codebook values"),
    (lambda: two_layers(1, density=1.0), "more than the capacity"),
])
def test_a_network_that_does_not_fit_is_refused(other, message):
    design = map_network(two_layers(0), num_pes=2, loadable_weights=True)
    with pytest.raises(ConfigError, match=message):
        load_words(design, other())


def test_a_network_whose_biases_need_a_wider_accumulator_is_refused():
    wide = two_layers(1)
    wide.layers[1].bias = wide.layers[1].bias * 10**6
    design = map_network(two_layers(0), num_pes=2, loadable_weights=True)
    with pytest.raises(ConfigError, match="accumulators"):
        load_words(design, wide)


def test_a_fixed_engine_has_no_parameter_port_and_no_capacity():
    with pytest.raises(ConfigError, match="no parameter port"):
        load_words(map_network(two_layers(0), num_pes=2), two_layers(1))
    with pytest.raises(ConfigError, match="for a loadable design"):
        map_network(two_layers(0), num_pes=2, sparse_capacity=64)
    with pytest.raises(ConfigError, match="capacity of 8"):
        map_network(two_layers(0), num_pes=2, loadable_weights=True, sparse_capacity=8)


def test_generate_lists_the_parameter_port_and_its_writes(tmp_path):
    """``accel generate --arch eie --loadable-weights``: the port in the lint-clean Verilog and
    the manifest, with the writes that load the generated network."""
    from accel.nn import load
    from accel.sim.lint import check_lint
    from tests.conftest import run_cli

    out = tmp_path / "out"
    result = run_cli("generate", "--arch", "eie", "mlp-sparse", "--pes", "2",
                     "--loadable-weights", "--sparse-capacity", "3000", "--no-counters",
                     "-o", str(out))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "eie_top.json").read_text())
    port = manifest["parameter_port"]
    assert manifest["ports"]["param_addr"] == port["addr_bits"]
    assert manifest["ports"]["param_data"] == port["data_bits"]
    assert manifest["sparse_capacity_per_pe"] == 3000
    design = map_network(load("mlp-sparse"), num_pes=2, count_events=False,
                         loadable_weights=True, sparse_capacity=3000)
    assert [(int(a, 16), int(d, 16)) for a, d in port["writes"]] == \
        load_words(design, load("mlp-sparse"))
    check_lint(out / "eie_top.v", "eie_top")


@pytest.mark.slow
def test_mlp_sparse_pruned_further_runs_on_the_engine_built_for_mlp_sparse():
    """The 4-PE engine generated for mlp-sparse, loaded with mlp-sparse pruned further (each
    layer's smallest-magnitude shared weights dropped: other sparse matrices, fewer entries
    per PE, as energy-aware pruning leaves a network), on the whole test split: bit-exact with
    the pruned network's golden model, cycles, events and energy equal to the cycle model's."""
    import copy

    from accel.hw import evaluate
    from accel.nn import golden, load
    from accel.nn.data import digits_split

    network = load("mlp-sparse")
    pruned = copy.deepcopy(network)
    for layer in pruned.layers:
        if isinstance(layer, Dense):
            magnitudes = np.unique(np.abs(layer.weights[layer.weights != 0]))
            layer.weights = np.where(np.abs(layer.weights) <= magnitudes[1], 0, layer.weights)
    split = digits_split()
    design = EIE.configure(network, EIEOptions(pes=4, loadable_weights=True), clock_mhz=200.0)
    loaded = fitted_mapping(design, pruned)
    assert all(a < b for a, b in zip(loaded.stored_entries(), design.stored_entries()))
    result = evaluate.simulate(EIE, design, pruned, split.x_test, split.y_test,
                               model="mlp-sparse-pruned", clock_mhz=200.0)
    assert result.images == 359 and result.bit_exact
    assert result.predictions == list(golden.predict(pruned, split.x_test))
    assert result.predictions != list(golden.predict(network, split.x_test))
    assert result.cycles_per_inference == result.model_cycles_per_inference
    assert result.model_events_equal
    assert result.extra["energy_uj_per_inference"] == \
        result.extra["model_energy_uj_per_inference"]

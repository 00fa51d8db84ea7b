"""Simulating EIE layers and networks in Verilator against the golden model and the cycle
model."""

from __future__ import annotations

import numpy as np

from accel.hw.eie.mapping import EIELayerMapping, EIENetworkMapping, single_layer
from accel.hw.eie.model import (ENTRIES_PER_WORD, EIENetworkBatch, simulate_network,
                                 simulate_network_batch)
from accel.hw.eie.rtl import EIEVectorLoader
from accel.hw.verilog import to_verilog

SIM_TOP_NAME = "eie_sim_top"
TESTBENCH = "accel.sim.tb.eie_tb"


def network_layer_inputs(network, trace: list[np.ndarray]) -> list[np.ndarray]:
    """Each dense layer's input activations, from the golden model's per-layer outputs
    (``golden.run(..., return_all=True)``)."""
    from accel.nn.ir import Dense

    return [trace[i - 1] for i, layer in enumerate(network.layers) if isinstance(layer, Dense)]


def model_timing(mapping: EIENetworkMapping, layer_inputs: list[np.ndarray]) -> EIENetworkBatch:
    """The cycle model for every vector (``layer_inputs`` as in ``run_rtl``)."""
    return simulate_network_batch([layer.matrix for layer in mapping.layers], layer_inputs,
                                  mapping.queue_depth, mapping.entries_per_word)


def dense_weights(layer: EIELayerMapping) -> np.ndarray:
    return layer.codebook[layer.matrix.decode()]


def run_rtl(mapping: EIENetworkMapping, vectors: np.ndarray, *, max_cycles: int,
            network=None) -> list[dict]:
    """``vectors`` (V x cols of the first layer): the first layer's integer activations, one
    run each. Per vector: the last layer's accumulators (plus its bias) by output row, cycles
    and events. Given ``network``, a loadable design first loads its parameters through the
    parameter port (``accel.hw.eie.loading``; without, it runs the network it was built
    with)."""
    from accel.hw.eie.loading import fitted_mapping, fitted_writes
    from accel.sim import runner
    from accel.sim.lint import check_lint

    harness = EIEVectorLoader(mapping)
    batches, loaded = [], mapping
    if network is not None:  # fitted_mapping refuses a design without a parameter port
        loaded = fitted_mapping(mapping, network)
        batches = harness.parameter_loader.batches(fitted_writes(mapping, loaded))
    verilog = to_verilog(harness, SIM_TOP_NAME)
    check_lint(verilog, SIM_TOP_NAME)
    last = mapping.layers[-1]
    padded = np.zeros((len(vectors), mapping.max_cols), dtype=np.int64)
    padded[:, :vectors.shape[1]] = vectors
    sim = runner.run(runner.build(verilog, SIM_TOP_NAME), TESTBENCH, inputs={
        "vectors": padded, "num_pes": mapping.num_pes, "local_rows": last.local_rows,
        "activation_bits": mapping.activation_bits, "max_cycles": max_cycles,
        "parameter_batches": batches})
    bias = loaded.final_bias if loaded.final_bias is not None else 0
    results = []
    for got in sim.outputs["results"]:
        per_pe = np.array(got["accumulators"]).reshape(mapping.num_pes, last.local_rows)
        outputs = np.array([per_pe[i % mapping.num_pes, i // mapping.num_pes]
                            for i in range(last.rows)]) + bias
        results.append({"outputs": outputs, "cycles": got["cycles"],
                        "events": harness.counters.decode(got["event_counts"]),
                        "seconds": sim.seconds})
    return results


def run_layer_rtl(layer: EIELayerMapping, vectors: np.ndarray,
                  entries_per_word: int = ENTRIES_PER_WORD) -> list[dict]:
    """One layer: outputs are compared with the exact product ``expected``."""
    mapping = single_layer(layer, entries_per_word)
    timing = model_timing(mapping, [vectors])
    results = run_rtl(mapping, vectors, max_cycles=4 * int(timing.cycles.max()) + 100)
    weights = dense_weights(layer)
    for result, vector in zip(results, vectors):
        result["expected"] = weights @ vector.astype(np.int64)
        result["model"] = simulate_network([layer.matrix], [vector], layer.queue_depth,
                                           entries_per_word)
    return results

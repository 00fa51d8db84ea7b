"""Simulating an EIE layer in Verilator against the exact product and the cycle model."""

from __future__ import annotations

import numpy as np

from accel.hw.eie.mapping import EIELayerMapping
from accel.hw.eie.model import simulate_layer
from accel.hw.eie.rtl import EIEHarness
from accel.hw.verilog import to_verilog

HARNESS_NAME = "eie_harness"
TESTBENCH = "accel.sim.tb.eie_tb"


def dense_weights(mapping: EIELayerMapping) -> np.ndarray:
    return mapping.codebook[mapping.matrix.decode()]


def run_layer_rtl(mapping: EIELayerMapping, vectors: np.ndarray) -> list[dict]:
    """Each activation vector through the RTL (one build, one run); per vector the outputs
    (rows), the exact product, cycles and events from the RTL and from the model."""
    from accel.sim import runner
    from accel.sim.lint import check_lint

    harness = EIEHarness(mapping)
    verilog = to_verilog(harness, HARNESS_NAME)
    check_lint(verilog, HARNESS_NAME)
    timings = [simulate_layer(mapping.matrix, v, mapping.queue_depth) for v in vectors]
    sim = runner.run(runner.build(verilog, HARNESS_NAME), TESTBENCH, inputs={
        "vectors": [[int(a) for a in v] for v in vectors], "num_pes": mapping.num_pes,
        "local_rows": mapping.local_rows, "activation_bits": mapping.activation_bits,
        "max_cycles": 4 * max(t.cycles for t in timings) + 100})
    weights = dense_weights(mapping)
    results = []
    for vector, timing, got in zip(vectors, timings, sim.outputs["results"]):
        per_pe = np.array(got["accumulators"]).reshape(mapping.num_pes, mapping.local_rows)
        outputs = np.array([per_pe[i % mapping.num_pes, i // mapping.num_pes]
                            for i in range(mapping.rows)])
        results.append({"outputs": outputs, "expected": weights @ vector.astype(np.int64),
                        "cycles": got["cycles"], "model": timing,
                        "events": harness.counters.decode(got["event_counts"])})
    return results

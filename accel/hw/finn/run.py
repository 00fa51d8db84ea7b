"""Generating and simulating a FINN mapping: Verilog of the top, and a Verilator run of the
harness on real inputs, compared with the golden model and the cycle model."""

from __future__ import annotations

import numpy as np

from accel.errors import SimulationError
from accel.hw.finn.mapping import FinnMapping
from accel.hw.finn.model import simulate
from accel.hw.finn.mvtu import _pack
from accel.hw.finn.top import FinnHarness, FinnTop
from accel.hw.verilog import to_verilog
from accel.nn import golden
from accel.nn.ir import Network, Quant

TOP_NAME = "finn_top"
HARNESS_NAME = "finn_harness"
TESTBENCH = "accel.sim.tb.finn_tb"


def generate_verilog(mapping: FinnMapping) -> str:
    return to_verilog(FinnTop(mapping), TOP_NAME)


def stream_inputs(network: Network, inputs: np.ndarray) -> np.ndarray:
    """The integers the accelerator receives: the network input after its first quantizer."""
    if network.layers and isinstance(network.layers[0], Quant):
        return golden.apply_layer(network.layers[0], inputs, network.input_type)
    return np.asarray(inputs, dtype=np.int64)


def input_beats(mapping: FinnMapping, values: np.ndarray) -> list[int]:
    """Frames as stream beats: feature maps in NHWC order, ``in_elements`` per beat."""
    first = mapping.stages[0]
    if values.ndim == 4:
        values = values.transpose(0, 2, 3, 1)
    codes = first.input.encode(values.reshape(len(values), -1))
    lanes = first.in_elements
    return [_pack(frame[b * lanes:(b + 1) * lanes], first.input.bits)
            for frame in codes for b in range(len(frame) // lanes)]


def decode_outputs(mapping: FinnMapping, beats: list[int], frames: int) -> np.ndarray:
    last = mapping.stages[-1]
    bits = last.output.bits
    mask = (1 << bits) - 1
    codes = [(word >> (p * bits)) & mask for word in beats for p in range(last.pe)]
    return last.output.decode(np.array(codes, dtype=np.int64).reshape(frames, -1))


def _capacity(count: int) -> int:
    return 1 << max(1, (count - 1).bit_length())


def run_rtl(mapping: FinnMapping, network: Network, inputs: np.ndarray) -> dict:
    """Simulate ``inputs`` (float, as the network expects) through the RTL in Verilator and the
    cycle model; returns outputs, predictions, cycles, latency, events and the comparisons."""
    from accel.sim import runner
    from accel.sim.lint import check_lint

    frames = len(inputs)
    values = stream_inputs(network, inputs)
    beats = input_beats(mapping, values)
    last = mapping.stages[-1]
    beats_out = last.beats_out * frames
    # memory sizes rounded up to powers of two, so runs of similar length share one build
    harness = FinnHarness(mapping, _capacity(len(beats)), _capacity(beats_out))
    verilog = to_verilog(harness, HARNESS_NAME)
    check_lint(verilog, HARNESS_NAME)
    timing = simulate(mapping, frames)
    sim_build = runner.build(verilog, HARNESS_NAME)
    result = runner.run(sim_build, TESTBENCH, inputs={
        "beats": beats, "beats_out": beats_out, "frame_beats_out": last.beats_out,
        "max_cycles": 4 * timing.cycles + 1000})
    got = result.outputs
    if len(got["outputs"]) != beats_out:
        raise SimulationError(f"expected {beats_out} output beats, got {len(got['outputs'])}")
    outputs = decode_outputs(mapping, got["outputs"], frames)
    expected = golden.run(network, inputs).reshape(frames, -1)
    events = harness.counters.decode(got["event_counts"]) if "event_counts" in got else {}
    return {
        "outputs": outputs,
        "golden_outputs": expected,
        "bit_exact": bool(np.array_equal(outputs, expected)),
        "cycles": got["cycles"],
        "frame0_cycles": got["frame0_cycles"],
        "events": events,
        "model": timing,
        "simulation_seconds": result.seconds,
    }

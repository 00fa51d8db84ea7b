"""Generating and simulating a FINN mapping: Verilog of the top, and a Verilator run of the
harness on real inputs, compared with the golden model and the cycle model."""

from __future__ import annotations

import numpy as np

from accel.hw.architecture import RTLRun
from accel.hw.common.stream_harness import Stimulus, run_stream_harness
from accel.hw.finn.mapping import FinnMapping
from accel.hw.finn.mvtu import _pack
from accel.hw.finn.top import FinnTop
from accel.hw.verilog import to_verilog
from accel.nn import golden
from accel.nn.ir import Network, Quant

TOP_NAME = "finn_top"
HARNESS_NAME = "finn_harness"


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


def run_rtl(mapping: FinnMapping, network: Network, inputs: np.ndarray, harness,
            *, max_cycles: int, stimulus: Stimulus | None = None) -> RTLRun:
    """Simulate ``inputs`` (as the network takes them) through ``harness`` in Verilator, the
    source and sink driven by ``stimulus`` (default: full rate)."""
    frames = len(inputs)
    last = mapping.stages[-1]
    got = run_stream_harness(harness, HARNESS_NAME,
                             input_beats(mapping, stream_inputs(network, inputs)),
                             last.beats_out * frames, last.beats_out, max_cycles=max_cycles,
                             stimulus=stimulus)
    return RTLRun(decode_outputs(mapping, got["outputs"], frames), got["cycles"],
                  got["frame0_cycles"], got["events"], got["seconds"])

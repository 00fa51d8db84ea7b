"""Generating and simulating a FINN mapping: Verilog of the top, and a Verilator run of the
harness on real inputs, compared with the golden model and the cycle model."""

from __future__ import annotations

import numpy as np

from accel.hw.architecture import RTLRun
from accel.hw.common.stream_harness import Stimulus, run_stream_harness
from accel.hw.finn.loading import load_words
from accel.hw.finn.mapping import FinnMapping, host_layers, pack_codes
from accel.hw.finn.top import FinnTop
from accel.hw.verilog import to_verilog
from accel.nn import golden
from accel.nn.ir import Network

TOP_NAME = "finn_top"
HARNESS_NAME = "finn_harness"


def generate_verilog(mapping: FinnMapping) -> str:
    return to_verilog(FinnTop(mapping), TOP_NAME)


def stream_inputs(network: Network, inputs: np.ndarray) -> np.ndarray:
    """The integers the accelerator receives: the network input after the layers the host
    computes (its input quantizer and reshapes, ``host_layers``)."""
    values = np.asarray(inputs)
    values = values.astype(np.float32) if network.input_type.is_float else \
        values.astype(np.int64)
    dtype = network.input_type
    for layer in network.layers[:host_layers(network)]:
        values = golden.apply_layer(layer, values, dtype)
        dtype = golden.output_type(layer, dtype)
    return values.astype(np.int64)


def input_beats(mapping: FinnMapping, values: np.ndarray) -> list[int]:
    """Frames as stream beats: NCHW feature maps pixel by pixel (NHWC), anything else in
    memory order, ``in_elements`` per beat."""
    first = mapping.stages[0]
    if mapping.input_nchw:
        values = values.transpose(0, 2, 3, 1)
    codes = first.input.encode(values.reshape(len(values), -1))
    lanes = first.in_elements
    return [pack_codes(frame[b * lanes:(b + 1) * lanes], first.input.bits)
            for frame in codes for b in range(len(frame) // lanes)]


def decode_outputs(mapping: FinnMapping, beats: list[int], frames: int) -> np.ndarray:
    last = mapping.stages[-1]
    bits = last.output.bits
    mask = (1 << bits) - 1
    codes = [(word >> (p * bits)) & mask for word in beats for p in range(last.out_elements)]
    return last.output.decode(np.array(codes, dtype=np.int64).reshape(frames, -1))


def run_rtl(mapping: FinnMapping, network: Network, inputs: np.ndarray, harness,
            *, max_cycles: int, stimulus: Stimulus | None = None) -> RTLRun:
    """Simulate ``inputs`` (as the network takes them) through ``harness`` in Verilator, the
    source and sink driven by ``stimulus`` (default: full rate). A design with loadable
    weights first gets ``network``'s parameters through its parameter port (so it may have
    been built for another network of the same shape and types)."""
    frames = len(inputs)
    last = mapping.stages[-1]
    writes = load_words(mapping, network) if mapping.loadable_weights else []
    got = run_stream_harness(harness, HARNESS_NAME,
                             input_beats(mapping, stream_inputs(network, inputs)),
                             last.beats_out * frames, last.beats_out, max_cycles=max_cycles,
                             stimulus=stimulus, parameter_writes=writes)
    return RTLRun(decode_outputs(mapping, got["outputs"], frames), got["cycles"],
                  got["frame0_cycles"], got["events"], got["seconds"])

"""A YodaNN mapping in Verilator: the host's input quantizer, the stream beats in (one value
each, pixel by pixel) and out (the final tensor pixel by pixel), through the stream harness."""

from __future__ import annotations

import numpy as np

from accel.hw.architecture import RTLRun
from accel.hw.common.stream_harness import (StreamHarness, Stimulus, harness_capacity,
                                             run_stream_harness)
from accel.hw.yodann.loading import load_words
from accel.hw.yodann.mapping import YodaNNMapping
from accel.nn import golden
from accel.nn.ir import Network

TOP_NAME = "yodann_top"
HARNESS_NAME = "yodann_harness"


def engine_inputs(network: Network, inputs: np.ndarray) -> np.ndarray:
    """The integers the engine receives: the input quantizer applied by the host."""
    values = np.asarray(inputs).astype(np.float32)
    return golden.apply_layer(network.layers[0], values, network.input_type)


def input_beats(mapping: YodaNNMapping, values: np.ndarray) -> list[int]:
    channels, height, width = mapping.input_shape
    bits = mapping.config.activation_bits
    pixels = values.reshape(len(values), channels, height, width).transpose(0, 2, 3, 1)
    return [int(v) & ((1 << bits) - 1) for v in pixels.reshape(-1)]


def decode_outputs(mapping: YodaNNMapping, beats: list[int], frames: int) -> np.ndarray:
    """Output beats (two's complement) as the golden model's final tensor, flattened."""
    bits = mapping.out_bits
    words = np.array(beats, dtype=np.int64)
    values = np.where(words >= 1 << (bits - 1), words - (1 << bits), words)
    last = mapping.layers[-1]
    values = values.reshape(frames, last.out_height, last.out_width, last.out_channels)
    if mapping.output_hwc:
        values = values.transpose(0, 3, 1, 2)
    return values.reshape(frames, -1)


LOAD_PORT_BITS = 4096  # the harness loads its input memory this many bits at a time, at most


def load_chunk(mapping: YodaNNMapping) -> int:
    """Beats the harness loads at once: the largest divisor of a frame's input values whose
    beats fit ``LOAD_PORT_BITS`` (a whole 32 x 32 x 32 image would not fit one port)."""
    values, bits = mapping.layers[0].in_values, mapping.config.activation_bits
    fitting = max(LOAD_PORT_BITS // bits, 1)
    return max(d for d in range(1, min(values, fitting) + 1) if values % d == 0)


def harness(mapping: YodaNNMapping, top, frames: int) -> StreamHarness:
    first, last = mapping.layers[0], mapping.layers[-1]
    return StreamHarness(top, load_chunk(mapping), harness_capacity(first.in_values * frames),
                         harness_capacity(last.out_values * frames))


def run_rtl(mapping: YodaNNMapping, network: Network, inputs: np.ndarray, harness_top,
            *, max_cycles: int, stimulus: Stimulus | None = None) -> RTLRun:
    frames = len(inputs)
    per_frame = mapping.layers[-1].out_values
    # a loadable design first gets ``network``'s parameters (it may be built for another)
    writes = load_words(mapping, network) if mapping.loadable_weights else []
    got = run_stream_harness(harness_top, HARNESS_NAME,
                             input_beats(mapping, engine_inputs(network, inputs)),
                             per_frame * frames, per_frame, max_cycles=max_cycles,
                             stimulus=stimulus, parameter_writes=writes)
    return RTLRun(decode_outputs(mapping, got["outputs"], frames), got["cycles"],
                  got["frame0_cycles"], got["events"], got["seconds"])

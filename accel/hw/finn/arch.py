"""The FINN-style dataflow architecture's faces (``accel.hw.architecture``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.errors import ConfigError
from accel.hw.architecture import Architecture, RTLRun, Timing, check_positive, option
from accel.hw.common.counters import DEFAULT_COUNTER_WIDTH
from accel.hw.common.stream_harness import harness_capacity
from accel.hw.finn.loading import parameter_writes
from accel.hw.finn.mapping import (FinnMapping, LayerMapping, PoolMapping, ThresholdMapping,
                                   WindowMapping, auto_fold, map_network)
from accel.hw.finn.model import simulate
from accel.hw.finn.run import TOP_NAME, run_rtl
from accel.hw.finn.stages import event_declarations, event_specs
from accel.hw.finn.top import FinnHarness, FinnTop


@dataclass(frozen=True)
class FinnOptions:
    folding: str | dict | None = option(
        help="JSON/YAML file {layer: {pe: P, simd: S}} (default: fully folded)", metavar="FILE")
    target_fps: float | None = option(
        help="pick the cheapest folding that meets this frame rate at --clock-mhz",
        parse=float, metavar="FPS")
    pipeline: int | None = option(
        help="registers after each MVTU's issuing step: 0 none (one cycle from memory to "
             "output), 1 registers the memory reads (block RAM), 2 also the threshold compare, "
             "more cut the adder tree; each adds a cycle of latency, none of throughput "
             "(default: per MVTU, reads, compare and a register every two adder levels)",
        parse=int, metavar="N")
    loadable_weights: bool = option(
        False, help="weight and threshold memories writable through a parameter port "
                    "(param_addr/data/en), so a network of the same shape and types runs "
                    "without resynthesis; accumulators are sized for any weights of the type",
        parse=bool)


class FinnArchitecture(Architecture):
    name = "finn"
    title = "FINN-style binarized streaming dataflow (folded MVTUs, FIFOs, AXI-Stream)"
    Options = FinnOptions
    top_name = TOP_NAME
    # 2.5x the widest folding built anywhere (bnn-mlp "wide", 6464 lanes: 3.6 minutes to
    # elaborate); a lane is one PE x SIMD element of an MVTU
    size_budget = {"lanes": 1 << 14}
    model_budget = {"beats_per_frame": 1 << 24}  # the token model's arrays, per frame
    size_labels = {"lanes": "MVTU lanes (PE x SIMD)",
                   "beats_per_frame": "stream beats per frame (cycle model)"}

    def configure(self, network, options: FinnOptions, *, clock_mhz: float,
                  count_events: bool = True) -> FinnMapping:
        """A folding given by the user, or the cheapest that meets ``target_fps``; without
        ``count_events`` the top has no event counters (for FPGA builds)."""
        folding = options.folding
        if folding is not None and options.target_fps is not None:
            raise ConfigError("give either a folding or a target frame rate, not both")
        if options.target_fps is not None:
            check_positive("--target-fps", options.target_fps)
            folding = auto_fold(network, options.target_fps, clock_mhz)
        return map_network(network, folding, count_events=count_events,
                           pipeline=options.pipeline,
                           loadable_weights=options.loadable_weights)

    def rtl(self, mapping: FinnMapping) -> FinnTop:
        return FinnTop(mapping)

    def harness(self, mapping: FinnMapping, frames: int) -> FinnHarness:
        first, last = mapping.stages[0], mapping.stages[-1]
        return FinnHarness(mapping, harness_capacity(first.beats_in * frames),
                           harness_capacity(last.beats_out * frames))

    def run_rtl(self, mapping: FinnMapping, network, inputs: np.ndarray, *,
                max_cycles: int) -> RTLRun:
        return run_rtl(mapping, network, inputs, self.harness(mapping, len(inputs)),
                       max_cycles=max_cycles)

    def estimate(self, mapping: FinnMapping, network, inputs: np.ndarray) -> Timing:
        timing = simulate(mapping, len(inputs))
        return Timing(len(inputs), timing.cycles, timing.frame0_cycles, timing.events)

    def event_specs(self, mapping: FinnMapping) -> dict:
        return event_specs(mapping)

    resource_model = True

    def resources(self, mapping: FinnMapping) -> dict:
        from accel.hw.finn.resources import resources

        return resources(mapping)

    def size_estimate(self, mapping: FinnMapping) -> dict[str, int]:
        """Memories of every stage (weights, thresholds, input buffers, line and row buffers),
        FIFOs and counters; the widest beat, memory word and counter readout."""
        stages = mapping.stages
        storage, widths = 0, []
        for stage in stages:
            beat_in = stage.in_elements * stage.input.bits
            beat_out = stage.out_elements * stage.output.bits
            widths += [beat_in, beat_out]
            if isinstance(stage, LayerMapping):
                depth = max(stage.neuron_fold * stage.synapse_fold, 2)
                threshold_word = stage.steps * (stage.register_bits + 1)
                storage += stage.pe * depth * stage.simd * stage.weight.bits
                storage += stage.pe * max(stage.neuron_fold, 2) * threshold_word
                storage += max(stage.synapse_fold, 2) * beat_in  # the input buffer
                storage += stage.pe * stage.register_bits + beat_out  # accumulators, output
                widths += [stage.simd * stage.weight.bits, threshold_word]
            elif isinstance(stage, WindowMapping):
                storage += stage.rows * stage.width * stage.channels * stage.element.bits
                storage += beat_out
            elif isinstance(stage, PoolMapping):
                storage += max(stage.out_width * stage.channel_beats, 2) * beat_in + beat_out
            elif isinstance(stage, ThresholdMapping):
                word = stage.lanes * stage.steps * stage.threshold_bits
                storage += max(stage.channel_beats, 2) * word + beat_out
                widths.append(word)
        for depth, before, after in zip(mapping.fifo_depths, stages, stages[1:]):
            beat = after.in_elements * after.input.bits
            storage += depth * beat
            widths.append(max(before.out_elements, after.in_elements) * before.output.bits)
        events = event_declarations(mapping)
        counters = DEFAULT_COUNTER_WIDTH * len(events) if mapping.count_events else 0
        widths += [counters, sum(n.bit_length() for n in events.values())]
        storage += counters
        widest = max(widths)
        return {"storage_bits": storage, "widest_bits": widest, "harness_widest_bits": widest,
                "lanes": sum(layer.pe * layer.simd for layer in mapping.layers),
                "beats_per_frame": sum(stage.beats_in + stage.beats_out for stage in stages)}

    def macs(self, events_per_inference) -> float:
        # one lane of an MVTU (an XNOR-popcount or a multiply-add) per synapse
        return sum(count for name, count in events_per_inference.items() if ".pe." in name)

    def manifest(self, mapping: FinnMapping, top: FinnTop) -> dict:
        manifest = mapping.manifest()
        manifest["stream_encoding"] = (
            "element k of a beat in bits [k*bits, (k+1)*bits); bipolar elements are one bit "
            "(1 = +1); signed elements are two's complement")
        manifest["events"] = list(event_declarations(mapping)) if mapping.count_events else []
        if mapping.loadable_weights:
            # the writes that load this network, hex: a retrained network of the same shape
            # and types generated with the same options lists its own
            manifest["parameter_port"] = top.layout.manifest(parameter_writes(mapping))
        if mapping.count_events:
            manifest["event_counter_width"] = top.counters.width
        return manifest

    def summary(self, mapping: FinnMapping, timing: Timing) -> dict:
        return {"initiation_interval_cycles": mapping.initiation_interval,
                "model_latency_cycles": timing.latency_cycles,
                "folding": {layer.name: {"pe": layer.pe, "simd": layer.simd}
                            for layer in mapping.layers}}

    def summary_rows(self, result) -> list[tuple[str, str]]:
        return [("initiation interval (FINN's formula)",
                 f"{result['initiation_interval_cycles']} cycles")]

    def label(self, result) -> str:
        return f"II {result['initiation_interval_cycles']}"

    def example(self):
        inputs = np.random.default_rng(1).uniform(-2, 2, (12, 16))
        return example_network(), FinnOptions(folding={"fc0": {"pe": 2, "simd": 4},
                                                       "fc1": {"pe": 1, "simd": 2}}), inputs


def example_network(seed: int = 0):
    """Quant (4-bit) -> dense 16 -> 8 (bipolar weights) -> sign -> dense 8 -> 4 (bipolar)."""
    from accel.nn import DataType, Dense, MultiThreshold, Network, Quant

    rng = np.random.default_rng(seed)
    bipolar = DataType.bipolar_type()
    return Network("finn_example", (1, 16), [
        Quant("quant", bits=4, signed=True, scale=2.0**-2),
        Dense("fc0", weights=np.where(rng.random((8, 16)) < 0.5, -1, 1), weight_type=bipolar),
        MultiThreshold("act0", thresholds=rng.integers(-8, 9, (8, 1)), out_scale=2.0,
                       out_bias=-1.0),
        Dense("fc1", weights=np.where(rng.random((4, 8)) < 0.5, -1, 1), weight_type=bipolar),
    ])


ARCHITECTURE = FinnArchitecture()

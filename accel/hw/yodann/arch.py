"""The YodaNN-style binary-weight convolution engine's faces (``accel.hw.architecture``).

Engine size defaults are the reconstruction of the paper's configuration that fits all its
published figures (field notes, YodaNN section; unverified internals are parameters): 32 SoP
units of 7x7 taps, 32 input channels in the image memory and filter bank, 12-bit activations.
``--w-max`` (image columns per stripe) is accel's choice: 32 columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.energy.model import EventSpec
from accel.errors import ConfigError
from accel.hw.architecture import Architecture, RTLRun, Timing, option
from accel.hw.common.counters import DEFAULT_COUNTER_WIDTH
from accel.hw.yodann import run
from accel.hw.yodann.loading import parameter_writes
from accel.hw.yodann.mapping import (MAX_SCALE_BITS, EngineConfig, YodaNNMapping,
                                     filter_word_bits, filter_word_count, map_network, passes,
                                     threshold_rows)
from accel.hw.yodann.model import frame_timing
from accel.hw.yodann.rtl import (YodaNNTop, engine_widths, event_declarations,
                                 pipeline_register_bits, threshold_steps, window_kernel)


@dataclass(frozen=True)
class YodaNNOptions:
    n_out: int = option(32, help="sum-of-products units (output channels per pass)", parse=int,
                        metavar="N")
    n_in: int = option(32, help="input channels in the image memory and filter bank per pass",
                       parse=int, metavar="N")
    k_max: int = option(7, help="taps per SoP unit: k_max x k_max (smaller kernels silence the "
                        "rest)", parse=int, metavar="K")
    w_max: int = option(32, help="image columns per stripe (wider images run in stripes)",
                        parse=int, metavar="W")
    activation_bits: int = option(12, help="activation width (two's complement)", parse=int,
                                  metavar="BITS")
    sop_stage_levels: int = option(2, help="adder levels between the SoP trees' pipeline "
                                   "registers (0: none; FPGA timing wants 2)", parse=int,
                                   metavar="L")
    loadable_weights: bool = option(
        False, help="weight, bias, threshold and scale memories writable through a "
                    "parameter port (param_addr/data/en), so a network of the same shape runs "
                    "without resynthesis (its scales may differ; its accumulator no wider)",
        parse=bool)


class YodaNNArchitecture(Architecture):
    name = "yodann"
    title = "YodaNN-style binary-weight convolution engine (SoP units, image and filter banks)"
    Options = YodaNNOptions
    top_name = run.TOP_NAME
    # the paper's engine (32 x 32, 7x7) elaborates in 13 s and builds in about 95 s; the
    # SoP adder trees grow with n_out x k_max^2
    size_budget = {"sop_taps": 1 << 13}
    model_budget = {"passes": 1 << 16}
    size_labels = {"sop_taps": "SoP taps (n_out x k_max^2)",
                   "passes": "engine passes (cycle model)"}

    def configure(self, network, options: YodaNNOptions, *, clock_mhz: float,
                  count_events: bool = True) -> YodaNNMapping:
        """The engine of ``options``; the clock only states times (the schedule does not
        depend on it)."""
        if options.sop_stage_levels < 0:
            raise ConfigError(f"--sop-stage-levels must be 0 or more, not "
                              f"{options.sop_stage_levels}")
        config = EngineConfig(options.n_out, options.n_in, options.k_max, options.w_max,
                              options.activation_bits, options.sop_stage_levels)
        return map_network(network, config, count_events=count_events,
                           loadable_weights=options.loadable_weights)

    def rtl(self, mapping: YodaNNMapping) -> YodaNNTop:
        return YodaNNTop(mapping)

    def harness(self, mapping: YodaNNMapping, frames: int):
        return run.harness(mapping, YodaNNTop(mapping), frames)

    def run_rtl(self, mapping: YodaNNMapping, network, inputs: np.ndarray, *,
                max_cycles: int) -> RTLRun:
        return run.run_rtl(mapping, network, inputs, self.harness(mapping, len(inputs)),
                           max_cycles=max_cycles)

    def estimate(self, mapping: YodaNNMapping, network, inputs: np.ndarray) -> Timing:
        frame = frame_timing(mapping)
        frames = len(inputs)
        return Timing(frames, frame.cycles * frames, frame.cycles,
                      {name: count * frames for name, count in frame.events.items()},
                      {"compute_cycles": frame.compute_cycles * frames})

    def event_specs(self, mapping: YodaNNMapping) -> dict:
        return event_specs(mapping)

    resource_model = True

    def resources(self, mapping) -> dict:
        from accel.hw.yodann.resources import resources

        return resources(mapping)

    def size_estimate(self, mapping: YodaNNMapping) -> dict[str, int]:
        """Activation buffers, weight memory, filter bank, image memory and bank, partial
        sums, pool row, summers and holding registers, counters; the widest of the filter
        word, the partial-sum word and the counter readout."""
        config, w = mapping.config, engine_widths(mapping)
        taps, window = config.k_max ** 2, window_kernel(mapping)
        filter_word = filter_word_bits(config)
        storage = (2 * mapping.buffer_values * w["out"]
                   + filter_word_count(mapping) * filter_word + config.n_in * filter_word
                   + (window + 1) * config.w_max * config.n_in * w["activation"]
                   + config.n_in * window * (window - 1) * w["activation"]
                   + mapping.psum_words * config.n_out * w["acc"]
                   + config.w_max * config.n_out * w["out"]
                   + config.n_out * (w["sop"] + 2 * w["acc"])
                   + threshold_rows(mapping) * threshold_steps(mapping) * (w["acc"] + 1))
        events = event_declarations(mapping)
        counters = DEFAULT_COUNTER_WIDTH * len(events) if mapping.count_events else 0
        widest = max(filter_word, config.n_out * w["acc"], counters,
                     sum(n.bit_length() for n in events.values()))
        harness = max(widest, run.load_chunk(mapping) * w["activation"])
        return {"storage_bits": storage + counters, "widest_bits": widest,
                "harness_widest_bits": harness, "sop_taps": config.n_out * taps,
                "passes": len(passes(mapping))}

    def macs(self, events_per_inference) -> float:
        return events_per_inference.get("sop.mac", 0.0)

    def manifest(self, mapping: YodaNNMapping, top: YodaNNTop) -> dict:
        config = mapping.config
        return {
            "network": mapping.name,
            "engine": {"n_out": config.n_out, "n_in": config.n_in, "k_max": config.k_max,
                       "w_max": config.w_max, "activation_bits": config.activation_bits,
                       "sop_stage_levels": config.sop_stage_levels},
            "widths": engine_widths(mapping),
            "layers": [{"name": layer.name, "covers": layer.source_layers,
                        "in_channels": layer.in_channels, "out_channels": layer.out_channels,
                        "image": [layer.height, layer.width], "kernel": layer.kernel,
                        "padding": layer.padding, "relu": layer.relu, "pool": layer.pool,
                        "thresholds_per_channel": 0 if layer.thresholds is None
                        else int(layer.thresholds.shape[1]),
                        "requant": None if layer.requant is None else {
                            "multiplier": layer.requant.multiplier,
                            "shift": layer.requant.shift,
                            "rounding": layer.requant.rounding,
                            "range": [layer.requant.lo, layer.requant.hi]}}
                       for layer in mapping.layers],
            "passes": len(passes(mapping)),
            "activation_buffer_values": mapping.buffer_values,
            "stream_encoding": (
                "input: the host-quantized image, one activation per beat, pixel by pixel "
                "(channels inner), two's complement; output: the last layer's values, one per "
                "beat, pixel by pixel (channels inner), two's complement"),
            "events": list(event_declarations(mapping)) if mapping.count_events else [],
            **({"event_counter_width": top.counters.width} if mapping.count_events else {}),
            # the writes that load this network, hex (``accel.hw.yodann.loading``)
            **({"parameter_port": top.layout.manifest(parameter_writes(mapping))}
               if mapping.loadable_weights else {}),
        }

    def summary(self, mapping: YodaNNMapping, timing: Timing) -> dict:
        compute = timing.extra["compute_cycles"]
        config = mapping.config
        peak = config.n_out * config.k_max ** 2
        macs = timing.events.get("sop.mac", 0)
        return {"sop_utilization": macs / (peak * timing.cycles) if timing.cycles else 0.0,
                "compute_cycle_share": compute / timing.cycles if timing.cycles else 0.0,
                "binary_macs_per_cycle": macs / timing.cycles if timing.cycles else 0.0,
                "engine": {"n_out": config.n_out, "n_in": config.n_in, "k_max": config.k_max,
                           "w_max": config.w_max},
                "activations_on_chip_bytes": 2 * mapping.buffer_values * mapping.out_bits / 8}

    def summary_rows(self, result) -> list[tuple[str, str]]:
        return [("SoP utilization (binary MACs / peak)", f"{result['sop_utilization']:.3f}"),
                ("binary MACs per cycle", f"{result['binary_macs_per_cycle']:.1f}")]

    def label(self, result) -> str:
        engine = result["engine"]
        return f"{engine['n_out']}x{engine['n_in']} SoPs, {engine['k_max']}x{engine['k_max']}"

    def example(self):
        return example_network(), YodaNNOptions(n_out=2, n_in=2, k_max=3, w_max=4,
                                                activation_bits=8), \
            np.random.default_rng(3).uniform(-3, 3, (2, 3, 5, 5))


def event_specs(mapping: YodaNNMapping) -> dict[str, EventSpec]:
    """What each counted event is physically. The image memory, image bank and filter bank are
    latch arrays (SCM), as in YodaNN; the activation buffers, weight memory, bias memory and
    partial sums are SRAM; the stream beats are the host's I/O (not priced here); idle cycles
    are free."""
    config, w = mapping.config, engine_widths(mapping)
    taps = config.k_max ** 2
    filter_word = filter_word_bits(config)
    buffer = {"capacity_bytes": mapping.buffer_values * w["out"] / 8, "width": w["out"],
              "instances": 2}
    weights = {"capacity_bytes": max(filter_word_count(mapping), 1) * filter_word / 8,
               "width": filter_word}
    psums = {"capacity_bytes": max(mapping.psum_words, 1) * config.n_out * w["acc"] / 8,
             "width": config.n_out * w["acc"]}
    kw = window_kernel(mapping)
    image = {"words": config.w_max * config.n_in, "width": w["activation"],
             "instances": kw + 1}
    window = kw * (kw - 1) * w["activation"]
    specs = {
        "input.beat": EventSpec("free", "control"),
        "output.beat": EventSpec("free", "control"),
        "act_buffer.read": EventSpec("sram", "memory", buffer),
        "act_buffer.write": EventSpec("sram", "memory", buffer),
        "weight_mem.read": EventSpec("sram", "memory", weights),
        "filter_bank.write": EventSpec("scm", "memory", {"words": config.n_in,
                                                          "width": filter_word}),
        "filter_bank.read": EventSpec("scm", "memory", {"words": config.n_in,
                                                         "width": filter_word}),
        "image_mem.write": EventSpec("scm", "memory", image),
        "image_mem.read": EventSpec("scm", "memory", image),
        # one channel's window advances a column: its kw x (kw - 1) registers load (kw: the
        # network's largest kernel)
        "image_bank.shift": EventSpec("flops", "memory", {"bits": window}),
        "sop.mac": EventSpec("negate_add_lane", "compute", {
            "bits": w["activation"], "acc_bits": w["sop"], "simd": taps}),
        "channel_summer.accumulate": EventSpec("add", "compute", {"bits": w["acc"]}),
        "psum_mem.read": EventSpec("sram", "memory", psums),
        "psum_mem.write": EventSpec("sram", "memory", psums),
        # one channel's bias per drained value (every layer's biases, ``bias_words``)
        "bias_mem.read": EventSpec("sram", "memory", {
            "capacity_bytes": max(sum(layer.out_channels for layer in mapping.layers), 1)
            * w["acc"] / 8, "width": w["acc"]}),
        "output_stage.scale": EventSpec("mac", "compute", {"bits": MAX_SCALE_BITS,
                                                            "acc_bits": w["acc"]}),
        "pool.compare": EventSpec("compare", "compute", {"bits": w["out"]}),
        "engine.idle": EventSpec("free", "control"),
        # the taps, the SoP trees' registers, channel summers, holding registers and the
        # output stage's, every cycle
        "engine.pipeline.clock": EventSpec("clock", "compute", {
            "bits": pipeline_register_bits(mapping)}),
    }
    steps = threshold_steps(mapping)
    if steps:  # one word of a channel's thresholds per drained value, each compared with it
        word = steps * (w["acc"] + 1)
        specs["threshold_mem.read"] = EventSpec("register", "memory", {
            "capacity_bytes": threshold_rows(mapping) * word / 8, "width": word})
        specs["output_stage.compare"] = EventSpec("compare", "compute",
                                                  {"bits": w["acc"] + 1})
    return specs


def example_network(seed: int = 0):
    """Quant (6-bit) -> conv3x3 3 -> 3 (binary, bias, padding 1) -> ReLU -> Quant -> max-pool 2
    -> flatten -> dense 12 -> 4 (binary): every tiling path on ``example``'s 2 x 2 engine
    (input and output passes, stripes of 2 output columns, partial sums, pooling, dense as a
    2x2 convolution)."""
    from accel.nn import Conv2d, DataType, Dense, Flatten, MaxPool2d, Network, Quant, Relu

    rng = np.random.default_rng(seed)
    binary = DataType.bipolar_type(0.25)
    return Network("yodann_example", (1, 3, 5, 5), [
        Quant("quant", bits=6, signed=True, scale=2.0**-3),
        Conv2d("conv0", weights=np.where(rng.random((3, 3, 3, 3)) < 0.5, -1, 1),
               weight_type=binary, bias=rng.integers(-8, 9, 3), padding=1),
        Relu("relu0"),
        Quant("quant0", bits=6, signed=True, scale=2.0**-2),
        MaxPool2d("pool0", kernel=2),
        Flatten("flatten"),
        Dense("fc", weights=np.where(rng.random((4, 12)) < 0.5, -1, 1), weight_type=binary),
    ])


ARCHITECTURE = YodaNNArchitecture()

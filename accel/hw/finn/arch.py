"""The FINN architecture's faces for the CLI: configure, generate, simulate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from accel.errors import ConfigError
from accel.energy.model import estimate
from accel.hw.finn.energy import event_specs
from accel.hw.finn.mapping import FinnMapping, auto_fold, map_network
from accel.hw.finn.run import TOP_NAME, generate_verilog, run_rtl
from accel.hw.finn.top import event_declarations
from accel.hw.result import SimResult
from accel.io import write_atomic, write_json
from accel.nn.ir import Network

NAME = "finn"


def configure(network: Network, *, folding=None, target_fps=None, clock_mhz=200.0,
              count_events: bool = True, pes=None, queue_depth=None,
              sparse_word_bits=None) -> FinnMapping:
    """A folding given by the user, or the cheapest that meets ``target_fps``; without
    ``count_events`` the top has no event counters (for FPGA builds)."""
    if pes is not None or queue_depth is not None or sparse_word_bits is not None:
        raise ConfigError("--pes, --queue-depth and --sparse-word-bits are EIE options; FINN "
                          "takes --folding or --target-fps")
    if folding is not None and target_fps is not None:
        raise ConfigError("give either a folding or a target frame rate, not both")
    if target_fps is not None:
        folding = auto_fold(network, target_fps, clock_mhz)
    return map_network(network, folding, count_events=count_events)


def generate(mapping: FinnMapping, out_dir: Path) -> list[Path]:
    """``finn_top.v`` and ``finn_top.json`` (the manifest) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    first, last = mapping.stages[0], mapping.stages[-1]
    manifest = mapping.manifest()
    manifest["top"] = TOP_NAME
    manifest["ports"] = {
        "s_axis_tdata": first.in_elements * first.input.bits, "s_axis_tvalid": 1,
        "s_axis_tready": 1, "m_axis_tdata": last.out_elements * last.output.bits,
        "m_axis_tvalid": 1, "m_axis_tready": 1, "clk": 1, "rst": 1,
    }
    manifest["stream_encoding"] = (
        "element k of a beat in bits [k*bits, (k+1)*bits); bipolar elements are one bit "
        "(1 = +1); signed elements are two's complement")
    manifest["events"] = list(event_declarations(mapping)) if mapping.count_events else []
    if mapping.count_events:
        manifest["event_counter_width"] = 48
    return [write_atomic(out_dir / f"{TOP_NAME}.v", generate_verilog(mapping)),
            write_json(out_dir / f"{TOP_NAME}.json", manifest)]


def simulate(mapping: FinnMapping, network: Network, inputs: np.ndarray,
             labels: np.ndarray | None, *, model: str, clock_mhz: float,
             tech="45nm", on_chip_bytes: float | None = None) -> SimResult:
    run = run_rtl(mapping, network, inputs)
    predictions = np.argmax(run["outputs"], axis=1)
    frames = len(inputs)
    specs = event_specs(mapping)
    energy = estimate({k: v / frames for k, v in run["events"].items()}, specs, tech,
                      on_chip_bytes=on_chip_bytes)
    model_energy = estimate({k: v / frames for k, v in run["model"].events.items()}, specs, tech,
                            on_chip_bytes=on_chip_bytes)
    # one lane of an MVTU (an XNOR-popcount or a multiply-add) per synapse
    macs = sum(v for k, v in run["events"].items() if ".pe." in k) / frames
    return SimResult.build(
        arch=NAME, model=model, predictions=predictions, labels=labels,
        bit_exact=run["bit_exact"], rtl_cycles=run["cycles"],
        model_cycles=run["model"].cycles, latency_cycles=run["frame0_cycles"],
        clock_mhz=clock_mhz, events=run["events"], model_events=run["model"].events,
        extra={**energy.to_json(),
               "model_energy_uj_per_inference": model_energy.total_uj,
               "average_power_mw": energy.average_power_mw(run["cycles"] / frames, clock_mhz),
               "initiation_interval_cycles": mapping.initiation_interval,
               "macs_per_inference": macs,
               "pj_per_mac": energy.total_pj / macs if macs else None,
               "model_latency_cycles": run["model"].frame0_cycles,
               "folding": {layer.name: {"pe": layer.pe, "simd": layer.simd}
                           for layer in mapping.layers}})

"""The two evaluation paths, the same for every architecture, both returning a ``SimResult``:

``simulate``  the RTL in Verilator: outputs compared with the golden model (bit-exact), cycles
              and every event compared with the cycle model, energy from the RTL's counters;
``estimate``  the cycle model alone (no Verilator, no C++ compiler): cycles and events equal to
              what ``simulate`` would report (the conformance tests hold them equal), outputs
              from the golden model, ``bit_exact`` not checked.
"""

from __future__ import annotations

import numpy as np

from accel.energy.model import energy_fields
from accel.errors import ConfigError
from accel.hw.architecture import Architecture, RTLRun, Timing, check_clock, check_design_size
from accel.hw.resources import total
from accel.hw.result import SimResult
from accel.nn import golden


def _per_inference(events: dict[str, int], frames: int) -> dict[str, float]:
    return {name: count / frames for name, count in events.items()}


def _result(arch: Architecture, mapping, *, source: str, model: str, frames: int,
            predictions: np.ndarray, labels, bit_exact, cycles: int, latency_cycles: int,
            events: dict[str, int], timing: Timing, clock_mhz: float, tech,
            on_chip_bytes) -> SimResult:
    events_per = _per_inference(events, frames)
    model_per = _per_inference(timing.events, frames)
    cycles_per = cycles / frames
    result = SimResult(
        arch=arch.name, model=model, source=source, images=frames,
        accuracy=None if labels is None else float((predictions == labels).mean()),
        predictions=[int(p) for p in predictions], bit_exact=bit_exact,
        cycles_per_inference=cycles_per, model_cycles_per_inference=timing.cycles / frames,
        latency_cycles=int(latency_cycles), latency_us=latency_cycles / clock_mhz,
        throughput_fps=frames / (cycles / (clock_mhz * 1e6)), clock_mhz=clock_mhz,
        events=events_per, model_events=model_per,
        model_events_equal=None if source != "verilator" else events == timing.events,
        extra=energy_fields(events_per, model_per, arch.event_specs(mapping), tech,
                            on_chip_bytes=on_chip_bytes, cycles_per_inference=cycles_per,
                            clock_mhz=clock_mhz, macs_per_inference=arch.macs(events_per)))
    result.extra.update(arch.summary(mapping, timing))
    parts = arch.resources(mapping)
    if parts is not None:  # the resource model's ECP5 figures, per part and in total
        result.extra["resources_ecp5"] = {"total": total(parts).rounded(),
                                          "parts": {name: part.rounded()
                                                    for name, part in parts.items()}}
        result.extra["lut_ecp5"] = result.extra["resources_ecp5"]["total"]["lut"]
    result.extra["config_label"] = arch.label(result.to_json())
    return result


def _check(inputs: np.ndarray, labels, clock_mhz: float) -> None:
    check_clock(clock_mhz)
    if len(inputs) == 0:
        raise ConfigError("no inputs to evaluate")
    if labels is not None and len(labels) != len(inputs):
        raise ConfigError(f"{len(labels)} labels for {len(inputs)} inputs")


def golden_outputs(network, inputs: np.ndarray) -> np.ndarray:
    """The golden model's last tensor per input, flattened: what the hardware must output."""
    return np.asarray(golden.run(network, inputs)).reshape(len(inputs), -1)


def simulate(arch: Architecture, mapping, network, inputs: np.ndarray, labels=None, *,
             model: str, clock_mhz: float, tech="45nm",
             on_chip_bytes: float | None = None, allow_large: bool = False) -> SimResult:
    """``inputs`` through the RTL in Verilator (see the module documentation); a design over
    the size budget (``accel.hw.architecture.check_design_size``) is refused before anything
    is elaborated, unless ``allow_large``."""
    _check(inputs, labels, clock_mhz)
    if not getattr(mapping, "count_events", True):
        raise ConfigError("simulation compares event counts: configure with counters")
    check_design_size(arch, mapping, "simulate", allow_large=allow_large)
    from accel.sim import cache

    cache.check_settings()  # bad cache settings fail now, not after elaborating the design
    cache.builds_dir()
    timing = arch.estimate(mapping, network, inputs)
    # a hang shows up as a timeout at four times the predicted cycles, not as a stuck run
    run: RTLRun = arch.run_rtl(mapping, network, inputs, max_cycles=4 * timing.cycles + 1000)
    expected = golden_outputs(network, inputs)
    outputs = np.asarray(run.outputs).reshape(len(inputs), -1)
    return _result(arch, mapping, source="verilator", model=model, frames=len(inputs),
                   predictions=golden.classify(network, outputs), labels=labels,
                   bit_exact=bool(np.array_equal(outputs, expected)), cycles=run.cycles,
                   latency_cycles=run.latency_cycles, events=run.events, timing=timing,
                   clock_mhz=clock_mhz, tech=tech, on_chip_bytes=on_chip_bytes)


def estimate(arch: Architecture, mapping, network, inputs: np.ndarray, labels=None, *,
             model: str, clock_mhz: float, tech="45nm",
             on_chip_bytes: float | None = None, allow_large: bool = False) -> SimResult:
    """``inputs`` through the cycle model only (see the module documentation); RTL budgets do
    not apply, the cycle model's do (unless ``allow_large``)."""
    _check(inputs, labels, clock_mhz)
    check_design_size(arch, mapping, "estimate", allow_large=allow_large)
    timing = arch.estimate(mapping, network, inputs)
    outputs = golden_outputs(network, inputs)
    return _result(arch, mapping, source="cycle model", model=model, frames=len(inputs),
                   predictions=golden.classify(network, outputs), labels=labels, bit_exact=None,
                   cycles=timing.cycles, latency_cycles=timing.latency_cycles,
                   events=timing.events, timing=timing, clock_mhz=clock_mhz, tech=tech,
                   on_chip_bytes=on_chip_bytes)

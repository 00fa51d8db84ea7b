"""The simulation result every architecture produces: one shape, one JSON contract.

JSON keys (``SimResult.to_json``):
  arch, model, images          what ran
  accuracy                     fraction of correct predictions (null without labels)
  predictions                  one class per image (argmax of the hardware's outputs)
  bit_exact                    the RTL's outputs equal the golden model's for every image
  cycles_per_inference         RTL: cycles of the whole run divided by images (streaming
                               architectures overlap frames, so this is the throughput cost)
  model_cycles_per_inference   the same from the cycle model
  latency_cycles, latency_us   RTL: cycles from the first input beat to the last output beat of
                               the first image (an empty pipeline), and at ``clock_mhz``
  throughput_fps               images per second at ``clock_mhz`` over the whole run
  clock_mhz                    the clock the times are stated at
  events                       event name -> count per inference (RTL counters / images)
  model_events_equal           the cycle model counted the same events
  energy_uj_per_inference      events x per-event energies of ``tech`` (accel.energy), from the
                               RTL counters; model_energy_uj_per_inference from the cycle model
  energy_breakdown_uj          by group: compute, memory, queues, control, dram
  energy_by_component_uj       by physical instance (l0.weight_mem, fifo1, ...)
  energy_by_layer_uj           by stage (l0, swu0, fifo0, ...)
  average_power_mw             energy per inference / time per inference at clock_mhz
  energy_off_chip_memories     memories priced as DRAM traffic (``--on-chip-kib``)
  macs_per_inference, pj_per_mac   synaptic operations the datapath performed (FINN: MVTU
                               lanes, XNOR-popcount or multiply-add; EIE: multiply-accumulates
                               of nonzero weights by nonzero activations) and energy per one
  plus architecture-specific keys (FINN: initiation_interval_cycles, folding; EIE:
  load_balance_efficiency = ideal cycles with the work spread evenly over the PEs / the
  layers' actual cycles, writeback_cycles_per_inference, num_pes, queue_depth).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class SimResult:
    arch: str
    model: str
    images: int
    accuracy: float | None
    predictions: list[int]
    bit_exact: bool
    cycles_per_inference: float
    model_cycles_per_inference: float
    latency_cycles: int
    latency_us: float
    throughput_fps: float
    clock_mhz: float
    events: dict[str, float]
    model_events_equal: bool
    extra: dict = field(default_factory=dict)

    @staticmethod
    def build(*, arch: str, model: str, predictions: np.ndarray, labels: np.ndarray | None,
              bit_exact: bool, rtl_cycles: int, model_cycles: int, latency_cycles: int,
              clock_mhz: float, events: dict[str, int], model_events: dict[str, int],
              extra: dict | None = None) -> "SimResult":
        images = len(predictions)
        seconds = rtl_cycles / (clock_mhz * 1e6)
        return SimResult(
            arch=arch, model=model, images=images,
            accuracy=float((predictions == labels).mean()) if labels is not None else None,
            predictions=[int(p) for p in predictions], bit_exact=bool(bit_exact),
            cycles_per_inference=rtl_cycles / images,
            model_cycles_per_inference=model_cycles / images,
            latency_cycles=int(latency_cycles), latency_us=latency_cycles / clock_mhz,
            throughput_fps=images / seconds if seconds else float("inf"),
            clock_mhz=clock_mhz,
            events={name: count / images for name, count in events.items()},
            model_events_equal=events == model_events, extra=dict(extra or {}))

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(data.pop("extra"))
        return data

"""The result every evaluation produces, from Verilator (``simulate``) or from the cycle model
alone (``estimate``): one shape, one JSON contract.

JSON keys (``SimResult.to_json``):
  arch, model, images          what ran
  source                       "verilator" (the RTL ran; bit_exact and the model comparison
                               are checked) or "cycle model" (``accel estimate``: cycles and
                               events from the cycle model, which the tests hold equal to the
                               RTL's; outputs from the golden model; bit_exact is null)
  accuracy                     fraction of correct predictions (null without labels)
  predictions                  one class per image (argmax of the outputs)
  bit_exact                    the RTL's outputs equal the golden model's for every image
                               (null: not checked)
  cycles_per_inference         cycles of the whole run divided by images (streaming
                               architectures overlap frames, so this is the throughput cost)
  model_cycles_per_inference   the same from the cycle model
  latency_cycles, latency_us   cycles from the first input beat to the last output of the
                               first image (an empty pipeline), and at ``clock_mhz``
  throughput_fps               images per second at ``clock_mhz`` over the whole run
  clock_mhz                    the clock the times are stated at
  events                       event name -> count per inference (RTL counters / images, or the
                               cycle model's); model_events the cycle model's
  model_events_equal           the cycle model counted the same events (null: not checked)
  event_specs                  event name -> {kind, group, params}: what each event is
                               physically (memory capacity and width, operator and width), so a
                               stored result can be re-priced (``accel energy --tech``)
  tech, on_chip_bytes          the technology table and on-chip budget it was priced with
  pj_per_event                 the price of one of each event under ``tech``
  energy_uj_per_inference      events x pj_per_event; model_energy_uj_per_inference from the
                               cycle model's events
  energy_breakdown_uj          by group: compute, memory, queues, control, dram
  energy_by_component_uj       by physical instance (l0.weight_mem, fifo1, ...)
  energy_by_layer_uj           by stage (l0, swu0, fifo0, ...)
  average_power_mw             energy per inference / time per inference at clock_mhz
  energy_off_chip_memories     memories priced as DRAM traffic (``on_chip_bytes``)
  macs_per_inference, pj_per_mac   synaptic operations the datapath performed (FINN: MVTU
                               lanes, XNOR-popcount or multiply-add; EIE: multiply-accumulates
                               of nonzero weights by nonzero activations) and energy per one
  config_label                 the configuration in a few words (tables, charts)
  plus architecture-specific keys (FINN: initiation_interval_cycles, folding,
  model_latency_cycles; EIE: load_balance_efficiency = ideal cycles with the work spread
  evenly over the PEs / the layers' actual cycles, writeback_cycles_per_inference, num_pes,
  queue_depth, sparse_word_bits).
No value is NaN or infinite.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SOURCES = ("verilator", "cycle model")


@dataclass
class SimResult:
    arch: str
    model: str
    source: str
    images: int
    accuracy: float | None
    predictions: list[int]
    bit_exact: bool | None
    cycles_per_inference: float
    model_cycles_per_inference: float
    latency_cycles: int
    latency_us: float
    throughput_fps: float
    clock_mhz: float
    events: dict[str, float]
    model_events: dict[str, float]
    model_events_equal: bool | None
    extra: dict = field(default_factory=dict)

    @property
    def agrees(self) -> bool | None:
        """Bit-exact outputs, and RTL cycles, events and energy equal to the cycle model's
        (None for an estimate, where nothing was compared)."""
        if self.source != "verilator":
            return None
        return bool(self.bit_exact and self.model_events_equal
                    and self.cycles_per_inference == self.model_cycles_per_inference
                    and self.extra["energy_uj_per_inference"]
                    == self.extra["model_energy_uj_per_inference"])

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(data.pop("extra"))
        return data

"""Energy per inference = sum over events of (count per inference) x (energy per event).

An architecture declares, for each of its event names, what physical action it is, as plain
data (an ``EventSpec``); this module prices specs with a technology table and adds them up. It
holds no architecture-specific code: a new architecture adds a declaration of its events.

Spec kinds and their price (``accel.energy.tech`` documents each rule):
  sram       one access of ``width`` bits to a memory of ``capacity_bytes`` (a fixed cost per
             access plus a cost per bit)
  scm        one access of ``width`` bits to a latch-based standard-cell memory of ``words``
             words (the table's ``scm`` model)
  register   one access of ``width`` bits to a register file / FIFO of ``capacity_bytes``
  add        a ``bits``-bit integer addition          compare   a ``bits``-bit comparison
  mult       a ``bits``-bit integer multiplication     mac       mult(bits) + add(acc_bits)
  xnor_popcount_lane  one lane of an XNOR-popcount: xnor of 1 pair + its share of the popcount
             tree + the accumulator add shared by ``simd`` lanes (``acc_bits``)
  negate_add_lane     one lane of a multi-bit x bipolar product: conditional negate (an add of
             ``bits``) + the accumulator add shared by ``simd`` lanes
  lnzd       one leading-nonzero detection over ``inputs`` activations
  popcount   one population count over ``bits`` one-bit inputs
  flops      ``bits`` flip-flops loaded once (a shift register advancing, a register bank
             written): their clock energy, the table's per-cycle cost of a flip-flop
  dram       ``bits`` bits to or from DRAM
  free       counted for utilisation only (e.g. idle cycles): no dynamic energy of its own
  clock      not a counted event but a cost per cycle: ``bits`` flip-flops clocked every
             cycle, in each of ``instances`` copies (default 1), charged for every cycle of the
             run, busy or idle (``estimate(..., cycles=N)``); its breakdown instance is the
             name without its action, like a memory's (``pe.sparse_sram.clock`` counts with
             ``pe.sparse_sram``)
Each spec also names the breakdown ``group`` it belongs to: "compute", "memory", "queues",
"control" or "dram", and memories carry their instance name in the breakdown: the event name
without its action (``l0.weight_mem.read`` -> ``l0.weight_mem``), or the spec's ``instance``
parameter when events of several layers share one physical instance (EIE's PEs run every
layer: ``l1.pe.sparse_sram.read`` is an access to ``pe.sparse_sram``).

On-chip capacity: ``estimate(..., on_chip_bytes=B)`` keeps SRAMs on chip while they fit in B
bytes in total (an ``sram`` spec's memory is ``capacity_bytes`` x ``instances``, default 1;
read and write events of one instance count it once); the largest memories move off chip first,
and every access to a memory off chip is priced as DRAM traffic of its ``width`` bits (group
"dram"). Register files and FIFOs always stay on chip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from accel.energy.tech import Technology, load_technology
from accel.errors import ConfigError

GROUPS = ("compute", "memory", "queues", "control", "dram")
PER_CYCLE_KINDS = ("clock",)


@dataclass(frozen=True)
class EventSpec:
    kind: str
    group: str
    params: dict = field(default_factory=dict)

    def price(self, tech: Technology) -> float:
        p = self.params
        try:
            if self.kind == "sram":
                return tech.sram_read(p["capacity_bytes"], p["width"])
            if self.kind == "scm":
                return tech.scm_access(p["words"], p["width"])
            if self.kind == "clock":
                return tech.clock(p["bits"])
            if self.kind == "register":
                return tech.register(p["width"], p["capacity_bytes"])
            if self.kind == "add":
                return tech.add(p["bits"])
            if self.kind == "compare":
                return tech.compare(p["bits"])
            if self.kind == "mult":
                return tech.mult(p["bits"])
            if self.kind == "mac":
                return tech.mult(p["bits"]) + tech.add(p["acc_bits"])
            if self.kind == "xnor_popcount_lane":
                return tech.xnor(1) + tech.popcount(2) + tech.add(p["acc_bits"]) / p["simd"]
            if self.kind == "negate_add_lane":
                return tech.add(p["bits"]) + tech.add(p["acc_bits"]) / p["simd"]
            if self.kind == "lnzd":
                return tech.lnzd(p["inputs"])
            if self.kind == "popcount":
                return tech.popcount(p["bits"])
            if self.kind == "flops":
                return tech.clock(p["bits"])
            if self.kind == "dram":
                return tech.dram(p["bits"])
            if self.kind == "free":
                return 0.0
        except KeyError as missing:
            raise ConfigError(f"event spec {self.kind} lacks parameter {missing}") from None
        raise ConfigError(f"unknown event kind {self.kind!r}")


@dataclass
class EnergyReport:
    tech: str
    total_pj: float
    by_group_pj: dict[str, float]
    by_component_pj: dict[str, float]
    by_layer_pj: dict[str, float]
    pj_per_event: dict[str, float]
    off_chip: list[str] = field(default_factory=list)  # memories priced as DRAM traffic

    @property
    def total_uj(self) -> float:
        return self.total_pj * 1e-6

    def average_power_mw(self, cycles: float, clock_mhz: float) -> float:
        seconds = cycles / (clock_mhz * 1e6)
        return self.total_pj * 1e-12 / seconds * 1e3 if seconds else 0.0

    def to_json(self) -> dict:
        to_uj = lambda d: {k: v * 1e-6 for k, v in d.items()}  # noqa: E731
        return {"tech": self.tech, "energy_uj_per_inference": self.total_uj,
                "energy_breakdown_uj": to_uj(self.by_group_pj),
                "energy_by_component_uj": to_uj(self.by_component_pj),
                "energy_by_layer_uj": to_uj(self.by_layer_pj),
                "energy_off_chip_memories": list(self.off_chip)}


def component_of(event: str) -> str:
    """``l0.weight_mem.read`` -> ``l0.weight_mem``: the physical instance."""
    return event.rsplit(".", 1)[0]


def instance_of(event: str, spec: EventSpec) -> str:
    return spec.params.get("instance") or component_of(event)


def layer_of(event: str) -> str:
    return event.split(".", 1)[0]


def off_chip_memories(specs: dict[str, EventSpec], on_chip_bytes: float | None) -> list[str]:
    """The SRAM instances that do not fit in ``on_chip_bytes``, largest first."""
    if on_chip_bytes is None:
        return []
    if not math.isfinite(on_chip_bytes) or on_chip_bytes < 0:
        raise ConfigError(f"on-chip capacity must be a non-negative finite number, got "
                          f"{on_chip_bytes:g} bytes")
    sizes: dict[str, float] = {}
    for event, spec in specs.items():
        if spec.kind == "sram":
            try:
                size = spec.params["capacity_bytes"] * spec.params.get("instances", 1)
            except KeyError as missing:
                raise ConfigError(f"event {event} lacks parameter {missing}") from None
            instance = instance_of(event, spec)
            sizes[instance] = max(sizes.get(instance, 0.0), size)
    spilled, total = [], sum(sizes.values())
    for component in sorted(sizes, key=lambda c: (-sizes[c], c)):
        if total <= on_chip_bytes:
            break
        spilled.append(component)
        total -= sizes[component]
    return spilled


def estimate(events_per_inference: dict[str, float], specs: dict[str, EventSpec],
             tech: Technology | str = "45nm", *,
             on_chip_bytes: float | None = None,
             cycles: float | None = None) -> EnergyReport:
    """Price every counted event. Every event must have a spec (a missing one is an error, not
    a silent zero). ``on_chip_bytes`` (default: unlimited) moves memories that do not fit off
    chip (see the module documentation). ``cycles`` (per inference) prices the per-cycle specs
    (``clock``); specs of that kind need it."""
    if not isinstance(tech, Technology):
        tech = load_technology(tech)
    missing = sorted(set(events_per_inference) - set(specs))
    if missing:
        raise ConfigError(f"no energy declaration for events: {', '.join(missing)}")
    per_cycle = sorted(event for event, spec in specs.items() if spec.kind in PER_CYCLE_KINDS)
    if per_cycle:
        if cycles is None:
            raise ConfigError(f"events {', '.join(per_cycle)} are priced per cycle: the "
                              "estimate needs the cycle count")
        counted = sorted(set(per_cycle) & set(events_per_inference))
        if counted:
            raise ConfigError(f"events {', '.join(counted)} are declared per cycle "
                              "(kind 'clock') and must not be counted")
        events_per_inference = {**events_per_inference,
                                **{event: cycles * specs[event].params.get("instances", 1)
                                   for event in per_cycle}}
    off_chip = off_chip_memories(specs, on_chip_bytes)
    specs = {event: EventSpec("dram", "dram", {"bits": spec.params["width"],
                                               "instance": instance_of(event, spec)})
             if instance_of(event, spec) in off_chip and spec.kind == "sram" else spec
             for event, spec in specs.items()}
    by_group = dict.fromkeys(GROUPS, 0.0)
    by_component: dict[str, float] = {}
    by_layer: dict[str, float] = {}
    prices = {}
    for event, count in events_per_inference.items():
        spec = specs[event]
        if spec.group not in GROUPS:
            raise ConfigError(f"event {event}: unknown breakdown group {spec.group!r}")
        prices[event] = price = float(spec.price(tech))
        energy = count * price
        by_group[spec.group] += energy
        component = instance_of(event, spec)
        by_component[component] = by_component.get(component, 0.0) + energy
        layer = layer_of(event)
        by_layer[layer] = by_layer.get(layer, 0.0) + energy
    return EnergyReport(tech.name, sum(by_group.values()), by_group, by_component, by_layer,
                        prices, off_chip)


def specs_to_json(specs: dict[str, EventSpec]) -> dict:
    return {event: {"kind": spec.kind, "group": spec.group, "params": dict(spec.params)}
            for event, spec in specs.items()}


def specs_from_json(data) -> dict[str, EventSpec]:
    """Event specs as a result's JSON stores them (``specs_to_json``)."""
    if not isinstance(data, dict):
        raise ConfigError("event_specs must map event names to {kind, group, params}")
    specs = {}
    for event, spec in data.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str) \
                or not isinstance(spec.get("group"), str) \
                or not isinstance(spec.get("params", {}), dict):
            raise ConfigError(f"event spec of {event!r} is not {{kind, group, params}}")
        params = dict(spec.get("params", {}))
        for name, value in params.items():
            if name == "instance":
                if not isinstance(value, str):
                    raise ConfigError(f"event spec of {event!r}: 'instance' must be a string, "
                                      f"got {value!r}")
            elif not _is_number(value) or value < 0 or (name == "simd" and value == 0):
                raise ConfigError(f"event spec of {event!r}: parameter '{name}' must be a "
                                  f"{'positive' if name == 'simd' else 'non-negative'} number, "
                                  f"got {value!r}")
        specs[event] = EventSpec(spec["kind"], spec["group"], params)
    return specs


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _counts(result: dict, key: str) -> dict[str, float]:
    value = result[key]
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and _is_number(v) and v >= 0 for k, v in value.items()):
        raise ConfigError(f"result's '{key}' must map event names to non-negative numbers")
    return value


def energy_fields(events: dict[str, float], model_events: dict[str, float],
                  specs: dict[str, EventSpec], tech: Technology | str, *,
                  on_chip_bytes: float | None, cycles_per_inference: float, clock_mhz: float,
                  macs_per_inference: float) -> dict:
    """The energy keys of a result's JSON (``accel.hw.result``), from events per inference:
    the same function prices a fresh run and re-prices a stored one."""
    if not isinstance(tech, Technology):
        tech = load_technology(tech)
    report = estimate(events, specs, tech, on_chip_bytes=on_chip_bytes,
                      cycles=cycles_per_inference)
    model_report = report if model_events == events else \
        estimate(model_events, specs, tech, on_chip_bytes=on_chip_bytes,
                 cycles=cycles_per_inference)
    return {**report.to_json(),
            "on_chip_bytes": on_chip_bytes,
            "pj_per_event": dict(report.pj_per_event),
            "event_specs": specs_to_json(specs),
            "model_energy_uj_per_inference": model_report.total_uj,
            "average_power_mw": report.average_power_mw(cycles_per_inference, clock_mhz),
            "macs_per_inference": macs_per_inference,
            "pj_per_mac": report.total_pj / macs_per_inference if macs_per_inference else None}


def reprice(result: dict, tech: Technology | str, on_chip_bytes: float | None) -> dict:
    """A stored result (``accel simulate/estimate --json``) priced under another technology
    table or on-chip budget, from the events and event specs it carries: no simulation."""
    for key in ("events", "model_events", "event_specs", "cycles_per_inference", "clock_mhz",
                "macs_per_inference"):
        if key not in result:
            raise ConfigError(f"result lacks {key!r}: re-pricing needs a result written by "
                              "this version's `accel simulate/estimate --json`")
    for key in ("cycles_per_inference", "clock_mhz", "macs_per_inference"):
        if not _is_number(result[key]) or result[key] < 0 \
                or (key != "macs_per_inference" and result[key] == 0):
            raise ConfigError(f"result's '{key}' must be a "
                              f"{'non-negative' if key == 'macs_per_inference' else 'positive'} "
                              f"number, got {result[key]!r}")
    fields = energy_fields(_counts(result, "events"), _counts(result, "model_events"),
                           specs_from_json(result["event_specs"]), tech,
                           on_chip_bytes=on_chip_bytes,
                           cycles_per_inference=result["cycles_per_inference"],
                           clock_mhz=result["clock_mhz"],
                           macs_per_inference=result["macs_per_inference"])
    return {**result, **fields}

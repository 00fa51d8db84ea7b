"""The interface every architecture implements, and the plain-data shapes that cross it.

An architecture (``accel/hw/<arch>/arch.py``) is an ``Architecture`` instance in the registry
(``accel.hw.registry``). Its faces:

  Options            a dataclass of the architecture's own options; ``add_options`` turns it
                     into an argparse group (``accel simulate --arch X --help`` lists X's)
  configure          network + options -> Mapping (validated, every parameter fixed)
  rtl                the Amaranth top an FPGA flow takes (``top_name`` in Verilog)
  harness            the simulation top around it
  run_rtl            inputs through the harness in Verilator -> ``RTLRun``
  estimate           inputs through the cycle model -> ``Timing`` (no Verilator, no compiler)
  event_specs        what each counted event is physically, for the energy model
  macs               synaptic operations among the events
  manifest           the mapping as data next to the Verilog
  summary            architecture-specific JSON keys of a result; ``summary_rows`` the rows it
                     adds to the CLI's table; ``label`` a short description of a configuration
  example            a small network and options that run in seconds (the conformance test)
  size_estimate      the design's size from its mapping, before anything is elaborated:
                     ``check_design_size`` compares it with the budgets below

``accel.hw.evaluate`` composes them into the two evaluation paths, ``simulate`` and
``estimate``; nothing outside an architecture's folder branches on which one it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from accel.errors import ConfigError


def option(default=None, *, help: str, parse=str,  # noqa: A002 - argparse's word
           metavar: str | None = None):
    """A field of an architecture's options dataclass; its flag is ``--`` + the field name with
    dashes, ``parse`` turns the flag's text into the value (int, float, str; ``bool``: a flag
    that takes no value and sets True)."""
    return field(default=default, metadata={"help": help, "parse": parse, "metavar": metavar})


def option_flags(options_type: type) -> dict[str, str]:
    """Field name -> its command-line flag (``queue_depth`` -> ``--queue-depth``)."""
    return {item.name: f"--{item.name.replace('_', '-')}"
            for item in dataclasses.fields(options_type)}


def add_options(parser: argparse.ArgumentParser, options_type: type, title: str) -> None:
    """One argparse group with a flag per field of ``options_type``."""
    group = parser.add_argument_group(title)
    flags = option_flags(options_type)
    for item in dataclasses.fields(options_type):
        if item.metadata["parse"] is bool:  # unset stays None: the dataclass default holds
            group.add_argument(flags[item.name], dest=f"arch_{item.name}", action="store_true",
                               default=None, help=item.metadata["help"])
            continue
        default = "" if item.default is None else f" (default {item.default})"
        group.add_argument(flags[item.name], dest=f"arch_{item.name}",
                           type=item.metadata["parse"], metavar=item.metadata["metavar"],
                           help=item.metadata["help"] + default)


def options_from_args(options_type: type, args: argparse.Namespace):
    """The options dataclass from parsed arguments (unset flags keep their defaults)."""
    values = {item.name: getattr(args, f"arch_{item.name}")
              for item in dataclasses.fields(options_type)
              if getattr(args, f"arch_{item.name}", None) is not None}
    return options_type(**values)


def options_from_mapping(options_type: type, values: Mapping[str, Any] | None):
    """The options dataclass from a dict (a sweep point, a reference configuration); a flag's
    value (an option parsed as ``bool``) must be a bool (YAML's "yes" is, the string is not)."""
    values = dict(values or {})
    fields = {item.name: item for item in dataclasses.fields(options_type)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                          f"this architecture takes {', '.join(sorted(fields)) or 'none'}")
    for name, value in values.items():
        if fields[name].metadata["parse"] is bool and not isinstance(value, bool):
            raise ConfigError(f"{name} is true or false, got {value!r}")
    return options_type(**values)


def check_clock(clock_mhz: float) -> float:
    if not isinstance(clock_mhz, (int, float)) or isinstance(clock_mhz, bool) \
            or not math.isfinite(clock_mhz) or clock_mhz <= 0:
        raise ConfigError(f"the clock must be a positive number of MHz, got {clock_mhz!r}")
    return float(clock_mhz)


def check_positive(flag: str, value, *, integer: bool = False, maximum=None):
    """An option's value: a positive finite number (an ``int``, not a bool, if ``integer``),
    at most ``maximum``."""
    kinds = (int,) if integer else (int, float)
    if not isinstance(value, kinds) or isinstance(value, bool) or not math.isfinite(value) \
            or value <= 0:
        kind = "integer" if integer else "finite number"
        raise ConfigError(f"{flag} must be a positive {kind}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{flag} {value}: at most {maximum}")
    return value


# ------------------------------------------------------------------------ design-size budgets
#
# Elaborating a design (Amaranth), writing its Verilog and building it in Verilator take time and
# memory that grow with its size, so every architecture estimates the size from the mapping
# (``Architecture.size_estimate``, cheap) and ``check_design_size`` refuses what is over budget
# before anything is elaborated. Quantities (an architecture reports all that apply):
#   storage_bits          bits of every memory, register file and FIFO of the top (ROM and RAM)
#   widest_bits           the widest signal of the top (ports included)
#   harness_widest_bits   the widest signal of its simulation harness
# plus the architecture's own, with budgets in ``size_budget`` (RTL) and ``model_budget`` (the
# cycle model, which ``accel estimate`` runs alone): FINN's MVTU lanes, EIE's PEs and its cycle
# model's PE-columns per image. Budgets can be exceeded on request (``allow_large``, the CLI's
# ``--allow-large-design``); the hard limits cannot: Amaranth refuses signals wider than
# 65,536 bits (and only after elaborating everything before them).
DESIGN_BUDGET = {"storage_bits": 1 << 22}  # 4 Mibit: 512 KiB of ROM/RAM
HARD_LIMITS = {"widest_bits": 1 << 16, "harness_widest_bits": 1 << 16}
SIZE_LABELS = {"storage_bits": "storage bits", "widest_bits": "bits in the widest signal",
               "harness_widest_bits": "bits in the simulation harness's widest signal"}


def _over(size: Mapping[str, int], limits: Mapping[str, int]) -> list[str]:
    return [quantity for quantity, limit in limits.items() if size.get(quantity, 0) > limit]


def check_design_size(arch: "Architecture", mapping, purpose: str, *,
                      allow_large: bool = False) -> dict[str, int]:
    """Refuse, before anything is elaborated, a design whose ``arch.size_estimate(mapping)``
    is over budget for ``purpose``: "generate" (the top's RTL), "simulate" (the top, its
    harness and the cycle model) or "estimate" (the cycle model only). Returns the estimate."""
    if purpose not in ("generate", "simulate", "estimate"):
        raise ValueError(f"unknown purpose {purpose!r}")
    size = arch.size_estimate(mapping)
    labels = {**SIZE_LABELS, **arch.size_labels}
    rtl = purpose in ("generate", "simulate")
    hard = {k: v for k, v in HARD_LIMITS.items()
            if rtl and (purpose == "simulate" or not k.startswith("harness_"))}
    budgets = {**(DESIGN_BUDGET if rtl else {}), **(arch.size_budget if rtl else {}),
               **(arch.model_budget if purpose in ("simulate", "estimate") else {})}
    name = getattr(mapping, "name", None) or getattr(mapping, "network", None) or "the network"
    task = "the cycle model" if purpose == "estimate" else "elaboration"

    def describe(quantity, limit, kind):
        return (f"{size[quantity]:,} {labels.get(quantity, quantity.replace('_', ' '))} "
                f"({kind} {limit:,})")

    impossible = _over(size, hard)
    if impossible:
        raise ConfigError(f"{arch.name} design of {name} cannot be elaborated: "
                          + "; ".join(describe(q, hard[q], "Amaranth's limit is")
                                      for q in impossible)
                          + " (no override: change the folding or the network)")
    over = [] if allow_large else _over(size, budgets)
    if over:
        raise ConfigError(f"{arch.name} design of {name} too large for {task}: "
                          + "; ".join(describe(q, budgets[q], "budget") for q in over)
                          + "; --allow-large-design (allow_large=True) goes ahead anyway")
    return size


@dataclass
class Timing:
    """What the cycle model predicts for a run of ``frames`` inputs: the whole run's cycles,
    the first input's latency (an empty pipeline), every event count of the run, and
    architecture-specific figures (``summary`` reads them)."""

    frames: int
    cycles: int
    latency_cycles: int
    events: dict[str, int]
    extra: dict = field(default_factory=dict)


@dataclass
class RTLRun:
    """What a Verilator run of the harness reported: the outputs (frames x outputs, the
    golden model's last tensor flattened), cycles, latency and event counts."""

    outputs: np.ndarray
    cycles: int
    latency_cycles: int
    events: dict[str, int]
    seconds: float = 0.0


class Architecture(ABC):
    """One hardware architecture's faces (see the module documentation)."""

    name: str
    title: str  # one line for --help
    Options: type  # a dataclass of ``option`` fields
    top_name: str
    # budgets of this architecture's own size_estimate quantities (see check_design_size)
    size_budget: dict[str, int] = {}  # RTL
    model_budget: dict[str, int] = {}  # the cycle model
    size_labels: dict[str, str] = {}  # how messages name them

    @abstractmethod
    def configure(self, network, options, *, clock_mhz: float,
                  count_events: bool = True):
        """Validate that ``network`` fits and fix every parameter; returns the Mapping."""

    @abstractmethod
    def rtl(self, mapping):
        """The Amaranth top an FPGA flow takes."""

    @abstractmethod
    def harness(self, mapping, frames: int):
        """The simulation top for a run of ``frames`` inputs."""

    @abstractmethod
    def run_rtl(self, mapping, network, inputs: np.ndarray, *, max_cycles: int) -> RTLRun:
        """``inputs`` (as the network takes them) through the harness in Verilator; a run
        longer than ``max_cycles`` is a ``SimulationError``."""

    @abstractmethod
    def estimate(self, mapping, network, inputs: np.ndarray) -> Timing:
        """Cycles and every event of ``run_rtl`` on the same inputs, from the cycle model."""

    @abstractmethod
    def event_specs(self, mapping) -> dict:
        """Event name -> ``accel.energy.model.EventSpec``, for every counted event."""

    @abstractmethod
    def macs(self, events_per_inference: Mapping[str, float]) -> float:
        """Synaptic operations (multiply-accumulates or XNOR-popcount lanes) per inference."""

    @abstractmethod
    def manifest(self, mapping, top) -> dict:
        """The mapping as data, written next to the Verilog of ``top`` (``rtl(mapping)``)."""

    def summary(self, mapping, timing: Timing) -> dict:
        """Architecture-specific keys of a result's JSON."""
        return {}

    def summary_rows(self, result: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Rows this architecture adds to the CLI's summary table (from a result's JSON)."""
        return []

    def label(self, result: Mapping[str, Any]) -> str:
        """A configuration in a few words, for tables and charts (from a result's JSON)."""
        return ""

    resource_model = False  # whether ``resources`` gives figures

    def resources(self, mapping) -> dict | None:
        """The resource model (``accel.hw.resources``): ECP5 resources per part of the design
        without its event counters, ``{part: Resources}``; None where the architecture has no
        model yet."""
        return None

    def block_ram_groups(self, mapping) -> list[str]:
        """Memories an FPGA flow should place together, a group per processing element that
        has block RAMs of its own: each group a prefix of its memories' names. ``accel synth``
        fixes each group's block RAMs to adjacent sites, the groups spread over the die
        (``accel.hw.synth.place_block_ram_groups``). None by default."""
        return []

    @abstractmethod
    def size_estimate(self, mapping) -> dict[str, int]:
        """The design's size, from the mapping alone (nothing elaborated): ``storage_bits``,
        ``widest_bits``, ``harness_widest_bits`` and the architecture's own quantities (see
        ``check_design_size``). An estimate may err high, never low."""

    @abstractmethod
    def example(self):
        """(network, options, inputs): a small network, a configuration and inputs that
        simulate in seconds (the conformance test runs them)."""

    def generate(self, mapping, out_dir: Path, *, allow_large: bool = False) -> list[Path]:
        """The top's Verilog and the manifest, ``<top_name>.v`` and ``.json``, as the directory
        ``out_dir``, written whole or not at all (``accel.io.write_directory``): a new
        directory, an empty one or one an earlier ``generate`` wrote (replaced); one holding
        other files is refused before anything is elaborated, as is a design over budget."""
        from accel.hw import verilog
        from accel.io import check_output_directory, to_json_text, write_directory

        check_output_directory(out_dir, owned=generated_file)
        check_design_size(self, mapping, "generate", allow_large=allow_large)
        top = self.rtl(mapping)
        text = verilog.to_verilog(top, self.top_name)
        manifest = {"arch": self.name, "top": self.top_name, **self.manifest(mapping, top),
                    "ports": port_widths(top)}
        return write_directory(out_dir, [(f"{self.top_name}.v", text),
                                         (f"{self.top_name}.json", to_json_text(manifest))],
                               owned=generated_file)


def generated_file(name: str) -> bool:
    """Whether ``name`` is a file ``Architecture.generate`` writes (of any registered
    architecture): what an output directory may hold to be replaced."""
    from accel.hw.registry import ARCHITECTURES

    return any(name in (f"{arch.top_name}.v", f"{arch.top_name}.json")
               for arch in ARCHITECTURES.values())


def port_widths(component) -> dict[str, int]:
    """Verilog port name -> width, from a component's signature (nested members flattened as
    Amaranth names the ports: ``parent__child``), plus the clock and reset."""
    from amaranth import Shape

    widths = {"__".join(str(part) for part in path): Shape.cast(member.shape).width
              for path, member, _ in component.signature.flatten(component)}
    widths.update(clk=1, rst=1)
    return widths

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
    dashes, ``parse`` turns the flag's text into the value (int, float, str)."""
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
    """The options dataclass from a dict (a sweep point, a reference configuration)."""
    values = dict(values or {})
    names = {item.name for item in dataclasses.fields(options_type)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                          f"this architecture takes {', '.join(sorted(names)) or 'none'}")
    return options_type(**values)


def check_clock(clock_mhz: float) -> float:
    if not isinstance(clock_mhz, (int, float)) or not math.isfinite(clock_mhz) \
            or clock_mhz <= 0:
        raise ConfigError(f"the clock must be a positive number of MHz, got {clock_mhz!r}")
    return float(clock_mhz)


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

    @abstractmethod
    def example(self):
        """(network, options, inputs): a small network, a configuration and inputs that
        simulate in seconds (the conformance test runs them)."""

    def generate(self, mapping, out_dir: Path) -> list[Path]:
        """The top's Verilog and the manifest, ``<top_name>.v`` and ``.json``, in ``out_dir``."""
        from accel.hw.verilog import to_verilog
        from accel.io import write_atomic, write_json

        out_dir.mkdir(parents=True, exist_ok=True)
        top = self.rtl(mapping)
        verilog = to_verilog(top, self.top_name)
        manifest = {"arch": self.name, "top": self.top_name, **self.manifest(mapping, top),
                    "ports": port_widths(top)}
        return [write_atomic(out_dir / f"{self.top_name}.v", verilog),
                write_json(out_dir / f"{self.top_name}.json", manifest)]


def port_widths(component) -> dict[str, int]:
    """Verilog port name -> width, from a component's signature (nested members flattened as
    Amaranth names the ports: ``parent__child``), plus the clock and reset."""
    from amaranth import Shape

    widths = {"__".join(str(part) for part in path): Shape.cast(member.shape).width
              for path, member, _ in component.signature.flatten(component)}
    widths.update(clk=1, rst=1)
    return widths

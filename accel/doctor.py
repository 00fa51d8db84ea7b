"""``accel doctor``: report the toolchain's versions, then prove the whole chain on a small
design: generate the stream FIFO harness in Amaranth, lint it, build it with Verilator and
simulate it with cocotb under random backpressure, checked against its cycle model."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable

from accel.errors import AccelError, ToolchainError

DOCTOR_RUN = dict(items=2000, valid_threshold=160, ready_threshold=120,
                  source_seed=0x1234_5678, sink_seed=0x0BAD_CAFE)


def versions() -> dict[str, str | None]:
    from accel import __version__
    from accel.toolchain import (cxx_version, find_verilator, package_version,
                                 yosys_version)

    try:
        verilator = find_verilator()
        verilator_text = f"{verilator.version} ({verilator.source}: {verilator.executable})"
    except ToolchainError:
        verilator_text = None
    return {
        "accel": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "amaranth": package_version("amaranth"),
        "yosys (amaranth)": yosys_version(),
        "verilator": verilator_text,
        "cocotb": package_version("cocotb"),
        "numpy": package_version("numpy"),
        "torch": package_version("torch") or "not installed (needed only for training)",
        "c++ compiler": cxx_version(),
    }


def chain_steps() -> list[tuple[str, Callable[[dict], str]]]:
    """(description, step) pairs; each step takes and fills a shared state dict and returns a
    short result text, or raises AccelError saying what is wrong and how to fix it."""

    def find_tools(state):
        from accel.toolchain import cxx_version, find_verilator, yosys_version

        verilator = find_verilator()
        if yosys_version() is None:
            raise ToolchainError("Amaranth cannot find yosys to emit Verilog; install it with: "
                                 "pip install 'amaranth[builtin-yosys]'")
        if cxx_version() is None:
            raise ToolchainError("no C++ compiler found (Verilator needs g++ or clang++); "
                                 "install g++ and make with your system's package manager")
        return f"verilator {verilator.version} ({verilator.source})"

    def generate(state):
        from accel.hw.common.harness import FIFOHarness
        from accel.hw.verilog import to_verilog

        state["harness"] = FIFOHarness(width=16, depth=4)
        state["verilog"] = to_verilog(state["harness"], "fifo_harness")
        return f"{len(state['verilog'].splitlines())} lines of Verilog"

    def lint(state):
        from accel.sim.lint import check_lint

        check_lint(state["verilog"], "fifo_harness")
        return "verilator --lint-only -Wall: clean"

    def build(state):
        from accel.sim.runner import build

        state["build"] = sim_build = build(state["verilog"], "fifo_harness")
        how = "compiled" if sim_build.compiled else "cached"
        return f"{how} in {sim_build.seconds:.2f} s ({sim_build.directory})"

    def simulate(state):
        from accel.hw.common.harness import fifo_harness_model
        from accel.sim.runner import run

        result = run(state["build"], "accel.sim.tb.fifo_harness_tb", inputs={"runs": [DOCTOR_RUN]})
        got = result.outputs["runs"][0]
        expected = fifo_harness_model(depth=4, width=16, **DOCTOR_RUN)
        events = state["harness"].counters.decode(got["event_counts"])
        if got["errors"] or got["received"] != DOCTOR_RUN["items"]:
            raise AccelError(f"the FIFO lost or reordered items in simulation ({got}); "
                             "the Verilator/cocotb installation is broken")
        if got["cycles"] != expected["cycles"] or events != expected["events"]:
            raise AccelError("simulated cycles or events differ from the cycle model "
                             f"(rtl {got['cycles']}, {events}; model {expected['cycles']}, "
                             f"{expected['events']})")
        return (f"{got['received']} items through the FIFO under random backpressure in "
                f"{got['cycles']} cycles, equal to the cycle model ({result.seconds:.2f} s)")

    return [
        ("find the toolchain", find_tools),
        ("generate a stream FIFO in Amaranth", generate),
        ("lint the Verilog", lint),
        ("build it with Verilator", build),
        ("simulate it with cocotb", simulate),
    ]


def doctor(console) -> None:
    """Print versions and check the chain; raise the first step's AccelError on failure."""
    from rich.table import Table

    table = Table(title="accel toolchain", show_header=True)
    table.add_column("component")
    table.add_column("version")
    for name, version in versions().items():
        table.add_row(name, version or "[red]missing[/red]")
    console.print(table)
    state: dict = {}
    for description, step in chain_steps():
        try:
            detail = step(state)
        except AccelError as exc:
            console.print(f"[red]FAIL[/red] {description}")
            raise type(exc)(f"doctor: cannot {description}: {exc}") from None
        console.print(f"[green]ok[/green]   {description}: {detail}")
    console.print("[green]The toolchain works.[/green]")

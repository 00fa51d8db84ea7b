"""Runs ``FIFOHarness`` (see ``accel.hw.common.harness``) once per entry of ``inputs["runs"]``.

Per run the testbench only sets the input ports and waits for ``done`` (or a cycle limit); the
clock runs inside the simulator (generated in HDL, or cocotb's GPI clock: ``tbio.start_clock``).
"""

import time

import cocotb
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

from accel.sim import tbio

PORTS = ("items", "valid_threshold", "ready_threshold", "source_seed", "sink_seed")


@cocotb.test()
async def stream_runs(dut):
    cfg = tbio.inputs()
    tbio.start_clock(dut.clk)
    dut.run.value = 0
    await tbio.reset(dut)
    results = []
    for run in cfg["runs"]:
        dut.run.value = 0
        for port in PORTS:
            getattr(dut, port).value = run[port]
        await ClockCycles(dut.clk, 2)  # load seeds, clear counters
        dut.run.value = 1
        started = time.perf_counter()
        max_cycles = run.get("max_cycles", 10**7)
        if not int(dut.done.value):  # zero items are done at once
            limit = Timer(max_cycles * tbio.CLOCK_PERIOD_NS, unit="ns")
            if await First(RisingEdge(dut.done), limit) is limit:
                raise AssertionError(f"harness not done after {max_cycles} cycles")
        await ClockCycles(dut.clk, 1)  # let the last cycle's counts settle into the registers
        result = {name: int(getattr(dut, name).value) for name in ("received", "errors", "cycles")}
        result["wall_seconds"] = time.perf_counter() - started
        if hasattr(dut, "event_counts"):
            result["event_counts"] = int(dut.event_counts.value)
        results.append(result)
    tbio.write_outputs({"runs": results})

"""Runs the EIE engine (``accel.hw.eie.rtl.EIEHarness``) on each vector: loads the
activations, runs until ``done`` with no Python per cycle, reads back the last layer's
accumulators of every PE and the counters."""

import cocotb
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

from accel.sim import tbio


@cocotb.test()
async def run_layer(dut):
    cfg = tbio.inputs()
    tbio.start_clock(dut.clk)
    dut.run.value = 0
    dut.load_en.value = 0
    await tbio.reset(dut)
    results = []
    for activations in cfg["vectors"]:
        dut.run.value = 0
        for column, value in enumerate(activations):
            dut.load_bank.value = column % cfg["num_pes"]
            dut.load_row.value = column // cfg["num_pes"]
            dut.load_data.value = value & ((1 << cfg["activation_bits"]) - 1)
            dut.load_en.value = 1
            await RisingEdge(dut.clk)
        dut.load_en.value = 0
        await RisingEdge(dut.clk)
        dut.run.value = 1
        limit = Timer(cfg["max_cycles"] * tbio.CLOCK_PERIOD_NS, unit="ns")
        await RisingEdge(dut.clk)
        if not int(dut.done.value):
            if await First(RisingEdge(dut.done), limit) is limit:
                raise AssertionError(f"layer not done after {cfg['max_cycles']} cycles")
        accumulators = []
        for pe in range(cfg["num_pes"]):
            for row in range(cfg["local_rows"]):
                dut.read_pe.value = pe
                dut.read_row.value = row
                await Timer(1, unit="ns")
                accumulators.append(dut.read_data.value.to_signed())
        results.append({"accumulators": accumulators, "cycles": int(dut.cycles.value),
                        "event_counts": int(dut.event_counts.value)})
        await ClockCycles(dut.clk, 1)
    tbio.write_outputs({"results": results})

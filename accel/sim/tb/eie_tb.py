"""Runs the EIE engine (``accel.hw.eie.rtl.EIEVectorLoader``) on each vector: one write of the
whole vector, the hardware loads it column by column, then runs until ``done`` with no Python
per cycle; reads back the last layer's accumulators of every PE and the counters. A loadable
engine's parameters are written first, a batch at a time (``tbio.load_parameter_batches``)."""

import cocotb
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

from accel.sim import tbio


@cocotb.test()
async def run_vectors(dut):
    cfg = tbio.inputs()
    bits = cfg["activation_bits"]
    mask = (1 << bits) - 1
    tbio.start_clock(dut.clk)
    dut.run.value = 0
    dut.start.value = 0
    if hasattr(dut, "param_batch_start"):
        dut.param_batch_start.value = 0
    await tbio.reset(dut)
    await tbio.load_parameter_batches(dut, cfg.get("parameter_batches", []))
    results = []
    for activations in cfg["vectors"]:
        dut.run.value = 0
        dut.vector.value = sum((int(value) & mask) << (bits * j)
                               for j, value in enumerate(activations))
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        await ClockCycles(dut.clk, len(activations) + 1)
        dut.run.value = 1
        limit = Timer(cfg["max_cycles"] * tbio.CLOCK_PERIOD_NS, unit="ns")
        await RisingEdge(dut.clk)
        if not int(dut.done.value):
            if await First(RisingEdge(dut.done), limit) is limit:
                raise AssertionError(f"not done after {cfg['max_cycles']} cycles")
        accumulators = []
        for pe in range(cfg["num_pes"]):
            for row in range(cfg["local_rows"]):
                dut.read_pe.value = pe
                dut.read_row.value = row
                await RisingEdge(dut.clk)  # the row address is registered
                await Timer(1, unit="ns")
                accumulators.append(dut.read_data.value.to_signed())
        results.append({"accumulators": accumulators, "cycles": int(dut.cycles.value),
                        "event_counts": int(dut.event_counts.value)})
        await ClockCycles(dut.clk, 1)
    tbio.write_outputs({"results": results})

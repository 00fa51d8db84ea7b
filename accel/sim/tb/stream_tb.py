"""Runs a stream harness (``accel.hw.common.stream_harness.StreamHarness``): loads every
frame's input beats through the load port, streams them in one run with no Python per cycle,
then reads back the output beats, the cycle counts and the event counters."""

import cocotb
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

from accel.sim import tbio


@cocotb.test()
async def run_frames(dut):
    cfg = tbio.inputs()
    tbio.start_clock(dut.clk)
    dut.run.value = 0
    dut.load_en.value = 0
    await tbio.reset(dut)
    for address, word in enumerate(cfg["beats"]):
        dut.load_addr.value = address
        dut.load_data.value = word
        dut.load_en.value = 1
        await RisingEdge(dut.clk)
    dut.load_en.value = 0
    dut.beats_in.value = len(cfg["beats"])
    dut.beats_out.value = cfg["beats_out"]
    dut.frame_beats_out.value = cfg["frame_beats_out"]
    await RisingEdge(dut.clk)
    dut.run.value = 1
    limit = Timer(cfg["max_cycles"] * tbio.CLOCK_PERIOD_NS, unit="ns")
    if await First(RisingEdge(dut.done), limit) is limit:
        raise AssertionError(f"not done after {cfg['max_cycles']} cycles "
                             f"({int(dut.cycles.value)} counted)")
    await ClockCycles(dut.clk, 1)
    outputs = []
    for address in range(cfg["beats_out"]):
        dut.read_addr.value = address
        await Timer(1, unit="ns")
        outputs.append(int(dut.read_data.value))
    result = {"outputs": outputs, "cycles": int(dut.cycles.value),
              "frame0_cycles": int(dut.frame0_cycles.value)}
    if hasattr(dut, "event_counts"):
        result["event_counts"] = int(dut.event_counts.value)
    tbio.write_outputs(result)

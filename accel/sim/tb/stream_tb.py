"""Runs a stream harness (``accel.hw.common.stream_harness.StreamHarness``): one write per
batch of parameter writes, if any, and one per frame (the harness's loaders write them in
hardware, a word or a beat per cycle), one run with no Python per cycle, then reads back the
output beats, the cycle counts and the event counters."""

import cocotb
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer

from accel.sim import tbio


@cocotb.test()
async def run_frames(dut):
    cfg = tbio.inputs()
    tbio.start_clock(dut.clk)
    dut.run.value = 0
    dut.frame_start.value = 0
    if hasattr(dut, "param_batch_start"):
        dut.param_batch_start.value = 0
    await tbio.reset(dut)
    await tbio.load_parameter_batches(dut, cfg["parameter_batches"])
    for frame in cfg["frames"]:
        dut.frame_data.value = frame
        dut.frame_start.value = 1
        await RisingEdge(dut.clk)
        dut.frame_start.value = 0
        await ClockCycles(dut.clk, cfg["frame_beats"])
    for port in ("beats_in", "beats_out", "frame_beats_out", "valid_threshold",
                 "ready_threshold", "source_seed", "sink_seed"):
        getattr(dut, port).value = cfg[port]
    await RisingEdge(dut.clk)  # run low for a cycle: the generators load their seeds
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

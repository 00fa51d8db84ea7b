"""Files that carry data into and out of a cocotb testbench.

The runner writes the inputs as JSON and names the file in ``ACCEL_TB_INPUTS``; the testbench
writes its outputs to the file named in ``ACCEL_TB_OUTPUTS``. Both sides import this module, so
the convention lives in one place.
"""

from __future__ import annotations

import json
import os
from typing import Any

INPUT_ENV = "ACCEL_TB_INPUTS"
OUTPUT_ENV = "ACCEL_TB_OUTPUTS"
HDL_CLOCK_ENV = "ACCEL_TB_HDL_CLOCK"  # names the clock the build drives in HDL, if any
CLOCK_PERIOD_NS = 10


def to_json(value: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot pass {type(value).__name__} to a testbench")


def inputs() -> dict[str, Any]:
    path = os.environ.get(INPUT_ENV)
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


def write_outputs(outputs: dict[str, Any]) -> None:
    path = os.environ[OUTPUT_ENV]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(outputs, f, default=to_json)
    os.replace(tmp, path)


def start_clock(clock) -> None:
    """Start a cocotb clock on ``clock`` unless the build already drives it in HDL.

    Either way the period is ``CLOCK_PERIOD_NS``, so a testbench's timeouts are the same.
    """
    if os.environ.get(HDL_CLOCK_ENV):
        return
    import cocotb
    from cocotb.clock import Clock

    cocotb.start_soon(Clock(clock, CLOCK_PERIOD_NS, unit="ns").start())


async def reset(dut, cycles: int = 2) -> None:
    """Pulse ``dut.rst`` for ``cycles`` clock cycles (Amaranth's synchronous reset)."""
    from cocotb.triggers import ClockCycles

    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0


async def load_parameter_batches(dut, batches) -> None:
    """Write a top's parameters through its harness's batch loader
    (``accel.hw.common.parameters.ParameterBatchLoader``): one batch (size, bits) at a time,
    waiting while the loader writes it, one word per cycle."""
    from cocotb.triggers import ClockCycles, RisingEdge

    for size, batch in batches:
        dut.param_batch.value = batch
        dut.param_batch_size.value = size
        dut.param_batch_start.value = 1
        await RisingEdge(dut.clk)
        dut.param_batch_start.value = 0
        await ClockCycles(dut.clk, size)

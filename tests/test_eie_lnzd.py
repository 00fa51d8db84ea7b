"""EIE's pipelined leading-nonzero detector (accel.hw.eie.lnzd) as a block, in the Amaranth
simulator: the nonzero columns in order, the first from cycle ``latency``, then one in every
cycle the consumer takes one (what the cycle model assumes), under back-pressure."""

import time

import numpy as np
import pytest
from amaranth.sim import Simulator

from accel.errors import ConfigError
from accel.hw.eie import lnzd
from accel.hw.eie.lnzd import LeadingNonzeroDetector


def run_detector(flags, ready_pattern, fanin, stage_levels, cycles):
    """Per cycle: (valid, column, value, last, done) with ``o.ready`` = ready_pattern[c]; the
    looked-up value is column + 100."""
    width = len(flags)
    dut = LeadingNonzeroDetector(width, 12, fanin, stage_levels)
    trace = []

    async def bench(ctx):
        ctx.set(dut.flags, sum(int(f) << j for j, f in enumerate(flags)))
        for c in range(cycles):
            ctx.set(dut.o.ready, int(ready_pattern[c]))
            ctx.set(dut.lookup_value, ctx.get(dut.lookup_column) + 100)
            trace.append((ctx.get(dut.o.valid), ctx.get(dut.o.payload.column),
                          ctx.get(dut.o.payload.value), ctx.get(dut.o.payload.last),
                          ctx.get(dut.done)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return dut.latency, trace


CASES = [(width, fanin, levels) for width, fanin, levels in
         [(1, 4, 1), (3, 2, 1), (16, 4, 1), (37, 4, 1), (37, 4, 2), (64, 2, 3), (50, 8, 1),
          (20, 16, 1)]]


@pytest.mark.parametrize("width,fanin,stage_levels", CASES)
def test_detector_streams_nonzero_columns_in_order_without_bubbles(width, fanin, stage_levels):
    rng = np.random.default_rng(width * 31 + fanin + stage_levels)
    for density, stall in ((0.5, 0.0), (0.3, 0.5), (0.9, 0.3), (0.0, 0.0), (1.0, 0.0)):
        flags = rng.random(width) < density
        expected = list(np.flatnonzero(flags))
        cycles = 3 * width + 40
        ready = rng.random(cycles) >= stall
        latency, trace = run_detector(flags, ready, fanin, stage_levels, cycles)
        assert latency == lnzd.tree_stages(width, fanin, stage_levels) + 1
        got, last_taken = [], None
        for c, (valid, column, value, last, done) in enumerate(trace):
            remaining = len(got) < len(expected)
            # the model's assumption: item t is offered from cycle latency + t, or the cycle
            # after item t-1 was taken, whichever is later
            due = latency if not got else max(latency + len(got), last_taken + 1)
            assert valid == (remaining and c >= due), (flags, c)
            if valid and ready[c]:
                assert value == column + 100
                assert last == (len(got) == len(expected) - 1)
                got.append(column)
                last_taken = c
            finished = len(got) == len(expected) and (
                c > last_taken if expected else c >= latency)
            assert done == finished, (c, got)
        assert got == expected


def test_wide_detector_elaborates_quickly():
    from accel.hw.verilog import to_verilog

    began = time.perf_counter()
    verilog = to_verilog(LeadingNonzeroDetector(1024, 16), "lnzd")
    assert time.perf_counter() - began < 60
    assert "lnzd_out_valid" in verilog
    assert lnzd.latency(1024) == 5 + 1 and lnzd.latency(1024, 4, 2) == 3 + 1


def test_bad_parameters():
    with pytest.raises(ConfigError, match="fan-in 3"):
        LeadingNonzeroDetector(16, 8, fanin=3)
    with pytest.raises(ConfigError, match="levels per stage 0"):
        LeadingNonzeroDetector(16, 8, stage_levels=0)

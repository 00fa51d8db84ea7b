"""The stream FIFO and the event counter bank in Verilator, under random valid/ready
backpressure: no item lost or duplicated, counts equal the transfers, and cycles and events
equal to the cycle model."""

import numpy as np
import pytest

from accel.hw.common.harness import ALWAYS, FIFOHarness, fifo_harness_model
from accel.hw.verilog import to_verilog
from accel.sim import runner
from accel.sim.lint import check_lint

TB = "accel.sim.tb.fifo_harness_tb"


def random_runs(seed, count):
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(count):
        runs.append(dict(
            items=int(rng.integers(0, 600)),
            # include the extremes: a source that always offers, a sink that never stalls
            valid_threshold=int(rng.choice([1, 20, 128, 255, ALWAYS])),
            ready_threshold=int(rng.choice([1, 20, 128, 255, ALWAYS])),
            source_seed=int(rng.integers(1, 2**32)),
            sink_seed=int(rng.integers(1, 2**32)),
        ))
    return runs


@pytest.mark.parametrize("width,depth,registered_head", [
    (8, 1, False), (16, 2, False), (16, 3, True),
    pytest.param(16, 3, False, marks=pytest.mark.slow),
    pytest.param(12, 8, False, marks=pytest.mark.slow),
    pytest.param(12, 8, True, marks=pytest.mark.slow)])
def test_fifo_random_backpressure_matches_model(width, depth, registered_head):
    """A registered head changes no cycle: the same model holds with and without it."""
    harness = FIFOHarness(width=width, depth=depth, registered_head=registered_head)
    verilog = to_verilog(harness, "fifo_harness")
    check_lint(verilog, "fifo_harness")
    runs = random_runs(seed=depth * 100 + width, count=25)
    sim = runner.run(runner.build(verilog, "fifo_harness"), TB, inputs={"runs": runs})
    assert len(sim.outputs["runs"]) == len(runs)
    for run, got in zip(runs, sim.outputs["runs"]):
        expected = fifo_harness_model(depth=depth, width=width, **run)
        events = harness.counters.decode(got["event_counts"])
        assert got["errors"] == 0, run
        assert got["received"] == run["items"], run
        assert events["fifo.push"] == events["fifo.pop"] == run["items"], run
        assert got["cycles"] == expected["cycles"], run
        assert events == expected["events"], run


def test_fifo_throughput_is_one_item_per_cycle_without_backpressure():
    items = 500
    model = fifo_harness_model(depth=2, width=16, items=items, valid_threshold=ALWAYS,
                               ready_threshold=ALWAYS, source_seed=1, sink_seed=2)
    # one cycle for the source to raise valid, one for the first item to land in the FIFO,
    # then one item per cycle
    assert model["cycles"] == items + 2
    assert model["events"]["source.stall"] == 0


def test_harness_without_counters_has_no_count_port():
    harness = FIFOHarness(width=8, depth=2, count_events=False)
    verilog = to_verilog(harness, "fifo_harness_fpga")
    check_lint(verilog, "fifo_harness_fpga")
    assert "event_counts" not in verilog
    assert "count_fifo__push" not in verilog

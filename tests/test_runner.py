"""The Verilator runner: content-hash cache, concurrent builds, waveforms, lint gate, errors."""

import json
import subprocess
import sys
import textwrap

import pytest

from accel.errors import ConfigError, LintError, SimulationError, ToolchainError
from accel.hw.common.fifo import StreamFIFO
from accel.hw.common.harness import FIFOHarness
from accel.hw.verilog import to_verilog
from accel.sim import runner
from accel.sim.lint import check_lint, lint_findings
from accel.toolchain import fst_supported

SMALL_RUN = dict(items=50, valid_threshold=200, ready_threshold=100, source_seed=5, sink_seed=6)


def fifo_verilog(depth=2):
    return to_verilog(StreamFIFO(8, depth), "stream_fifo")


def test_second_build_is_cached_and_a_change_rebuilds(fresh_cache):
    first = runner.build(fifo_verilog(), "stream_fifo")
    again = runner.build(fifo_verilog(), "stream_fifo")
    assert first.compiled and not again.compiled
    assert again.directory == first.directory
    assert again.seconds < 1.0
    assert (first.directory / first.toplevel).is_file()
    assert str(first.directory).startswith(str(fresh_cache))
    other = runner.build(fifo_verilog(depth=3), "stream_fifo")
    assert other.compiled and other.key != first.key
    # nothing half-made is left behind
    assert not [p for p in (fresh_cache / "builds").iterdir() if p.name.startswith(".tmp-")]


def test_concurrent_builds_of_one_design_compile_once(fresh_cache, tmp_path):
    source = tmp_path / "fifo.v"
    source.write_text(fifo_verilog(depth=4))
    script = textwrap.dedent(f"""
        import json, pathlib
        from accel.sim import runner
        b = runner.build(pathlib.Path({str(source)!r}).read_text(), "stream_fifo")
        print(json.dumps({{"compiled": b.compiled, "dir": str(b.directory)}}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(r["compiled"] for r in results) == [False, True]
    assert results[0]["dir"] == results[1]["dir"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["fst", "vcd"])
def test_waveforms_on_request(fmt):
    if fmt == "fst" and not fst_supported():
        with pytest.raises(ToolchainError, match="liblz4-dev"):
            runner.build("module m; endmodule\n", "m", waves="fst")
        pytest.skip("no lz4 headers here: FST cannot be compiled (the error is checked above)")
    verilog = to_verilog(FIFOHarness(width=8, depth=2), "fifo_harness")
    sim_build = runner.build(verilog, "fifo_harness", waves=fmt)
    sim = runner.run(sim_build, "accel.sim.tb.fifo_harness_tb", inputs={"runs": [SMALL_RUN]},
                     waves=True)
    assert sim.waves_file.name == f"dump.{fmt}"
    assert sim.waves_file.is_file() and sim.waves_file.stat().st_size > 100
    head = sim.waves_file.read_bytes()[:1]
    # FST starts with a binary header block (type 0); VCD is text ("$date"/"$version").
    assert head == (b"\x00" if fmt == "fst" else b"$")


def test_waves_need_a_waves_build():
    verilog = to_verilog(FIFOHarness(width=8, depth=2), "fifo_harness")
    with pytest.raises(ConfigError, match="waves=True"):
        runner.run(runner.build(verilog, "fifo_harness"), "accel.sim.tb.fifo_harness_tb",
                   inputs={"runs": []}, waves=True)


def test_failing_testbench_raises_simulation_error():
    verilog = to_verilog(FIFOHarness(width=8, depth=2), "fifo_harness")
    sim_build = runner.build(verilog, "fifo_harness")
    too_short = dict(SMALL_RUN, items=400, valid_threshold=1, max_cycles=50)
    with pytest.raises(SimulationError, match="not done after 50 cycles"):
        runner.run(sim_build, "accel.sim.tb.fifo_harness_tb", inputs={"runs": [too_short]})


def test_bad_verilog_fails_build_with_one_line(fresh_cache):
    with pytest.raises(SimulationError, match="build of broken failed") as info:
        runner.build("module broken(input a); assign b = ; endmodule\n", "broken",
                     hdl_clock=None, public="all")
    assert "\n" not in str(info.value)
    assert list((fresh_cache / "builds").glob("*.failed.log"))


def test_lint_gate_passes_generated_and_rejects_real_problems():
    check_lint(fifo_verilog(), "stream_fifo")
    undriven = "module top(output [3:0] y, input a); wire [3:0] w; assign y = w; endmodule\n"
    assert any("UNDRIVEN" in line for line in lint_findings(undriven, "top"))
    with pytest.raises(LintError, match="lint of top"):
        check_lint(undriven, "top")


def test_clean_lint_verdicts_are_cached_and_failures_are_not(fresh_cache):
    check_lint(fifo_verilog(), "stream_fifo")
    markers = list((fresh_cache / "lint").glob("*.clean"))
    assert len(markers) == 1
    undriven = "module top(output [3:0] y, input a); wire [3:0] w; assign y = w; endmodule\n"
    for _ in range(2):
        with pytest.raises(LintError):
            check_lint(undriven, "top")
    assert list((fresh_cache / "lint").glob("*.clean")) == markers

"""Simulation overhead of the cocotb flow against a plain Verilator C++ harness.

For the stream FIFO harness under a long stream (one item per cycle, no backpressure) it prints:
the first (uncached) build time, the cached build time, and cycles per second of
  - cocotb with its GPI clock and one wait for `done` (how accel's testbenches run),
  - cocotb with the clock generated in Verilog (`always #5`, a --timing build),
  - a C++ main() that toggles the clock itself (verilator --cc --exe --build).
Usage: python benchmarks/sim_overhead.py [--items N]
"""

import argparse
import os
import subprocess
import tempfile
import textwrap
from pathlib import Path

from accel.hw.common.harness import ALWAYS, FIFOHarness, fifo_harness_model
from accel.hw.verilog import to_verilog
from accel.sim import runner
from accel.sim.lint import waiver_args
from accel.toolchain import child_env, find_verilator

TB = "accel.sim.tb.fifo_harness_tb"
TOP = "fifo_harness"

CPP_MAIN = textwrap.dedent("""
    #include <chrono>
    #include <cstdio>
    #include <cstdlib>
    #include "Vfifo_harness.h"
    #include "verilated.h"
    int main(int argc, char** argv) {
        unsigned items = std::strtoul(argv[1], nullptr, 10);
        VerilatedContext ctx;
        Vfifo_harness top{&ctx};
        auto tick = [&] { top.clk = 0; top.eval(); top.clk = 1; top.eval(); };
        top.items = items; top.valid_threshold = 256; top.ready_threshold = 256;
        top.source_seed = 1; top.sink_seed = 2; top.run = 0; top.rst = 1;
        tick(); tick(); top.rst = 0; tick(); tick();
        top.run = 1;
        auto start = std::chrono::steady_clock::now();
        unsigned long cycles = 0;
        while (!top.done) { tick(); ++cycles; }
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("%lu %u %.6f\\n", cycles, top.errors, seconds);
        return top.errors != 0;
    }
""")


def cpp_harness(verilog: str, items: int, workdir: Path) -> tuple[int, float]:
    (workdir / f"{TOP}.v").write_text(verilog)
    (workdir / "main.cpp").write_text(CPP_MAIN)
    cmd = [str(find_verilator().executable), "--cc", "--exe", "--build", "-j", "2",
           *waiver_args(), "--top-module", TOP, f"{TOP}.v", "main.cpp", "-o", "sim"]
    subprocess.run(cmd, cwd=workdir, env=child_env(), check=True, capture_output=True)
    out = subprocess.run([str(workdir / "obj_dir" / "sim"), str(items)], check=True,
                         capture_output=True, text=True).stdout.split()
    cycles, errors, seconds = int(out[0]), int(out[1]), float(out[2])
    assert errors == 0
    return cycles, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3_000_000)
    args = parser.parse_args()
    harness = FIFOHarness(width=16, depth=4)
    verilog = to_verilog(harness, TOP)
    run = dict(items=args.items, valid_threshold=ALWAYS, ready_threshold=ALWAYS,
               source_seed=1, sink_seed=2, max_cycles=4 * args.items)
    expected_cycles = fifo_harness_model(depth=4, width=16, **{k: v for k, v in run.items()
                                                               if k != "max_cycles"})["cycles"] \
        if args.items <= 200_000 else args.items + 2

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ACCEL_CACHE"] = str(Path(tmp) / "cache")  # a cold cache for the first build
        first = runner.build(verilog, TOP)  # the default: clock generated in HDL
        cached = runner.build(verilog, TOP)
        hdl = runner.run(cached, TB, inputs={"runs": [run]}).outputs["runs"][0]
        gpi_build = runner.build(verilog, TOP, hdl_clock=None)
        gpi = runner.run(gpi_build, TB, inputs={"runs": [run]}).outputs["runs"][0]
        cpp_dir = Path(tmp) / "cpp"
        cpp_dir.mkdir()
        cpp_cycles, cpp_seconds = cpp_harness(verilog, args.items, cpp_dir)

    for name, result in (("cocotb GPI clock", gpi), ("cocotb HDL clock", hdl)):
        assert result["errors"] == 0 and result["cycles"] == expected_cycles, (name, result)
    assert cpp_cycles == expected_cycles
    cpp_rate = cpp_cycles / cpp_seconds
    print(f"design: FIFO harness (16-bit, depth 4), {args.items} items, {expected_cycles} cycles")
    print(f"first build (cold cache):   {first.seconds:8.2f} s")
    print(f"cached build:               {cached.seconds:8.4f} s   (goal < 1 s)")
    print(f"{'run':28s} {'cycles/s':>12s} {'vs C++':>8s}")
    for name, cycles, seconds in (("cocotb, GPI clock", gpi["cycles"], gpi["wall_seconds"]),
                                  ("cocotb, HDL clock", hdl["cycles"], hdl["wall_seconds"]),
                                  ("C++ harness", cpp_cycles, cpp_seconds)):
        rate = cycles / seconds
        print(f"{name:28s} {rate:12,.0f} {rate / cpp_rate:8.2f}x")


if __name__ == "__main__":
    main()

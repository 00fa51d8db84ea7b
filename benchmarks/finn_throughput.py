"""FINN dataflow: measured RTL cycles per frame against FINN's formula, and simulation speed.

For each folding of each model it runs the digits test images through the RTL in Verilator and
prints: the slowest layer's (MH/PE)*(MW/SIMD)*(vectors) (FINN's formula, the expected initiation
interval), the measured steady-state cycles per frame ((cycles of N frames - cycles of the
first) / (N - 1)), the cycle model's, the first frame's latency, and frames simulated per
wall-clock second of the Verilator run (cocotb start-up, loading the frames through the load
port and reading the outputs back included; the build is not).
Usage: python benchmarks/finn_throughput.py [--images N]
"""

import argparse

from accel.hw.finn.mapping import map_network
from accel.hw.finn.run import run_rtl
from accel.hw.reference import FINN_FOLDINGS, finn_folding
from accel.nn import load
from accel.nn.data import digits_split
from accel.nn.evaluate import network_inputs

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=359)
    args = parser.parse_args()
    print(f"{'model':10s} {'folding':13s} {'formula II':>10s} {'RTL II':>8s} {'model II':>8s} "
          f"{'ratio':>6s} {'latency':>8s} {'frames/s (sim)':>15s}")
    for model, foldings in FINN_FOLDINGS.items():
        network = load(model)
        inputs = network_inputs(network, digits_split().x_test[:args.images])
        for name, spec in foldings.items():
            mapping = map_network(network, finn_folding(network, spec))
            result = run_rtl(mapping, network, inputs)
            wall = result["simulation_seconds"]  # the cocotb/Verilator run, build cached
            frames = len(inputs)
            rtl_ii = (result["cycles"] - result["frame0_cycles"]) / (frames - 1)
            timing = result["model"]
            model_ii = (timing.cycles - timing.frame0_cycles) / (frames - 1)
            assert result["bit_exact"] and result["events"] == timing.events
            print(f"{model:10s} {name:13s} {mapping.initiation_interval:10d} {rtl_ii:8.1f} "
                  f"{model_ii:8.1f} {rtl_ii / mapping.initiation_interval:6.3f} "
                  f"{result['frame0_cycles']:8d} {frames / wall:15,.0f}")


if __name__ == "__main__":
    main()

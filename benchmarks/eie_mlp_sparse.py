"""mlp-sparse on the EIE engine at 1, 4, 16 (and 64) PEs and queue depths 1 and 8, all 359 test
images: cycles per inference, load-balance efficiency, writeback share, energy per inference.
Cycle-model figures (equal to the RTL's by tests/test_eie_rtl.py); with --rtl, each
configuration also runs in Verilator and the two are printed side by side.
Usage: python benchmarks/eie_mlp_sparse.py [--rtl]
"""

import sys

from accel.hw import evaluate
from accel.hw.reference import configure
from accel.nn import load
from accel.nn.data import digits_split
from accel.nn.evaluate import network_inputs


def main(rtl: bool):
    network = load("mlp-sparse")
    split = digits_split()
    images = network_inputs(network, split.x_test, "test")
    print(f"{'PEs':>4} {'queue':>5} {'cycles/inf':>10} {'LB eff':>7} {'writeback':>9} "
          f"{'nJ/inf':>8}" + ("   RTL cycles/inf  RTL nJ/inf  bit-exact" if rtl else ""))
    for pes in (1, 4, 16, 64):
        for depth in (1, 8):
            arch, mapping = configure("eie", network, {"pes": pes, "queue_depth": depth})
            run = dict(model="mlp-sparse", clock_mhz=200.0)
            result = evaluate.estimate(arch, mapping, network, images, split.y_test, **run)
            cycles = result.cycles_per_inference
            writeback = result.extra["writeback_cycles_per_inference"] / cycles
            line = (f"{pes:4d} {depth:5d} {cycles:10.1f} "
                    f"{result.extra['load_balance_efficiency']:7.3f} {100 * writeback:8.1f}% "
                    f"{1e3 * result.extra['energy_uj_per_inference']:8.2f}")
            if rtl and pes <= 16:
                simulated = evaluate.simulate(arch, mapping, network, images, split.y_test,
                                              **run)
                line += (f"   {simulated.cycles_per_inference:14.1f}  "
                         f"{1e3 * simulated.extra['energy_uj_per_inference']:10.2f}  "
                         f"{'yes' if simulated.bit_exact else 'NO'}")
            print(line)


if __name__ == "__main__":
    main("--rtl" in sys.argv[1:])

"""mlp-sparse on the EIE engine at 1, 4, 16 (and 64) PEs and queue depths 1 and 8, all 359 test
images: cycles per inference, load-balance efficiency, writeback share, energy per inference.
Cycle-model figures (equal to the RTL's by tests/test_eie_rtl.py); with --rtl, each
configuration also runs in Verilator and the two are printed side by side.
Usage: python benchmarks/eie_mlp_sparse.py [--rtl]
"""

import sys

from accel.energy.model import estimate
from accel.hw.eie import arch
from accel.hw.eie.energy import event_specs, storage_of
from accel.hw.eie.run import model_timings, network_layer_inputs
from accel.nn import golden, load
from accel.nn.data import digits_split
from accel.nn.evaluate import network_inputs


def main(rtl: bool):
    network = load("mlp-sparse")
    split = digits_split()
    images = network_inputs(network, split.x_test, "test")
    layer_inputs = network_layer_inputs(network, golden.run(network, images, return_all=True))
    print(f"{'PEs':>4} {'queue':>5} {'cycles/inf':>10} {'LB eff':>7} {'writeback':>9} "
          f"{'nJ/inf':>8}" + ("   RTL cycles/inf  RTL nJ/inf  bit-exact" if rtl else ""))
    for pes in (1, 4, 16, 64):
        for depth in (1, 8):
            mapping = arch.configure(network, pes=pes, queue_depth=depth)
            runs = model_timings(mapping, layer_inputs)
            count = len(runs)
            events = {k: sum(r.events[k] for r in runs) / count for k in runs[0].events}
            energy = estimate(events, event_specs(storage_of(mapping)))
            cycles = sum(r.cycles for r in runs) / count
            compute = sum(r.compute_cycles for r in runs)
            balance = sum(r.ideal_cycles for r in runs) / compute
            writeback = 1 - compute / (cycles * count)
            line = (f"{pes:4d} {depth:5d} {cycles:10.1f} {balance:7.3f} {100 * writeback:8.1f}% "
                    f"{1e3 * energy.total_uj:8.2f}")
            if rtl and pes <= 16:
                result = arch.simulate(mapping, network, split.x_test, split.y_test,
                                       model="mlp-sparse", clock_mhz=200.0)
                line += (f"   {result.cycles_per_inference:14.1f}  "
                         f"{1e3 * result.extra['energy_uj_per_inference']:10.2f}  "
                         f"{'yes' if result.bit_exact else 'NO'}")
            print(line)


if __name__ == "__main__":
    main("--rtl" in sys.argv[1:])

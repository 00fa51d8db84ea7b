"""How much faster the cycle model is than the RTL in Verilator, on the same work: 100 digits
test images through each reference configuration, in one process, builds cached (a first run
builds them; run twice). Prints the cycle model's seconds (``arch.estimate``: cycles and every
event, what ``accel estimate`` adds to the golden model), the Verilator run's seconds (the
testbench process on a cached build, as ``runner.run`` reports it), their ratio, and the whole
``accel estimate`` path (golden model, cycle model, energy). The goal is a ratio >= 100 on
every row; the two are held equal in cycles and events by the tests.
Usage: python benchmarks/model_speed.py [--images N]
"""

import sys
import time

from accel.hw import evaluate
from accel.hw.reference import FINN_FOLDINGS, REFERENCE_CLOCK_MHZ, configure, finn_folding
from accel.nn import load
from accel.nn.data import digits_split
from accel.nn.evaluate import network_inputs

ROWS = [
    ("FINN bnn-cnv fully folded", "finn", "bnn-cnv", {"folding": {}}),
    ("FINN bnn-mlp fully folded", "finn", "bnn-mlp", {"folding": {}}),
    ("FINN bnn-cnv medium", "finn", "bnn-cnv", {"folding": FINN_FOLDINGS["bnn-cnv"]["medium"]}),
    ("EIE mlp-sparse, 4 PEs", "eie", "mlp-sparse", {"pes": 4}),
    ("EIE mlp-sparse, 16 PEs", "eie", "mlp-sparse", {"pes": 16}),
    ("YodaNN bwn-cnn, paper engine", "yodann", "bwn-cnn", {}),
    ("YodaNN bwn-cnn, 8x8 SoPs 3x3", "yodann", "bwn-cnn", {"n_out": 8, "n_in": 8, "k_max": 3,
                                                            "w_max": 5}),
]


def main(images: int):
    split = digits_split()
    print(f"{'configuration':28s} {'cycles':>10s} {'model s':>9s} {'Verilator s':>11s} "
          f"{'ratio':>7s} {'estimate s':>10s}")
    for label, arch_name, model, options in ROWS:
        network = load(model)
        if isinstance(options.get("folding"), str):
            options = {"folding": finn_folding(network, options["folding"])}
        arch, mapping = configure(arch_name, network, options)
        inputs = network_inputs(network, split.x_test[:images], "test")
        start = time.perf_counter()
        timing = arch.estimate(mapping, network, inputs)
        model_seconds = time.perf_counter() - start
        start = time.perf_counter()
        evaluate.estimate(arch, mapping, network, inputs, model=model,
                          clock_mhz=REFERENCE_CLOCK_MHZ)
        estimate_seconds = time.perf_counter() - start
        run = arch.run_rtl(mapping, network, inputs, max_cycles=4 * timing.cycles + 1000)
        assert (run.cycles, run.events) == (timing.cycles, timing.events), label
        print(f"{label:28s} {timing.cycles:10d} {model_seconds:9.3f} {run.seconds:11.2f} "
              f"{run.seconds / model_seconds:7.1f} {estimate_seconds:10.3f}", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[args.index("--images") + 1]) if "--images" in args else 100)

"""EIE's Table IV with accel's EIE cycle model (64 PEs, 800 MHz, queue depth 8), on synthetic
layers of the paper's sizes and weight/activation densities; then load-balance efficiency
against queue depth and speedup against PE count, saved as plots.

The cycle model is the timing specification of the EIE engine (accel/hw/eie/model.py); the RTL
that must match it is still to be built (issue 5).
Usage: python benchmarks/eie_paper.py [--out benchmarks/out] [--seed 0]
"""

import argparse
import time
from pathlib import Path

from accel.hw.eie.model import simulate_layer, synthetic_layer

CLOCK_MHZ = 800
PES = 64
# name, inputs, outputs, weight density, activation density, paper actual us, theoretical us
TABLE_IV = [
    ("Alex-6", 9216, 4096, 0.09, 0.351, 30.3, 28.1),
    ("Alex-7", 4096, 4096, 0.09, 0.353, 12.2, 11.7),
    ("Alex-8", 4096, 1000, 0.25, 0.375, 9.9, 8.9),
    ("VGG-6", 25088, 4096, 0.04, 0.183, 34.4, 28.1),
    ("VGG-7", 4096, 4096, 0.04, 0.375, 8.7, 7.9),
    ("VGG-8", 4096, 1000, 0.23, 0.411, 8.4, 7.3),
    ("NT-We", 4096, 600, 0.10, 1.0, 8.0, 5.2),
    ("NT-Wd", 600, 8791, 0.11, 1.0, 13.9, 13.0),
    ("NT-LSTM", 1201, 2400, 0.10, 1.0, 7.5, 6.5),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print(f"{'layer':8s} {'ours us':>8s} {'paper us':>9s} {'ratio':>6s} {'ideal us':>9s} "
          f"{'paper ideal':>11s} {'LB eff':>7s} {'model s':>8s}")
    within = 0
    for name, inputs, outputs, wd, ad, paper, paper_ideal in TABLE_IV:
        start = time.perf_counter()
        matrix, activations = synthetic_layer(inputs, outputs, wd, ad, PES, seed=args.seed)
        timing = simulate_layer(matrix, activations, queue_depth=8)
        seconds = time.perf_counter() - start
        ours = timing.cycles / CLOCK_MHZ
        ratio = ours / paper
        within += abs(ratio - 1) <= 0.15
        print(f"{name:8s} {ours:8.1f} {paper:9.1f} {ratio:6.2f} "
              f"{timing.ideal_cycles / CLOCK_MHZ:9.1f} {paper_ideal:11.1f} "
              f"{timing.load_balance_efficiency:7.2f} {seconds:8.2f}")
    print(f"{within}/{len(TABLE_IV)} layers within 15% of the paper")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    pe_counts = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    chosen = [row for row in TABLE_IV if row[0] in ("Alex-6", "Alex-7", "VGG-7", "NT-We")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, inputs, outputs, wd, ad, *_ in chosen:
        matrix, activations = synthetic_layer(inputs, outputs, wd, ad, PES, seed=args.seed)
        efficiency = [simulate_layer(matrix, activations, d).load_balance_efficiency
                      for d in depths]
        left.plot(depths, efficiency, marker="o", label=name)
        cycles = []
        for n in pe_counts:
            m, a = synthetic_layer(inputs, outputs, wd, ad, n, seed=args.seed)
            cycles.append(simulate_layer(m, a, 8).cycles)
        right.plot(pe_counts, [cycles[0] / c for c in cycles], marker="o", label=name)
        print(f"{name}: load-balance efficiency at queue depth {depths}: "
              + ", ".join(f"{e:.2f}" for e in efficiency))
        print(f"{name}: speedup at {pe_counts} PEs: "
              + ", ".join(f"{cycles[0] / c:.1f}" for c in cycles))
    left.set(xscale="log", xlabel="activation queue depth", ylabel="load-balance efficiency",
             title="64 PEs")
    right.plot(pe_counts, pe_counts, "k--", linewidth=0.8, label="linear")
    right.set(xscale="log", yscale="log", xlabel="PEs", ylabel="speedup over 1 PE",
              title="queue depth 8")
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.tight_layout()
    for suffix in ("png", "svg"):
        fig.savefig(out / f"eie_scaling.{suffix}")
    print(f"plots: {out / 'eie_scaling.png'}, {out / 'eie_scaling.svg'}")


if __name__ == "__main__":
    main()

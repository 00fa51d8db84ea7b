"""Energy-aware vs magnitude pruning (issue 14's comparison): the shipped mlp on EIE, next to
mlp-sparse (Deep Compression's iterative prune-and-retrain recipe, trained by accel.train), and
bnn-mlp pruned neuron by neuron on FINN's reference folding (rtl/finn/bnn-mlp).

    python benchmarks/energy_aware_pruning.py                 # EIE, 16 PEs, queue 8, 1 point
    python benchmarks/energy_aware_pruning.py --pes 4 --budget 0.5
    python benchmarks/energy_aware_pruning.py --finn          # also bnn-mlp on FINN

Both criteria take their decisions by five-fold cross-validation on the training split (each
fold's parent retrained without the fold) and are measured on the digits test split; energies are the cycle model's events priced by the 45 nm
table (equal to the RTL's: tests/test_energy_aware_pruning.py replays them in Verilator).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pes", type=int, default=16)
    parser.add_argument("--queue-depth", type=int, default=8)
    parser.add_argument("--budget", type=float, default=1.0, help="percentage points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finn", action="store_true", help="also bnn-mlp on FINN")
    args = parser.parse_args()
    from rich.console import Console

    from accel.explore.prune import CRITERIA, PruneData, Target, prune, report_tables
    from accel.nn import load

    console = Console(width=120)
    target = Target("eie", {"pes": args.pes, "queue_depth": args.queue_depth}, clock_mhz=200.0)
    data = PruneData.digits()
    network = load("mlp")
    reports = []
    for criterion in CRITERIA:
        start = time.perf_counter()
        _, report = prune(network, target, criterion=criterion, max_accuracy_drop=args.budget,
                          data=data, seed=args.seed)
        reports.append(report)
        console.print(f"{criterion}: {time.perf_counter() - start:.1f} s")
    for table in report_tables(reports):
        console.print(table)
    sparse = load("mlp-sparse")
    result, _ = target.run(sparse, data.x_test, data.y_test)
    energy, magnitude = reports
    console.print(
        f"energy per inference on the test split, EIE {args.pes} PEs: dense "
        f"{1e3 * energy.energy_before_uj:.2f} nJ; energy-aware {1e3 * energy.energy_after_uj:.2f}"
        f" nJ (test {100 * energy.test_accuracy:.2f} %); magnitude "
        f"{1e3 * magnitude.energy_after_uj:.2f} nJ (test {100 * magnitude.test_accuracy:.2f} %); "
        f"mlp-sparse (Deep Compression, 4 retraining rounds) "
        f"{1e3 * result.to_json()['energy_uj_per_inference']:.2f} nJ (test "
        f"{100 * result.accuracy:.2f} %); reference test accuracy "
        f"{100 * energy.reference_test_accuracy:.2f} %")
    console.print(f"energy-aware / magnitude = "
                  f"{energy.energy_after_uj / magnitude.energy_after_uj:.3f}")
    if args.finn:
        from accel.hw.reference import REFERENCE_CONFIGS

        folding = next(options for arch, model, options in REFERENCE_CONFIGS
                       if (arch, model) == ("finn", "bnn-mlp"))
        finn = Target("finn", folding, clock_mhz=200.0)
        reports = [prune(load("bnn-mlp"), finn, criterion=criterion,
                         max_accuracy_drop=args.budget, data=data, seed=args.seed)[1]
                   for criterion in CRITERIA]
        for table in report_tables(reports):
            console.print(table)
        energy, magnitude = reports
        console.print(f"FINN bnn-mlp: parent {energy.extra['parent']}; energy-aware / "
                      f"magnitude = {energy.energy_after_uj / magnitude.energy_after_uj:.3f}; "
                      f"test points lost: energy-aware {energy.test_drop_points:.2f}, "
                      f"magnitude {magnitude.test_drop_points:.2f}")


if __name__ == "__main__":
    main()

"""Energy model against published figures (preliminary: the EIE figures come from the EIE
cycle model, not yet from EIE RTL).

1. EIE, Alex-7 (4096 x 4096, 9 % weights, 35.3 % activations, 64 PEs, 800 MHz): per-PE power
   and its split against the paper's 9.157 mW (sparse-matrix read 54.1 %, pointer read 19.7 %,
   arithmetic 12.7 %, activation read/write 12.3 %, queue 1.2 %); energy per inference against
   0.59 W x 12.2 us = 7.2 uJ.
2. Deep Compression's argument: mlp-sparse's weights fetched from DRAM vs read from on-chip SRAM,
   and the dense float mlp's weights from DRAM.
3. FINN: energy per frame of bnn-mlp at two foldings (cycle-model events; equal to the RTL's by
   the tests), and pJ per binary operation.
Usage: python benchmarks/energy_validation.py
"""

from accel.compress.network import network_compression_report
from accel.energy.model import estimate
from accel.energy.tech import load_technology
from accel.hw.eie.energy import event_specs as eie_specs
from accel.hw.eie.model import simulate_layer, synthetic_layer
from accel.hw.finn.energy import event_specs as finn_specs
from accel.hw.finn.mapping import map_network
from accel.hw.finn.model import simulate
from accel.hw.reference import FINN_FOLDINGS, finn_folding
from accel.nn import load

PAPER_SHARES = {"sparse-matrix read": (54.1, ["pe.sparse_sram"]),
                "pointer read": (19.7, ["pe.pointer_even", "pe.pointer_odd"]),
                "arithmetic": (12.7, ["pe.mult", "pe.codebook"]),
                "activation read/write": (12.3, ["pe.act_regfile"]),
                "activation queue": (1.2, ["pe.act_queue"])}


def main():
    tech = load_technology("45nm")
    print("1. EIE Alex-7 at 64 PEs, 800 MHz (cycle model events)")
    matrix, activations = synthetic_layer(4096, 4096, 0.09, 0.353, 64)
    timing = simulate_layer(matrix, activations, 8)
    report = estimate(timing.events, eie_specs(), tech)
    seconds = timing.cycles / 800e6
    per_pe_mw = report.total_pj * 1e-12 / seconds / 64 * 1e3
    print(f"   energy per inference {report.total_uj:.2f} uJ vs 7.2 uJ "
          f"(ratio {report.total_uj / 7.2:.2f}); time {seconds * 1e6:.1f} us vs 12.2 us")
    print(f"   per-PE power {per_pe_mw:.2f} mW vs 9.157 mW (ratio {per_pe_mw / 9.157:.2f})")
    for share, (paper, components) in PAPER_SHARES.items():
        ours = 100 * sum(report.by_component_pj.get(c, 0.0) for c in components) / report.total_pj
        print(f"   {share:22s} {ours:5.1f} % vs {paper:5.1f} % ({ours - paper:+.1f} points)")

    print("2. Deep Compression: where the weights live (per inference, weights read once)")
    sparse = load("mlp-sparse")
    size = network_compression_report(sparse)
    compressed_bits = size.compressed_bits
    dense_bits = 32 * sum(layer.total_weights for layer in size.layers)
    dram_sparse = tech.dram(compressed_bits)
    sram_sparse = compressed_bits / 64 * tech.sram_read(compressed_bits / 8, 64)
    dram_dense = tech.dram(dense_bits)
    print(f"   mlp dense float32 weights from DRAM:   {dram_dense / 1e6:8.3f} uJ")
    print(f"   mlp-sparse compressed from DRAM:       {dram_sparse / 1e6:8.3f} uJ "
          f"({dram_dense / dram_sparse:.1f}x less)")
    print(f"   mlp-sparse compressed from SRAM:       {sram_sparse / 1e6:8.3f} uJ "
          f"({dram_sparse / sram_sparse:.0f}x less than DRAM)")

    print("3. FINN bnn-mlp, energy per frame (cycle-model events)")
    network = load("bnn-mlp")
    for name in ("fully folded", "wide"):
        mapping = map_network(network, finn_folding(network, FINN_FOLDINGS["bnn-mlp"][name]))
        frames = 20
        events = {k: v / frames for k, v in simulate(mapping, frames).events.items()}
        report = estimate(events, finn_specs(mapping), tech)
        ops = sum(v for k, v in events.items() if ".pe." in k)
        print(f"   {name:13s} {report.total_pj / 1e3:8.2f} nJ/frame, {report.total_pj / ops:.3f} "
              f"pJ per binary operation (memory {100 * report.by_group_pj['memory'] / report.total_pj:.0f} %)")


if __name__ == "__main__":
    main()

"""Writes the notebooks (without outputs; the tests execute them): notebooks/end_to_end.ipynb and
notebooks/energy_aware_pruning.ipynb. Edit the cells here and rerun: python tools/make_notebook.py"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

end_to_end = [
new_markdown_cell("""# From a QONNX file to RTL, cycles and joules

This notebook walks one network through accel's whole flow:

1. **load** a QONNX file and check it with the golden model (and qonnx's own executor),
2. **compress** it the Deep Compression way (pruning, weight sharing) and look at the size table,
3. **generate** an EIE-style engine for it (Amaranth → Verilog, lint-clean),
4. **simulate** it cycle-accurately in Verilator on real digits, bit-exact against the golden model,
5. **price** the hardware's own event counts with the 45 nm energy table, and explore PE counts with the fast cycle model,
6. run a binary-weight CNN on the **YodaNN-style** engine, the third datapath.

The test suite executes this notebook (`tests/test_notebooks.py`), so every number below is produced by the code as it is now."""),
new_code_cell("""import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import accel
from accel.nn import golden, load
from accel.nn.data import digits_split
from accel.nn.evaluate import network_inputs

MODELS = Path(accel.__file__).parent / "models"
split = digits_split()
print(f"digits: {len(split.x_train)} training and {len(split.x_test)} test images")"""),
new_markdown_cell("""## 1. A QONNX file in

`mlp.onnx` is a float 64-256-128-10 multilayer perceptron, as any exporter would write it. `load` turns the file into accel's network IR; the golden model is the one integer/float arithmetic every architecture is checked against."""),
new_code_cell("""mlp = load(MODELS / "mlp.onnx")
for layer in mlp.layers:
    print(f"{layer.name:8s} {layer.op}")
float_accuracy = (golden.predict(mlp, network_inputs(mlp, split.x_test, "test")) == split.y_test).mean()
print(f"float mlp, golden model: {100 * float_accuracy:.2f} % on the test split")"""),
new_markdown_cell("""## 2. Compression

Post-training compression (90 % magnitude pruning, 16-entry shared codebook, 16-bit fixed point) without retraining loses accuracy; `mlp-sparse` is the same network compressed *with* retraining (`accel train mlp-sparse`, seeded and byte-reproducible), which keeps it. The size table is Deep Compression's."""),
new_code_cell("""from accel.compress.network import compress_network, network_compression_report
from accel.compress.report import format_report

calibration = network_inputs(mlp, split.x_train, "train")
post_training = compress_network(mlp, calibration, sparsity=0.9, weight_bits=4, seed=0)
sparse = load(MODELS / "mlp-sparse.onnx")
for name, network in [("post-training compressed", post_training), ("retrained mlp-sparse", sparse)]:
    accuracy = (golden.predict(network, network_inputs(network, split.x_test, "test")) == split.y_test).mean()
    print(f"{name:26s} {100 * accuracy:.2f} %")
print()
print(format_report(network_compression_report(sparse)))"""),
new_markdown_cell("""## 3. Generation: an EIE-style engine

Rows are interleaved over the PEs, each PE stores its slice in EIE's CSC format (4-bit codebook index, 4-bit relative row index, padding entries for gaps over 15), column pointers in even/odd banks. `generate` writes the Verilog and a manifest; the lint gate runs `verilator --lint-only -Wall` with the project's documented waivers."""),
new_code_cell("""from accel.hw import evaluate
from accel.hw.registry import architecture
from accel.sim.lint import check_lint

eie = architecture("eie")
mapping = eie.configure(sparse, eie.Options(pes=4, queue_depth=8), clock_mhz=200.0)  # as rtl/eie/
out = Path(tempfile.mkdtemp())
verilog, manifest = eie.generate(mapping, out)
check_lint(verilog, "eie_top")
print(f"{verilog.name}: {len(verilog.read_text().splitlines()):,} lines, lint-clean")
for layer in mapping.layers:
    m = layer.matrix
    print(f"{layer.name}: {layer.rows}x{layer.cols}, {m.total_entries - m.padding_entries} weights "
          f"+ {m.padding_entries} padding entries, entries per PE {m.entries_per_pe.min()}..{m.entries_per_pe.max()}")"""),
new_markdown_cell("""## 4. Verilator, bit-exact

The engine runs the first 60 test images (the build is cached: the first run takes about a minute on 2 cores). Outputs are compared with the golden model, and the RTL's cycles and event counts with the Python cycle model's."""),
new_code_cell("""images = 60
inputs, labels = split.x_test[:images], split.y_test[:images]
result = evaluate.simulate(eie, mapping, sparse, inputs, labels, model="mlp-sparse", clock_mhz=200.0)
print(f"accuracy {100 * result.accuracy:.2f} %   bit-exact: {result.bit_exact}")
print(f"cycles per inference: RTL {result.cycles_per_inference:.1f}, cycle model {result.model_cycles_per_inference:.1f}")
print(f"events equal to the cycle model: {result.model_events_equal}")
print(f"latency {result.latency_us:.2f} us at {result.clock_mhz:g} MHz, "
      f"load-balance efficiency {result.extra['load_balance_efficiency']:.3f}")
assert result.bit_exact and result.model_events_equal"""),
new_markdown_cell("""## 5. Energy from the hardware's own counts

Every counted event (SRAM word reads, pointer reads, codebook lookups, MACs, queue pushes, ...) is priced by the technology table (Horowitz, 45 nm) at the size of the memory that the generated engine really has."""),
new_code_cell("""extra = result.extra
print(f"energy per inference: {1e3 * extra['energy_uj_per_inference']:.2f} nJ "
      f"(cycle model: {1e3 * extra['model_energy_uj_per_inference']:.2f} nJ), "
      f"{extra['pj_per_mac']:.2f} pJ per MAC, {extra['average_power_mw']:.2f} mW at 200 MHz")
components = extra["energy_by_component_uj"]
fig, ax = plt.subplots(figsize=(7, 3))
names = sorted(components, key=components.get)
ax.barh(names, [1e3 * components[n] for n in names])
ax.set_xlabel("nJ per inference")
ax.set_title("mlp-sparse on 4 PEs: energy by component")
fig.tight_layout()"""),
new_markdown_cell("""### Exploring PE counts with the cycle model

The cycle model is the RTL's timing specification (equal cycles and events, checked above), and fast enough to sweep configurations RTL simulation would be slow for: `evaluate.estimate` (the CLI's `accel estimate`) returns the same result as the Verilator run, without Verilator. Here: cycles, load balance and energy per inference against the number of PEs, on the same 60 images."""),
new_code_cell("""sweep = []
for pes in (1, 2, 4, 8, 16, 32, 64):
    config = eie.configure(sparse, eie.Options(pes=pes, queue_depth=8), clock_mhz=200.0)
    point = evaluate.estimate(eie, config, sparse, inputs, labels, model="mlp-sparse", clock_mhz=200.0)
    sweep.append((pes, point.cycles_per_inference, point.extra["load_balance_efficiency"],
                  point.extra["energy_uj_per_inference"] * 1e3))
pes, cycles, balance, nanojoules = map(np.array, zip(*sweep))
fig, axes = plt.subplots(1, 3, figsize=(11, 3))
axes[0].loglog(pes, cycles, "o-"); axes[0].set_title("cycles per inference")
axes[1].semilogx(pes, balance, "o-"); axes[1].set_title("load-balance efficiency")
axes[2].semilogx(pes, nanojoules, "o-"); axes[2].set_title("energy per inference (nJ)")
for axis in axes:
    axis.set_xlabel("PEs")
fig.tight_layout()
for row in sweep:
    print("PEs {:3d}: {:7.1f} cycles, balance {:.3f}, {:.2f} nJ".format(*row))
assert sweep[2][1] == result.model_cycles_per_inference  # 4 PEs: the Verilator run above"""),
new_markdown_cell("""## 6. The third datapath: a binary-weight CNN on the YodaNN-style engine

`bwn-cnn` (three 3x3 convolutions with +1/-1 weights, 12-bit activations, max-pools, a binary dense layer) runs whole on the YodaNN-style engine: SoP units that add `x XOR ~w` plus a popcount of the carries over a k_max x k_max window, channel summers, an output stage (bias, ReLU, fixed-point scale, rounding, saturation) and a max-pool on the output path; the dense layer runs as a 2x2 convolution of the pooled 2x2 image. First the paper's engine (32 SoPs of 7x7 taps, 32 input channels) on the cycle model: 3x3 kernels use 9 of its 49 taps. Then a small engine that tiles every layer (input and output channel passes with full-width partial sums, image stripes) in Verilator, bit-exact, with cycles and events equal to the model, priced at 65 nm at 1.2 V and at 0.6 V (energy x V^2, the clock from the alpha-power law calibrated to YodaNN's two operating points)."""),
new_code_cell("""from accel.energy.tech import load_technology

yodann = architecture("yodann")
cnn = load(MODELS / "bwn-cnn.onnx")
cnn_inputs = network_inputs(cnn, split.x_test, "test")
paper = yodann.configure(cnn, yodann.Options(), clock_mhz=481.0)
estimated = evaluate.estimate(yodann, paper, cnn, cnn_inputs, split.y_test, model="bwn-cnn",
                              clock_mhz=481.0, tech="65nm")
print(f"paper engine, cycle model: {100 * estimated.accuracy:.2f} %, "
      f"{estimated.cycles_per_inference:.0f} cycles per image, "
      f"SoP utilization {estimated.extra['sop_utilization']:.3f}, "
      f"{estimated.extra['binary_macs_per_cycle']:.0f} binary MACs per cycle")

small = yodann.configure(cnn, yodann.Options(n_out=8, n_in=8, k_max=3, w_max=5), clock_mhz=481.0)
images = 30
for volts in (1.2, 0.6):
    clock = load_technology(f"65nm@{volts}V").clock_mhz()
    run = evaluate.simulate(yodann, small, cnn, cnn_inputs[:images], split.y_test[:images],
                            model="bwn-cnn", clock_mhz=clock, tech=f"65nm@{volts}V")
    assert run.bit_exact and run.model_events_equal
    print(f"8 x 8 SoPs of 3x3, Verilator at {volts} V ({clock:.1f} MHz): bit-exact {run.bit_exact}, "
          f"{run.cycles_per_inference:.0f} cycles, {1e3 * run.extra['energy_uj_per_inference']:.1f} nJ "
          f"and {run.latency_us:.1f} us per image")"""),
]
energy_aware_pruning = [
new_markdown_cell("""# Energy-aware pruning on the hardware that runs the network

Yang, Chen and Sze (CVPR 2017) prune the weights that cost the most *energy* rather than the most *weights*, with an analytical energy model. accel does the same on its own estimate: the energy of each layer is the cycle model's counted events on the target configuration (equal to the RTL's counts, event by event) priced by the technology table.

Here the float `mlp` (64-256-128-10) is pruned for the EIE-style engine at 16 PEs, once energy-aware and once by magnitude (Deep Compression's criterion), at the same accuracy budget: 1 percentage point, decided by five-fold cross-validation on the training split (each fold's parent is `mlp`'s recipe retrained without that fold), never on the test images; the decisions are then replayed on `mlp` itself. Then a small design-space sweep of the energy-aware network. The test suite executes this notebook (`tests/test_notebooks.py`)."""),
new_code_cell("""import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from rich.console import Console

from accel.explore.prune import CRITERIA, PruneData, Target, prune, report_tables
from accel.nn import load

console = Console(width=110)
mlp = load("mlp")
target = Target("eie", {"pes": 16, "queue_depth": 8}, clock_mhz=200.0)
data = PruneData.digits()
results = {criterion: prune(mlp, target, criterion=criterion, data=data) for criterion in CRITERIA}
for table in report_tables([report for _, report in results.values()]):
    console.print(table)"""),
new_markdown_cell("""Both runs visit the layers in an order (energy: by the layer's energy on EIE; magnitude: by weight count) and prune each to the largest sparsity whose cross-validated accuracy holds the budget. The energy-aware run then *restores* the pruned weights that damage the layer's output most and refits the kept ones by least squares on the unpruned layer's output, so each layer can go further before the budget breaks. Both are fine-tuned with torch and shared into 16-entry codebooks. The comparison table shows where each stopped: the step above its choice and the cross-validated accuracy it gave."""),
new_code_cell("""energy_report, magnitude_report = (results[c][1] for c in CRITERIA)
names = [choice.name for choice in energy_report.layers]
before = [1e3 * c.energy_before_uj for c in energy_report.layers]
after = {report.criterion: [1e3 * c.energy_after_uj for c in report.layers]
         for report in (energy_report, magnitude_report)}
x = np.arange(len(names))
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(x - 0.27, before, 0.27, label="unpruned")
ax.bar(x, after["energy"], 0.27, label="energy-aware")
ax.bar(x + 0.27, after["magnitude"], 0.27, label="magnitude")
ax.set_xticks(x, names)
ax.set_ylabel("nJ per inference")
ax.set_title("mlp on EIE, 16 PEs: energy per layer before and after pruning")
ax.legend()
fig.tight_layout()
for report in (energy_report, magnitude_report):
    print(f"{report.criterion:9s}: {1e3 * report.energy_after_uj:6.2f} nJ per inference "
          f"(from {1e3 * report.energy_before_uj:.2f}), test accuracy {100 * report.test_accuracy:.2f} % "
          f"(reference {100 * report.reference_test_accuracy:.2f} %), cross-validated drop "
          f"{report.validation_drop_points:.2f} points")
assert energy_report.validation_drop_points <= 1.0 + 1e-9
assert magnitude_report.validation_drop_points <= 1.0 + 1e-9"""),
new_markdown_cell("""## A design-space sweep of the pruned network

The energy-aware network, written as QONNX, swept over engine sizes and further weight sharing with `accel explore` (Dask workers on this machine, a SQLite store that a rerun resumes from). The Pareto front trades energy per inference against latency and accuracy."""),
new_code_cell("""from IPython.display import Image, display

from accel.explore import run_sweep
from accel.explore.pareto import front_table
from accel.nn import save

work = Path(tempfile.mkdtemp())
save(results["energy"][0], work / "mlp-eap.onnx")
(work / "sweep.yaml").write_text('''\
model: mlp-eap.onnx
arch: eie
parameters:
  pes: [4, 8, 16, 32]
  queue_depth: [2, 8]
compression:
  codebook_size: [16, 8, 4]
objectives: [energy, latency, accuracy]
''')
outcome = run_sweep(work / "sweep.yaml", store=work / "sweep.sqlite", out_dir=work / "out",
                    workers=2, progress=False)
print(f"{outcome.computed} points computed in {outcome.seconds:.1f} s on {outcome.where}")
console.print(front_table(outcome.spec, outcome.report))
display(Image(filename=str(work / "out" / "pareto_energy_latency.png")))
assert outcome.report["points_failed"] == 0 and outcome.report["front"]"""),
]


def write(name: str, cells: list) -> None:
    for number, cell in enumerate(cells):
        cell.id = f"cell-{number}"  # stable ids: regenerating gives the same file
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, Path(__file__).resolve().parents[1] / "notebooks" / name)


write("end_to_end.ipynb", end_to_end)
write("energy_aware_pruning.ipynb", energy_aware_pruning)

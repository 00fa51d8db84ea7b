"""The resource model (``accel.hw.resources``) against yosys: its LUT4, flip-flop, LUT-RAM and
block-RAM counts per design, next to ``synth_ecp5``'s (flattened, as ``accel synth`` runs it),
and the error.

Needs the ``accel[fpga]`` extra. Each design is synthesized once per Verilog hash and kept under
``--work`` (default ``build/resources``), so a rerun only synthesizes what changed.
``--fit`` fits each architecture's coefficients to its calibration designs (non-negative
least squares of relative errors): to the flattened totals, and for FINN, whose stages are
modules of the top, also to the per-module counts of a synthesis with the hierarchy kept
(``synth_ecp5 -noflatten``); it prints them for ``accel/hw/<arch>/resources.py``.
``--record FILE`` writes the measured totals with each design's Verilog hash (with
``--only``, into the records already there)
(``tests/data/resources-ecp5.json`` is what the tests compare the model with).
``--synth-only`` fills ``--work`` and prints nothing. All 35 designs take about 30 minutes on
two cores, YodaNN's paper engine 7 of them.
Usage: python benchmarks/resources.py [--fit] [--record FILE] [--work DIR] [--only LABEL]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

# (label, architecture, shipped model, options, used to fit the coefficients)
DESIGNS = [
    ("bnn-mlp reference folding", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 1, "simd": 64}, "fc1": {"pe": 1, "simd": 128},
                  "fc2": {"pe": 1, "simd": 8}}}, True),
    ("bnn-mlp reference, pipeline 0", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 1, "simd": 64}, "fc1": {"pe": 1, "simd": 128},
                  "fc2": {"pe": 1, "simd": 8}}, "pipeline": 0}, True),
    ("bnn-mlp fully folded", "finn", "bnn-mlp", {}, True),
    ("bnn-mlp 2/32, 4/32, 1/16", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 2, "simd": 32}, "fc1": {"pe": 4, "simd": 32},
                  "fc2": {"pe": 1, "simd": 16}}}, True),
    ("bnn-mlp 2/32, 4/32, 1/16, pipeline 0", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 2, "simd": 32}, "fc1": {"pe": 4, "simd": 32},
                  "fc2": {"pe": 1, "simd": 16}}, "pipeline": 0}, True),
    ("bnn-mlp 1/16, 1/128, 1/8", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 1, "simd": 16}, "fc1": {"pe": 1, "simd": 128},
                  "fc2": {"pe": 1, "simd": 8}}}, True),
    ("bnn-mlp 2/64, 1/64, 1/8", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 2, "simd": 64}, "fc1": {"pe": 1, "simd": 64},
                  "fc2": {"pe": 1, "simd": 8}}}, True),
    ("bnn-mlp 8/8, 4/32, 2/16", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 8, "simd": 8}, "fc1": {"pe": 4, "simd": 32},
                  "fc2": {"pe": 2, "simd": 16}}}, True),
    ("bnn-cnv 2e5 fps", "finn", "bnn-cnv", {"target_fps": 2e5}, True),
    ("bnn-cnv 2e5 fps, pipeline 0", "finn", "bnn-cnv", {"target_fps": 2e5, "pipeline": 0},
     True),
    ("bnn-cnv fully folded", "finn", "bnn-cnv", {}, True),
    ("bnn-mlp reference folding, loadable weights", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 1, "simd": 64}, "fc1": {"pe": 1, "simd": 128},
                  "fc2": {"pe": 1, "simd": 8}}, "loadable_weights": True}, True),
    ("bnn-cnv 2e5 fps, loadable weights", "finn", "bnn-cnv",
     {"target_fps": 2e5, "loadable_weights": True}, True),
    # held out of the fit
    ("bnn-mlp medium folding", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 4, "simd": 16}, "fc1": {"pe": 8, "simd": 16},
                  "fc2": {"pe": 2, "simd": 16}}}, False),
    ("bnn-cnv 5e4 fps", "finn", "bnn-cnv", {"target_fps": 5e4}, False),
    ("bnn-mlp medium folding, loadable weights", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 4, "simd": 16}, "fc1": {"pe": 8, "simd": 16},
                  "fc2": {"pe": 2, "simd": 16}}, "loadable_weights": True}, False),
    ("bnn-cnv 5e4 fps, loadable weights", "finn", "bnn-cnv",
     {"target_fps": 5e4, "loadable_weights": True}, False),
    ("EIE mlp-sparse, 1 PE", "eie", "mlp-sparse", {"pes": 1, "queue_depth": 8}, True),
    ("EIE mlp-sparse, 2 PEs", "eie", "mlp-sparse", {"pes": 2, "queue_depth": 8}, True),
    ("EIE mlp-sparse, 4 PEs (rtl/eie)", "eie", "mlp-sparse", {"pes": 4, "queue_depth": 8},
     True),
    ("EIE mlp-sparse, 8 PEs, queue 4", "eie", "mlp-sparse", {"pes": 8, "queue_depth": 4},
     True),
    ("EIE mlp-sparse, 16 PEs", "eie", "mlp-sparse", {"pes": 16, "queue_depth": 8}, True),
    ("EIE mlp-sparse, 4 PEs, 32-bit sparse words", "eie", "mlp-sparse",
     {"pes": 4, "queue_depth": 8, "sparse_word_bits": 32}, False),
    ("EIE mlp-sparse, 8 PEs", "eie", "mlp-sparse", {"pes": 8, "queue_depth": 8}, False),
    ("EIE mlp-sparse, 4 PEs, loadable weights", "eie", "mlp-sparse",
     {"pes": 4, "queue_depth": 8, "loadable_weights": True}, True),
    ("EIE mlp-sparse, 8 PEs, loadable weights", "eie", "mlp-sparse",
     {"pes": 8, "queue_depth": 8, "loadable_weights": True}, True),
    ("EIE mlp-sparse, 2 PEs, loadable weights", "eie", "mlp-sparse",
     {"pes": 2, "queue_depth": 8, "loadable_weights": True}, False),
    ("YodaNN 8x8 SoPs of 3x3", "yodann", "bwn-cnn", {"n_out": 8, "n_in": 8, "k_max": 3}, True),
    ("YodaNN 16x16 SoPs of 3x3", "yodann", "bwn-cnn", {"n_out": 16, "n_in": 16, "k_max": 3},
     False),
    ("YodaNN 32x32 SoPs of 3x3", "yodann", "bwn-cnn", {"k_max": 3}, True),
    ("YodaNN 16x32 SoPs of 5x5", "yodann", "bwn-cnn", {"n_out": 16, "k_max": 5}, True),
    ("YodaNN 8x16 SoPs of 7x7", "yodann", "bwn-cnn", {"n_out": 8, "n_in": 16}, True),
    ("YodaNN 32x32 SoPs of 7x7 (rtl/yodann)", "yodann", "bwn-cnn", {}, True),
    ("YodaNN 32x16 SoPs of 5x5", "yodann", "bwn-cnn", {"n_in": 16, "k_max": 5}, False),
    ("YodaNN 32x32 SoPs of 3x3, loadable weights", "yodann", "bwn-cnn",
     {"k_max": 3, "loadable_weights": True}, False),
]
KINDS = ("lut", "ff", "lutram", "bram")
# rows weighted by 1 / target**RELATIVE: 1 minimizes relative errors, what the bar measures
# (0.5, tried, fits large designs better and small ones worse: FINN 9.1 % vs 13.7 % largest
# LUT error, YodaNN 21.9 % vs 17.9 %)
RELATIVE = 1.0


def configure(arch_name: str, model: str, options: dict):
    from accel.hw.reference import configure as reference_configure
    from accel.nn import load

    return reference_configure(arch_name, load(model), options, count_events=False)


def synthesized(design, work: Path, *, flatten: bool) -> dict:
    """yosys's report for ``design`` (an ``accel.hw.synth.Design``), from ``work`` if there."""
    from accel.hw import synth

    path = work / f"{design.sha256[:24]}-{'flat' if flatten else 'hier'}.json"
    if path.exists():
        return json.loads(path.read_text())
    chosen, part = synth.check_request("ecp5", None, False)
    with tempfile.TemporaryDirectory(prefix="accel-resources-") as tmp:
        report = synth.run_flow(design, chosen, part, pnr=False, freq_mhz=200.0,
                                work=Path(tmp), flatten=flatten)
    path.write_text(json.dumps(report))
    return report


def module_part(module: str) -> str | None:
    """The resource model's part of a module of the hierarchy: ``finn_top.l0.outputs`` is
    ``l0``; the top itself has no part."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else None


def measured(cells: dict) -> dict:
    from accel.hw.synth import classify

    found = classify("ecp5", cells)
    return {kind: found[kind] for kind in KINDS}


def fit(samples: list[tuple[dict, float, float]]) -> dict[str, float]:
    """Non-negative least squares of the targets on the features: ``(features, target,
    weight)`` rows, each weighted by ``weight`` over its target (``RELATIVE``)."""
    from scipy.optimize import nnls

    names = sorted({name for features, _, _ in samples for name in features})
    a = np.array([[features.get(name, 0) for name in names] for features, _, _ in samples],
                 float)
    b = np.array([target for _, target, _ in samples], float)
    weight = np.array([w for _, _, w in samples]) / np.maximum(np.abs(b), 10) ** RELATIVE
    solution, _ = nnls(a * weight[:, None], b * weight)
    return {name: round(float(c), 4) for name, c in zip(names, solution) if c > 1e-6}


def fit_architecture(model, built, work: Path) -> None:
    """Fit ``model``'s coefficients (``model.structural``) to yosys's counts of the calibration
    designs in ``built`` and print them: per module where the stages are modules of the top
    (FINN; synthesized again with the hierarchy kept), and always the flattened total, which
    weighs as much as all of a design's modules together (yosys optimizes across them)."""
    from accel.hw.resources import total

    lut_samples, ff_samples = [], []
    for label, arch, mapping, design, calibrate in built:
        if not calibrate:
            continue
        parts = model.structural(mapping)
        if arch.name == "finn":
            per_part: dict[str, dict] = {}
            for module, cells in synthesized(design, work, flatten=False)["modules"].items():
                part = module_part(module)
                if part is None:
                    continue
                counts = measured(cells)
                into = per_part.setdefault(part, dict.fromkeys(KINDS, 0))
                for kind in KINDS:
                    into[kind] += counts[kind]
            for name, part in parts.items():
                got = per_part.get(name, dict.fromkeys(KINDS, 0))
                lut_samples.append((part.features, got["lut"] - part.lut, 1.0))
                ff_samples.append((part.features, got["ff"] - part.ff, 1.0))
        whole, flat = total(parts), measured(synthesized(design, work, flatten=True)["cells"])
        lut_samples.append((whole.features, flat["lut"] - whole.lut, len(parts)))
        ff_samples.append((whole.features, flat["ff"] - whole.ff, len(parts)))
        print(f"fitted on {label}: {len(parts)} parts")
    print(f"{model.__name__}.LUT_COEFFICIENTS =", json.dumps(fit(lut_samples), indent=1))
    print(f"{model.__name__}.FF_COEFFICIENTS =", json.dumps(fit(ff_samples), indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit the coefficients")
    parser.add_argument("--record", help="write the measured totals to this JSON file")
    parser.add_argument("--work", default="build/resources")
    parser.add_argument("--only", help="designs whose label contains this")
    parser.add_argument("--synth-only", action="store_true",
                        help="only synthesize (fill --work), print nothing")
    args = parser.parse_args()

    import importlib

    from accel.hw import synth
    from accel.hw.resources import total

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    chosen = [d for d in DESIGNS if not args.only or args.only in d[0]]
    built = []
    for label, arch_name, model, options, calibrate in chosen:
        arch, mapping = configure(arch_name, model, options)
        design = synth.elaborate(arch, mapping)
        built.append((label, arch, mapping, design, calibrate))

    if args.synth_only:
        for label, arch, mapping, design, calibrate in built:
            synthesized(design, work, flatten=True)
            print(f"synthesized {label}", flush=True)
        return

    if args.fit:
        for arch_name in dict.fromkeys(arch.name for _, arch, _, _, _ in built):
            model = importlib.import_module(f"accel.hw.{arch_name}.resources")
            fit_architecture(model, [entry for entry in built if entry[1].name == arch_name],
                             work)
        return  # the fit only: record with the new coefficients in a second run

    from rich.console import Console
    from rich.table import Table

    table = Table(title="resource model vs yosys synth_ecp5 (flattened), ECP5 LUT4 / FF / "
                        "DPR16X4 / DP16KD")
    for column in ("design", "fit", *[f"{kind} model / yosys" for kind in KINDS]):
        table.add_column(column)
    record, worst = {}, {kind: 0.0 for kind in KINDS}
    for label, arch, mapping, design, calibrate in built:
        report = synthesized(design, work, flatten=True)
        got = measured(report["cells"])
        estimate = total(arch.resources(mapping)).rounded()
        cells = []
        for kind in KINDS:
            error = (estimate[kind] - got[kind]) / max(got[kind], 1)
            worst[kind] = max(worst[kind], abs(error))
            cells.append(f"{estimate[kind]:,} / {got[kind]:,} ({100 * error:+.1f} %)")
        table.add_row(label, "yes" if calibrate else "held out", *cells)
        record[label] = {"verilog_sha256": design.sha256, "yosys": report["tools"]["yosys"],
                         "measured": got}
    Console(width=200).print(table)
    print("largest error: " + ", ".join(f"{kind} {100 * worst[kind]:.1f} %" for kind in KINDS)
          + " (the bar: LUTs within 15 %, block RAM exact)")
    if args.record:
        path = Path(args.record)
        if args.only and path.exists():  # the other designs' records stay as they are
            record = {**json.loads(path.read_text()), **record}
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.record}")


if __name__ == "__main__":
    main()

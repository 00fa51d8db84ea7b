"""The resource model (``accel.hw.resources``) against yosys: its LUT4, flip-flop, LUT-RAM and
block-RAM counts per design, next to ``synth_ecp5``'s (flattened, as ``accel synth`` runs it),
and the error.

Needs the ``accel[fpga]`` extra. Each design is synthesized once per Verilog hash and kept under
``--work`` (default ``build/resources``), so a rerun only synthesizes what changed.
``--fit`` also synthesizes every calibration design with its hierarchy kept
(``synth_ecp5 -noflatten``) and fits the model's coefficients to the per-module counts
and to the flattened totals (non-negative least squares), printing them for
``accel/hw/finn/resources.py``. ``--record FILE`` writes the measured totals with each design's
Verilog hash (``tests/data/resources-ecp5.json`` is what the tests compare the model with).
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
    ("bnn-cnv 2e5 fps", "finn", "bnn-cnv", {"target_fps": 2e5}, True),
    ("bnn-cnv 2e5 fps, pipeline 0", "finn", "bnn-cnv", {"target_fps": 2e5, "pipeline": 0},
     True),
    ("bnn-cnv fully folded", "finn", "bnn-cnv", {}, True),
    # held out of the fit
    ("bnn-mlp medium folding", "finn", "bnn-mlp",
     {"folding": {"fc0": {"pe": 4, "simd": 16}, "fc1": {"pe": 8, "simd": 16},
                  "fc2": {"pe": 2, "simd": 16}}}, False),
    ("bnn-cnv 5e4 fps", "finn", "bnn-cnv", {"target_fps": 5e4}, False),
]
KINDS = ("lut", "ff", "lutram", "bram")
LIMIT = {"lut": 0.15, "bram": 0.0}  # the bar: LUTs within 15 %, block RAM exact


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
    weight)`` rows, each weighted by ``weight`` over the square root of its target (so small
    modules count too)."""
    from scipy.optimize import nnls

    names = sorted({name for features, _, _ in samples for name in features})
    a = np.array([[features.get(name, 0) for name in names] for features, _, _ in samples],
                 float)
    b = np.array([target for _, target, _ in samples], float)
    weight = np.array([w for _, _, w in samples]) / np.sqrt(np.maximum(np.abs(b), 10))
    solution, _ = nnls(a * weight[:, None], b * weight)
    return {name: round(float(c), 4) for name, c in zip(names, solution) if c > 1e-6}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit the coefficients")
    parser.add_argument("--record", help="write the measured totals to this JSON file")
    parser.add_argument("--work", default="build/resources")
    parser.add_argument("--only", help="designs whose label contains this")
    args = parser.parse_args()

    from accel.hw import synth
    from accel.hw.finn import resources as finn_resources
    from accel.hw.resources import total

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    chosen = [d for d in DESIGNS if not args.only or args.only in d[0]]
    built = []
    for label, arch_name, model, options, calibrate in chosen:
        arch, mapping = configure(arch_name, model, options)
        design = synth.elaborate(arch, mapping)
        built.append((label, arch, mapping, design, calibrate))

    if args.fit:
        lut_samples, ff_samples = [], []
        for label, arch, mapping, design, calibrate in built:
            if not calibrate:
                continue
            report = synthesized(design, work, flatten=False)
            per_part: dict[str, dict] = {}
            for module, cells in report["modules"].items():
                part = module_part(module)
                if part is None:
                    continue
                counts = measured(cells)
                into = per_part.setdefault(part, dict.fromkeys(KINDS, 0))
                for kind in KINDS:
                    into[kind] += counts[kind]
            parts = finn_resources.structural(mapping)
            for name, part in parts.items():
                got = per_part.get(name, dict.fromkeys(KINDS, 0))
                lut_samples.append((part.features, got["lut"] - part.lut, 1.0))
                ff_samples.append((part.features, got["ff"] - part.ff, 1.0))
            # the whole design, flattened as accel synth runs it (yosys optimizes across the
            # modules), weighted as much as all its modules together
            whole, flat = total(parts), measured(synthesized(design, work, flatten=True)["cells"])
            lut_samples.append((whole.features, flat["lut"] - whole.lut, len(parts)))
            ff_samples.append((whole.features, flat["ff"] - whole.ff, len(parts)))
            print(f"fitted on {label}: {len(parts)} parts and the flattened whole")
        print("LUT_COEFFICIENTS =", json.dumps(fit(lut_samples), indent=1))
        print("FF_COEFFICIENTS =", json.dumps(fit(ff_samples), indent=1))
        return

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
        estimate = total(finn_resources.resources(mapping)).rounded()
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
        Path(args.record).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.record}")


if __name__ == "__main__":
    main()

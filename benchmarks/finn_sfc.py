"""FINN SFC-max: generating (and synthesizing) FINN's SFC network at its published rate.

SFC is 784-256-256-256-10 with binary weights and activations (Umuroglu et al., FPGA 2017);
here its weights and thresholds are random but seeded (``sfc_network``), since generation time,
Verilog size and resources do not depend on the values. The folding is ``auto_fold`` at FINN's
SFC-max rate, 12.3 M frames/s at 200 MHz (16 cycles per frame).

Prints the generation time and the Verilog size (bytes, lines, assign statements), then with
``--synth`` (needs the ``accel[fpga]`` extra) yosys ``synth_xilinx`` LUTs against FINN's
published 91,131 for SFC-max, and with ``--pnr`` also ECP5 synthesis and nextpnr's Fmax against
the 200 MHz the frame rate needs. The whole SFC-max needs more LUT slots than the largest ECP5
(83,105 LUT4 and 5,086 two-slot carry cells against the LFE5UM5G-85F's 83,640 with yosys
0.70), so ``--layers`` places and routes each of its layers alone
(the input quantizer, the layer's MVTU and its threshold, with the layer's folding): their
lowest Fmax bounds the whole design's from above, since the layers are separate dataflow
stages joined by FIFOs but would share one die. A synthesis of this size takes many minutes on
two cores.
Usage: python benchmarks/finn_sfc.py [--synth] [--pnr] [--layers [fc0 ...]] [--fps F]
       [--clock-mhz C] [-o DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from accel.errors import ToolchainError
from accel.nn import BipolarQuant, DataType, Dense, MultiThreshold, Network

SFC_WIDTHS = (784, 256, 256, 256, 10)
FINN_SFC_MAX_LUTS = 91_131  # FINN's SFC-max (ZC706), second-hand: field notes section 5
SFC_MAX_FPS = 12.3e6
CLOCK_MHZ = 200.0


def sfc_network(widths=SFC_WIDTHS, seed: int = 0) -> Network:
    """A binary MLP of the given widths (SFC by default): a bipolar input quantizer, then per
    layer a bipolar-weight dense layer and, except after the last, a sign threshold (one
    threshold per channel, outputs +-1); weights and thresholds random from ``seed``."""
    rng = np.random.default_rng(seed)
    layers = [BipolarQuant("quant_in")]
    for k, (mw, mh) in enumerate(zip(widths, widths[1:])):
        weights = np.where(rng.random((mh, mw)) < 0.5, -1, 1)
        layers.append(Dense(f"fc{k}", weights=weights, weight_type=DataType.bipolar_type()))
        if k < len(widths) - 2:
            thresholds = rng.integers(-(mw // 8), mw // 8 + 1, (mh, 1))
            layers.append(MultiThreshold(f"sign{k}", thresholds=thresholds, out_scale=2.0,
                                         out_bias=-1.0))
    return Network("sfc", (1, widths[0]), layers)


def layer_networks(network: Network) -> list[Network]:
    """Each dense layer of ``network`` (as ``sfc_network`` builds it) as a network of its own:
    a bipolar input quantizer, the layer and, where it has one, its threshold."""
    layers = network.layers
    alone = []
    for position, layer in enumerate(layers):
        if not isinstance(layer, Dense):
            continue
        after = layers[position + 1:position + 2]
        kept = [layer] + [t for t in after if isinstance(t, MultiThreshold)]
        alone.append(Network(f"{network.name}-{layer.name}", (1, layer.weights.shape[1]),
                             [BipolarQuant("quant_in"), *kept]))
    return alone


def verilog_size(text: str) -> dict:
    return {"bytes": len(text), "lines": text.count("\n"), "assigns": text.count("  assign ")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=SFC_MAX_FPS)
    parser.add_argument("--clock-mhz", type=float, default=CLOCK_MHZ)
    parser.add_argument("--synth", action="store_true", help="yosys synth_xilinx (xc7) LUTs")
    parser.add_argument("--pnr", action="store_true",
                        help="also synth_ecp5 and nextpnr-ecp5 (LFE5UM5G-85F) for Fmax")
    parser.add_argument("--layers", nargs="*", metavar="LAYER",
                        help="place and route each layer (or the ones named: fc0 ... fc3) "
                        "alone on ECP5 (LFE5UM5G-85F) for Fmax")
    parser.add_argument("-o", "--output", help="directory for the Verilog and the reports")
    args = parser.parse_args()

    from accel.hw.finn.arch import ARCHITECTURE
    from accel.hw.finn.mapping import auto_fold, map_network

    network = sfc_network()
    alone_networks = {alone.layers[1].name: alone for alone in layer_networks(network)}
    unknown = sorted(set(args.layers or ()) - set(alone_networks))
    if unknown:
        parser.error(f"no layer {', '.join(unknown)} in SFC (its layers: "
                     f"{', '.join(alone_networks)})")
    folding = auto_fold(network, args.fps, args.clock_mhz)
    mapping = map_network(network, folding, count_events=False)
    print(f"SFC {'-'.join(map(str, SFC_WIDTHS))} at {args.fps:g} frames/s, "
          f"{args.clock_mhz:g} MHz: {mapping.initiation_interval} cycles/frame")
    for layer in mapping.layers:
        print(f"  {layer.name}: PE {layer.pe:4d} SIMD {layer.simd:4d} "
              f"({layer.cycles_per_frame} cycles/frame)")
    lanes = sum(layer.pe * layer.simd for layer in mapping.layers)

    from accel.hw import synth

    design = synth.elaborate(ARCHITECTURE, mapping, allow_large=True)
    size = verilog_size(design.verilog)
    print(f"generated in {design.seconds:.1f} s: {size['bytes']:,} bytes, {size['lines']:,} "
          f"lines, {size['assigns']:,} assigns ({lanes:,} PE x SIMD lanes, "
          f"{size['bytes'] / lanes:.0f} bytes per lane)")
    out = Path(args.output) if args.output else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{design.top_name}.v").write_text(design.verilog)
    if not (args.synth or args.pnr or args.layers is not None):
        return
    try:
        synth._require_pyosys()
    except ToolchainError as error:  # the accel[fpga] extra is missing
        print(f"synthesis skipped: {error}")
        return
    targets = (([("xc7", False)] if args.synth else [])
               + ([("ecp5", True)] if args.pnr else []))
    for name, pnr in targets:
        report = run(design, name, pnr, args.clock_mhz, out, name)
        if report is None:
            continue
        if name == "xc7":
            luts = report["resources"].get("lut", 0)
            print(f"  LUTs {luts:,} vs FINN SFC-max {FINN_SFC_MAX_LUTS:,} "
                  f"({luts / FINN_SFC_MAX_LUTS:.2f}x)")
        if report["pnr"]:
            fmax = report["pnr"].get("fmax_mhz")
            print(f"  ECP5 Fmax {fmax} MHz vs the {args.clock_mhz:g} MHz the frame rate needs")
    if args.layers is None:
        return
    fmaxes = {}
    for layer, alone in alone_networks.items():
        if args.layers and layer not in args.layers:
            continue
        part_mapping = map_network(alone, {layer: folding[layer]}, count_events=False)
        part_design = synth.elaborate(ARCHITECTURE, part_mapping, allow_large=True)
        report = run(part_design, "ecp5", True, args.clock_mhz, out, f"ecp5-{layer}")
        if report is not None:
            fmaxes[layer] = report["pnr"].get("fmax_mhz")
            path = report["pnr"].get("critical_path") or {}
            print(f"  {layer} alone: ECP5 Fmax {fmaxes[layer]} MHz, critical path "
                  f"{path.get('from')} -> {path.get('to')}")
    if fmaxes:
        slowest = min(fmaxes, key=lambda layer: fmaxes[layer] or 0.0)
        print(f"layers placed alone: lowest ECP5 Fmax {fmaxes[slowest]} MHz ({slowest}; an "
              f"upper bound for the whole design) vs the {args.clock_mhz:g} MHz the frame "
              "rate needs")


def run(design, target: str, pnr: bool, clock_mhz: float, out: Path | None,
        label: str) -> dict | None:
    """yosys (and nextpnr) on ``design``; the report, printed and kept in ``out``, or None
    (printed) where a tool fails, e.g. on a design larger than the part."""
    from accel.hw import synth

    chosen, part = synth.check_request(target, None, pnr)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="finn-sfc-") as tmp:
        try:
            report = synth.run_flow(design, chosen, part, pnr=pnr, freq_mhz=clock_mhz,
                                    work=Path(tmp))
        except ToolchainError as error:
            print(f"{label}: {error} ({time.monotonic() - start:.0f} s)")
            return None
    if out:
        (out / f"synth-{label}.json").write_text(json.dumps(report, indent=1))
    print(f"{label}: {json.dumps(report['resources'])} ({time.monotonic() - start:.0f} s)")
    return report


if __name__ == "__main__":
    main()

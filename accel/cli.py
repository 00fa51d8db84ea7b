"""The ``accel`` command line: thin; it parses, calls the library and prints.

Every ``AccelError`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from accel import __version__
from accel.errors import AccelError, ConfigError


def _doctor(args, console) -> int:
    from accel.doctor import doctor

    doctor(console)
    return 0


def _eval(args, console) -> int:
    from rich.table import Table

    from accel.io import write_json
    from accel.nn import load
    from accel.nn.evaluate import evaluate, load_data
    from accel.nn.qonnx_io import read_model

    network = load(args.model)
    inputs, labels, source = load_data(args.data, args.labels, network)
    reference = read_model(args.model) if args.check_qonnx else None
    result = evaluate(network, inputs, labels, qonnx_model=reference)
    result["model"] = args.model
    table = Table(title=f"accel eval: {args.model} on {source}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("images", str(result["images"]))
    if result["accuracy"] is not None:
        table.add_row("accuracy (golden model)", f"{100 * result['accuracy']:.2f} %")
    if args.check_qonnx:
        regime = "exact" if result["qonnx_exact_regime"] else "float32 tolerance"
        table.add_row(f"qonnx agrees ({regime})", "yes" if result["qonnx_agree"] else "NO")
        table.add_row("qonnx predictions equal",
                      f"{result['qonnx_predictions_agree']} / {result['images']}")
    console.print(table)
    if args.json:
        write_json(args.json, result)
    return 0 if result.get("qonnx_agree", True) else 1


def _compress(args, console) -> int:
    from accel.compress.network import compress_network, network_compression_report
    from accel.compress.report import format_report
    from accel.nn import golden, load, save
    from accel.nn.data import digits_split
    from accel.nn.evaluate import network_inputs

    network = load(args.model)
    split = digits_split()
    if not args.report_only:
        calibration = network_inputs(network, split.x_train, "digits train split")
        network = compress_network(network, calibration, sparsity=args.sparsity,
                                   weight_bits=args.weight_bits,
                                   activation_bits=args.activation_bits, seed=args.seed)
    report = network_compression_report(network, index_bits=args.index_bits)
    console.print(format_report(report), markup=False, highlight=False, soft_wrap=True)
    test = network_inputs(network, split.x_test, "digits test split")
    accuracy = float((golden.predict(network, test) == split.y_test).mean())
    console.print(f"accuracy on the digits test split (golden model): {100 * accuracy:.2f} %")
    if args.output:
        network.metadata["accuracy"] = f"{accuracy:.6f}"
        save(network, args.output)
        console.print(f"wrote {args.output}")
    return 0


def _train(args, console) -> int:
    from accel.train import train_command

    console.print(train_command(args.name, args.seed, args.output), markup=False)
    return 0


DEFAULT_CLOCK_MHZ = 200.0


def _check_positive(option: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{option} must be positive, got {value}")


def _configure(args):
    from accel.hw.registry import architecture
    from accel.nn import load

    arch = architecture(args.arch)
    network = load(args.model)
    return arch, network, arch.configure(network, folding=args.folding,
                                         target_fps=args.target_fps,
                                         clock_mhz=args.clock_mhz, pes=args.pes,
                                         queue_depth=args.queue_depth,
                                         sparse_word_bits=args.sparse_word_bits,
                                         count_events=not getattr(args, "no_counters", False))


def _generate(args, console) -> int:
    from pathlib import Path

    arch, _, mapping = _configure(args)
    for path in arch.generate(mapping, Path(args.output)):
        console.print(f"wrote {path}")
    return 0


def _simulate(args, console) -> int:
    from rich.table import Table

    from accel.energy.tech import load_technology
    from accel.io import write_json
    from accel.nn.evaluate import load_data

    # bad options fail before the simulation, not after it
    _check_positive("--images", args.images)
    if args.on_chip_kib is not None and args.on_chip_kib < 0:
        raise ConfigError(f"--on-chip-kib must be non-negative, got {args.on_chip_kib:g}")
    tech = load_technology(args.tech)
    arch, network, mapping = _configure(args)
    inputs, labels, source = load_data(args.data, args.labels, network)
    if args.images is not None:
        inputs = inputs[:args.images]
        labels = labels[:args.images] if labels is not None else None
    with console.status(f"simulating {len(inputs)} images of {args.model} on {args.arch} "
                        "in Verilator (building the design if it is new)..."):
        result = arch.simulate(mapping, network, inputs, labels, model=args.model,
                               clock_mhz=args.clock_mhz, tech=tech,
                               on_chip_bytes=None if args.on_chip_kib is None
                               else 1024 * args.on_chip_kib)
    table = Table(title=f"accel simulate --arch {args.arch} {args.model} on {source}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [("images", f"{result.images}"),
            ("accuracy", "-" if result.accuracy is None else f"{100 * result.accuracy:.2f} %"),
            ("bit-exact with the golden model", "yes" if result.bit_exact else "NO"),
            ("cycles per inference (RTL)", f"{result.cycles_per_inference:.1f}"),
            ("cycles per inference (cycle model)", f"{result.model_cycles_per_inference:.1f}"),
            ("events equal to the cycle model", "yes" if result.model_events_equal else "NO"),
            ("latency", f"{result.latency_cycles} cycles = {result.latency_us:.2f} us"),
            ("throughput", f"{result.throughput_fps:,.0f} inferences/s at "
                           f"{result.clock_mhz:g} MHz")]
    if "load_balance_efficiency" in result.extra:
        rows.append(("load-balance efficiency", f"{result.extra['load_balance_efficiency']:.3f}"))
    if "energy_uj_per_inference" in result.extra:
        extra = result.extra
        rows.append(("energy per inference (RTL counts)",
                     f"{1e3 * extra['energy_uj_per_inference']:.3f} nJ ({extra['tech']}; "
                     f"cycle model {1e3 * extra['model_energy_uj_per_inference']:.3f} nJ)"))
        rows.append(("average power", f"{extra['average_power_mw']:.2f} mW"))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    events = Table(title="events per inference (RTL counters)")
    events.add_column("event")
    events.add_column("count", justify="right")
    for name, count in result.events.items():
        events.add_row(name, f"{count:,.1f}")
    console.print(events)
    if args.json:
        write_json(args.json, result.to_json())
    agree = result.bit_exact and result.model_events_equal and \
        result.cycles_per_inference == result.model_cycles_per_inference
    return 0 if agree else 1


def _energy(args, console) -> int:
    from rich.table import Table

    from accel.energy.model import GROUPS
    from accel.energy.report import energy_rows, load_result, stacked_bar_chart

    results = [load_result(path) for path in args.results]
    table = Table(title="energy per inference (nJ), from the RTL's event counts")
    table.add_column("run")
    for group in GROUPS:
        table.add_column(group, justify="right")
    for column in ("total nJ", "time us", "power mW", "pJ/MAC"):
        table.add_column(column, justify="right")
    for row in energy_rows(results):
        mac = "-" if row["pj_per_mac"] is None else f"{row['pj_per_mac']:.2f}"
        table.add_row(row["label"], *(f"{row[group]:.3f}" for group in GROUPS),
                      f"{row['total_nj']:.3f}", f"{row['time_us']:.2f}",
                      f"{row['power_mw']:.2f}", mac)
    console.print(table)
    for key, title in (("energy_by_component_uj", "by component (memory instance, operator)"),
                       ("energy_by_layer_uj", "by layer / stage")):
        detail = Table(title=f"energy per inference {title}, nJ")
        detail.add_column("")
        for row in energy_rows(results):
            detail.add_column(row["label"], justify="right")
        names = sorted({name for result in results for name in result.get(key, {})})
        for name in names:
            detail.add_row(name, *("-" if name not in result.get(key, {}) else
                                   f"{1e3 * result[key][name]:.3f}" for result in results))
        if names:
            console.print(detail)
    for path in stacked_bar_chart(results, args.chart):
        console.print(f"wrote {path}")
    return 0


def _demo(args, console) -> int:
    from pathlib import Path

    from rich.table import Table

    from accel.demo import agrees, run_demo

    _check_positive("--images", args.images)
    with console.status("accel demo") as status:
        results = run_demo(args.images, Path(args.out) if args.out else None,
                           progress=status.update)
    table = Table(title="accel demo: shipped models on the digits test split, in Verilator "
                        f"at {results[0][1].clock_mhz:g} MHz ({results[0][1].extra['tech']})")
    for column in ("model", "architecture", "images", "accuracy", "bit-exact",
                   "cycles/inference", "= cycle model", "latency us", "inferences/s",
                   "energy nJ/inf.", "power mW"):
        table.add_column(column, justify="left" if column in ("model", "architecture")
                         else "right")
    for label, result in results:
        extra = result.extra
        table.add_row(result.model, f"{result.arch} ({label})", str(result.images),
                      f"{100 * result.accuracy:.2f} %", "yes" if result.bit_exact else "NO",
                      f"{result.cycles_per_inference:,.1f}",
                      "yes" if agrees(result) else "NO", f"{result.latency_us:.2f}",
                      f"{result.throughput_fps:,.0f}",
                      f"{1e3 * extra['energy_uj_per_inference']:.2f}",
                      f"{extra['average_power_mw']:.2f}")
    console.print(table)
    console.print("bit-exact: every output equals the golden model's; = cycle model: RTL cycles, "
                  "every event count and the energy equal the Python cycle model's. FINN "
                  "overlaps frames (cycles/inference is the initiation interval); EIE runs one "
                  "image at a time.")
    if args.out:
        console.print(f"wrote the results and energy.png/.svg to {args.out}")
    return 0 if all(agrees(result) for _, result in results) else 1


def _add_hardware_arguments(parser) -> None:
    parser.add_argument("model", help="a shipped model's name or an ONNX/QONNX file")
    parser.add_argument("--arch", required=True, help="architecture: finn or eie")
    parser.add_argument("--folding", help="FINN: JSON/YAML file {layer: {pe: P, simd: S}}")
    parser.add_argument("--target-fps", type=float,
                        help="FINN: pick the cheapest folding that meets this frame rate")
    parser.add_argument("--pes", type=int, help="EIE: processing elements (default 4)")
    parser.add_argument("--queue-depth", type=int,
                        help="EIE: activation queue depth per PE (default 8)")
    parser.add_argument("--sparse-word-bits", type=int,
                        help="EIE: sparse-matrix SRAM word width, 16 to 512 (default 64)")
    parser.add_argument("--clock-mhz", type=float, default=DEFAULT_CLOCK_MHZ,
                        help=f"clock for times, rates and --target-fps (default "
                             f"{DEFAULT_CLOCK_MHZ:g})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accel", description="Compressed and binarized neural networks to RTL, "
                                  "cycle-accurate simulation and energy.")
    parser.add_argument("--version", action="version", version=f"accel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor = commands.add_parser("doctor", help="check the toolchain end to end")
    doctor.set_defaults(handler=_doctor)

    demo = commands.add_parser(
        "demo", help="the shipped models through both architectures in Verilator: accuracy, "
                     "bit-exactness, cycles, latency and energy in one table")
    demo.add_argument("--images", type=int, help="only the first N test images (default all)")
    demo.add_argument("--out", help="directory for each run's JSON and the energy chart")
    demo.set_defaults(handler=_demo)

    evaluate = commands.add_parser("eval", help="accuracy of a model by the golden model")
    evaluate.add_argument("model", help="a shipped model's name or an ONNX/QONNX file")
    evaluate.add_argument("--data", help=".npy of inputs (default: the digits test split)")
    evaluate.add_argument("--labels", help=".npy of integer labels for --data")
    evaluate.add_argument("--json", help="write the result as JSON to this file")
    evaluate.add_argument("--check-qonnx", action="store_true",
                          help="also run qonnx's executor and report whether outputs agree")
    evaluate.set_defaults(handler=_eval)

    compress = commands.add_parser(
        "compress", help="prune and share the weights of a float model (Deep Compression, "
                         "no retraining) and print the size report")
    compress.add_argument("model", help="a shipped model's name or an ONNX/QONNX file")
    compress.add_argument("-o", "--output", help="write the compressed QONNX file here")
    compress.add_argument("--sparsity", type=float, default=0.9)
    compress.add_argument("--weight-bits", type=int, default=4, help="codebook index bits")
    compress.add_argument("--activation-bits", type=int, default=16)
    compress.add_argument("--index-bits", type=int, default=4, help="relative row index bits")
    compress.add_argument("--seed", type=int, default=0)
    compress.add_argument("--report-only", action="store_true",
                          help="report on an already compressed model without changing it")
    compress.set_defaults(handler=_compress)

    train = commands.add_parser("train", help="retrain a reference model (needs torch)")
    train.add_argument("name", help="mlp, mlp-sparse, bnn-mlp, bnn-cnv or bwn-cnn")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("-o", "--output", help="directory for NAME.onnx (default: here)")
    train.set_defaults(handler=_train)

    generate = commands.add_parser("generate", help="write Verilog and a manifest")
    _add_hardware_arguments(generate)
    generate.add_argument("-o", "--output", required=True, help="output directory")
    generate.add_argument("--no-counters", action="store_true",
                          help="leave the event counters out (smaller FPGA builds)")
    generate.set_defaults(handler=_generate)

    simulate = commands.add_parser("simulate", help="run a model on its hardware in Verilator")
    _add_hardware_arguments(simulate)
    simulate.add_argument("--images", type=int, help="only the first N images")
    simulate.add_argument("--data", help=".npy of inputs (default: the digits test split)")
    simulate.add_argument("--labels", help=".npy of integer labels for --data")
    simulate.add_argument("--json", help="write the result (the documented contract) here")
    simulate.add_argument("--tech", default="45nm",
                          help="technology table: a shipped name or a YAML file (default 45nm)")
    simulate.add_argument("--on-chip-kib", type=float,
                          help="on-chip SRAM budget; memories beyond it are priced as DRAM "
                               "traffic (default: everything on chip)")
    simulate.set_defaults(handler=_simulate)

    energy = commands.add_parser(
        "energy", help="compare energy per inference of simulation results (table and chart)")
    energy.add_argument("results", nargs="+", help="`accel simulate --json` files")
    energy.add_argument("--chart", default="energy",
                        help="write the stacked-bar chart to CHART.png and CHART.svg "
                             "(default: energy)")
    energy.set_defaults(handler=_energy)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    console = Console()
    try:
        return args.handler(args, console)
    except AccelError as exc:
        print(f"accel: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("accel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

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

    from accel.io import check_output_file, write_json
    from accel.nn import load
    from accel.nn.evaluate import evaluate, load_data
    from accel.nn.qonnx_io import read_model

    if args.json:
        check_output_file(args.json, "--json")
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
    from accel.io import check_output_file
    from accel.nn import golden, load, save
    from accel.nn.data import digits_split
    from accel.nn.evaluate import load_data, network_inputs

    if args.output:
        check_output_file(args.output, "-o")
    network = load(args.model)
    if args.data is None:  # calibrate on the training split, measure on the test split
        split = digits_split()
        if args.labels is not None:
            raise ConfigError("--labels needs --data")
        calibration = network_inputs(network, split.x_train, "digits train split")
        test, labels, source = split.x_test, split.y_test, "the digits test split"
    else:  # calibrate on --data, measure on it with --labels
        calibration, labels, source = load_data(args.data, args.labels, network)
        test = calibration
    if not args.report_only:
        network = compress_network(network, calibration, sparsity=args.sparsity,
                                   weight_bits=args.weight_bits,
                                   activation_bits=args.activation_bits, seed=args.seed)
    report = network_compression_report(network, index_bits=args.index_bits)
    console.print(format_report(report), markup=False, highlight=False, soft_wrap=True)
    accuracy = None
    if labels is not None:
        test = network_inputs(network, test, source)
        accuracy = float((golden.predict(network, test) == labels).mean())
        console.print(f"accuracy on {source} (golden model): {100 * accuracy:.2f} %",
                      markup=False, highlight=False, soft_wrap=True)
    if args.output:
        if accuracy is None:
            network.metadata.pop("accuracy", None)  # the input model's no longer holds
        else:
            network.metadata["accuracy"] = f"{accuracy:.6f}"
        save(network, args.output)
        console.print(f"wrote {args.output}")
    return 0


def _train(args, console) -> int:
    from accel.io import check_output_directory
    from accel.train import train_command

    check_output_directory(args.output or ".", "-o")
    console.print(train_command(args.name, args.seed, args.output), markup=False)
    return 0


DEFAULT_CLOCK_MHZ = 200.0
HARDWARE_COMMANDS = ("generate", "simulate", "estimate")


def _check_positive(option: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{option} must be positive, got {value}")


def _on_chip_bytes(kib: float | None) -> float | None:
    import math

    if kib is not None and not (math.isfinite(kib) and kib >= 0):
        raise ConfigError(f"--on-chip-kib must be a non-negative finite number, got {kib:g}")
    return None if kib is None else 1024 * kib


def _configure(args):
    from accel.hw.architecture import check_clock, check_design_size, options_from_args
    from accel.hw.registry import architecture
    from accel.nn import load

    arch = architecture(args.arch)
    options = options_from_args(arch.Options, args)
    clock_mhz = _configuration_clock(args)
    check_clock(clock_mhz)
    network = load(args.model)
    mapping = arch.configure(network, options, clock_mhz=clock_mhz,
                             count_events=not getattr(args, "no_counters", False))
    # a design over budget is refused here, before anything is elaborated or simulated
    check_design_size(arch, mapping, "generate" if args.command == "synth" else args.command,
                      allow_large=args.allow_large_design)
    return arch, network, mapping


def _clock_value(text: str):
    """``--clock-mhz``: a number of MHz, or ``synth`` (simulate and estimate: the measured
    post-place-and-route Fmax)."""
    if text.strip().lower() == "synth":
        return "synth"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MHz or 'synth': {text!r}") from None


def _configuration_clock(args) -> float:
    """The clock the configuration is chosen at (--target-fps folds for it): --clock-mhz, or
    the default with --clock-mhz synth (the measured Fmax only replaces it for times and
    rates)."""
    if args.clock_mhz == "synth":
        if args.command not in ("simulate", "estimate"):
            raise ConfigError(f"--clock-mhz synth is for accel simulate and estimate, not "
                              f"{args.command} (give a number of MHz)")
        return DEFAULT_CLOCK_MHZ
    if getattr(args, "synth_report", None):
        raise ConfigError("--synth-report needs --clock-mhz synth")
    return args.clock_mhz


def _measured_clock(args, arch, console):
    """--clock-mhz synth: the post-PnR Fmax of this configuration without counters (as FPGA
    builds are), from --synth-report or the synth cache, or measured now on ECP5."""
    from accel.hw.architecture import options_from_args
    from accel.hw.synth import measured_clock
    from accel.nn import load

    options = options_from_args(arch.Options, args)
    mapping = arch.configure(load(args.model), options, clock_mhz=DEFAULT_CLOCK_MHZ,
                             count_events=False)
    with console.status("--clock-mhz synth: the design's measured Fmax") as status:
        return measured_clock(arch, mapping, report_path=args.synth_report,
                              allow_large=args.allow_large_design, progress=status.update)


def _synth(args, console) -> int:
    from pathlib import Path

    from rich.table import Table

    from accel.hw.architecture import options_from_args
    from accel.hw.synth import check_request, configuration_record, describe, output_file, \
        synthesize
    from accel.io import check_output_directory

    check_request(args.target, args.part, args.pnr, args.seed)
    arch, _, mapping = _configure(args)  # options and size first, then the output directory
    check_output_directory(args.output, "-o", owned=output_file)
    record = configuration_record(args.model, args.arch, options_from_args(arch.Options, args))
    with console.status("accel synth") as status:
        report = synthesize(arch, mapping, Path(args.output), target_name=args.target,
                            part=args.part, pnr=args.pnr, freq_mhz=args.clock_mhz,
                            configuration=record, allow_large=args.allow_large_design,
                            progress=status.update, floorplan=not args.no_floorplan,
                            **({} if args.seed is None else {"seed": args.seed}))
    table = Table(title=f"accel synth --arch {args.arch} {args.model} --target {args.target}"
                        + (" --pnr" if args.pnr else "")
                        + ("" if args.seed is None else f" --seed {args.seed}")
                        + (" --no-floorplan" if args.no_floorplan else "")
                        + " (no event counters)")
    table.add_column("")
    table.add_column("", overflow="fold")
    for row in describe(report):
        table.add_row(*row)
    console.print(table)
    console.print(f"wrote {args.output} (synth.json, the Verilog and its manifest, logs)",
                  markup=False, highlight=False, soft_wrap=True)
    return 0


def _generate(args, console) -> int:
    from pathlib import Path

    from accel.hw.architecture import generated_file
    from accel.io import check_output_directory

    arch, _, mapping = _configure(args)  # options and size first, then the output directory
    check_output_directory(args.output, "-o", owned=generated_file)
    for path in arch.generate(mapping, Path(args.output),
                              allow_large=args.allow_large_design):
        console.print(f"wrote {path}")
    return 0


def _evaluate(args, console, path: str) -> int:
    """``accel simulate`` (path "verilator") and ``accel estimate`` (path "cycle model")."""
    from rich.table import Table

    from accel.energy.tech import load_technology
    from accel.hw import evaluate
    from accel.io import check_output_file, write_json
    from accel.nn.evaluate import load_data

    # bad options and output paths fail before the simulation, not after it
    _check_positive("--images", args.images)
    on_chip_bytes = _on_chip_bytes(args.on_chip_kib)
    if args.json:
        check_output_file(args.json, "--json")
    tech = load_technology(args.tech)
    arch, network, mapping = _configure(args)
    inputs, labels, source = load_data(args.data, args.labels, network)
    clock_mhz, clock_source = args.clock_mhz, "--clock-mhz"
    if args.clock_mhz == "synth":
        measured = _measured_clock(args, arch, console)
        clock_mhz, clock_source = measured.mhz, measured.source
    if args.images is not None:
        inputs = inputs[:args.images]
        labels = labels[:args.images] if labels is not None else None
    run = evaluate.simulate if path == "verilator" else evaluate.estimate
    status = (f"simulating {len(inputs)} images of {args.model} on {args.arch} in Verilator "
              "(building the design if it is new)..." if path == "verilator" else
              f"estimating {len(inputs)} images of {args.model} on {args.arch}...")
    with console.status(status):
        result = run(arch, mapping, network, inputs, labels, model=args.model,
                     clock_mhz=clock_mhz, tech=tech, on_chip_bytes=on_chip_bytes,
                     allow_large=args.allow_large_design)
    data = result.to_json()
    if args.clock_mhz == "synth":
        data["clock_source"] = clock_source
    table = Table(title=f"accel {args.command} --arch {args.arch} {args.model} on {source}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    checked = path == "verilator"
    rows = [("images", f"{result.images}"),
            ("accuracy", "-" if result.accuracy is None else f"{100 * result.accuracy:.2f} %"),
            ("bit-exact with the golden model",
             ("yes" if result.bit_exact else "NO") if checked else "not checked (no RTL run)"),
            (f"cycles per inference ({'RTL' if checked else 'cycle model'})",
             f"{result.cycles_per_inference:.1f}")]
    if checked:
        rows += [("cycles per inference (cycle model)",
                  f"{result.model_cycles_per_inference:.1f}"),
                 ("events equal to the cycle model",
                  "yes" if result.model_events_equal else "NO")]
    rows += [("latency", f"{result.latency_cycles} cycles = {result.latency_us:.2f} us"),
             ("throughput", f"{result.throughput_fps:,.0f} inferences/s at "
                            f"{result.clock_mhz:g} MHz"
                            + ("" if args.clock_mhz != "synth" else f" ({clock_source})")),
             *arch.summary_rows(data),
             *_resource_rows(data),
             (f"energy per inference ({'RTL counts' if checked else 'cycle model'})",
              f"{1e3 * data['energy_uj_per_inference']:.3f} nJ ({data['tech']})"),
             ("average power", f"{data['average_power_mw']:.2f} mW")]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    events = Table(title=f"events per inference ({'RTL counters' if checked else 'cycle model'})")
    events.add_column("event")
    events.add_column("count", justify="right")
    for name, count in result.events.items():
        events.add_row(name, f"{count:,.1f}")
    console.print(events)
    if args.json:
        write_json(args.json, data)
    return 0 if result.agrees in (True, None) else 1


def _resource_rows(data: dict) -> list[tuple[str, str]]:
    found = data.get("resources_ecp5")
    if not found:
        return []
    t = found["total"]
    return [("FPGA resources (resource model, ECP5, no counters)",
             f"{t['lut']:,} LUT4, {t['ff']:,} FF, {t['lutram']:,} DPR16X4, {t['bram']:,} DP16KD")]


def _simulate(args, console) -> int:
    if args.point is not None:
        return _replay_point(args, console)
    return _evaluate(args, console, "verilator")


def _replay_point(args, console) -> int:
    from rich.table import Table

    from accel.explore.sweep import replay_stored_point

    given = [flag for flag, value in (("--arch", args.arch), ("--images", args.images),
                                      ("--data", args.data), ("--labels", args.labels),
                                      ("--json", args.json), ("--on-chip-kib", args.on_chip_kib),
                                      ("--synth-report", getattr(args, "synth_report", None)))
             if value is not None]
    given += [flag for flag, changed in (("--clock-mhz", args.clock_mhz != DEFAULT_CLOCK_MHZ),
                                         ("--tech", args.tech != "45nm"),
                                         ("--allow-large-design", args.allow_large_design))
              if changed]
    if given:
        raise ConfigError(f"--point replays the stored point as it was computed: leave out "
                          f"{', '.join(given)}")
    with console.status(f"replaying {args.point} in Verilator (building the design if it is "
                        "new)..."):
        outcome = replay_stored_point(args.point, args.model)
    table = Table(title=f"accel simulate --point {args.point}: {outcome['label']}")
    table.add_column("check")
    table.add_column("result", justify="right")
    table.add_row("bit-exact with the golden model", "yes" if outcome["bit_exact"] else "NO")
    table.add_row("RTL cycles and events equal to the cycle model",
                  "yes" if outcome["agrees"] else "NO")
    table.add_row("RTL figures equal to the stored estimate",
                  "yes" if outcome["equal"] else "NO: " + ", ".join(outcome["differ"]))
    table.add_row("Verilator run", f"{outcome['seconds']:.1f} s")
    console.print(table)
    return 0 if outcome["bit_exact"] and outcome["agrees"] and outcome["equal"] else 1


def _estimate(args, console) -> int:
    return _evaluate(args, console, "cycle model")


def _energy(args, console) -> int:
    from rich.table import Table

    from accel.energy.model import GROUPS, reprice
    from accel.energy.report import chart_paths, energy_rows, load_result, stacked_bar_chart
    from accel.energy.tech import load_technology
    from accel.io import check_output_file

    chart_paths(args.chart)  # outputs checked before anything is read or drawn
    if args.json:
        check_output_file(args.json, "--json")
    budget = _on_chip_bytes(args.on_chip_kib)
    results = [load_result(path) for path in args.results]
    if args.tech is not None or args.on_chip_kib is not None:
        tech = load_technology(args.tech or "45nm")
        results = [reprice(result, tech, budget) for result in results]
    rows = energy_rows(results)
    # one column per run, like the tables below: readable at 80 columns for a few runs
    table = Table(title="energy per inference (nJ), from each run's event counts"
                        + (" (re-priced)" if args.tech or args.on_chip_kib is not None else ""))
    table.add_column("")
    for row in rows:
        table.add_column(f"{row['label']} [{row['tech']}]", justify="right")
    for group in GROUPS:
        table.add_row(group, *(f"{row[group]:.3f}" for row in rows))
    table.add_row("total nJ", *(f"{row['total_nj']:.3f}" for row in rows))
    table.add_row("time us", *(f"{row['time_us']:.2f}" for row in rows))
    table.add_row("power mW", *(f"{row['power_mw']:.2f}" for row in rows))
    table.add_row("pJ/MAC", *("-" if row["pj_per_mac"] is None else f"{row['pj_per_mac']:.2f}"
                              for row in rows))
    console.print(table)
    for key, title in (("energy_by_component_uj", "by component (memory instance, operator)"),
                       ("energy_by_layer_uj", "by layer / stage")):
        detail = Table(title=f"energy per inference {title}, nJ")
        detail.add_column("")
        for row in rows:
            detail.add_column(row["label"], justify="right")
        names = sorted({name for result in results for name in result.get(key, {})})
        for name in names:
            detail.add_row(name, *("-" if name not in result.get(key, {}) else
                                   f"{1e3 * result[key][name]:.3f}" for result in results))
        if names:
            console.print(detail)
    for path in stacked_bar_chart(results, args.chart):
        console.print(f"wrote {path}")
    if args.json:
        from accel.io import write_json

        write_json(args.json, results)
    return 0


def _demo(args, console) -> int:
    from pathlib import Path

    from rich.table import Table

    from accel.demo import run_demo
    from accel.io import check_output_directory

    _check_positive("--images", args.images)
    if args.out:
        check_output_directory(args.out, "--out")
    with console.status("accel demo") as status:
        results = run_demo(args.images, Path(args.out) if args.out else None,
                           progress=status.update)
    first = results[0][1]
    # short headers: the table stays readable at 80 columns; the caption says what they mean
    table = Table(title=f"accel demo: shipped models on the digits test split, Verilator, "
                        f"{first.clock_mhz:g} MHz, {first.extra['tech']}",
                  caption="exact: outputs equal the golden model's; =model: RTL cycles, events "
                          "and energy equal the cycle model's; cycles: per inference (FINN "
                          "overlaps frames: its initiation interval; EIE runs one image at a "
                          "time); lat.: latency of one image")
    for column in ("model, architecture", "acc. %", "exact", "=model", "cycles", "lat. us",
                   "nJ/inf.", "mW"):
        table.add_column(column, justify="left" if column.startswith("model") else "right")
    for label, result in results:
        table.add_row(f"{result.model}\n{result.arch}, {label}", f"{100 * result.accuracy:.2f}",
                      "yes" if result.bit_exact else "NO", "yes" if result.agrees else "NO",
                      f"{result.cycles_per_inference:,.1f}", f"{result.latency_us:.2f}",
                      f"{1e3 * result.extra['energy_uj_per_inference']:.2f}",
                      f"{result.extra['average_power_mw']:.2f}")
    console.print(table)
    if args.out:
        console.print(f"wrote the results and energy.png/.svg to {args.out}")
    return 0 if all(result.agrees for _, result in results) else 1


def _prune(args, console) -> int:
    import dataclasses

    from accel.energy.tech import load_technology
    from accel.explore.prune import (CRITERIA, FOLDS, PruneData, Target, check_prunable,
                                     prune, report_tables)
    from accel.hw.architecture import check_clock, options_from_args
    from accel.hw.registry import architecture
    from accel.io import check_output_file, write_json
    from accel.nn import load, save
    from accel.nn.evaluate import load_data

    if args.energy_aware and args.criterion not in (None, "energy"):
        raise ConfigError(f"--energy-aware and --criterion {args.criterion} contradict each "
                          "other")
    criterion = args.criterion or "energy"
    check_output_file(args.output, "-o")
    if args.report:
        check_output_file(args.report, "--report")
    check_clock(args.clock_mhz)
    tech = load_technology(args.tech)
    arch = architecture(args.arch)
    options = options_from_args(arch.Options, args)
    network = load(args.model)
    check_prunable(network)
    folds = FOLDS if args.folds is None else args.folds
    if args.data is not None:
        if args.labels is None:
            raise ConfigError("--data needs --labels: pruning decisions are taken on accuracy")
        x, y, source = load_data(args.data, args.labels, network)
        data = PruneData.from_arrays(x, y, source, folds)
    elif args.labels is not None:
        raise ConfigError("--labels needs --data")
    else:
        data = PruneData.digits(folds)
    target = Target(args.arch, options, clock_mhz=args.clock_mhz, tech=tech)
    criteria = [criterion] + ([c for c in CRITERIA if c != criterion] if args.compare else [])
    results = []
    for name in criteria:
        with console.status(f"pruning {args.model} for {args.arch} ({name})...") as status:
            results.append(prune(network, target, criterion=name,
                                 max_accuracy_drop=args.max_accuracy_drop, data=data,
                                 seed=args.seed, finetune=not args.no_finetune,
                                 progress=lambda text: status.update(text)))
    for table in report_tables([report for _, report in results]):
        console.print(table)
    console.print(f"wrote {save(results[0][0], args.output)}")
    if args.report:
        write_json(args.report, {"model": args.model, "options": dataclasses.asdict(options),
                                 "reports": [report.to_json() for _, report in results]})
        console.print(f"wrote {args.report}")
    missed = [report for _, report in results if not report.budget_met]
    for report in missed:
        print(f"accel: {report.criterion}: the network lost {report.validation_drop_points:.2f} "
              f"points in cross-validation, over the {report.budget_points:g}-point budget "
              "even with no pruning left to undo (fine-tuning and sharing alone cost that)",
              file=sys.stderr)
    return 1 if missed else 0


def _explore(args, console) -> int:
    from accel.explore import run_sweep
    from accel.explore.sweep import print_outcome, verification_failed

    outcome = run_sweep(args.spec, store=args.store, scheduler=args.scheduler,
                        workers=args.workers, out_dir=args.out, console=console,
                        verify=args.verify)
    print_outcome(outcome, console)
    return 1 if outcome.task_failures or verification_failed(outcome) else 0


def _cache(args, console) -> int:
    """``accel cache [show]`` and ``accel cache clear [--older-than DAYS]``."""
    import time

    from rich.table import Table

    from accel.sim import cache

    if args.cache_command == "clear":
        if args.older_than is not None and not args.older_than >= 0:
            raise ConfigError(f"--older-than must be a non-negative number of days, "
                              f"got {args.older_than:g}")
        builds = cache.builds_dir(create=False)
        cleared = cache.clear(builds, args.older_than)
        freed = sum(entry.size for entry in cleared.removed) + cleared.other_bytes
        console.print(f"removed {len(cleared.removed)} build{'s' * (len(cleared.removed) != 1)}"
                      + (f" last used over {args.older_than:g} days ago"
                         if args.older_than is not None else "")
                      + (f" and {cleared.temporaries} stale temporar"
                         f"{'ies' if cleared.temporaries != 1 else 'y'}"
                         if cleared.temporaries else "")
                      + f" ({freed / 1e6:.1f} MB) from {builds}"
                      + (f"; kept {len(cleared.in_use)} in use by another accel process"
                         if cleared.in_use else ""), markup=False, highlight=False,
                      soft_wrap=True)
        return 0
    builds = cache.builds_dir(create=False)
    cap = cache.max_bytes()
    info = cache.status(builds)
    cap_text = "no cap" if cap == float("inf") else f"a cap of {cap / 1e9:g} GB"
    console.print(f"build cache {builds} (${cache.CACHE_ENV})", markup=False, highlight=False,
                  soft_wrap=True)
    console.print(f"{len(info.entries)} build{'s' * (len(info.entries) != 1)}, "
                  f"{info.total / 1e6:.1f} MB in all, {cap_text} (${cache.MAX_SIZE_ENV})"
                  + ("; over the cap: the least recently used are removed after the next "
                     "build" if info.total > cap else "")
                  + (f"; {len(info.building)} build(s) in progress" if info.building else "")
                  + (f"; {len(info.stale)} stale temporar"
                     f"{'ies' if len(info.stale) != 1 else 'y'} (removed at the next use)"
                     if info.stale else ""), markup=False, highlight=False,
                  soft_wrap=True)
    if info.entries:
        table = Table(title="builds, most recently used first",
                      caption="no manifest, damaged: rebuilt at the next use; in use: being "
                              "built, run or removed by an accel process")
        table.add_column("key", no_wrap=True)
        table.add_column("top-level", overflow="fold")
        table.add_column("MB", justify="right")
        table.add_column("last used", justify="right")
        table.add_column("state")
        now = time.time()
        for entry, state in info.entries:
            age = max(0.0, now - entry.last_used)
            ago = next(f"{age / scale:.0f} {unit} ago" for scale, unit in
                       ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")) if age >= scale or
                       scale == 1)
            table.add_row(entry.key, entry.toplevel or "?", f"{entry.size / 1e6:.1f}", ago,
                          state)
        console.print(table)
    return 0


def _add_hardware_arguments(parser, arch_name: str | None, *, replay: bool = False) -> None:
    """MODEL, --arch and its options; ``replay`` (``simulate --point``): the stored point
    brings them, MODEL may name its file."""
    from accel.hw.architecture import add_options
    from accel.hw.registry import ARCHITECTURES

    parser.add_argument("model", nargs="?" if replay else None,
                        help="a shipped model's name or an ONNX/QONNX file")
    parser.add_argument("--arch", required=not replay, choices=sorted(ARCHITECTURES),
                        help="the architecture; `--arch NAME --help` lists NAME's options")
    parser.add_argument("--clock-mhz", type=_clock_value, default=DEFAULT_CLOCK_MHZ,
                        help=f"clock for times, rates and frame-rate targets (default "
                             f"{DEFAULT_CLOCK_MHZ:g})"
                             + ("; 'synth': the design's post-place-and-route Fmax on ECP5 "
                                "LFE5UM5G-85F without event counters, from --synth-report or "
                                "accel's cache, else measured now with yosys and nextpnr "
                                "(needs accel[fpga]; minutes, once); the configuration "
                                "(--target-fps) is still chosen at "
                                f"{DEFAULT_CLOCK_MHZ:g} MHz"
                                if parser.prog.split()[-1] in ("simulate", "estimate") else "")
                             + ("; also nextpnr's target frequency (--freq)"
                                if parser.prog.split()[-1] == "synth" else ""))
    parser.add_argument("--allow-large-design", action="store_true",
                        help="go ahead with a design over the size budget (README: design "
                             "size budget); Amaranth's 65,536-bit signal limit still holds")
    if arch_name in ARCHITECTURES:
        arch = ARCHITECTURES[arch_name]
        add_options(parser, arch.Options, f"{arch_name} options ({arch.title})")


def _add_evaluation_arguments(parser) -> None:
    parser.add_argument("--images", type=int, help="only the first N images")
    parser.add_argument("--data", help=".npy of inputs (default: the digits test split)")
    parser.add_argument("--labels", help=".npy of integer labels for --data")
    parser.add_argument("--json", help="write the result (the documented contract) here")
    parser.add_argument("--tech", default="45nm",
                        help="technology table: a shipped name or a YAML file (default 45nm)")
    parser.add_argument("--on-chip-kib", type=float,
                        help="on-chip SRAM budget; memories beyond it are priced as DRAM "
                             "traffic (default: everything on chip)")
    parser.add_argument("--synth-report", metavar="FILE",
                        help="with --clock-mhz synth: take the Fmax from this accel synth "
                             "--pnr report (synth.json or its directory) of the same design, "
                             "any target or part")


def _misplaced_options(extra: list[str], arch_name: str | None) -> str | None:
    """A message for flags that belong to another architecture than the one asked for."""
    from accel.hw.architecture import option_flags
    from accel.hw.registry import ARCHITECTURES

    for word in extra:
        flag = word.split("=", 1)[0]
        owners = [name for name, arch in ARCHITECTURES.items()
                  if flag in option_flags(arch.Options).values()]
        if owners and arch_name not in owners:
            if arch_name not in ARCHITECTURES:
                return f"{flag} is an option of --arch {' or '.join(owners)}; give --arch"
            own = list(option_flags(ARCHITECTURES[arch_name].Options).values())
            return (f"{flag} is an option of --arch {' or '.join(owners)}, not of {arch_name} "
                    f"(which takes {', '.join(own) or 'no options'})")
    return None


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error (``accel: error: ...``, exit 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _requested_arch(argv: list[str]) -> str | None:
    """The value of ``--arch`` in ``argv``, so that the parser can add that architecture's
    options (and only those) before parsing."""
    for index, word in enumerate(argv):
        if word == "--arch" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("--arch="):
            return word.split("=", 1)[1]
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; ``argv`` (what will be parsed) chooses which architecture's options the
    hardware commands take."""
    arch_name = _requested_arch(sys.argv[1:] if argv is None else argv)
    parser = _Parser(
        prog="accel", description="Compressed and binarized neural networks to RTL, "
                                  "cycle-accurate simulation and energy.")
    parser.add_argument("--version", action="version", version=f"accel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    doctor = commands.add_parser("doctor", help="check the toolchain end to end")
    doctor.set_defaults(handler=_doctor)

    demo = commands.add_parser(
        "demo", help="the shipped models through every architecture in Verilator: accuracy, "
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
    compress.add_argument("--data", help=".npy of inputs to calibrate the activation ranges on "
                                         "(and, with --labels, to measure accuracy on; "
                                         "default: the digits train and test splits)")
    compress.add_argument("--labels", help=".npy of integer labels for --data")
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
    _add_hardware_arguments(generate, arch_name)
    generate.add_argument("-o", "--output", required=True, help="output directory")
    generate.add_argument("--no-counters", action="store_true",
                          help="leave the event counters out (smaller FPGA builds)")
    generate.set_defaults(handler=_generate)

    synth = commands.add_parser(
        "synth", help="synthesize a design with yosys (pyosys), optionally place and route it "
                      "with nextpnr: resources, Fmax, critical path (needs accel[fpga])")
    _add_hardware_arguments(synth, arch_name)
    synth.add_argument("--target", required=True, metavar="ecp5|xc7|ice40",
                       help="ecp5 (default part LFE5UM5G-85F, CABGA381, out of context), ice40 "
                            "(default hx8k, ct256) or xc7 (synthesis only)")
    synth.add_argument("--part", help="the device (ecp5: e.g. LFE5U-45F; ice40: e.g. up5k)")
    synth.add_argument("--pnr", action="store_true",
                       help="also place and route (ecp5, ice40): Fmax and the critical path")
    synth.add_argument("--seed", type=int, metavar="N",
                       help="with --pnr: nextpnr's placement seed (default 1; Fmax varies by "
                            "about 5 MHz from seed to seed, and a large design that does not "
                            "finish routing with one may with another)")
    synth.add_argument("--no-floorplan", action="store_true",
                       help="with --pnr on ECP5: leave every block RAM to nextpnr's placer "
                            "(by default each PE's block RAMs of an EIE design are fixed to "
                            "adjacent sites, the PEs spread over the die)")
    synth.add_argument("-o", "--output", required=True,
                       help="output directory: Verilog, manifest, synth.json, yosys script "
                            "and log (written whole or not at all)")
    synth.set_defaults(handler=_synth, no_counters=True)  # FPGA builds leave counters out

    simulate = commands.add_parser("simulate", help="run a model on its hardware in Verilator")
    words = sys.argv[1:] if argv is None else argv
    replay = any(word == "--point" or word.startswith("--point=") for word in words)
    _add_hardware_arguments(simulate, arch_name, replay=replay)
    _add_evaluation_arguments(simulate)
    simulate.add_argument("--point", metavar="STORE:ID",
                          help="re-run point ID of an `accel explore` store in Verilator and "
                               "check that its stored estimate was exact (the point brings "
                               "the model, architecture and options; MODEL may name the "
                               "model's file)")
    simulate.set_defaults(handler=_simulate)

    estimate = commands.add_parser(
        "estimate", help="cycles, events and energy from the cycle model (no Verilator): what "
                         "`simulate` reports, in a fraction of a second")
    _add_hardware_arguments(estimate, arch_name)
    _add_evaluation_arguments(estimate)
    estimate.set_defaults(handler=_estimate)

    energy = commands.add_parser(
        "energy", help="compare energy per inference of simulation results (table and chart)")
    energy.add_argument("results", nargs="+",
                        help="`accel simulate --json` or `accel estimate --json` files")
    energy.add_argument("--tech", help="re-price the runs with this technology table (a "
                                       "shipped name or a YAML file), without simulating")
    energy.add_argument("--on-chip-kib", type=float,
                        help="re-price the runs with this on-chip SRAM budget")
    energy.add_argument("--json", help="write the (re-priced) results to this file")
    energy.add_argument("--chart", default="energy",
                        help="write the stacked-bar chart to CHART.png and CHART.svg "
                             "(default: energy)")
    energy.set_defaults(handler=_energy)

    prune_parser = commands.add_parser(
        "prune", help="energy-aware pruning for an architecture (Yang et al. 2017, on accel's "
                      "own estimate), or magnitude pruning at the same accuracy budget")
    _add_hardware_arguments(prune_parser, arch_name)
    prune_parser.add_argument("--energy-aware", action="store_true",
                              help="prune the layers that cost the most energy first, with "
                                   "restore and least-squares refit (the default criterion)")
    prune_parser.add_argument("--criterion", choices=["energy", "magnitude"],
                              help="energy (= --energy-aware) or magnitude (Deep "
                                   "Compression's: largest layers first, no restore or refit)")
    prune_parser.add_argument("--compare", action="store_true",
                              help="also run the other criterion and show where they differ")
    prune_parser.add_argument("--max-accuracy-drop", type=float, default=1.0, metavar="P",
                              help="accuracy budget in percentage points, decided on a "
                                   "cross-validation of the training data (default 1)")
    prune_parser.add_argument("--folds", type=int, metavar="K",
                              help="cross-validation folds of the decisions (default 5, "
                                   "accel.explore.prune.FOLDS; 1: a single held-out fifth, "
                                   "quicker and noisier)")
    prune_parser.add_argument("--data", help=".npy of training inputs (default: the digits "
                                             "training split)")
    prune_parser.add_argument("--labels", help=".npy of integer labels for --data")
    prune_parser.add_argument("--seed", type=int, default=0,
                              help="seed of fine-tuning and weight sharing (default 0)")
    prune_parser.add_argument("--no-finetune", action="store_true",
                              help="skip the global fine-tuning (which needs torch)")
    prune_parser.add_argument("--tech", default="45nm",
                              help="technology table: a shipped name or a YAML file (default "
                                   "45nm)")
    prune_parser.add_argument("--report", help="write the report(s) as JSON here")
    prune_parser.add_argument("-o", "--output", required=True,
                              help="the pruned network (QONNX)")
    prune_parser.set_defaults(handler=_prune)

    explore = commands.add_parser(
        "explore", help="sweep architecture parameters and compression choices on Dask "
                        "(cycle model), resumable; Pareto front, pareto.json and plots")
    explore.add_argument("spec", help="the sweep spec (YAML; see examples/explore_eie.yaml)")
    explore.add_argument("--store", help="the results store, SQLite (default: SPEC-NAME.sqlite "
                                         "here); finished points in it are not computed again")
    explore.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                         help="join this Dask cluster instead of starting a local one")
    explore.add_argument("--workers", type=int,
                         help="worker processes of the local cluster (default 2)")
    explore.add_argument("--out", help="directory for pareto.json and the plots (default: "
                                       "SPEC-NAME-out here)")
    explore.add_argument("--verify", type=int, default=0, metavar="N",
                         help="replay the first N points of the front in Verilator (Dask "
                              "tasks) and check their estimates were exact")
    explore.set_defaults(handler=_explore)

    cache_parser = commands.add_parser(
        "cache", help="show the Verilator build cache ($ACCEL_CACHE), or clear it")
    cache_actions = cache_parser.add_subparsers(dest="cache_command", metavar="ACTION",
                                                parser_class=_Parser)
    cache_actions.add_parser("show", help="root, size, cap and every build (the default)")
    cache_clear = cache_actions.add_parser(
        "clear", help="remove the builds no accel process is using, stale temporaries and "
                      "failed-build logs")
    cache_clear.add_argument("--older-than", type=float, metavar="DAYS",
                             help="only what was last used more than DAYS days ago")
    cache_parser.set_defaults(handler=_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        arch_name = _requested_arch(sys.argv[1:] if argv is None else argv)
        message = _misplaced_options(extra, arch_name)
        print(f"accel: error: {message or 'unrecognized arguments: ' + ' '.join(extra)}",
              file=sys.stderr)
        return 2
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

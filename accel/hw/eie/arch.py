"""The EIE architecture's faces for the CLI: configure, generate, simulate."""

from __future__ import annotations

from pathlib import Path

from amaranth import Shape

import numpy as np

from accel.energy.model import estimate
from accel.errors import ConfigError
from accel.hw.eie.energy import event_specs, storage_of
from accel.hw.eie.mapping import EIENetworkMapping, map_network
from accel.hw.eie.model import ENTRIES_PER_WORD, ENTRY_BITS
from accel.hw.eie.rtl import EIEHarness, event_declarations, pe_storage, pointer_bits
from accel.hw.eie.run import network_layer_inputs, run_rtl
from accel.hw.result import SimResult
from accel.hw.verilog import to_verilog
from accel.io import write_atomic, write_json
from accel.nn import golden
from accel.nn.ir import Network

NAME = "eie"
TOP_NAME = "eie_top"
DEFAULT_PES = 4
DEFAULT_QUEUE_DEPTH = 8


def configure(network: Network, *, pes=None, queue_depth=None, sparse_word_bits=None,
              folding=None, target_fps=None, count_events: bool = True,
              clock_mhz=None) -> EIENetworkMapping:
    """``pes`` PEs (default 4) with activation queues of ``queue_depth`` (default 8) and
    sparse-matrix SRAM words of ``sparse_word_bits`` (default 64: 8 entries); ``clock_mhz``
    only states times (EIE's timing does not depend on it)."""
    if folding is not None or target_fps is not None:
        raise ConfigError("--folding and --target-fps are FINN options; EIE takes --pes and "
                          "--queue-depth")
    if sparse_word_bits is None:
        sparse_word_bits = ENTRIES_PER_WORD * ENTRY_BITS
    if sparse_word_bits % ENTRY_BITS:
        raise ConfigError(f"--sparse-word-bits {sparse_word_bits}: a word holds whole "
                          f"{ENTRY_BITS}-bit entries")
    return map_network(network, num_pes=DEFAULT_PES if pes is None else pes,
                       queue_depth=DEFAULT_QUEUE_DEPTH if queue_depth is None else queue_depth,
                       count_events=count_events,
                       entries_per_word=sparse_word_bits // ENTRY_BITS)


def manifest(mapping: EIENetworkMapping, top: EIEHarness) -> dict:
    n = mapping.num_pes
    layers = []
    for spec in mapping.layers:
        layers.append({"name": spec.name, "rows": spec.rows, "cols": spec.cols,
                       "nonzero_weights": spec.matrix.total_entries - spec.matrix.padding_entries,
                       "padding_entries": int(spec.matrix.padding_entries),
                       "codebook": [int(c) for c in spec.codebook],
                       "local_rows_per_pe": spec.local_rows})
    widths = {name: Shape.cast(member.shape).width
              for name, member in top.signature.members.items()}
    widths.update(clk=1, rst=1)
    return {
        "arch": NAME, "top": TOP_NAME, "network": mapping.name, "num_pes": n,
        "queue_depth": mapping.queue_depth, "activation_bits": mapping.activation_bits,
        "accumulator_bits": mapping.accumulator_bits, "pointer_bits": pointer_bits(mapping),
        "sparse_word_bits": mapping.entries_per_word * ENTRY_BITS,
        "sparse_entries_per_pe": [len(pe_storage(mapping, k)[1]) for k in range(n)],
        "activation_bank_rows": mapping.bank_rows, "layers": layers, "ports": widths,
        "protocol": (
            "hold run low; load input activation j with load_bank = j mod num_pes, "
            "load_row = j div num_pes, load_data (two's complement), load_en high for one "
            "cycle each (zeros included: every column of the widest layer); raise run and "
            "hold it; when done is high, output row i is read combinationally at "
            "read_pe = i mod num_pes, read_row = i div num_pes (the last layer's "
            "accumulator, before its bias); cycles counts the run; lower run before the "
            "next input"),
        "final_bias": None if mapping.final_bias is None else
        [int(b) for b in mapping.final_bias],
        "events": list(event_declarations(mapping)) if mapping.count_events else [],
    }


def generate(mapping: EIENetworkMapping, out_dir: Path) -> list[Path]:
    """``eie_top.v`` and ``eie_top.json`` (the manifest) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    top = EIEHarness(mapping)
    verilog = to_verilog(top, TOP_NAME)
    return [write_atomic(out_dir / f"{TOP_NAME}.v", verilog),
            write_json(out_dir / f"{TOP_NAME}.json", manifest(mapping, top))]


def simulate(mapping: EIENetworkMapping, network: Network, inputs: np.ndarray,
             labels: np.ndarray | None, *, model: str, clock_mhz: float,
             tech="45nm", on_chip_bytes: float | None = None) -> SimResult:
    if not mapping.count_events:
        raise ConfigError("simulation compares event counts: generate with counters")
    trace = golden.run(network, inputs, return_all=True)
    results = run_rtl(mapping, network_layer_inputs(network, trace))
    outputs = np.array([result["outputs"] for result in results])
    bit_exact = bool(np.array_equal(outputs, trace[-1]))
    images = len(inputs)
    events = {name: sum(r["events"][name] for r in results) for name in results[0]["events"]}
    model_events = {name: sum(r["model"].events[name] for r in results)
                    for name in results[0]["model"].events}
    cycles = sum(r["cycles"] for r in results)
    model_cycles = sum(r["model"].cycles for r in results)
    specs = event_specs(storage_of(mapping))
    energy = estimate({k: v / images for k, v in events.items()}, specs, tech,
                      on_chip_bytes=on_chip_bytes)
    model_energy = estimate({k: v / images for k, v in model_events.items()}, specs, tech,
                            on_chip_bytes=on_chip_bytes)
    macs = sum(count for name, count in events.items() if name.endswith(".pe.mult.mac")) / images
    ideal = sum(r["model"].ideal_cycles for r in results)
    compute = sum(r["model"].compute_cycles for r in results)
    return SimResult.build(
        arch=NAME, model=model, predictions=np.argmax(outputs, axis=1), labels=labels,
        bit_exact=bit_exact, rtl_cycles=cycles, model_cycles=model_cycles,
        latency_cycles=results[0]["cycles"], clock_mhz=clock_mhz, events=events,
        model_events=model_events,
        extra={**energy.to_json(),
               "model_energy_uj_per_inference": model_energy.total_uj,
               "average_power_mw": energy.average_power_mw(cycles / images, clock_mhz),
               "load_balance_efficiency": ideal / compute if compute else 1.0,
               "macs_per_inference": macs,
               "pj_per_mac": energy.total_pj / macs if macs else None,
               "writeback_cycles_per_inference": (model_cycles - compute) / images,
               "num_pes": mapping.num_pes, "queue_depth": mapping.queue_depth})
